//! The database writer with group commit, for SQLite and PostgreSQL alike.
//!
//! A durable commit costs a flush to disk: on SQLite (WAL mode, `synchronous=FULL`) a write of
//! every page the transaction changed plus an `fsync`, on PostgreSQL a WAL flush, and each
//! transaction on PostgreSQL also its `BEGIN`/`COMMIT` round trips. Sign-ins arriving together
//! therefore go to one thread that owns a write connection: it takes every job waiting in its
//! queue (up to [`MAX_BATCH`]), runs each in a savepoint of its own inside one transaction
//! (`BEGIN IMMEDIATE` on SQLite), commits once, and only then answers the callers. Each job
//! keeps its own all-or-nothing meaning: a job that returns an error (a refusal, or a statement
//! PostgreSQL refused, such as the loser of a deadlock with another instance's batch) has its
//! savepoint rolled back and the others are kept. A job may run without a savepoint
//! ([`Writer::write_unguarded`]: a sign-in whose writes all come after its last rule): its
//! refusals write nothing; a database failure in it loses the whole batch on SQLite, while on
//! PostgreSQL the batch is rolled back and run again with a savepoint for every job, so that
//! the failure undoes that job alone. A commit that fails answers every job of the batch with
//! that failure, so no caller is ever told that something was stored when it was not.
//!
//! Several instances on one PostgreSQL database each have their writer; what one batch writes
//! is seen by the others when it commits, and the unique keys (the replay guard's above all)
//! make a second instance's insert of the same row wait for the first batch's fate.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;

use diesel::connection::{AnsiTransactionManager, TransactionManager};

use super::sessions::{SignInTogether, SignedInTogether, how_many_together, sign_in_together};
use super::{AnyConnection, DbError, Manager, StoreError};
use crate::metrics::WriterCounters;

/// The most jobs one commit carries: enough to share an `fsync` among a burst of sign-ins, few
/// enough that the first of them does not wait long behind the rest.
const MAX_BATCH: usize = 128;

/// The most writes waiting for the writer: beyond, a write is refused at once (503) rather
/// than queued without bound.
pub const MAX_QUEUE: i64 = 10_000;

/// A queued write: run by the writer (run again when its batch is run again, see
/// [`run_batch`]), then answered once the batch's fate is known.
trait Job: Send {
    /// Whether the work must have a savepoint of its own ([`Writer::write`]) or may run without
    /// one ([`Writer::write_unguarded`]).
    fn needs_savepoint(&self) -> bool;
    /// The common sign-in that the work makes, which the writer may make in one statement with
    /// those queued beside it ([`Writer::write_unguarded`]).
    fn sign_in(&self) -> Option<&SignInTogether>;
    /// Gives the work what that statement did for its sign-in, for its next run.
    fn join(&mut self, part: Result<SignedInTogether, String>);
    /// Runs the work, which has a savepoint of its own set by the writer when `guarded`
    /// (PostgreSQL only), and keeps its result for [`Job::answer`].
    fn run(&mut self, conn: &mut AnyConnection, guarded: bool) -> JobOutcome;
    /// Answers the caller: with the work's result when the batch committed, else with the
    /// batch's failure.
    fn answer(self: Box<Self>, committed: Result<(), &str>);
    /// The thread that queued the job, to which the writer hands its answer ([`Home`]).
    fn home(&self) -> Option<&Home>;
    /// Whether the caller has stopped waiting (it answered its client that the database did
    /// not answer in time).
    fn abandoned(&self) -> bool;
}

/// What became of a job's work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobOutcome {
    /// Done, or refused having written nothing: its savepoint (if any) is kept.
    Kept,
    /// Failed: rolled back to its savepoint (PostgreSQL; on SQLite diesel's savepoint has been
    /// rolled back already).
    Undone,
    /// The database failed in a job without a savepoint of its own, maybe after it wrote
    /// something: on SQLite the whole batch fails; on PostgreSQL it is run again, each job in a
    /// savepoint of its own.
    Unsettled,
}

