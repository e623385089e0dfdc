//! Re-ranking of the BM25 shortlist by a weighted sum of cheap pairwise features. The weights
//! were fitted once on the dev half of the evaluation data (`benches/faq_fit.rs`) and are kept
//! here as constants.

/// Number of features.
pub const FEATURES: usize = 14;

/// Feature names, in order (for the fitting tool's report).
pub const NAMES: [&str; FEATURES] = [
    "bm25/top",
    "bm25/ceiling",
    "bigram dice",
    "char dice",
    "longest common substring / query",
    "common subsequence dice",
    "length ratio",
    "number mismatch",
    "negation mismatch",
    "query idf covered",
    "candidate idf covered",
    "word dice",
    "query word idf covered",
    "candidate word idf covered",
];

/// Fitted weights (see the module docs): dev half of faq-eval, top-1 0.925, top-3 0.975.
pub const WEIGHTS: [f32; FEATURES] = [
    1.0000, -0.3300, -1.3108, 1.9209, -0.3299, 0.9730, 0.3469, 0.1021, -0.1355, 0.5445, 0.8168,
    -1.3953, 0.9054, 0.4576,
];

/// What the index tells about a pair: BM25 scores and IDF mass.
#[derive(Debug, Clone, Copy, Default)]
pub struct Lexical {
    pub bm25: f32,
    /// The shortlist's best BM25.
    pub top_bm25: f32,
    /// Sum of the IDF of the query's terms.
    pub ceiling: f32,
    /// Sum of the IDF of the candidate's terms.
    pub candidate_idf: f32,
    /// Sum of the IDF of the terms both share.
    pub shared_idf: f32,
    /// Distinct words of the query, of the candidate, and shared.
    pub query_words: usize,
    pub candidate_words: usize,
    pub shared_words: usize,
    /// IDF mass of the query's words, the candidate's, and the shared ones.
    pub query_word_idf: f32,
    pub candidate_word_idf: f32,
    pub shared_word_idf: f32,
}

/// The features of one (query, candidate question) pair.
pub fn features(query: &[char], candidate: &[char], lex: Lexical) -> [f32; FEATURES] {
    let Lexical {
        bm25,
        top_bm25,
        ceiling,
        candidate_idf,
        shared_idf,
        query_words,
        candidate_words,
        shared_words,
        query_word_idf,
        candidate_word_idf,
        shared_word_idf,
    } = lex;
    [
        ratio(bm25, top_bm25),
        ratio(bm25, ceiling),
        bigram_dice(query, candidate),
        dice_chars(query, candidate),
        ratio(
            longest_common_substring(query, candidate) as f32,
            query.len() as f32,
        ),
        ratio(
            2.0 * common_subsequence(query, candidate) as f32,
            (query.len() + candidate.len()) as f32,
        ),
        ratio(
            query.len().min(candidate.len()) as f32,
            query.len().max(candidate.len()) as f32,
        ),
        f32::from(u8::from(numbers(query) != numbers(candidate))),
        f32::from(u8::from(negated(query) != negated(candidate))),
        ratio(shared_idf, ceiling),
        ratio(shared_idf, candidate_idf),
        ratio(
            2.0 * shared_words as f32,
            (query_words + candidate_words) as f32,
        ),
        ratio(shared_word_idf, query_word_idf),
        ratio(shared_word_idf, candidate_word_idf),
    ]
}

/// The re-ranking score of a feature vector.
pub fn score(f: &[f32; FEATURES], weights: &[f32; FEATURES]) -> f32 {
    f.iter().zip(weights).map(|(x, w)| x * w).sum()
}

fn ratio(a: f32, b: f32) -> f32 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

fn dice_chars(a: &[char], b: &[char]) -> f32 {
    let mut a: Vec<char> = a.to_vec();
    let mut b: Vec<char> = b.to_vec();
    a.sort_unstable();
    a.dedup();
    b.sort_unstable();
    b.dedup();
    dice_sorted(&a, &b)
}

/// Dice overlap of two texts' character bigrams (0–1).
pub fn bigram_dice(a: &[char], b: &[char]) -> f32 {
    let grams = |s: &[char]| {
        let mut v: Vec<(char, char)> = s.windows(2).map(|w| (w[0], w[1])).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    dice_sorted(&grams(a), &grams(b))
}

fn dice_sorted<T: Ord>(a: &[T], b: &[T]) -> f32 {
    if a.is_empty() && b.is_empty() {
        return 0.0;
    }
    let (mut i, mut j, mut common) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
        }
    }
    2.0 * common as f32 / (a.len() + b.len()) as f32
}

fn longest_common_substring(a: &[char], b: &[char]) -> usize {
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    let mut best = 0;
    for &x in a {
        for (j, &y) in b.iter().enumerate() {
            cur[j + 1] = if x == y { prev[j] + 1 } else { 0 };
            best = best.max(cur[j + 1]);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    best
}

fn common_subsequence(a: &[char], b: &[char]) -> usize {
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for &x in a {
        for (j, &y) in b.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j] + 1
            } else {
                prev[j + 1].max(cur[j])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The digit runs of a question ("3天" and "7天" are different questions).
fn numbers(s: &[char]) -> Vec<String> {
    let mut out = Vec::new();
    let mut run = String::new();
    for &c in s {
        if c.is_ascii_digit() {
            run.push(c);
        } else if !run.is_empty() {
            out.push(std::mem::take(&mut run));
        }
    }
    if !run.is_empty() {
        out.push(run);
    }
    out
}

/// Whether a question is negated (不/没/无/未/非/别): "能退款" vs "不能退款".
fn negated(s: &[char]) -> bool {
    s.iter()
        .any(|c| matches!(c, '不' | '没' | '无' | '未' | '非' | '别'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    #[test]
    fn pairwise_measures() {
        assert_eq!(
            longest_common_substring(&c("怎么退款呢"), &c("如何退款")),
            2
        );
        assert_eq!(common_subsequence(&c("abcde"), &c("axcye")), 3);
        assert!((dice_chars(&c("ab"), &c("bc")) - 0.5).abs() < 1e-6);
        assert!((bigram_dice(&c("abc"), &c("abd")) - 0.5).abs() < 1e-6);
        assert_eq!(numbers(&c("3天和15天")), vec!["3", "15"]);
        assert!(negated(&c("不能退款")) && !negated(&c("能退款")));
    }
}
