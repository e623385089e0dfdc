//! The FAQ matcher: a BM25 shortlist over every question of every entry, re-ranked, grouped by
//! entry, with a confidence for the answer policy. Built in memory from the knowledge base.

use std::collections::HashSet;

use super::index::{cut, terms, Index};
use super::normalize::normalize;
use super::rerank::{self, Lexical, FEATURES, WEIGHTS};

/// Documents the re-ranker looks at.
pub const SHORTLIST: usize = 40;

/// A knowledge-base entry as the matcher sees it.
#[derive(Debug, Clone)]
pub struct MatchEntry {
    pub id: String,
    /// The standard question first, then similar questions.
    pub questions: Vec<String>,
    /// Words set by ops: a question containing one gets [`KEYWORD_BONUS`] for this entry.
    pub keywords: Vec<String>,
}

/// Added to an entry's score when the question contains one of its keywords. Not fitted (the
/// evaluation data has no keywords): about the gap between a clear first and second candidate.
pub const KEYWORD_BONUS: f32 = 0.3;

/// One ranked entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub entry: u32,
    pub id: String,
    /// The entry's question that matched best.
    pub question: String,
    pub score: f32,
    /// Estimated probability that this is the right entry (top candidate) in 0..=1.
    pub confidence: f32,
}

/// One shortlisted document with its features (for ranking and for fitting the weights).
#[derive(Debug, Clone)]
pub struct Shortlisted {
    pub entry: u32,
    pub doc: u32,
    pub features: [f32; FEATURES],
}

#[derive(Debug, Clone, Default)]
pub struct Matcher {
    entries: Vec<MatchEntry>,
    index: Index,
    /// (word, the word it stands for), longest first.
    synonyms: Vec<(String, String)>,
    /// Normalized keywords per entry (empty when no entry has any).
    keywords: Vec<Vec<String>>,
}

impl Matcher {
    pub fn build(entries: Vec<MatchEntry>) -> Self {
        Self::build_with_synonyms(entries, &[])
    }

    /// `synonyms`: groups of interchangeable words; each group's first word stands for the rest.
    pub fn build_with_synonyms(entries: Vec<MatchEntry>, synonyms: &[Vec<String>]) -> Self {
        let mut pairs: Vec<(String, String)> = synonyms
            .iter()
            .filter_map(|group| {
                let (first, rest) = group.split_first()?;
                let canonical: String = normalize(first).into_iter().collect();
                Some(rest.iter().map(move |w| {
                    (
                        normalize(w).into_iter().collect::<String>(),
                        canonical.clone(),
                    )
                }))
            })
            .flatten()
            .filter(|(w, c)| !w.is_empty() && w != c)
            .collect();
        pairs.sort_by_key(|p| std::cmp::Reverse(p.0.chars().count()));
        let mut matcher = Self {
            entries: Vec::new(),
            index: Index::default(),
            synonyms: pairs,
            keywords: Vec::new(),
        };
        let docs: Vec<(u32, Vec<char>)> = entries
            .iter()
            .enumerate()
            .flat_map(|(i, e)| {
                let entry = u32::try_from(i).unwrap_or(u32::MAX);
                e.questions.iter().map(move |q| (entry, q))
            })
            .map(|(entry, q)| (entry, matcher.prepare(q)))
            .collect();
        matcher.index = Index::build(docs);
        if entries.iter().any(|e| !e.keywords.is_empty()) {
            matcher.keywords = entries
                .iter()
                .map(|e| {
                    e.keywords
                        .iter()
                        .map(|k| matcher.prepare(k).into_iter().collect())
                        .collect()
                })
                .collect();
        }
        matcher.entries = entries;
        matcher
    }

    /// Adds an entry, or replaces the one with the same id (only its questions are re-indexed).
    /// Returns the entry's number.
    pub fn upsert(&mut self, entry: MatchEntry) -> u32 {
        let number = match self.entries.iter().position(|e| e.id == entry.id) {
            Some(i) => {
                let number = u32::try_from(i).unwrap_or(u32::MAX);
                self.index.remove_entry(number);
                number
            }
            None => {
                self.entries.push(MatchEntry {
                    id: entry.id.clone(),
                    questions: Vec::new(),
                    keywords: Vec::new(),
                });
                u32::try_from(self.entries.len() - 1).unwrap_or(u32::MAX)
            }
        };
        for q in &entry.questions {
            let chars = self.prepare(q);
            self.index.add(number, chars);
        }
        let keywords: Vec<String> = entry
            .keywords
            .iter()
            .map(|k| self.prepare(k).into_iter().collect())
            .collect();
        if !keywords.is_empty() || !self.keywords.is_empty() {
            self.keywords.resize(self.entries.len(), Vec::new());
            self.keywords[number as usize] = keywords;
        }
        self.entries[number as usize] = entry;
        number
    }

