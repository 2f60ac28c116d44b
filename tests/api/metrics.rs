//! `GET /metrics`: Prometheus text with sign-ins by outcome and reason, latency histograms,
//! provider fetches, cache lookups, session checks and the SQLite writer's commits.

use crate::helpers::{TestDb, session_cookie, spawn_signin_app};

#[tokio::test]
async fn metrics_count_sign_ins_fetches_cache_hits_and_session_checks() {
    let app = spawn_signin_app(TestDb::sqlite()).await;
    app.add_member("ana@example.org");
    let session = session_cookie(&app.login(&app.token_for("ana@example.org")).await)
        .expect("cookie")
        .0;
    let token = app.token_for("ana@example.org");
    assert_eq!(app.login(&token).await.status(), 200);
    assert_eq!(app.login(&token).await.status(), 401);
    assert_eq!(app.login("garbage").await.status(), 400);
    assert_eq!(app.get_with_session("/auth", &session).await.status(), 200);
    assert_eq!(app.get_with_session("/auth", "nope").await.status(), 401);
    let response = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.text().await.expect("text");
    for line in [
        r#"idgate_sign_ins_total{event="login",outcome="success",reason=""} 2"#,
        r#"idgate_sign_ins_total{event="login",outcome="failure",reason="replayed"} 1"#,
        r#"idgate_sign_ins_total{event="login",outcome="failure",reason="malformed"} 1"#,
        r#"idgate_sign_in_seconds_count{outcome="success"} 2"#,
        r#"idgate_provider_fetches_total{provider="mock",document="jwks"} 1"#,
        r#"idgate_provider_fetches_total{provider="mock",document="discovery"} 1"#,
        r#"idgate_cache_lookups_total{cache="keys",result="miss"} 1"#,
        r#"idgate_cache_lookups_total{cache="keys",result="hit"} 2"#,
        r#"idgate_session_checks_total{via="cookie",result="live"} 1"#,
        r#"idgate_session_checks_total{via="cookie",result="none"} 1"#,
        "idgate_db_write_queue 0",
        "idgate_db_batch_retries_total 0",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    // The SQLite writer ran at least the five writes of this test (two sign-ins, the replayed
    // one's attempt, the two refusals' security-log rows) besides the purge at start-up, and
    // committed them in no more commits than writes.
    let value = |name: &str| -> u64 {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from:\n{text}"))
    };
    let (writes, commits) = (
        value("idgate_db_writes_total "),
        value("idgate_db_commits_total "),
    );
    assert!(writes >= 5 && (1..=writes).contains(&commits), "{text}");
    assert!(
        text.contains("idgate_session_check_seconds_bucket"),
        "{text}"
    );
}
