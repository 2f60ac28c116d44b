//! The provider key cache: rotation with one refetch, single flight under concurrency, the
//! `Cache-Control` lifetime, and signing in while the provider is down.

use std::time::Duration;

use crate::helpers::{TestDb, assert_refused, spawn_signin_app};
use idgate_test_support::provider::TestKey;

#[tokio::test]
async fn a_rotated_key_is_fetched_once_and_the_retired_key_stops_at_once() {
    let app = spawn_signin_app(TestDb::sqlite()).await;
    app.add_member("ana@example.org");
    assert_eq!(
        app.login(&app.token_for("ana@example.org")).await.status(),
        200
    );
    assert_eq!(
        (
            app.provider.discovery_fetches(),
            app.provider.jwks_fetches()
        ),
        (1, 1)
    );

    let new_key = TestKey::rsa("rsa2", "rsa2");
    app.provider.publish(vec![new_key.clone()]);
    app.clock.advance(30);
    let claims = app.provider.claims("ana@example.org", app.now());
    assert_eq!(
        app.login(&app.provider.token(&new_key, &claims))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.provider.jwks_fetches(),
        2,
        "one refetch for the new kid"
    );
    // Later tokens with the new key need no fetch; the retired key is refused without one.
    for _ in 0..3 {
        let claims = app.provider.claims("ana@example.org", app.now());
        assert_eq!(
            app.login(&app.provider.token(&new_key, &claims))
                .await
                .status(),
            200
        );
    }
    assert_refused(
        app.login(&app.token_for("ana@example.org")).await,
        401,
        "unknown_key",
    )
    .await;
    assert_eq!(app.provider.jwks_fetches(), 2);
    assert_eq!(
        app.provider.discovery_fetches(),
        1,
        "discovery is still fresh"
    );
}

#[tokio::test]
async fn a_hundred_concurrent_unknown_kid_sign_ins_share_one_fetch() {
    let app = spawn_signin_app(TestDb::sqlite()).await;
    app.add_member("ana@example.org");
    assert_eq!(
        app.login(&app.token_for("ana@example.org")).await.status(),
        200
    );
    let new_key = TestKey::ec("ec1", "rotated-ec");
    app.provider.publish(vec![new_key.clone()]);
    app.provider.set_jwks_delay(Duration::from_millis(300));
    app.clock.advance(30);
    let requests: Vec<_> = (0..100)
        .map(|_| {
            let claims = app.provider.claims("ana@example.org", app.now());
            tokio::spawn(
                app.login_request(&app.provider.token(&new_key, &claims))
                    .send(),
            )
        })
        .collect();
    let mut ok = 0;
    for request in requests {
        let response = request.await.expect("task").expect("response");
        assert_eq!(response.status(), 200);
        ok += 1;
    }
    assert_eq!(ok, 100);
    assert_eq!(
        app.provider.jwks_fetches(),
        2,
        "the first fetch and one shared refetch"
    );
}

#[tokio::test]
async fn keys_are_kept_for_their_cache_control_max_age() {
    let app = spawn_signin_app(TestDb::sqlite()).await;
    app.add_member("ana@example.org");
    app.provider.set_cache_control("public, max-age=120");
    assert_eq!(
        app.login(&app.token_for("ana@example.org")).await.status(),
        200
    );
    app.clock.advance(119);
    assert_eq!(
        app.login(&app.token_for("ana@example.org")).await.status(),
        200
    );
    assert_eq!(app.provider.jwks_fetches(), 1);
    app.clock.advance(1);
    assert_eq!(
        app.login(&app.token_for("ana@example.org")).await.status(),
        200
    );
    assert_eq!(
        app.provider.jwks_fetches(),
        2,
        "fetched again when the max-age ran out"
    );
}

#[tokio::test]
async fn an_unreachable_provider_with_cached_keys_still_signs_people_in() {
    let app = spawn_signin_app(TestDb::sqlite()).await;
    app.add_member("ana@example.org");
    assert_eq!(
        app.login(&app.token_for("ana@example.org")).await.status(),
        200
    );
    app.provider.set_down(true);
    // Two hours on, the keys (kept one hour) have expired: the refresh fails, the old keys serve.
    app.clock.advance(2 * 3600);
    assert_eq!(
        app.login(&app.token_for("ana@example.org")).await.status(),
        200
    );
    let attempts = app.provider.jwks_fetches() + app.provider.discovery_fetches();
    // Within the refetch window of the failed attempt, no new attempt is made.
    assert_eq!(
        app.login(&app.token_for("ana@example.org")).await.status(),
        200
    );
    assert_eq!(
        app.provider.jwks_fetches() + app.provider.discovery_fetches(),
        attempts
    );
    // Up to 24 hours past their expiry (one hour after the first fetch) the old keys serve;
    // not a second longer.
    let first_fetch = app.now() - 2 * 3600;
    app.clock
        .advance(first_fetch + 3600 + 24 * 3600 - 1 - app.now());
    assert_eq!(
        app.login(&app.token_for("ana@example.org")).await.status(),
        200
    );
    app.clock.advance(1);
    let response = app.login(&app.token_for("ana@example.org")).await;
    assert_refused(response, 503, "unavailable").await;
    // The provider comes back: sign-in works again.
    app.provider.set_down(false);
    app.clock.advance(30);
    assert_eq!(
        app.login(&app.token_for("ana@example.org")).await.status(),
        200
    );
}

