//! The database writer on both backends: the writes waiting together share one transaction,
//! each keeps its own all-or-nothing meaning (a refused write or a statement the database
//! refuses undoes that write alone; on SQLite a write without a savepoint of its own writes
//! nothing when refused, and a database failure in it loses its batch), and no write is
//! answered as stored when it was not.

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

pub(crate) fn stored(database: &Database) -> Vec<String> {
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
pub(crate) async fn hold_the_writer(
    database: &Database,
) -> (
    JoinHandle<Result<bool, StoreError>>,
    std::sync::mpsc::Sender<()>,
) {
    hold_the_writer_named(database, "first").await
}

/// [`hold_the_writer`] with the held write storing `name`.
async fn hold_the_writer_named(
    database: &Database,
    name: &'static str,
) -> (
    JoinHandle<Result<bool, StoreError>>,
    std::sync::mpsc::Sender<()>,
) {
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (started, has_started) = tokio::sync::oneshot::channel::<()>();
    let mut started = Some(started);
    let db = database.clone();
    let first = tokio::spawn(async move {
        db.write(move |conn| {
            if let Some(started) = started.take() {
                let _ = started.send(());
            }
            let _ = released.recv();
            remember_token(conn, name, 1)
        })
        .await
    });
    has_started
        .await
        .unwrap_or_else(|e| panic!("the writer runs the first write: {e}"));
    (first, release)
}

/// Lets the held write (see [`hold_the_writer`]) finish, then the batch queued behind it: the
/// batch's answers, in its order.
pub(crate) async fn release_then_answers<T>(
    held: JoinHandle<Result<bool, StoreError>>,
    release: std::sync::mpsc::Sender<()>,
    batch: impl IntoIterator<Item = JoinHandle<T>>,
) -> Vec<T> {
    release
        .send(())
        .unwrap_or_else(|e| panic!("the held write waits: {e}"));
    assert!(matches!(held.await, Ok(Ok(true))));
    let mut answers = Vec::new();
    for write in batch {
        answers.push(write.await.unwrap_or_else(|e| panic!("task: {e}")));
    }
    answers
}

/// Waits until `n` writes are queued behind the held one.
pub(crate) async fn queued(database: &Database, n: i64) {
    let counters = database.writer_counters();
    while counters.queued.get() < n {
        tokio::task::yield_now().await;
    }
}

/// Thirty writes of two rows each in one batch: every third is refused after writing, the next
/// runs a statement the database refuses (a duplicate key) after writing, the others succeed.
/// Only those others are stored, both rows of each, in one commit, and each caller hears its
/// own fate.
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
                        remember_token(conn, &format!("w{i:02}-second"), 1)?;
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
    let answers = release_then_answers(first, release, writes).await;
    for (i, answer) in answers.into_iter().enumerate() {
        match (i % 3, answer) {
            (0, Err(Refused::Refused)) | (1, Err(Refused::Db(_))) => {}
            (2, Ok(n)) => assert_eq!(n, i),
            (_, other) => panic!("write {i}: {other:?}"),
        }
    }
    let mut expected: Vec<String> = (0..30)
        .filter(|i| i % 3 == 2)
        .flat_map(|i| [format!("w{i:02}"), format!("w{i:02}-second")])
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
/// does), and whether it has a savepoint of its own or not (`unguarded`: the batch is then run
/// again with one for every write, and fails the same way); SQLite undoes the failed statement
/// alone and the batch commits. The writer goes on either way.
async fn hiding_a_failed_statement(db: TestDb, followed: bool, unguarded: bool) {
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
        let hide = |conn: &mut idgate::db::AnyConnection| {
            remember_token(conn, "hiding", 1)?;
            let _ = conn.batch_execute(
                "INSERT INTO used_tokens (token_hash, expires_at) VALUES ('first', 1)",
            );
            Ok::<_, StoreError>(true)
        };
        tokio::spawn(async move {
            if unguarded {
                database
                    .write_unguarded(move |conn, _run| {
                        hide(conn).map_err(idgate::db::Unguarded::<StoreError>::Store)
                    })
                    .await
            } else {
                database.write(hide).await
            }
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
    let writes = [Some(before), Some(hiding), after].into_iter().flatten();
    let results = release_then_answers(first, release, writes).await;
    assert_eq!(
        database.writer_counters().retries.get(),
        u64::from(postgres && unguarded),
        "run again only on PostgreSQL, and only with a write without a savepoint of its own"
    );
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
    hiding_a_failed_statement(db, false, false).await;
}

async fn a_write_hiding_a_failed_statement_inside_its_batch_is_never_answered_as_stored(
    db: TestDb,
) {
    hiding_a_failed_statement(db, true, false).await;
}

async fn an_unguarded_write_hiding_a_failed_statement_last_in_its_batch_is_never_answered_as_stored(
    db: TestDb,
) {
    hiding_a_failed_statement(db, false, true).await;
}

async fn an_unguarded_write_hiding_a_failed_statement_inside_its_batch_is_never_answered_as_stored(
    db: TestDb,
) {
    hiding_a_failed_statement(db, true, true).await;
}

/// Writes that queue while a commit is in progress are committed together, in one
/// transaction.
async fn writes_queued_during_a_commit_share_the_next_one(test_db: TestDb) {
    let db = test_db.open();
    let counters = db.writer_counters();
    // The writer holds the first write until the others are queued behind it.
    let (first, release) = hold_the_writer(&db).await;
    let rest: Vec<_> = (0..39)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                db.write(move |conn| remember_token(conn, &format!("t{i:02}"), 1))
                    .await
            })
        })
        .collect();
    queued(&db, 39).await;
    for answer in release_then_answers(first, release, rest).await {
        assert!(answer.expect("write"));
    }
    assert_eq!(counters.writes.get(), 40);
    assert_eq!(
        counters.commits.get(),
        2,
        "the first write, then the 39 others"
    );
    assert_eq!(stored(&db).len(), 40);
}

