//! Logging out everywhere: at the provider (RP-initiated), from the provider (back-channel and
//! front-channel), and by a reload that no longer allows what a session or code was for.

use std::sync::Arc;

use idgate::clock::ManualClock;
use idgate::settings::Settings;
use idgate_test_support::provider::{
    CLIENT_ID, MockProvider, TestKey, raw_token, sign_claims_text,
};
use serde_json::{Value, json};

use crate::auth_codes::{issue_for_token, redeem_post};
use crate::helpers::{SignInApp, TestDb, session_cookie, signin_config, spawn_signin_app};

/// Signs Ana in with a token naming the provider session `sid`; her session cookie.
async fn signed_in(app: &SignInApp, sid: &str) -> String {
    let mut claims = app.provider.claims("ana@example.org", app.now());
    claims["sid"] = json!(sid);
    claims["sub"] = json!("ana-sub");
    let response = app.login(&app.provider.token(&app.key, &claims)).await;
    assert_eq!(response.status(), 200);
    session_cookie(&response).expect("cookie").0
}

/// Ana's claims for the provider entry `strict`: the mock's issuer, another client id, the same
/// subject as [`signed_in`]'s.
fn strict_claims(app: &SignInApp) -> Value {
    let mut claims = app.provider.claims("ana@example.org", app.now());
    claims["aud"] = json!("strict-client");
    claims["sub"] = json!("ana-sub");
    claims
}

/// Reloads the app's configuration file (as SIGHUP would: the endpoint needs an administrator)
/// through a state on the app's database, where what it revokes is decided.
async fn reload(app: &SignInApp) {
    let state = crate::hardening::app_state(app);
    let event = idgate::audit::SecurityEvent::new(
        idgate::audit::Event::ConfigReload,
        idgate::audit::Outcome::Failure,
        "reload".into(),
    );
    idgate::reload::reload(&state, event)
        .await
        .expect("reloaded");
}

/// Posts `token` to the back-channel logout endpoint.
pub async fn backchannel(app: &SignInApp, token: &str) -> reqwest::Response {
    app.client
        .post(format!("{}/backchannel-logout", app.address))
        .form(&[("logout_token", token)])
        .send()
        .await
        .expect("send")
}

async fn live(app: &SignInApp, session: &str) -> bool {
    // Past the session cache: the database decides.
    app.clock.advance(3);
    app.get_with_session("/session", session).await.status() == 200
}

