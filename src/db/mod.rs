//! The database: SQLite (embedded default) or PostgreSQL (production), chosen by the URL scheme,
//! behind one diesel `MultiConnection`, with embedded migrations run on open. The only module
//! that knows diesel: every query of idgate is in one of its files, one per kind of row, and
//! callers see domain values, [`AnyConnection`] as an opaque handle, and [`StoreError`].

pub mod audit;
pub mod codes;
mod error;
pub mod flows;
pub mod members;
pub mod schema;
pub mod sessions;
mod writer;

pub use error::{DbError, StoreError};
pub use writer::{MAX_QUEUE, Run, Unguarded};

use std::path::PathBuf;
use std::time::Duration;

use diesel::Connection;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{self, ManageConnection, Pool, PooledConnection, R2D2Connection};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use tracing::Instrument as _;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// The longest a request waits for the database: a stalled database answers 503 after this, it
/// never holds requests for as long as it stalls.
pub const DB_WAIT: Duration = Duration::from_secs(5);

/// PostgreSQL's `statement_timeout` on every connection, in milliseconds: a statement is
/// cancelled there once no caller waits for it any more ([`DB_WAIT`]).
const STATEMENT_TIMEOUT_MS: u128 = DB_WAIT.as_millis();

/// An arbitrary constant naming idgate's advisory lock, so that instances starting together on
/// one PostgreSQL database run the migrations one at a time.
const MIGRATION_LOCK: i64 = 0x1d6a_7e00_0001;

/// A connection to either backend.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

/// Runs a diesel query on the backend's own connection rather than through [`AnyConnection`].
///
/// For the hot paths (sign-in, session check): a query run through the `MultiConnection` has its
/// SQL text built again on every execution (to pass it to the backend and to find the prepared
/// statement), which cost about a tenth of a sign-in's CPU time; on the backend's connection the
/// prepared statement is found by the query's type. The query expression must build for both
/// backends, which diesel's query builder does.
///
/// `on_backend!(conn, |c| query.execute(c))`
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::AnyConnection::Sqlite($c) => $body,
            $crate::db::AnyConnection::Postgresql($c) => $body,
        }
    };
}
pub(crate) use on_backend;

/// A parsed database URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    /// `sqlite://PATH` (relative), `sqlite:///ABSOLUTE`, `sqlite:PATH`, `postgres://…`,
    /// `postgresql://…`. Anything else is refused, never guessed.
    pub fn parse(url: &str) -> Result<Self, DbError> {
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(DbError::UnsupportedUrl(url.to_string()));
            }
            return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(url.to_string()));
        }
        if !url.contains("://") && !url.contains(':') {
            // A bare path: say how to write it.
            return Err(DbError::BarePath(url.to_string()));
        }
        Err(DbError::UnsupportedUrl(redact(url)))
    }

    /// The URL without any password, for messages and logs.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => redact(url),
        }
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, DatabaseUrl::Sqlite(_))
    }
}

/// The URL with libpq's connection timeouts added where the operator set none: 5 s to connect,
/// TCP keepalives, and 5 s for sent data to be acknowledged, so that a peer that vanished is
/// noticed.
fn with_timeouts(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.to_string();
    };
    let present: Vec<String> = parsed.query_pairs().map(|(k, _)| k.into_owned()).collect();
    {
        let mut query = parsed.query_pairs_mut();
        for (name, value) in [
            ("connect_timeout", "5"),
            ("keepalives", "1"),
            ("keepalives_idle", "5"),
            ("keepalives_interval", "2"),
            ("keepalives_count", "2"),
            ("tcp_user_timeout", "5000"),
        ] {
            if !present.iter().any(|p| p == name) {
                query.append_pair(name, value);
            }
        }
    }
    parsed.to_string()
}

/// Hides the password of `scheme://user:password@host/…`, and of the query parameters
/// `password` and `sslpassword` (PostgreSQL takes both there too). A URL missing the `//` of its
/// authority (`postgres:/user:password@host/db`) would show its credentials in its path: only its
/// scheme is shown.
fn redact(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "(unparsable URL)".to_string();
    };
    if !parsed.has_authority() && parsed.path().contains('@') {
        return format!("{}:***", parsed.scheme());
    }
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    let is_secret = |name: &str| {
        name.eq_ignore_ascii_case("password") || name.eq_ignore_ascii_case("sslpassword")
    };
    let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
    if pairs.iter().any(|(name, _)| is_secret(name)) {
        let mut query = parsed.query_pairs_mut();
        query.clear();
        for (name, value) in &pairs {
            query.append_pair(name, if is_secret(name) { "***" } else { value });
        }
    }
    parsed.to_string()
}

