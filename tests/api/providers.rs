//! Real providers' defaults: the email from userinfo (`emailSource`, `access_token`, `at_hash`,
//! `sub` equality, outages), HMAC-signed ID tokens (`idTokenSigningAlgs`), forwarded
//! authorization parameters, email-first sign-in, key rotation within 5 seconds, multi-tenant
//! issuers (`tenants`), `check-config --probe` and the providers of `/readyz`.

use idgate_test_support::provider::{
    CLIENT_ID, MockProvider, TestKey, access_token_for, at_hash, sign_token,
};
use serde_json::{Value, json};

use crate::helpers::{
    SignInApp, TestDb, assert_refused, idgate_command, signin_config, spawn_signin_app_configured,
    stdout, temp_dir,
};

/// Provider entries on the mock's authority beside those of [`signin_config`]: `ui` reads the
/// email from userinfo always, `idt` never, `hs` accepts HS256 keyed by its secret and adds
/// fixed authorization parameters.
const EXTRA_PROVIDERS: &str = "  - id: ui
    title: Userinfo
    authorityUrl: AUTHORITY
    clientId: ui-client
    emailSource: userinfo
  - id: idt
    title: ID token only
    authorityUrl: AUTHORITY
    clientId: idt-client
    emailSource: idToken
  - id: hs
    title: Shared secret
    authorityUrl: AUTHORITY
    clientId: hs-client
    clientSecret: hs-secret-of-at-least-thirty-two-bytes
    idTokenSigningAlgs: [HS256, RS256]
    authorizationParams:
      kc_idp_hint: corp
      login_hint: fixed@example.org
";

/// [`signin_config`] with [`EXTRA_PROVIDERS`] and a domain two providers share.
fn config(authority: &str) -> String {
    signin_config(authority)
        .replacen(
            "providers:\n",
            &format!(
                "providers:\n{}",
                EXTRA_PROVIDERS.replace("AUTHORITY", authority)
            ),
            1,
        )
        .replacen(
            "domains:\n",
            "domains:\n  - name: two.example.org\n    authentication: external\n    providers: [mock, hs]\n",
            1,
        )
}

async fn spawn(db: TestDb) -> SignInApp {
    spawn_signin_app_configured(db, config, |_| {}).await
}

/// A token for `client` of the mock, with `changes` applied (`null` removes a claim).
fn token_for(app: &SignInApp, email: &str, client: &str, changes: Value) -> String {
    let mut all = json!({ "aud": client });
    if let (Value::Object(all), Value::Object(changes)) = (&mut all, changes) {
        all.extend(changes);
    }
    app.token_with(email, all)
}

/// `POST /authenticate action=login` with the ID token and, when given, the access token.
async fn login(app: &SignInApp, id_token: &str, access_token: Option<&str>) -> reqwest::Response {
    let mut form = vec![("action", "login"), ("id_token", id_token)];
    if let Some(access) = access_token {
        form.push(("access_token", access));
    }
    app.client
        .post(format!("{}/authenticate", app.address))
        .form(&form)
        .send()
        .await
        .expect("send")
}