/// How a job without a savepoint of its own ([`Writer::write_unguarded`]) failed.
#[derive(Debug)]
pub enum Unguarded<E> {
    /// Refused, having written nothing: the batch goes on.
    Refused(E),
    /// The database failed, maybe after the job wrote something: on SQLite the whole batch
    /// fails with it; on PostgreSQL the batch is run again with a savepoint for each job, which
    /// undoes this job alone.
    Store(StoreError),
}

/// How a job's work runs: in a savepoint of its own or not, and, for a common sign-in, what
/// the statement of the sign-ins queued together did for it ([`Writer::write_unguarded`]).
#[derive(Debug)]
pub struct Run {
    /// In a savepoint of its own that the writer set (PostgreSQL's second run of a batch).
    pub guarded: bool,
    /// The sign-in's part of [`sign_in_together`], made for it before it runs (PostgreSQL,
    /// first run of a batch), or why that statement failed; `None` when it was not made.
    pub joined: Option<Result<SignedInTogether, String>>,
}

/// A job of [`Writer::submit`]: the work, and where its answer goes.
struct Queued<T, E, F> {
    work: F,
    needs_savepoint: bool,
    sign_in: Option<SignInTogether>,
    joined: Option<Result<SignedInTogether, String>>,
    result: Option<Result<T, E>>,
    answer: tokio::sync::oneshot::Sender<Result<T, E>>,
    home: Option<Home>,
    span: tracing::Span,
}

impl<T, E, F> Job for Queued<T, E, F>
where
    F: FnMut(&mut AnyConnection, Run) -> (JobOutcome, Result<T, E>) + Send,
    T: Send,
    E: From<StoreError> + Send,
{
    fn needs_savepoint(&self) -> bool {
        self.needs_savepoint
    }

    fn sign_in(&self) -> Option<&SignInTogether> {
        self.sign_in.as_ref()
    }

    fn join(&mut self, part: Result<SignedInTogether, String>) {
        self.joined = Some(part);
    }

    fn run(&mut self, conn: &mut AnyConnection, guarded: bool) -> JobOutcome {
        let _entered = self.span.enter();
        // Made for this run only (a part left by a first run that stopped early is stale).
        let joined = self.joined.take().filter(|_| !guarded);
        let (outcome, result) = (self.work)(conn, Run { guarded, joined });
        self.result = Some(result);
        outcome
    }

    fn answer(self: Box<Self>, committed: Result<(), &str>) {
        let Queued { result, answer, .. } = *self;
        let answer_now = match (committed, result) {
            (Ok(()), Some(result)) => result,
            (Err(failure), _) => Err(unavailable(failure)),
            (Ok(()), None) => Err(unavailable("the database writer did not run the work")),
        };
        let _ = answer.send(answer_now);
    }

    fn home(&self) -> Option<&Home> {
        self.home.as_ref()
    }

    fn abandoned(&self) -> bool {
        self.answer.is_closed()
    }
}

/// Where the answers of a batch are handed over: a task on the (actix) thread that queued the
/// jobs, which answers them there. The writer wakes that thread once for the whole batch
/// rather than once for each job: on one core, a wake-up of a sleeping request thread from the
/// writer's `send` switches to it at once, and back for the next answer (about nine times per
/// commit of fifteen sign-ins, measured: see docs/performance.md). Jobs queued from a thread
/// without an actix arbiter (commands, tests on a plain tokio runtime) are answered from the
/// writer thread, as is every job whose thread no longer takes deliveries.
type Home = tokio::sync::mpsc::UnboundedSender<Delivery>;

/// The answers of one batch for one thread: the jobs, and the batch's failure if it failed.
struct Delivery {
    jobs: Vec<Box<dyn Job>>,
    failure: Option<String>,
}

impl Delivery {
    /// Answers every job, on the thread that calls it.
    fn answer(self) {
        let committed = self.failure.as_deref().map_or(Ok(()), Err);
        for job in self.jobs {
            job.answer(committed);
        }
    }
}

thread_local! {
    /// This thread's [`Home`], with the runtime its task runs on.
    static HOME: std::cell::RefCell<Option<(tokio::runtime::Id, Home)>> =
        const { std::cell::RefCell::new(None) };
}