async fn every_refused_logout_token_leaves_the_session_alive(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let session = signed_in(&app, "sid-1").await;
    let now = app.now();
    let token = |claims: Value| {
        app.provider
            .logout_token(&app.key, CLIENT_ID, app.now(), claims)
    };
    let replayed = token(json!({"sid": "sid-other"}));
    assert_eq!(backchannel(&app, &replayed).await.status(), 200);
    let other_key = TestKey::rsa("rsa2", "rsa1");
    let mut refused: Vec<(&str, String)> = vec![
        ("a nonce", token(json!({"sid": "sid-1", "nonce": "n"}))),
        ("no events", token(json!({"sid": "sid-1", "events": null}))),
        (
            "another event",
            token(json!({"sid": "sid-1", "events": {"urn:other": {}}})),
        ),
        ("neither sid nor sub", token(json!({}))),
        // A sid or sub that is there but unusable refuses the token: left out, the first would
        // end every session of the member, the second this one.
        (
            "a sid that is no text",
            token(json!({"sid": 7, "sub": "ana-sub"})),
        ),
        ("an empty sub", token(json!({"sid": "sid-1", "sub": ""}))),
        ("no jti", token(json!({"sid": "sid-1", "jti": null}))),
        ("the jti again", replayed.clone()),
        (
            "another audience",
            app.provider
                .logout_token(&app.key, "someone-else", now, json!({"sid": "sid-1"})),
        ),
        (
            "a bad signature",
            app.provider
                .logout_token(&other_key, CLIENT_ID, now, json!({"sid": "sid-1"})),
        ),
        ("no iat", token(json!({"sid": "sid-1", "iat": null}))),
        (
            "issued more than a day ago",
            token(json!({"sid": "sid-1", "iat": now - 86_401, "exp": null})),
        ),
        (
            "valid for more than a day",
            token(json!({"sid": "sid-1", "exp": now + 86_400 + 600})),
        ),
        ("expired", token(json!({"sid": "sid-1", "exp": now - 3600}))),
    ];
    // `typ` at+jwt, and an ID token posted as a logout token.
    let mut claims = app.provider.claims("ana@example.org", now);
    claims["sid"] = json!("sid-1");
    claims["events"] = json!({"http://schemas.openid.net/event/backchannel-logout": {}});
    refused.push((
        "typ at+jwt",
        idgate_test_support::provider::sign_token(
            &app.key,
            &json!({"alg": "RS256", "kid": app.key.kid, "typ": "at+jwt"}),
            &claims,
        ),
    ));
    refused.push(("an ID token", app.provider.token(&app.key, &claims)));
    refused.push(("no token at all", String::new()));
    // The ID-token rules that apply to every token: issuer, algorithm, key, header, structure.
    let sid_1 = app
        .provider
        .logout_claims(CLIENT_ID, now, json!({"sid": "sid-1"}));
    let header = |extra: Value| {
        let mut header = json!({"alg": "RS256", "kid": app.key.kid, "typ": "logout+jwt"});
        if let (Value::Object(header), Value::Object(extra)) = (&mut header, extra) {
            header.extend(extra);
        }
        header
    };
    let signed = |header: Value, claims: &str| sign_claims_text(&app.key, &header, claims);
    let sid_1_text = sid_1.to_string();
    let duplicated = format!(
        "{},\"sid\":\"sid-other\"}}",
        sid_1_text.strip_suffix('}').expect("an object")
    );
    refused.extend([
        (
            "an unknown issuer",
            token(json!({"sid": "sid-1", "iss": "https://unknown.example"})),
        ),
        (
            "alg none",
            raw_token(r#"{"alg":"none","typ":"logout+jwt"}"#, &sid_1_text, b""),
        ),
        (
            "an algorithm the provider does not list",
            // Signed with the provider's client secret, which would be its key had it listed
            // HS256: only the algorithm refuses it.
            idgate_test_support::provider::sign_token(
                &TestKey::hmac(idgate_test_support::provider::CLIENT_SECRET, ""),
                &json!({"alg": "HS256", "typ": "logout+jwt"}),
                &sid_1,
            ),
        ),
        (
            "an unknown key",
            signed(header(json!({"kid": "no-such-key"})), &sid_1_text),
        ),
        (
            "a critical header",
            signed(header(json!({"crit": ["exp"]})), &sid_1_text),
        ),
        (
            "a member given twice",
            signed(header(json!({})), &duplicated),
        ),
        (
            "more than 16 KiB",
            token(json!({"sid": "sid-1", "pad": "x".repeat(16 * 1024)})),
        ),
    ]);
    let how_many = refused.len();
    for (why, token) in refused {
        let response = backchannel(&app, &token).await;
        assert_eq!(response.status(), 400, "{why}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body, json!({"error": "invalid_request"}), "{why}");
        assert!(
            live(&app, &session).await,
            "{why}: the session is still live"
        );
    }
    // Each refusal is in the security log.
    let mut conn = app.database.conn().expect("conn");
    let logged = idgate::db::audit::list_events(&mut conn, 0).expect("log");
    let refusals = logged
        .iter()
        .filter(|e| {
            e.event == "backchannel_logout"
                && e.outcome == "failure"
                && e.reason.as_deref() == Some("invalid_request")
        })
        .count();
    assert_eq!(refusals, how_many, "{logged:?}");
}

/// A logout token, typed or not, never signs anybody in.
async fn a_logout_token_is_no_id_token(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let mut claims = app.provider.claims("ana@example.org", app.now());
    claims["events"] = json!({"http://schemas.openid.net/event/backchannel-logout": {}});
    let untyped = idgate_test_support::provider::sign_token(
        &app.key,
        &json!({"alg": "RS256", "kid": app.key.kid}),
        &claims,
    );
    crate::helpers::assert_refused(app.login(&untyped).await, 401, "wrong_token_type").await;
    let typed = app.provider.logout_token(
        &app.key,
        CLIENT_ID,
        app.now(),
        json!({"sub": "sub-ana@example.org"}),
    );
    crate::helpers::assert_refused(app.login(&typed).await, 401, "wrong_token_type").await;
}

/// A one-time authentication code for Ana's provider session `sid` (subject `sub`).
async fn code_for(app: &SignInApp, sid: &str, sub: &str) -> String {
    let token = app.token_with("ana@example.org", json!({"sid": sid, "sub": sub}));
    issue_for_token(app, &token).await
}

/// A session a document app's authentication code made remembers the provider session too,
/// and a logout voids the codes not traded yet.
async fn a_logout_token_ends_sessions_made_from_codes(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let redeemed = redeem_post(&app, &code_for(&app, "sid-code", "ana-sub").await).await;
    assert_eq!(redeemed.status(), 200);
    let session = session_cookie(&redeemed).expect("cookie").0;
    // Codes not traded yet: one of the provider session the logout names, one of another.
    let unused = code_for(&app, "sid-code", "ana-sub").await;
    let other = code_for(&app, "sid-other", "ana-sub").await;
    let logout =
        app.provider
            .logout_token(&app.key, CLIENT_ID, app.now(), json!({"sid": "sid-code"}));
    assert_eq!(backchannel(&app, &logout).await.status(), 200);
    assert!(!live(&app, &session).await);
    // The ended provider session's code no longer makes a session; the other's still does.
    assert_eq!(redeem_post(&app, &unused).await.status(), 401);
    assert_eq!(redeem_post(&app, &other).await.status(), 200);
    // A logout by subject voids that subject's codes through this provider entry only: not
    // another subject's, nor the same subject's through another entry on the issuer.
    let unused = code_for(&app, "sid-3", "ana-sub").await;
    app.add_member("bob@example.org");
    let bobs = issue_for_token(
        &app,
        &app.token_with("bob@example.org", json!({"sub": "bob-sub"})),
    )
    .await;
    let mut claims = strict_claims(&app);
    claims["email_verified"] = json!(true);
    let strict = issue_for_token(&app, &app.provider.token(&app.key, &claims)).await;
    let by_sub =
        app.provider
            .logout_token(&app.key, CLIENT_ID, app.now(), json!({"sub": "ana-sub"}));
    assert_eq!(backchannel(&app, &by_sub).await.status(), 200);
    assert_eq!(redeem_post(&app, &unused).await.status(), 401);
    assert_eq!(redeem_post(&app, &bobs).await.status(), 200);
    assert_eq!(redeem_post(&app, &strict).await.status(), 200);
}

async fn a_logout_token_ends_the_sessions_it_names(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    // By `sid`: that provider session only.
    let first = signed_in(&app, "sid-1").await;
    let second = signed_in(&app, "sid-2").await;
    let by_sid = app
        .provider
        .logout_token(&app.key, CLIENT_ID, app.now(), json!({"sid": "sid-1"}));
    let response = backchannel(&app, &by_sid).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("cache-control")
            .map(|v| v.as_bytes()),
        Some(&b"no-store"[..])
    );
    // At once on this instance, the session cache included.
    assert_eq!(app.get_with_session("/session", &first).await.status(), 401);
    assert!(live(&app, &second).await);
    // By `sub`: every session of the member bound to it, from this provider.
    let by_sub =
        app.provider
            .logout_token(&app.key, CLIENT_ID, app.now(), json!({"sub": "ana-sub"}));
    assert_eq!(backchannel(&app, &by_sub).await.status(), 200);
    assert!(!live(&app, &second).await);
    let mut conn = app.database.conn().expect("conn");
    let logged = idgate::db::audit::list_events(&mut conn, 0).expect("log");
    assert_eq!(
        logged
            .iter()
            .filter(|e| e.event == "backchannel_logout" && e.outcome == "success")
            .count(),
        2
    );
}

/// A logout naming only `sub` is for the sessions of the provider entry (the client) it is
/// addressed to: another entry on the same issuer keeps its own.
async fn a_logout_by_subject_ends_only_its_entrys_sessions(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let mock_session = signed_in(&app, "sid-1").await;
    let strict = app
        .login(&app.provider.token(&app.key, &strict_claims(&app)))
        .await;
    assert_eq!(strict.status(), 200);
    let strict_session = session_cookie(&strict).expect("cookie").0;
    let by_sub = |client: &str| {
        app.provider
            .logout_token(&app.key, client, app.now(), json!({"sub": "ana-sub"}))
    };
    assert_eq!(backchannel(&app, &by_sub(CLIENT_ID)).await.status(), 200);
    assert!(!live(&app, &mock_session).await);
    assert!(live(&app, &strict_session).await);
    assert_eq!(
        backchannel(&app, &by_sub("strict-client")).await.status(),
        200
    );
    assert!(!live(&app, &strict_session).await);
}

/// `POST /logout` with the session cookie, asking for `accept`.
async fn sign_out(app: &SignInApp, session: &str, accept: &str) -> reqwest::Response {
    sign_out_at(app, "/logout", session, accept).await
}

/// A sign-out posted to `path` with the session cookie, asking for `accept`: `/logout`, or
/// `/authenticate` with `action=logout`.
async fn sign_out_at(
    app: &SignInApp,
    path: &str,
    session: &str,
    accept: &str,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(format!("{}{path}", app.address))
        .header("Cookie", format!("idgate_session={session}"))
        .header("Accept", accept);
    if path == "/authenticate" {
        request = request.form(&[("action", "logout")]);
    }
    request.send().await.expect("send")
}

/// Asserts that `page`'s `form-action` names idgate and `origin`.
fn assert_form_action_names(page: &reqwest::Response, origin: &str) {
    let policy = content_security_policy(page);
    assert!(
        policy.contains(&format!("form-action 'self' {origin};")),
        "{}: {policy}",
        page.url()
    );
}

/// A page's `Content-Security-Policy`.
fn content_security_policy(page: &reqwest::Response) -> String {
    page.headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .expect("a content security policy")
        .to_string()
}

async fn signing_out_in_a_browser_signs_out_at_the_provider(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    app.provider.set_end_session(true);
    let session = signed_in(&app, "sid-1").await;
    // The pages with a sign-out button (the home page and `GET /logout`) name the provider's
    // origin in their `form-action`: browsers hold the form's redirect there to it. Without a
    // session the sign-out ends at idgate, and the sign-out page names only idgate itself.
    let provider_origin = url::Url::parse(&app.provider.url)
        .expect("url")
        .origin()
        .ascii_serialization();
    for path in ["/", "/logout"] {
        let page = app.get_with_session(path, &session).await;
        assert_eq!(page.status(), 200, "{path}");
        assert_form_action_names(&page, &provider_origin);
    }
    let anonymous = app
        .client
        .get(format!("{}/logout", app.address))
        .send()
        .await
        .expect("send");
    let policy = content_security_policy(&anonymous);
    assert!(policy.contains("form-action 'self';"), "{policy}");
    let response = sign_out(&app, &session, "text/html").await;
    assert_eq!(response.status(), 303);
    let to = url::Url::parse(&crate::helpers::location(&response)).expect("a Location URL");
    assert_eq!(
        to.as_str().split('?').next(),
        Some(format!("{}/end-session", app.provider.url).as_str())
    );
    let query: std::collections::HashMap<String, String> = to.query_pairs().into_owned().collect();
    assert!(query["id_token_hint"].split('.').count() == 3);
    assert_eq!(query["client_id"], CLIENT_ID);
    assert_eq!(
        query["post_logout_redirect_uri"],
        format!("{}/signed-out", app.address)
    );
    assert!(!query["state"].is_empty());
    assert_eq!(
        app.get_with_session("/session", &session).await.status(),
        401
    );
    // The page the provider sends people back to.
    let back = app
        .client
        .get(format!("{}/signed-out", app.address))
        .send()
        .await
        .expect("send");
    assert_eq!(back.status(), 200);
    assert!(back.text().await.expect("page").contains("signed out"));
    // A session that has timed out (its row not purged yet) signs out at the provider all the
    // same: showing the sign-out page does not end it first.
    let session = signed_in(&app, "sid-3").await;
    app.clock.advance(31 * 60);
    let page = app.get_with_session("/logout", &session).await;
    assert_form_action_names(&page, &provider_origin);
    assert_eq!(sign_out(&app, &session, "text/html").await.status(), 303);
    // A JSON client gets the usual answer, no redirect.
    let session = signed_in(&app, "sid-2").await;
    let json_logout = sign_out(&app, &session, "application/json").await;
    assert_eq!(json_logout.status(), 200);
}

async fn front_channel_logout_ends_the_provider_session(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let session = signed_in(&app, "sid-9").await;
    let other = signed_in(&app, "sid-10").await;
    let unused = code_for(&app, "sid-9", "ana-sub").await;
    let iss = url::form_urlencoded::byte_serialize(app.provider.url.as_bytes()).collect::<String>();
    let response = app
        .client
        .get(format!(
            "{}/frontchannel-logout?iss={iss}&sid=sid-9",
            app.address
        ))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let policy = content_security_policy(&response);
    assert!(
        policy.contains(&format!("frame-ancestors {}", app.provider.url)),
        "{policy}"
    );
    assert!(response.headers().get("x-frame-options").is_none());
    assert_eq!(
        app.get_with_session("/session", &session).await.status(),
        401
    );
    assert!(live(&app, &other).await);
    // That provider session's unused code is void too.
    assert_eq!(redeem_post(&app, &unused).await.status(), 401);
    // Without parameters: the browser's own session, and only from idgate's own origin.
    let own = |site: Option<&'static str>| {
        let mut request = app
            .client
            .get(format!("{}/frontchannel-logout", app.address))
            .header("Cookie", format!("idgate_session={other}"));
        if let Some(site) = site {
            request = request.header("Sec-Fetch-Site", site);
        }
        request.send()
    };
    for site in [None, Some("cross-site"), Some("same-site")] {
        assert_eq!(own(site).await.expect("send").status(), 200);
        assert!(live(&app, &other).await, "{site:?}");
    }
    assert_eq!(own(Some("same-origin")).await.expect("send").status(), 200);
    assert!(!live(&app, &other).await);
}

