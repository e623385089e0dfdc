//! The `yunying` command line: `serve`, `migrate`, `check-config`, `config-example`, `send`,
//! `sync`, `demo`, `fake-wecom`, `faq`, `recall`.

mod members_cmd;
mod sync_cmd;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::app::{self, App};
use crate::channels::Channels;
use crate::clock::{Clock as _, SystemClock};
use crate::config::{self, Config};
use crate::send::{self, Simulated};

#[derive(Debug, Parser)]
#[command(
    name = "yunying",
    version,
    about = "运营 — community-operations assistant for WeCom and WeChat groups"
)]
pub struct Cli {
    /// Configuration file (TOML). Without it the built-in defaults (config.example.toml) apply.
    #[arg(long, global = true, env = "YUNYING_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the webhook server (migrations are applied first).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Validate the configuration and print it with secrets hidden.
    CheckConfig,
    /// Print the example configuration (the built-in defaults).
    ConfigExample,
    /// Send a signed, encrypted callback to a running server and print the reply.
    Send(SendArgs),
    /// See it work without a WeCom account: the real server and a local WeCom stand-in, driven
    /// by a scripted community (welcome, sign-in, FAQ, an ops command, a push).
    Demo,
    /// Import the member registry from WeCom: customers, customer groups and staff names
    /// (resumable; a second run changes only what changed).
    Sync(sync_cmd::SyncArgs),
    /// Run the local WeCom / MP API stand-in (for trying outbound messages and for tests).
    FakeWecom {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: String,
        /// Fill the directory with this many generated customers (for trying `sync`).
        #[arg(long, default_value_t = 0)]
        customers: usize,
        /// And this many generated customer groups.
        #[arg(long, default_value_t = 0)]
        groups: usize,
    },
    /// FAQ knowledge base tools.
    #[command(subcommand)]
    Faq(FaqCommand),
    /// Members: import a community that lives elsewhere from a CSV.
    #[command(subcommand)]
    Members(members_cmd::MembersCommand),
    /// Lapsed-member recall: preview a plan (nothing sent) or show its results.
    #[command(subcommand)]
    Recall(RecallCommand),
}

#[derive(Debug, Subcommand)]
pub enum RecallCommand {
    /// How many members a run would touch now, who is held out, and sample messages. Nothing is
    /// sent or recorded.
    Preview { plan: String },
    /// Touched vs held-out members per touch, recall rates and lift.
    Stats { plan: String },
}

#[derive(Debug, Subcommand)]
pub enum FaqCommand {
    /// Measure the matcher on labelled questions: top-1, top-3, MRR, index build time, latency.
    Eval {
        /// Knowledge base, JSON lines: {"id", "question", "similar"?: [...]}.
        #[arg(long)]
        faqs: PathBuf,
        /// Labelled questions, JSON lines: {"query", "faq_id"}.
        #[arg(long)]
        queries: PathBuf,
        /// Rank by plain character BM25 (the baseline) instead of the re-ranker.
        #[arg(long)]
        baseline: bool,
    },
    /// Import entries from a .csv, .json or .jsonl file into the database (re-import updates by id).
    Import { file: PathBuf },
    /// Write the knowledge base to stdout (or --out) as JSON lines or CSV.
    Export {
        #[arg(long, value_parser = ["jsonl", "csv"], default_value = "jsonl")]
        format: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Rank the knowledge base's entries for one question, with scores and the decision.
    Ask {
        /// Use this JSON-lines file instead of the database: {"id", "question", "similar"?: [...]}.
        #[arg(long)]
        faqs: Option<PathBuf>,
        /// The question.
        question: String,
        /// How many candidates to show.
        #[arg(long, default_value_t = 5)]
        top: usize,
    },
}

#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// Channel id from the configuration, e.g. demo_robot.
    #[arg(long)]
    pub channel: String,
    /// Sender's platform user id.
    #[arg(long, default_value = "zhangsan")]
    pub from: String,
    /// Sender's display name (robot and gateway channels carry one).
    #[arg(long)]
    pub name: Option<String>,
    /// Group chat id; omit for a one-to-one message.
    #[arg(long)]
    pub group: Option<String>,
    /// Message text.
    #[arg(long, conflicts_with_all = ["join", "verify"])]
    pub text: Option<String>,
    /// Send a "members joined the group" event for --from (requires --group).
    #[arg(long, requires = "group")]
    pub join: bool,
    /// Perform URL verification (GET with echostr) instead of a delivery.
    #[arg(long)]
    pub verify: bool,
    /// Platform message id (default: random). Repeat a value to simulate a retry.
    #[arg(long)]
    pub msg_id: Option<String>,
    /// Server base URL (default: http:// + server.listen).
    #[arg(long)]
    pub url: Option<String>,
}

