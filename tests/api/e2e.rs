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
    crate::helpers::tools_ready("end-to-end test (see tests/e2e)", &missing)
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

/// idgate configured with the e2e providers, on its own SQLite database; its base URL.
///
/// `e2e` has the email in the ID token; `e2e-default` is oidc-provider with its defaults (the
/// email at userinfo only) and idgate's default `emailSource`; `e2e-idtoken` is the same
/// provider with `emailSource: idToken`, which therefore finds no email.
fn spawn_idgate(db: &TestDb, provider_url: &str, default_url: &str, mode: ResponseMode) -> String {
    let yaml = db.dir.path().join("identity.yaml");
    std::fs::write(
        &yaml,
        format!(
            r#"defaultAuthentication: internal
providers:
  - id: e2e
    title: E2E Provider
    description: A real OpenID provider
    authorityUrl: {provider_url}
    clientId: idgate-e2e
    clientSecret: {SECRET}
  - id: e2e-default
    title: E2E Default Claims
    authorityUrl: {default_url}
    clientId: idgate-e2e
    clientSecret: {SECRET}
  - id: e2e-idtoken
    title: E2E ID Token Only
    authorityUrl: {default_url}
    clientId: idgate-e2e-idtoken
    clientSecret: {SECRET}
    emailSource: idToken
domains:
  - name: example.org
    authentication: external
"#
        ),
    )
    .expect("write config");
    let settings = Settings {
        config_path: yaml,
        listen: "127.0.0.1:0".into(),
        database_url: db.url.clone(),
        durability: idgate::db::Durability::default(),
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

/// What the browser run does after signing in.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    /// Asks idgate who it is.
    SignIn,
    /// Expects idgate's error page instead.
    Refused,
    /// Signs out through idgate and the provider, then at the provider alone.
    SignOut { provider: String },
}

/// Runs the browser script against idgate, signing in as `login` with the provider titled
/// `title`, and returns its report.
async fn browse(
    idgate: String,
    title: &'static str,
    login: &'static str,
    mode: Mode,
    screenshot: Option<PathBuf>,
    provider_log: &std::path::Path,
) -> Value {
    let output = tokio::task::spawn_blocking(move || {
        let mut command = Command::new("node");
        command
            .current_dir(e2e_dir())
            .env("CHROMIUM", chromium())
            .env(
                "EXPECT_REFUSAL",
                if mode == Mode::Refused { "1" } else { "0" },
            );
        if let Mode::SignOut { provider } = &mode {
            command.env("SIGN_OUT", "1").env("PROVIDER_URL", provider);
        }
        command.args(["browser.mjs", &idgate, title, login]);
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
    let default_port = free_port();
    let provider_url = format!("http://127.0.0.1:{provider_port}");
    let default_url = format!("http://127.0.0.1:{default_port}");
    let (query_db, post_db) = (TestDb::sqlite(), TestDb::sqlite());
    let query_app = spawn_idgate(&query_db, &provider_url, &default_url, ResponseMode::Query);
    let post_app = spawn_idgate(
        &post_db,
        &provider_url,
        &default_url,
        ResponseMode::FormPost,
    );

    let provider_log = tempfile::NamedTempFile::new().expect("log file");
    let mut child = Command::new("node")
        .current_dir(e2e_dir())
        .args([
            "provider.mjs".to_string(),
            provider_port.to_string(),
            default_port.to_string(),
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
    for (app, screenshot) in [(query_app.clone(), screenshot), (post_app, None)] {
        // The email in the ID token, and (oidc-provider's defaults) at userinfo only.
        for (title, id) in [
            ("E2E Provider", "e2e"),
            ("E2E Default Claims", "e2e-default"),
        ] {
            let shot = screenshot.clone().filter(|_| id == "e2e");
            let report = browse(
                app.clone(),
                title,
                "ana@example.org",
                Mode::SignIn,
                shot,
                provider_log.path(),
            )
            .await;
            assert_eq!(report["session"]["status"], 200, "{app} {id}: {report}");
            let body = &report["session"]["body"];
            assert_eq!(body["member"]["email"], "ana@example.org", "{report}");
            assert_eq!(body["provider"], id, "{report}");
            let cookies = report["cookies"].as_array().expect("cookies");
            let session = cookies
                .iter()
                .find(|c| c["name"] == "idgate_session")
                .expect("session cookie");
            assert_eq!(session["httpOnly"], true);
            assert_eq!(session["sameSite"], "Lax");
        }
    }
    // With `emailSource: idToken`, the same provider's tokens carry no email: refused.
    let report = browse(
        query_app.clone(),
        "E2E ID Token Only",
        "ana@example.org",
        Mode::Refused,
        None,
        provider_log.path(),
    )
    .await;
    assert_eq!(report["heading"], "We could not sign you in", "{report}");
    let refusals = idgate::db::audit::list_events(&mut query_db.open().conn().expect("conn"), 0)
        .expect("security log");
    assert!(
        refusals
            .iter()
            .any(|e| e.reason.as_deref() == Some("bad_email")
                && e.provider.as_deref() == Some("e2e-idtoken")),
        "{refusals:?}"
    );
    let from_userinfo =
        idgate::db::audit::list_events(&mut post_db.open().conn().expect("conn"), 0)
            .expect("security log");
    assert!(
        from_userinfo.iter().any(|e| e.outcome == "success"
            && e.provider.as_deref() == Some("e2e-default")
            && e.email_source.as_deref() == Some("userinfo")),
        "{from_userinfo:?}"
    );
    // Signing out at the provider too (its end-session page, back to /signed-out), and a
    // back-channel logout the provider sends by itself.
    // Someone who is not a member: the page names the account the provider signed in and
    // offers another one (never a "try again" that ends on the same refusal). idgate's 404 and
    // sign-out pages, as the browser shows them.
    let report = browse(
        query_app.clone(),
        "E2E Provider",
        "bob@example.org",
        Mode::Refused,
        None,
        provider_log.path(),
    )
    .await;
    assert_eq!(
        report["heading"], "This account cannot sign in here",
        "{report}"
    );
    assert_eq!(report["email"], "bob@example.org", "{report}");
    assert_eq!(
        report["differentAccount"], "/login/e2e?prompt=select_account",
        "{report}"
    );
    assert!(
        report["incident"].as_str().is_some_and(|i| !i.is_empty()),
        "{report}"
    );
    assert_eq!(report["notFound"]["status"], 404, "{report}");
    assert!(
        report["notFound"]["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("text/html")),
        "{report}"
    );
    assert_eq!(report["notFound"]["heading"], "Page not found", "{report}");
    assert_eq!(report["logoutPage"]["status"], 200, "{report}");
    assert_eq!(report["logoutPage"]["heading"], "Sign out", "{report}");
    assert_eq!(report["logoutPage"]["buttons"], 1, "{report}");
    let refusals = idgate::db::audit::list_events(&mut query_db.open().conn().expect("conn"), 0)
        .expect("security log");
    assert!(
        refusals
            .iter()
            .any(|e| e.reason.as_deref() == Some("no_member")),
        "{refusals:?}"
    );

    let report = browse(
        query_app,
        "E2E Provider",
        "ana@example.org",
        Mode::SignOut {
            provider: provider_url.clone(),
        },
        None,
        provider_log.path(),
    )
    .await;
    // The browser ended on idgate's signed-out page.
    let at_signed_out = |url: &serde_json::Value| {
        url.as_str()
            .and_then(|u| url::Url::parse(u).ok())
            .is_some_and(|u| u.path() == "/signed-out")
    };
    assert!(at_signed_out(&report["signedOut"]["url"]), "{report}");
    assert!(
        report["signedOut"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("signed out")),
        "{report}"
    );
    let logged = idgate::db::audit::list_events(&mut query_db.open().conn().expect("conn"), 0)
        .expect("security log");
    let logouts: Vec<_> = logged
        .iter()
        .filter(|e| e.event.contains("logout"))
        .collect();
    assert_eq!(report["afterRpLogout"], 401, "{report}");
    assert_eq!(report["beforeBackchannel"], 200, "{report}");
    assert_eq!(
        report["afterBackchannel"],
        401,
        "{report} {logouts:?}\nthe provider said:\n{}",
        std::fs::read_to_string(provider_log.path()).unwrap_or_default()
    );
    assert!(
        logged
            .iter()
            .any(|e| e.event == "backchannel_logout" && e.outcome == "success"),
        "{logged:?}"
    );
    // From idgate's sign-out page too, through the provider's end-session page.
    assert!(at_signed_out(&report["fromLogoutPage"]["url"]), "{report}");
    assert_eq!(report["fromLogoutPage"]["session"], 401, "{report}");
    drop(provider);
}
