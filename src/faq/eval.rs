//! `yunying faq eval`: accuracy and latency of the matcher on a labelled question set.
//! Knowledge base: JSON lines `{"id", "question", "similar"?: [...]}`; queries: JSON lines
//! `{"query", "faq_id"}`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::Deserialize;

use super::matcher::{MatchEntry, Matcher};

#[derive(Debug, Deserialize)]
struct FaqLine {
    id: String,
    question: String,
    #[serde(default)]
    similar: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LabelledQuery {
    pub query: String,
    pub faq_id: String,
}

/// Reads knowledge-base entries from a JSON-lines file.
pub fn read_entries(path: &Path) -> anyhow::Result<Vec<MatchEntry>> {
    read_lines(path, |line: FaqLine| {
        let mut questions = vec![line.question];
        questions.extend(line.similar);
        MatchEntry {
            id: line.id,
            questions,
            keywords: Vec::new(),
        }
    })
}

pub fn read_queries(path: &Path) -> anyhow::Result<Vec<LabelledQuery>> {
    read_lines(path, |q| q)
}

fn read_lines<T: serde::de::DeserializeOwned, U>(
    path: &Path,
    map: impl Fn(T) -> U,
) -> anyhow::Result<Vec<U>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: T = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not a valid line", path.display(), n + 1))?;
        out.push(map(value));
    }
    if out.is_empty() {
        bail!("{}: no entries", path.display());
    }
    Ok(out)
}

/// What an evaluation measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub entries: usize,
    pub queries: usize,
    pub top1: f64,
    pub top3: f64,
    /// Mean reciprocal rank over the top 10.
    pub mrr: f64,
    pub build: Duration,
    pub p50: Duration,
    pub p99: Duration,
    /// Resident memory of the process after the run (Linux), MiB.
    pub rss_mib: Option<f64>,
}

/// How to rank: the shipped re-ranker, or plain BM25 over characters (the baseline to beat).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranking {
    Reranked,
    Bm25Only,
}

fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "entries {}  queries {}", self.entries, self.queries)?;
        writeln!(
            f,
            "top-1 {:.4}  top-3 {:.4}  MRR@10 {:.4}",
            self.top1, self.top3, self.mrr
        )?;
        write!(
            f,
            "index build {:.1} ms  query p50 {:.1} µs  p99 {:.1} µs",
            self.build.as_secs_f64() * 1e3,
            self.p50.as_secs_f64() * 1e6,
            self.p99.as_secs_f64() * 1e6
        )?;
        if let Some(rss) = self.rss_mib {
            write!(f, "  RSS {rss:.0} MiB")?;
        }
        Ok(())
    }
}

/// Builds the matcher from `entries` and ranks every query.
pub fn evaluate(entries: Vec<MatchEntry>, queries: &[LabelledQuery], ranking: Ranking) -> Report {
    let mut baseline = [0.0; super::rerank::FEATURES];
    baseline[0] = 1.0;
    let n_entries = entries.len();
    let started = Instant::now();
    let matcher = Matcher::build(entries);
    let build = started.elapsed();
    let (mut hit1, mut hit3, mut rr) = (0usize, 0usize, 0.0f64);
    let mut latencies = Vec::with_capacity(queries.len());
    for q in queries {
        let started = Instant::now();
        let ranked = match ranking {
            Ranking::Reranked => matcher.rank(&q.query, 10),
            Ranking::Bm25Only => matcher.rank_with(&q.query, 10, &baseline),
        };
        latencies.push(started.elapsed());
        if let Some(pos) = ranked.iter().position(|c| c.id == q.faq_id) {
            hit1 += usize::from(pos == 0);
            hit3 += usize::from(pos < 3);
            rr += 1.0 / (pos as f64 + 1.0);
        }
    }
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    let n = queries.len().max(1) as f64;
    Report {
        entries: n_entries,
        queries: queries.len(),
        top1: hit1 as f64 / n,
        top3: hit3 as f64 / n,
        mrr: rr / n,
        build,
        p50: pct(0.5),
        p99: pct(0.99),
        rss_mib: rss_mib(),
    }
}
