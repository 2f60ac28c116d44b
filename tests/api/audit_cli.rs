//! `idgate audit`: the security log as text or JSON lines, on both backends.

use crate::helpers::{TestDb, async_on_both_backends, idgate, spawn_signin_app, stderr, stdout};

async fn audit_prints_the_security_log(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    // The app's clock runs two hours behind, so `--since` can tell old events from new ones.
    app.clock.advance(-2 * 3600);
    let token = app.token_for("ana@example.org");
    assert_eq!(app.login(&token).await.status(), 200);
    assert_eq!(app.login(&token).await.status(), 401);
    let (dir, url) = (app.db.dir.path(), app.db.url.as_str());

    let output = idgate(dir, url, &["audit", "--json", "--since", "3h"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let events: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["event"], "login");
    assert_eq!(events[0]["outcome"], "success");
    assert_eq!(events[0]["email"], "ana@example.org");
    assert_eq!(events[1]["reason"], "replayed");
    assert!(
        events[1]["incident"]
            .as_str()
            .is_some_and(|i| i.len() == 16)
    );
    assert!(!stdout(&output).contains(&token));

    let text = idgate(dir, url, &["audit"]);
    assert!(text.status.success(), "{}", stderr(&text));
    let lines: Vec<String> = stdout(&text).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[1].contains("failure") && lines[1].contains("replayed"),
        "{lines:?}"
    );

    // Events older than the period are left out; a bad duration is a usage error.
    let recent = idgate(dir, url, &["audit", "--since", "1h"]);
    assert!(recent.status.success(), "{}", stderr(&recent));
    assert_eq!(stdout(&recent), "", "nothing happened in the last hour");
    let bad = idgate(dir, url, &["audit", "--since", "ten minutes"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains("invalid duration"),
        "{}",
        stderr(&bad)
    );
}

async_on_both_backends!(audit_prints_the_security_log);
