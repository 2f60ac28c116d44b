//! What a security review and fault tests found, each kept from coming back: anonymous writes
//! limited per address, one email per member, sessions of API accounts tied to their addresses,
//! logout from other sites refused, private SQLite files, tokens valid for too long, security
//! headers, keys kept through broken JWKS answers, the security log purged, and client mistakes
//! not logged as server errors.

use std::io::Write as _;

use serde_json::{Value, json};

use crate::helpers::{
    ServeProcess, SignInApp, TestDb, assert_refused, idgate, repo_path, session_cookie,
    signin_config, spawn_signin_app, spawn_signin_app_configured, temp_dir,
};

/// The sign-in configuration with at most `per_minute` anonymous writes per address.
fn limited(per_minute: u32) -> impl FnOnce(&str) -> String {
    move |authority| {
        signin_config(authority).replace(
            "  sessionTimeout: 30\n",
            &format!("  sessionTimeout: 30\n  rateLimitPerMinute: {per_minute}\n"),
        )
    }
}

/// A sign-in with a token that is no token, through the trusted proxy for the client `from`
/// (when the proxy is trusted).
async fn garbage_from(app: &SignInApp, from: &str) -> reqwest::Response {
    app.client
        .post(format!("{}/authenticate", app.address))
        .header("X-Forwarded-For", from)
        .form(&[("action", "login"), ("id_token", "not.a.token")])
        .send()
        .await
        .expect("send")
}

fn events(app: &SignInApp) -> Vec<idgate::db::audit::LoggedEvent> {
    let mut conn = app.database.conn().expect("conn");
    idgate::db::audit::list_events(&mut conn, 0).expect("log")
}

async fn refused_attempts_beyond_the_limit_store_nothing(db: TestDb) {
    let app = spawn_signin_app_configured(db, limited(5), |_| {}).await;
    app.add_member("ana@example.org");
    let garbage = || {
        app.client
            .post(format!("{}/authenticate", app.address))
            .form(&[("action", "login"), ("id_token", "not.a.token")])
            .send()
    };
    for _ in 0..5 {
        assert_refused(garbage().await.expect("send"), 400, "malformed").await;
    }
    let stored = events(&app).len();
    assert_eq!(stored, 5);
    let limited = garbage().await.expect("send");
    assert_eq!(limited.status(), 429);
    let retry: u64 = limited
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in whole seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    let body: Value = limited.json().await.expect("json");
    assert_eq!(body["error"]["id"], "rate_limited");
    // Refused ID tokens, flow starts: limited too, and nothing more is stored.
    let mut token = app.provider.claims("ana@example.org", app.now());
    token["aud"] = json!("someone-else");
    let refused = app.login(&app.provider.token(&app.key, &token)).await;
    assert_eq!(refused.status(), 429);
    let flow = app
        .client
        .get(format!("{}/login/mock", app.address))
        .send()
        .await
        .expect("send");
    assert_eq!(flow.status(), 429);
    assert_eq!(
        events(&app).len(),
        stored,
        "nothing stored beyond the limit"
    );
    // Successful sign-ins and session checks never count.
    let ok = app.login(&app.token_for("ana@example.org")).await;
    assert_eq!(ok.status(), 200);
    let session = session_cookie(&ok).expect("cookie").0;
    for _ in 0..20 {
        assert_eq!(app.get_with_session("/auth", &session).await.status(), 200);
    }
    // A minute on, the bucket is full again.
    app.clock.advance(60);
    assert_refused(garbage().await.expect("send"), 400, "malformed").await;
    // Another address (through the trusted proxy) has its own allowance.
    let elsewhere = app
        .client
        .post(format!("{}/authenticate", app.address))
        .header("X-Forwarded-For", "192.0.2.7")
        .form(&[("action", "login"), ("id_token", "not.a.token")])
        .send()
        .await
        .expect("send");
    assert_eq!(elsewhere.status(), 400);
}

