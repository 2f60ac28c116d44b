//! Bearer access tokens on `/session` and `/auth`: JWT access tokens of providers
//! with `apiAudience`, the email from the provider's userinfo (cached), the member rules.

use serde_json::{Value, json};

use crate::helpers::{SignInApp, TestDb, async_on_both_backends, spawn_signin_app};
use idgate_test_support::provider::TestKey;

fn access(app: &SignInApp, sub: &str, changes: Value) -> String {
    app.provider.access_token(&app.key, sub, app.now(), changes)
}

async fn get(app: &SignInApp, path: &str, token: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{path}", app.address))
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .await
        .expect("send")
}

async fn error_of(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("json");
    (
        status,
        body["error"]["id"].as_str().unwrap_or_default().to_string(),
    )
}

async fn an_access_token_identifies_the_member_through_userinfo(db: TestDb) {
    let app = spawn_signin_app(db).await;
    let member = app.add_member("ana@example.org");
    app.provider.set_userinfo(
        "ana-sub",
        json!({"sub": "ana-sub", "email": "ana@example.org", "email_verified": true}),
    );
    let token = access(&app, "ana-sub", json!({}));
    let response = get(&app, "/session", &token).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["member"]["id"], member.id);
    assert_eq!(body["provider"], "mock");
    let auth = get(&app, "/auth", &token).await;
    assert_eq!(auth.status(), 200);
    assert_eq!(
        auth.headers()
            .get("x-auth-email")
            .and_then(|v| v.to_str().ok()),
        Some("ana@example.org")
    );
    // A Bearer token makes no binding; one made by an ID token sign-in is enforced.
    let mut claims = app.provider.claims("ana@example.org", app.now());
    claims["sub"] = json!("ana-sub");
    assert_eq!(
        app.login(&app.provider.token(&app.key, &claims))
            .await
            .status(),
        200
    );
    let other = access(&app, "someone-else", json!({}));
    app.provider.set_userinfo(
        "someone-else",
        json!({"sub": "someone-else", "email": "ana@example.org"}),
    );
    assert_eq!(
        error_of(get(&app, "/session", &other).await).await,
        (403, "identity_mismatch".into())
    );
    assert_eq!(
        get(&app, "/auth", &other).await.status(),
        401,
        "/auth answers 200 or 401"
    );
}

async fn a_thousand_api_requests_with_one_token_ask_userinfo_once(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    app.provider.set_userinfo(
        "ana-sub",
        json!({"sub": "ana-sub", "email": "ana@example.org"}),
    );
    let token = access(&app, "ana-sub", json!({}));
    let mut handles = Vec::new();
    for _ in 0..1000 {
        let request = app
            .client
            .get(format!("{}/auth", app.address))
            .header("Authorization", format!("Bearer {token}"));
        handles.push(tokio::spawn(request.send()));
        if handles.len() == 50 {
            for handle in handles.drain(..) {
                assert_eq!(handle.await.expect("task").expect("send").status(), 200);
            }
        }
    }
    assert_eq!(app.provider.userinfo_calls(), 1);
    // Five minutes on, the answer is asked for again.
    app.clock.advance(5 * 60);
    let fresh = access(&app, "ana-sub", json!({}));
    assert_eq!(get(&app, "/auth", &fresh).await.status(), 200);
    assert_eq!(app.provider.userinfo_calls(), 2);
}

