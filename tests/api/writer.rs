//! The database writer on both backends: the writes waiting together share one transaction,
//! each keeps its own all-or-nothing meaning (a refused write or a statement the database
//! refuses undoes that write alone), and no write is answered as stored when it was not.

use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;
use idgate::db::schema::used_tokens;
use idgate::db::sessions::remember_token;
use idgate::db::{Database, DbError, StoreError};
use tokio::task::JoinHandle;

use crate::helpers::{TestDb, async_on_both_backends};

#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("refused")]
    Refused,
    #[error(transparent)]
    Db(#[from] StoreError),
}

fn stored(database: &Database) -> Vec<String> {
    let mut conn = database.conn().unwrap_or_else(|e| panic!("{e}"));
    let mut rows: Vec<String> = used_tokens::table
        .select(used_tokens::token_hash)
        .load(&mut *conn)
        .unwrap_or_else(|e| panic!("{e}"));
    rows.sort();
    rows
}

/// A first write ("first") that the writer runs and holds until `release` is sent: writes queued
/// meanwhile form the next batch.
async fn hold_the_writer(
    database: &Database,
) -> (
    JoinHandle<Result<bool, StoreError>>,
    std::sync::mpsc::Sender<()>,
) {
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (started, has_started) = tokio::sync::oneshot::channel::<()>();
    let db = database.clone();
    let first = tokio::spawn(async move {
        db.write(move |conn| {
            let _ = started.send(());
            let _ = released.recv();
            remember_token(conn, "first", 1)
        })
        .await
    });
    has_started
        .await
        .unwrap_or_else(|e| panic!("the writer runs the first write: {e}"));
    (first, release)
}

/// Waits until `n` writes are queued behind the held one.
async fn queued(database: &Database, n: i64) {
    let counters = database.writer_counters();
    while counters.queued.get() < n {
        tokio::task::yield_now().await;
    }
}

/// Thirty writes in one batch: every third is refused after writing, the next runs a statement
/// the database refuses (a duplicate key) after writing, the others succeed. Only those
/// others are stored, in one commit, and each caller hears its own fate.
async fn a_refused_or_failed_write_undoes_itself_alone(db: TestDb) {
    let database = db.open();
    let counters = database.writer_counters();
    let (first, release) = hold_the_writer(&database).await;
    let writes: Vec<_> = (0..30)
        .map(|i| {
            let database = database.clone();
            tokio::spawn(async move {
                database
                    .write(move |conn| {
                        remember_token(conn, &format!("w{i:02}"), 1)?;
                        match i % 3 {
                            0 => Err(Refused::Refused),
                            1 => {
                                conn.batch_execute(
                                    "INSERT INTO used_tokens (token_hash, expires_at) \
                                     VALUES ('first', 1)",
                                )
                                .map_err(|e| StoreError::from(DbError::Query(e)))?;
                                Ok(i)
                            }
                            _ => Ok(i),
                        }
                    })
                    .await
            })
        })
        .collect();
    queued(&database, 30).await;
    release
        .send(())
        .unwrap_or_else(|e| panic!("the first write waits: {e}"));
    assert!(matches!(first.await, Ok(Ok(true))));
    for (i, write) in writes.into_iter().enumerate() {
        let answer = write.await.unwrap_or_else(|e| panic!("task: {e}"));
        match (i % 3, answer) {
            (0, Err(Refused::Refused)) | (1, Err(Refused::Db(_))) => {}
            (2, Ok(n)) => assert_eq!(n, i),
            (_, other) => panic!("write {i}: {other:?}"),
        }
    }
    let mut expected: Vec<String> = (0..30)
        .filter(|i| i % 3 == 2)
        .map(|i| format!("w{i:02}"))
        .chain(["first".to_string()])
        .collect();
    expected.sort();
    assert_eq!(stored(&database), expected);
    assert_eq!(
        counters.commits.get(),
        2,
        "the first write, then the thirty"
    );
}

/// A write that hides the failure of a statement and says it succeeded: on PostgreSQL the
/// failed statement has aborted the transaction, whose `COMMIT` would store nothing and say
/// nothing, so the whole batch is answered as not stored (and nothing of it is), whether the
/// write is the last of its batch (the commit finds out) or not (the next write's savepoint
/// does); SQLite undoes the failed statement alone and the batch commits. The writer goes on
/// either way.
async fn hiding_a_failed_statement(db: TestDb, followed: bool) {
    let database = db.open();
    let postgres = db.url.starts_with("postgres");
    let (first, release) = hold_the_writer(&database).await;
    let before = {
        let database = database.clone();
        tokio::spawn(async move {
            database
                .write(|conn| remember_token(conn, "before", 1))
                .await
        })
    };
    queued(&database, 1).await;
    let hiding = {
        let database = database.clone();
        tokio::spawn(async move {
            database
                .write(|conn| {
                    remember_token(conn, "hiding", 1)?;
                    let _ = conn.batch_execute(
                        "INSERT INTO used_tokens (token_hash, expires_at) VALUES ('first', 1)",
                    );
                    Ok::<_, StoreError>(true)
                })
                .await
        })
    };
    queued(&database, 2).await;
    let after = followed.then(|| {
        let database = database.clone();
        tokio::spawn(async move {
            database
                .write(|conn| remember_token(conn, "after", 1))
                .await
        })
    });
    if followed {
        queued(&database, 3).await;
    }
    release
        .send(())
        .unwrap_or_else(|e| panic!("the first write waits: {e}"));
    assert!(matches!(first.await, Ok(Ok(true))));
    let mut results = Vec::new();
    for write in [Some(before), Some(hiding), after].into_iter().flatten() {
        results.push(write.await.unwrap_or_else(|e| panic!("task: {e}")));
    }
    let mut expected = vec!["first".to_string()];
    if postgres {
        for (i, answer) in results.iter().enumerate() {
            assert!(
                matches!(answer, Err(StoreError::Db(DbError::Unavailable(_)))),
                "write {i}: {answer:?}"
            );
        }
    } else {
        for (i, answer) in results.iter().enumerate() {
            assert!(matches!(answer, Ok(true)), "write {i}: {answer:?}");
        }
        expected.extend(["before", "hiding"].map(String::from));
        if followed {
            expected.push("after".to_string());
        }
        expected.sort();
    }
    assert_eq!(stored(&database), expected);
    let later = database
        .write(|conn| remember_token(conn, "later", 1))
        .await
        .unwrap_or_else(|e| panic!("the writer goes on: {e}"));
    assert!(later);
}

async fn a_write_hiding_a_failed_statement_last_in_its_batch_is_never_answered_as_stored(
    db: TestDb,
) {
    hiding_a_failed_statement(db, false).await;
}

async fn a_write_hiding_a_failed_statement_inside_its_batch_is_never_answered_as_stored(
    db: TestDb,
) {
    hiding_a_failed_statement(db, true).await;
}

async_on_both_backends!(
    a_refused_or_failed_write_undoes_itself_alone,
    a_write_hiding_a_failed_statement_last_in_its_batch_is_never_answered_as_stored,
    a_write_hiding_a_failed_statement_inside_its_batch_is_never_answered_as_stored,
);
