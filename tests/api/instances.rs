//! Two idgate processes on one PostgreSQL database: sessions, codes, the replay guard
//! and the security log are shared; a logout or a lock on one is honoured by the other at once.

use crate::helpers::{ServeProcess, TestDb, idgate, signin_config, stderr};
use idgate_test_support::provider::{MockProvider, TestKey};

#[tokio::test]
async fn two_instances_share_sessions_codes_replay_guard_and_revocation() {
    let Some(db) = TestDb::postgres() else {
        return;
    };
    let key = TestKey::rsa("rsa1", "rsa1");
    let provider = MockProvider::start(vec![key.clone()]).await;
    std::fs::write(
        db.dir.path().join("identity.yaml"),
        signin_config(&provider.url),
    )
    .expect("config");
    let added = idgate(
        db.dir.path(),
        &db.url,
        &["members", "add", "--email", "ana@example.org"],
    );
    assert!(added.status.success(), "{}", stderr(&added));
    // Without the session cache, revocations elsewhere are honoured at once (with it, within
    // its 2 seconds; see sessions::a_revocation_elsewhere_is_honoured_within_the_cache_time).
    let a = ServeProcess::start(db.dir.path(), &db.url, &["--session-cache", "0"]);
    let b = ServeProcess::start(db.dir.path(), &db.url, &["--session-cache", "0"]);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let now = idgate::clock::unix_now();
    let token = |now: i64| provider.token(&key, &provider.claims("ana@example.org", now));
    let login = |base: &str, token: String| {
        client
            .post(format!("{base}/authenticate"))
            .form(&[("action", "login"), ("id_token", token.as_str())])
            .send()
    };
    let auth = |base: &str, session: &str| {
        client
            .get(format!("{base}/auth"))
            .header("Cookie", format!("idgate_session={session}"))
            .send()
    };

    // Signed in on A, trusted on B.
    let first = token(now);
    let response = login(&a.address, first.clone()).await.expect("login");
    assert_eq!(response.status(), 200);
    let session = crate::helpers::session_cookie(&response).expect("cookie").0;
    assert_eq!(
        auth(&b.address, &session).await.expect("auth").status(),
        200
    );
    // The replay guard is shared: the token cannot sign in again on B.
    let replay = login(&b.address, first).await.expect("login");
    assert_eq!(replay.status(), 401);
    // A logout on B ends the session on A at once.
    let logout = client
        .post(format!("{}/logout", b.address))
        .header("Cookie", format!("idgate_session={session}"))
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status(), 200);
    assert_eq!(
        auth(&a.address, &session).await.expect("auth").status(),
        401
    );

    // A code issued on A is redeemed on B, once.
    let code: serde_json::Value = client
        .post(format!("{}/authenticate", a.address))
        .form(&[
            ("action", "code"),
            ("id_token", token(now).as_str()),
            ("client_id", "0123456789abcdef"),
        ])
        .send()
        .await
        .expect("code")
        .json()
        .await
        .expect("json");
    let code = code["authCode"].as_str().expect("authCode").to_string();
    let redeem = |base: &str| {
        client
            .post(format!("{base}/authenticate"))
            .form(&[("action", "login"), ("auth_code", code.as_str())])
            .send()
    };
    let redeemed = redeem(&b.address).await.expect("redeem");
    assert_eq!(redeemed.status(), 200);
    let second = crate::helpers::session_cookie(&redeemed).expect("cookie").0;
    assert_eq!(redeem(&a.address).await.expect("redeem").status(), 401);

    // `members lock` (the command line, a third process) is honoured by both at once.
    assert_eq!(auth(&a.address, &second).await.expect("auth").status(), 200);
    let locked = idgate(
        db.dir.path(),
        &db.url,
        &["members", "lock", "ana@example.org"],
    );
    assert!(locked.status.success(), "{}", stderr(&locked));
    assert_eq!(auth(&a.address, &second).await.expect("auth").status(), 401);
    assert_eq!(auth(&b.address, &second).await.expect("auth").status(), 401);
    assert_eq!(
        login(&a.address, token(now)).await.expect("login").status(),
        403
    );

    // Both wrote to the one security log.
    let audit = idgate(db.dir.path(), &db.url, &["audit", "--json"]);
    let events = crate::helpers::stdout(&audit);
    assert!(events.lines().count() >= 6, "{events}");
    drop((a, b));
}