async fn access_tokens_that_fail_their_checks_are_refused(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    app.provider.set_userinfo(
        "ana-sub",
        json!({"sub": "ana-sub", "email": "ana@example.org"}),
    );
    let now = app.now();
    let cases: Vec<(String, u16, &str)> = vec![
        (
            access(&app, "ana-sub", json!({"aud": "idgate-test"})),
            401,
            "bad_audience",
        ),
        (
            access(&app, "ana-sub", json!({"exp": now - 120})),
            401,
            "expired",
        ),
        (
            access(&app, "ana-sub", json!({"iss": "https://evil.example"})),
            401,
            "unknown_issuer",
        ),
        (
            app.provider
                .access_token(&TestKey::rsa("rsa2", "rsa1"), "ana-sub", now, json!({})),
            401,
            "bad_signature",
        ),
        // An ID token is no access token for idgate's API.
        (app.token_for("ana@example.org"), 401, "bad_audience"),
        ("garbage".to_string(), 400, "malformed"),
    ];
    // An ID token whose audience names the API too, or a token with a nonce, is no access
    // token.
    let mut id_claims = app.provider.claims("ana@example.org", now);
    id_claims["aud"] = json!(["idgate-test", idgate_test_support::provider::API_AUDIENCE]);
    id_claims["azp"] = json!("idgate-test");
    let mut cases = cases;
    cases.push((
        app.provider.token(&app.key, &id_claims),
        401,
        "bad_audience",
    ));
    cases.push((
        access(&app, "ana-sub", json!({"nonce": "n"})),
        401,
        "bad_audience",
    ));
    for (token, status, reason) in cases {
        assert_eq!(
            error_of(get(&app, "/session", &token).await).await,
            (status, reason.into())
        );
        let auth = get(&app, "/auth", &token).await;
        assert_eq!(auth.status(), 401, "{reason}: /auth answers 200 or 401");
        assert!(auth.headers().get("www-authenticate").is_some());
    }
    // Tokens no provider signed are logged, not stored.
    let mut conn = app.database.conn().expect("conn");
    let stored = idgate::db::audit::list_events(&mut conn, 0).expect("events");
    assert!(
        stored.iter().all(|e| !matches!(
            e.reason.as_deref(),
            Some("malformed" | "bad_signature" | "unknown_issuer")
        )),
        "{stored:?}"
    );
    assert_eq!(
        app.provider.userinfo_calls(),
        0,
        "nothing was asked for refused tokens"
    );
}

async fn userinfo_answers_are_checked(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    app.add_member("gone@example.org");
    // userinfo names another subject than the token.
    app.provider.set_userinfo(
        "liar",
        json!({"sub": "someone-else", "email": "ana@example.org"}),
    );
    assert_eq!(
        error_of(get(&app, "/session", &access(&app, "liar", json!({}))).await).await,
        (403, "identity_mismatch".into())
    );
    app.provider
        .set_userinfo("no-mail", json!({"sub": "no-mail"}));
    assert_eq!(
        error_of(get(&app, "/session", &access(&app, "no-mail", json!({}))).await).await,
        (401, "bad_email".into())
    );
    app.provider.set_userinfo(
        "stranger",
        json!({"sub": "stranger", "email": "nobody@example.org"}),
    );
    assert_eq!(
        error_of(get(&app, "/session", &access(&app, "stranger", json!({}))).await).await,
        (403, "no_member".into())
    );
    app.provider.set_userinfo(
        "inside",
        json!({"sub": "inside", "email": "x@internal.example.org"}),
    );
    assert_eq!(
        error_of(get(&app, "/session", &access(&app, "inside", json!({}))).await).await,
        (403, "domain_not_allowed".into())
    );
    // The provider refuses the token at userinfo (unknown to it, or revoked).
    assert_eq!(
        error_of(get(&app, "/session", &access(&app, "revoked", json!({}))).await).await,
        (401, "expired".into())
    );
    let mut conn = app.database.conn().expect("conn");
    let events = idgate::db::audit::list_events(&mut conn, 0).expect("events");
    assert!(
        events
            .iter()
            .all(|e| e.event == "bearer" && e.outcome == "failure"),
        "{events:?}"
    );
    assert_eq!(events.len(), 5);
}

/// The binding rule holds both ways for Bearer tokens: a subject bound to one member cannot
/// pass as another whose email its userinfo now gives.
async fn a_bound_subject_cannot_pass_as_another_member(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    app.add_member("bob@example.org");
    // Ana's first sign-in binds her to `ana-sub`.
    let mut claims = app.provider.claims("ana@example.org", app.now());
    claims["sub"] = json!("ana-sub");
    assert_eq!(
        app.login(&app.provider.token(&app.key, &claims))
            .await
            .status(),
        200
    );
    // The provider now says `ana-sub` is bob (an edited or recycled address).
    app.provider.set_userinfo(
        "ana-sub",
        json!({"sub": "ana-sub", "email": "bob@example.org", "email_verified": true}),
    );
    let token = access(&app, "ana-sub", json!({}));
    assert_eq!(
        error_of(get(&app, "/session", &token).await).await,
        (403, "identity_mismatch".to_string())
    );
}

async_on_both_backends!(
    a_bound_subject_cannot_pass_as_another_member,
    an_access_token_identifies_the_member_through_userinfo,
    a_thousand_api_requests_with_one_token_ask_userinfo_once,
    access_tokens_that_fail_their_checks_are_refused,
    userinfo_answers_are_checked,
);
