//! One-time authentication codes: `action=code` for registered clients, and the
//! browser trading the code for a session.

use serde_json::Value;

use crate::helpers::{
    SignInApp, TestDb, assert_one_of_them_wins, assert_refused, async_on_both_backends,
    session_cookie, spawn_signin_app,
};

const CLIENT: &str = "0123456789abcdef";

async fn issue(app: &SignInApp, email: &str) -> String {
    issue_for_token(app, &app.token_for(email)).await
}

/// A one-time authentication code for the ID token `token`, issued to the registered client.
pub(crate) async fn issue_for_token(app: &SignInApp, token: &str) -> String {
    let response = app
        .client
        .post(format!("{}/authenticate", app.address))
        .form(&[
            ("action", "code"),
            ("id_token", token),
            ("client_id", CLIENT),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert!(
        session_cookie(&response).is_none(),
        "a code is not a session"
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["expiresIn"], 60);
    body["authCode"].as_str().expect("authCode").to_string()
}

fn redeem_url(app: &SignInApp, code: &str, extra: &str) -> String {
    format!(
        "{}/authenticate?action=login&auth_code={code}{extra}",
        app.address
    )
}

/// Trades a code for a session.
pub(crate) async fn redeem_post(app: &SignInApp, code: &str) -> reqwest::Response {
    app.client
        .post(format!("{}/authenticate", app.address))
        .form(&[("action", "login"), ("auth_code", code)])
        .send()
        .await
        .expect("send")
}

async fn a_code_is_issued_to_a_registered_client_and_redeemed_once(db: TestDb) {
    let app = spawn_signin_app(db).await;
    let member = app.add_member("ana@example.org");
    let code = issue(&app, "ana@example.org").await;
    assert_eq!(code.len(), 43, "256 random bits");
    let url = redeem_url(
        &app,
        &code,
        "&redirect=https%3A%2F%2Fdocs.example.org%2Fspace",
    );
    let response = app.client.get(&url).send().await.expect("send");
    assert_eq!(response.status(), 303);
    assert_eq!(
        crate::helpers::location(&response),
        "https://docs.example.org/space"
    );
    let session = session_cookie(&response).expect("a session").0;
    let body: Value = app
        .get_with_session("/session", &session)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(body["member"]["id"], member.id);
    // A second use fails, as a page for a browser.
    let again = app.client.get(&url).send().await.expect("send");
    assert_eq!(again.status(), 401);
    let page = again.text().await.expect("page");
    assert!(
        page.contains("incident") && !page.contains("invalid_code"),
        "{page}"
    );
    let mut conn = app.database.conn().expect("conn");
    let events = idgate::db::audit::list_events(&mut conn, 0).expect("events");
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.event.as_str(), e.outcome.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("code_issued", "success"),
            ("code_redeemed", "success"),
            ("code_redeemed", "failure")
        ]
    );
    assert!(
        !format!("{events:?}").contains(&code),
        "codes are never logged"
    );
}