/// This thread's [`Home`], started on first use (and again on another runtime of the same
/// thread); `None` outside an actix arbiter.
fn home() -> Option<Home> {
    let runtime = tokio::runtime::Handle::try_current().ok()?.id();
    HOME.with(|home| {
        let mut home = home.borrow_mut();
        let current = home
            .as_ref()
            .filter(|(on, sender)| *on == runtime && !sender.is_closed());
        if current.is_none() {
            *home = actix_rt::Arbiter::try_current().and_then(|arbiter| {
                let (sender, deliveries) = tokio::sync::mpsc::unbounded_channel();
                arbiter
                    .spawn(deliver(deliveries))
                    .then_some((runtime, sender))
            });
        }
        home.as_ref().map(|(_, sender)| sender.clone())
    })
}

/// The task of a [`Home`]: answers each delivered job on this thread.
async fn deliver(mut deliveries: tokio::sync::mpsc::UnboundedReceiver<Delivery>) {
    while let Some(delivery) = deliveries.recv().await {
        delivery.answer();
    }
}

/// The queue to the writer thread; the thread ends when the last handle is dropped.
#[derive(Clone)]
pub(super) struct Writer {
    queue: mpsc::Sender<Box<dyn Job>>,
    pub(super) counters: WriterCounters,
}

impl Writer {
    /// Starts the writer thread, which opens its own connection (and opens it again after a
    /// failure).
    pub(super) fn start(manager: Manager) -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::channel::<Box<dyn Job>>();
        let counters = WriterCounters::default();
        let thread_counters = counters.clone();
        std::thread::Builder::new()
            .name("idgate-db-writer".into())
            .spawn(move || writer_loop(&manager, &jobs, &thread_counters))?;
        Ok(Writer { queue, counters })
    }

    /// Runs `work` in its own savepoint of the next batch and answers once that batch is
    /// committed (or has failed). `work` may run more than once (on PostgreSQL, when its batch
    /// is run again; what an earlier run wrote is then rolled back).
    pub(super) async fn write<T, E, F>(&self, mut work: F) -> Result<T, E>
    where
        F: FnMut(&mut AnyConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.submit(true, None, move |conn, _run| {
            let result = match conn {
                // The writer has set the job's savepoint (see `JobSavepoint`).
                AnyConnection::Postgresql(_) => work(conn),
                AnyConnection::Sqlite(_) => super::transaction(conn, &mut work),
            };
            let outcome = if result.is_ok() {
                JobOutcome::Kept
            } else {
                JobOutcome::Undone
            };
            (outcome, result)
        })
        .await
    }

    /// As [`Writer::write`], for work that writes nothing before its last refusal: it runs
    /// without a savepoint of its own, which spares SQLite a copy of every page the job is the
    /// first to change (its sub-journal) and two statements, and PostgreSQL a round trip. A
    /// refusal must therefore leave nothing written. A database failure, which may come after a
    /// write, fails the whole batch on SQLite; on PostgreSQL the batch is rolled back and run
    /// again with a savepoint for every job, so that the failure undoes this job alone. `work`
    /// is told whether it runs in such a savepoint ([`Run::guarded`]: the second run of a batch).
    ///
    /// A common sign-in (`sign_in`) is made on PostgreSQL, in the first run of its batch, in one
    /// statement with the common sign-ins queued next to it ([`sign_in_together`]), before
    /// the first of them runs: its work is given its part ([`Run::joined`]), and goes on from
    /// there. Only sign-ins that go together share a statement ([`how_many_together`]); a
    /// write of another kind between them ends the group, so
    /// that every write still sees the ones queued before it.
    pub(super) async fn write_unguarded<T, E, F>(
        &self,
        sign_in: Option<SignInTogether>,
        mut work: F,
    ) -> Result<T, E>
    where
        F: FnMut(&mut AnyConnection, Run) -> Result<T, Unguarded<E>> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.submit(false, sign_in, move |conn, run| {
            let guarded = run.guarded;
            match work(conn, run) {
                Ok(value) => (JobOutcome::Kept, Ok(value)),
                Err(Unguarded::Refused(error)) if !guarded => (JobOutcome::Kept, Err(error)),
                Err(Unguarded::Store(error)) if !guarded => {
                    // The callers hear only of the batch's fate: the cause is logged here.
                    tracing::warn!(
                        %error,
                        "database writer: a write without a savepoint of its own failed"
                    );
                    (JobOutcome::Unsettled, Err(E::from(error)))
                }
                Err(Unguarded::Refused(error)) => (JobOutcome::Undone, Err(error)),
                Err(Unguarded::Store(error)) => (JobOutcome::Undone, Err(E::from(error))),
            }
        })
        .await
    }

    /// Queues a job and waits for its answer.
    async fn submit<T, E, F>(
        &self,
        needs_savepoint: bool,
        sign_in: Option<SignInTogether>,
        work: F,
    ) -> Result<T, E>
    where
        F: FnMut(&mut AnyConnection, Run) -> (JobOutcome, Result<T, E>) + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel::<Result<T, E>>();
        let job: Box<dyn Job> = Box::new(Queued {
            work,
            needs_savepoint,
            sign_in,
            joined: None,
            result: None,
            answer,
            home: home(),
            span: tracing::Span::current(),
        });
        if self.counters.queued.inc() >= MAX_QUEUE {
            self.counters.queued.dec();
            return Err(unavailable("the database writer is busy"));
        }
        if self.queue.send(job).is_err() {
            self.counters.queued.dec();
            return Err(unavailable("the database writer has stopped"));
        }
        match tokio::time::timeout(super::DB_WAIT, answered).await {
            Ok(answer) => {
                answer.unwrap_or_else(|_| Err(unavailable("the database writer dropped the work")))
            }
            Err(_) => Err(unavailable("the database writer did not answer in time")),
        }
    }
}

