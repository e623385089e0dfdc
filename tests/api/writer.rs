//! Batched writes share one transaction; one failing write must not take the others with it,
//! and a write retried alone after a rolled-back round must not be applied twice.

use std::sync::Arc;

use yunying::on_tx;
use yunying::store::{StoreError, Tx};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

backend_tests!(one_failing_write_leaves_the_others_committed_once);

async fn insert_count(tx: &mut Tx, day: i32) -> Result<i32, StoreError> {
    if day == 13 {
        // A statement the database refuses: aborts the shared round.
        on_tx!(tx, c => {
            sqlx::query("insert into no_such_table values (1)").execute(&mut **c).await?;
        });
    }
    on_tx!(tx, c => {
        sqlx::query("insert into signin_counts (scope, day, signins) values ('t', $1, 1)")
            .bind(day).execute(&mut **c).await?;
    });
    Ok(day)
}

async fn one_failing_write_leaves_the_others_committed_once(backend: Backend) {
    let app = Arc::new(TestApp::spawn(backend).await);
    let mut tasks = Vec::new();
    for day in 0..64 {
        let app = Arc::clone(&app);
        tasks.push(tokio::spawn(async move {
            app.app_state
                .ingress
                .writer()
                .run_batched(move |tx| Box::pin(insert_count(tx, day)))
                .await
                .expect("writer running")
        }));
    }
    let mut failed = Vec::new();
    for (day, task) in tasks.into_iter().enumerate() {
        match task.await.expect("task") {
            Ok(echo) => assert_eq!(echo, i32::try_from(day).expect("day")),
            Err(_) => failed.push(day),
        }
    }
    assert_eq!(failed, vec![13]);
    let rows: Vec<(i32, i64)> = yunying::on_pool!(app.store.pool(), p => sqlx::query_as(
        "select day, signins from signin_counts where scope = 't' order by day")
        .fetch_all(p).await.expect("rows"));
    let expected: Vec<(i32, i64)> = (0..64).filter(|d| *d != 13).map(|d| (d, 1)).collect();
    assert_eq!(rows, expected);
}
