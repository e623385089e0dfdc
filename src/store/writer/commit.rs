//! One group commit of a gathered batch, and the answers to its callers.

use tokio::sync::oneshot;

use super::{Delivery, WriteError, WriterOptions};
use crate::store::batch::BatchCommitter;
use crate::store::inbox::{Accepted, NewInbox, Processed};
use crate::store::lifecycle::StageChange;
use crate::store::{self, StoreError};

/// What one group commit writes.
pub(super) struct Commit<'a> {
    pub(super) rows: &'a [NewInbox],
    pub(super) events: &'a [Delivery],
    pub(super) marks: &'a [Processed],
    pub(super) stages: &'a [StageChange],
}

/// Who waits for one group commit.
pub(super) struct Answers {
    pub(super) accepts: Vec<oneshot::Sender<Result<Accepted, WriteError>>>,
    pub(super) marks: Vec<(i64, oneshot::Sender<Result<Accepted, WriteError>>)>,
    pub(super) stages: Vec<oneshot::Sender<Result<(), WriteError>>>,
}

/// Commits a batch and answers its callers. A batch that fails for a reason other than an
/// unavailable database is committed again one row at a time, so one bad row (a value the
/// database refuses) fails only its own callback.
pub(super) fn commit_and_answer<'a>(
    committer: &'a mut BatchCommitter,
    commit: Commit<'a>,
    answers: Answers,
    options: &'a WriterOptions,
) -> store::BoxFuture<'a, ()> {
    Box::pin(async move {
        let others = !(commit.marks.is_empty() && commit.stages.is_empty());
        let splittable = commit.rows.len() > 1 || (commit.rows.len() == 1 && others);
        let Some((error, answers)) = commit_once(committer, &commit, answers, options).await else {
            return;
        };
        if error.is_unavailable() || !splittable {
            answer_failure(&error, answers);
            return;
        }
        tracing::warn!(error = %error, rows = commit.rows.len(), "group commit failed; committing its rows one by one");
        let Answers {
            accepts,
            marks,
            stages,
        } = answers;
        let rest = Commit {
            rows: &[],
            events: &[],
            marks: commit.marks,
            stages: commit.stages,
        };
        let rest_answers = Answers {
            accepts: Vec::new(),
            marks,
            stages,
        };
        commit_and_answer(committer, rest, rest_answers, options).await;
        for (i, done) in accepts.into_iter().enumerate() {
            let one = Commit {
                rows: &commit.rows[i..=i],
                events: &commit.events[i..=i],
                marks: &[],
                stages: &[],
            };
            let one_answer = Answers {
                accepts: vec![done],
                marks: Vec::new(),
                stages: Vec::new(),
            };
            commit_and_answer(committer, one, one_answer, options).await;
        }
    })
}

fn answer_failure(e: &StoreError, answers: Answers) {
    tracing::warn!(error = %e, "group commit failed");
    let err = WriteError::from(e);
    for done in answers
        .accepts
        .into_iter()
        .chain(answers.marks.into_iter().map(|(_, d)| d))
    {
        let _ = done.send(Err(err.clone()));
    }
    for done in answers.stages {
        let _ = done.send(Err(err.clone()));
    }
}

/// One attempt at a group commit; on failure the error and the callers still to answer.
async fn commit_once(
    committer: &mut BatchCommitter,
    commit: &Commit<'_>,
    answers: Answers,
    options: &WriterOptions,
) -> Option<(StoreError, Answers)> {
    // The stage check runs after the commit: its "now" is no earlier than any row's arrival.
    let now = commit.rows.iter().map(|r| r.received_at).max().unwrap_or(0);
    let mut first_staged: Vec<(String, String)> = Vec::new();
    let started = std::time::Instant::now();
    let rows = commit.rows.len();
    let result = committer
        .commit_batch(
            commit.rows,
            commit.marks,
            commit.stages,
            |outcomes| {
                let mut fresh = commit
                    .events
                    .iter()
                    .zip(outcomes)
                    .filter(|(_, o)| matches!(o, Accepted::New { .. }))
                    .map(|(e, _)| e);
                options.rules.changes(&mut fresh)
            },
            |changes, created| {
                options
                    .rules
                    .first_stages(changes, created, now)
                    .into_iter()
                    .map(|(member, change)| {
                        first_staged.push((member.scope.clone(), member.platform_user_id.clone()));
                        change
                    })
                    .collect()
            },
        )
        .await;
    match result {
        Ok(committed) => {
            options
                .rules
                .committed(started.elapsed().as_secs_f64(), rows);
            // Before the answers: the callers' stage checks must find these members checked.
            for (scope, user) in &first_staged {
                options.rules.staged(scope, user, now);
            }
            for (done, outcome) in answers.accepts.into_iter().zip(committed.accepted) {
                let _ = done.send(Ok(outcome));
            }
            for (id, done) in answers.marks {
                let _ = done.send(Ok(Accepted::New { id }));
            }
            let stages = committed.stages_failed.as_ref().map(WriteError::from);
            if let Some(e) = &stages {
                tracing::warn!(error = %e, "stage changes not written; the periodic job will set them");
            }
            for done in answers.stages {
                let _ = done.send(stages.clone().map_or(Ok(()), Err));
            }
        }
        Err(e) => return Some((e, answers)),
    }
    None
}
