//! What the group commit writes for accepted deliveries: the members, groups and daily activity
//! of each new event, the first stages of the members it creates, and its timing for `/metrics`.

use crate::events::Event;
use crate::members::contacts::FirstStages;
use crate::store::lifecycle::StageChange;
use crate::store::members::{CreatedMember, MemberChanges};
use crate::store::writer::{BatchRules, Delivery};
use crate::telemetry::Metrics;

/// The registry rules of the inbox's group commit.
pub struct InboxRules {
    pub timezone: chrono_tz::Tz,
    /// Set when the chain checks stages on events (PostgreSQL records the first stage of the
    /// members a batch creates in its transaction).
    pub first_stages: Option<FirstStages>,
    pub metrics: Metrics,
}

impl BatchRules for InboxRules {
    fn changes(&self, fresh: &mut dyn Iterator<Item = &Delivery>) -> MemberChanges {
        let events = fresh.filter_map(|d| d.downcast_ref::<Event>());
        crate::members::changes_for(events, self.timezone)
    }

    fn first_stages<'a>(
        &self,
        changes: &MemberChanges,
        created: &'a [CreatedMember],
        now_ms: i64,
    ) -> Vec<(&'a CreatedMember, StageChange)> {
        match &self.first_stages {
            Some(first) => first.stages(changes, created, now_ms),
            None => Vec::new(),
        }
    }

    fn staged(&self, scope: &str, user_id: &str, now_ms: i64) {
        if let Some(first) = &self.first_stages {
            first.note(scope, user_id, now_ms);
        }
    }

    fn committed(&self, secs: f64, rows: usize) {
        self.metrics.group_commit(secs, rows);
    }
}
