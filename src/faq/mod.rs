//! FAQ answers from a knowledge base with Chinese question matching.

pub mod eval;
mod handler;
pub mod import;
pub mod index;
pub mod matcher;
pub mod normalize;
pub mod rerank;
pub mod service;

pub use handler::FaqHandler;
pub use matcher::{Candidate, MatchEntry, Matcher};
pub use service::{FaqService, Snapshot};

use crate::store::faq::NewFaqEntry;

/// Why an entry cannot be stored, if it cannot: empty question or answer, or an answer whose
/// template does not compile.
pub fn check_entry(e: &NewFaqEntry) -> Result<(), String> {
    if e.question.trim().is_empty() {
        return Err("question is empty".into());
    }
    if e.answer.trim().is_empty() {
        return Err("answer is empty".into());
    }
    if e.similar.iter().any(|q| q.trim().is_empty()) {
        return Err("a similar question is empty".into());
    }
    check_answer(&e.answer)
}

/// Checks an answer as the sandbox will render it, with a long sample name, so a template that is
/// outside the allowed subset, loops too long or renders past one message is refused when saved.
pub fn check_answer(answer: &str) -> Result<(), String> {
    let sample = minijinja::context! {
        name => "会员昵称会员昵称会员昵称会员昵称会员昵称会员昵称会员昵称会员昵称",
        group => "产品交流群产品交流群产品交流群",
    };
    crate::templates::sandbox::shared()
        .check(answer, &sample)
        .map_err(|err| format!("answer template: {err}"))
}
