//! `idgate sessions list|revoke` through the real binary, on both backends.

use crate::helpers::{
    SignInApp, TestDb, async_on_both_backends, idgate, session_cookie, spawn_signin_app, stderr,
    stdout,
};

async fn sign_in(app: &SignInApp, email: &str) -> String {
    session_cookie(&app.login(&app.token_for(email)).await)
        .expect("cookie")
        .0
}

fn list(app: &SignInApp, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["sessions", "list", "--json"];
    args.extend_from_slice(extra);
    let output = idgate(app.db.dir.path(), &app.db.url, &args);
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

/// `sessions revoke --provider` ends every session signed in through that provider.
async fn a_providers_sessions_are_revoked_together(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    app.add_member("bob@example.org");
    let sessions = [
        sign_in(&app, "ana@example.org").await,
        sign_in(&app, "bob@example.org").await,
    ];
    let revoked = idgate(
        app.db.dir.path(),
        &app.db.url,
        &["sessions", "revoke", "--provider", "mock"],
    );
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    assert!(stdout(&revoked).contains("revoked 2 session(s) signed in through mock"));
    assert!(list(&app, &[]).is_empty());
    app.clock.advance(3);
    for session in &sessions {
        assert_eq!(app.get_with_session("/auth", session).await.status(), 401);
    }
}

async fn sessions_are_listed_and_revoked(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    app.add_member("bob@example.org");
    let ana = [
        sign_in(&app, "ana@example.org").await,
        sign_in(&app, "ana@example.org").await,
    ];
    let bob = sign_in(&app, "bob@example.org").await;
    let all = list(&app, &[]);
    assert_eq!(all.len(), 3);
    let text = idgate(app.db.dir.path(), &app.db.url, &["sessions", "list"]);
    for id in ana.iter().chain([&bob]) {
        assert!(
            !stdout(&text).contains(id.as_str()),
            "session ids are never shown"
        );
    }
    let mine = list(&app, &["--member", "ANA@example.org"]);
    assert_eq!(mine.len(), 2);
    assert!(
        mine.iter()
            .all(|s| s["email"] == "ana@example.org" && s["provider"] == "mock")
    );
    // The handle of ana's first session is the start of its id's hash.
    let handle = idgate::ids::hash_id(&ana[0])[..16].to_string();
    assert!(
        mine.iter().any(|s| s["handle"] == handle.as_str()),
        "{mine:?}"
    );
    let revoked = idgate(
        app.db.dir.path(),
        &app.db.url,
        &["sessions", "revoke", &handle],
    );
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    assert_eq!(app.get_with_session("/auth", &ana[0]).await.status(), 401);
    assert_eq!(app.get_with_session("/auth", &ana[1]).await.status(), 200);
    let member = idgate(
        app.db.dir.path(),
        &app.db.url,
        &["sessions", "revoke", "--member", "bob@example.org"],
    );
    assert!(member.status.success(), "{}", stderr(&member));
    assert_eq!(app.get_with_session("/auth", &bob).await.status(), 401);
    assert_eq!(list(&app, &[]).len(), 1);
    let unknown = idgate(
        app.db.dir.path(),
        &app.db.url,
        &["sessions", "revoke", "0000000000000000"],
    );
    assert_eq!(unknown.status.code(), Some(1));
    let wildcard = idgate(
        app.db.dir.path(),
        &app.db.url,
        &["sessions", "revoke", "%%%%%%%%%%%%%%%%"],
    );
    assert_eq!(
        wildcard.status.code(),
        Some(1),
        "a handle is hexadecimal, never a pattern"
    );
    assert_eq!(list(&app, &[]).len(), 1);
    // The administrator's actions are in the security log.
    let locked = idgate(
        app.db.dir.path(),
        &app.db.url,
        &["members", "lock", "ana@example.org"],
    );
    assert!(locked.status.success(), "{}", stderr(&locked));
    let mut conn = app.database.conn().expect("conn");
    let events: Vec<(String, Option<String>)> = idgate::db::audit::list_events(&mut conn, 0)
        .expect("events")
        .into_iter()
        .filter(|e| e.event != "login")
        .map(|e| (e.event, e.email))
        .collect();
    assert_eq!(
        events,
        [
            ("sessions_revoked".to_string(), None),
            (
                "sessions_revoked".to_string(),
                Some("bob@example.org".to_string())
            ),
            (
                "member_locked".to_string(),
                Some("ana@example.org".to_string())
            ),
        ]
    );
}

async_on_both_backends!(
    a_providers_sessions_are_revoked_together,
    sessions_are_listed_and_revoked
);