/// Two instances on one PostgreSQL database, each with the session cache on: a back-channel or
/// front-channel logout received by one ends the session on the other within the cache's time.
#[tokio::test]
async fn a_provider_logout_on_one_instance_ends_the_session_on_another() {
    let Some(db) = TestDb::postgres() else {
        return;
    };
    let key = TestKey::rsa("rsa1", "rsa1");
    let provider = MockProvider::start(vec![key.clone()]).await;
    let yaml = db.dir.path().join("identity.yaml");
    std::fs::write(&yaml, signin_config(&provider.url)).expect("config");
    let now = idgate::clock::unix_now();
    assert_eq!(
        Settings::default().cookie.cache_secs,
        2,
        "the session cache is on"
    );
    let start = || {
        let clock = ManualClock::starting_at(now);
        let address = crate::helpers::start_instance(&db, &yaml, Arc::new(clock.clone()));
        (address, clock)
    };
    let ((a, _), (b, b_clock)) = (start(), start());
    db.add_member("ana@example.org");
    let client = reqwest::Client::new();
    // Ana signs in on B, in the provider session `sid`, and B caches her session.
    let signed_in_on_b = |sid: &'static str| {
        let mut claims = provider.claims("ana@example.org", now);
        claims["sid"] = json!(sid);
        let login = client
            .post(format!("{b}/authenticate"))
            .form(&[
                ("action", "login"),
                ("id_token", &provider.token(&key, &claims)),
            ])
            .send();
        async move {
            session_cookie(&login.await.expect("login"))
                .expect("cookie")
                .0
        }
    };
    let auth = |base: &str, session: &str| {
        client
            .get(format!("{base}/auth"))
            .header("Cookie", format!("idgate_session={session}"))
            .send()
    };
    let iss = url::form_urlencoded::byte_serialize(provider.url.as_bytes()).collect::<String>();
    for (channel, sid) in [("back", "sid-back"), ("front", "sid-front")] {
        let session = signed_in_on_b(sid).await;
        assert_eq!(auth(&b, &session).await.expect("auth").status(), 200);
        let logout = if channel == "back" {
            let token = provider.logout_token(&key, CLIENT_ID, now, json!({"sid": sid}));
            client
                .post(format!("{a}/backchannel-logout"))
                .form(&[("logout_token", token)])
        } else {
            client.get(format!("{a}/frontchannel-logout?iss={iss}&sid={sid}"))
        };
        assert_eq!(logout.send().await.expect("logout").status(), 200);
        // Within the cache's 2 seconds (well inside 5), B no longer trusts the session.
        b_clock.advance(2);
        assert_eq!(
            auth(&b, &session).await.expect("auth").status(),
            401,
            "{channel}"
        );
    }
}

