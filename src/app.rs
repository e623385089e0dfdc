//! Wiring: connect and migrate the store, build the state, bind the listener (port 0 in tests),
//! spawn the group-commit writers, the sweeper, the outbox and the scheduler, serve until stopped, then shut down in order.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::bot::BotContext;
use crate::chain::{Chain, Services};
use crate::channels::Channels;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::ingress::{Ingress, IngressOptions};
use crate::state::{AppParts, AppState};
use crate::store::writer::{InboxWriter, WriterOptions, WriterThread};
use crate::store::{Backend, Store, StoreOptions};
use crate::telemetry::Metrics;
use crate::templates::Templates;

/// The domains' configuration checks, run with the configuration's own at every load.
pub const CONFIG_CHECKS: &[crate::config::Check] = &[
    crate::members::rule_spec::check_config,
    crate::recall::check_config,
];

/// Loads the configuration with every domain's checks (what `serve` and `check-config` use).
pub fn load_config(
    file: Option<&Path>,
) -> Result<crate::config::LoadedConfig, crate::config::ConfigError> {
    crate::config::load_checked(file, CONFIG_CHECKS)
}

/// A built application, listening but not yet serving.
pub struct App {
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
    /// Stops the writers, after the server, the after-handlers and the background jobs.
    writers_stop: CancellationToken,
    writers: WriterThread,
    background: Vec<JoinHandle<()>>,
}

fn store_options(config: &Config) -> StoreOptions {
    StoreOptions {
        max_connections: config.database.max_connections,
        acquire_timeout: Duration::from_millis(config.database.acquire_timeout_ms),
        sqlite_full_sync: config.database.sqlite_synchronous == "full",
        open_all: false,
        ping_before_use: true,
    }
}

/// Connects to the configured database and applies migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    open_store_with(config, &store_options(config)).await
}

async fn open_store_with(config: &Config, options: &StoreOptions) -> anyhow::Result<Store> {
    let store = Store::connect(config.database.url.expose(), options)
        .await
        .context("connecting to the database")?;
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}

impl App {
    /// Builds everything and binds `server.listen`. Nothing is served until
    /// [`App::run_until_stopped`].
    pub async fn build(config: Config, clock: SharedClock) -> anyhow::Result<Self> {
        Self::build_with(config, clock, Chain::Standard).await
    }

