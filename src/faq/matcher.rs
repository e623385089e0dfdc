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
}

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
        matcher.entries = entries;
        matcher
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

/// Coefficients of [`confidence`]: score, margin, intercept.
pub const CONFIDENCE: [f32; 3] = [0.6494, 5.2420, -2.0000];