/// Refused requests at `/callback` and `/backchannel-logout` are anonymous writes too: beyond
/// the allowance `/callback` answers `429` and neither stores its refusal (a back-channel
/// refusal stays `400`, as a provider expects of a bad logout token).
async fn refusals_at_the_callback_and_the_back_channel_are_limited(db: TestDb) {
    let app = spawn_signin_app_configured(db, limited(2), |_| {}).await;
    let callback = || {
        app.client
            .get(format!(
                "{}/callback?code=x&state=nothing-started",
                app.address
            ))
            .send()
    };
    for _ in 0..2 {
        assert_eq!(callback().await.expect("send").status(), 400);
    }
    assert_eq!(events(&app).len(), 2);
    let limited = callback().await.expect("send");
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().get("retry-after").is_some());
    assert_eq!(events(&app).len(), 2, "nothing stored beyond the limit");
    // A minute on, the back channel: two refusals stored, the third only answered.
    app.clock.advance(60);
    for _ in 0..3 {
        let refused = crate::provider_logout::backchannel(&app, "not.a.token").await;
        assert_eq!(refused.status(), 400);
    }
    assert_eq!(events(&app).len(), 4, "two refusals stored, the third not");
}

/// Without a trusted proxy, `X-Forwarded-For` is the client's own word: an address that names
/// another one in each request still has one allowance, its own.
async fn a_forwarded_address_from_an_untrusted_peer_shares_its_allowance(db: TestDb) {
    let untrusted =
        |authority: &str| limited(2)(authority).replace("  trustedProxies: 127.0.0.1/32\n", "");
    let app = spawn_signin_app_configured(db, untrusted, |_| {}).await;
    for from in ["192.0.2.1", "192.0.2.2"] {
        assert_refused(garbage_from(&app, from).await, 400, "malformed").await;
    }
    let spoofed = garbage_from(&app, "192.0.2.3").await;
    assert_eq!(spoofed.status(), 429);
    assert_eq!(events(&app).len(), 2, "nothing stored beyond the limit");
}

/// A flow start that fails (here: its provider cannot be reached) counts once against the
/// allowance, as one that succeeds: the row of its refusal is part of the same request.
async fn a_failed_flow_start_counts_once(db: TestDb) {
    let app = spawn_signin_app_configured(db, limited(2), |_| {}).await;
    let start = || {
        app.client
            .get(format!("{}/login/other", app.address))
            .send()
    };
    for _ in 0..2 {
        assert_eq!(start().await.expect("send").status(), 503);
    }
    assert_eq!(start().await.expect("send").status(), 429);
    assert_eq!(events(&app).len(), 2, "the two refusals are stored");
}

/// An IPv6 client holds a whole /64, and changes addresses within it at will: the limit counts
/// the /64 as one address.
async fn an_ipv6_prefix_shares_one_allowance(db: TestDb) {
    let app = spawn_signin_app_configured(db, limited(2), |_| {}).await;
    for from in ["2001:db8:1:2::1", "2001:db8:1:2:ffff::7"] {
        assert_refused(garbage_from(&app, from).await, 400, "malformed").await;
    }
    let same_prefix = garbage_from(&app, "2001:db8:1:2:abcd::9").await;
    assert_eq!(same_prefix.status(), 429);
    let next_prefix = garbage_from(&app, "2001:db8:1:3::1").await;
    assert_eq!(next_prefix.status(), 400);
}

async fn one_email_is_one_member(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("kate@example.org");
    let token = |email: &str| {
        let mut claims = app.provider.claims(email, app.now());
        claims["email"] = json!(email);
        app.provider.token(&app.key, &claims)
    };
    // KELVIN SIGN is not `k`: another address, which no member has.
    assert_refused(
        app.login(&token("\u{212A}ate@example.org")).await,
        403,
        "no_member",
    )
    .await;
    // Domains UTS-46 would map onto the member's are not addresses idgate takes.
    for twin in [
        "kate@ｅｘａｍｐｌｅ.org",
        "kate@example\u{3002}org",
        "kate@exam\u{ad}ple.org",
    ] {
        assert_refused(app.login(&token(twin)).await, 401, "bad_email").await;
    }
    assert_eq!(app.login(&token("KATE@Example.org")).await.status(), 200);
}