/// A write after which the database has ended the batch's transaction (as SQLite does on a
/// full disk) fails its whole batch: no write of it is stored or answered as a success, and
/// none runs outside the batch.
async fn a_batch_whose_transaction_the_database_ended_stores_nothing(test_db: TestDb) {
    let db = test_db.open();
    let (first, release) = hold_the_writer(&db).await;
    let before = {
        let db = db.clone();
        tokio::spawn(async move { db.write(|conn| remember_token(conn, "before", 1)).await })
    };
    queued(&db, 1).await;
    let ending = {
        let db = db.clone();
        tokio::spawn(async move {
            db.write(|conn| {
                diesel::connection::SimpleConnection::batch_execute(conn, "ROLLBACK")
                    .map_err(DbError::Query)?;
                Ok::<_, StoreError>(true)
            })
            .await
        })
    };
    queued(&db, 2).await;
    let after = {
        let db = db.clone();
        tokio::spawn(async move { db.write(|conn| remember_token(conn, "after", 1)).await })
    };
    queued(&db, 3).await;
    for answer in release_then_answers(first, release, [before, ending, after]).await {
        assert!(
            matches!(answer, Err(StoreError::Db(DbError::Unavailable(_)))),
            "{answer:?}"
        );
    }
    assert_eq!(stored(&db), vec!["first".to_string()]);
    let later = db
        .write(|conn| remember_token(conn, "later", 1))
        .await
        .expect("the writer goes on");
    assert!(later);
}

/// What a write stored is there for every other connection once it has answered.
async fn an_answered_write_is_committed(test_db: TestDb) {
    let db = test_db.open();
    let first = db
        .write(|conn| remember_token(conn, "once", 1))
        .await
        .expect("write");
    let again = db
        .write(|conn| remember_token(conn, "once", 1))
        .await
        .expect("write");
    assert!(first);
    assert!(!again, "the unique row is refused the second time");
    assert_eq!(stored(&db), vec!["once".to_string()]);
}