async fn codes_answer_in_xml_too(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let response = app
        .client
        .post(format!("{}/authenticate", app.address))
        .header("Accept", "application/xml")
        .form(&[
            ("action", "code"),
            ("id_token", &app.token_for("ana@example.org")),
            ("client_id", CLIENT),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let body = response.text().await.expect("text");
    assert!(
        body.contains("<auth-code value=\"") && body.contains(r#"expires-in="60"/>"#),
        "{body}"
    );
}

async fn unknown_clients_and_missing_parameters_are_refused(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let token = app.token_for("ana@example.org");
    let post = |form: Vec<(&'static str, String)>| {
        app.client
            .post(format!("{}/authenticate", app.address))
            .form(&form)
            .send()
    };
    let unknown = post(vec![
        ("action", "code".into()),
        ("id_token", token.clone()),
        ("client_id", "ffffffffffffffff".into()),
    ]);
    assert_refused(unknown.await.expect("send"), 403, "unknown_client").await;
    let missing = post(vec![("action", "code".into()), ("id_token", token.clone())]);
    assert_refused(missing.await.expect("send"), 400, "missing_parameter").await;
    // The token was not used up by the refusals; the client id is case-insensitive.
    let ok = post(vec![
        ("action", "code".into()),
        ("id_token", token),
        ("client_id", CLIENT.to_uppercase()),
    ]);
    assert_eq!(ok.await.expect("send").status(), 200);
    // Token rules apply as for a sign-in.
    let expired = post(vec![
        ("action", "code".into()),
        ("id_token", "garbage".into()),
        ("client_id", CLIENT.into()),
    ]);
    assert_refused(expired.await.expect("send"), 400, "malformed").await;
}

async fn a_code_expires_after_sixty_seconds(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let code = issue(&app, "ana@example.org").await;
    app.clock.advance(60);
    assert_refused(redeem_post(&app, &code).await, 401, "invalid_code").await;
    let code = issue(&app, "ana@example.org").await;
    app.clock.advance(59);
    assert_eq!(redeem_post(&app, &code).await.status(), 200);
}

async fn concurrent_redemptions_of_one_code_succeed_once(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let code = issue(&app, "ana@example.org").await;
    let attempts: Vec<_> = (0..10)
        .map(|_| {
            let request = app
                .client
                .post(format!("{}/authenticate", app.address))
                .form(&[("action", "login"), ("auth_code", code.as_str())]);
            tokio::spawn(request.send())
        })
        .collect();
    assert_one_of_them_wins(attempts).await;
}

async fn a_code_is_bound_to_its_client_and_member(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let code = issue(&app, "ana@example.org").await;
    let url = redeem_url(&app, &code, "&client_id=fedcba9876543210");
    assert_eq!(
        app.client.get(&url).send().await.expect("send").status(),
        401
    );
    // Presented for the wrong client, the code is used up: not even its own client gets it now.
    let retry = redeem_url(&app, &code, &format!("&client_id={CLIENT}"));
    assert_eq!(
        app.client.get(&retry).send().await.expect("send").status(),
        401
    );
    // A member locked after the code was issued cannot redeem it.
    let code = issue(&app, "ana@example.org").await;
    let mut conn = app.database.conn().expect("conn");
    let email = idgate::members::Email::parse("ana@example.org").expect("email");
    idgate::db::members::set_locked(&mut conn, &email, true, app.now()).expect("lock");
    assert_refused(redeem_post(&app, &code).await, 403, "member_locked").await;
}

async fn redemption_redirects_only_to_the_codes_client(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    for (redirect, expected) in [
        ("%2Fdocs", "/docs"),
        ("https%3A%2F%2Fevil.example%2F", "/"),
        ("%2F%2Fevil.example%2F", "/"),
    ] {
        let code = issue(&app, "ana@example.org").await;
        let response = app
            .client
            .get(redeem_url(&app, &code, &format!("&redirect={redirect}")))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 303);
        assert_eq!(crate::helpers::location(&response), expected);
    }
}

#[tokio::test]
async fn code_requests_answer_cors_for_registered_websites() {
    let app = spawn_signin_app(TestDb::sqlite()).await;
    app.add_member("ana@example.org");
    let response = app
        .client
        .post(format!("{}/authenticate", app.address))
        .header("Origin", "https://docs.example.org")
        .form(&[
            ("action", "code"),
            ("id_token", &app.token_for("ana@example.org")),
            ("client_id", CLIENT),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(
        header("access-control-allow-origin").as_deref(),
        Some("https://docs.example.org")
    );
    assert_eq!(
        header("access-control-allow-credentials").as_deref(),
        Some("true")
    );
    let evil = app
        .client
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/authenticate", app.address),
        )
        .header("Origin", "https://evil.example")
        .send()
        .await
        .expect("send");
    assert!(evil.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn pages_of_other_sites_cannot_sign_a_browser_in() {
    let app = spawn_signin_app(TestDb::sqlite()).await;
    app.add_member("ana@example.org");
    // A cross-site form posting the attacker's own token (login CSRF).
    let response = app
        .login_with(
            &app.token_for("ana@example.org"),
            &[("Origin", "https://evil.example")],
        )
        .await;
    assert_refused(response, 403, "csrf").await;
    let response = app
        .client
        .post(format!("{}/authenticate", app.address))
        .header("Origin", "null")
        .form(&[
            ("action", "code"),
            ("id_token", &app.token_for("ana@example.org")),
            ("client_id", CLIENT),
        ])
        .send()
        .await
        .expect("send");
    assert_refused(response, 403, "csrf").await;
    // A link on another site to redeem the attacker's code.
    let code = issue(&app, "ana@example.org").await;
    let lured = app
        .client
        .get(redeem_url(&app, &code, ""))
        .header("Sec-Fetch-Site", "cross-site")
        .header("Referer", "https://evil.example/page")
        .send()
        .await
        .expect("send");
    assert_eq!(lured.status(), 403);
    assert!(session_cookie(&lured).is_none());
    // idgate's own pages, registered websites and non-browser clients may.
    let own = app
        .login_with(
            &app.token_for("ana@example.org"),
            &[("Origin", app.address.as_str())],
        )
        .await;
    assert_eq!(own.status(), 200);
    let docs = app
        .login_with(
            &app.token_for("ana@example.org"),
            &[("Origin", "https://docs.example.org")],
        )
        .await;
    assert_eq!(docs.status(), 200);
    let from_docs = app
        .client
        .get(redeem_url(&app, &code, ""))
        .header("Sec-Fetch-Site", "cross-site")
        .header("Referer", "https://docs.example.org/space/page")
        .send()
        .await
        .expect("send");
    assert_eq!(
        from_docs.status(),
        303,
        "the code was not used up by the refused attempt"
    );
}

async_on_both_backends!(
    a_code_is_issued_to_a_registered_client_and_redeemed_once,
    codes_answer_in_xml_too,
    unknown_clients_and_missing_parameters_are_refused,
    a_code_expires_after_sixty_seconds,
    concurrent_redemptions_of_one_code_succeed_once,
    a_code_is_bound_to_its_client_and_member,
    redemption_redirects_only_to_the_codes_client,
);
