//! `POST /authenticate action=login id_token=…`: every token, member and policy rule, each asserting its reason
//! code, its status and that no cookie was set; hostile token shapes never answer 5xx.

use serde_json::{Value, json};

use crate::helpers::{
    SignInApp, TestDb, assert_one_of_them_wins, assert_refused, async_on_both_backends,
    session_cookie, spawn_signin_app,
};
use idgate::members::MemberStatus;
use idgate_test_support::provider::{TestKey, raw_token, sign_token};

fn claims_with(app: &SignInApp, email: &str, changes: Value) -> Value {
    app.claims_with(email, changes)
}

fn token_with(app: &SignInApp, email: &str, changes: Value) -> String {
    app.token_with(email, changes)
}

async fn signs_in_with_rsa_pss_ec_and_ed25519_keys(db: TestDb) {
    let app = spawn_signin_app(db).await;
    let member = app.add_member("ana@example.org");
    let claims = |app: &SignInApp| app.provider.claims("ana@example.org", app.now());
    let ec = TestKey::ec("ec1", "ec1");
    let ed = TestKey::ed("ed1", "ed1");
    let pss = sign_token(
        &app.key,
        &json!({"alg": "PS256", "kid": "rsa1"}),
        &claims(&app),
    );
    for token in [
        app.token_for("ana@example.org"),
        app.provider.token(&ec, &claims(&app)),
        app.provider.token(&ed, &claims(&app)),
        pss,
    ] {
        let response = app.login(&token).await;
        assert_eq!(response.status(), 200);
        let (value, attributes) = session_cookie(&response).expect("a session cookie");
        assert_eq!(value.len(), 54, "{attributes}");
        for part in ["HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(attributes.contains(part), "{attributes} lacks {part}");
        }
        assert!(!attributes.contains("Secure"), "plain http: {attributes}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["member"]["id"], member.id);
        assert_eq!(body["member"]["email"], "ana@example.org");
        assert_eq!(body["provider"], "mock");
        assert!(body["expiresAt"].is_string(), "{body}");
    }
}

async fn malformed_tokens_are_refused_with_400(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let good = app.token_for("ana@example.org");
    let parts: Vec<&str> = good.split('.').collect();
    let oversized = token_with(
        &app,
        "ana@example.org",
        json!({"pad": "x".repeat(16 * 1024)}),
    );
    let duplicate = raw_token(
        r#"{"alg":"RS256","kid":"rsa1"}"#,
        r#"{"email":"ana@example.org","email":"bob@example.org"}"#,
        b"sig",
    );
    // A number no 64-bit floating-point number holds.
    let out_of_range = raw_token(
        r#"{"alg":"RS256","kid":"rsa1"}"#,
        r#"{"email":"ana@example.org","exp":1e400}"#,
        b"sig",
    );
    for token in [
        "garbage".to_string(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{good}.{}", parts[2]),
        oversized,
        duplicate,
        out_of_range,
        format!("{}.!!!.{}", parts[0], parts[2]),
        "\u{0}\u{1}.\u{2}.\u{3}".to_string(),
    ] {
        assert_refused(app.login(&token).await, 400, "malformed").await;
    }
}

async fn unsupported_algorithms_are_refused_before_any_key_is_used(db: TestDb) {
    use hmac::Mac as _;
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let claims = app
        .provider
        .claims("ana@example.org", app.now())
        .to_string();
    // alg none, with and without a signature.
    let none = raw_token(r#"{"alg":"none"}"#, &claims, b"");
    // HS256 keyed with the provider's public RSA key: the classic key-confusion attack.
    let public_key = app.key.jwk().to_string();
    let header = r#"{"alg":"HS256","kid":"rsa1"}"#;
    let input = raw_token(header, &claims, b"");
    let input = input.trim_end_matches('.');
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(public_key.as_bytes()).expect("hmac");
    mac.update(input.as_bytes());
    let confused = format!(
        "{input}.{}",
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            mac.finalize().into_bytes()
        )
    );
    let crit = sign_token(
        &app.key,
        &json!({"alg": "RS256", "kid": "rsa1", "crit": ["exp"], "exp": 1}),
        &app.provider.claims("ana@example.org", app.now()),
    );
    for token in [
        none,
        confused,
        crit,
        raw_token(r#"{"alg":"ES512","kid":"ec1"}"#, &claims, b"s"),
        raw_token(r#"{"alg":"rs256","kid":"rsa1"}"#, &claims, b"s"),
        raw_token(r#"{"alg":"none","typ":"at+jwt"}"#, &claims, b""),
    ] {
        assert_refused(app.login(&token).await, 401, "unsupported_alg").await;
    }
}

async fn keys_offered_in_the_header_are_never_used(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let attacker = TestKey::rsa("rsa2", "rsa1");
    let claims = app.provider.claims("ana@example.org", app.now());
    for extra in [
        json!({"jwk": attacker.jwk()}),
        json!({"jku": "http://127.0.0.1:9/jwks"}),
        json!({"x5u": "http://127.0.0.1:9/cert"}),
        json!({"x5c": ["MIIB"]}),
    ] {
        let mut header = json!({"alg": "RS256", "kid": "rsa1"});
        for (k, v) in extra.as_object().expect("object") {
            header[k] = v.clone();
        }
        let token = sign_token(&attacker, &header, &claims);
        assert_refused(app.login(&token).await, 401, "bad_signature").await;
    }
}

async fn access_tokens_and_other_types_are_not_id_tokens(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    for typ in ["at+jwt", "application/at+jwt", "logout+jwt"] {
        let claims = app.provider.claims("ana@example.org", app.now());
        let token = sign_token(
            &app.key,
            &json!({"alg": "RS256", "kid": "rsa1", "typ": typ}),
            &claims,
        );
        assert_refused(app.login(&token).await, 401, "wrong_token_type").await;
    }
}

async fn tokens_from_unknown_issuers_are_refused(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    for iss in [
        json!("https://evil.example.org"),
        json!(null),
        json!(7),
        json!([]),
    ] {
        let token = token_with(&app, "ana@example.org", json!({"iss": iss}));
        assert_refused(app.login(&token).await, 401, "unknown_issuer").await;
    }
}

async fn a_discovery_document_naming_another_issuer_is_unknown_issuer(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    app.provider.set_issuer("https://impostor.example.org");
    let token = app.token_for("ana@example.org");
    assert_refused(app.login(&token).await, 401, "unknown_issuer").await;
}

async fn unknown_keys_are_refused_after_one_refetch(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    assert_eq!(
        app.login(&app.token_for("ana@example.org")).await.status(),
        200
    );
    assert_eq!(app.provider.jwks_fetches(), 1);
    let stranger = TestKey::rsa("rsa2", "not-published");
    let claims = app.provider.claims("ana@example.org", app.now());
    let unknown = app.provider.token(&stranger, &claims);
    assert_refused(app.login(&unknown).await, 401, "unknown_key").await;
    assert_eq!(
        app.provider.jwks_fetches(),
        1,
        "no refetch within 30 s of the last fetch"
    );
    app.clock.advance(30);
    assert_refused(app.login(&unknown).await, 401, "unknown_key").await;
    assert_eq!(
        app.provider.jwks_fetches(),
        2,
        "one refetch for the unknown kid"
    );
    assert_refused(app.login(&unknown).await, 401, "unknown_key").await;
    assert_eq!(app.provider.jwks_fetches(), 2, "and none again within 30 s");
    // Without kid, RS256 fits exactly one published key; two RSA keys make it ambiguous.
    let no_kid = |app: &SignInApp| {
        let claims = app.provider.claims("ana@example.org", app.now());
        sign_token(&app.key, &json!({"alg": "RS256"}), &claims)
    };
    assert_eq!(app.login(&no_kid(&app)).await.status(), 200);
    app.provider
        .publish(vec![app.key.clone(), TestKey::rsa("rsa2", "rsa2")]);
    app.clock.advance(3601);
    assert_refused(app.login(&no_kid(&app)).await, 401, "unknown_key").await;
    assert_eq!(
        app.provider.jwks_fetches(),
        3,
        "the expired JWKS was fetched again"
    );
}

async fn forged_and_altered_signatures_are_refused(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let good = app.token_for("ana@example.org");
    let (input, signature) = good.rsplit_once('.').expect("three parts");
    let mut flipped = signature.as_bytes().to_vec();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    let flipped = format!("{input}.{}", String::from_utf8(flipped).expect("ascii"));
    let claims = app.provider.claims("ana@example.org", app.now());
    let other_key = sign_token(
        &TestKey::rsa("rsa2", "rsa1"),
        &json!({"alg": "RS256", "kid": "rsa1"}),
        &claims,
    );
    let zero_ecdsa = raw_token(
        r#"{"alg":"ES256","kid":"ec1"}"#,
        &claims.to_string(),
        &[0u8; 64],
    );
    let short_ecdsa = raw_token(
        r#"{"alg":"ES256","kid":"ec1"}"#,
        &claims.to_string(),
        &[1u8; 10],
    );
    let zero_ed = raw_token(
        r#"{"alg":"EdDSA","kid":"ed1"}"#,
        &claims.to_string(),
        &[0u8; 64],
    );
    let (header, _) = input.split_once('.').expect("header");
    let swapped_payload = {
        let other = claims_with(&app, "admin@example.org", json!({}));
        let payload = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            other.to_string(),
        );
        format!("{header}.{payload}.{signature}")
    };
    for token in [
        flipped,
        other_key,
        zero_ecdsa,
        short_ecdsa,
        zero_ed,
        swapped_payload,
    ] {
        assert_refused(app.login(&token).await, 401, "bad_signature").await;
    }
}

async fn tokens_for_other_audiences_are_refused(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let both = json!(["idgate-test", "https://api.example.org"]);
    for changes in [
        json!({"aud": "someone-else"}),
        json!({"aud": null}),
        json!({"aud": both}),
        json!({"aud": ["idgate-test", "https://untrusted.example.org"], "azp": "idgate-test"}),
        json!({"azp": "someone-else"}),
    ] {
        let token = token_with(&app, "ana@example.org", changes.clone());
        assert_refused(app.login(&token).await, 401, "bad_audience").await;
    }
    let trusted = token_with(
        &app,
        "ana@example.org",
        json!({"aud": both, "azp": "idgate-test"}),
    );
    assert_eq!(app.login(&trusted).await.status(), 200);
}

async fn expired_and_future_tokens_are_refused(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let now = app.now();
    for changes in [
        json!({"exp": now - 61}),
        json!({"exp": null}),
        json!({"exp": "tomorrow"}),
    ] {
        let token = token_with(&app, "ana@example.org", changes);
        assert_refused(app.login(&token).await, 401, "expired").await;
    }
    for changes in [json!({"nbf": now + 120}), json!({"iat": now + 120})] {
        let token = token_with(&app, "ana@example.org", changes);
        assert_refused(app.login(&token).await, 401, "not_yet_valid").await;
    }
    let edge = token_with(&app, "ana@example.org", json!({"exp": now - 60}));
    assert_refused(app.login(&edge).await, 401, "expired").await;
    // Within the 60-second leeway, and without iat.
    let skewed = token_with(
        &app,
        "ana@example.org",
        json!({"exp": now - 30, "iat": null, "nbf": now + 30}),
    );
    assert_eq!(app.login(&skewed).await.status(), 200);
}

async fn tokens_without_a_usable_email_are_refused(db: TestDb) {
    let app = spawn_signin_app(db).await;
    for email in [
        json!(null),
        json!(42),
        json!("not-an-address"),
        json!("a b@example.org"),
        json!("a@b@example.org"),
    ] {
        let token = token_with(&app, "ana@example.org", json!({"email": email}));
        assert_refused(app.login(&token).await, 401, "bad_email").await;
    }
}

async fn unverified_emails_are_refused(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    for verified in [json!(false), json!("false"), json!(0)] {
        let token = token_with(&app, "ana@example.org", json!({"email_verified": verified}));
        assert_refused(app.login(&token).await, 401, "email_not_verified").await;
    }
    // The strict provider requires the claim; the string "true" counts.
    let strict = token_with(
        &app,
        "ana@example.org",
        json!({"aud": "strict-client", "email_verified": null}),
    );
    assert_refused(app.login(&strict).await, 401, "email_not_verified").await;
    let strict_ok = token_with(
        &app,
        "ana@example.org",
        json!({"aud": "strict-client", "email_verified": "true"}),
    );
    let response = app.login(&strict_ok).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["provider"], "strict");
}

async fn domains_that_do_not_allow_sso_are_refused(db: TestDb) {
    let app = spawn_signin_app(db).await;
    for email in [
        "ana@internal.example.org",
        "ana@unlisted.example.com",
        "ana@other-only.example.org",
    ] {
        app.add_member(email);
        let token = app.token_for(email);
        assert_refused(app.login(&token).await, 403, "domain_not_allowed").await;
    }
}

async fn an_email_without_a_member_is_refused(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    assert_refused(
        app.login(&app.token_for("bob@example.org")).await,
        403,
        "no_member",
    )
    .await;
    // Matching ignores case.
    assert_eq!(
        app.login(&app.token_for("ANA@Example.ORG")).await.status(),
        200
    );
}

async fn inactive_and_locked_members_are_refused(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member_with("new@example.org", None, MemberStatus::Unactivated);
    app.add_member_with("gone@example.org", None, MemberStatus::Disabled);
    app.add_member_with("reset@example.org", None, MemberStatus::SetPassword);
    app.add_member("locked@example.org");
    let mut conn = app.database.conn().expect("conn");
    let email = idgate::members::Email::parse("locked@example.org").expect("email");
    idgate::db::members::set_locked(&mut conn, &email, true, app.now()).expect("lock");
    assert_refused(
        app.login(&app.token_for("new@example.org")).await,
        403,
        "member_inactive",
    )
    .await;
    assert_refused(
        app.login(&app.token_for("gone@example.org")).await,
        403,
        "member_inactive",
    )
    .await;
    assert_refused(
        app.login(&app.token_for("locked@example.org")).await,
        403,
        "member_locked",
    )
    .await;
    assert_eq!(
        app.login(&app.token_for("reset@example.org"))
            .await
            .status(),
        200
    );
}

async fn a_member_stays_bound_to_the_first_subject_of_a_provider(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    app.add_member("bob@example.org");
    let first = token_with(&app, "ana@example.org", json!({"sub": "subject-1"}));
    assert_eq!(app.login(&first).await.status(), 200);
    let other = token_with(&app, "ana@example.org", json!({"sub": "subject-2"}));
    assert_refused(app.login(&other).await, 403, "identity_mismatch").await;
    // A subject bound to one member cannot sign in as another (an edited email at the provider).
    let moved = token_with(&app, "bob@example.org", json!({"sub": "subject-1"}));
    assert_refused(app.login(&moved).await, 403, "identity_mismatch").await;
    let no_sub = token_with(&app, "bob@example.org", json!({"sub": null}));
    assert_refused(app.login(&no_sub).await, 403, "identity_mismatch").await;
    // The refused attempts stored no binding for bob; unbinding ana frees her account.
    let mut conn = app.database.conn().expect("conn");
    let bob = idgate::db::members::find_member_by_email(
        &mut conn,
        &idgate::members::Email::parse("bob@example.org").expect("e"),
    )
    .expect("lookup")
    .expect("bob");
    assert!(
        idgate::db::members::bindings_of(&mut conn, bob.id)
            .expect("bindings")
            .is_empty()
    );
    // Nor did they use up their tokens, Bob's included, which were claimed before his binding
    // was tried: only the first sign-in's token is in the replay guard.
    {
        use diesel::prelude::*;
        let used: i64 = idgate::db::schema::used_tokens::table
            .count()
            .get_result(&mut *conn)
            .expect("count");
        assert_eq!(used, 1);
    }
    let ana = idgate::members::Email::parse("ana@example.org").expect("email");
    assert_eq!(
        idgate::db::members::unbind(
            &mut conn,
            &ana,
            idgate::db::members::Unbind::Provider {
                id: "mock",
                issuer: Some(&app.provider.url),
                sharing: &[],
            }
        )
        .expect("unbind"),
        Some(1)
    );
    let again = token_with(&app, "ana@example.org", json!({"sub": "subject-2"}));
    assert_eq!(app.login(&again).await.status(), 200);
}

/// A sign-in from a browser that holds a session ends that session only when it succeeds: a
/// refused one (here its token used before) leaves the browser's session as it was (its first
/// check, after the refusal, reads the database).
async fn a_refused_sign_in_leaves_the_browsers_session(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let token = app.token_for("ana@example.org");
    let response = app.login(&token).await;
    assert_eq!(response.status(), 200);
    let (session, _) = session_cookie(&response).expect("a session cookie");
    let cookie = format!("idgate_session={session}");
    let again = app.login_with(&token, &[("Cookie", &cookie)]).await;
    assert_refused(again, 401, "replayed").await;
    assert_eq!(app.get_with_session("/auth", &session).await.status(), 200);
}

async fn api_accounts_sign_in_only_from_their_addresses(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member_with("bot@example.org", Some("API-Bot"), MemberStatus::Activated);
    // The peer (127.0.0.1) is a trusted proxy: the client is the right-most untrusted hop.
    for forwarded in [
        None,
        Some("10.9.9.9"),
        Some("10.1.2.3, 10.9.9.9"),
        Some("10.1.2.3, nonsense"),
    ] {
        let headers: Vec<(&str, &str)> = forwarded
            .map(|f| ("X-Forwarded-For", f))
            .into_iter()
            .collect();
        let response = app
            .login_with(&app.token_for("bot@example.org"), &headers)
            .await;
        assert_refused(response, 403, "api_account_ip").await;
    }
    // A forwarded value that is not text is an unreadable hop, not a missing header: the
    // proxy (127.0.0.1, trusted) never becomes the client.
    let odd = reqwest::header::HeaderValue::from_bytes(b"\xff\xfe").expect("bytes");
    let response = app
        .login_request(&app.token_for("bot@example.org"))
        .header("X-Forwarded-For", odd)
        .send()
        .await
        .expect("send");
    assert_refused(response, 403, "api_account_ip").await;
    let response = app
        .login_with(
            &app.token_for("bot@example.org"),
            &[("X-Forwarded-For", "10.1.2.3")],
        )
        .await;
    assert_eq!(response.status(), 200);
}

async fn a_token_signs_in_only_once(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let token = app.token_for("ana@example.org");
    assert_eq!(app.login(&token).await.status(), 200);
    assert_refused(app.login(&token).await, 401, "replayed").await;
    // An earlier rule still comes first: a locked member's replayed token is member_locked.
    let mut conn = app.database.conn().expect("conn");
    let email = idgate::members::Email::parse("ana@example.org").expect("email");
    idgate::db::members::set_locked(&mut conn, &email, true, app.now()).expect("lock");
    assert_refused(app.login(&token).await, 403, "member_locked").await;
}

async fn concurrent_uses_of_one_token_sign_in_exactly_once(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let token = app.token_for("ana@example.org");
    let attempts: Vec<_> = (0..10)
        .map(|_| tokio::spawn(app.login_request(&token).send()))
        .collect();
    assert_one_of_them_wins(attempts).await;
}

/// Members already bound sign in together with several tokens at once, each token sent
/// several times (on PostgreSQL the writer makes such sign-ins in one statement, each token
/// once per statement): each token signs in exactly once, the others are refused as replayed.
async fn concurrent_uses_of_several_tokens_sign_in_once_each(db: TestDb) {
    let app = spawn_signin_app(db).await;
    let members = ["ana@example.org", "bob@example.org"];
    for email in members {
        app.add_member(email);
        assert_eq!(app.login(&app.token_for(email)).await.status(), 200);
    }
    let tokens: Vec<String> = (0..6).map(|i| app.token_for(members[i % 2])).collect();
    let attempts: Vec<_> = (0..4)
        .flat_map(|_| tokens.iter().enumerate())
        .map(|(i, token)| {
            let request = app.login_request(token);
            tokio::spawn(async move {
                let response = request.send().await.unwrap_or_else(|e| panic!("{e}"));
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or_default();
                (i, status, body["error"]["id"].as_str().map(str::to_string))
            })
        })
        .collect();
    let mut answers = vec![Vec::new(); tokens.len()];
    for attempt in attempts {
        let (i, status, reason) = attempt.await.unwrap_or_else(|e| panic!("{e}"));
        answers[i].push((status, reason));
    }
    for (i, answer) in answers.iter().enumerate() {
        let won = answer.iter().filter(|(status, _)| *status == 200).count();
        assert_eq!(won, 1, "token {i}: {answer:?}");
        let replayed = (401, Some("replayed".to_string()));
        assert_eq!(
            answer.iter().filter(|a| **a == replayed).count(),
            3,
            "token {i}: {answer:?}"
        );
    }
    let mut conn = app.database.conn().unwrap_or_else(|e| panic!("{e}"));
    let sessions =
        idgate::db::sessions::list_sessions(&mut conn, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sessions.len(), members.len() + tokens.len());
    // Decided in the first run of each batch: no batch had to run again.
    assert_eq!(app.database.writer_counters().retries.get(), 0);
}

async fn every_attempt_is_in_the_security_log_without_the_token(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let token = app.token_for("ana@example.org");
    let ok = app
        .login_with(&token, &[("User-Agent", "test-agent\tinjected")])
        .await;
    assert_eq!(ok.status(), 200);
    let (session, _) = session_cookie(&ok).expect("cookie");
    let refused = app.login(&token).await;
    let body: Value = refused.json().await.expect("json");
    let incident = body["error"]["incident"]
        .as_str()
        .expect("incident")
        .to_string();
    let mut conn = app.database.conn().expect("conn");
    let events = idgate::db::audit::list_events(&mut conn, 0).expect("events");
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        (events[0].event.as_str(), events[0].outcome.as_str()),
        ("login", "success")
    );
    assert_eq!(events[0].provider.as_deref(), Some("mock"));
    assert_eq!(events[0].email.as_deref(), Some("ana@example.org"));
    assert_eq!(events[0].client_ip.as_deref(), Some("127.0.0.1"));
    assert!(events[0].member_id.is_some());
    assert_eq!(
        events[0].user_agent.as_deref(),
        Some("test-agent\u{fffd}injected")
    );
    assert_eq!(events[1].outcome, "failure");
    assert_eq!(events[1].reason.as_deref(), Some("replayed"));
    assert_eq!(events[1].incident, incident);
    let dump = format!("{events:?}");
    assert!(!dump.contains(&token) && !dump.contains(token.split('.').nth(2).unwrap_or("-")));
    assert!(!dump.contains(&session));
}

async fn the_first_failing_rule_decides_across_stages(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let now = app.now();
    // A bad signature and a bad audience: the signature comes first.
    let claims = claims_with(&app, "ana@example.org", json!({"aud": "someone-else"}));
    let forged = sign_token(
        &TestKey::rsa("rsa2", "rsa1"),
        &json!({"alg": "RS256", "kid": "rsa1"}),
        &claims,
    );
    assert_refused(app.login(&forged).await, 401, "bad_signature").await;
    // An unknown key and an expired token: the key comes first.
    let expired = claims_with(&app, "ana@example.org", json!({"exp": now - 3600}));
    let unknown = app
        .provider
        .token(&TestKey::rsa("rsa2", "unpublished"), &expired);
    assert_refused(app.login(&unknown).await, 401, "unknown_key").await;
    // An expired token for nobody: expired comes before no_member.
    let nobody = claims_with(&app, "nobody@example.org", json!({"exp": now - 3600}));
    assert_refused(
        app.login(&app.provider.token(&app.key, &nobody)).await,
        401,
        "expired",
    )
    .await;
    // alg none with a kid that is not a string: the algorithm comes first.
    let none = raw_token(r#"{"alg":"none","kid":7}"#, &claims.to_string(), b"");
    assert_refused(app.login(&none).await, 401, "unsupported_alg").await;
    // A kid that is not a string names no key, a rule after the issuer's.
    let numbered_kid = json!({"alg": "RS256", "kid": 7});
    let stranger = claims_with(
        &app,
        "ana@example.org",
        json!({"iss": "https://stranger.example"}),
    );
    let from_stranger = sign_token(&app.key, &numbered_kid, &stranger);
    assert_refused(app.login(&from_stranger).await, 401, "unknown_issuer").await;
    let fine = claims_with(&app, "ana@example.org", json!({}));
    let numbered = sign_token(&app.key, &numbered_kid, &fine);
    assert_refused(app.login(&numbered).await, 401, "unknown_key").await;
}

async fn concurrent_first_sign_ins_bind_one_subject(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    app.add_member("bob@example.org");
    // Two tabs, the same person: both sign in.
    let same: Vec<_> = (0..2)
        .map(|_| tokio::spawn(app.login_request(&app.token_for("ana@example.org")).send()))
        .collect();
    for request in same {
        assert_eq!(
            request.await.expect("task").expect("response").status(),
            200
        );
    }
    // Three subjects claiming one member at once: exactly one is bound.
    let rival: Vec<_> = ["subject-a", "subject-b", "subject-c"]
        .iter()
        .map(|sub| {
            let token = token_with(&app, "bob@example.org", json!({"sub": sub}));
            tokio::spawn(app.login_request(&token).send())
        })
        .collect();
    let mut statuses = Vec::new();
    for request in rival {
        statuses.push(
            request
                .await
                .expect("task")
                .expect("response")
                .status()
                .as_u16(),
        );
    }
    statuses.sort_unstable();
    assert_eq!(statuses, vec![200, 403, 403]);
}

async_on_both_backends!(
    a_refused_sign_in_leaves_the_browsers_session,
    the_first_failing_rule_decides_across_stages,
    concurrent_first_sign_ins_bind_one_subject,
    signs_in_with_rsa_pss_ec_and_ed25519_keys,
    malformed_tokens_are_refused_with_400,
    unsupported_algorithms_are_refused_before_any_key_is_used,
    keys_offered_in_the_header_are_never_used,
    access_tokens_and_other_types_are_not_id_tokens,
    tokens_from_unknown_issuers_are_refused,
    a_discovery_document_naming_another_issuer_is_unknown_issuer,
    unknown_keys_are_refused_after_one_refetch,
    forged_and_altered_signatures_are_refused,
    tokens_for_other_audiences_are_refused,
    expired_and_future_tokens_are_refused,
    tokens_without_a_usable_email_are_refused,
    unverified_emails_are_refused,
    domains_that_do_not_allow_sso_are_refused,
    an_email_without_a_member_is_refused,
    inactive_and_locked_members_are_refused,
    a_member_stays_bound_to_the_first_subject_of_a_provider,
    api_accounts_sign_in_only_from_their_addresses,
    a_token_signs_in_only_once,
    concurrent_uses_of_one_token_sign_in_exactly_once,
    concurrent_uses_of_several_tokens_sign_in_once_each,
    every_attempt_is_in_the_security_log_without_the_token,
);
