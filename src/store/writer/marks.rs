//! Reply-less processed marks wait for company before they are written.
//!
//! A mark rewrites an inbox row that an earlier commit wrote. Written with the very next batch,
//! as they used to be, the marks of a few callbacks dirtied the same inbox pages again at every
//! commit, and under load a mark arriving at an idle writer cost a commit of its own. Waiting until
//! [`MARKS_PER_WRITE`] have gathered, or the oldest has waited [`MARK_DELAY`], lets one commit
//! rewrite each page once for many rows (docs/benchmarks.md §2). That is SQLite's
//! case. On PostgreSQL the marks of a hundred milliseconds made one commit noticeably longer than
//! the rest, and the callbacks queued behind it (p90 at 5,000/s 4.2–4.4 → 5.0–5.4 ms): there the
//! marks go with the next batch, as before ([`MarkQueue::immediate`]).
//!
//! Nothing depends on a mark being written soon: a retry is recognised by its inbox row, not by its
//! mark, and the replies that retries need go through the durable path. Only the sweeper reads the
//! marks, and it leaves rows alone until they are `server.sweep_after_secs` old (at least 5 s),
//! far longer than a mark waits. A crash loses the waiting marks, as it lost the marks of the next
//! batch before: the sweeper runs those events again, and handlers are idempotent per event.

use std::time::Duration;

use tokio::time::Instant;

use crate::store::inbox::Processed;

/// Marks written together once this many wait.
pub(super) const MARKS_PER_WRITE: usize = 512;

/// The longest a mark waits for others.
pub(super) const MARK_DELAY: Duration = Duration::from_millis(100);

/// The waiting marks.
#[derive(Debug)]
pub(super) struct MarkQueue {
    marks: Vec<Processed>,
    /// When the oldest waiting mark came.
    since: Option<Instant>,
    /// How long a mark may wait for others: [`MARK_DELAY`], or zero.
    delay: Duration,
}

impl MarkQueue {
    /// Marks wait for company (SQLite).
    pub(super) fn gathering() -> Self {
        Self {
            marks: Vec::new(),
            since: None,
            delay: MARK_DELAY,
        }
    }

    /// Marks go with the next batch (PostgreSQL).
    pub(super) fn immediate() -> Self {
        Self {
            delay: Duration::ZERO,
            ..Self::gathering()
        }
    }

    /// Adds a mark; `true` when none was waiting, so the writer must be told. The clock is read
    /// only for a first mark: later ones do not move the due time.
    pub(super) fn push(&mut self, mark: Processed, now: impl FnOnce() -> Instant) -> bool {
        self.marks.push(mark);
        let first = self.since.is_none();
        if first {
            self.since = Some(now());
        }
        first
    }

    /// When the waiting marks must be written, if any wait.
    pub(super) fn due_at(&self) -> Option<Instant> {
        self.since.map(|since| since + self.delay)
    }

    /// All waiting marks when enough have gathered, the oldest is due or the writer is closing;
    /// none otherwise.
    pub(super) fn take_due(&mut self, now: Instant, closing: bool) -> Vec<Processed> {
        let due = self.due_at().is_some_and(|at| now >= at);
        if closing || due || self.marks.len() >= MARKS_PER_WRITE {
            self.since = None;
            std::mem::take(&mut self.marks)
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(id: i64) -> Processed {
        Processed {
            id,
            at: 0,
            reply: None,
        }
    }

    #[test]
    fn only_the_first_waiting_mark_wakes_the_writer() {
        let (mut queue, now) = (MarkQueue::gathering(), Instant::now());
        assert!(queue.push(mark(1), || now));
        assert!(!queue.push(mark(2), || unreachable!(
            "the clock is read for a first mark only"
        )));
        assert_eq!(queue.take_due(now + MARK_DELAY, false).len(), 2);
        assert!(queue.push(mark(3), || now), "an empty queue wakes it again");
    }

    #[test]
    fn marks_wait_until_the_oldest_is_due() {
        let (mut queue, start) = (MarkQueue::gathering(), Instant::now());
        queue.push(mark(1), || start);
        queue.push(mark(2), || start + MARK_DELAY / 2);
        assert_eq!(
            queue.due_at(),
            Some(start + MARK_DELAY),
            "the oldest sets the time"
        );
        assert!(queue.take_due(start + MARK_DELAY / 2, false).is_empty());
        let ids: Vec<i64> = queue
            .take_due(start + MARK_DELAY, false)
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(ids, vec![1, 2]);
        assert_eq!(queue.due_at(), None, "nothing waits any more");
    }

    #[test]
    fn enough_marks_go_at_once() {
        let (mut queue, now) = (MarkQueue::gathering(), Instant::now());
        for (_, id) in (1..MARKS_PER_WRITE).zip(0_i64..) {
            queue.push(mark(id), || now);
        }
        assert!(queue.take_due(now, false).is_empty());
        queue.push(mark(-1), || now);
        assert_eq!(queue.take_due(now, false).len(), MARKS_PER_WRITE);
    }

    #[test]
    fn without_a_delay_marks_go_with_the_next_batch() {
        let (mut queue, now) = (MarkQueue::immediate(), Instant::now());
        assert!(queue.push(mark(1), || now));
        assert_eq!(queue.due_at(), Some(now));
        assert_eq!(queue.take_due(now, false).len(), 1);
    }

    #[test]
    fn a_closing_writer_takes_every_mark() {
        let (mut queue, now) = (MarkQueue::gathering(), Instant::now());
        queue.push(mark(1), || now);
        assert_eq!(queue.take_due(now, true).len(), 1);
        assert!(queue.take_due(now, true).is_empty());
    }
}
