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

/// Two instances whose database writers commit sign-ins in batches at the same time, every token
/// posted to both at once: no token ever signs in twice. A token's second sign-in waits for the
/// first's batch and is refused as a replay (at once when that batch holds it longer than the
/// writer waits for a lock); a write that waited too long on the other instance's batch answers
/// 503, never a second session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_batching_at_once_never_let_a_token_sign_in_twice() {
    use std::sync::Arc;

    let Some(db) = TestDb::postgres() else {
        return;
    };
    let key = TestKey::rsa("rsa1", "rsa1");
    let provider = MockProvider::start(vec![key.clone()]).await;
    let yaml = db.dir.path().join("identity.yaml");
    std::fs::write(&yaml, signin_config(&provider.url)).expect("config");
    let now = idgate::clock::unix_now();
    let emails = ["ana", "bob", "eve", "joe"].map(|name| format!("{name}@example.org"));
    for email in &emails {
        db.add_member(email);
    }
    let start = || crate::helpers::start_instance(&db, &yaml, Arc::new(idgate::clock::SystemClock));
    let instances = [start(), start()];
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .expect("client");
    // Each member signs in once first, so that the storm below is about the tokens, not about
    // the members' first bindings (which the two instances would also race to write).
    for email in &emails {
        let first = client
            .post(format!("{}/authenticate", instances[0]))
            .form(&[
                ("action", "login"),
                (
                    "id_token",
                    &provider.token(&key, &provider.claims(email, now)),
                ),
            ])
            .send()
            .await
            .expect("login");
        assert_eq!(first.status(), 200);
    }
    let tokens: Vec<String> = (0..80)
        .map(|i| provider.token(&key, &provider.claims(&emails[i % emails.len()], now)))
        .collect();
    let attempts: Vec<_> = tokens
        .iter()
        .enumerate()
        .flat_map(|(i, token)| {
            instances
                .iter()
                .map(move |base| (i, base.clone(), token.clone()))
        })
        .map(|(i, base, token)| {
            let client = client.clone();
            tokio::spawn(async move {
                let response = client
                    .post(format!("{base}/authenticate"))
                    .form(&[("action", "login"), ("id_token", token.as_str())])
                    .send()
                    .await
                    .expect("login");
                (i, response.status().as_u16())
            })
        })
        .collect();
    let mut answers = vec![Vec::new(); tokens.len()];
    for attempt in attempts {
        let (i, status) = attempt.await.expect("task");
        answers[i].push(status);
    }
    let mut signed_in = 0;
    for (i, statuses) in answers.iter().enumerate() {
        let successes = statuses.iter().filter(|s| **s == 200).count();
        assert!(successes <= 1, "token {i} signed in twice: {statuses:?}");
        assert!(
            statuses.iter().all(|s| [200, 401, 503].contains(s)),
            "token {i}: {statuses:?}"
        );
        // Neither kept it only when one of them failed (503): the other was refused as used
        // while the failing batch held the token, which fails closed.
        if successes == 0 {
            assert!(
                statuses.contains(&503),
                "token {i} was refused as used although no sign-in kept it: {statuses:?}"
            );
        }
        signed_in += successes;
    }
    assert!(signed_in >= tokens.len() * 9 / 10, "{answers:?}");
    // The writers did batch: on at least one instance, commits carried several sign-ins.
    let mut batched = false;
    for base in &instances {
        let metrics = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        let value = |name: &str| -> u64 {
            metrics
                .lines()
                .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
                .unwrap_or(0)
        };
        batched |= value("idgate_db_writes_total ") > value("idgate_db_commits_total ");
    }
    assert!(batched, "no commit carried more than one write");
    // The database agrees: one session per sign-in.
    let database = db.open();
    let sessions = idgate::db::sessions::list_sessions(&mut database.conn().expect("conn"), None)
        .expect("sessions");
    assert_eq!(sessions.len(), signed_in + emails.len());
}