/// A reload without a provider ends that provider's sessions and unused codes; others live on.
async fn a_reload_ends_what_it_no_longer_allows(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let mock_session = signed_in(&app, "sid-1").await;
    // A session and a code through `strict` (same issuer, another client).
    let mut claims = strict_claims(&app);
    let strict_token = app.provider.token(&app.key, &claims);
    let strict = app.login(&strict_token).await;
    assert_eq!(strict.status(), 200);
    let strict_session = session_cookie(&strict).expect("cookie").0;
    claims["jti"] = json!("another");
    let code = issue_for_token(&app, &app.provider.token(&app.key, &claims)).await;
    // The configuration without `strict`.
    let yaml = app.db.dir.path().join("identity.yaml");
    let text = std::fs::read_to_string(&yaml).expect("read");
    let start = text.find("  - id: strict").expect("strict");
    let end = text[start..].find("  - id: other").expect("other") + start;
    std::fs::write(&yaml, format!("{}{}", &text[..start], &text[end..])).expect("write");
    reload(&app).await;
    assert!(!live(&app, &strict_session).await);
    assert!(live(&app, &mock_session).await);
    let redeemed = redeem_post(&app, &code).await;
    assert_eq!(redeemed.status(), 401, "the code is gone");
    let mut conn = app.database.conn().expect("conn");
    let logged = idgate::db::audit::list_events(&mut conn, 0).expect("log");
    assert!(
        logged
            .iter()
            .any(|e| e.event == "config_revoked"
                && e.reason.as_deref() == Some("1 sessions, 1 codes")),
        "{logged:?}"
    );
}