/// Writes beyond the queue's bound are refused at once (503), never queued without bound;
/// those queued before are all done.
async fn a_full_queue_refuses_writes_at_once(test_db: TestDb) {
    let db = test_db.open();
    let (first, release) = hold_the_writer(&db).await;
    let extra = 5;
    let writes: Vec<_> = (0..idgate::db::MAX_QUEUE + extra)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                db.write(move |conn| remember_token(conn, &format!("q{i}"), 1))
                    .await
            })
        })
        .collect();
    let counters = db.writer_counters();
    // Every write has either queued or been refused.
    let mut refused = 0;
    let mut pending = Vec::new();
    for write in writes {
        if write.is_finished() {
            let answer = write.await.expect("task");
            assert!(
                matches!(answer, Err(StoreError::Db(DbError::Unavailable(_)))),
                "{answer:?}"
            );
            refused += 1;
        } else {
            pending.push(write);
        }
    }
    while counters.queued.get() + refused < idgate::db::MAX_QUEUE + extra - 1 {
        tokio::task::yield_now().await;
        let (done, waiting): (Vec<_>, Vec<_>) = pending.into_iter().partition(|w| w.is_finished());
        pending = waiting;
        for write in done {
            let answer = write.await.expect("task");
            assert!(answer.is_err(), "refused while the writer is held");
            refused += 1;
        }
    }
    assert!(counters.queued.get() <= idgate::db::MAX_QUEUE, "bounded");
    let mut stored = 0;
    for answer in release_then_answers(first, release, pending).await {
        match answer {
            Ok(true) => stored += 1,
            Ok(false) => {}
            Err(_) => refused += 1,
        }
    }
    assert!(refused >= extra, "{refused} refused");
    assert_eq!(stored + refused, idgate::db::MAX_QUEUE + extra);
}

/// A job that panics (a bug) fails its batch (here itself alone): its caller is answered
/// with an error, nothing is stored, and later writes still work.
async fn a_panicking_write_fails_its_batch_and_the_writer_goes_on(test_db: TestDb) {
    let db = test_db.open();
    let panicked = db
        .write::<bool, StoreError, _>(|conn| {
            let _ = remember_token(conn, "before-panic", 1);
            panic!("a bug in a job");
        })
        .await;
    assert!(
        matches!(panicked, Err(StoreError::Db(DbError::Unavailable(_)))),
        "{panicked:?}"
    );
    let later = db
        .write(|conn| remember_token(conn, "after", 1))
        .await
        .expect("a later write");
    assert!(later);
    assert_eq!(stored(&db), vec!["after".to_string()]);
}