/// Runs a parsed command; errors are printed, not panicked.
pub async fn run(cli: Cli) -> ExitCode {
    let loaded = match crate::app::load_config(cli.config.as_deref()) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut log = loaded.config.log.clone();
    if matches!(cli.command, Command::Demo) {
        // The demo prints a conversation; routine log lines would drown it.
        log.level = "warn".into();
    }
    crate::telemetry::init(&log);
    let result = match cli.command {
        Command::Serve => serve(loaded.config).await,
        Command::Migrate => migrate(&loaded.config).await,
        Command::CheckConfig => {
            check_config(&loaded);
            Ok(())
        }
        Command::ConfigExample => {
            print!("{}", config::EXAMPLE_TOML);
            Ok(())
        }
        Command::Send(args) => send_cmd(&loaded.config, &args).await,
        Command::Faq(command) => faq_cmd(&loaded.config, command).await,
        Command::Demo => crate::demo::run().await,
        Command::Recall(command) => recall_cmd(&loaded.config, command).await,
        Command::Sync(args) => sync_cmd::run(&loaded.config, &args).await,
        Command::Members(command) => members_cmd::run(&loaded.config, command).await,
        Command::FakeWecom {
            listen,
            customers,
            groups,
        } => fake_wecom(&listen, customers, groups).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn faq_cmd(config: &Config, command: FaqCommand) -> anyhow::Result<()> {
    use crate::faq::{eval, import};
    match command {
        FaqCommand::Eval {
            faqs,
            queries,
            baseline,
        } => {
            let entries = eval::read_entries(&faqs)?;
            let queries = eval::read_queries(&queries)?;
            let ranking = if baseline {
                eval::Ranking::Bm25Only
            } else {
                eval::Ranking::Reranked
            };
            println!("{}", eval::evaluate(entries, &queries, ranking));
        }
        FaqCommand::Import { file } => faq_import(config, &file).await?,
        FaqCommand::Export { format, out } => {
            let store = app::open_store(config).await?;
            let entries = store.faq_entries(false).await?;
            let mut sink: Box<dyn std::io::Write> = match &out {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("creating {}", path.display()))?,
                )),
                None => Box::new(std::io::stdout().lock()),
            };
            import::export(&entries, format == "csv", &mut sink)?;
            sink.flush()?;
        }
        FaqCommand::Ask {
            faqs,
            question,
            top,
        } => faq_ask(config, faqs.as_deref(), &question, top).await?,
    }
    Ok(())
}

/// `yunying faq import FILE`: rejected rows are reported with their line, and fail the command.
async fn faq_import(config: &Config, file: &std::path::Path) -> anyhow::Result<()> {
    use crate::faq::import;
    let parsed = import::parse_file(file)?;
    for w in &parsed.warnings {
        eprintln!("warning: {}: {w}", file.display());
    }
    let store = app::open_store(config).await?;
    let now = SystemClock.now_ms();
    let done = import::import(&store, &parsed.rows, now, import::progress_bar)
        .await
        .context("writing entries")?;
    println!(
        "{}: {} created, {} updated, {} rejected",
        file.display(),
        done.created,
        done.updated,
        parsed.rejected.len()
    );
    for r in &parsed.rejected {
        println!("  {}:{}: {}", file.display(), r.line, r.reason);
    }
    if !parsed.rejected.is_empty() {
        anyhow::bail!("{} rows rejected", parsed.rejected.len());
    }
    Ok(())
}