async fn an_api_accounts_session_holds_only_from_its_addresses(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member_with(
        "bot@example.org",
        Some("api-bot"),
        idgate::members::MemberStatus::Activated,
    );
    let allowed = [("X-Forwarded-For", "10.1.2.3")];
    let signed_in = app
        .login_with(&app.token_for("bot@example.org"), &allowed)
        .await;
    assert_eq!(signed_in.status(), 200);
    let session = session_cookie(&signed_in).expect("cookie").0;
    let check = |path: &'static str, from: &'static str| {
        app.client
            .get(format!("{}{path}", app.address))
            .header("Cookie", format!("idgate_session={session}"))
            .header("X-Forwarded-For", from)
            .send()
    };
    assert_eq!(
        check("/session", "10.1.2.3").await.expect("send").status(),
        200
    );
    assert_refused(
        check("/session", "10.9.9.9").await.expect("send"),
        403,
        "api_account_ip",
    )
    .await;
    assert_eq!(
        check("/auth", "10.9.9.9").await.expect("send").status(),
        401
    );
    assert_eq!(
        check("/auth", "10.1.2.3").await.expect("send").status(),
        200
    );
    // `/forward-auth`, for a browser's page through a trusted proxy: 401, not a redirect to a
    // sign-in that the same rule would refuse.
    let page = |from: &'static str| {
        let request = app
            .client
            .get(format!("{}/forward-auth", app.address))
            .header("Cookie", format!("idgate_session={session}"))
            .header("X-Forwarded-For", from);
        let headers =
            crate::helpers::forwarded("GET", "docs.example.org", "/space/doc", "text/html");
        crate::helpers::with_headers(request, &headers).send()
    };
    assert_eq!(page("10.9.9.9").await.expect("send").status(), 401);
    assert_eq!(page("10.1.2.3").await.expect("send").status(), 200);
}

async fn logout_from_another_sites_page_is_refused(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let signed_in = app.login(&app.token_for("ana@example.org")).await;
    let session = session_cookie(&signed_in).expect("cookie").0;
    let cookie = format!("idgate_session={session}");
    // A cross-site top-level GET, and a form another site posts.
    let cross_site_get = app
        .client
        .get(format!("{}/authenticate?action=logout", app.address))
        .header("Cookie", &cookie)
        .header("Sec-Fetch-Site", "cross-site")
        .header("Referer", "https://evil.example/page")
        .send()
        .await
        .expect("send");
    assert_refused(cross_site_get, 403, "csrf").await;
    let cross_site_post = app
        .client
        .post(format!("{}/logout", app.address))
        .header("Cookie", &cookie)
        .header("Origin", "https://evil.example")
        .send()
        .await
        .expect("send");
    assert_refused(cross_site_post, 403, "csrf").await;
    assert_eq!(
        app.get_with_session("/session", &session).await.status(),
        200,
        "kept"
    );
    // A registered client's website may sign people out.
    let from_client = app
        .client
        .post(format!("{}/logout", app.address))
        .header("Cookie", &cookie)
        .header("Origin", "https://docs.example.org")
        .header("Accept", "application/json")
        .send()
        .await
        .expect("send");
    assert_eq!(from_client.status(), 200);
    // idgate's own sign-out button: its pages send no referrer.
    let signed_in = app.login(&app.token_for("ana@example.org")).await;
    let session = session_cookie(&signed_in).expect("cookie").0;
    let own_button = app
        .client
        .post(format!("{}/logout", app.address))
        .header("Cookie", format!("idgate_session={session}"))
        .header("Origin", "null")
        .header("Sec-Fetch-Site", "same-origin")
        .send()
        .await
        .expect("send");
    assert_eq!(own_button.status(), 200);
    assert_eq!(
        app.get_with_session("/session", &session).await.status(),
        401
    );
}

