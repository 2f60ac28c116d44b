//! End to end: a real OpenID provider (the npm package `oidc-provider`, its development login
//! form) on 127.0.0.1 and headless Chromium clicking through idgate's sign-in page, the
//! provider's login and consent, and back; in the query and the form_post response modes.
//!
//! Needs `node`, `tests/e2e/node_modules` (`npm ci` there) and Debian's `chromium`; `.ci/run`
//! installs them and sets `IDGATE_E2E=1`, which makes their absence a failure. Elsewhere the
//! test reports that it was skipped.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use idgate::flows::ResponseMode;
use idgate::settings::Settings;
use idgate::startup::Application;
use serde_json::Value;

use crate::helpers::{TestDb, repo_path};

const SECRET: &str = "e2e-secret";

fn e2e_dir() -> PathBuf {
    repo_path("tests/e2e")
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Whether everything the test needs is installed; without `IDGATE_E2E=1` a gap skips it.
fn ready() -> bool {
    let missing: Vec<String> = [
        (
            e2e_dir().join("node_modules/oidc-provider").exists(),
            "tests/e2e/node_modules (npm ci)".to_string(),
        ),
        (chromium().exists(), format!("{}", chromium().display())),
        (
            Command::new("node")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success()),
            "node".to_string(),
        ),
    ]
    .into_iter()
    .filter(|(present, _)| !present)
    .map(|(_, what)| what)
    .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("IDGATE_E2E").as_deref() != Ok("1"),
        "IDGATE_E2E=1 but missing: {missing:?}"
    );
    eprintln!("end-to-end test skipped: missing {missing:?} (see tests/e2e)");
    false
}

/// Stops the child process when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// idgate configured with the e2e provider, on its own SQLite database; its base URL.
fn spawn_idgate(db: &TestDb, provider_url: &str, mode: ResponseMode) -> String {
    let yaml = db.dir.path().join("identity.yaml");
    std::fs::write(
        &yaml,
        format!(
            "defaultAuthentication: internal\nproviders:\n  - id: e2e\n    title: E2E Provider\n    description: A real OpenID provider\n    authorityUrl: {provider_url}\n    clientId: idgate-e2e\n    clientSecret: {SECRET}\ndomains:\n  - name: example.org\n    authentication: external\n"
        ),
    )
    .expect("write config");
    let settings = Settings {
        config_path: yaml,
        listen: "127.0.0.1:0".into(),
        database_url: db.url.clone(),
        public_url: None,
        cookie: Default::default(),
        response_mode: mode,
    };
    let config = idgate::identity::load(&settings.config_path).expect("config");
    let app = Application::build_with(
        settings,
        config,
        db.open(),
        Arc::new(idgate::clock::SystemClock),
    )
    .expect("app");
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let new = idgate::members::NewMember {
        email: idgate::members::Email::parse("ana@example.org").expect("email"),
        username: None,
        firstname: "Ana".into(),
        surname: "Lima".into(),
        status: idgate::members::MemberStatus::Activated,
        admin: false,
    };
    let mut conn = db.open().conn().expect("conn");
    idgate::db::members::insert_member(&mut conn, &new, idgate::clock::unix_now()).expect("member");
    url
}

/// Runs the browser script against idgate and returns its report.
async fn browse(
    idgate: String,
    screenshot: Option<PathBuf>,
    provider_log: &std::path::Path,
) -> Value {
    let output = tokio::task::spawn_blocking(move || {
        let mut command = Command::new("node");
        command
            .current_dir(e2e_dir())
            .env("CHROMIUM", chromium())
            .args(["browser.mjs", &idgate, "E2E Provider", "ana@example.org"]);
        if let Some(path) = screenshot {
            command.arg(path);
        }
        command.output()
    })
    .await
    .expect("task")
    .expect("node");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the browser run failed:\n{stdout}\n{}\nthe provider said:\n{}",
        String::from_utf8_lossy(&output.stderr),
        std::fs::read_to_string(provider_log).unwrap_or_default()
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("the browser's report")
}

#[tokio::test]
async fn a_browser_signs_in_at_a_real_provider_with_query_and_form_post() {
    if !ready() {
        return;
    }
    let provider_port = free_port();
    let provider_url = format!("http://127.0.0.1:{provider_port}");
    let (query_db, post_db) = (TestDb::sqlite(), TestDb::sqlite());
    let query_app = spawn_idgate(&query_db, &provider_url, ResponseMode::Query);
    let post_app = spawn_idgate(&post_db, &provider_url, ResponseMode::FormPost);

    let provider_log = tempfile::NamedTempFile::new().expect("log file");
    let mut child = Command::new("node")
        .current_dir(e2e_dir())
        .args([
            "provider.mjs".to_string(),
            provider_port.to_string(),
            SECRET.to_string(),
            format!("{query_app}/callback"),
            format!("{post_app}/callback"),
        ])
        .stdout(Stdio::piped())
        .stderr(provider_log.reopen().expect("log"))
        .spawn()
        .expect("node provider.mjs");
    let stdout = child.stdout.take().expect("stdout");
    let provider = Running(child);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    // Reads the provider's output to the end, so that its later lines never meet a closed pipe.
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = ready_tx.send(lines.next());
        lines.for_each(drop);
    });
    let ready_line = tokio::task::spawn_blocking(move || ready_rx.recv().ok().flatten())
        .await
        .expect("task");
    assert!(
        matches!(ready_line, Some(Ok(ref l)) if l == "ready"),
        "the provider did not start: {ready_line:?}"
    );

    let screenshot = std::env::var_os("IDGATE_E2E_SCREENSHOT").map(PathBuf::from);
    for (app, screenshot) in [(query_app, screenshot), (post_app, None)] {
        let report = browse(app.clone(), screenshot, provider_log.path()).await;
        assert_eq!(report["session"]["status"], 200, "{app}: {report}");
        let body = &report["session"]["body"];
        assert_eq!(body["member"]["email"], "ana@example.org", "{report}");
        assert_eq!(body["provider"], "e2e", "{report}");
        let cookies = report["cookies"].as_array().expect("cookies");
        let session = cookies
            .iter()
            .find(|c| c["name"] == "idgate_session")
            .expect("session cookie");
        assert_eq!(session["httpOnly"], true);
        assert_eq!(session["sameSite"], "Lax");
    }
    drop(provider);
}
