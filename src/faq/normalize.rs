//! Question text normalization: NFKC (full-width letters and digits become ASCII), lower case,
//! and only letters and digits kept — punctuation, spaces and emoji carry no meaning for matching.

use unicode_normalization::UnicodeNormalization;

/// Interchangeable ways of asking, mapped to one spelling (longest first). Only question words
/// and sentence particles: they say nothing about the topic, yet two paraphrases that word them
/// differently lose every bigram around them.
const QUESTION_WORDS: &[(&str, &str)] = &[
    ("可不可以", "能"),
    ("能不能", "能"),
    ("是否可以", "能"),
    ("是不是", "是否"),
    ("怎么样", "怎么"),
    ("怎么办", "怎么"),
    ("为什么", "为何"),
    ("为啥", "为何"),
    ("如何", "怎么"),
    ("怎样", "怎么"),
    ("能否", "能"),
    ("可否", "能"),
    ("可以", "能"),
    ("哪些", "什么"),
    ("咋", "怎么"),
];

/// Sentence-final particles dropped at the end of a question.
const PARTICLES: &[char] = &['吗', '呢', '啊', '呀', '吧', '么', '嘛'];

/// The characters of `text` that take part in matching.
pub fn normalize(text: &str) -> Vec<char> {
    let mut s: String = text
        .nfkc()
        .flat_map(char::to_lowercase)
        .filter(|c| c.is_alphanumeric())
        .collect();
    for (from, to) in QUESTION_WORDS {
        if s.contains(from) {
            s = s.replace(from, to);
        }
    }
    let mut chars: Vec<char> = s.chars().collect();
    while chars.len() > 1 && chars.last().is_some_and(|c| PARTICLES.contains(c)) {
        chars.pop();
    }
    chars
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> String {
        normalize(text).into_iter().collect()
    }

    #[test]
    fn width_case_and_punctuation() {
        assert_eq!(s("ＡＢＣ１２３？"), "abc123");
        assert_eq!(s("怎么 退款 ？！"), "怎么退款");
        assert_eq!(s("VIP会员，多少钱?"), "vip会员多少钱");
    }

    #[test]
    fn ways_of_asking_meet() {
        assert_eq!(s("如何退款？"), s("怎样退款呢"));
        assert_eq!(s("可以开发票吗"), s("能不能开发票"));
        assert_eq!(s("吗"), "吗");
        assert_eq!(s("「直播」几点…"), "直播几点");
    }
}