async fn tokens_valid_for_more_than_a_day_are_refused(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let token = |changes: Value| app.token_with("ana@example.org", changes);
    let now = app.now();
    // The year 292 billion, and a day and a second from now or from `iat`.
    for exp in [9_214_646_400_000_000_i64, now + 86_401] {
        assert_refused(
            app.login(&token(json!({"exp": exp}))).await,
            401,
            "bad_lifetime",
        )
        .await;
    }
    // The far future in other spellings: beyond i64, and as a fraction.
    for exp in [
        json!(9_223_372_036_854_775_808_u64),
        json!(1e16),
        json!(1.5e300),
    ] {
        assert_refused(
            app.login(&token(json!({"exp": exp}))).await,
            401,
            "bad_lifetime",
        )
        .await;
    }
    let early_iat = token(json!({"iat": now - 600, "exp": now + 86_400 - 599}));
    assert_refused(app.login(&early_iat).await, 401, "bad_lifetime").await;
    let a_day = token(json!({"iat": now, "exp": now + 86_400}));
    assert_eq!(app.login(&a_day).await.status(), 200);
}

async fn keys_survive_a_broken_jwks_answer(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    assert_eq!(
        app.login(&app.token_for("ana@example.org")).await.status(),
        200
    );
    let unknown = idgate_test_support::provider::TestKey::rsa("rsa2", "rsa2");
    for broken in [vec![b'x'; 50 * 1024 * 1024], b"this is not json".to_vec()] {
        app.provider.set_jwks_body(Some(broken));
        // Anyone can make idgate refetch, with a token naming an unknown key.
        app.clock.advance(10);
        let claims = app.provider.claims("ana@example.org", app.now());
        let refetch = app.provider.token(&unknown, &claims);
        assert_refused(app.login(&refetch).await, 401, "unknown_key").await;
        // The last good keys still sign people in.
        assert_eq!(
            app.login(&app.token_for("ana@example.org")).await.status(),
            200
        );
    }
    app.provider.set_jwks_body(None);
}

async fn the_security_log_keeps_its_days(db: TestDb) {
    let app = spawn_signin_app_configured(
        db,
        |authority| {
            signin_config(authority).replace(
                "  sessionTimeout: 30\n",
                "  sessionTimeout: 30\n  securityLogDays: 2\n",
            )
        },
        |_| {},
    )
    .await;
    app.add_member("ana@example.org");
    assert_eq!(
        app.login(&app.token_for("ana@example.org")).await.status(),
        200
    );
    let state = app_state(&app);
    app.clock.advance(86_400);
    assert_eq!(state.purge_expired().await.expect("purge").events, 0);
    assert_eq!(events(&app).len(), 1);
    app.clock.advance(86_401);
    assert_eq!(state.purge_expired().await.expect("purge").events, 1);
    assert!(events(&app).is_empty());
}

/// The replay guard keeps a used token for as long as it could be accepted, and the purge takes
/// it then: an ID token at its `exp` and the leeway, a back-channel logout token's `jti` a day
/// after its `iat` and the leeway.
async fn the_replay_guard_keeps_each_token_until_it_could_no_longer_be_used(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let state = app_state(&app);
    let start = app.now();
    let token = |exp: i64| {
        let mut claims = app.provider.claims("ana@example.org", start);
        claims["exp"] = exp.into();
        app.provider.token(&app.key, &claims)
    };
    let (first, second) = (token(start + 100), token(start + 200));
    for used in [&first, &second] {
        assert_eq!(app.login(used).await.status(), 200);
    }
    let logout = app.provider.logout_token(
        &app.key,
        idgate_test_support::provider::CLIENT_ID,
        start,
        json!({"sid": "sid-1"}),
    );
    let logged_out = crate::provider_logout::backchannel(&app, &logout).await;
    assert_eq!(logged_out.status(), 200);
    let purged = || async { state.purge_expired().await.expect("purge").tokens };

    // The first token is accepted until `start + 160`.
    app.clock.advance(159);
    assert_eq!(purged().await, 0);
    assert_refused(app.login(&first).await, 401, "replayed").await;
    app.clock.advance(1);
    assert_eq!(purged().await, 1, "the first token's row");
    assert_refused(app.login(&second).await, 401, "replayed").await;
    app.clock.advance(99);
    assert_eq!(purged().await, 0);
    app.clock.advance(1);
    assert_eq!(purged().await, 1, "the second token's row");
    // The logout token's `jti` is remembered until `start + 86_460`.
    app.clock.advance(86_460 - 260 - 1);
    assert_eq!(purged().await, 0);
    app.clock.advance(1);
    assert_eq!(purged().await, 1, "the logout token's row");
}

