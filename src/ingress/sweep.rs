//! The sweeper: accepted deliveries never marked processed (a crash between the commit and the
//! handlers) and failed runs whose retry time has come are run again. Handlers are idempotent
//! per event, so a re-run is safe; an answer a re-run produces is too late to be passive and goes
//! out actively through the outbox.

use std::sync::Arc;

use super::Ingress;
use crate::events::Event;
use crate::store::inbox::Processed;

/// Rows looked at per round.
const ROUND: i64 = 500;

impl Ingress {
    /// One round; returns how many rows it ran.
    pub async fn sweep(&self) -> Result<usize, crate::store::StoreError> {
        let now = self.bot.clock.now_ms();
        let cutoff = now - i64::try_from(self.options.sweep_after.as_millis()).unwrap_or(i64::MAX);
        let rows = self.bot.store.inbox_due(cutoff, now, ROUND).await?;
        let count = rows.len();
        for row in rows {
            let event = match serde_json::from_str::<Event>(&row.payload) {
                Ok(event) => Arc::new(event),
                Err(e) => {
                    // Nothing will make it parse: dead at once, with the reason.
                    let reason = format!("stored event does not parse: {e}");
                    self.record_failure(row.id, self.options.max_attempts, &reason)
                        .await;
                    continue;
                }
            };
            match self.dispatcher.dispatch(&self.bot, &event).await {
                Ok(reply) => {
                    if let Some(text) = &reply {
                        self.send_late(&event, text).await;
                    }
                    self.bot
                        .store
                        .inbox_mark_processed(&Processed {
                            id: row.id,
                            at: self.bot.clock.now_ms(),
                            reply: None,
                        })
                        .await?;
                }
                Err(e) => {
                    self.record_failure(row.id, row.attempts, &e.to_string())
                        .await;
                }
            }
        }
        Ok(count)
    }
}
