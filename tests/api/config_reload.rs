//! The running configuration: `GET /identity-config`, `POST /identity-config/reload` and
//! `SIGHUP`; a file that does not validate never replaces the running one.

use serde_json::Value;

use crate::helpers::{
    ServeProcess, SignInApp, TestDb, repo_path, session_cookie, spawn_signin_app, temp_dir,
};

/// Signs an administrator in; returns the session id.
async fn admin_session(app: &SignInApp) -> String {
    let new = idgate::members::NewMember {
        email: idgate::members::Email::parse("admin@example.org").expect("email"),
        username: None,
        firstname: String::new(),
        surname: String::new(),
        status: idgate::members::MemberStatus::Activated,
        admin: true,
    };
    let mut conn = app.database.conn().expect("conn");
    idgate::db::members::insert_member(&mut conn, &new, app.now()).expect("admin");
    session_cookie(&app.login(&app.token_for("admin@example.org")).await)
        .expect("cookie")
        .0
}

fn admin_request(
    app: &SignInApp,
    method: reqwest::Method,
    path: &str,
    session: &str,
) -> reqwest::RequestBuilder {
    app.client
        .request(method, format!("{}{path}", app.address))
        .header("Cookie", format!("idgate_session={session}"))
        .header("Origin", app.address.as_str())
}

