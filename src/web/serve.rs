//! The HTTP/1 server loop with the limits a public callback port needs: at most
//! `max_connections` open at once, a new connection must send its first request's headers within
//! the header timeout, a request's headers must arrive within it once they start, and a
//! kept-alive connection idle past the keep-alive timeout is closed. At the cap, the connection
//! that has waited longest without a request in hand is closed to make room, so clients that
//! hold sockets open without using them cannot lock out the platform. Bodies have their own
//! deadline ([`body_deadline`]). On shutdown, connections finish the request in hand and close.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub keep_alive_idle: Duration,
    pub max_connections: usize,
}

impl Limits {
    pub fn from_config(server: &crate::config::ServerConfig) -> Self {
        Self {
            header_timeout: Duration::from_secs(server.header_read_timeout_secs),
            body_timeout: Duration::from_secs(server.body_read_timeout_secs),
            keep_alive_idle: Duration::from_secs(server.keep_alive_idle_secs),
            max_connections: match server.max_connections {
                0 => automatic_connection_cap(),
                n => n,
            },
        }
    }
}

/// Three quarters of the open-file limit, so the database, the log and outbound calls keep
/// descriptors when every connection is taken.
fn automatic_connection_cap() -> usize {
    #[cfg(unix)]
    {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        let soft = limit.current.unwrap_or(65_536);
        usize::try_from(soft / 4 * 3).unwrap_or(1024).max(16)
    }
    #[cfg(not(unix))]
    {
        1024
    }
}

/// Where a connection stands, for its watchdog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accepted; its first request has not started.
    Fresh,
    /// Bytes of a request came in; its headers are not complete.
    Reading,
    /// A request is being handled (its body is bounded by [`body_deadline`]).
    Busy,
    /// Kept alive between requests.
    Idle,
}

#[derive(Debug)]
struct ConnState {
    phase: Phase,
    since: Instant,
}

type Shared = Arc<Mutex<ConnState>>;

fn set(state: &Shared, phase: Phase) {
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    s.phase = phase;
    s.since = Instant::now();
}

/// A socket that tells its connection's state when a new request's first bytes arrive.
struct Watched {
    stream: TcpStream,
    state: Shared,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if matches!(s.phase, Phase::Fresh | Phase::Idle) {
                s.phase = Phase::Reading;
                s.since = Instant::now();
            }
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The router as a hyper service that marks the connection busy while a request is handled.
#[derive(Clone)]
struct Tracked {
    router: Router,
    state: Shared,
}

impl hyper::service::Service<Request<hyper::body::Incoming>> for Tracked {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, request: Request<hyper::body::Incoming>) -> Self::Future {
        use tower_service::Service as _;
        set(&self.state, Phase::Busy);
        let state = Arc::clone(&self.state);
        let mut router = self.router.clone();
        Box::pin(async move {
            let response = router.call(request.map(Body::new)).await;
            set(&state, Phase::Idle);
            response
        })
    }
}

/// Resolves when the connection has been `Fresh` or `Reading` past the header timeout, or
/// `Idle` past the keep-alive timeout.
async fn watchdog(state: Shared, limits: Limits) {
    loop {
        let (phase, since) = {
            let s = state.lock().unwrap_or_else(|p| p.into_inner());
            (s.phase, s.since)
        };
        let allowed = match phase {
            Phase::Fresh | Phase::Reading => limits.header_timeout,
            Phase::Idle => limits.keep_alive_idle,
            // A handler's own budget and the body deadline bound it; look again later.
            Phase::Busy => {
                tokio::time::sleep(limits.header_timeout).await;
                continue;
            }
        };
        let deadline = since + allowed;
        if Instant::now() >= deadline {
            let current = state.lock().unwrap_or_else(|p| p.into_inner());
            if current.phase == phase && current.since == since {
                tracing::debug!(?phase, "closing a connection that sent nothing in time");
                return;
            }
            continue;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

/// Open connections that may be closed to make room: their state and how to close them.
#[derive(Default)]
struct Registry {
    next: u64,
    open: HashMap<u64, (Shared, CancellationToken)>,
}

impl Registry {
    fn add(&mut self, state: Shared) -> (u64, CancellationToken) {
        self.next += 1;
        let close = CancellationToken::new();
        self.open.insert(self.next, (state, close.clone()));
        (self.next, close)
    }

    /// Closes the connection that has waited longest without a request in hand.
    fn evict_oldest_waiting(&self) -> bool {
        let oldest = self
            .open
            .values()
            .filter_map(|(state, close)| {
                let s = state.lock().unwrap_or_else(|p| p.into_inner());
                (s.phase != Phase::Busy).then_some((s.since, close))
            })
            .min_by_key(|(since, _)| *since);
        match oldest {
            Some((_, close)) => {
                close.cancel();
                true
            }
            None => false,
        }
    }
}

fn registry(r: &Mutex<Registry>) -> std::sync::MutexGuard<'_, Registry> {
    r.lock().unwrap_or_else(|p| p.into_inner())
}

/// Serves `router` on `listener` until `shutdown` fires; then in-flight requests get `grace`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
    grace: Duration,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let open = Arc::new(Mutex::new(Registry::default()));
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: try again shortly.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if !registry(&open).evict_oldest_waiting() {
                    tracing::warn!(
                        max = limits.max_connections,
                        "connection cap reached with every connection busy; waiting for one"
                    );
                }
                tokio::select! {
                    permit = Arc::clone(&permits).acquire_owned() => permit.map_err(io::Error::other)?,
                    () = shutdown.cancelled() => break,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let state: Shared = Arc::new(Mutex::new(ConnState {
            phase: Phase::Fresh,
            since: Instant::now(),
        }));
        let (id, evicted) = registry(&open).add(Arc::clone(&state));
        let io = TokioIo::new(Watched {
            stream,
            state: Arc::clone(&state),
        });
        let service = Tracked {
            router: router.clone(),
            state: Arc::clone(&state),
        };
        let (stop, open) = (shutdown.clone(), Arc::clone(&open));
        connections.spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(io, service)
                .with_upgrades();
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = watchdog(state, limits) => {}
                () = evicted.cancelled() => {}
                () = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            registry(&open).open.remove(&id);
            drop(permit);
        });
    }
    connections.close();
    let _ = tokio::time::timeout(grace, connections.wait()).await;
    Ok(())
}

/// Middleware: the whole request body must arrive within `deadline` (408 otherwise), and at most
/// `max_bytes` of it (413): a client sending a byte a second cannot hold a request open.
pub async fn body_deadline(
    deadline: Duration,
    max_bytes: usize,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(deadline, axum::body::to_bytes(body, max_bytes)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(e)) if e.to_string().contains("length limit") => {
            (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response()
        }
        Ok(Err(_)) => (StatusCode::BAD_REQUEST, "request body not received").into_response(),
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            "request body not received in time",
        )
            .into_response(),
    }
}
