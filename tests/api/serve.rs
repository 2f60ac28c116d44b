//! `idgate serve` as a newcomer runs it: defaults, a new SQLite file, SIGTERM to stop.

use std::path::Path;

use crate::helpers::{ServeProcess, idgate_command, repo_path, temp_dir};

/// Starts `idgate serve` in `dir` with the example `identity.yaml` and every default but the
/// address it listens on (`listen`, through `IDGATE_LISTEN`), with `extra` arguments.
fn serve_listening(dir: &Path, listen: &str, extra: &[&str]) -> ServeProcess {
    std::fs::copy(repo_path("identity.yaml"), dir.join("identity.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut command = idgate_command(dir);
    command
        .env("IDGATE_LISTEN", listen)
        .arg("serve")
        .args(extra);
    ServeProcess::spawn(command)
}

/// As a newcomer runs it: every default but the port.
fn serve_with_defaults(dir: &Path) -> ServeProcess {
    serve_listening(dir, "127.0.0.1:0", &[])
}

/// Stops a server with SIGTERM and checks that it exits 0.
fn stop(serve: ServeProcess) {
    serve.signal("-TERM");
    let exit = serve.wait();
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");
}

#[tokio::test]
async fn serve_with_defaults_creates_its_database_answers_and_stops_on_sigterm() {
    let dir = temp_dir();
    // The log stays open (and unread) until the end.
    let serve = serve_with_defaults(dir.path());
    assert!(
        dir.path().join("idgate.db").exists(),
        "the SQLite file is created on first start"
    );
    let health = reqwest::get(format!("{}/healthz", serve.address))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(health.status(), 200);
    stop(serve);
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
        let serve = serve_listening(dir.path(), listen, extra);
        let started = &serve.started;
        assert_eq!(warned(started), warns, "{listen} {extra:?}: {started:?}");
        // Serving, whatever the warning.
        let health = reqwest::get(format!("{}{health}", serve.address))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(health.status(), 200);
        stop(serve);
    }
}

/// The signals are idgate's from before it says it serves: `SIGHUP` at once reloads (and does
/// not end the process, as the system's default would), `SIGTERM` and `SIGINT` at once stop it
/// cleanly.
#[test]
fn signals_sent_as_soon_as_idgate_serves_are_handled() {
    let dir = temp_dir();
    let mut serve = serve_with_defaults(dir.path());
    serve.signal("-HUP");
    serve.wait_for("identity configuration reloaded");
    stop(serve);
    for stop_signal in ["-TERM", "-INT"] {
        let dir = temp_dir();
        let serve = serve_with_defaults(dir.path());
        serve.signal(stop_signal);
        let exit = serve.wait();
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
    let mut serve = serve_with_defaults(dir.path());
    // The reader goes away (a log collector that died): every log line now fails to write.
    serve.close_log();
    for path in ["/readyz", "/session", "/login"] {
        let answer = reqwest::get(format!("{}{path}", serve.address))
            .await
            .unwrap_or_else(|e| panic!("{path} after the log closed: {e}"));
        assert!(
            answer.status().as_u16() < 500,
            "{path} after the log closed: {}",
            answer.status()
        );
    }
    stop(serve);
}