/// `yunying faq ask QUESTION`: the ranked candidates and what the bot would do.
async fn faq_ask(
    config: &Config,
    faqs: Option<&std::path::Path>,
    question: &str,
    top: usize,
) -> anyhow::Result<()> {
    use crate::faq::{eval, service};
    let snapshot = match faqs {
        Some(path) => {
            let entries = eval::read_entries(path)?
                .into_iter()
                .enumerate()
                .map(|(i, e)| crate::store::faq::FaqEntry {
                    id: i64::try_from(i).unwrap_or_default(),
                    external_id: Some(e.id),
                    question: e.questions[0].clone(),
                    similar: e.questions[1..].to_vec(),
                    keywords: Vec::new(),
                    answer: String::new(),
                    category: None,
                    enabled: true,
                    hit_count: 0,
                    updated_at: 0,
                })
                .collect();
            service::build(entries, &config.faq.synonyms)
        }
        None => {
            let store = app::open_store(config).await?;
            service::build(store.faq_entries(true).await?, &config.faq.synonyms)
        }
    };
    let ranked = snapshot.rank(question, top);
    let confidence = ranked.first().map_or(0.0, |(c, _)| c.confidence);
    let decision = if confidence >= config.faq.answer_threshold {
        "answer 直接回答"
    } else if confidence >= config.faq.suggest_threshold {
        "suggest 您是不是想问"
    } else {
        "unanswered 记录为未解答"
    };
    println!("confidence {confidence:.2} → {decision}");
    for (i, (c, e)) in ranked.iter().enumerate() {
        let id = e.external_id.clone().unwrap_or_else(|| e.id.to_string());
        println!("{}. [{id}] {:.3}  {}", i + 1, c.score, c.question);
    }
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let channels: Vec<String> = config
        .channels
        .iter()
        .filter(|(_, c)| c.enabled)
        .map(|(id, c)| format!("{id} ({})", c.kind.as_str()))
        .collect();
    let app = App::build(config, Arc::new(SystemClock)).await?;
    app::cancel_on_signal(app.shutdown_token());
    tracing::info!(port = app.port(), backend = ?app.state().store.backend(), channels = %channels.join(", "), "yunying is listening");
    app.run_until_stopped().await
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    let store = app::open_store(config).await?;
    println!("migrations applied ({:?})", store.backend());
    store.close().await;
    Ok(())
}

fn check_config(loaded: &config::LoadedConfig) {
    let source = loaded.file.as_ref().map_or_else(
        || "built-in defaults".to_owned(),
        |p| p.display().to_string(),
    );
    println!("# configuration OK (from {source}, with YUNYING_* overrides); secrets shown as ***");
    print!("{}", loaded.config.to_redacted_toml());
    println!("\n# What each enabled channel sees (成员活动可见范围):");
    for (id, c) in loaded.config.channels.iter().filter(|(_, c)| c.enabled) {
        println!("#   {id} ({}): {}", c.kind.as_str(), c.kind.sees());
    }
}

async fn send_cmd(config: &Config, args: &SendArgs) -> anyhow::Result<()> {
    let channels = Channels::from_config(config).context("channel keys")?;
    let channel = channels.get(&args.channel).with_context(|| {
        format!(
            "no enabled channel `{}` (configured: {})",
            args.channel,
            channels.ids().collect::<Vec<_>>().join(", ")
        )
    })?;
    let base = args
        .url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.server.listen));
    let url = format!("{}/callbacks/{}", base.trim_end_matches('/'), channel.id);
    let now = SystemClock.now_secs();
    let nonce = format!("{}", rand::random::<u32>());
    let client = reqwest::Client::new();

    if args.verify {
        return verify_url(&client, &url, channel, now, &nonce).await;
    }

    let what = simulated(args)?;
    let inner = send::inner_payload(channel, &what, now)?;
    let request = send::build_request(channel, &inner, now, &nonce)?;
    let mut builder = client
        .post(if request.query.is_empty() {
            url.clone()
        } else {
            format!("{url}?{}", request.query)
        })
        .body(request.body);
    for (name, value) in &request.headers {
        builder = builder.header(*name, value);
    }
    let response = builder.send().await.context("sending")?;
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    println!("POST {url} → {status}");
    anyhow::ensure!(
        status.is_success(),
        "refused: {}",
        String::from_utf8_lossy(&body)
    );
    match send::open_reply(channel, &body)? {
        Some(text) => println!("reply: {text}"),
        None => println!("(no reply)"),
    }
    Ok(())
}

