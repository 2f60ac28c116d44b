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

/// A session id is its time then 256 random bits; the database keeps the time and the id's
/// hash, in that order. Sessions of ids of 43 characters (256 random bits alone, kept as their
/// hash), made before, still let their member in, are listed by the same kind of handle and
/// can be revoked.
async fn session_ids_of_both_shapes_are_honoured(db: TestDb) {
    let app = spawn_signin_app(db).await;
    let ana = app.add_member("ana@example.org");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis();
    let new = sign_in(&app, "ana@example.org").await;
    assert_eq!(new.len(), 54, "{new}");
    let key = idgate::ids::session_key(&new).expect("a session id");
    let millis = u128::from_str_radix(&key[..16], 16).expect("hex time");
    assert!(millis >= before && millis - before < 60_000, "{key}");
    let old = idgate::ids::random_token();
    {
        let mut conn = app.database.conn().expect("conn");
        let now = idgate::clock::Clock::now(&app.clock);
        idgate::db::sessions::insert_session(
            &mut conn,
            ana.id,
            &idgate::db::sessions::NewSession {
                id_hash: &idgate::ids::hash_id(&old),
                provider: "mock",
                now,
                expires_at: now + 3_600,
                from_token: None,
            },
        )
        .expect("an old session");
    }
    assert_eq!(app.get_with_session("/auth", &old).await.status(), 200);
    assert_eq!(app.get_with_session("/auth", &new).await.status(), 200);
    // Another time before the same random bits is another id; so is another encoding of it.
    for forged in [
        format!("AAAAAAAA{}", &new[8..]),
        format!("{}B", &new[..53]),
        new[..43].to_string(),
    ] {
        assert_eq!(
            app.get_with_session("/auth", &forged).await.status(),
            401,
            "{forged}"
        );
    }
    // The time part of a key is not a handle.
    let time = idgate(
        app.db.dir.path(),
        &app.db.url,
        &["sessions", "revoke", &key[..16]],
    );
    assert_eq!(time.status.code(), Some(1));
    let handles: Vec<String> = list(&app, &[])
        .iter()
        .map(|s| s["handle"].as_str().expect("handle").to_string())
        .collect();
    for id in [&old, &new] {
        let handle = idgate::ids::hash_id(id)[..16].to_string();
        assert!(handles.contains(&handle), "{handles:?}");
        let revoked = idgate(
            app.db.dir.path(),
            &app.db.url,
            &["sessions", "revoke", &handle],
        );
        assert!(revoked.status.success(), "{}", stderr(&revoked));
    }
    assert!(list(&app, &[]).is_empty());
    app.clock.advance(3);
    assert_eq!(app.get_with_session("/auth", &old).await.status(), 401);
    assert_eq!(app.get_with_session("/auth", &new).await.status(), 401);
}

async_on_both_backends!(
    a_providers_sessions_are_revoked_together,
    sessions_are_listed_and_revoked,
    session_ids_of_both_shapes_are_honoured
);