async fn email_comes_from_userinfo_when_the_id_token_has_none(db: TestDb) {
    let app = spawn(db).await;
    let member = app.add_member("ana@example.org");
    let sub = "sub-ana";
    app.provider.set_userinfo(
        sub,
        json!({"sub": sub, "email": "ana@example.org", "email_verified": true}),
    );
    let access = access_token_for(sub);
    // No email in the token: userinfo, once per sign-in (no cache).
    for round in 1..=2 {
        let token = token_for(
            &app,
            "ana@example.org",
            CLIENT_ID,
            json!({"email": null, "sub": sub, "at_hash": at_hash(&access)}),
        );
        let response = login(&app, &token, Some(&access)).await;
        assert_eq!(response.status(), 200, "round {round}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["member"]["id"], member.id);
        assert_eq!(app.provider.userinfo_calls(), round);
    }
    let mut conn = app.database.conn().expect("conn");
    let events = idgate::db::audit::list_events(&mut conn, 0).expect("log");
    assert!(
        events
            .iter()
            .filter(|e| e.outcome == "success")
            .all(|e| e.email_source.as_deref() == Some("userinfo")),
        "{events:?}"
    );
}

async fn userinfo_refusals_and_outages(db: TestDb) {
    let app = spawn(db).await;
    app.add_member("ana@example.org");
    app.add_member("bob@example.org");
    let sub = "sub-ana";
    let access = access_token_for(sub);
    let no_email = |changes: Value| {
        let mut all = json!({"email": null, "sub": sub});
        if let (Value::Object(all), Value::Object(changes)) = (&mut all, changes) {
            all.extend(changes);
        }
        token_for(&app, "ana@example.org", CLIENT_ID, all)
    };
    // No access token to ask with: no email.
    assert_refused(
        login(&app, &no_email(json!({})), None).await,
        401,
        "bad_email",
    )
    .await;
    // An access token of another sign-in (`at_hash` names another).
    let other = no_email(json!({"at_hash": at_hash("another access token")}));
    assert_refused(login(&app, &other, Some(&access)).await, 401, "bad_email").await;
    // Userinfo speaks of someone else.
    app.provider
        .set_userinfo(sub, json!({"sub": "sub-bob", "email": "bob@example.org"}));
    let answer = login(&app, &no_email(json!({})), Some(&access)).await;
    assert_refused(answer, 403, "identity_mismatch").await;
    // Userinfo answers, without an email.
    app.provider.set_userinfo(sub, json!({"sub": sub}));
    let answer = login(&app, &no_email(json!({})), Some(&access)).await;
    assert_refused(answer, 401, "bad_email").await;
    // Userinfo says the email is not verified: the same rules as an ID token's.
    app.provider.set_userinfo(
        sub,
        json!({"sub": sub, "email": "ana@example.org", "email_verified": false}),
    );
    let answer = login(&app, &no_email(json!({})), Some(&access)).await;
    assert_refused(answer, 401, "email_not_verified").await;
    // Userinfo down: 503, nothing refused.
    app.provider.set_userinfo_down(true);
    let answer = login(&app, &no_email(json!({})), Some(&access)).await;
    assert_refused(answer, 503, "unavailable").await;
}

#[tokio::test]
async fn email_source_decides_where_the_email_is_read() {
    let app = spawn(TestDb::sqlite()).await;
    app.add_member("ana@example.org");
    app.add_member("bob@example.org");
    let sub = "sub-x";
    let access = access_token_for(sub);
    app.provider.set_userinfo(
        sub,
        json!({"sub": sub, "email": "ana@example.org", "email_verified": true}),
    );
    // `userinfo`: even when the token names someone (bob), userinfo's answer (ana) decides.
    let token = token_for(&app, "bob@example.org", "ui-client", json!({"sub": sub}));
    let response = login(&app, &token, Some(&access)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["member"]["email"], "ana@example.org");
    // `idToken`: a token without email is refused without asking userinfo.
    let calls = app.provider.userinfo_calls();
    let token = token_for(
        &app,
        "ana@example.org",
        "idt-client",
        json!({"sub": sub, "email": null}),
    );
    assert_refused(login(&app, &token, Some(&access)).await, 401, "bad_email").await;
    assert_eq!(app.provider.userinfo_calls(), calls);
}

#[tokio::test]
async fn hmac_tokens_only_from_providers_that_list_them_and_keyed_by_the_secret_alone() {
    let app = spawn(TestDb::sqlite()).await;
    app.add_member("ana@example.org");
    let hs = |secret: &str, client: &str| {
        let mut claims = app.provider.claims("ana@example.org", app.now());
        claims["aud"] = json!(client);
        sign_token(
            &TestKey::hmac(secret, "shared"),
            &json!({"alg": "HS256", "typ": "JWT"}),
            &claims,
        )
    };
    // A provider that does not list HS256 (the default list): refused before any key.
    assert_refused(
        app.login(&hs("test-secret", CLIENT_ID)).await,
        401,
        "unsupported_alg",
    )
    .await;
    // The provider that lists it: keyed by its client secret.
    assert_refused(
        app.login(&hs("wrong-secret", "hs-client")).await,
        401,
        "bad_signature",
    )
    .await;
    // A JWKS that publishes a shared key never keys an HMAC.
    app.provider.publish_raw(vec![
        TestKey::hmac("published", "shared").jwk(),
        app.key.jwk(),
    ]);
    assert_refused(
        app.login(&hs("published", "hs-client")).await,
        401,
        "bad_signature",
    )
    .await;
    assert_eq!(
        app.login(&hs("hs-secret-of-at-least-thirty-two-bytes", "hs-client"))
            .await
            .status(),
        200
    );
    // The same provider still takes its asymmetric tokens.
    let rs = token_for(&app, "ana@example.org", "hs-client", json!({}));
    assert_eq!(app.login(&rs).await.status(), 200);
}

/// Where `GET path` redirects to (no redirect followed).
async fn location(app: &SignInApp, path: &str) -> (u16, String) {
    let response = app
        .client
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .expect("send");
    (
        response.status().as_u16(),
        crate::helpers::location(&response),
    )
}

fn query_of(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .expect("url")
        .query_pairs()
        .into_owned()
        .collect()
}

#[tokio::test]
async fn hints_are_forwarded_to_the_provider_and_nothing_else() {
    let app = spawn(TestDb::sqlite()).await;
    let (status, to) = location(
        &app,
        "/login/mock?login_hint=ana%40example.org&prompt=select_account&domain_hint=example.org&ui_locales=fr&client_id=evil&scope=admin&max_age=0",
    )
    .await;
    assert_eq!(status, 302);
    let query = query_of(&to);
    let value = |name: &str| -> Vec<&str> {
        query
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(value("login_hint"), ["ana@example.org"]);
    assert_eq!(value("prompt"), ["select_account"]);
    assert_eq!(value("domain_hint"), ["example.org"]);
    assert_eq!(value("ui_locales"), ["fr"]);
    assert_eq!(value("client_id"), [CLIENT_ID], "idgate's own, once");
    assert_eq!(value("scope"), ["openid email profile"]);
    assert!(value("max_age").is_empty());
    // A `prompt` that is not a sign-in prompt is dropped.
    let (_, to) = location(&app, "/login/mock?prompt=create%20evil").await;
    assert!(query_of(&to).iter().all(|(n, _)| n != "prompt"), "{to}");
    // The provider's fixed parameters, which a forwarded hint does not override.
    let (_, to) = location(&app, "/login/hs?login_hint=other%40example.org").await;
    let query = query_of(&to);
    assert!(
        query.contains(&("kc_idp_hint".into(), "corp".into())),
        "{to}"
    );
    let hints: Vec<&(String, String)> = query.iter().filter(|(n, _)| n == "login_hint").collect();
    assert_eq!(
        hints,
        [&("login_hint".to_string(), "fixed@example.org".to_string())]
    );
}

#[tokio::test]
async fn email_first_sends_people_to_the_provider_their_domain_uses() {
    let app = spawn(TestDb::sqlite()).await;
    app.add_member("ana@other-only.example.org");
    // One provider: straight there, with the hint and the redirect.
    for email in [
        "ana@other-only.example.org",
        "nobody@other-only.example.org",
    ] {
        let (status, to) = location(
            &app,
            &format!(
                "/login?email={}&redirect=%2Fdocs%3Fa%3D1%26b%3D2",
                email.replace('@', "%40")
            ),
        )
        .await;
        assert_eq!(status, 303, "{email}: members and non-members alike");
        let login_hint = url::form_urlencoded::byte_serialize(email.as_bytes()).collect::<String>();
        assert_eq!(
            to,
            format!("/login/other?login_hint={login_hint}&redirect=%2Fdocs%3Fa%3D1%26b%3D2")
        );
    }
    let page = |path: String| {
        let app = &app;
        async move {
            let response = app
                .client
                .get(format!("{}{path}", app.address))
                .send()
                .await
                .expect("send");
            assert_eq!(response.status(), 200, "{path}");
            response.text().await.expect("page")
        }
    };
    // Several: only those.
    let several = page("/login?email=bo%40two.example.org".into()).await;
    assert!(
        several.contains("/login/mock?login_hint=bo%40two.example.org"),
        "{several}"
    );
    assert!(
        several.contains("/login/hs?login_hint=bo%40two.example.org"),
        "{several}"
    );
    assert!(!several.contains("/login/strict"), "{several}");
    assert!(!several.contains("/login/other"), "{several}");
    // No single sign-on for the domain.
    let internal = page("/login?email=ana%40internal.example.org".into()).await;
    assert!(
        internal.contains("does not sign in here with single sign-on"),
        "{internal}"
    );
    assert!(!internal.contains("/login/mock"), "{internal}");
    // Not an address.
    let malformed = page("/login?email=not-an-address".into()).await;
    assert!(
        malformed.contains("That is not an email address"),
        "{malformed}"
    );
    // The page offers the email step.
    let plain = page("/login".into()).await;
    assert!(
        plain.contains(r#"name="email""#) && plain.contains("Continue"),
        "{plain}"
    );
}

#[tokio::test]
async fn a_rotated_key_is_fetched_once_after_the_five_second_window() {
    let app = spawn(TestDb::sqlite()).await;
    app.add_member("ana@example.org");
    let token = |key: &TestKey| {
        app.provider
            .token(key, &app.provider.claims("ana@example.org", app.now()))
    };
    assert_eq!(app.login(&token(&app.key)).await.status(), 200);
    let fetches = app.provider.jwks_fetches();
    let rotated = TestKey::rsa("rsa2", "rsa2");
    app.provider.publish(vec![rotated.clone(), app.key.clone()]);
    // Within 5 s of the last fetch: not fetched again, the new key is unknown.
    app.clock.advance(4);
    assert_refused(app.login(&token(&rotated)).await, 401, "unknown_key").await;
    assert_eq!(app.provider.jwks_fetches(), fetches);
    // 6 s after it: exactly one refetch, and the new key signs in.
    app.clock.advance(2);
    assert_eq!(app.login(&token(&rotated)).await.status(), 200);
    assert_eq!(app.provider.jwks_fetches(), fetches + 1);
}

/// A provider whose issuer names each token's tenant, accepting `tenant-a` and `tenant-b`.
fn tenant_config(authority: &str) -> String {
    format!(
        "providers:
  - id: entra
    title: Entra
    authorityUrl: {authority}
    clientId: {CLIENT_ID}
    tenants: [tenant-a, tenant-b]
domains:
  - name: example.org
    authentication: external
"
    )
}

async fn multi_tenant_issuers_name_an_accepted_tenant(db: TestDb) {
    let app = spawn_signin_app_configured(db, tenant_config, |_| {}).await;
    let template = format!("{}/{{tenantid}}/v2.0", app.provider.url);
    app.provider.set_issuer(&template);
    let member = app.add_member("ana@example.org");
    let issuer = |tid: &str| format!("{}/{tid}/v2.0", app.provider.url);
    let token = |changes: Value| app.token_with("ana@example.org", changes);
    let listed = token(json!({"iss": issuer("tenant-a"), "tid": "tenant-a"}));
    assert_eq!(app.login(&listed).await.status(), 200);
    let unlisted = token(json!({"iss": issuer("tenant-z"), "tid": "tenant-z"}));
    assert_refused(app.login(&unlisted).await, 401, "unknown_issuer").await;
    let no_tid = token(json!({"iss": issuer("tenant-a"), "tid": null}));
    assert_refused(app.login(&no_tid).await, 401, "unknown_issuer").await;
    let other_tid = token(json!({"iss": issuer("tenant-a"), "tid": "tenant-b"}));
    assert_refused(app.login(&other_tid).await, 401, "unknown_issuer").await;
    // The binding is the tenant's issuer's.
    let mut conn = app.database.conn().expect("conn");
    let bindings = idgate::db::members::bindings_of(&mut conn, member.id).expect("bindings");
    assert_eq!(bindings.len(), 1, "{bindings:?}");
    assert_eq!(bindings[0].issuer, issuer("tenant-a"));
    assert_eq!(bindings[0].provider, "entra");
}

#[test]
fn multi_tenant_authorities_need_tenants_and_any_tenant_is_a_warning() {
    let dir = temp_dir();
    let check = |yaml: &str| {
        let path = dir.path().join("identity.yaml");
        std::fs::write(&path, yaml).expect("write");
        idgate_command(dir.path())
            .args(["check-config"])
            .arg(&path)
            .output()
            .expect("run")
    };
    let entra = |extra: &str| {
        format!(
            "providers:\n  - id: entra\n    title: Entra\n    authorityUrl: https://login.microsoftonline.com/organizations/v2.0\n    clientId: c\n{extra}"
        )
    };
    let missing = check(&entra(""));
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stdout(&missing).contains(":4:19: a multi-tenant authority"),
        "{}",
        stdout(&missing)
    );
    let any = check(&entra("    tenants: [\"*\"]\n"));
    assert_eq!(any.status.code(), Some(0), "{}", stdout(&any));
    assert!(
        stdout(&any).contains(":6:14: warning: `tenants: [\"*\"]`"),
        "{}",
        stdout(&any)
    );
    let refused_with = |yaml: &str, message: &str| {
        let output = check(yaml);
        assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
        assert!(stdout(&output).contains(message), "{}", stdout(&output));
    };
    refused_with(
        "providers:\n  - id: p\n    title: P\n    authorityUrl: https://id.example.org\n    clientId: c\n    idTokenSigningAlgs: [HS256]\n",
        ":6:26: invalid `idTokenSigningAlgs`: `HS256` is keyed by the client secret",
    );
    refused_with(
        "providers:\n  - id: p\n    title: P\n    authorityUrl: https://id.example.org\n    clientId: c\n    clientSecret: short\n    idTokenSigningAlgs: [HS256]\n",
        ":7:26: invalid `idTokenSigningAlgs`: `HS256` needs a client secret of at least 32 bytes",
    );
    refused_with(
        "providers:\n  - id: p\n    title: P\n    authorityUrl: https://id.example.org\n    clientId: c\n    authorizationParams:\n      redirect_uri: https://evil.example\n      hd: example.org\n",
        ":7:7: invalid `authorizationParams`: `redirect_uri` is set by idgate itself",
    );
}

#[tokio::test]
async fn probe_reports_unreachable_providers_wrong_issuers_and_passes_good_ones() {
    let provider = MockProvider::start(vec![TestKey::rsa("rsa1", "rsa1")]).await;
    let dir = temp_dir();
    let probe = |authority: String| {
        let path = dir.path().join("identity.yaml");
        std::fs::write(
            &path,
            format!("providers:\n  - id: p\n    title: P\n    authorityUrl: {authority}\n    clientId: c\n"),
        )
        .expect("write");
        let mut command = idgate_command(dir.path());
        command.args(["check-config", "--probe"]).arg(&path);
        async move { tokio::task::spawn_blocking(move || command.output()).await }
    };
    let good = probe(provider.url.clone())
        .await
        .expect("task")
        .expect("run");
    assert_eq!(good.status.code(), Some(0), "{}", stdout(&good));
    // The mock lists no claims_supported: nothing to warn of.
    assert!(stdout(&good).contains(": ok ("), "{}", stdout(&good));
    let down = probe("http://127.0.0.1:9".into())
        .await
        .expect("task")
        .expect("run");
    assert_eq!(down.status.code(), Some(1));
    assert!(
        stdout(&down).contains(":4:19: provider `p` is unreachable")
            && stdout(&down).contains("connection refused"),
        "{}",
        stdout(&down)
    );
    provider.set_issuer("http://localhost:1/elsewhere");
    let wrong = probe(provider.url.clone())
        .await
        .expect("task")
        .expect("run");
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        stdout(&wrong).contains("names the issuer http://localhost:1/elsewhere")
            && stdout(&wrong).contains(&provider.url),
        "{}",
        stdout(&wrong)
    );
}

/// What would fail a provider's first sign-in is reported at its `authorityUrl`: no signing
/// algorithm in common, no key for the algorithms in common, a provider that answers with an
/// error status or whose name does not resolve; and, as a warning that does not fail the check,
/// a discovery document whose `claims_supported` lacks `email`.
#[tokio::test]
async fn probe_reports_what_would_fail_the_first_sign_in() {
    let provider = MockProvider::start(vec![TestKey::rsa("rsa1", "rsa1")]).await;
    let dir = temp_dir();
    let probe = |authority: &str, more: &str| {
        let path = dir.path().join("identity.yaml");
        std::fs::write(
            &path,
            format!(
                "providers:\n  - id: p\n    title: P\n    authorityUrl: {authority}\n    clientId: c\n{more}"
            ),
        )
        .expect("write");
        let mut command = idgate_command(dir.path());
        command.args(["check-config", "--probe"]).arg(&path);
        async move {
            tokio::task::spawn_blocking(move || command.output())
                .await
                .expect("task")
                .expect("run")
        }
    };
    let refused = |output: &std::process::Output, message: &str| {
        assert_eq!(output.status.code(), Some(1), "{}", stdout(output));
        assert!(
            stdout(output).contains(&format!(":4:19: {message}")),
            "{message}: {}",
            stdout(output)
        );
    };
    let none_in_common = probe(
        &provider.url,
        "    clientSecret: 0123456789abcdef0123456789abcdef\n    idTokenSigningAlgs: [HS256]\n",
    )
    .await;
    refused(
        &none_in_common,
        "provider `p` signs ID tokens with RS256, ES256, EdDSA and idgate accepts HS256 of it: no algorithm in common",
    );
    // ES256 is in common, but the provider publishes only an RSA key.
    let no_key = probe(&provider.url, "    idTokenSigningAlgs: [ES256]\n").await;
    refused(
        &no_key,
        &format!(
            "provider `p` publishes no key usable for ES256 at {}/jwks",
            provider.url
        ),
    );
    let unknown_name = probe("https://idgate-probe.invalid", "").await;
    refused(&unknown_name, "provider `p` is unreachable: ");
    assert!(
        stdout(&unknown_name).contains("DNS"),
        "{}",
        stdout(&unknown_name)
    );
    provider.set_down(true);
    let failing = probe(&provider.url, "").await;
    refused(
        &failing,
        &format!(
            "provider `p` is unreachable: {}/.well-known/openid-configuration answered HTTP 503",
            provider.url
        ),
    );
    provider.set_down(false);

    provider.set_claims_supported(Some(&["sub", "name"]));
    let without_email = probe(&provider.url, "").await;
    assert_eq!(
        without_email.status.code(),
        Some(0),
        "{}",
        stdout(&without_email)
    );
    assert!(
        stdout(&without_email).contains(
            ":4:19: warning: provider `p` does not list `email` in claims_supported: email will be read from userinfo"
        ) && stdout(&without_email).contains(": ok ("),
        "{}",
        stdout(&without_email)
    );
    provider.set_claims_supported(Some(&["sub", "email"]));
    let with_email = probe(&provider.url, "").await;
    assert_eq!(with_email.status.code(), Some(0));
    assert!(
        !stdout(&with_email).contains("warning"),
        "{}",
        stdout(&with_email)
    );
}

#[tokio::test]
async fn readyz_says_what_is_known_of_each_provider() {
    let app = spawn(TestDb::sqlite()).await;
    let readyz = || async {
        let response = app
            .client
            .get(format!("{}/readyz", app.address))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.expect("json")
    };
    let before = readyz().await;
    assert_eq!(before["providers"]["mock"], "never_fetched", "{before}");
    app.add_member("ana@example.org");
    assert_eq!(
        app.login(&app.token_for("ana@example.org")).await.status(),
        200
    );
    let after = readyz().await;
    assert_eq!(after["providers"]["mock"], "ok", "{after}");
    // `other` points at a closed port: once asked, it is unreachable.
    let _ = location(&app, "/login/other").await;
    let other = readyz().await;
    assert_eq!(other["providers"]["other"], "unreachable", "{other}");
}

crate::helpers::async_on_both_backends!(
    email_comes_from_userinfo_when_the_id_token_has_none,
    userinfo_refusals_and_outages,
    multi_tenant_issuers_name_an_accepted_tenant,
);