/// A state on the app's database and clock, to run its maintenance.
pub fn app_state(app: &SignInApp) -> idgate::state::AppState {
    let config_path = app.db.dir.path().join("identity.yaml");
    let config = idgate::identity::load(&config_path).expect("configuration");
    idgate::state::AppState::new(
        idgate::settings::Settings {
            config_path,
            ..idgate::settings::Settings::default()
        },
        config,
        app.database.clone(),
        std::sync::Arc::new(app.clock.clone()),
    )
    .expect("state")
}

#[tokio::test]
async fn every_answer_says_nosniff_and_https_adds_hsts() {
    let plain = spawn_signin_app(TestDb::sqlite()).await;
    for path in ["/healthz", "/login", "/nothing-here", "/session"] {
        let response = plain
            .client
            .get(format!("{}{path}", plain.address))
            .send()
            .await
            .expect("send");
        assert_eq!(
            response
                .headers()
                .get("x-content-type-options")
                .map(|v| v.as_bytes()),
            Some(&b"nosniff"[..]),
            "{path}"
        );
        assert!(
            response
                .headers()
                .get("strict-transport-security")
                .is_none()
        );
    }
    let https = crate::helpers::spawn_signin_app_with(TestDb::sqlite(), |s| {
        s.public_url = url::Url::parse("https://sso.example.org").ok();
    })
    .await;
    let response = https
        .client
        .get(format!("{}/healthz", https.address))
        .send()
        .await
        .expect("send");
    assert_eq!(
        response
            .headers()
            .get("strict-transport-security")
            .map(|v| v.as_bytes()),
        Some(&b"max-age=31536000"[..])
    );
}

#[test]
fn sqlite_files_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = temp_dir();
    let path = dir.path().join("idgate.db");
    // An earlier version's file, readable by all, is narrowed too.
    std::fs::write(&path, b"").expect("file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let database =
        idgate::db::Database::open(&format!("sqlite://{}", path.display())).expect("database");
    let mut conn = database.conn().expect("conn");
    idgate::db::sessions::remember_token(&mut conn, "t", 1).expect("write");
    drop(conn);
    for suffix in ["", "-wal", "-shm"] {
        let file = dir.path().join(format!("idgate.db{suffix}"));
        let mode = std::fs::metadata(&file)
            .expect("exists")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
}

#[test]
fn member_names_with_control_characters_are_refused() {
    let db = TestDb::sqlite();
    let dir = temp_dir();
    for (flag, value) in [
        ("--firstname", "Ana\u{1b}[31m"),
        ("--surname", "Lima\u{202e}"),
        ("--username", "ana\u{7}"),
    ] {
        let out = idgate(
            dir.path(),
            &db.url,
            &["members", "add", "--email", "ana@example.org", flag, value],
        );
        assert_eq!(out.status.code(), Some(1), "{flag}");
    }
    let csv = dir.path().join("m.csv");
    std::fs::File::create(&csv)
        .and_then(|mut f| {
            f.write_all(
                "email,username,firstname,surname,status\nana@example.org,,Ana\u{1},Lima,\n"
                    .as_bytes(),
            )
        })
        .expect("csv");
    let out = idgate(
        dir.path(),
        &db.url,
        &["members", "import", csv.to_str().expect("path")],
    );
    assert_eq!(out.status.code(), Some(1));
    let listed = idgate(dir.path(), &db.url, &["members", "list", "--json"]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).trim().is_empty(),
        "nothing added"
    );
}

