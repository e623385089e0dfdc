//! `TestApp::spawn(backend)`: the real server on 127.0.0.1:0 against a fresh database (a SQLite
//! file in a temp dir, or a new PostgreSQL database from `YUNYING_TEST_DATABASE_URL`), with a
//! manual clock and typed helpers that send real signed, encrypted callbacks.

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use yunying::app::App;
use yunying::channels::{Channel, Channels};
use yunying::clock::{Clock as _, ManualClock};
use yunying::config::{ChannelConfig, ChannelKind, Config, Secret};
use yunying::send::{self, Simulated};
use yunying::store::Store;

pub const NOW_MS: i64 = 1_700_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Emits `sqlite_<name>` and `pg_<name>` tests running `async fn name(Backend)`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }
            )*
        }
        mod pg {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if $crate::helpers::pg_url().is_none() {
                        eprintln!("skipped: YUNYING_TEST_DATABASE_URL is not set");
                        return;
                    }
                    super::$name($crate::helpers::Backend::Postgres).await;
                }
            )*
        }
    };
}

pub fn pg_url() -> Option<String> {
    std::env::var("YUNYING_TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
}

/// A fresh database of `backend`: a SQLite file in `dir`, or a new PostgreSQL database dropped
/// when the returned guard goes.
pub async fn fresh_database(
    backend: Backend,
    dir: &std::path::Path,
) -> (String, Option<PgDatabase>) {
    match backend {
        Backend::Sqlite => (format!("sqlite://{}", dir.join("test.db").display()), None),
        Backend::Postgres => {
            let url = fresh_pg_database().await;
            let guard = url::Url::parse(&url).ok().map(|u| PgDatabase {
                name: u.path().trim_start_matches('/').to_owned(),
            });
            (url, guard)
        }
    }
}

/// A PostgreSQL database of one test, dropped when the test is done with it.
pub struct PgDatabase {
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside any runtime it could block: a thread of its own with its own.
        let dropped = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                use sqlx::Connection as _;
                let Some(base) = pg_url() else { return };
                if let Ok(mut conn) = sqlx::PgConnection::connect(&base).await {
                    let sql = format!("drop database if exists {name} with (force)");
                    let _ = sqlx::query(&sql).execute(&mut conn).await;
                    let _ = conn.close().await;
                }
            });
        });
        let _ = dropped.join();
    }
}