    /// Takes an entry out of matching (its number stays reserved).
    pub fn remove(&mut self, id: &str) {
        if let Some(i) = self.entries.iter().position(|e| e.id == id) {
            self.index
                .remove_entry(u32::try_from(i).unwrap_or(u32::MAX));
            self.entries[i].questions.clear();
            if let Some(k) = self.keywords.get_mut(i) {
                k.clear();
            }
        }
    }

    /// Normalized text with the knowledge base's synonyms applied.
    fn prepare(&self, text: &str) -> Vec<char> {
        let chars = normalize(text);
        if self.synonyms.is_empty() {
            return chars;
        }
        let mut s: String = chars.into_iter().collect();
        for (word, canonical) in &self.synonyms {
            if s.contains(word.as_str()) {
                s = s.replace(word.as_str(), canonical);
            }
        }
        s.chars().collect()
    }

    pub fn entries(&self) -> &[MatchEntry] {
        &self.entries
    }

    /// The BM25 shortlist of `query` with each document's features.
    pub fn shortlist(&self, query: &str) -> Vec<Shortlisted> {
        let q = self.prepare(query);
        let mut scores = Vec::new();
        let (hits, ceiling) = self.index.search(&q, SHORTLIST, &mut scores);
        let top = hits.first().map_or(0.0, |h| h.score);
        let query_terms: HashSet<u64> = terms(&q).collect();
        let (query_words, query_word_idf) = self.index.word_ids(&cut(&q));
        let mut doc_terms = HashSet::new();
        hits.iter()
            .map(|h| {
                let doc = self.index.doc(h.doc);
                doc_terms.clear();
                doc_terms.extend(terms(&doc.chars));
                let (mut candidate_idf, mut shared_idf) = (0.0, 0.0);
                for &t in &doc_terms {
                    let idf = self.index.idf_of(t);
                    candidate_idf += idf;
                    if query_terms.contains(&t) {
                        shared_idf += idf;
                    }
                }
                let (mut candidate_word_idf, mut shared_word_idf, mut shared_words) = (0.0, 0.0, 0);
                for &w in &doc.words {
                    let idf = self.index.word_idf(w);
                    candidate_word_idf += idf;
                    if query_words.binary_search(&w).is_ok() {
                        shared_word_idf += idf;
                        shared_words += 1;
                    }
                }
                let lexical = Lexical {
                    bm25: h.score,
                    top_bm25: top,
                    ceiling,
                    candidate_idf,
                    shared_idf,
                    query_words: query_words.len(),
                    candidate_words: doc.words.len(),
                    shared_words,
                    query_word_idf,
                    candidate_word_idf,
                    shared_word_idf,
                };
                Shortlisted {
                    entry: doc.entry,
                    doc: h.doc,
                    features: rerank::features(&q, &doc.chars, lexical),
                }
            })
            .collect()
    }

    /// The best `k` entries for `query`, best first.
    pub fn rank(&self, query: &str, k: usize) -> Vec<Candidate> {
        self.rank_with(query, k, &WEIGHTS)
    }

    /// [`rank`](Self::rank) with other weights (the fitting tool tries candidates).
    pub fn rank_with(&self, query: &str, k: usize, weights: &[f32; FEATURES]) -> Vec<Candidate> {
        let shortlist = self.shortlist(query);
        let mut best: Vec<(u32, u32, f32)> = Vec::new(); // entry, doc, score
        for s in &shortlist {
            let score = rerank::score(&s.features, weights);
            match best.iter_mut().find(|(e, _, _)| *e == s.entry) {
                Some(slot) if slot.2 < score => *slot = (s.entry, s.doc, score),
                Some(_) => {}
                None => best.push((s.entry, s.doc, score)),
            }
        }
        if !self.keywords.is_empty() {
            let q: String = self.prepare(query).into_iter().collect();
            for (entry, _, score) in &mut best {
                let hit = self
                    .keywords
                    .get(*entry as usize)
                    .into_iter()
                    .flatten()
                    .any(|k| !k.is_empty() && q.contains(k.as_str()));
                if hit {
                    *score += KEYWORD_BONUS;
                }
            }
        }
        best.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
        let margin = match best.as_slice() {
            [first, second, ..] => first.2 - second.2,
            [first] => first.2,
            [] => 0.0,
        };
        best.into_iter()
            .take(k)
            .enumerate()
            .map(|(rank, (entry, doc, score))| {
                let e = &self.entries[entry as usize];
                let question = self.index.doc(doc).chars.iter().collect();
                Candidate {
                    entry,
                    id: e.id.clone(),
                    question,
                    score,
                    confidence: if rank == 0 {
                        confidence(score, margin)
                    } else {
                        0.0
                    },
                }
            })
            .collect()
    }
}

