//! Fresh databases: an SQLite file of its own, or a PostgreSQL database of its own on the server
//! `IDGATE_TEST_POSTGRES_URL` names (created, and dropped with the value); and the macros that
//! declare a test once per backend.

use std::io::Write as _;
use std::sync::Once;

use diesel::Connection as _;
use diesel::connection::SimpleConnection as _;
use diesel::pg::PgConnection;
use idgate::db::Database;
use tempfile::TempDir;

/// The variable that names a PostgreSQL server for tests (`postgres://USER@HOST:PORT/DB`); each
/// test creates and drops its own database there.
pub const POSTGRES_ENV: &str = "IDGATE_TEST_POSTGRES_URL";

/// A fresh database, removed when dropped.
pub struct TestDb {
    pub url: String,
    pub dir: TempDir,
    postgres: Option<(String, String)>,
}

impl TestDb {
    /// A new SQLite file in its own temporary directory.
    pub fn sqlite() -> TestDb {
        let dir = temp_dir();
        let url = format!("sqlite://{}", dir.path().join("idgate.db").display());
        TestDb {
            url,
            dir,
            postgres: None,
        }
    }

    /// A new PostgreSQL database, or `None` (reported once) when no server is configured.
    pub fn postgres() -> Option<TestDb> {
        let Ok(admin) = std::env::var(POSTGRES_ENV) else {
            static REPORT: Once = Once::new();
            REPORT.call_once(|| {
                // Written to the terminal directly, past the test harness's output capture.
                let _ = writeln!(
                    std::io::stderr(),
                    "PostgreSQL tests skipped: set {POSTGRES_ENV}=postgres://USER@HOST/DB to run them"
                );
            });
            return None;
        };
        let name = format!("idgate_test_{}", random_hex());
        let mut conn = PgConnection::establish(&admin)
            .unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_ENV}: {e}"));
        conn.batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("cannot create {name}: {e}"));
        let mut url = url::Url::parse(&admin).unwrap_or_else(|e| panic!("bad {POSTGRES_ENV}: {e}"));
        url.set_path(&name);
        Some(TestDb {
            url: url.to_string(),
            dir: temp_dir(),
            postgres: Some((admin, name)),
        })
    }

    pub fn open(&self) -> Database {
        Database::open(&self.url).unwrap_or_else(|e| panic!("cannot open {}: {e}", self.url))
    }

    /// Adds an activated member with this email, without a name, directly in the database.
    pub fn add_member(&self, email: &str) -> idgate::members::Member {
        let new = idgate::members::NewMember {
            email: idgate::members::Email::parse(email).unwrap_or_else(|e| panic!("{e}")),
            username: None,
            firstname: String::new(),
            surname: String::new(),
            status: idgate::members::MemberStatus::Activated,
            admin: false,
        };
        let database = self.open();
        let mut conn = database.conn().unwrap_or_else(|e| panic!("{e}"));
        idgate::db::members::insert_member(&mut conn, &new, idgate::clock::unix_now())
            .unwrap_or_else(|e| panic!("cannot add {email}: {e}"))
    }

    /// Makes the database unreachable while the app runs (PostgreSQL only).
    pub fn drop_now(&self) {
        if let Some((admin, name)) = &self.postgres {
            let mut conn = PgConnection::establish(admin).unwrap_or_else(|e| panic!("{e}"));
            conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .unwrap_or_else(|e| panic!("cannot drop {name}: {e}"));
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.postgres
            && let Ok(mut conn) = PgConnection::establish(admin)
        {
            let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

pub fn temp_dir() -> TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("cannot make a temporary directory: {e}"))
}

fn random_hex() -> String {
    let bytes: [u8; 6] = rand::random();
    idgate::ids::hex(&bytes)
}

/// Declares each listed test body (a `fn(&TestDb)`) as two tests, one per backend.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(&crate::helpers::TestDb::sqlite()) })*
        }
        mod postgres {
            $(#[test] fn $name() {
                if let Some(db) = crate::helpers::TestDb::postgres() { super::$name(&db) }
            })*
        }
    };
}
pub(crate) use on_both_backends;

/// Declares each listed async test body (an `async fn(TestDb)`) as two tests, one per backend.
macro_rules! async_on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name(crate::helpers::TestDb::sqlite()).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() {
                if let Some(db) = crate::helpers::TestDb::postgres() { super::$name(db).await }
            })*
        }
    };
}
pub(crate) use async_on_both_backends;
