//! The knowledge base in memory: a matcher built from the enabled entries in the database,
//! rebuilt when they change (an ops API change says so at once; changes made elsewhere — the CLI
//! import, another replica — are noticed within [`RECHECK_MS`]).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use super::matcher::{Candidate, MatchEntry, Matcher};
use crate::config::FaqConfig;
use crate::store::faq::FaqEntry;
use crate::store::{Store, StoreError};

/// How often the database is asked whether the knowledge base changed.
pub const RECHECK_MS: i64 = 2_000;

/// The matcher and the entries it was built from (candidate `entry` indexes into `entries`).
#[derive(Clone, Default)]
pub struct Snapshot {
    pub matcher: Arc<Matcher>,
    pub entries: Arc<Vec<FaqEntry>>,
}

impl Snapshot {
    /// Ranked entries for a question.
    pub fn rank(&self, question: &str, k: usize) -> Vec<(Candidate, &FaqEntry)> {
        self.matcher
            .rank(question, k)
            .into_iter()
            .filter_map(|c| {
                let entry = self.entries.get(c.entry as usize)?;
                Some((c, entry))
            })
            .collect()
    }
}

pub struct FaqService {
    config: FaqConfig,
    current: RwLock<(Snapshot, Option<(i64, i64)>)>,
    checked_at: AtomicI64,
    reload: tokio::sync::Mutex<()>,
}

impl FaqService {
    pub fn new(config: FaqConfig) -> Arc<Self> {
        Arc::new(Self {
            config,
            current: RwLock::new((Snapshot::default(), None)),
            checked_at: AtomicI64::new(i64::MIN / 2),
            reload: tokio::sync::Mutex::new(()),
        })
    }

    pub fn config(&self) -> &FaqConfig {
        &self.config
    }

    /// The next [`snapshot`](Self::snapshot) re-reads the knowledge base.
    pub fn invalidate(&self) {
        self.checked_at.store(i64::MIN / 2, Ordering::Relaxed);
    }

    /// The current matcher, rebuilt first if the knowledge base changed.
    pub async fn snapshot(&self, store: &Store, now_ms: i64) -> Result<Snapshot, StoreError> {
        if now_ms - self.checked_at.load(Ordering::Relaxed) < RECHECK_MS {
            return Ok(self.read().0);
        }
        // One reload at a time; the others wait and then use its result.
        let _turn = self.reload.lock().await;
        if now_ms - self.checked_at.load(Ordering::Relaxed) < RECHECK_MS {
            return Ok(self.read().0);
        }
        let stamp = store.faq_stamp().await?;
        let (snapshot, loaded) = self.read();
        if loaded == Some(stamp) {
            self.checked_at.store(now_ms, Ordering::Relaxed);
            return Ok(snapshot);
        }
        let entries = store.faq_entries(true).await?;
        let synonyms = self.config.synonyms.clone();
        let snapshot = tokio::task::spawn_blocking(move || build(entries, &synonyms))
            .await
            .map_err(|e| StoreError::Other(format!("building the FAQ index: {e}")))?;
        tracing::info!(
            entries = snapshot.entries.len(),
            "FAQ knowledge base (re)loaded"
        );
        if let Ok(mut current) = self.current.write() {
            *current = (snapshot.clone(), Some(stamp));
        }
        self.checked_at.store(now_ms, Ordering::Relaxed);
        Ok(snapshot)
    }

    fn read(&self) -> (Snapshot, Option<(i64, i64)>) {
        self.current.read().map(|c| c.clone()).unwrap_or_default()
    }
}

/// Builds a snapshot from entries (blocking: segmenting every question takes a while).
pub fn build(entries: Vec<FaqEntry>, synonyms: &[Vec<String>]) -> Snapshot {
    let match_entries = entries
        .iter()
        .map(|e| MatchEntry {
            id: e.id.to_string(),
            questions: std::iter::once(e.question.clone())
                .chain(e.similar.iter().cloned())
                .collect(),
            keywords: e.keywords.clone(),
        })
        .collect();
    Snapshot {
        matcher: Arc::new(Matcher::build_with_synonyms(match_entries, synonyms)),
        entries: Arc::new(entries),
    }
}