/// A reload that closes a domain to single sign-on ends its members' sessions.
async fn a_reload_that_closes_a_domain_ends_its_sessions(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let session = signed_in(&app, "sid-1").await;
    let mut claims = strict_claims(&app);
    claims["email_verified"] = json!(true);
    let strict = app.login(&app.provider.token(&app.key, &claims)).await;
    assert_eq!(strict.status(), 200);
    let strict = session_cookie(&strict).expect("cookie").0;
    // The domain narrowed to one provider: the sessions through the other end.
    let yaml = app.db.dir.path().join("identity.yaml");
    let text = std::fs::read_to_string(&yaml).expect("read");
    let open = "  - name: example.org\n    authentication: external\n";
    let narrowed = text.replacen(open, &format!("{open}    providers: [strict]\n"), 1);
    assert_ne!(narrowed, text);
    std::fs::write(&yaml, &narrowed).expect("write");
    reload(&app).await;
    assert!(!live(&app, &session).await);
    assert!(live(&app, &strict).await);
    // Closed to SSO: every session of the domain ends.
    let closed = narrowed.replacen(
        "  - name: example.org\n    authentication: external\n",
        "  - name: example.org\n    authentication: internal\n",
        1,
    );
    assert_ne!(closed, narrowed);
    std::fs::write(&yaml, closed).expect("write");
    reload(&app).await;
    assert!(!live(&app, &strict).await);
}