    /// [`App::build`] with a chosen handler chain (tests add handlers that fail on purpose).
    pub async fn build_with(
        config: Config,
        clock: SharedClock,
        chain: Chain,
    ) -> anyhow::Result<Self> {
        let config = Arc::new(config);
        let templates = Templates::load(Path::new(&config.templates.dir))?;
        let channels = Arc::new(Channels::from_config(&config).context("channel keys")?);
        let server_store = StoreOptions {
            open_all: true,
            ..store_options(&config)
        };
        let store = open_store_with(&config, &server_store).await?;
        seed_catalog(&store, &config, clock.now_ms()).await?;
        let metrics = Metrics::new(channels.ids());
        // Made before the writer: the group commit records new members' first stages with it.
        let stages = matches!(chain, Chain::Standard).then(|| crate::chain::stage_check(&config));
        let shutdown = CancellationToken::new();
        // The writers stop last: the after-handlers and background jobs still write through them.
        let writers_stop = CancellationToken::new();

        let rules = Arc::new(crate::ingress::rules::InboxRules {
            timezone: config.timezone(),
            first_stages: stages.as_ref().map(|s| s.first_stages()),
            metrics: metrics.clone(),
        });
        let (writer, writer_thread) =
            start_writer(&config, &server_store, rules, writers_stop.clone())?;
        let services = make_services(&config, &channels, &store, &writer, &clock).await?;
        let dispatcher = match (chain, stages) {
            (Chain::Standard, Some(stages)) => crate::chain::standard(&config, &services, stages),
            (Chain::Custom(make), _) => make(crate::bot::Dispatcher::default(), &services),
            (Chain::Standard, None) => {
                crate::chain::standard(&config, &services, crate::chain::stage_check(&config))
            }
        };
        let bot = BotContext {
            writer: writer.clone(),
            store: store.clone(),
            templates,
            clock,
            timezone: config.timezone(),
        };
        let ingress = Ingress::new(
            Arc::clone(&channels),
            writer,
            dispatcher,
            bot,
            services.outbox.clone(),
            metrics.clone(),
            ingress_options(&config),
        );
        let listener = TcpListener::bind(&config.server.listen)
            .await
            .with_context(|| format!("binding {}", config.server.listen))?;
        let state = AppState::new(AppParts {
            config,
            store,
            ingress,
            metrics,
            faq: Arc::clone(&services.faq),
            outbox: services.outbox.clone().context("the outbox")?,
            recall: services.recall.clone().context("the recall plans")?,
        });
        let background = spawn_background(&state, &shutdown)?;
        Ok(Self {
            listener,
            state,
            shutdown,
            writers_stop,
            writers: writer_thread,
            background,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Cancelling this token stops the server gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token fires; in-flight requests finish, queued writes are
    /// committed, then the pool closes.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            listener,
            state,
            shutdown,
            writers_stop,
            writers,
            background,
        } = self;
        let grace = Duration::from_secs(state.config.server.shutdown_grace_secs);
        let router = crate::web::router(state.clone());
        let stop = shutdown.clone();
        let limits = crate::web::serve::Limits::from_config(&state.config.server);
        let result = crate::web::serve::serve(listener, router, limits, stop, grace).await;
        shutdown.cancel();
        let _ = tokio::time::timeout(grace, async {
            state.ingress.after_handlers_settled().await;
            for handle in background {
                let _ = handle.await;
            }
        })
        .await;
        // Then the writers commit what is queued and stop.
        writers_stop.cancel();
        let _ =
            tokio::time::timeout(grace, tokio::task::spawn_blocking(move || writers.join())).await;
        state.store.close().await;
        result.context("HTTP server")
    }
}

/// The services handlers are built with: the FAQ index, the outbox (on SQLite its writes queue
/// behind the group commits, one writer per file) and the recall plans (stored ones loaded).
async fn make_services(
    config: &Arc<Config>,
    channels: &Arc<Channels>,
    store: &Store,
    writer: &InboxWriter,
    clock: &SharedClock,
) -> anyhow::Result<Services> {
    let faq = crate::faq::FaqService::new(config.faq.clone());
    let outbox_writer = (store.backend() == Backend::Sqlite).then(|| writer.clone());
    let outbox = crate::outbox::Outbox::new(
        Arc::clone(config),
        Arc::clone(channels),
        store.clone(),
        outbox_writer,
        clock.clone(),
    )
    .context("outbox")?;
    let recall = Arc::new(crate::recall::Plans::new(crate::recall::RecallContext {
        store: store.clone(),
        config: Arc::clone(config),
        channels: Arc::clone(channels),
        outbox: Some(outbox.clone()),
    }));
    recall
        .reload()
        .await
        .context("loading stored recall plans")?;
    Ok(Services {
        faq,
        outbox: Some(outbox),
        recall: Some(recall),
    })
}

/// Adds the configured catalog items the database does not have yet.
async fn seed_catalog(store: &Store, config: &Config, now_ms: i64) -> anyhow::Result<()> {
    let items: Vec<_> = config
        .points
        .items
        .iter()
        .map(crate::points::redemption::catalog_item)
        .collect();
    crate::store::redemption::seed_items(store, &items, now_ms)
        .await
        .context("seeding the reward catalog")
}

/// The group-commit writers on a thread of their own. One writer on both databases: SQLite has
/// one write lock, and on PostgreSQL one writer's batches grow with the load while each callback
/// costs the database less (docs/benchmarks.md §2).
fn start_writer(
    config: &Config,
    server_store: &StoreOptions,
    rules: Arc<crate::ingress::rules::InboxRules>,
    stop: CancellationToken,
) -> anyhow::Result<(InboxWriter, WriterThread)> {
    let writers = config.database.writers.max(1);
    let writer_store = StoreOptions {
        // One more for the batched writes (sign-ins) on PostgreSQL.
        max_connections: u32::try_from(writers + 1).unwrap_or(5),
        ping_before_use: false,
        ..server_store.clone()
    };
    InboxWriter::spawn_dedicated(
        config.database.url.expose(),
        &writer_store,
        WriterOptions {
            batch_max: config.database.batch_max,
            writers,
            rules,
        },
        stop,
    )
    .context("starting the inbox writer")
}

fn ingress_options(config: &Config) -> IngressOptions {
    IngressOptions {
        replay_window_secs: config.server.replay_window_secs,
        handler_budget: Duration::from_millis(config.server.handler_budget_ms),
        sweep_after: Duration::from_secs(
            u64::try_from(config.server.sweep_after_secs).unwrap_or(60),
        ),
        future_skew_secs: config.server.future_skew_secs,
        past_skew_secs: config.server.past_skew_secs,
        response_url_hosts: config.aibot.response_url_hosts.clone(),
        max_attempts: config.server.handler_max_attempts,
    }
}

/// The sweeper, the scheduler, the AI bots' connections, the outbox workers and the tag mirror.
fn spawn_background(
    state: &AppState,
    shutdown: &CancellationToken,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let mut background = vec![tokio::spawn(sweeper(
        state.ingress.clone(),
        shutdown.clone(),
    ))];
    let now = state.ingress.clock().now_ms();
    let runner =
        crate::scheduler::runner::Runner::new(state.clone(), Arc::clone(&state.recall), now)?;
    if state.config.scheduler.enabled {
        background.push(runner.spawn(shutdown.clone()));
    }
    background.extend(crate::aibot::spawn_all(
        &state.config,
        &state.ingress,
        &state.store,
        &state.ingress.clock().clone(),
        state.outbox.aibot_links(),
        shutdown,
    ));
    if state.config.outbox.enabled {
        background.push(state.outbox.spawn(shutdown.clone()));
    }
    if crate::members::tag_sync::sync_channels(&state.config)
        .next()
        .is_some()
    {
        background.push(tokio::spawn(tag_mirror(state.clone(), shutdown.clone())));
    }
    Ok(background)
}

/// Re-runs accepted but unprocessed deliveries now and then (crash recovery).
async fn sweeper(ingress: Ingress, shutdown: CancellationToken) {
    // The first round after one period, not at start-up: nothing can be overdue yet.
    let period = Duration::from_secs(10);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        match ingress.sweep().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "sweeper re-ran unprocessed deliveries"),
            Err(e) => tracing::warn!(error = %e, "sweeper failed"),
        }
    }
}