/// Logs of the server under test on stderr when `TEST_LOG` is set (`TEST_LOG=debug` for more).
fn test_log() {
    if let Ok(level) = std::env::var("TEST_LOG") {
        let filter = if level.is_empty() || level == "1" {
            "info".to_owned()
        } else {
            level
        };
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// A fresh PostgreSQL database named after a random id; returns its URL.
async fn fresh_pg_database() -> String {
    use sqlx::Connection as _;
    let base = pg_url().expect("YUNYING_TEST_DATABASE_URL");
    let name = format!("yy_test_{:016x}", rand::random::<u64>());
    let mut conn = sqlx::PgConnection::connect(&base)
        .await
        .expect("connect to YUNYING_TEST_DATABASE_URL");
    sqlx::query(&format!("create database {name}"))
        .execute(&mut conn)
        .await
        .expect("create database");
    conn.close().await.ok();
    let mut url = url::Url::parse(&base).expect("database url");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

pub struct TestApp {
    pub port: u16,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub store: Store,
    pub channels: Channels,
    pub app_state: yunying::state::AppState,
    shutdown: CancellationToken,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    /// SQLite's folder; handed on by [`TestApp::stop`].
    dir: Option<tempfile::TempDir>,
    /// The PostgreSQL database this app created; handed on by [`TestApp::stop`].
    pg: Option<PgDatabase>,
}

pub fn channel_config(kind: ChannelKind) -> ChannelConfig {
    ChannelConfig {
        kind,
        enabled: true,
        scope: None,
        token: None,
        encoding_aes_key: None,
        corp_id: None,
        agent_id: None,
        secret: None,
        app_id: None,
        webhook_key: None,
        robot_name: None,
        send_url: None,
        groups: Vec::new(),
        welcome: true,
        bot_id: None,
        mode: None,
        ws_url: None,
    }
}

/// The test configuration: the example's demo channels plus the official V1 sample channel.
pub fn test_config(database_url: &str) -> Config {
    let mut config = Config::example().expect("example config");
    config.server.listen = "127.0.0.1:0".into();
    config.database.url = Secret::new(database_url);
    config.templates.dir = concat!(env!("CARGO_MANIFEST_DIR"), "/templates").into();
    // The WeCom stand-in listens on loopback.
    config.aibot.response_url_hosts.push("127.0.0.1".into());
    let mut v1 = channel_config(ChannelKind::WecomApp);
    v1.token = Some(Secret::new("hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"));
    v1.encoding_aes_key = Some(Secret::new("6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"));
    v1.corp_id = Some("ww1436e0e65a779aee".into());
    config.channels.insert("v1".into(), v1);
    config
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_full(backend, adjust, None, None).await
    }

    /// Spawns with an extra handler put in front of the standard chain.
    pub async fn spawn_with_handler(backend: Backend, handler: impl yunying::bot::Handler) -> Self {
        Self::spawn_full(
            backend,
            |_| {},
            Some(Box::new(move |d: yunying::bot::Dispatcher| d.with(handler))),
            None,
        )
        .await
    }

    #[allow(clippy::type_complexity)]
    /// Spawns with a chosen configuration and an extra handler in front of nothing else.
    pub async fn spawn_with_handler_and(
        backend: Backend,
        adjust: impl FnOnce(&mut Config),
        handler: impl yunying::bot::Handler,
    ) -> Self {
        Self::spawn_full(
            backend,
            adjust,
            Some(Box::new(move |d: yunying::bot::Dispatcher| d.with(handler))),
            None,
        )
        .await
    }

    /// Spawns with a handler chain of the test's own (from an empty dispatcher).
    pub async fn spawn_with_chain(
        backend: Backend,
        chain: impl FnOnce(yunying::bot::Dispatcher) -> yunying::bot::Dispatcher + Send + 'static,
    ) -> Self {
        Self::spawn_full(backend, |_| {}, Some(Box::new(chain)), None).await
    }

    /// A second server on the database of `url` (a replica).
    pub async fn spawn_on(url: &str, adjust: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_full(Backend::Sqlite, adjust, None, Some(url.to_owned())).await
    }

    /// The database this server uses.
    pub fn database_url(&self) -> String {
        self.app_state.config.database.url.expose().to_owned()
    }

    async fn spawn_full(
        backend: Backend,
        adjust: impl FnOnce(&mut Config),
        extra: Option<Box<dyn FnOnce(yunying::bot::Dispatcher) -> yunying::bot::Dispatcher + Send>>,
        url: Option<String>,
    ) -> Self {
        test_log();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut pg = None;
        let url = match (url, backend) {
            (Some(url), _) => url,
            (None, Backend::Sqlite) => format!("sqlite://{}", dir.path().join("test.db").display()),
            (None, Backend::Postgres) => {
                let url = fresh_pg_database().await;
                pg = url::Url::parse(&url).ok().map(|u| PgDatabase {
                    name: u.path().trim_start_matches('/').to_owned(),
                });
                url
            }
        };
        let mut config = test_config(&url);
        adjust(&mut config);
        let channels = Channels::from_config(&config).expect("channels");
        let clock = ManualClock::new(NOW_MS);
        let chain = match extra {
            Some(add) => yunying::chain::Chain::custom(add),
            None => yunying::chain::Chain::Standard,
        };
        let app = App::build_with(config, clock.clone(), chain)
            .await
            .expect("app builds");
        let port = app.port();
        let store = app.state().store.clone();
        let app_state = app.state().clone();
        let shutdown = app.shutdown_token();
        let server = tokio::spawn(app.run_until_stopped());
        Self {
            port,
            client: reqwest::Client::new(),
            clock,
            store,
            channels,
            app_state,
            shutdown,
            server: Some(server),
            dir: Some(dir),
            pg,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn channel(&self, id: &str) -> &Channel {
        self.channels.get(id).expect("configured channel")
    }

    /// POSTs a built request to a channel's callback URL. Returns once the event's
    /// after-handlers (stage check, state rules), which run after the answer, are done too.
    pub async fn post(&self, channel_id: &str, request: &send::BuiltRequest) -> reqwest::Response {
        let response = self.post_unsettled(channel_id, request).await;
        self.settle().await;
        response
    }

    /// POSTs a built request and returns with the answer, after-handlers or not.
    pub async fn post_unsettled(
        &self,
        channel_id: &str,
        request: &send::BuiltRequest,
    ) -> reqwest::Response {
        let mut url = self.url(&format!("/callbacks/{channel_id}"));
        if !request.query.is_empty() {
            url = format!("{url}?{}", request.query);
        }
        let mut builder = self.client.post(url).body(request.body.clone());
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        builder.send().await.expect("request")
    }

    /// Waits until the after-handlers of every event handled so far are done.
    pub async fn settle(&self) {
        self.app_state.ingress.after_handlers_settled().await;
    }

    /// Builds the callback the platform would send for `what`, at the clock's current time.
    pub fn build(&self, channel_id: &str, what: &Simulated) -> send::BuiltRequest {
        let channel = self.channel(channel_id);
        let ts = self.clock.now_ms() / 1000;
        let inner = send::inner_payload(channel, what, ts).expect("payload");
        send::build_request(channel, &inner, ts, &format!("{}", rand::random::<u32>()))
            .expect("request")
    }

    /// Sends a text and returns (status, decrypted reply text).
    pub async fn send_text(
        &self,
        channel_id: &str,
        from: &str,
        group: Option<&str>,
        text: &str,
        msg_id: &str,
    ) -> (u16, Option<String>) {
        let what = Simulated::Text {
            from: from.into(),
            name: None,
            group: group.map(str::to_owned),
            text: text.into(),
            msg_id: msg_id.into(),
        };
        let request = self.build(channel_id, &what);
        let response = self.post(channel_id, &request).await;
        let status = response.status().as_u16();
        let body = response.bytes().await.expect("body");
        let reply = if status == 200 {
            send::open_reply(self.channel(channel_id), &body).expect("reply opens")
        } else {
            None
        };
        (status, reply)
    }

    /// A member named `用户{user}` says `text` to the demo group robot; returns the reply text
    /// (empty when there is none).
    pub async fn robot_say(
        &self,
        user: &str,
        group: Option<&str>,
        text: &str,
        msg_id: &str,
    ) -> String {
        let what = Simulated::Text {
            from: user.into(),
            name: Some(format!("用户{user}")),
            group: group.map(str::to_owned),
            text: text.into(),
            msg_id: msg_id.into(),
        };
        let response = self
            .post("demo_robot", &self.build("demo_robot", &what))
            .await;
        assert_eq!(response.status(), 200);
        let body = response.bytes().await.expect("body");
        send::open_reply(self.channel("demo_robot"), &body)
            .expect("opens")
            .unwrap_or_default()
    }

    /// POSTs JSON to an API path with a bearer token: the status and the JSON answer (null when
    /// the answer is not JSON).
    pub async fn api_post(
        &self,
        path: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let response = self
            .client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    /// Any API call with a bearer token and a JSON body (none when `body` is null): the status
    /// and the JSON answer (null when it is not JSON).
    pub async fn api_call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut builder = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        if !body.is_null() {
            builder = builder.json(body);
        }
        let response = builder.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    pub async fn inbox_count(&self) -> i64 {
        self.store.inbox_count().await.expect("count")
    }

    /// Runs one SQL statement with integer parameters (`$1`, `$2`…) on the app's database.
    pub async fn execute_sql(&self, sql: &str, params: &[i64]) {
        yunying::on_pool!(self.store.pool(), p => {
            let mut query = sqlx::query(sql);
            for v in params {
                query = query.bind(*v);
            }
            query.execute(p).await.map(|_| ())
        })
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The first column of every row a query returns.
    pub async fn query_column<T>(&self, sql: &str) -> Vec<T>
    where
        T: Send
            + Unpin
            + for<'r> sqlx::Decode<'r, sqlx::Sqlite>
            + sqlx::Type<sqlx::Sqlite>
            + for<'r> sqlx::Decode<'r, sqlx::Postgres>
            + sqlx::Type<sqlx::Postgres>,
    {
        yunying::on_pool!(self.store.pool(), p => sqlx::query_scalar(sql).fetch_all(p).await)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Stops the server and waits for it (graceful shutdown). Its database stays as long as
    /// the returned value lives.
    pub async fn stop(mut self) -> Stopped {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server result");
        }
        Stopped {
            database_url: self.database_url(),
            _dir: self.dir.take(),
            _pg: self.pg.take(),
        }
    }
}

/// What a stopped [`TestApp`] leaves: its database, to look at after shutdown.
pub struct Stopped {
    pub database_url: String,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<PgDatabase>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
