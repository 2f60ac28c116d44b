//! The browser flow against the mock provider: the sign-in page, the authorization-code flow
//! with PKCE, state and nonce (query and form_post), and everything `/callback` refuses.

use reqwest::Response;
use serde_json::json;

use crate::helpers::{
    SignInApp, TestDb, async_on_both_backends, location, session_cookie, set_cookie,
    spawn_signin_app, spawn_signin_app_with,
};

fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A started flow: the provider URL it sends the browser to, and the browser's flow cookie.
struct Started {
    authorize_url: String,
    flow_cookie: String,
}

async fn start(app: &SignInApp, path: &str, flow_cookie: Option<&str>) -> Started {
    let mut request = app.client.get(format!("{}{path}", app.address));
    if let Some(cookie) = flow_cookie {
        request = request.header("Cookie", format!("idgate_flow={cookie}"));
    }
    let response = request.send().await.expect("send");
    assert_eq!(response.status(), 302, "{path}");
    let (flow_cookie, attributes) = set_cookie(&response, "idgate_flow").expect("a flow cookie");
    for part in ["HttpOnly", "Path=/callback", "Max-Age=600"] {
        assert!(attributes.contains(part), "{attributes} lacks {part}");
    }
    Started {
        authorize_url: location(&response),
        flow_cookie,
    }
}

/// The provider's answer to the authorization request: the `/callback` URL (query mode).
async fn authorize(app: &SignInApp, started: &Started) -> String {
    let response = app
        .client
        .get(&started.authorize_url)
        .send()
        .await
        .expect("authorize");
    assert_eq!(response.status(), 302);
    location(&response)
}

/// Two tabs of one browser each start a sign-in (at `{base}/login/mock`), then both finish. The
/// client keeps its cookies as a browser does, sending each only where its path says.
async fn two_tabs_finish_their_sign_ins(app: &SignInApp, base: &str) {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let mut answers = Vec::new();
    for _tab in 0..2 {
        let started = browser
            .get(format!("{}{base}/login/mock", app.address))
            .send()
            .await
            .expect("send");
        assert_eq!(started.status(), 302);
        let started = Started {
            authorize_url: location(&started),
            flow_cookie: String::new(),
        };
        answers.push(authorize(app, &started).await);
    }
    for answer in answers {
        let finished = browser.get(&answer).send().await.expect("callback");
        assert_eq!(finished.status(), 303, "{answer}");
        assert!(session_cookie(&finished).is_some());
    }
}

async fn callback(app: &SignInApp, url: &str, flow_cookie: &str) -> Response {
    app.client
        .get(url)
        .header("Cookie", format!("idgate_flow={flow_cookie}"))
        .send()
        .await
        .expect("callback")
}

