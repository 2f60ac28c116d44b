//! `idgate serve` as a newcomer runs it: defaults, a new SQLite file, SIGTERM to stop.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::helpers::{idgate_command, repo_path, temp_dir};

type LogLines = std::io::Lines<BufReader<std::process::ChildStderr>>;

/// Starts `idgate serve` in `dir` with the example `identity.yaml` and every default but the
/// port, JSON logs on a pipe; returns the process, its log still to read, and its port.
fn serve_with_defaults(dir: &Path) -> (Child, LogLines, u64) {
    let (child, lines, port, _) = serve_listening(dir, "127.0.0.1:0", &[]);
    (child, lines, port)
}

/// As [`serve_with_defaults`], listening on `listen`, with `extra` arguments; also returns the
/// log events written before idgate served.
fn serve_listening(
    dir: &Path,
    listen: &str,
    extra: &[&str],
) -> (Child, LogLines, u64, Vec<serde_json::Value>) {
    std::fs::copy(repo_path("identity.yaml"), dir.join("identity.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut child = idgate_command(dir)
        .env("IDGATE_LOG_FORMAT", "json")
        .env("IDGATE_LISTEN", listen)
        .arg("serve")
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
    let mut lines = BufReader::new(stderr).lines();
    let mut before = Vec::new();
    let port = loop {
        let line = match lines.next() {
            Some(Ok(line)) => line,
            other => panic!("idgate stopped before serving: {other:?}"),
        };
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if event["message"] == "idgate is serving" {
            break event["port"].as_u64().unwrap_or_default();
        }
        before.push(event);
    };
    (child, lines, port, before)
}

/// Sends `signal` (`-TERM`, `-HUP`, …) to a server started here.
fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success());
}

/// Stops a server started here with SIGTERM and checks that it exits 0.
fn stop(mut child: Child) {
    signal(&child, "-TERM");
    let exit = child.wait().unwrap_or_else(|e| panic!("{e}"));
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");
}

#[tokio::test]
async fn serve_with_defaults_creates_its_database_answers_and_stops_on_sigterm() {
    let dir = temp_dir();
    // The log stays open (and unread) until the end.
    let (child, _log, port) = serve_with_defaults(dir.path());
    assert!(
        dir.path().join("idgate.db").exists(),
        "the SQLite file is created on first start"
    );
    let health = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(health.status(), 200);
    stop(child);
}

/// Without `--public-url`, idgate takes its address from each request's `Host`, which is for
/// development: `serve` warns of it at start unless it listens on a loopback address only.
#[tokio::test]
async fn serve_warns_without_a_public_url_unless_it_listens_on_loopback() {
    let warned = |events: &[serde_json::Value]| {
        events.iter().any(|event| {
            event["level"] == "WARN"
                && event["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("--public-url is not set"))
                && event["listen"].is_string()
        })
    };
    for (listen, extra, warns, health) in [
        ("0.0.0.0:0", &[][..], true, "/healthz"),
        ("127.0.0.1:0", &[][..], false, "/healthz"),
        (
            "0.0.0.0:0",
            &["--public-url", "https://docs.example.org/sso"][..],
            false,
            "/sso/healthz",
        ),
    ] {
        let dir = temp_dir();
        let (child, _log, port, before) = serve_listening(dir.path(), listen, extra);
        assert_eq!(warned(&before), warns, "{listen} {extra:?}: {before:?}");
        // Serving, whatever the warning.
        let health = reqwest::get(format!("http://127.0.0.1:{port}{health}"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(health.status(), 200);
        stop(child);
    }
}

/// The signals are idgate's from before it says it serves: `SIGHUP` at once reloads (and does
/// not end the process, as the system's default would), `SIGTERM` and `SIGINT` at once stop it
/// cleanly.
#[test]
fn signals_sent_as_soon_as_idgate_serves_are_handled() {
    let dir = temp_dir();
    let (child, mut lines, _) = serve_with_defaults(dir.path());
    signal(&child, "-HUP");
    loop {
        let line = match lines.next() {
            Some(Ok(line)) => line,
            other => panic!("idgate stopped before reloading: {other:?}"),
        };
        if serde_json::from_str::<serde_json::Value>(&line)
            .is_ok_and(|event| event["message"] == "identity configuration reloaded")
        {
            break;
        }
    }
    stop(child);
    for stop_signal in ["-TERM", "-INT"] {
        let dir = temp_dir();
        let (mut child, _log, _) = serve_with_defaults(dir.path());
        signal(&child, stop_signal);
        let exit = child.wait().unwrap_or_else(|e| panic!("{e}"));
        assert!(exit.success(), "{stop_signal}: {exit:?}");
    }
}

#[test]
fn serve_refuses_an_invalid_configuration_with_its_errors() {
    let dir = temp_dir();
    let output = idgate_command(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(crate::helpers::fixture("many-errors.yaml"))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("invalid configuration"), "{err}");
    assert!(
        err.contains("many-errors.yaml:2:1: unknown key `colour`"),
        "{err}"
    );
}

#[tokio::test]
async fn serve_keeps_answering_when_its_log_pipe_closes() {
    let dir = temp_dir();
    let (child, lines, port) = serve_with_defaults(dir.path());
    // The reader goes away (a log collector that died): every log line now fails to write.
    drop(lines);
    for path in ["/readyz", "/session", "/login"] {
        let answer = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
            .await
            .unwrap_or_else(|e| panic!("{path} after the log closed: {e}"));
        assert!(
            answer.status().as_u16() < 500,
            "{path} after the log closed: {}",
            answer.status()
        );
    }
    stop(child);
}