/// A sign-in that waits for a concurrent unbind (another connection holds the member's row,
/// having deleted its binding, and commits while the sign-in waits) sees the binding gone: a
/// token with another subject binds it and signs in, instead of being refused against the
/// binding that was removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_waiting_for_an_unbind_sees_the_binding_gone() {
    use diesel::Connection as _;
    use diesel::connection::SimpleConnection as _;

    let Some(db) = TestDb::postgres() else {
        return;
    };
    let app = crate::helpers::spawn_signin_app(db).await;
    let ana = app.add_member("ana@example.org");
    let old = app.token_with("ana@example.org", serde_json::json!({"sub": "old-subject"}));
    assert_eq!(app.login(&old).await.status(), 200);

    // The unbind, as `members unbind` does it: the member's row first, then the binding.
    let mut unbind = diesel::pg::PgConnection::establish(&app.db.url).expect("a second connection");
    unbind
        .batch_execute(&format!(
            "BEGIN; UPDATE members SET updated_at = updated_at WHERE id = {id}; \
             DELETE FROM identity_bindings WHERE member_id = {id}",
            id = ana.id
        ))
        .expect("unbind");
    let new = app.token_with("ana@example.org", serde_json::json!({"sub": "new-subject"}));
    let sign_in = tokio::spawn(app.login_request(&new).send());
    // The sign-in now waits for the member's row; then the unbind commits.
    let mut watcher = diesel::pg::PgConnection::establish(&app.db.url).expect("a third connection");
    loop {
        #[derive(diesel::QueryableByName)]
        struct Waiting {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            waiting: i64,
        }
        let waiting: Waiting = diesel::RunQueryDsl::get_result(
            diesel::sql_query(
                "SELECT count(*) AS waiting FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            ),
            &mut watcher,
        )
        .expect("pg_locks");
        if waiting.waiting > 0 {
            break;
        }
        assert!(
            !sign_in.is_finished(),
            "the sign-in did not wait for the member's row"
        );
        tokio::task::yield_now().await;
    }
    unbind.batch_execute("COMMIT").expect("commit");
    let answer = sign_in.await.expect("task").expect("sign-in");
    assert_eq!(answer.status(), 200, "{:?}", answer.text().await);
    let mut conn = app.database.conn().expect("conn");
    let bindings = idgate::db::members::bindings_of(&mut conn, ana.id).expect("bindings");
    assert_eq!(bindings.len(), 1, "{bindings:?}");
    assert_eq!(bindings[0].subject, "new-subject");
}

/// Two instances signing one token in at once, on the member's first sign-in at the issuer:
/// the one that waits for the other's batch longer than the writer waits for a lock refuses
/// the token as `replayed` (not `503`), and stores nothing: a first sign-in claims its token
/// before it binds the member. The other instance's batch is played by a connection holding
/// the token's replay-guard row and the member's binding, uncommitted, then rolled back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_sign_in_racing_another_instance_with_its_token_is_refused_as_replayed() {
    use diesel::Connection as _;
    use diesel::connection::SimpleConnection as _;

    let Some(db) = TestDb::postgres() else {
        return;
    };
    let app = crate::helpers::spawn_signin_app(db).await;
    let ana = app.add_member("ana@example.org");
    let token = app.token_for("ana@example.org");
    let (claims, hash) = crate::helpers::token_parts(&token);
    let exp = claims["exp"].as_i64().expect("exp");
    // The replay guard's key: the expiry, then the SHA-256 of the signed part.
    let key = format!("{exp:016x}{hash}");
    let mut other = diesel::pg::PgConnection::establish(&app.db.url).expect("connection");
    other
        .batch_execute(&format!(
            "BEGIN; \
             INSERT INTO used_tokens (token_hash, expires_at) VALUES ('{key}', {exp}); \
             INSERT INTO identity_bindings (member_id, issuer, subject, provider, created_at) \
             VALUES ({id}, '{issuer}', '{subject}', 'mock', 1)",
            id = ana.id,
            issuer = claims["iss"].as_str().expect("iss").trim_end_matches('/'),
            subject = claims["sub"].as_str().expect("sub"),
        ))
        .expect("the other instance's batch");
    crate::helpers::assert_refused(app.login(&token).await, 401, "replayed").await;
    other.batch_execute("ROLLBACK").expect("rollback");
    let mut conn = app.database.conn().expect("conn");
    assert!(
        idgate::db::members::bindings_of(&mut conn, ana.id)
            .expect("bindings")
            .is_empty(),
        "the refused sign-in stored no binding"
    );
    drop(conn);
    // Neither kept the token: it signs in now.
    assert_eq!(app.login(&token).await.status(), 200);
}
