//! Connection limits against idle and slow clients, on a raw socket: a connection that sends
//! nothing, headers trickled in, a body trickled in, and a kept-alive connection left idle are
//! all closed (the body with a 408), while normal requests go on.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Backend, TestApp};

async fn spawn() -> TestApp {
    TestApp::spawn_with(Backend::Sqlite, |c| {
        c.server.header_read_timeout_secs = 1;
        c.server.body_read_timeout_secs = 1;
        c.server.keep_alive_idle_secs = 2;
    })
    .await
}

/// Reads until the server closes the connection; the bytes it sent first. Gives up (and fails)
/// after 20 s, far past every limit under test.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut buf = [0_u8; 1024];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("the server closes the connection");
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_nothing_is_closed() {
    let app = spawn().await;
    let mut idle = TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");
    assert_eq!(until_closed(&mut idle).await, "");
    let ok = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("get");
    assert_eq!(ok.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_trickled_in_are_cut_off() {
    let app = spawn().await;
    let mut slow = TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let (mut reader, mut writer) = slow.split();
    let trickle = async {
        for byte in request {
            if writer.write_all(&[*byte]).await.is_err() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        true
    };
    let closed = async {
        let mut buf = [0_u8; 256];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::select! {
        finished = trickle => panic!("the whole request was accepted byte by byte ({finished})"),
        () = closed => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_trickled_in_gets_408() {
    let app = spawn().await;
    let mut slow = TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");
    slow.write_all(
        b"POST /callbacks/demo_app?msg_signature=a&timestamp=1&nonce=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n",
    )
    .await
    .expect("headers");
    slow.write_all(b"<xml>").await.expect("first bytes");
    let answer = until_closed(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_left_idle_is_closed() {
    let app = spawn().await;
    let mut conn = TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("request");
    let answer = until_closed(&mut conn).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.ends_with("ok"),
        "answered, then closed when idle: {answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_the_longest_waiting_connection_makes_room() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.server.header_read_timeout_secs = 600;
        c.server.keep_alive_idle_secs = 600;
        c.server.max_connections = 16;
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..16 {
        let mut conn = TcpStream::connect(("127.0.0.1", app.port))
            .await
            .expect("connect");
        // One request each, so every socket is known to the server (accepted) before the next.
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("request");
        let mut buf = [0_u8; 512];
        let n = conn.read(&mut buf).await.expect("answer");
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        idle.push(conn);
    }
    // The platform's callback still gets through: the oldest idle socket is closed for it.
    let fresh = reqwest::Client::new();
    let ok = fresh.get(app.url("/healthz")).send().await.expect("get");
    assert_eq!(ok.status(), 200);
    assert_eq!(
        until_closed(&mut idle[0]).await,
        "",
        "the oldest idle connection made room"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_routed_request_carries_a_request_id() {
    let app = spawn().await;
    let given = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-42_a")
        .send()
        .await
        .expect("get");
    assert_eq!(given.headers()["x-request-id"], "trace-42_a");
    let forged = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "bad id\twith spaces")
        .send()
        .await
        .expect("get");
    let own = forged.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(!own.is_empty() && !own.contains(' '), "{own}");
    let other = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("get");
    assert_ne!(
        other.headers()["x-request-id"].to_str().expect("ascii"),
        own
    );
}