/// What the process logged until now: a reload (`SIGHUP`) marks the end.
fn log_until_reload(serve: &mut ServeProcess) -> Vec<Value> {
    serve.signal("-HUP");
    serve.events_until("identity configuration reloaded")
}

#[tokio::test]
async fn malformed_requests_are_not_logged_as_server_errors() {
    let db = TestDb::sqlite();
    let dir = temp_dir();
    std::fs::copy(repo_path("identity.yaml"), dir.path().join("identity.yaml")).expect("copy");
    let mut serve = ServeProcess::start(dir.path(), &db.url, &[]);
    for payload in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"\x00\x01\x02\xff\r\n\r\n",
    ] {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", serve.port)).expect("connect");
        stream.write_all(payload).expect("send");
        let mut answer = [0_u8; 64];
        let _ = std::io::Read::read(&mut stream, &mut answer);
        assert!(answer.starts_with(b"HTTP/1.1 400"), "{answer:?}");
    }
    let logged = log_until_reload(&mut serve);
    let errors: Vec<&Value> = logged.iter().filter(|e| e["level"] == "ERROR").collect();
    assert!(errors.is_empty(), "{errors:?}");
}

crate::helpers::async_on_both_backends!(
    refused_attempts_beyond_the_limit_store_nothing,
    a_forwarded_address_from_an_untrusted_peer_shares_its_allowance,
    a_failed_flow_start_counts_once,
    an_ipv6_prefix_shares_one_allowance,
    refusals_at_the_callback_and_the_back_channel_are_limited,
    one_email_is_one_member,
    an_api_accounts_session_holds_only_from_its_addresses,
    logout_from_another_sites_page_is_refused,
    tokens_valid_for_more_than_a_day_are_refused,
    keys_survive_a_broken_jwks_answer,
    the_security_log_keeps_its_days,
    the_replay_guard_keeps_each_token_until_it_could_no_longer_be_used,
);

/// The proxies' forward-auth checks, one for every request to the apps, stay out of the access
/// log, under a path prefix too; other requests are in it, each a JSON line of its message and
/// target alone.
#[tokio::test]
async fn forward_auth_checks_are_not_access_logged() {
    for prefix in ["", "/sso"] {
        let db = TestDb::sqlite();
        let dir = temp_dir();
        std::fs::copy(repo_path("identity.yaml"), dir.path().join("identity.yaml")).expect("copy");
        let public_url = format!("http://127.0.0.1{prefix}");
        let args: &[&str] = if prefix.is_empty() {
            &[]
        } else {
            &["--public-url", &public_url]
        };
        let mut serve = ServeProcess::start(dir.path(), &db.url, args);
        let client = reqwest::Client::new();
        for path in ["/auth", "/forward-auth", "/healthz"] {
            client
                .get(format!("{}{prefix}{path}", serve.address))
                .send()
                .await
                .expect("send");
        }
        let logged = log_until_reload(&mut serve);
        let access: Vec<&Value> = logged
            .iter()
            .filter(|e| e["target"] == "idgate::http")
            .collect();
        let messages: Vec<&str> = access
            .iter()
            .map(|e| e["message"].as_str().unwrap_or_default())
            .collect();
        let healthz = format!("127.0.0.1 \"GET {prefix}/healthz\" 200 ");
        assert!(
            messages
                .iter()
                .any(|m| m.starts_with(&healthz) && m.ends_with("ms")),
            "{logged:?}"
        );
        assert!(!messages.iter().any(|m| m.contains("auth")), "{messages:?}");
        for line in access {
            let mut keys: Vec<&str> = line
                .as_object()
                .expect("an object")
                .keys()
                .map(String::as_str)
                .collect();
            keys.sort_unstable();
            assert_eq!(keys, ["level", "message", "target", "timestamp"], "{line}");
        }
    }
}