/// Mirrors local changes of WeCom-mapped tags to WeCom (through the outbox) every few seconds.
async fn tag_mirror(state: AppState, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        match crate::members::tag_sync::mirror(&state.outbox, &state.store, &state.config).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(queued = n, "tag changes queued for WeCom"),
            Err(e) => tracing::warn!(error = %e, "tag mirror failed"),
        }
    }
}

/// Cancels `token` on Ctrl-C or SIGTERM.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            if let Ok(mut s) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            {
                s.recv().await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            () = term => {}
        }
        tracing::info!("shutting down");
        token.cancel();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad_rule() -> crate::config::TagRuleConfig {
        crate::config::TagRuleConfig {
            id: "r".into(),
            when: "regex".into(),
            pattern: "(unclosed".into(),
            add: vec!["x".into()],
            remove: Vec::new(),
        }
    }

    #[test]
    fn the_example_passes_every_domain_check_and_a_bad_rule_is_named() {
        let mut config = crate::config::Config::example().expect("example");
        let clean: Vec<(String, String)> = CONFIG_CHECKS.iter().flat_map(|c| c(&config)).collect();
        assert!(clean.is_empty(), "the example passes: {clean:?}");
        config.tag_rules.push(bad_rule());
        let issues: Vec<(String, String)> = CONFIG_CHECKS.iter().flat_map(|c| c(&config)).collect();
        assert!(
            issues
                .iter()
                .any(|(k, r)| k.ends_with(".pattern") && r.contains("not a valid regex")),
            "{issues:?}"
        );
    }
}
