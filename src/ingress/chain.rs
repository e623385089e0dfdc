//! Running the handler chain for an accepted delivery within the reply budget: the answer goes
//! back passively when the chain is in time, and actively through the outbox when it is not; a
//! duplicate delivery racing the first copy gets the first copy's answer; a failed run is
//! recorded so the sweeper retries it with backoff and sets it aside after too many.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{late, Ingress};
use crate::events::Event;
use crate::store::inbox::{Failed, Processed};

/// Where the answer of a running chain stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Late {
    /// The chain is running and the platform is still waiting.
    Pending,
    /// The chain has its answer in time and is storing it for retries.
    Marking,
    /// The platform got an empty answer: the chain sends its answer actively.
    TimedOut,
    Done,
}

/// The answer of a running chain: `None` while running, then the passive reply (if any).
type Answer = Option<Option<String>>;

/// Chains running in this process, by inbox id.
#[derive(Default)]
pub(super) struct InFlight(Mutex<HashMap<i64, watch::Receiver<Answer>>>);

impl InFlight {
    fn start(&self, id: i64) -> watch::Sender<Answer> {
        let (tx, rx) = watch::channel(None);
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, rx);
        tx
    }

    fn watch(&self, id: i64) -> Option<watch::Receiver<Answer>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    fn finish(&self, id: i64, tx: &watch::Sender<Answer>, answer: Option<String>) {
        tx.send_replace(Some(answer));
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }
}

/// How often a duplicate whose first copy runs on another replica looks at the row.
const ROW_POLL: Duration = Duration::from_millis(50);

