//! Every bad callback gets a 4xx with a reason, writes nothing and never panics the server.

use yunying::clock::Clock as _;
use yunying::send::Simulated;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

backend_tests!(
    bad_callbacks_are_refused_and_write_nothing,
    stale_timestamps_are_refused,
    oversized_bodies_get_413
);

fn text(msg_id: &str) -> Simulated {
    Simulated::Text {
        from: "zhangsan".into(),
        name: None,
        group: None,
        text: "ping".into(),
        msg_id: msg_id.into(),
    }
}

async fn expect_status(
    app: &TestApp,
    channel: &str,
    query: &str,
    body: Vec<u8>,
    headers: &[(&str, String)],
    status: u16,
    reason: &str,
) {
    let mut builder = app
        .client
        .post(app.url(&format!("/callbacks/{channel}?{query}")))
        .body(body);
    for (k, v) in headers {
        builder = builder.header(*k, v);
    }
    let response = builder.send().await.expect("request");
    assert_eq!(response.status().as_u16(), status, "{reason}");
    let text = response.text().await.expect("body");
    assert!(!text.is_empty(), "{reason}: a reason is given");
}

async fn bad_callbacks_are_refused_and_write_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let good = app.build("demo_app", &text("1"));
    let body = String::from_utf8(good.body.clone()).expect("utf8");

    // Wrong signature.
    let tampered_query = good.query.replacen("msg_signature=", "msg_signature=0", 1);
    expect_status(
        &app,
        "demo_app",
        &tampered_query,
        good.body.clone(),
        &[],
        401,
        "bad signature",
    )
    .await;
    // One character of the ciphertext changed: caught by the signature, before decrypting.
    let flipped = body.replacen("<Encrypt><![CDATA[", "<Encrypt><![CDATA[A", 1);
    expect_status(
        &app,
        "demo_app",
        &good.query,
        flipped.into_bytes(),
        &[],
        401,
        "tampered ciphertext",
    )
    .await;
    // Missing parameters.
    expect_status(
        &app,
        "demo_app",
        "timestamp=1",
        good.body.clone(),
        &[],
        400,
        "missing nonce",
    )
    .await;
    // Malformed envelope and DOCTYPE.
    expect_status(
        &app,
        "demo_app",
        &good.query,
        b"<xml><Encrypt>".to_vec(),
        &[],
        400,
        "malformed XML",
    )
    .await;
    let doctype = format!("<!DOCTYPE xml [<!ENTITY x \"y\">]>{body}");
    expect_status(
        &app,
        "demo_app",
        &good.query,
        doctype.into_bytes(),
        &[],
        400,
        "DOCTYPE",
    )
    .await;
    expect_status(
        &app,
        "demo_app",
        &good.query,
        b"garbage".to_vec(),
        &[],
        400,
        "neither XML nor JSON",
    )
    .await;
    // Envelope without Encrypt.
    expect_status(
        &app,
        "demo_app",
        &good.query,
        b"<xml><ToUserName>x</ToUserName></xml>".to_vec(),
        &[],
        400,
        "no Encrypt",
    )
    .await;
    // Unknown channel.
    expect_status(
        &app,
        "nope",
        &good.query,
        good.body.clone(),
        &[],
        404,
        "unknown channel",
    )
    .await;

    // Correct signature over garbage ciphertext (bad base64 / bad length): 400 after the signature passes.
    let ts = (app.clock.now_ms() / 1000).to_string();
    for garbage in ["!!!notbase64!!!", "AAAAAAAAAAAAAAAAAAAAAA=="] {
        let sig =
            yunying::wecom::crypto::signature("es4XR1BworijMUAZW8apOAhd", &ts, "n", Some(garbage));
        let q = format!("msg_signature={sig}&timestamp={ts}&nonce=n");
        expect_status(
            &app,
            "demo_app",
            &q,
            format!("<xml><Encrypt>{garbage}</Encrypt></xml>").into_bytes(),
            &[],
            400,
            garbage,
        )
        .await;
    }

    // A frame for another receive id (a different corp with the same keys): 403.
    let foreign = yunying::wecom::crypto::MsgCrypt::new(
        "es4XR1BworijMUAZW8apOAhd",
        "mor588vaYbzUClebtqMHs4XSI7Rwv0F58Gcva26s1uV",
        "wwOTHERCORP",
    )
    .expect("key");
    let (encrypt, sig) = foreign.seal(b"<xml><MsgType>text</MsgType></xml>", &ts, "n");
    let q = format!("msg_signature={sig}&timestamp={ts}&nonce=n");
    expect_status(
        &app,
        "demo_app",
        &q,
        format!("<xml><Encrypt>{encrypt}</Encrypt></xml>").into_bytes(),
        &[],
        403,
        "receive id",
    )
    .await;

    // Decrypts fine but the inner message is not a message.
    let crypt = app.channel("demo_app").crypt.clone().expect("crypt");
    let (encrypt, sig) = crypt.seal(b"<xml><Nothing/></xml>", &ts, "n");
    let q = format!("msg_signature={sig}&timestamp={ts}&nonce=n");
    expect_status(
        &app,
        "demo_app",
        &q,
        format!("<xml><Encrypt>{encrypt}</Encrypt></xml>").into_bytes(),
        &[],
        400,
        "inner missing MsgType",
    )
    .await;

    // Gateway: wrong HMAC and missing headers.
    let gw = app.build(
        "demo_gateway",
        &Simulated::Text {
            from: "a".into(),
            name: None,
            group: Some("g".into()),
            text: "hi".into(),
            msg_id: "1".into(),
        },
    );
    let wrong = vec![
        ("x-yunying-timestamp", ts.clone()),
        ("x-yunying-signature", "sha256=00".into()),
    ];
    expect_status(
        &app,
        "demo_gateway",
        "",
        gw.body.clone(),
        &wrong,
        401,
        "gateway hmac",
    )
    .await;
    expect_status(
        &app,
        "demo_gateway",
        "",
        gw.body.clone(),
        &[],
        400,
        "gateway headers",
    )
    .await;

    assert_eq!(app.inbox_count().await, 0, "nothing rejected was written");
    // The server still works.
    let (status, reply) = app
        .send_text("demo_app", "zhangsan", None, "ping", "ok-1")
        .await;
    assert_eq!(status, 200);
    assert!(reply.is_some());
}

async fn stale_timestamps_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let request = app.build("demo_app", &text("old"));
    // Ten minutes later the same signed request is a replay.
    app.clock.advance_ms(600_000);
    let response = app.post("demo_app", &request).await;
    assert_eq!(response.status(), 403);
    assert!(response
        .text()
        .await
        .expect("body")
        .contains("replay window"));
    // Also for the gateway.
    let gw = app.build(
        "demo_gateway",
        &Simulated::Join {
            group: "g".into(),
            members: vec!["x".into()],
        },
    );
    app.clock.advance_ms(600_000);
    assert_eq!(app.post("demo_gateway", &gw).await.status(), 403);
    assert_eq!(app.inbox_count().await, 0);
}

async fn oversized_bodies_get_413(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let request = app.build("demo_app", &text("big"));
    let mut body = request.body.clone();
    body.extend(std::iter::repeat_n(b' ', 70 * 1024));
    let response = app
        .client
        .post(app.url(&format!("/callbacks/demo_app?{}", request.query)))
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 413);
    assert_eq!(app.inbox_count().await, 0);
}
