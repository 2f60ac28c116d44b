//! Sessions after sign-in: `/session`, `/auth`, sign-out, the two timeouts, revocation, the
//! cookie, CORS, XML answers, and the parameters `/authenticate` refuses.

use serde_json::Value;

use crate::helpers::{SignInApp, TestDb, async_on_both_backends, session_cookie, spawn_signin_app};

/// Signs `email` in (adding the member) and returns the session id.
async fn signed_in(app: &SignInApp, email: &str) -> String {
    let response = app.login(&app.token_for(email)).await;
    assert_eq!(response.status(), 200);
    session_cookie(&response).expect("cookie").0
}

async fn status_of(app: &SignInApp, path: &str, session: &str) -> u16 {
    app.get_with_session(path, session).await.status().as_u16()
}

async fn the_session_tells_who_is_signed_in(db: TestDb) {
    let app = spawn_signin_app(db).await;
    let member = app.add_member("ana@example.org");
    let session = signed_in(&app, "ana@example.org").await;
    let response = app.get_with_session("/session", &session).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["member"]["id"], member.id);
    assert_eq!(body["member"]["email"], "ana@example.org");
    assert_eq!(body["member"]["username"], "ana@example.org");
    assert_eq!(body["member"]["firstname"], "Ana");
    assert_eq!(body["member"]["surname"], "Lima");
    assert_eq!(body["member"]["admin"], false);
    assert_eq!(body["provider"], "mock");
    assert!(
        body["expiresAt"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{body}"
    );

    let auth = app.get_with_session("/auth", &session).await;
    assert_eq!(auth.status(), 200);
    let header = |name: &str| {
        auth.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(header("x-auth-member-id"), Some(member.id.to_string()));
    assert_eq!(header("x-auth-email").as_deref(), Some("ana@example.org"));
    assert_eq!(
        header("x-auth-username").as_deref(),
        Some("ana@example.org")
    );
}

async fn without_a_valid_session_both_answer_401(db: TestDb) {
    let app = spawn_signin_app(db).await;
    let response = app
        .client
        .get(format!("{}/session", app.address))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["id"], "no_session");
    let response = app
        .client
        .get(format!("{}/auth", app.address))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 401);
    let forged = idgate::ids::random_token();
    for cookie in [forged.as_str(), "garbage", "", "'; DROP TABLE sessions; --"] {
        assert_eq!(status_of(&app, "/session", cookie).await, 401, "{cookie}");
        assert_eq!(status_of(&app, "/auth", cookie).await, 401, "{cookie}");
    }
}

async fn the_database_keeps_only_the_hash_of_the_session_id(db: TestDb) {
    use diesel::prelude::*;
    use idgate::db::schema::sessions;
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let session = signed_in(&app, "ana@example.org").await;
    let mut conn = app.database.conn().expect("conn");
    let stored: Vec<String> = sessions::table
        .select(sessions::id_hash)
        .load(&mut *conn)
        .expect("load");
    assert_eq!(
        stored,
        vec![idgate::ids::session_key(&session).expect("a session id")]
    );
    assert!(stored[0].ends_with(&idgate::ids::hash_id(&session)));
    assert!(!stored[0].contains(&session));
}

/// The idle timeout's slide reports a session ended meanwhile (a logout between the check's read
/// and its write), so that the check neither answers it live nor caches it.
async fn sliding_a_session_that_has_ended_says_it_is_gone(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let session = signed_in(&app, "ana@example.org").await;
    let hash = idgate::ids::session_key(&session).expect("a session id");
    let now = app.now();
    let mut conn = app.database.conn().expect("conn");
    assert!(idgate::db::sessions::touch_session(&mut conn, &hash, now).expect("touch"));
    assert!(idgate::db::sessions::delete_session(&mut conn, &hash).expect("delete"));
    assert!(!idgate::db::sessions::touch_session(&mut conn, &hash, now).expect("touch"));
}

async fn every_sign_in_gets_a_new_session_id(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let first = signed_in(&app, "ana@example.org").await;
    let second = signed_in(&app, "ana@example.org").await;
    assert_ne!(first, second);
    assert_eq!(status_of(&app, "/session", &first).await, 200);
    assert_eq!(status_of(&app, "/session", &second).await, 200);
}