async fn error_id(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("json");
    (
        status,
        body["error"]["id"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn administrators_see_the_running_configuration_without_secrets() {
    let app = spawn_signin_app(TestDb::sqlite()).await;
    let session = admin_session(&app).await;
    let response = admin_request(&app, reqwest::Method::GET, "/identity-config", &session)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("text");
    assert!(
        !text.contains(idgate_test_support::provider::CLIENT_SECRET),
        "secrets are never shown: {text}"
    );
    let body: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(body["defaultAuthentication"], "internal");
    let ids: Vec<&str> = body["providers"]
        .as_array()
        .expect("providers")
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert_eq!(ids, ["mock", "strict", "other"]);
    assert_eq!(body["providers"][0]["clientId"], "idgate-test");
    assert_eq!(body["domains"][0]["name"], "example.org");
    assert_eq!(body["properties"]["sessionTimeout"], 30);
    let xml = admin_request(&app, reqwest::Method::GET, "/identity-config", &session)
        .header("Accept", "application/xml")
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    assert!(xml.contains(r#"<provider id="mock" title="Mock""#), "{xml}");
    assert!(
        xml.contains(r#"<domain name="example.org" authentication="external"/>"#),
        "{xml}"
    );
    assert!(!xml.contains(idgate_test_support::provider::CLIENT_SECRET));
}

#[tokio::test]
async fn only_administrators_from_idgates_own_pages_may_look_or_reload() {
    let app = spawn_signin_app(TestDb::sqlite()).await;
    app.add_member("ana@example.org");
    let member = session_cookie(&app.login(&app.token_for("ana@example.org")).await)
        .expect("cookie")
        .0;
    let admin = admin_session(&app).await;
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;
    let no_session = app
        .client
        .get(format!("{}/identity-config", app.address))
        .send()
        .await
        .expect("send");
    assert_eq!(error_id(no_session).await, (401, "no_session".into()));
    let typed_url = app
        .client
        .get(format!("{}/identity-config", app.address))
        .header("Cookie", format!("idgate_session={admin}"))
        .send()
        .await
        .expect("send");
    assert_eq!(typed_url.status(), 200, "reading needs no Origin");
    let not_admin = admin_request(&app, get.clone(), "/identity-config", &member)
        .send()
        .await
        .expect("send");
    assert_eq!(error_id(not_admin).await, (403, "forbidden".into()));
    let cross_site = admin_request(&app, post.clone(), "/identity-config/reload", &admin)
        .header("Origin", "https://evil.example")
        .send()
        .await
        .expect("send");
    assert_eq!(
        error_id(cross_site).await,
        (403, "csrf".into()),
        "two Origins, one foreign"
    );
    let foreign = app
        .client
        .post(format!("{}/identity-config/reload", app.address))
        .header("Cookie", format!("idgate_session={admin}"))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .expect("send");
    assert_eq!(error_id(foreign).await, (403, "csrf".into()));
    let no_origin = app
        .client
        .post(format!("{}/identity-config/reload", app.address))
        .header("Cookie", format!("idgate_session={admin}"))
        .send()
        .await
        .expect("send");
    assert_eq!(error_id(no_origin).await, (403, "csrf".into()));
    let referer = app
        .client
        .post(format!("{}/identity-config/reload", app.address))
        .header("Cookie", format!("idgate_session={admin}"))
        .header("Referer", format!("{}/identity-config", app.address))
        .send()
        .await
        .expect("send");
    assert_eq!(
        referer.status(),
        200,
        "a Referer from idgate itself will do"
    );
}

#[tokio::test]
async fn a_valid_file_is_reloaded_and_an_invalid_one_changes_nothing() {
    let app = spawn_signin_app(TestDb::sqlite()).await;
    let session = admin_session(&app).await;
    let path = app.db.dir.path().join("identity.yaml");
    let original = std::fs::read_to_string(&path).expect("read");
    // Remove the provider `other` and the domain that names it.
    let smaller = original
        .replace("  - id: other\n    title: Other\n    authorityUrl: http://127.0.0.1:9/other\n    clientId: other\n", "")
        .replace("  - name: other-only.example.org\n    authentication: external\n    providers: [other]\n", "");
    assert_ne!(smaller, original);
    std::fs::write(&path, &smaller).expect("write");
    let response = admin_request(
        &app,
        reqwest::Method::POST,
        "/identity-config/reload",
        &session,
    )
    .send()
    .await
    .expect("send");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["providers"], 2);

    std::fs::write(
        &path,
        format!("{smaller}colour: blue\nproperties:\n  sessionTimeout: 0\n"),
    )
    .expect("write");
    let response = admin_request(
        &app,
        reqwest::Method::POST,
        "/identity-config/reload",
        &session,
    )
    .send()
    .await
    .expect("send");
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["id"], "invalid_config");
    let problems: Vec<&str> = body["error"]["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("identity.yaml:") && p.contains("unknown key `colour`")),
        "{problems:?}"
    );
    // The running configuration is the last valid one, and sign-in still works with it.
    let current: Value = admin_request(&app, reqwest::Method::GET, "/identity-config", &session)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(current["providers"].as_array().map(Vec::len), Some(2));
    app.add_member("ana@example.org");
    assert_eq!(
        app.login(&app.token_for("ana@example.org")).await.status(),
        200
    );
    // GET ?reload=true reloads too, once the file is fixed.
    std::fs::write(&path, &original).expect("write");
    let reloaded: Value = admin_request(
        &app,
        reqwest::Method::GET,
        "/identity-config?reload=true",
        &session,
    )
    .send()
    .await
    .expect("send")
    .json()
    .await
    .expect("json");
    assert_eq!(reloaded["providers"].as_array().map(Vec::len), Some(3));
    let mut conn = app.database.conn().expect("conn");
    let events = idgate::db::audit::list_events(&mut conn, 0).expect("events");
    let reloads: Vec<(&str, Option<&str>)> = events
        .iter()
        .filter(|e| e.event == "config_reload")
        .map(|e| (e.outcome.as_str(), e.reason.as_deref()))
        .collect();
    assert_eq!(
        reloads,
        [
            ("success", None),
            ("failure", Some("invalid_config")),
            ("success", None)
        ]
    );
}

#[tokio::test]
async fn sighup_reloads_the_configuration_of_a_running_server() {
    let dir = temp_dir();
    let config = dir.path().join("identity.yaml");
    std::fs::copy(repo_path("identity.yaml"), &config).expect("copy");
    let mut server = ServeProcess::start(dir.path(), "sqlite://idgate.db", &[]);
    let readyz = format!("{}/readyz", server.address);
    let providers = || async {
        let ready: Value = reqwest::get(&readyz)
            .await
            .expect("readyz")
            .json()
            .await
            .expect("json");
        ready["config"]["providers"].as_u64()
    };
    assert_eq!(providers().await, Some(1));
    let text = std::fs::read_to_string(&config).expect("read");
    let more = text.replace(
        "domains:",
        "  - id: second\n    title: Second\n    authorityUrl: https://id2.example.org\n    clientId: c2\n\ndomains:",
    );
    std::fs::write(&config, more).expect("write");
    server.signal("-HUP");
    server.wait_for("identity configuration reloaded");
    assert_eq!(providers().await, Some(2));
    // An invalid file on SIGHUP: refused, the server keeps the last valid configuration.
    std::fs::write(&config, "providers: [\n").expect("write");
    server.signal("-HUP");
    server.wait_for("identity configuration refused; the running one stays");
    assert_eq!(providers().await, Some(2));
}
