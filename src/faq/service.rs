//! The knowledge base in memory: a matcher built from the enabled entries in the database and
//! updated when they change — only the changed entries are re-indexed (an ops API change says so
//! at once; changes made elsewhere — the CLI import, another replica — are noticed within
//! [`RECHECK_MS`]).

use std::collections::HashSet;
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
    current: RwLock<Loaded>,
    checked_at: AtomicI64,
    reload: tokio::sync::Mutex<()>,
}

/// What is loaded: the snapshot, the stamp it matches, and every entry id the database had
/// (disabled ones too), to tell additions and changes from deletions.
#[derive(Clone, Default)]
struct Loaded {
    snapshot: Snapshot,
    stamp: Option<(i64, i64, i64)>,
    known: Arc<HashSet<i64>>,
}

impl FaqService {
    pub fn new(config: FaqConfig) -> Arc<Self> {
        Arc::new(Self {
            config,
            current: RwLock::new(Loaded::default()),
            checked_at: AtomicI64::new(i64::MIN / 2),
            reload: tokio::sync::Mutex::new(()),
        })
    }

    pub fn config(&self) -> &FaqConfig {
        &self.config
    }

    /// The next [`snapshot`](Self::snapshot) asks the database for changes.
    pub fn invalidate(&self) {
        self.checked_at.store(i64::MIN / 2, Ordering::Relaxed);
    }

    /// The current matcher, brought up to date first if the knowledge base changed: changed and
    /// new entries are applied to a copy of the index; a deletion rebuilds it.
    pub async fn snapshot(&self, store: &Store, now_ms: i64) -> Result<Snapshot, StoreError> {
        if now_ms - self.checked_at.load(Ordering::Relaxed) < RECHECK_MS {
            return Ok(self.read().snapshot);
        }
        // One reload at a time; the others wait and then use its result.
        let _turn = self.reload.lock().await;
        if now_ms - self.checked_at.load(Ordering::Relaxed) < RECHECK_MS {
            return Ok(self.read().snapshot);
        }
        let stamp = store.faq_stamp().await?;
        let loaded = self.read();
        if loaded.stamp == Some(stamp) {
            self.checked_at.store(now_ms, Ordering::Relaxed);
            return Ok(loaded.snapshot);
        }
        let synonyms = self.config.synonyms.clone();
        let next = match loaded.stamp {
            Some((_, since, _)) if !loaded.known.is_empty() => {
                let changed = store.faq_entries_since(since).await?;
                let added = changed
                    .iter()
                    .filter(|e| !loaded.known.contains(&e.id))
                    .count();
                if loaded.known.len() + added == usize::try_from(stamp.0).unwrap_or(0) {
                    let loaded = loaded.clone();
                    tokio::task::spawn_blocking(move || apply(loaded, changed))
                        .await
                        .map_err(|e| StoreError::Other(format!("updating the FAQ index: {e}")))?
                } else {
                    full(store, synonyms).await?
                }
            }
            _ => full(store, synonyms).await?,
        };
        tracing::info!(
            entries = next.snapshot.matcher.entries().len(),
            "FAQ knowledge base loaded"
        );
        let snapshot = next.snapshot.clone();
        if let Ok(mut current) = self.current.write() {
            *current = Loaded {
                stamp: Some(stamp),
                ..next
            };
        }
        self.checked_at.store(now_ms, Ordering::Relaxed);
        Ok(snapshot)
    }

    fn read(&self) -> Loaded {
        self.current.read().map(|c| c.clone()).unwrap_or_default()
    }
}

async fn full(store: &Store, synonyms: Vec<Vec<String>>) -> Result<Loaded, StoreError> {
    let all = store.faq_entries(false).await?;
    let known: HashSet<i64> = all.iter().map(|e| e.id).collect();
    let enabled: Vec<FaqEntry> = all.into_iter().filter(|e| e.enabled).collect();
    let snapshot = tokio::task::spawn_blocking(move || build(enabled, &synonyms))
        .await
        .map_err(|e| StoreError::Other(format!("building the FAQ index: {e}")))?;
    Ok(Loaded {
        snapshot,
        stamp: None,
        known: Arc::new(known),
    })
}

/// Applies changed entries to a copy of the loaded index (blocking: segments their questions).
fn apply(loaded: Loaded, changed: Vec<FaqEntry>) -> Loaded {
    let mut matcher = (*loaded.snapshot.matcher).clone();
    let mut entries = (*loaded.snapshot.entries).clone();
    let mut known = (*loaded.known).clone();
    for e in changed {
        known.insert(e.id);
        if e.enabled {
            let number = matcher.upsert(match_entry(&e)) as usize;
            if number < entries.len() {
                entries[number] = e;
            } else {
                entries.push(e);
            }
        } else {
            matcher.remove(&e.id.to_string());
        }
    }
    Loaded {
        snapshot: Snapshot {
            matcher: Arc::new(matcher),
            entries: Arc::new(entries),
        },
        stamp: None,
        known: Arc::new(known),
    }
}

fn match_entry(e: &FaqEntry) -> MatchEntry {
    MatchEntry {
        id: e.id.to_string(),
        questions: std::iter::once(e.question.clone())
            .chain(e.similar.iter().cloned())
            .collect(),
        keywords: e.keywords.clone(),
    }
}

/// Builds a snapshot from entries (blocking: segmenting every question takes a while).
pub fn build(entries: Vec<FaqEntry>, synonyms: &[Vec<String>]) -> Snapshot {
    let match_entries = entries.iter().map(match_entry).collect();
    Snapshot {
        matcher: Arc::new(Matcher::build_with_synonyms(match_entries, synonyms)),
        entries: Arc::new(entries),
    }
}
