//! FAQ answers from a knowledge base with Chinese question matching.

pub mod eval;
pub mod index;
pub mod matcher;
pub mod normalize;
pub mod rerank;

pub use matcher::{Candidate, MatchEntry, Matcher};