/// The ID token a session was made from, as the database keeps it.
fn kept_id_token(app: &SignInApp, session: &str) -> Option<String> {
    use diesel::prelude::*;
    use idgate::db::schema::sessions;
    let mut conn = app.database.conn().expect("conn");
    sessions::table
        .filter(sessions::id_hash.eq(idgate::ids::session_key(session).expect("a session id")))
        .select(sessions::id_token)
        .first::<Option<String>>(&mut *conn)
        .expect("the session")
}

/// A session keeps its ID token only where signing out would send it back to the provider:
/// `providerLogout` on and an end-session endpoint.
async fn a_session_keeps_its_id_token_only_to_sign_out_at_the_provider(db: TestDb) {
    let app = crate::helpers::spawn_signin_app_configured(
        db,
        |authority| {
            signin_config(authority).replace(
                "    clientId: strict-client\n",
                "    clientId: strict-client\n    providerLogout: false\n",
            )
        },
        |_| {},
    )
    .await;
    app.add_member("ana@example.org");
    app.provider.set_end_session(true);
    let token = app.token_for("ana@example.org");
    let response = app.login(&token).await;
    assert_eq!(response.status(), 200);
    let session = session_cookie(&response).expect("cookie").0;
    assert_eq!(kept_id_token(&app, &session), Some(token));

    // The same provider, through an entry that does not sign people out there.
    let mut claims = app.provider.claims("ana@example.org", app.now());
    claims["aud"] = json!("strict-client");
    claims["email_verified"] = json!(true);
    let response = app.login(&app.provider.token(&app.key, &claims)).await;
    assert_eq!(response.status(), 200);
    let strict = session_cookie(&response).expect("cookie").0;
    assert_eq!(kept_id_token(&app, &strict), None);

    // Signing out of it in a browser ends at idgate; the other entry's sessions go on to the
    // provider, through `/logout` or `/authenticate` with `action=logout`.
    let ended_here = sign_out(&app, &strict, "text/html").await;
    assert_eq!(ended_here.status(), 200);
    assert!(ended_here.headers().get("location").is_none());
    assert!(!live(&app, &strict).await);
    let to_provider = format!("{}/end-session?", app.provider.url);
    for path in ["/logout", "/authenticate"] {
        let response = app.login(&app.token_for("ana@example.org")).await;
        assert_eq!(response.status(), 200);
        let session = session_cookie(&response).expect("cookie").0;
        let answer = sign_out_at(&app, path, &session, "text/html").await;
        assert_eq!(answer.status(), 303, "{path}");
        let location = crate::helpers::location(&answer);
        assert!(location.starts_with(&to_provider), "{path}: {location}");
        assert!(!live(&app, &session).await, "{path}");
    }
}

