//! The member registry: who is in the community, where, and when they were last active.
//! Domain code: it sees normalized events and the store, never HTTP or platform payloads.

pub mod activity;
pub mod contacts;
pub mod import;
pub mod layers;
pub mod lifecycle;
pub mod rule_spec;
pub mod rules;
pub mod segment;
pub mod state_rules;
pub mod sync;
pub mod tag_sync;
pub mod welcome;

pub use activity::{changes_for, local_day};