/// Opens connections for the pool, dispatching on the URL scheme so that the operator sees the
/// driver's real error (diesel's derived `establish` hides it).
#[derive(Debug, Clone)]
pub struct Manager {
    url: DatabaseUrl,
    durability: Durability,
}

/// What an answered write survives (`idgate serve --durability`, see `docs/configuration.md`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// A power loss or an operating-system crash: each commit is flushed to disk before it is
    /// answered (SQLite `synchronous=FULL`; PostgreSQL as the server is configured).
    #[default]
    PowerLoss,
    /// A crash or `kill -9` of idgate, not of the machine: a commit is handed to the operating
    /// system (SQLite `synchronous=NORMAL` in WAL mode) or to the PostgreSQL server
    /// (`synchronous_commit = off`) without waiting for the disk. What was answered in the last
    /// moments before a power loss (on PostgreSQL, also a crash of the server) may be lost:
    /// sessions, and the replay guard's memory of the tokens they used.
    ProcessCrash,
}

impl std::str::FromStr for Durability {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "power-loss" => Ok(Durability::PowerLoss),
            "process-crash" => Ok(Durability::ProcessCrash),
            other => Err(format!(
                "`{other}`: the durability is power-loss or process-crash"
            )),
        }
    }
}

impl Durability {
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::PowerLoss => "power-loss",
            Durability::ProcessCrash => "process-crash",
        }
    }
}

impl Manager {
    fn establish(&self) -> Result<AnyConnection, diesel::ConnectionError> {
        match &self.url {
            DatabaseUrl::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(&path.to_string_lossy())?;
                // synchronous=FULL: SQLite's own default, stated because it is what makes a
                // commit durable across a power loss in WAL mode; NORMAL (for `process-crash`)
                // writes the commit to the WAL without waiting for the disk. temp_store=MEMORY
                // keeps the savepoint journal of the writer's batches (see `writer`) in memory
                // instead of a temporary file. wal_autocheckpoint=8000 pages (about 32 MB of
                // WAL, against 4 MB by default): a checkpoint copies each changed page once
                // however often it changed, so fewer, larger checkpoints write less.
                let synchronous = match self.durability {
                    Durability::PowerLoss => "FULL",
                    Durability::ProcessCrash => "NORMAL",
                };
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; \
                     PRAGMA synchronous = {synchronous}; PRAGMA temp_store = MEMORY; \
                     PRAGMA wal_autocheckpoint = 8000;"
                ))
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(AnyConnection::Sqlite(conn))
            }
            DatabaseUrl::Postgres(url) => {
                let mut conn = PgConnection::establish(&with_timeouts(url))?;
                // A statement the server takes longer than this over is cancelled there too.
                conn.batch_execute(&format!("SET statement_timeout = {STATEMENT_TIMEOUT_MS}"))
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                if self.durability == Durability::ProcessCrash {
                    conn.batch_execute("SET synchronous_commit = off")
                        .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                }
                Ok(AnyConnection::Postgresql(conn))
            }
        }
    }
}