/// Logistic estimate of "the top candidate is right" from its score and its lead over the
/// second; fitted on the dev half with the weights.
fn confidence(score: f32, margin: f32) -> f32 {
    let z = CONFIDENCE[0] * score + CONFIDENCE[1] * margin + CONFIDENCE[2];
    1.0 / (1.0 + (-z).exp())
}

/// Coefficients of `confidence`: score, margin, intercept.
pub const CONFIDENCE: [f32; 3] = [0.6494, 5.2420, -2.0000];

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, question: &str, keywords: &[&str]) -> MatchEntry {
        MatchEntry {
            id: id.into(),
            questions: vec![question.into()],
            keywords: keywords.iter().map(|k| (*k).to_owned()).collect(),
        }
    }

    fn kb() -> Vec<MatchEntry> {
        vec![
            entry("refund", "怎么申请退款", &[]),
            entry("human", "如何联系客服人员", &["人工"]),
            entry("phone", "客服热线电话是多少", &[]),
            entry("live", "直播几点开始", &[]),
        ]
    }

    #[test]
    fn paraphrase_ranks_its_entry_first_with_a_confidence() {
        let m = Matcher::build(kb());
        let ranked = m.rank("直播什么时候开始呀？", 3);
        assert_eq!(ranked[0].id, "live");
        assert!(ranked[0].confidence > 0.5, "{ranked:?}");
        assert!(m.rank("", 3).is_empty());
    }

    #[test]
    fn synonyms_and_keywords() {
        let plain = Matcher::build(kb());
        let with = Matcher::build_with_synonyms(kb(), &[vec!["退款".into(), "退钱".into()]]);
        let (before, after) = (plain.rank("怎么退钱", 1), with.rank("怎么退钱", 1));
        assert_eq!(after[0].id, "refund");
        assert!(after[0].score > before.first().map_or(0.0, |c| c.score));
        // A keyword of the entry in the question lifts that entry by the bonus.
        let mut bare = kb();
        bare[1].keywords.clear();
        let bare = Matcher::build(bare);
        let score = |m: &Matcher| {
            m.rank("客服转人工", 4)
                .into_iter()
                .find(|c| c.id == "human")
                .map(|c| c.score)
        };
        let (with_kw, without) = (
            score(&plain).expect("ranked"),
            score(&bare).expect("ranked"),
        );
        assert!((with_kw - without - KEYWORD_BONUS).abs() < 1e-4);
        assert_eq!(plain.rank("客服转人工", 1)[0].id, "human");
    }

    #[test]
    fn updating_in_place_ranks_like_building_afresh() {
        let mut changed = kb();
        changed[0].questions = vec!["退款要多久到账".into(), "怎么申请退款".into()];
        let mut updated = Matcher::build(kb());
        updated.upsert(changed[0].clone());
        updated.remove("phone");
        updated.upsert(entry("vip", "会员多少钱一年", &[]));
        let mut expected = changed;
        expected.remove(2);
        expected.push(entry("vip", "会员多少钱一年", &[]));
        let fresh = Matcher::build(expected);
        for q in [
            "退款多久到账",
            "客服电话",
            "会员一年多少钱",
            "直播几点",
            "转人工",
        ] {
            let a: Vec<(String, f32)> = updated
                .rank(q, 5)
                .into_iter()
                .map(|c| (c.id, c.score))
                .collect();
            let b: Vec<(String, f32)> = fresh
                .rank(q, 5)
                .into_iter()
                .map(|c| (c.id, c.score))
                .collect();
            assert_eq!(a.len(), b.len(), "{q}: {a:?} vs {b:?}");
            for ((ia, sa), (ib, sb)) in a.iter().zip(&b) {
                assert_eq!(ia, ib, "{q}");
                assert!((sa - sb).abs() < 1e-4, "{q}: {sa} vs {sb}");
            }
        }
        assert!(updated
            .rank("客服热线电话是多少", 5)
            .iter()
            .all(|c| c.id != "phone"));
    }
}