/// Asserts an HTML error page: status, the incident id, a way back, and no reason code.
async fn assert_error_page(response: Response, status: u16, reason: &str) {
    assert_eq!(response.status().as_u16(), status, "status for {reason}");
    assert!(session_cookie(&response).is_none());
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let page = response.text().await.expect("page");
    assert!(page.contains("incident"), "{page}");
    assert!(page.contains(r#"href="/login""#), "{page}");
    assert!(
        !page.contains(reason),
        "the page shows the reason {reason}: {page}"
    );
}

async fn the_sign_in_page_lists_every_provider(db: TestDb) {
    let app = spawn_signin_app(db).await;
    let response = app
        .client
        .get(format!("{}/login?redirect=/docs/a%26b", app.address))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let csp = response
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let page = response.text().await.expect("page");
    for expected in [
        r#"<html lang="en">"#,
        ">Mock<",
        ">Strict<",
        ">Other<",
        r#"href="/login/mock?redirect=%2Fdocs%2Fa%26b""#,
    ] {
        assert!(page.contains(expected), "{expected} missing from {page}");
    }
    assert!(!page.contains("<script"), "works without JavaScript");
    let evil = app
        .client
        .get(format!(
            "{}/login?redirect=https://evil.example/",
            app.address
        ))
        .send()
        .await
        .expect("send");
    let page = evil.text().await.expect("page");
    assert!(!page.contains("evil.example"), "{page}");
    assert!(page.contains(r#"href="/login/mock""#), "{page}");
}

async fn a_person_signs_in_through_the_code_flow_with_pkce(db: TestDb) {
    let app = spawn_signin_app(db).await;
    let member = app.add_member("ana@example.org");
    app.provider.set_user("ana@example.org", "ana-sub");
    let started = start(&app, "/login/mock?redirect=/docs/space?x=1", None).await;
    let url = &started.authorize_url;
    assert!(
        url.starts_with(&format!("{}/authorize?", app.provider.url)),
        "{url}"
    );
    assert_eq!(query_param(url, "response_type").as_deref(), Some("code"));
    assert_eq!(
        query_param(url, "client_id").as_deref(),
        Some("idgate-test")
    );
    assert_eq!(
        query_param(url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(
        query_param(url, "scope").as_deref(),
        Some("openid email profile")
    );
    assert_eq!(
        query_param(url, "redirect_uri"),
        Some(format!("{}/callback", app.address))
    );
    assert_eq!(query_param(url, "response_mode"), None);
    for name in ["state", "nonce", "code_challenge"] {
        assert_eq!(query_param(url, name).map(|v| v.len()), Some(43), "{name}");
    }
    let back = authorize(&app, &started).await;
    let response = callback(&app, &back, &started.flow_cookie).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/docs/space?x=1");
    let session = session_cookie(&response).expect("a session").0;
    let body: serde_json::Value = app
        .get_with_session("/session", &session)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(body["member"]["id"], member.id);
    assert_eq!(body["provider"], "mock");
    assert_eq!(
        app.provider.token_clients(),
        vec!["basic:idgate-test".to_string()],
        "client_secret_basic"
    );
    // The home page knows the person.
    let home = app
        .get_with_session("/", &session)
        .await
        .text()
        .await
        .expect("page");
    assert!(home.contains("ana@example.org"), "{home}");
    // The same callback again: the state was used.
    assert_error_page(
        callback(&app, &back, &started.flow_cookie).await,
        400,
        "bad_state",
    )
    .await;
}

async fn a_public_client_sends_its_id_and_the_verifier(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    app.provider.set_user("ana@example.org", "ana-sub");
    let started = start(&app, "/login/strict", None).await;
    let back = authorize(&app, &started).await;
    let response = callback(&app, &back, &started.flow_cookie).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/");
    assert_eq!(
        app.provider.token_clients(),
        vec!["public:strict-client".to_string()]
    );
}

async fn form_post_answers_finish_the_flow(db: TestDb) {
    let app = spawn_signin_app_with(db, |s| {
        s.response_mode = idgate::flows::ResponseMode::FormPost
    })
    .await;
    app.add_member("ana@example.org");
    app.provider.set_user("ana@example.org", "ana-sub");
    let started = start(&app, "/login/mock", None).await;
    assert_eq!(
        query_param(&started.authorize_url, "response_mode").as_deref(),
        Some("form_post")
    );
    let form = app
        .client
        .get(&started.authorize_url)
        .send()
        .await
        .expect("authorize")
        .text()
        .await
        .expect("form");
    let field = |name: &str| {
        let marker = format!(r#"name="{name}" value=""#);
        let start = form.find(&marker).map(|i| i + marker.len()).expect(name);
        form[start..].split('"').next().expect("value").to_string()
    };
    let fields = [
        ("code", field("code")),
        ("state", field("state")),
        ("iss", field("iss")),
    ];
    let response = app
        .client
        .post(format!("{}/callback", app.address))
        .header("Cookie", format!("idgate_flow={}", started.flow_cookie))
        .form(&fields)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 303);
    assert!(session_cookie(&response).is_some());
}

async fn the_state_must_be_this_browsers_live_flow(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    app.provider.set_user("ana@example.org", "ana-sub");
    // Tampered state.
    let started = start(&app, "/login/mock", None).await;
    let back = authorize(&app, &started).await;
    let tampered = back.replace("state=", "state=x");
    assert_error_page(
        callback(&app, &tampered, &started.flow_cookie).await,
        400,
        "bad_state",
    )
    .await;
    // Another browser (no flow cookie, or another one) cannot finish this browser's flow.
    let started = start(&app, "/login/mock", None).await;
    let back = authorize(&app, &started).await;
    let response = app.client.get(&back).send().await.expect("send");
    assert_error_page(response, 400, "bad_state").await;
    let started = start(&app, "/login/mock", None).await;
    let back = authorize(&app, &started).await;
    let other = idgate::ids::random_token();
    assert_error_page(callback(&app, &back, &other).await, 400, "bad_state").await;
    // No state at all; a state given twice.
    assert_error_page(
        callback(
            &app,
            &format!("{}/callback?code=x", app.address),
            &started.flow_cookie,
        )
        .await,
        400,
        "bad_state",
    )
    .await;
    let started = start(&app, "/login/mock", None).await;
    let back = authorize(&app, &started).await;
    let twice = format!("{back}&state=other");
    assert_error_page(
        callback(&app, &twice, &started.flow_cookie).await,
        400,
        "duplicate_parameter",
    )
    .await;
    // Two tabs of one browser keep one flow cookie and both finish.
    let first = start(&app, "/login/mock", None).await;
    let second = start(&app, "/login/mock", Some(&first.flow_cookie)).await;
    assert_eq!(first.flow_cookie, second.flow_cookie);
    for started in [&first, &second] {
        let back = authorize(&app, started).await;
        assert_eq!(
            callback(&app, &back, &started.flow_cookie).await.status(),
            303
        );
    }
    two_tabs_finish_their_sign_ins(&app, "").await;
    // A flow older than ten minutes (last: the mock's tokens follow the real clock).
    let started = start(&app, "/login/mock", None).await;
    let back = authorize(&app, &started).await;
    app.clock.advance(601);
    assert_error_page(
        callback(&app, &back, &started.flow_cookie).await,
        400,
        "bad_state",
    )
    .await;
}

async fn the_nonce_and_the_provider_must_be_the_flows(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    app.provider.set_user("ana@example.org", "ana-sub");
    app.provider
        .set_id_token_changes(json!({"nonce": "not-the-flows"}));
    let started = start(&app, "/login/mock", None).await;
    let back = authorize(&app, &started).await;
    assert_error_page(
        callback(&app, &back, &started.flow_cookie).await,
        401,
        "bad_nonce",
    )
    .await;
    app.provider.set_id_token_changes(json!({"nonce": null}));
    let started = start(&app, "/login/mock", None).await;
    let back = authorize(&app, &started).await;
    assert_error_page(
        callback(&app, &back, &started.flow_cookie).await,
        401,
        "bad_nonce",
    )
    .await;
    // A flow started for `strict` answered with a token for `mock` (mix-up).
    app.provider
        .set_id_token_changes(json!({"aud": "idgate-test"}));
    let started = start(&app, "/login/strict", None).await;
    let back = authorize(&app, &started).await;
    assert_error_page(
        callback(&app, &back, &started.flow_cookie).await,
        401,
        "unknown_issuer",
    )
    .await;
    // An `iss` in the response that is not the flow's provider.
    app.provider.set_id_token_changes(json!({}));
    let started = start(&app, "/login/mock", None).await;
    let back = authorize(&app, &started)
        .await
        .replace("iss=", "iss=https%3A%2F%2Fevil.example&x=");
    assert_error_page(
        callback(&app, &back, &started.flow_cookie).await,
        401,
        "unknown_issuer",
    )
    .await;
    // A provider that promises `iss` must send it.
    let started = start(&app, "/login/mock", None).await;
    let back = authorize(&app, &started).await;
    let without_iss: String = {
        let mut url = url::Url::parse(&back).expect("url");
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "iss")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
        url.to_string()
    };
    assert_error_page(
        callback(&app, &without_iss, &started.flow_cookie).await,
        401,
        "unknown_issuer",
    )
    .await;
}

async fn provider_errors_and_refused_codes_are_pages(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    app.provider.set_user("ana@example.org", "ana-sub");
    // A code the provider does not know.
    let started = start(&app, "/login/mock", None).await;
    let back = authorize(&app, &started).await;
    let forged = back.replace("code=", "code=forged");
    assert_error_page(
        callback(&app, &forged, &started.flow_cookie).await,
        401,
        "invalid_code",
    )
    .await;
    // An ID token in the callback URL is never taken.
    let started = start(&app, "/login/mock", None).await;
    let back = authorize(&app, &started).await;
    let state = query_param(&back, "state").expect("state");
    let token = app.token_for("ana@example.org");
    let url = format!(
        "{}/callback?state={state}&id_token={token}&iss={}",
        app.address, app.provider.url
    );
    assert_error_page(
        callback(&app, &url, &started.flow_cookie).await,
        400,
        "missing_parameter",
    )
    .await;
    // The person cancelled at the provider.
    app.provider.set_authorize_error("access_denied");
    let started = start(&app, "/login/mock", None).await;
    let back = authorize(&app, &started).await;
    assert_error_page(
        callback(&app, &back, &started.flow_cookie).await,
        401,
        "provider_error",
    )
    .await;
    // Sign-in rules still apply: no member.
    let response = app
        .client
        .get(format!("{}/login/nobody", app.address))
        .send()
        .await
        .expect("send");
    assert_error_page(response, 404, "not_found").await;
    let mut conn = app.database.conn().expect("conn");
    let events = idgate::db::audit::list_events(&mut conn, 0).expect("events");
    let reasons: Vec<_> = events.iter().filter_map(|e| e.reason.clone()).collect();
    for reason in [
        "invalid_code",
        "missing_parameter",
        "provider_error",
        "not_found",
    ] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "{reason} not logged: {reasons:?}"
        );
    }
}

async fn redirects_go_only_to_idgate_or_registered_websites(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    app.provider.set_user("ana@example.org", "ana-sub");
    for (redirect, expected) in [
        (
            "https%3A%2F%2Fdocs.example.org%2Fspace",
            "https://docs.example.org/space",
        ),
        ("https%3A%2F%2Fevil.example%2F", "/"),
        ("%2F%2Fevil.example", "/"),
        ("%2F%5Cevil.example", "/"),
        ("https%3A%2F%2Fdocs.example.org.evil.example%2F", "/"),
        ("javascript%3Aalert(1)", "/"),
    ] {
        let started = start(&app, &format!("/login/mock?redirect={redirect}"), None).await;
        let back = authorize(&app, &started).await;
        let response = callback(&app, &back, &started.flow_cookie).await;
        assert_eq!(response.status(), 303);
        assert_eq!(location(&response), expected, "{redirect}");
    }
}

#[tokio::test]
async fn an_id_token_posted_by_the_provider_finishes_the_flow() {
    let app = spawn_signin_app(TestDb::sqlite()).await;
    app.add_member("ana@example.org");
    let started = start(&app, "/login/mock", None).await;
    let nonce = query_param(&started.authorize_url, "nonce").expect("nonce");
    let state = query_param(&started.authorize_url, "state").expect("state");
    let mut claims = app.provider.claims("ana@example.org", app.now());
    claims["nonce"] = json!(nonce);
    let token = app.provider.token(&app.key, &claims);
    let post = |fields: Vec<(&'static str, String)>| {
        app.client
            .post(format!("{}/callback", app.address))
            .header("Cookie", format!("idgate_flow={}", started.flow_cookie))
            .form(&fields)
            .send()
    };
    let response = post(vec![
        ("state", state.clone()),
        ("id_token", token),
        ("iss", app.provider.url.clone()),
    ])
    .await
    .expect("post");
    assert_eq!(response.status(), 303);
    assert!(session_cookie(&response).is_some());
    // An ID token in the URL of a POST is refused before anything else.
    let in_url = app
        .client
        .post(format!("{}/callback?id_token=x.y.z", app.address))
        .header("Cookie", format!("idgate_flow={}", started.flow_cookie))
        .form(&[("state", "s")])
        .send()
        .await
        .expect("post");
    assert_error_page(in_url, 400, "token_in_url").await;
    // The flow is finished: the same state again is refused.
    let again = post(vec![("state", state), ("code", "x".into())])
        .await
        .expect("post");
    assert_error_page(again, 400, "bad_state").await;
}

#[tokio::test]
async fn signing_out_in_a_browser_shows_the_signed_out_page() {
    let app = spawn_signin_app(TestDb::sqlite()).await;
    app.add_member("ana@example.org");
    let session = session_cookie(&app.login(&app.token_for("ana@example.org")).await)
        .expect("cookie")
        .0;
    let response = app
        .client
        .post(format!("{}/logout", app.address))
        .header("Cookie", format!("idgate_session={session}"))
        .header(
            "Accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert!(session_cookie(&response).is_some_and(|(v, _)| v.is_empty()));
    let page = response.text().await.expect("page");
    assert!(
        page.contains("You are signed out") && page.contains(r#"href="/login""#),
        "{page}"
    );
    let home = app.get_with_session("/", &session).await;
    assert_eq!(home.status(), 303);
    assert_eq!(location(&home), "/login");
}

#[tokio::test]
async fn a_provider_without_rfc_9207_finishes_without_iss() {
    let app = spawn_signin_app(TestDb::sqlite()).await;
    app.add_member("ana@example.org");
    app.provider.set_user("ana@example.org", "ana-sub");
    app.provider.set_send_iss(false);
    let started = start(&app, "/login/mock", None).await;
    let back = authorize(&app, &started).await;
    assert_eq!(query_param(&back, "iss"), None);
    assert_eq!(
        callback(&app, &back, &started.flow_cookie).await.status(),
        303
    );
}

/// A browser that does not hold the flow's cookie cannot use the flow up: whoever learns a
/// `state` cannot void another person's sign-in.
async fn another_browser_leaves_the_flow_to_the_one_that_started_it(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    app.provider.set_user("ana@example.org", "sub-ana");
    let started = start(&app, "/login/mock", None).await;
    let back = authorize(&app, &started).await;
    let stranger = app.client.get(&back).send().await.expect("send");
    assert_error_page(stranger, 400, "bad_state").await;
    let other = idgate::ids::random_token();
    assert_error_page(callback(&app, &back, &other).await, 400, "bad_state").await;
    assert_eq!(
        callback(&app, &back, &started.flow_cookie).await.status(),
        303,
        "the flow is still this browser's"
    );
}

/// A person the member rules refuse at the end of a browser sign-in sees the account the
/// provider signed in, and may sign in with a different one (not "try again" into the same
/// refusal).
async fn a_refused_account_is_named_and_another_may_be_chosen(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.provider.set_user("nobody@example.org", "sub-nobody");
    let started = start(&app, "/login/mock?redirect=/docs", None).await;
    let back = authorize(&app, &started).await;
    let response = callback(&app, &back, &started.flow_cookie).await;
    assert_eq!(response.status(), 403);
    let page = response.text().await.expect("page");
    assert!(page.contains("nobody@example.org"), "{page}");
    assert!(page.contains("this account cannot sign in here"), "{page}");
    // `&` escaped in the attribute, as HTML wants.
    assert!(
        page.contains(r#"href="/login/mock?prompt=select_account&#38;redirect=%2Fdocs""#),
        "{page}"
    );
    assert!(page.contains("Sign in with a different account"), "{page}");
    assert!(page.contains("incident"), "{page}");
    assert!(!page.contains("no_member"), "{page}");
    // The link asks the provider to let the person choose an account.
    let again = start(
        &app,
        "/login/mock?prompt=select_account&redirect=/docs",
        None,
    )
    .await;
    assert_eq!(
        query_param(&again.authorize_url, "prompt").as_deref(),
        Some("select_account")
    );
}

/// Unknown paths are a page for browsers; `GET /logout` a page with a sign-out button.
async fn browsers_get_pages_for_unknown_paths_and_logout(db: TestDb) {
    let app = spawn_signin_app(db).await;
    let get = |path: &'static str, accept: &'static str| {
        app.client
            .get(format!("{}{path}", app.address))
            .header("Accept", accept)
            .send()
    };
    let missing = get("/no/such/page", "text/html").await.expect("send");
    assert_eq!(missing.status(), 404);
    assert!(
        missing
            .text()
            .await
            .expect("page")
            .contains("Page not found")
    );
    let data = get("/no/such/page", "application/json")
        .await
        .expect("send");
    assert_eq!(data.status(), 404);
    let body: serde_json::Value = data.json().await.expect("json");
    assert_eq!(body["error"]["id"], "not_found");
    let logout = get("/logout", "text/html").await.expect("send");
    assert_eq!(logout.status(), 200);
    let page = logout.text().await.expect("page");
    assert!(
        page.contains(r#"<form method="post" action="/logout">"#),
        "{page}"
    );
    assert!(page.contains("Sign out"), "{page}");
}

/// With `--public-url http://host/sso`, every endpoint is served under `/sso` and only there;
/// pages, redirects and the provider's `redirect_uri` carry the path; the flow cookie is scoped
/// to the callback there, the session cookie to the whole host.
async fn idgate_serves_under_the_path_of_its_public_url(db: TestDb) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let app = crate::helpers::spawn_signin_app_with(db, |s| {
        s.listen = format!("127.0.0.1:{port}");
        s.public_url = url::Url::parse(&format!("http://127.0.0.1:{port}/sso")).ok();
    })
    .await;
    app.add_member("ana@example.org");
    app.provider.set_user("ana@example.org", "ana-sub");
    let get = |path: &str| app.client.get(format!("{}{path}", app.address)).send();
    assert_eq!(get("/sso/healthz").await.expect("send").status(), 200);
    for elsewhere in ["/healthz", "/login", "/callback", "/auth"] {
        assert_eq!(
            get(elsewhere).await.expect("send").status(),
            404,
            "{elsewhere}"
        );
    }
    let page = get("/sso/login")
        .await
        .expect("send")
        .text()
        .await
        .expect("page");
    assert!(page.contains(r#"action="/sso/login""#), "{page}");
    assert!(page.contains(r#"href="/sso/login/mock""#), "{page}");
    // Email-first: an address whose domain signs in through one provider goes there, under
    // the path.
    let email_first = get("/sso/login?email=bo%40other-only.example.org&redirect=%2Fdocs%2Fa")
        .await
        .expect("send");
    assert_eq!(email_first.status(), 303);
    assert_eq!(
        location(&email_first),
        "/sso/login/other?login_hint=bo%40other-only.example.org&redirect=%2Fdocs%2Fa"
    );
    // Forward-auth: a browser's page request without a session is sent to the sign-in page
    // under the path of the public URL.
    let forward = crate::helpers::with_headers(
        app.client.get(format!("{}/sso/forward-auth", app.address)),
        &crate::helpers::forwarded("GET", "docs.example.org", "/space/doc?a=1", "text/html"),
    )
    .send()
    .await
    .expect("send");
    assert_eq!(forward.status(), 302);
    assert_eq!(
        location(&forward),
        format!(
            "http://127.0.0.1:{port}/sso/login?redirect=https%3A%2F%2Fdocs.example.org%2Fspace%2Fdoc%3Fa%3D1"
        )
    );

    let started = get("/sso/login/mock?redirect=/docs/a").await.expect("send");
    assert_eq!(started.status(), 302);
    let (flow_cookie, attributes) = set_cookie(&started, "idgate_flow").expect("flow cookie");
    assert!(attributes.contains("Path=/sso/callback"), "{attributes}");
    let authorize_url = location(&started);
    assert_eq!(
        query_param(&authorize_url, "redirect_uri"),
        Some(format!("http://127.0.0.1:{port}/sso/callback"))
    );
    let back = authorize(
        &app,
        &Started {
            authorize_url,
            flow_cookie: flow_cookie.clone(),
        },
    )
    .await;
    assert!(
        back.starts_with(&format!("http://127.0.0.1:{port}/sso/callback?")),
        "{back}"
    );
    let signed_in = callback(&app, &back, &flow_cookie).await;
    assert_eq!(signed_in.status(), 303);
    // A relative redirect stays relative to the host's root.
    assert_eq!(location(&signed_in), "/docs/a");
    let (session, attributes) = session_cookie(&signed_in).expect("session");
    assert!(
        attributes.contains("Path=/;") || attributes.ends_with("Path=/"),
        "{attributes}"
    );
    let home = app
        .client
        .get(format!("{}/sso/", app.address))
        .header("Cookie", format!("idgate_session={session}"))
        .send()
        .await
        .expect("send");
    let home = home.text().await.expect("page");
    assert!(home.contains(r#"action="/sso/logout""#), "{home}");
    // Without a redirect, idgate's own home under the path.
    let started = get("/sso/login/mock").await.expect("send");
    let (flow_cookie, _) = set_cookie(&started, "idgate_flow").expect("flow cookie");
    let back = authorize(
        &app,
        &Started {
            authorize_url: location(&started),
            flow_cookie: flow_cookie.clone(),
        },
    )
    .await;
    let signed_in = callback(&app, &back, &flow_cookie).await;
    assert_eq!(location(&signed_in), "/sso/");
    // idgate's own pages (its origin, whatever its path) may sign people in and out.
    let origin = format!("http://127.0.0.1:{port}");
    let direct = app
        .client
        .post(format!("{}/sso/authenticate", app.address))
        .header("Origin", &origin)
        .form(&[
            ("action", "login"),
            (
                "id_token",
                app.token_with("ana@example.org", serde_json::json!({"sub": "ana-sub"}))
                    .as_str(),
            ),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(direct.status(), 200);
    let (session, _) = session_cookie(&direct).expect("session");
    let out = app
        .client
        .post(format!("{}/sso/logout", app.address))
        .header("Origin", &origin)
        .header("Cookie", format!("idgate_session={session}"))
        .send()
        .await
        .expect("send");
    assert_eq!(out.status(), 200);
    // A browser's two tabs sign in at once under the path too.
    two_tabs_finish_their_sign_ins(&app, "/sso").await;
}

async_on_both_backends!(
    idgate_serves_under_the_path_of_its_public_url,
    a_refused_account_is_named_and_another_may_be_chosen,
    browsers_get_pages_for_unknown_paths_and_logout,
    another_browser_leaves_the_flow_to_the_one_that_started_it,
    the_sign_in_page_lists_every_provider,
    a_person_signs_in_through_the_code_flow_with_pkce,
    a_public_client_sends_its_id_and_the_verifier,
    form_post_answers_finish_the_flow,
    the_state_must_be_this_browsers_live_flow,
    the_nonce_and_the_provider_must_be_the_flows,
    provider_errors_and_refused_codes_are_pages,
    redirects_go_only_to_idgate_or_registered_websites,
);
