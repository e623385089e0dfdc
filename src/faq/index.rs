//! BM25 over character unigrams and bigrams of normalized questions. Every standard and similar
//! question of an entry is one document; an entry scores as its best document. On Chinese FAQ
//! text characters beat word segmentation (no segmentation errors, partial-word overlap counts).

use std::collections::HashMap;

const K1: f32 = 1.2;
const B: f32 = 0.75;

/// A term: one character, or two adjacent ones (a bigram bit keeps the spaces apart).
pub fn terms(chars: &[char]) -> impl Iterator<Item = u64> + '_ {
    let unigrams = chars.iter().map(|&c| u64::from(c));
    let bigrams = chars
        .windows(2)
        .map(|w| (1 << 63) | (u64::from(w[0]) << 21) | u64::from(w[1]));
    unigrams.chain(bigrams)
}

/// One question of an entry, normalized.
#[derive(Debug, Clone)]
pub struct Doc {
    pub entry: u32,
    pub chars: Vec<char>,
    /// Its words (jieba), as sorted, distinct word ids.
    pub words: Vec<u32>,
    len: f32,
}

/// The inverted index of a knowledge base. Entries can be added and removed in place, so a
/// change to one entry re-segments only that entry's questions.
#[derive(Debug, Default, Clone)]
pub struct Index {
    docs: Vec<Doc>,
    postings: HashMap<u64, Vec<(u32, u16)>>,
    /// Documents of each entry.
    by_entry: HashMap<u32, Vec<u32>>,
    live_docs: usize,
    total_len: f32,
    /// Word ids, and the number of documents with each word.
    words: HashMap<String, u32>,
    word_df: Vec<u32>,
}

/// The jieba segmenter with its default dictionary, loaded once.
fn jieba() -> &'static jieba_rs::Jieba {
    static JIEBA: std::sync::OnceLock<jieba_rs::Jieba> = std::sync::OnceLock::new();
    JIEBA.get_or_init(jieba_rs::Jieba::new)
}

/// The words of a normalized question.
pub fn cut(chars: &[char]) -> Vec<String> {
    let text: String = chars.iter().collect();
    jieba()
        .cut(&text, true)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// A document's BM25 score for a query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub doc: u32,
    pub score: f32,
}

impl Index {
    /// Indexes `questions`: (entry number, normalized question) pairs.
    pub fn build(questions: impl IntoIterator<Item = (u32, Vec<char>)>) -> Self {
        let mut index = Self::default();
        for (entry, chars) in questions {
            index.add(entry, chars);
        }
        index
    }

    /// Adds one question of `entry`.
    pub fn add(&mut self, entry: u32, chars: Vec<char>) {
        let doc = u32::try_from(self.docs.len()).unwrap_or(u32::MAX);
        let mut counts: HashMap<u64, u16> = HashMap::new();
        for t in terms(&chars) {
            *counts.entry(t).or_default() += 1;
        }
        let len = counts.values().map(|&n| f32::from(n)).sum::<f32>();
        for (&t, &n) in &counts {
            self.postings.entry(t).or_default().push((doc, n));
        }
        let mut words: Vec<u32> = cut(&chars)
            .into_iter()
            .map(|w| {
                let next = u32::try_from(self.words.len()).unwrap_or(u32::MAX);
                *self.words.entry(w).or_insert(next)
            })
            .collect();
        words.sort_unstable();
        words.dedup();
        for &w in &words {
            if w as usize >= self.word_df.len() {
                self.word_df.resize(w as usize + 1, 0);
            }
            self.word_df[w as usize] += 1;
        }
        self.by_entry.entry(entry).or_default().push(doc);
        self.live_docs += 1;
        self.total_len += len;
        self.docs.push(Doc {
            entry,
            chars,
            words,
            len,
        });
    }