fn lock(state: &Mutex<Late>) -> std::sync::MutexGuard<'_, Late> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl Ingress {
    /// Runs the chain for a new delivery and returns the passive reply, telling duplicates that
    /// wait on it the same answer.
    pub(super) async fn run_handlers(&self, inbox_id: i64, event: Arc<Event>) -> Option<String> {
        let answer = self.in_flight.start(inbox_id);
        let reply = self.run_chain(inbox_id, event).await;
        self.in_flight.finish(inbox_id, &answer, reply.clone());
        reply
    }

    /// The chain within the budget. One that overruns keeps going in its own task and sends its
    /// answer actively; the platform gets an empty answer now.
    async fn run_chain(&self, inbox_id: i64, event: Arc<Event>) -> Option<String> {
        let this = self.clone();
        let late = Arc::new(Mutex::new(Late::Pending));
        let late_in_task = Arc::clone(&late);
        let span = tracing::debug_span!("handlers", inbox_id, key = %event.dedupe_key);
        let mut chain = Box::pin(tracing::Instrument::instrument(
            async move { this.answer_and_mark(inbox_id, &event, &late_in_task).await },
            span,
        ));
        // Most chains never wait on anything (a chat line no handler wants): finished on the
        // first poll, they need no task and no timer. The rest go on in a task of their own.
        if let Some(reply) = crate::bot::poll_once(&mut chain).await {
            return reply;
        }
        let mut task = tokio::spawn(chain);
        match tokio::time::timeout(self.options.handler_budget, &mut task).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(join)) => {
                tracing::error!(inbox_id, error = %join, "handler task panicked");
                None
            }
            Err(_) => {
                let state = {
                    let mut state = lock(&late);
                    if *state == Late::Pending {
                        *state = Late::TimedOut;
                    }
                    *state
                };
                if state != Late::TimedOut {
                    // The answer is decided and being stored: it still goes back passively.
                    return task.await.unwrap_or_default();
                }
                self.metrics.handler_timeout();
                tracing::warn!(
                    inbox_id,
                    "handlers missed the reply budget; the answer goes out as an active message"
                );
                None
            }
        }
    }

    /// Dispatches `event` and marks its row processed: with the passive reply when the platform
    /// is still waiting, after sending the answer actively when the budget ran out.
    async fn answer_and_mark(
        &self,
        inbox_id: i64,
        event: &Arc<Event>,
        late: &Mutex<Late>,
    ) -> Option<String> {
        let started = Instant::now();
        let reply = match self.dispatcher.dispatch(&self.bot, event).await {
            Ok(reply) => reply,
            Err(e) => {
                self.record_failure(inbox_id, 0, &e.to_string()).await;
                return None;
            }
        };
        self.metrics
            .handler_latency(started.elapsed().as_secs_f64());
        // Who answers is decided once, under the lock the deadline takes too.
        let missed = {
            let mut state = lock(late);
            let missed = *state == Late::TimedOut;
            if !missed {
                *state = Late::Marking;
            }
            missed
        };
        let at = self.bot.clock.now_ms();
        if missed {
            if let Some(text) = &reply {
                self.send_late(event, text).await;
            }
            // Retries of this delivery answer empty: the answer went out actively.
            self.writer.mark_processed(Processed {
                id: inbox_id,
                at,
                reply: None,
            });
            return None;
        }
        let mark = Processed {
            id: inbox_id,
            at,
            reply: reply.clone(),
        };
        if reply.is_some() {
            // A retry must find the reply; without one, a lost mark only costs a re-run.
            if let Err(e) = self.writer.mark_processed_durably(mark).await {
                tracing::warn!(inbox_id, error = %e, "could not store the reply; the sweeper will re-run this event");
            }
        } else {
            self.writer.mark_processed(mark);
        }
        *lock(late) = Late::Done;
        reply
    }

    /// The answer for a duplicate whose first copy is still running: from this process's chain
    /// when it runs here, else from the row once another replica marks it; at most the budget.
    pub(super) async fn first_copy_answer(&self, inbox_id: i64) -> Option<String> {
        let budget = self.options.handler_budget;
        self.metrics.duplicate_wait();
        if let Some(mut rx) = self.in_flight.watch(inbox_id) {
            let wait = async move {
                loop {
                    if let Some(answer) = rx.borrow_and_update().clone() {
                        return answer;
                    }
                    if rx.changed().await.is_err() {
                        return rx.borrow().clone().flatten();
                    }
                }
            };
            return tokio::time::timeout(budget, wait).await.unwrap_or(None);
        }
        let started = Instant::now();
        while started.elapsed() < budget {
            match self.bot.store.inbox_row(inbox_id).await {
                Ok(row) if row.processed_at.is_some() || row.dead_at.is_some() => return row.reply,
                Ok(_) => tokio::time::sleep(ROW_POLL).await,
                Err(_) => return None,
            }
        }
        None
    }

    /// Queues `text` as an active message to whoever sent `event`; `false` when the channel has
    /// no way to reach them (logged) or the outbox is off.
    pub(super) async fn send_late(&self, event: &Event, text: &str) -> bool {
        let (Some(outbox), Some(channel)) = (&self.outbox, self.channels.get(&event.channel_id))
        else {
            tracing::warn!(key = %event.dedupe_key, "late answer dropped: the outbox is off");
            return false;
        };
        let Some(message) = late::late_message(channel, event, text) else {
            tracing::warn!(channel = %event.channel_id, key = %event.dedupe_key, "late answer dropped: the channel cannot send it actively");
            return false;
        };
        let env = late::late_envelope(event, message, self.bot.clock.now_ms());
        match outbox.enqueue(env).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(channel = %event.channel_id, error = %e, "late answer not queued");
                false
            }
        }
    }

    /// Records a failed run (`attempts` failed before it): retried after a backoff that doubles
    /// from the sweep grace period up to an hour, dead after `handler_max_attempts`.
    pub(super) async fn record_failure(&self, inbox_id: i64, attempts: i64, reason: &str) {
        let now = self.bot.clock.now_ms();
        let base = i64::try_from(self.options.sweep_after.as_millis()).unwrap_or(60_000);
        let backoff = base
            .saturating_mul(1 << attempts.clamp(0, 16))
            .min(3_600_000);
        let dead = attempts + 1 >= self.options.max_attempts;
        let reason = crate::wecom::xml::clean(reason);
        let failed = Failed {
            id: inbox_id,
            reason: &reason,
            now_ms: now,
            retry_at_ms: now + backoff,
            dead,
        };
        if dead {
            self.metrics.inbox_dead();
            tracing::error!(inbox_id, attempts = attempts + 1, reason = %reason, "event set aside as dead after repeated handler failures");
        }
        if let Err(e) = self.bot.store.inbox_failed(&failed).await {
            tracing::warn!(inbox_id, error = %e, "could not record the failed run");
        }
    }
}