/// Writes without a savepoint of their own (`write_unguarded`) in one batch with ordinary ones:
/// a refusal (which wrote nothing) leaves the others stored, in one commit; a database failure
/// after a write fails the whole batch on SQLite, where it cannot be undone alone, and nothing
/// of the batch is stored, while on PostgreSQL the batch is rolled back and run again with a
/// savepoint for every write (each write runs twice), which undoes the failing one alone. The
/// writer goes on either way.
async fn unguarded_writes_share_a_batch_and_a_failure_fails_it_on_sqlite(db: TestDb) {
    use idgate::db::Unguarded;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let database = db.open();
    let postgres = db.url.starts_with("postgres");
    let counters = database.writer_counters();
    let runs = Arc::new(AtomicUsize::new(0));
    let unguarded = |name: &'static str, outcome: u8| {
        let database = database.clone();
        let runs = runs.clone();
        tokio::spawn(async move {
            database
                .write_unguarded(move |conn, _run| {
                    runs.fetch_add(1, Ordering::SeqCst);
                    match outcome {
                        // Refused before writing anything.
                        0 => Err(Unguarded::Refused(Refused::Refused)),
                        // Wrote, then the database refused a statement (a duplicate key).
                        1 => {
                            remember_token(conn, name, 1).map_err(Unguarded::Store)?;
                            remember_token(conn, name, 1).map_err(Unguarded::Store)?;
                            conn.batch_execute(&format!(
                            "INSERT INTO used_tokens (token_hash, expires_at) VALUES ('{name}', 1)"
                        ))
                        .map_err(|e| Unguarded::Store(StoreError::from(DbError::Query(e))))?;
                            Ok(false)
                        }
                        _ => remember_token(conn, name, 1).map_err(Unguarded::Store),
                    }
                })
                .await
        })
    };
    let guarded = |name: &'static str| {
        let database = database.clone();
        tokio::spawn(async move {
            database
                .write(move |conn| remember_token(conn, name, 1))
                .await
                .map_err(Refused::Db)
        })
    };

    // A refusal among successes.
    let (first, release) = hold_the_writer(&database).await;
    let batch = [
        unguarded("u1", 2),
        unguarded("refused", 0),
        guarded("g1"),
        unguarded("u2", 2),
    ];
    queued(&database, 4).await;
    let answers = release_then_answers(first, release, batch).await;
    assert!(
        matches!(
            answers.as_slice(),
            [Ok(true), Err(Refused::Refused), Ok(true), Ok(true)]
        ),
        "{answers:?}"
    );
    assert_eq!(stored(&database), ["first", "g1", "u1", "u2"]);
    assert_eq!(counters.commits.get(), 2, "the first write, then the four");
    assert_eq!(runs.load(Ordering::SeqCst), 3, "each write ran once");
    assert_eq!(counters.retries.get(), 0);

    // A database failure after a write.
    runs.store(0, Ordering::SeqCst);
    let (second, release) = hold_the_writer_named(&database, "second").await;
    let batch = [
        guarded("g2"),
        unguarded("failing", 1),
        unguarded("u3", 2),
        guarded("g3"),
    ];
    queued(&database, 4).await;
    let answers = release_then_answers(second, release, batch).await;
    if postgres {
        assert!(
            matches!(
                answers.as_slice(),
                [Ok(true), Err(Refused::Db(_)), Ok(true), Ok(true)]
            ),
            "{answers:?}"
        );
        assert_eq!(
            stored(&database),
            ["first", "g1", "g2", "g3", "second", "u1", "u2", "u3"]
        );
        // The failing write ran without a savepoint (u3 did not, the batch ended there), then
        // the batch again, each write in a savepoint of its own.
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert_eq!(counters.retries.get(), 1);
        assert_eq!(
            counters.commits.get(),
            4,
            "the held write, then this batch once"
        );
    } else {
        assert!(
            answers.iter().all(|a| matches!(a, Err(Refused::Db(_)))),
            "{answers:?}"
        );
        assert_eq!(stored(&database), ["first", "g1", "second", "u1", "u2"]);
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "the batch ended at the failure"
        );
        assert_eq!(counters.retries.get(), 0);
    }
    let later = database
        .write_unguarded(|conn, _run| {
            remember_token(conn, "later", 1).map_err(Unguarded::<StoreError>::Store)
        })
        .await
        .unwrap_or_else(|e| panic!("the writer goes on: {e}"));
    assert!(later);
    assert!(stored(&database).contains(&"later".to_string()));
}

/// The answers of writes queued on threads of actix (the HTTP workers').
mod on_actix_threads {
    use idgate::db::sessions::remember_token;

    use super::{Refused, hold_the_writer, queued, release_then_answers, stored};
    use crate::helpers::{TestDb, on_both_backends};

    /// Kept by a write's work, which the writer lets go with the answer: records the thread the
    /// answer was given on.
    struct AnsweredOn(std::sync::Arc<std::sync::Mutex<Vec<std::thread::ThreadId>>>);