/// `yunying send --verify`: the URL verification the console does, checked like the platform.
async fn verify_url(
    client: &reqwest::Client,
    url: &str,
    channel: &crate::channels::Channel,
    now: i64,
    nonce: &str,
) -> anyhow::Result<()> {
    let (query, echo) = send::build_verification(channel, now, nonce)?;
    let response = client
        .get(format!("{url}?{query}"))
        .send()
        .await
        .context("sending")?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    println!("GET {url} → {status}");
    anyhow::ensure!(status.is_success(), "verification refused: {body}");
    anyhow::ensure!(
        body == echo,
        "server answered `{body}`, expected the echo `{echo}`"
    );
    println!("URL verification OK: echo {echo}");
    Ok(())
}

/// What `yunying send` plays: a member joining (`--join`) or a text.
fn simulated(args: &SendArgs) -> anyhow::Result<Simulated> {
    if args.join {
        return Ok(Simulated::Join {
            group: args.group.clone().unwrap_or_default(),
            members: vec![args.from.clone()],
        });
    }
    let text = args
        .text
        .clone()
        .context("give --text, --join or --verify")?;
    Ok(Simulated::Text {
        from: args.from.clone(),
        name: args.name.clone(),
        group: args.group.clone(),
        text,
        msg_id: args
            .msg_id
            .clone()
            .unwrap_or_else(|| format!("{}", rand::random::<u32>())),
    })
}

async fn fake_wecom(listen: &str, customers: usize, groups: usize) -> anyhow::Result<()> {
    let fake = crate::fake_wecom::FakeWecom::start(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    if customers > 0 || groups > 0 {
        fake.generate(crate::fake_wecom::Community {
            customers,
            groups,
            ..crate::fake_wecom::Community::default()
        });
        println!("Directory: {customers} generated customers, {groups} customer groups.");
    }
    println!(
        "WeCom stand-in on {} — set api.wecom_base and api.mp_base to this address.",
        fake.base_url()
    );
    println!(
        "Inspect: GET /_fake/deliveries, /_fake/requests, /_fake/stats; faults: POST /_fake/faults"
    );
    tokio::signal::ctrl_c().await.ok();
    Ok(())
}

async fn recall_cmd(config: &Config, command: RecallCommand) -> anyhow::Result<()> {
    let store = app::open_store(config).await?;
    let plans = crate::recall::Plans::new(crate::recall::RecallContext {
        store: store.clone(),
        config: Arc::new(config.clone()),
        channels: Arc::new(Channels::from_config(config).context("channel keys")?),
        outbox: None,
    });
    let id = match &command {
        RecallCommand::Preview { plan } | RecallCommand::Stats { plan } => plan.clone(),
    };
    plans.reload().await?;
    let plan = plans.get(&id).with_context(|| {
        let ids: Vec<String> = plans.all().iter().map(|p| p.id().to_owned()).collect();
        format!("no enabled recall plan `{id}` (plans: {})", ids.join(", "))
    })?;
    match command {
        RecallCommand::Preview { .. } => {
            let r = crate::recall::run(&plans.ctx, &plan, SystemClock.now_ms(), true).await?;
            println!(
                "plan {}: {} eligible now — {} would be touched, {} held out; {} waiting (cooldown or not idle long enough), {} had every touch",
                r.plan, r.eligible, r.touched, r.held_out, r.waiting, r.exhausted
            );
            if !r.held_out_sample.is_empty() {
                println!("held out: {}", r.held_out_sample.join(", "));
            }
            for (user, text) in &r.samples {
                println!("  → {user}: {text}");
            }
        }
        RecallCommand::Stats { .. } => {
            let touches = crate::recall::stats::plan_stats(&store, &id).await?;
            if touches.is_empty() {
                println!("plan {id}: no touches yet");
            }
            for t in touches {
                let ci = t.lift_ci95.map_or_else(
                    || "n/a".to_owned(),
                    |(lo, hi)| format!("[{:+.1}, {:+.1}] pp", lo * 100.0, hi * 100.0),
                );
                println!(
                    "touch {}: touched {} (recalled {}, {:.1} %), held out {} (recalled {}, {:.1} %), lift {:+.1} pp, 95 % CI {ci}",
                    t.touch, t.touched, t.recalled_touched, t.rate_touched * 100.0, t.held_out,
                    t.recalled_held_out, t.rate_held_out * 100.0, t.lift * 100.0
                );
            }
        }
    }
    Ok(())
}