/// A failure of the writer itself, as the caller's error.
fn unavailable<E: From<StoreError>>(why: &str) -> E {
    StoreError::from(DbError::Unavailable(why.to_string())).into()
}

fn writer_loop(manager: &Manager, jobs: &mpsc::Receiver<Box<dyn Job>>, counters: &WriterCounters) {
    let mut conn: Option<AnyConnection> = None;
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = jobs.recv() {
        batch.push(first);
        // Let request handlers that are ready to run queue their writes too before the batch is
        // cut: on a busy machine more sign-ins share one commit; on an idle one this returns at
        // once.
        std::thread::yield_now();
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        counters
            .queued
            .dec_by(i64::try_from(batch.len()).unwrap_or(i64::MAX));
        if conn.is_none() {
            match manager.establish().and_then(set_up_writer) {
                Ok(c) => conn = Some(c),
                Err(error) => {
                    let failure = format!("cannot open the database for writing: {error}");
                    tracing::error!(%failure, "database writer");
                    answer_all(&mut batch, Err(&failure));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        // A panic in a job (a bug) must not stop every later sign-in: the batch's callers are
        // answered by their dropped channels, and the connection, whose transaction state is
        // unknown, is closed (which rolls the transaction back) and opened afresh.
        let outcome = catch_unwind(AssertUnwindSafe(|| run_batch(c, &mut batch, counters)));
        match outcome {
            Ok(healthy) if healthy => {}
            Ok(_) => conn = None,
            Err(_) => {
                tracing::error!("database writer: a job panicked; its batch was rolled back");
                batch.clear();
                conn = None;
            }
        }
    }
}

/// Answers every job of `batch` with the batch's fate, emptying it: hands each thread's jobs
/// to its [`Home`] in one delivery, and answers the others here.
fn answer_all(batch: &mut Vec<Box<dyn Job>>, committed: Result<(), &str>) {
    let mut deliveries: Vec<(Home, Vec<Box<dyn Job>>)> = Vec::new();
    for job in batch.drain(..) {
        let Some(home) = job.home() else {
            job.answer(committed);
            continue;
        };
        match deliveries.iter_mut().find(|(h, _)| h.same_channel(home)) {
            Some((_, jobs)) => jobs.push(job),
            None => deliveries.push((home.clone(), vec![job])),
        }
    }
    for (home, jobs) in deliveries {
        let failure = committed.err().map(str::to_owned);
        if let Err(undelivered) = home.send(Delivery { jobs, failure }) {
            undelivered.0.answer();
        }
    }
}

/// How long a statement of the writer waits for a row another PostgreSQL transaction holds (in
/// practice: another instance's batch) before it fails, in milliseconds. Below PostgreSQL's
/// `deadlock_timeout` (1 s by default), so that two instances' batches waiting on each other
/// lose one job after this long rather than a second, and a batch never waits on another for
/// longer than the callers wait for it.
const LOCK_WAIT_MS: u32 = 250;

/// Sets the writer's own connection (PostgreSQL) to wait at most [`LOCK_WAIT_MS`] for a lock
/// (SQLite's `BEGIN IMMEDIATE` waits for its one lock under `busy_timeout`), and to plan each
/// of its prepared statements once, for any values. PostgreSQL would plan the statement of
/// sign-ins together ([`sign_in_together`]) anew on every run, which costs more than running
/// it: it cannot know how many sign-ins its arrays hold, so the plan for any number looks
/// dearer than the plan for the number at hand. The writer's other statements find rows by
/// their keys or by indexed columns (a purge by expiry, a session by provider session), whose
/// plans do not depend on the values; PostgreSQL would otherwise plan each with the values of
/// its first five runs, and then settle for one plan too. `plan_cache_mode` is PostgreSQL
/// 12's; an older server keeps planning.
fn set_up_writer(mut conn: AnyConnection) -> Result<AnyConnection, diesel::ConnectionError> {
    use diesel::connection::SimpleConnection as _;
    if let AnyConnection::Postgresql(c) = &mut conn {
        c.batch_execute(&format!("SET lock_timeout = {LOCK_WAIT_MS}"))
            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
        if let Err(error) = c.batch_execute("SET plan_cache_mode = force_generic_plan") {
            tracing::warn!(%error, "database writer: statements are planned on every run");
        }
    }
    Ok(conn)
}

/// Runs one batch in one transaction and answers its jobs. On PostgreSQL the jobs without a
/// savepoint of their own ([`Writer::write_unguarded`]) run first without one; when that run
/// fails (the database failed in one of them, or any later statement or the commit found the
/// transaction aborted), the batch is rolled back and run again once with a savepoint for
/// every job, so that a failure undoes its own job alone, as if each had had one from the
/// start; not when a caller has stopped waiting. False when the connection should be opened
/// again (its transaction state is broken).
fn run_batch(
    conn: &mut AnyConnection,
    batch: &mut Vec<Box<dyn Job>>,
    counters: &WriterCounters,
) -> bool {
    let mut fate = run_once(conn, batch, false);
    // Not when a caller has given up already: it told its client that nothing was stored.
    if let Err(Failure {
        retry: true,
        why: first,
        ..
    }) = &fate
        && is_idle(conn)
        && !batch.iter().any(|job| job.abandoned())
    {
        tracing::info!(failure = %first, "database writer: the batch runs again, each write in a savepoint of its own");
        counters.retries.inc();
        fate = run_once(conn, batch, true);
    }
    let reopen = matches!(&fate, Err(Failure { reopen: true, .. }));
    match &fate {
        Ok(ran) => {
            counters.commits.inc();
            counters
                .writes
                .inc_by(u64::try_from(*ran).unwrap_or(u64::MAX));
            answer_all(batch, Ok(()));
        }
        Err(failure) => {
            tracing::error!(failure = %failure.why, jobs = batch.len(), "database writer: batch not committed");
            answer_all(batch, Err(&failure.why));
        }
    }
    !reopen && !AnyConnection::is_broken_transaction_manager(conn)
}

/// Why a run of a batch did not commit.
struct Failure {
    why: String,
    /// It may commit when run again with a savepoint for every job.
    retry: bool,
    /// The connection's state is unknown: it is opened again.
    reopen: bool,
}

/// Whether the connection is outside any transaction, in a known state.
fn is_idle(conn: &mut AnyConnection) -> bool {
    !AnyConnection::is_broken_transaction_manager(conn)
        && matches!(
            AnyConnection::transaction_manager_status_mut(conn).transaction_depth(),
            Ok(None)
        )
}

/// Runs every job of `batch` in one transaction and commits it: the number of jobs run, or why
/// not (the transaction is then rolled back). `guard_all`: every job gets a savepoint of its
/// own on PostgreSQL, those of [`Writer::write_unguarded`] too.
fn run_once(
    conn: &mut AnyConnection,
    batch: &mut [Box<dyn Job>],
    guard_all: bool,
) -> Result<usize, Failure> {
    let mut savepoint = match JobSavepoint::begin(conn) {
        Ok(savepoint) => savepoint,
        Err(error) => {
            // On PostgreSQL the `BEGIN` may have run without the savepoint: a new connection
            // starts from a known state.
            return Err(Failure {
                why: format!("cannot begin: {error}"),
                retry: false,
                reopen: matches!(conn, AnyConnection::Postgresql(_)),
            });
        }
    };
    let mut lost: Option<&str> = None;
    let mut unguarded = false;
    let mut ran = 0;
    // The jobs before this one have had their part of a statement of sign-ins together.
    let mut joined_until = 0;
    const ENDED: &str = "the database ended the transaction";
    for index in 0..batch.len() {
        if !guard_all && index >= joined_until {
            joined_until = sign_in_together_from(conn, batch, index);
        }
        let Some(job) = batch.get_mut(index) else {
            break;
        };
        let guarded = guard_all || job.needs_savepoint();
        let set = if guarded {
            savepoint.set(conn)
        } else {
            unguarded = true;
            savepoint.share();
            Ok(())
        };
        if set.is_err() {
            lost = Some(ENDED);
            break;
        }
        let outcome = job.run(conn, guarded && savepoint.guards());
        ran += 1;
        if outcome == JobOutcome::Unsettled {
            // What it wrote before the failure cannot be undone alone. The jobs not run yet
            // are answered with the batch's failure.
            lost = Some("a write without a savepoint of its own failed");
            break;
        }
        if outcome == JobOutcome::Undone && savepoint.roll_back(conn).is_err() {
            lost = Some(ENDED);
            break;
        }
        if !is_in_batch(conn) {
            // The database ended the whole transaction (SQLite does on a full disk or an I/O
            // error): what the earlier jobs wrote is gone, and a later job would run outside
            // the batch and commit on its own.
            lost = Some(ENDED);
            break;
        }
    }
    let committed = if let Some(why) = lost {
        Err(why.to_string())
    } else {
        savepoint.commit(conn).map_err(|e| e.to_string())
    };
    match committed {
        Ok(()) => Ok(ran),
        Err(why) => {
            let _ = AnyConnection::rollback_transaction(conn);
            // A full disk (or a transaction SQLite ended, as it does on one): give the WAL's
            // space back at once, so that writes succeed again as soon as some space is free,
            // not only after the next automatic checkpoint.
            if matches!(conn, AnyConnection::Sqlite(_)) && (lost.is_some() || why.contains("full"))
            {
                truncate_wal(conn);
            }
            // On PostgreSQL a failure after a job without a savepoint of its own may be that
            // job's: run again with savepoints, it undoes that job alone.
            let retry = unguarded && !guard_all && matches!(conn, AnyConnection::Postgresql(_));
            Err(Failure {
                why,
                retry,
                reopen: false,
            })
        }
    }
}

/// Checkpoints the WAL into the database file and truncates it to nothing.
fn truncate_wal(conn: &mut AnyConnection) {
    use diesel::connection::SimpleConnection as _;
    match conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE);") {
        Ok(()) => tracing::info!("database writer: WAL checkpointed and truncated"),
        Err(error) => tracing::warn!(%error, "database writer: cannot truncate the WAL"),
    }
}

/// Makes the common sign-ins queued together from `batch[start]` on in one statement
/// ([`sign_in_together`]; PostgreSQL only) and gives each its part ([`Job::join`]): the index
/// after the last of them, or after `start` when that job is no such sign-in. The group ends
/// at the first job that is not one, or that cannot go in one statement with those before it
/// ([`how_many_together`]). When the statement fails (and with it the transaction), each is
/// given the failure, and the first of them fails the batch.
fn sign_in_together_from(
    conn: &mut AnyConnection,
    batch: &mut [Box<dyn Job>],
    start: usize,
) -> usize {
    let AnyConnection::Postgresql(c) = conn else {
        return batch.len();
    };
    let (count, parts) = {
        let mut group: Vec<&SignInTogether> = batch[start..]
            .iter()
            .map_while(|job| job.sign_in().filter(|_| !job.needs_savepoint()))
            .collect();
        group.truncate(how_many_together(group.iter().copied()));
        if group.is_empty() {
            return start + 1;
        }
        (group.len(), sign_in_together(c, &group))
    };
    let end = start + count;
    match parts {
        Ok(parts) => {
            for (job, part) in batch[start..end].iter_mut().zip(parts) {
                job.join(Ok(part));
            }
        }
        Err(error) => {
            let why = error.to_string();
            for job in &mut batch[start..end] {
                job.join(Err(why.clone()));
            }
        }
    }
    end
}

/// Whether the batch's transaction is still open, and no job left a savepoint of its own open.
fn is_in_batch(conn: &mut AnyConnection) -> bool {
    matches!(
        AnyConnection::transaction_manager_status_mut(conn).transaction_depth(),
        Ok(Some(depth)) if depth.get() == 1
    )
}

/// The savepoint of each job of a PostgreSQL batch, set by the writer rather than by diesel's
/// nested transactions, in as few round trips as the statements allow: the batch's `BEGIN`
/// sets the first job's savepoint; a job rolled back to its savepoint leaves it for the next;
/// setting the next job's savepoint releases the previous one in the same round trip
/// (`RELEASE SAVEPOINT …; SAVEPOINT …`); the commit releases the last one in its round trip.
/// A job that fails is rolled back to its savepoint. Releasing also proves that the
/// transaction is not in PostgreSQL's aborted state (a statement in it failed and was not
/// rolled back), where a `COMMIT` would end it without committing anything and without an
/// error: any failure here loses the batch instead. On SQLite a job runs in a diesel savepoint
/// of its own (no round trips there), or in none ([`Writer::write_unguarded`]), and this only
/// begins and commits.
struct JobSavepoint {
    state: Savepoint,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Savepoint {
    /// SQLite: none.
    NotUsed,
    /// Set, and nothing written since.
    Fresh,
    /// Set, and a job ran since.
    Used,
}

const BEGIN_WITH_SAVEPOINT: &str = "BEGIN; SAVEPOINT idgate_job";
const NEXT_SAVEPOINT: &str = "RELEASE SAVEPOINT idgate_job; SAVEPOINT idgate_job";
const ROLL_BACK_TO_SAVEPOINT: &str = "ROLLBACK TO SAVEPOINT idgate_job";
const RELEASE_AND_COMMIT: &str = "RELEASE SAVEPOINT idgate_job; COMMIT";

impl JobSavepoint {
    /// Begins the batch's transaction (`BEGIN IMMEDIATE` on SQLite), with the first job's
    /// savepoint on PostgreSQL.
    fn begin(conn: &mut AnyConnection) -> diesel::QueryResult<Self> {
        match conn {
            AnyConnection::Sqlite(c) => {
                begin_immediate(c)?;
                Ok(JobSavepoint {
                    state: Savepoint::NotUsed,
                })
            }
            AnyConnection::Postgresql(c) => {
                AnsiTransactionManager::begin_transaction_sql(c, BEGIN_WITH_SAVEPOINT)?;
                Ok(JobSavepoint {
                    state: Savepoint::Fresh,
                })
            }
        }
    }

    /// Gives the next job a savepoint of its own, releasing the previous job's.
    fn set(&mut self, conn: &mut AnyConnection) -> diesel::QueryResult<()> {
        match self.state {
            Savepoint::NotUsed => Ok(()),
            Savepoint::Fresh => {
                self.state = Savepoint::Used;
                Ok(())
            }
            Savepoint::Used => Self::execute(conn, NEXT_SAVEPOINT),
        }
    }

    /// Lets a job without a savepoint of its own write under the previous one (or the
    /// batch's first): that one is no longer fresh, so that a later job gets one of its own.
    fn share(&mut self) {
        if self.state == Savepoint::Fresh {
            self.state = Savepoint::Used;
        }
    }

    /// Whether the writer sets savepoints (PostgreSQL).
    fn guards(&self) -> bool {
        self.state != Savepoint::NotUsed
    }

    /// Undoes what the job wrote; the savepoint stays, fresh, for the next job.
    fn roll_back(&mut self, conn: &mut AnyConnection) -> diesel::QueryResult<()> {
        if self.state == Savepoint::NotUsed {
            return Ok(());
        }
        Self::execute(conn, ROLL_BACK_TO_SAVEPOINT)?;
        self.state = Savepoint::Fresh;
        Ok(())
    }

    /// Commits the batch, releasing the last job's savepoint first on PostgreSQL. diesel's
    /// transaction state follows PostgreSQL's (no transaction once the `COMMIT` has run).
    fn commit(&mut self, conn: &mut AnyConnection) -> diesel::QueryResult<()> {
        if self.state == Savepoint::NotUsed {
            return AnyConnection::commit_transaction(conn);
        }
        Self::execute(conn, RELEASE_AND_COMMIT)
    }

    fn execute(conn: &mut AnyConnection, sql: &str) -> diesel::QueryResult<()> {
        use diesel::connection::SimpleConnection as _;
        let result = conn.batch_execute(sql);
        if let Err(error) = &result {
            tracing::error!(%error, "database writer: a job's savepoint failed");
        }
        result
    }
}

/// SQLite's `BEGIN IMMEDIATE`: the write lock is taken at once (waiting up to `busy_timeout`
/// for another process), so no job can fail later for want of it.
pub(super) fn begin_immediate(conn: &mut diesel::SqliteConnection) -> diesel::QueryResult<()> {
    AnsiTransactionManager::begin_transaction_sql(conn, "BEGIN IMMEDIATE")
}

/// The writer on both backends is tested in `tests/api/writer.rs`; what is SQLite's alone, here.
#[cfg(test)]
#[expect(clippy::expect_used, reason = "a test stops at its first failure")]
mod tests {
    use diesel::prelude::*;

    use crate::db::sessions::remember_token;
    use crate::db::{Database, DbError, StoreError};

    fn open() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("w.db").display());
        let db = Database::open(&url).expect("database");
        (dir, db)
    }

    /// A database that fills up (here: SQLite's page limit, as a full disk would) fails the
    /// write, the WAL is given back at once (truncated), and once there is room again writes
    /// succeed without waiting for an automatic checkpoint.
    #[tokio::test]
    async fn a_full_database_truncates_the_wal_and_writes_resume_when_there_is_room() {
        let (dir, db) = open();
        let wal = dir.path().join("w.db-wal");
        let pages: i64 = db
            .write(|conn| {
                #[derive(diesel::QueryableByName)]
                struct Count {
                    #[diesel(sql_type = diesel::sql_types::BigInt)]
                    page_count: i64,
                }
                let count: Count = diesel::sql_query("PRAGMA page_count")
                    .get_result(conn)
                    .map_err(DbError::Query)?;
                diesel::connection::SimpleConnection::batch_execute(
                    conn,
                    &format!("PRAGMA max_page_count = {}", count.page_count + 2),
                )
                .map_err(DbError::Query)?;
                Ok::<_, StoreError>(count.page_count)
            })
            .await
            .expect("the page limit");
        assert!(pages > 0);
        let big = "x".repeat(3000);
        let mut full = None;
        for i in 0..100 {
            let key = format!("{big}{i}");
            if let Err(error) = db.write(move |conn| remember_token(conn, &key, 1)).await {
                full = Some(error);
                break;
            }
        }
        let error = full.expect("the database filled up");
        // SQLite ends the whole transaction on a full database: nothing of the batch is stored.
        assert!(
            matches!(error, StoreError::Db(DbError::Unavailable(_))),
            "{error}"
        );
        assert_eq!(
            std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0),
            0,
            "the WAL was truncated"
        );
        // Room again: the next write succeeds.
        db.write(|conn| {
            diesel::connection::SimpleConnection::batch_execute(
                conn,
                "PRAGMA max_page_count = 1073741823",
            )
            .map_err(DbError::Query)?;
            remember_token(conn, "after", 1)
        })
        .await
        .expect("written once there is room");
    }
}