    impl Drop for AnsweredOn {
        fn drop(&mut self) {
            if let Ok(mut threads) = self.0.lock() {
                threads.push(std::thread::current().id());
            }
        }
    }

    /// Writes queued from an HTTP worker's thread (an actix arbiter) are answered on that thread,
    /// which the writer wakes once for the whole batch; each still gets its own outcome.
    fn a_batch_queued_on_a_worker_thread_is_answered_on_it(test_db: &TestDb) {
        let database = test_db.open();
        let answered_on = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let worker = std::thread::current().id();
        let answers = actix_web::rt::System::new().block_on({
            let answered_on = answered_on.clone();
            let database = database.clone();
            async move {
                let (first, release) = hold_the_writer(&database).await;
                let writes: Vec<_> = (0..20)
                    .map(|i| {
                        let database = database.clone();
                        let witness = AnsweredOn(answered_on.clone());
                        actix_web::rt::spawn(async move {
                            database
                                .write(move |conn| {
                                    let _kept = &witness;
                                    remember_token(conn, &format!("w{i:02}"), 1)?;
                                    if i % 4 == 3 {
                                        Err(Refused::Refused)
                                    } else {
                                        Ok(i)
                                    }
                                })
                                .await
                        })
                    })
                    .collect();
                queued(&database, 20).await;
                release_then_answers(first, release, writes).await
            }
        });
        for (i, answer) in answers.into_iter().enumerate() {
            match (i % 4, answer) {
                (3, Err(Refused::Refused)) => {}
                (_, Ok(n)) if i % 4 != 3 => assert_eq!(n, i),
                (_, other) => panic!("write {i}: {other:?}"),
            }
        }
        let threads = answered_on.lock().map(|t| t.clone()).unwrap_or_default();
        assert_eq!(threads.len(), 20);
        assert!(
            threads.iter().all(|t| *t == worker),
            "every answer was given on the worker's thread"
        );
        assert_eq!(stored(&database).len(), 1 + 15);
    }

    /// A thread that runs another runtime (the first one still there, no longer running) has its
    /// writes answered on the runtime that waits for them.
    fn a_thread_with_another_runtime_is_answered_on_it(test_db: &TestDb) {
        let database = test_db.open();
        let write = |name: &'static str| {
            let database = database.clone();
            async move {
                tokio::time::timeout(
                    std::time::Duration::from_secs(3),
                    database.write(move |conn| remember_token(conn, name, 1)),
                )
                .await
            }
        };
        let first = actix_web::rt::System::new();
        assert!(matches!(first.block_on(write("one")), Ok(Ok(true))));
        let second = actix_web::rt::System::new();
        assert!(matches!(second.block_on(write("two")), Ok(Ok(true))));
        drop(first);
        assert_eq!(stored(&database), ["one", "two"]);
    }

    on_both_backends!(
        a_batch_queued_on_a_worker_thread_is_answered_on_it,
        a_thread_with_another_runtime_is_answered_on_it,
    );
}

async_on_both_backends!(
    unguarded_writes_share_a_batch_and_a_failure_fails_it_on_sqlite,
    writes_queued_during_a_commit_share_the_next_one,
    a_batch_whose_transaction_the_database_ended_stores_nothing,
    an_answered_write_is_committed,
    a_full_queue_refuses_writes_at_once,
    a_panicking_write_fails_its_batch_and_the_writer_goes_on,
    a_refused_or_failed_write_undoes_itself_alone,
    a_write_hiding_a_failed_statement_last_in_its_batch_is_never_answered_as_stored,
    a_write_hiding_a_failed_statement_inside_its_batch_is_never_answered_as_stored,
    an_unguarded_write_hiding_a_failed_statement_last_in_its_batch_is_never_answered_as_stored,
    an_unguarded_write_hiding_a_failed_statement_inside_its_batch_is_never_answered_as_stored,
);