impl ManageConnection for Manager {
    type Connection = AnyConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<AnyConnection, r2d2::Error> {
        self.establish().map_err(r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), r2d2::Error> {
        conn.ping().map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

/// A pooled connection.
pub type Conn = PooledConnection<Manager>;

/// The database handle shared by the whole process (cheap to clone).
#[derive(Clone)]
pub struct Database {
    pool: Pool<Manager>,
    url: DatabaseUrl,
    /// The group-commit writer (see [`writer`]) every write goes through.
    writer: writer::Writer,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("url", &self.url.redacted())
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Connects, runs pending migrations and builds the pool (for the service), with every
    /// commit durable across a power loss.
    pub fn open(url: &str) -> Result<Self, DbError> {
        Self::open_with(url, Durability::PowerLoss)
    }

    /// [`Database::open`] with the durability given.
    pub fn open_with(url: &str, durability: Durability) -> Result<Self, DbError> {
        let url = DatabaseUrl::parse(url)?;
        let manager = Manager {
            url: url.clone(),
            durability,
        };
        connect_and_migrate(&manager)?;
        let writer = writer::Writer::start(manager.clone())
            .map_err(|e| DbError::Unavailable(format!("cannot start the writer: {e}")))?;
        // SQLite in WAL mode reads in parallel and writes one at a time; 8 connections keep
        // readers from queueing behind a writer.
        let max_size = if url.is_sqlite() { 8 } else { 10 };
        let pool = Pool::builder()
            .max_size(max_size)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(3))
            .build_unchecked(manager);
        Ok(Database { pool, url, writer })
    }

    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// A connection from the pool, or `Unavailable` after a short wait.
    pub fn conn(&self) -> Result<Conn, DbError> {
        self.pool
            .get()
            .map_err(|e| DbError::Unavailable(e.to_string()))
    }

    /// Whether the database answers a trivial query.
    pub fn ping(&self) -> Result<(), DbError> {
        self.conn()?.ping().map_err(DbError::Query)
    }

    /// Runs blocking database work on the blocking thread pool, keeping the caller's span.
    pub async fn run<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let db = self.clone();
        let span = tracing::Span::current();
        let handle = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let mut conn = db.conn().map_err(StoreError::from)?;
            work(&mut conn)
        });
        match tokio::time::timeout(DB_WAIT, handle.in_current_span()).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(StoreError::from(DbError::Unavailable(format!(
                "database task failed: {e}"
            )))
            .into()),
            Err(_) => Err(StoreError::from(DbError::Unavailable(
                "the database did not answer in time".into(),
            ))
            .into()),
        }
    }

    /// The writer's counters (commits, writes, queue).
    pub fn writer_counters(&self) -> crate::metrics::WriterCounters {
        self.writer.counters.clone()
    }

    /// Runs `work` as one all-or-nothing transaction (an error rolls it back) and answers once it
    /// is durably committed. Transactions arriving together share one commit (see [`writer`]).
    /// `work` may run more than once: on PostgreSQL a batch in which a write without a
    /// savepoint of its own failed is rolled back and run again (see
    /// [`Database::write_unguarded`]); only the last run's writes are committed.
    pub async fn write<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnMut(&mut AnyConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.writer.write(work).await
    }

    /// As [`Database::write`], for work whose writes all come after its last refusal: a refusal
    /// ([`Unguarded::Refused`]) must leave nothing written; work that writes before a refusal
    /// wraps those writes in [`transaction`]. It runs without a savepoint of its own, which
    /// spares SQLite a copy of the pages it changes and PostgreSQL a round trip. On SQLite a
    /// database failure in it ([`Unguarded::Store`]) fails every write of its batch; on
    /// PostgreSQL the batch is rolled back and run again with a savepoint for every write, so
    /// that the failure fails this write alone; `work` is then told so ([`Run::guarded`]).
    pub async fn write_unguarded<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnMut(&mut AnyConnection, Run) -> Result<T, Unguarded<E>> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.writer.write_unguarded(None, work).await
    }

    /// As [`Database::write_unguarded`], for a sign-in; when it is a common one (`sign_in`), on
    /// PostgreSQL, in the first run of its batch, the writer makes it in one statement with
    /// those queued next to it ([`sessions::sign_in_together`]) before `work` runs, and gives
    /// `work` its part ([`Run::joined`]). That statement may have stored the session: `work`
    /// must go on from its part (and check every rule on what it found), not start afresh.
    pub async fn write_sign_in<T, E, F>(
        &self,
        sign_in: Option<sessions::SignInTogether>,
        work: F,
    ) -> Result<T, E>
    where
        F: FnMut(&mut AnyConnection, Run) -> Result<T, Unguarded<E>> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.writer.write_unguarded(sign_in, work).await
    }

    /// Whether the database answers a trivial query, asked on the blocking pool.
    pub async fn is_reachable(&self) -> Result<(), StoreError> {
        self.run(|conn| conn.ping().map_err(|e| StoreError::from(DbError::Query(e))))
            .await
    }
}

