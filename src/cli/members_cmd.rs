//! `yunying members import`: members of a community that lives elsewhere, from a CSV.

use std::path::PathBuf;

use crate::clock::{Clock as _, SystemClock};
use crate::config::Config;
use crate::members::import;

#[derive(Debug, clap::Subcommand)]
pub enum MembersCommand {
    /// Import members from a CSV (UTF-8 with or without BOM, or GBK as Excel saves it): columns
    /// id (required), name, tags (separated by | or ；), joined (2024-03-01), points, reason.
    Import {
        file: PathBuf,
        /// The community (scope) the members belong to, e.g. the gateway channel's scope.
        #[arg(long)]
        scope: String,
    },
}

pub async fn run(config: &Config, command: MembersCommand) -> anyhow::Result<()> {
    let MembersCommand::Import { file, scope } = command;
    let (text, encoding) = crate::textfile::read(&file)?;
    let now = SystemClock.now_ms();
    let tz = config.timezone();
    let parsed =
        import::parse(&text, tz, now).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    if encoding == "GBK" {
        eprintln!("warning: {}: the file is GBK; read as such", file.display());
    }
    for w in &parsed.warnings {
        eprintln!("warning: {}: {w}", file.display());
    }
    let store = crate::app::open_store(config).await?;
    let day = crate::members::local_day(tz, now / 1000);
    let (done, notes) = import::import(&store, &scope, &parsed.rows, day, now).await?;
    store.close().await;
    println!(
        "{}: {} created, {} updated, {} unchanged, opening points for {}, {} rejected",
        file.display(),
        done.created,
        done.updated,
        done.unchanged,
        done.points_credited,
        parsed.rejected.len()
    );
    for r in notes.iter().chain(&parsed.rejected) {
        println!("  {}:{}: {}", file.display(), r.line, r.reason);
    }
    if !parsed.rejected.is_empty() {
        anyhow::bail!("{} rows rejected", parsed.rejected.len());
    }
    Ok(())
}
