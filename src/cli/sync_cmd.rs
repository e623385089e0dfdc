//! `yunying sync`: the member registry from WeCom, with a progress line and a report.

use std::io::{IsTerminal as _, Write as _};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;

use crate::channels::Channels;
use crate::clock::{Clock as _, SharedClock, SystemClock};
use crate::config::Config;
use crate::members::sync::{self, ChannelReport, Progress, SyncSetup, What};

#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// Channels to sync (repeat or separate with commas); default: every `wecom_app` with a secret.
    #[arg(long, value_delimiter = ',')]
    pub channel: Vec<String>,
    /// What to sync: contacts, groups, staff (comma-separated); default: `[sync] what`.
    #[arg(long, value_delimiter = ',')]
    pub what: Vec<String>,
}

fn kinds(args: &SyncArgs, config: &Config) -> anyhow::Result<Vec<What>> {
    if args.what.is_empty() {
        return Ok(sync::configured_kinds(&config.sync));
    }
    args.what
        .iter()
        .map(|w| {
            What::parse(w)
                .with_context(|| format!("--what: `{w}` is not one of contacts, groups, staff"))
        })
        .collect()
}

fn kind_zh(what: What) -> &'static str {
    match what {
        What::Contacts => "客户",
        What::Groups => "客户群",
        What::Staff => "成员姓名",
    }
}

/// Prints progress: one line rewritten in place on a terminal, a log line every 1,000 items
/// otherwise.
fn progress_printer() -> impl Fn(&str, &Progress) + Send + Sync {
    let tty = std::io::stderr().is_terminal();
    let logged = Mutex::new(0_i64);
    move |channel: &str, p: &Progress| {
        let t = p.tally;
        if tty {
            eprint!(
                "\r{channel} {}：已处理 {}（新建 {}，更新 {}，未变 {}，错误 {}）",
                kind_zh(p.what),
                p.done,
                t.created,
                t.updated,
                t.unchanged,
                t.errors
            );
            let _ = std::io::stderr().flush();
            return;
        }
        let mut last = logged.lock().unwrap_or_else(|e| e.into_inner());
        if p.done / 1000 > *last / 1000 {
            *last = p.done;
            tracing::info!(
                channel,
                what = p.what.as_str(),
                done = p.done,
                created = t.created,
                updated = t.updated,
                "sync progress"
            );
        }
    }
}

fn print_report(reports: &[ChannelReport]) -> bool {
    eprintln!();
    let mut ok = true;
    for r in reports {
        println!("{}（{}）", r.channel_id, r.scope);
        for k in &r.kinds {
            let t = k.tally;
            let resumed = if k.resumed {
                "（接着上次的进度）"
            } else {
                ""
            };
            println!(
                "  {}{resumed}：新建 {}，更新 {}，未变 {}，消失 {}，错误 {}",
                kind_zh(k.what),
                t.created,
                t.updated,
                t.unchanged,
                t.gone,
                t.errors
            );
            println!(
                "    用时 {:.1} 秒，其中等待企业微信接口 {:.1} 秒",
                k.elapsed_ms as f64 / 1000.0,
                k.api_wait_ms as f64 / 1000.0
            );
            if let Some(reason) = &k.stopped {
                ok = false;
                println!("  ⚠ 未完成：{reason}。再次运行 yunying sync 会从中断处继续。");
            }
        }
    }
    ok
}

pub async fn run(config: &Config, args: &SyncArgs) -> anyhow::Result<()> {
    let what = kinds(args, config)?;
    let store = crate::app::open_store(config).await?;
    let clock: SharedClock = Arc::new(SystemClock);
    let outbox = crate::outbox::Outbox::new(
        Arc::new(config.clone()),
        Arc::new(Channels::from_config(config).context("channel keys")?),
        store.clone(),
        None,
        clock.clone(),
    )?;
    let printer = progress_printer();
    let setup = SyncSetup {
        outbox: &outbox,
        store: &store,
        clock: clock.clone(),
        config,
        progress: &printer,
    };
    let reports = sync::sync_channels(&setup, &args.channel, &what).await?;
    if reports.is_empty() {
        anyhow::bail!("no channel can sync: configure a wecom_app channel with corp_id and secret");
    }
    let ok = print_report(&reports);
    // Stages, layers and state tag rules for the imported and vanished members.
    crate::scheduler::jobs::maintenance_of(
        &store,
        config,
        SystemClock.now_ms(),
        crate::store::windows::MEMBER_WINDOW,
    )
    .await?;
    store.close().await;
    if !ok {
        anyhow::bail!("sync did not finish");
    }
    Ok(())
}