/// A provider without an end-session endpoint is never sent the token: no session keeps it.
async fn without_an_end_session_endpoint_no_session_keeps_its_id_token(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let session = signed_in(&app, "sid-1").await;
    assert_eq!(kept_id_token(&app, &session), None);
    // What the session remembers for a logout from the provider is still there.
    let mut conn = app.database.conn().expect("conn");
    let ended =
        idgate::db::sessions::delete_provider_session(&mut conn, &app.provider.url, "sid-1")
            .expect("delete");
    assert_eq!(
        ended,
        vec![idgate::ids::session_key(&session).expect("a session id")]
    );
}

crate::helpers::async_on_both_backends!(
    a_session_keeps_its_id_token_only_to_sign_out_at_the_provider,
    without_an_end_session_endpoint_no_session_keeps_its_id_token,
    a_logout_token_ends_sessions_made_from_codes,
    a_logout_token_is_no_id_token,
    a_reload_that_closes_a_domain_ends_its_sessions,
    every_refused_logout_token_leaves_the_session_alive,
    a_logout_token_ends_the_sessions_it_names,
    a_logout_by_subject_ends_only_its_entrys_sessions,
    signing_out_in_a_browser_signs_out_at_the_provider,
    front_channel_logout_ends_the_provider_session,
    a_reload_ends_what_it_no_longer_allows,
);