#[tokio::test]
async fn a_provider_that_never_answered_gives_503_not_a_token_refusal() {
    let app = spawn_signin_app(TestDb::sqlite()).await;
    app.add_member("ana@example.org");
    app.provider.set_down(true);
    let response = app.login(&app.token_for("ana@example.org")).await;
    assert_refused(response, 503, "unavailable").await;
    let mut conn = app.database.conn().expect("conn");
    let events = idgate::db::audit::list_events(&mut conn, 0).expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].outcome, "error");
    assert_eq!(events[0].reason.as_deref(), Some("provider_unavailable"));
    assert_eq!(events[0].provider.as_deref(), Some("mock"));
}

#[tokio::test]
async fn a_provider_that_answers_another_issuer_keeps_its_last_good_keys() {
    let app = spawn_signin_app(TestDb::sqlite()).await;
    app.add_member("ana@example.org");
    assert_eq!(
        app.login(&app.token_for("ana@example.org")).await.status(),
        200
    );
    app.provider.set_issuer("https://impostor.example.org");
    app.clock.advance(3601);
    // A refresh that fails for any reason keeps the last good keys (and their issuer): one bad
    // answer is not an outage. Tokens naming the new issuer are not the provider's.
    assert_eq!(
        app.login(&app.token_for("ana@example.org")).await.status(),
        200
    );
    let mut claims = app.provider.claims("ana@example.org", app.now());
    claims["iss"] = "https://impostor.example.org".into();
    let impostor = app.provider.token(&app.key, &claims);
    assert_refused(app.login(&impostor).await, 401, "unknown_issuer").await;
}

#[tokio::test]
async fn a_key_that_names_another_algorithm_is_no_key_for_this_one() {
    let app = spawn_signin_app(TestDb::sqlite()).await;
    app.add_member("ana@example.org");
    let mut jwk = app.key.jwk();
    jwk["alg"] = serde_json::json!("RS512");
    app.provider.publish_raw(vec![jwk]);
    assert_refused(
        app.login(&app.token_for("ana@example.org")).await,
        401,
        "unknown_key",
    )
    .await;
    let claims = app.provider.claims("ana@example.org", app.now());
    let rs512 = idgate_test_support::provider::sign_token(
        &app.key,
        &serde_json::json!({"alg": "RS512", "kid": "rsa1", "typ": "jwt"}),
        &claims,
    );
    assert_eq!(
        app.login(&rs512).await.status(),
        200,
        "lowercase typ jwt is accepted"
    );
}

#[tokio::test]
async fn a_jwks_over_one_mebibyte_is_refused() {
    let app = spawn_signin_app(TestDb::sqlite()).await;
    app.add_member("ana@example.org");
    let mut huge = app.key.jwk();
    huge["padding"] = serde_json::json!("x".repeat(1024 * 1024));
    app.provider.publish_raw(vec![app.key.jwk(), huge]);
    let response = app.login(&app.token_for("ana@example.org")).await;
    assert_refused(response, 503, "unavailable").await;
}

/// A token naming an unknown key just after the JWKS was fetched gets no second fetch, and the
/// skipped refetch is logged at debug level with the time the next one is allowed.
#[tokio::test]
async fn a_skipped_refetch_is_logged_with_the_next_allowed_time() {
    use idgate_test_support::provider::{CLIENT_ID, MockProvider};
    let provider = MockProvider::start(vec![TestKey::rsa("rsa1", "rsa1")]).await;
    let dir = crate::helpers::temp_dir();
    std::fs::write(
        dir.path().join("identity.yaml"),
        format!(
            "providers:\n  - id: mock\n    title: Mock\n    authorityUrl: {}\n    clientId: {CLIENT_ID}\ndomains:\n  - name: example.org\n    authentication: external\n",
            provider.url
        ),
    )
    .expect("write");
    let db = TestDb::sqlite();
    let mut serve = crate::helpers::ServeProcess::start_logging(
        dir.path(),
        &db.url,
        &[],
        Some("info,idgate::oidc::keys=debug"),
    );
    let now = idgate::clock::unix_now();
    let unknown = TestKey::rsa("rsa1", "not-published");
    let token = provider.token(&unknown, &provider.claims("ana@example.org", now));
    let refused = reqwest::Client::new()
        .post(format!("{}/authenticate", serve.address))
        .form(&[("action", "login"), ("id_token", token.as_str())])
        .send()
        .await
        .expect("send");
    let body: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["id"], "unknown_key", "{body}");
    // The first fetch was for this very sign-in: the refetch is skipped.
    assert_eq!(provider.jwks_fetches(), 1);
    // The refusal's security event comes after the key lookup's lines.
    let events = serve.events_until("security event");
    let skipped = events
        .iter()
        .find(|event| {
            event["message"] == "unknown key: the JWKS was fetched too recently to fetch it again"
        })
        .unwrap_or_else(|| panic!("no skipped refetch logged: {events:?}"));
    assert_eq!(skipped["level"], "DEBUG", "{skipped}");
    assert_eq!(skipped["provider"], "mock", "{skipped}");
    // Five seconds after the fetch, which was made at `now` or a few seconds after.
    let next = skipped["next_allowed_at"].as_str().unwrap_or_default();
    let allowed: Vec<String> = (now + 5..=now + 10).map(idgate::clock::rfc3339).collect();
    assert!(
        allowed.iter().any(|a| a == next),
        "{next} not in {allowed:?}"
    );
}
