//! Test fixtures: fresh databases on both backends, the app on a random port, the binary.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Once};

use diesel::Connection as _;
use diesel::connection::SimpleConnection as _;
use diesel::pg::PgConnection;
use idgate::clock::SystemClock;
use idgate::db::Database;
use idgate::settings::Settings;
use idgate::startup::Application;
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
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The repository's own files.
pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

pub fn fixture(name: &str) -> PathBuf {
    repo_path(&format!("tests/fixtures/identity/{name}"))
}

/// A running app on a random port.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db: TestDb,
}

/// Starts the real app with the example configuration on the given database.
pub async fn spawn_app_on(db: TestDb) -> TestApp {
    let settings = Settings {
        config_path: repo_path("identity.yaml"),
        listen: "127.0.0.1:0".into(),
        database_url: db.url.clone(),
        public_url: None,
        cookie: Default::default(),
    };
    let config = idgate::identity::load(&settings.config_path).unwrap_or_else(|e| panic!("{e}"));
    let app = Application::build_with(settings, config, db.open(), Arc::new(SystemClock))
        .unwrap_or_else(|e| panic!("cannot build the app: {e}"));
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::new(),
        db,
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_on(TestDb::sqlite()).await
}

/// Runs the `idgate` binary in `dir` with `--database url`.
pub fn idgate(dir: &Path, database_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_idgate"))
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("IDGATE_CONFIG")
        .args(args)
        .args(["--database", database_url])
        .output()
        .unwrap_or_else(|e| panic!("cannot run idgate: {e}"))
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
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