async fn signing_out_ends_the_session_and_always_succeeds(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let first = signed_in(&app, "ana@example.org").await;
    let second = signed_in(&app, "ana@example.org").await;
    let response = app
        .client
        .post(format!("{}/authenticate", app.address))
        .header("Cookie", format!("idgate_session={first}"))
        .form(&[("action", "logout")])
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let (value, attributes) = session_cookie(&response).expect("a removal cookie");
    assert!(
        value.is_empty() && attributes.contains("Max-Age=0"),
        "{attributes}"
    );
    assert_eq!(status_of(&app, "/session", &first).await, 401);
    assert_eq!(status_of(&app, "/auth", &first).await, 401);
    assert_eq!(
        status_of(&app, "/session", &second).await,
        200,
        "other sessions stay"
    );
    // POST /logout and GET ?action=logout, with or without a session.
    let response = app
        .client
        .post(format!("{}/logout", app.address))
        .header("Cookie", format!("idgate_session={second}"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert_eq!(status_of(&app, "/session", &second).await, 401);
    assert_eq!(
        status_of(&app, "/authenticate?action=logout", "none").await,
        200
    );
    let mut conn = app.database.conn().expect("conn");
    let events = idgate::db::audit::list_events(&mut conn, 0).expect("events");
    let logouts = events.iter().filter(|e| e.event == "logout").count();
    assert_eq!(logouts, 2, "{events:?}");
}

async fn an_idle_session_times_out_and_activity_keeps_it_alive(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let session = signed_in(&app, "ana@example.org").await;
    // sessionTimeout is 30 minutes; activity every 20 minutes keeps the session.
    for _ in 0..3 {
        app.clock.advance(20 * 60);
        assert_eq!(status_of(&app, "/auth", &session).await, 200);
    }
    app.clock.advance(30 * 60);
    assert_eq!(status_of(&app, "/auth", &session).await, 401);
    assert_eq!(status_of(&app, "/session", &session).await, 401);
}

async fn a_session_ends_after_twelve_hours_however_busy(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let session = signed_in(&app, "ana@example.org").await;
    for _ in 0..35 {
        app.clock.advance(20 * 60);
        assert_eq!(status_of(&app, "/auth", &session).await, 200);
    }
    app.clock.advance(20 * 60);
    assert_eq!(
        status_of(&app, "/auth", &session).await,
        401,
        "12 hours after sign-in"
    );
}

async fn locking_unbinding_or_removing_a_member_ends_their_sessions(db: TestDb) {
    use idgate::db::members::{self, MemberUpdate};
    use idgate::members::{Email, MemberStatus};
    let app = spawn_signin_app(db).await;
    let ana = app.add_member("ana@example.org");
    app.add_member("bob@example.org");
    app.add_member("eve@example.org");
    app.add_member("dan@example.org");
    let sessions = [
        signed_in(&app, "ana@example.org").await,
        signed_in(&app, "bob@example.org").await,
        signed_in(&app, "eve@example.org").await,
        signed_in(&app, "dan@example.org").await,
    ];
    let mut conn = app.database.conn().expect("conn");
    let email = |e: &str| Email::parse(e).expect("email");
    members::set_locked(&mut conn, &email("ana@example.org"), true, app.now()).expect("lock");
    members::unbind(&mut conn, &email("bob@example.org"), members::Unbind::All).expect("unbind");
    members::remove_member(&mut conn, &email("eve@example.org")).expect("remove");
    let dan = members::find_member_by_email(&mut conn, &email("dan@example.org"))
        .expect("find")
        .expect("dan");
    let disable = MemberUpdate {
        status: Some(MemberStatus::Disabled),
        ..Default::default()
    };
    members::update_member(&mut conn, dan.id, &disable, app.now()).expect("disable");
    for session in &sessions {
        assert_eq!(status_of(&app, "/auth", session).await, 401);
    }
    // Unlocking does not bring the old session back.
    members::set_locked(&mut conn, &email("ana@example.org"), false, app.now()).expect("unlock");
    assert_eq!(status_of(&app, "/auth", &sessions[0]).await, 401);
    assert!(ana.id > 0);
}

async fn a_revocation_elsewhere_is_honoured_within_the_cache_time(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let session = signed_in(&app, "ana@example.org").await;
    assert_eq!(status_of(&app, "/auth", &session).await, 200);
    // Locked by another process (the command line, another instance): this instance answers
    // from memory for at most 2 seconds, then asks the database again.
    let mut conn = app.database.conn().expect("conn");
    let email = idgate::members::Email::parse("ana@example.org").expect("email");
    idgate::db::members::set_locked(&mut conn, &email, true, app.now()).expect("lock");
    assert_eq!(
        status_of(&app, "/auth", &session).await,
        200,
        "from the cache"
    );
    app.clock.advance(2);
    assert_eq!(status_of(&app, "/auth", &session).await, 401);
    // A logout on this instance is honoured at once, cache or not.
    idgate::db::members::set_locked(&mut conn, &email, false, app.now()).expect("unlock");
    let second = signed_in(&app, "ana@example.org").await;
    assert_eq!(status_of(&app, "/auth", &second).await, 200);
    let logout = app
        .client
        .post(format!("{}/logout", app.address))
        .header("Cookie", format!("idgate_session={second}"))
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status(), 200);
    assert_eq!(status_of(&app, "/auth", &second).await, 401);
}

async_on_both_backends!(
    a_revocation_elsewhere_is_honoured_within_the_cache_time,
    the_session_tells_who_is_signed_in,
    without_a_valid_session_both_answer_401,
    the_database_keeps_only_the_hash_of_the_session_id,
    sliding_a_session_that_has_ended_says_it_is_gone,
    every_sign_in_gets_a_new_session_id,
    signing_out_ends_the_session_and_always_succeeds,
    an_idle_session_times_out_and_activity_keeps_it_alive,
    a_session_ends_after_twelve_hours_however_busy,
    locking_unbinding_or_removing_a_member_ends_their_sessions,
);

#[tokio::test]
async fn the_cookie_is_secure_when_a_trusted_proxy_says_https() {
    let app = spawn_signin_app(TestDb::sqlite()).await;
    app.add_member("ana@example.org");
    let response = app
        .login_with(
            &app.token_for("ana@example.org"),
            &[("X-Forwarded-Proto", "https")],
        )
        .await;
    let (_, attributes) = session_cookie(&response).expect("cookie");
    assert!(attributes.contains("Secure"), "{attributes}");
}

#[tokio::test]
async fn answers_are_xml_when_the_client_asks_for_it() {
    let app = spawn_signin_app(TestDb::sqlite()).await;
    app.add_member("ana@example.org");
    let response = app
        .login_with(
            &app.token_for("ana@example.org"),
            &[("Accept", "application/xml")],
        )
        .await;
    assert_eq!(response.status(), 200);
    let session = session_cookie(&response).expect("cookie").0;
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    assert_eq!(
        content_type.as_deref(),
        Some("application/xml; charset=utf-8")
    );
    let body = response.text().await.expect("text");
    assert!(body.contains(r#"<session provider="mock""#), "{body}");
    assert!(body.contains(r#"email="ana@example.org""#), "{body}");
    let refused = app
        .login_with("garbage", &[("Accept", "application/xml")])
        .await;
    assert_eq!(refused.status(), 400);
    let body = refused.text().await.expect("text");
    assert!(
        body.contains(r#"<error id="malformed""#) && body.contains("<message>"),
        "{body}"
    );
    let response = app
        .client
        .get(format!("{}/session", app.address))
        .header("Cookie", format!("idgate_session={session}"))
        .header("Accept", "text/xml, */*;q=0.1")
        .send()
        .await
        .expect("send");
    assert!(response.text().await.expect("text").starts_with("<?xml"));
}

#[tokio::test]
async fn session_cors_is_answered_for_registered_websites_only() {
    let app = spawn_signin_app(TestDb::sqlite()).await;
    app.add_member("ana@example.org");
    let session = signed_in(&app, "ana@example.org").await;
    let get = |origin: &'static str| {
        app.client
            .get(format!("{}/session", app.address))
            .header("Cookie", format!("idgate_session={session}"))
            .header("Origin", origin)
            .send()
    };
    let allowed = get("https://docs.example.org").await.expect("send");
    let header = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(
        header(&allowed, "access-control-allow-origin").as_deref(),
        Some("https://docs.example.org")
    );
    assert_eq!(
        header(&allowed, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
    let refused = get("https://evil.example.org").await.expect("send");
    assert_eq!(header(&refused, "access-control-allow-origin"), None);
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, format!("{}/session", app.address))
        .header("Origin", "https://docs.example.org")
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await
        .expect("send");
    assert_eq!(preflight.status(), 204);
    assert_eq!(
        header(&preflight, "access-control-allow-methods").as_deref(),
        Some("GET")
    );
}

#[tokio::test]
async fn authenticate_refuses_what_it_cannot_do_safely() {
    let app = spawn_signin_app(TestDb::sqlite()).await;
    app.add_member("ana@example.org");
    let token = app.token_for("ana@example.org");
    let url = format!("{}/authenticate", app.address);
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            app.client.get(format!("{url}?action=login")),
            405,
            "method_not_allowed",
        ),
        (
            app.client
                .get(format!("{url}?action=login&id_token={token}")),
            405,
            "method_not_allowed",
        ),
        (
            app.client.post(&url).form(&[("action", "login")]),
            400,
            "missing_parameter",
        ),
        (
            app.client.post(&url).form(&[("id_token", token.as_str())]),
            400,
            "missing_parameter",
        ),
        (
            app.client.post(&url).form(&[("action", "dance")]),
            400,
            "unknown_action",
        ),
        (
            app.client.post(&url).form(&[
                ("action", "login"),
                ("id_token", token.as_str()),
                ("id_token", "x.y.z"),
            ]),
            400,
            "duplicate_parameter",
        ),
        (
            app.client
                .post(format!("{url}?id_token=x.y.z"))
                .form(&[("action", "login"), ("id_token", token.as_str())]),
            400,
            "duplicate_parameter",
        ),
        (
            app.client
                .post(format!("{url}?id_token={token}"))
                .form(&[("action", "login")]),
            400,
            "token_in_url",
        ),
    ];
    for (request, status, id) in cases {
        let response = request.send().await.expect("send");
        assert_eq!(response.status().as_u16(), status, "{id}");
        assert!(session_cookie(&response).is_none());
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["id"], id);
    }
    // None of these used the token up.
    assert_eq!(app.login(&token).await.status(), 200);
    let big = "x".repeat(70 * 1024);
    let response = app
        .client
        .post(&url)
        .form(&[("action", "login"), ("id_token", big.as_str())])
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 413);
}