/// Runs `work` as a transaction of its own (a savepoint inside an open one): an error rolls
/// back what it wrote, and only that.
pub fn transaction<T, E>(
    conn: &mut AnyConnection,
    work: impl FnOnce(&mut AnyConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<StoreError>,
{
    let mut refused = None;
    let result = conn.transaction(|conn| {
        work(conn).map_err(|error| {
            refused = Some(error);
            diesel::result::Error::RollbackTransaction
        })
    });
    match (result, refused) {
        (Ok(value), _) => Ok(value),
        // Rolled back as asked: the work's own error.
        (Err(diesel::result::Error::RollbackTransaction), Some(error)) => Err(error),
        // The database failed (to begin, commit or roll back).
        (Err(error), _) => Err(StoreError::from(error).into()),
    }
}

/// [`transaction`] that, as the outermost transaction of an SQLite connection, takes SQLite's
/// write lock at its start (`BEGIN IMMEDIATE`): a transaction that reads and then writes would
/// otherwise fail at once ("database is locked") when another connection wrote meanwhile, since
/// SQLite cannot turn its read into a write. The command line's and the pool's writes use it.
pub fn write_transaction<T, E>(
    conn: &mut AnyConnection,
    work: impl FnOnce(&mut AnyConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<StoreError>,
{
    use diesel::connection::TransactionManager as _;
    let outermost = matches!(
        AnyConnection::transaction_manager_status_mut(conn).transaction_depth(),
        Ok(None)
    );
    if !outermost {
        return transaction(conn, work);
    }
    let AnyConnection::Sqlite(c) = conn else {
        return transaction(conn, work);
    };
    writer::begin_immediate(c).map_err(StoreError::from)?;
    match work(conn) {
        Ok(value) => match AnyConnection::commit_transaction(conn) {
            Ok(()) => Ok(value),
            Err(error) => {
                let _ = AnyConnection::rollback_transaction(conn);
                Err(StoreError::from(error).into())
            }
        },
        Err(error) => {
            let _ = AnyConnection::rollback_transaction(conn);
            Err(error)
        }
    }
}

/// One connection, with the pending migrations run first: what a command-line tool needs. No
/// pool, so no background thread is still connecting when the process exits.
pub fn connect(url: &str) -> Result<AnyConnection, DbError> {
    connect_and_migrate(&Manager {
        url: DatabaseUrl::parse(url)?,
        durability: Durability::PowerLoss,
    })
}

/// Makes the SQLite file (created empty when missing) readable and writable by its owner only:
/// it holds emails, addresses, nonces and PKCE verifiers. SQLite gives the `-wal` and `-shm`
/// files it creates the database file's permissions; those an earlier version left are narrowed
/// too.
fn owner_only(path: &std::path::Path) -> Result<(), DbError> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let fail = |e: std::io::Error| DbError::Connect {
        url: format!("sqlite://{}", path.display()),
        reason: e.to_string(),
    };
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        if file.exists() {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                .map_err(fail)?;
        }
    }
    Ok(())
}

/// The first connection of a process: the SQLite file made owner-only first, then migrated.
fn connect_and_migrate(manager: &Manager) -> Result<AnyConnection, DbError> {
    if let DatabaseUrl::Sqlite(path) = &manager.url {
        owner_only(path)?;
    }
    let mut conn = manager.establish().map_err(|e| DbError::Connect {
        url: manager.url.redacted(),
        reason: e.to_string(),
    })?;
    migrate(&mut conn).map_err(|reason| DbError::Migrate {
        url: manager.url.redacted(),
        reason,
    })?;
    Ok(conn)
}

/// Runs the pending migrations of the connection's backend. On SQLite it also turns on WAL
/// (once per database file; it persists). On PostgreSQL an advisory lock keeps instances that
/// start together from migrating at the same time.
fn migrate(conn: &mut AnyConnection) -> Result<(), String> {
    match conn {
        AnyConnection::Sqlite(c) => {
            c.batch_execute("PRAGMA journal_mode = WAL;")
                .map_err(|e| e.to_string())?;
            c.run_pending_migrations(SQLITE_MIGRATIONS)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        AnyConnection::Postgresql(c) => {
            // Migrations (and waiting for another instance's) may take longer than a request's
            // statement timeout.
            c.batch_execute(&format!(
                "SET statement_timeout = 0; SELECT pg_advisory_lock({MIGRATION_LOCK});"
            ))
            .map_err(|e| e.to_string())?;
            let result = c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|_| ())
                .map_err(|e| e.to_string());
            let unlock = c
                .batch_execute(&format!(
                    "SELECT pg_advisory_unlock({MIGRATION_LOCK}); SET statement_timeout = {STATEMENT_TIMEOUT_MS};"
                ))
                .map_err(|e| e.to_string());
            result.and(unlock)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_backend_by_scheme() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://idgate.db").ok(),
            Some(DatabaseUrl::Sqlite("idgate.db".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/idgate.db").ok(),
            Some(DatabaseUrl::Sqlite("/var/lib/idgate.db".into()))
        );
        assert!(matches!(
            DatabaseUrl::parse("postgresql://u@h/db"),
            Ok(DatabaseUrl::Postgres(_))
        ));
        assert!(matches!(
            DatabaseUrl::parse("mysql://u@h/db"),
            Err(DbError::UnsupportedUrl(_))
        ));
        assert!(matches!(
            DatabaseUrl::parse("idgate.db"),
            Err(DbError::BarePath(_))
        ));
        let message = DatabaseUrl::parse("idgate.db")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            message.contains("`idgate.db`") && message.contains("sqlite://idgate.db"),
            "{message}"
        );
    }

    #[test]
    fn passwords_never_appear_in_messages() {
        let url = DatabaseUrl::parse("postgres://idgate:hunter2@db.example/idgate");
        let shown = url.map(|u| u.redacted()).unwrap_or_default();
        assert!(!shown.contains("hunter2"), "{shown}");
        let err = DatabaseUrl::parse("mysql://idgate:hunter2@db/x").err();
        assert!(!format!("{err:?}").contains("hunter2"));
        // In the query, as PostgreSQL also takes it; the other parameters stay readable.
        let shown = redact("postgres://idgate@db.example/idgate?password=hunter2&sslmode=require");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("sslmode=require"), "{shown}");
        let shown = redact("postgres://idgate@/idgate?host=/run/postgresql&sslpassword=hunter2");
        assert!(!shown.contains("hunter2"), "{shown}");
        // A URL missing a slash, whose credentials are in its path.
        let shown = redact("postgres:/idgate:hunter2@db/x");
        assert!(!shown.contains("hunter2"), "{shown}");
        let message = Database::open("postgres:/idgate:hunter2@127.0.0.1:1/x")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn a_bad_postgres_address_reports_the_real_error() {
        let err = Database::open("postgres://nobody@127.0.0.1:1/none").err();
        let message = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.starts_with("cannot connect to postgres://nobody@127.0.0.1:1/none"),
            "{message}"
        );
        assert!(!message.contains("Invalid connection url"), "{message}");
    }

    /// `.cargo/config.toml` builds the bundled SQLite without the locks idgate does not need
    /// (see docs/performance.md): multi-thread mode, no memory statistics.
    #[test]
    #[expect(clippy::expect_used, reason = "a test stops at its first failure")]
    fn the_bundled_sqlite_is_built_without_needless_locks() {
        use diesel::{Connection as _, RunQueryDsl as _};
        #[derive(diesel::QueryableByName)]
        struct Options {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            threadsafe: i32,
            #[diesel(sql_type = diesel::sql_types::Integer)]
            memstatus: i32,
        }
        let mut conn = diesel::SqliteConnection::establish(":memory:").expect("in-memory SQLite");
        let options: Options = diesel::sql_query(
            "SELECT sqlite_compileoption_used('THREADSAFE=2') AS threadsafe, \
                    sqlite_compileoption_used('DEFAULT_MEMSTATUS=0') AS memstatus",
        )
        .get_result(&mut conn)
        .expect("compile options");
        assert_eq!((options.threadsafe, options.memstatus), (1, 1));
    }

    #[test]
    fn a_missing_sqlite_directory_is_an_error_not_a_new_file_elsewhere() {
        let err = Database::open("sqlite:///nonexistent-dir-for-idgate/x.db").err();
        assert!(matches!(err, Some(DbError::Connect { .. })), "{err:?}");
    }
}