    /// Removes every question of `entry` (its document slots stay, empty and unreachable).
    pub fn remove_entry(&mut self, entry: u32) {
        for doc in self.by_entry.remove(&entry).unwrap_or_default() {
            let d = &mut self.docs[doc as usize];
            let (chars, words) = (std::mem::take(&mut d.chars), std::mem::take(&mut d.words));
            self.total_len -= d.len;
            d.len = 0.0;
            self.live_docs -= 1;
            let mut seen = std::collections::HashSet::new();
            for t in terms(&chars) {
                if !seen.insert(t) {
                    continue;
                }
                if let Some(list) = self.postings.get_mut(&t) {
                    list.retain(|&(d, _)| d != doc);
                    if list.is_empty() {
                        self.postings.remove(&t);
                    }
                }
            }
            for w in words {
                if let Some(df) = self.word_df.get_mut(w as usize) {
                    *df = df.saturating_sub(1);
                }
            }
        }
    }

    fn avg_len(&self) -> f32 {
        if self.live_docs == 0 {
            1.0
        } else {
            self.total_len / self.live_docs as f32
        }
    }

    pub fn doc(&self, doc: u32) -> &Doc {
        &self.docs[doc as usize]
    }

    /// Questions indexed.
    pub fn len(&self) -> usize {
        self.live_docs
    }

    pub fn is_empty(&self) -> bool {
        self.live_docs == 0
    }

    /// Word ids of `words` that the index knows (sorted, distinct), and the IDF mass of all of
    /// them (an unknown word counts as rare as a word can be).
    pub fn word_ids(&self, words: &[String]) -> (Vec<u32>, f32) {
        let mut ids = Vec::new();
        let mut mass = 0.0;
        for w in words {
            // A word whose entries were all removed counts as unknown, as after a fresh build.
            let live = self
                .words
                .get(w)
                .filter(|&&id| self.word_df.get(id as usize).is_some_and(|&df| df > 0));
            match live {
                Some(&id) => {
                    ids.push(id);
                    mass += self.word_idf(id);
                }
                None => mass += self.idf(0),
            }
        }
        ids.sort_unstable();
        ids.dedup();
        (ids, mass)
    }

    pub fn word_idf(&self, id: u32) -> f32 {
        self.idf(self.word_df.get(id as usize).copied().unwrap_or(0) as usize)
    }

    /// The IDF of a term (0 for a term no document has).
    pub fn idf_of(&self, term: u64) -> f32 {
        self.postings.get(&term).map_or(0.0, |l| self.idf(l.len()))
    }

    fn idf(&self, df: usize) -> f32 {
        let n = self.live_docs as f32;
        let df = df as f32;
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    /// The best `k` documents for the normalized query, and the query's own BM25 ceiling (the
    /// sum of its terms' IDF) so that scores compare across queries.
    pub fn search(&self, query: &[char], k: usize, scores: &mut Vec<f32>) -> (Vec<Hit>, f32) {
        scores.clear();
        scores.resize(self.docs.len(), 0.0);
        let mut touched: Vec<u32> = Vec::new();
        let mut ceiling = 0.0;
        let avg_len = self.avg_len();
        let mut seen: HashMap<u64, ()> = HashMap::new();
        for t in terms(query) {
            // Repeated query terms count once: short questions repeat little anyway.
            if seen.insert(t, ()).is_some() {
                continue;
            }
            let Some(list) = self.postings.get(&t) else {
                continue;
            };
            let idf = self.idf(list.len());
            ceiling += idf;
            for &(doc, tf) in list {
                let d = &self.docs[doc as usize];
                let tf = f32::from(tf);
                let norm = K1 * (1.0 - B + B * d.len / avg_len);
                let slot = &mut scores[doc as usize];
                if *slot == 0.0 {
                    touched.push(doc);
                }
                *slot += idf * tf * (K1 + 1.0) / (tf + norm);
            }
        }
        let mut hits: Vec<Hit> = touched
            .into_iter()
            .map(|doc| Hit {
                doc,
                score: scores[doc as usize],
            })
            .collect();
        let k = k.min(hits.len());
        if k > 0 && k < hits.len() {
            hits.select_nth_unstable_by(k - 1, |a, b| b.score.total_cmp(&a.score));
            hits.truncate(k);
        }
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.doc.cmp(&b.doc)));
        (hits, ceiling)
    }
}
