//! Forward-auth with real proxies in front of a small upstream app, each configured by the very
//! recipe the documentation shows (`docs/recipes/`): nginx (`auth_request` to `/auth`, refusals
//! through `/forward-auth`) and Caddy (`forward_auth` to `/forward-auth`). Without a session a
//! browser is sent to sign in with its URL whole and an API client gets 401; with one, the
//! upstream sees who; after logout, the browser is sent to sign in again. `/forward-auth` itself
//! is tested as Traefik calls it.
//!
//! Needs Debian's `nginx` (or `nginx-light`), `caddy`, `openssl` and `ssl-cert`; `.ci/run`
//! installs them and sets `IDGATE_E2E=1`, which makes their absence a failure. Elsewhere the
//! tests report that they were skipped.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use idgate_test_support::tls::OPENSSL;

use crate::helpers::{SignInApp, TestDb, session_cookie, spawn_signin_app};

const NGINX: &str = "/usr/sbin/nginx";

/// The nginx recipe the documentation shows (`docs/recipes/nginx.conf`), as the file is.
fn nginx_recipe() -> String {
    std::fs::read_to_string(crate::helpers::repo_path("docs/recipes/nginx.conf")).expect("recipe")
}

/// `text` with `from` replaced by `to`, which must be there exactly once: a recipe that changes
/// shape fails the test instead of being tested in part.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "the recipe has `{from}` once"
    );
    text.replace(from, to)
}

/// A main configuration for nginx run by a test in `dir`, including `site` as Debian's
/// `/etc/nginx/nginx.conf` includes `sites-enabled/`.
fn nginx_main(dir: &Path, site: &Path) -> String {
    let (dir, site) = (dir.display(), site.display());
    format!(
        "daemon off;\nworker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  \
         proxy_temp_path {dir}/proxy;\n  fastcgi_temp_path {dir}/fastcgi;\n  \
         uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n  include {site};\n}}\n"
    )
}

/// Stops nginx or Caddy when dropped: SIGTERM to the main process, which stops the rest.
struct Stopped(Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// Waits (at most 15 s) until the proxy at `port` accepts connections: neither nginx nor Caddy
/// says when it is ready. Its log says why it did not start.
async fn listening(port: u16, proxy: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{proxy} did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The upstream app: says which member nginx told it about.
async fn upstream(req: HttpRequest) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string()
    };
    HttpResponse::Ok().body(format!(
        "upstream {} for {} ({})",
        req.path(),
        header("x-auth-email"),
        header("x-auth-member-id")
    ))
}

/// Whether the program at `path` is there for `test` (see `tools_ready`).
fn installed(path: &str, test: &str) -> bool {
    let missing: Vec<String> = [path]
        .into_iter()
        .filter(|path| !Path::new(path).exists())
        .map(String::from)
        .collect();
    crate::helpers::tools_ready(test, &missing)
}

/// Starts the upstream app on a random port, and returns the port.
fn spawn_upstream() -> u16 {
    let server = HttpServer::new(|| App::new().default_service(web::to(upstream)))
        .workers(1)
        .bind("127.0.0.1:0")
        .expect("bind");
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    port
}

/// Debian's self-signed certificate, which the recipe names until the operator has their own.
const SNAKEOIL_KEY: &str = "/etc/ssl/private/ssl-cert-snakeoil.key";

/// The nginx recipe as written passes `nginx -t` (with Debian's `ssl-cert` certificate).
#[tokio::test]
async fn the_nginx_recipe_passes_nginx_t_as_written() {
    let mut missing: Vec<String> = Vec::new();
    if !Path::new(NGINX).exists() {
        missing.push(NGINX.into());
    }
    if std::fs::File::open(SNAKEOIL_KEY).is_err() {
        missing.push(format!("{SNAKEOIL_KEY} (package ssl-cert, readable)"));
    }
    if !crate::helpers::tools_ready("nginx -t of the recipe", &missing) {
        return;
    }
    let dir = crate::helpers::temp_dir();
    let main = dir.path().join("nginx.conf");
    let recipe = crate::helpers::repo_path("docs/recipes/nginx.conf");
    std::fs::write(&main, nginx_main(dir.path(), &recipe)).expect("conf");
    let output = Command::new(NGINX)
        .arg("-t")
        .arg("-p")
        .arg(dir.path())
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .arg("-c")
        .arg(&main)
        .output()
        .expect("nginx -t");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Real nginx configured by the very recipe the documentation shows, with only its addresses and
/// certificate swapped for the test's: a signed-out browser is sent to sign in with its URL
/// (query string intact), an API client gets 401, the upstream sees who a member is (never who
/// the client claims to be), and after logout the browser is sent to sign in again.
#[tokio::test]
async fn nginx_auth_request_lets_only_signed_in_people_through() {
    let missing: Vec<String> = [NGINX, OPENSSL]
        .into_iter()
        .filter(|path| !Path::new(path).exists())
        .map(String::from)
        .collect();
    if !crate::helpers::tools_ready("nginx forward-auth test", &missing) {
        return;
    }
    let app = spawn_signin_app(TestDb::sqlite()).await;
    let member = app.add_member("ana@example.org");
    let upstream_port = spawn_upstream();

    let port = free_port();
    let dir = crate::helpers::temp_dir();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    idgate_test_support::tls::self_signed_certificate(&cert, &key);
    let mut site = nginx_recipe();
    for (from, to) in [
        ("listen 443 ssl;", format!("listen 127.0.0.1:{port} ssl;")),
        (
            "/etc/ssl/certs/ssl-cert-snakeoil.pem",
            cert.display().to_string(),
        ),
        (SNAKEOIL_KEY, key.display().to_string()),
        (
            "server 127.0.0.1:8080;",
            format!("server {};", app.address.trim_start_matches("http://")),
        ),
        (
            "server 127.0.0.1:3000;",
            format!("server 127.0.0.1:{upstream_port};"),
        ),
    ] {
        site = replace_once(&site, from, &to);
    }
    let site_path = dir.path().join("site.conf");
    std::fs::write(&site_path, site).expect("site");
    let main = dir.path().join("nginx.conf");
    std::fs::write(&main, nginx_main(dir.path(), &site_path)).expect("conf");
    let child = Command::new(NGINX)
        .arg("-c")
        .arg(&main)
        .arg("-p")
        .arg(dir.path())
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nginx");
    let _nginx = Stopped(child);
    listening(port, "nginx", &dir.path().join("error.log")).await;
    // The test's certificate is its own: the client takes it as it is.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .danger_accept_invalid_certs(true)
        .build()
        .expect("client");
    let front = format!("https://127.0.0.1:{port}");
    let error_log = || std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
    through_the_proxy(&app, &client, &front, member.id, &error_log).await;
}

/// What a person and an API client meet through a proxy at `front` set up by a recipe, whatever
/// the proxy: signed out, a browser is sent to sign in with its URL whole (and the sign-in page
/// keeps it), an API client or a form post gets 401; signed in (through the proxy), the upstream
/// sees who, whatever the client claims; signed out again, the browser is sent to sign in. The
/// proxy's log (`log`) explains a failure.
async fn through_the_proxy(
    app: &SignInApp,
    client: &reqwest::Client,
    front: &str,
    member_id: i64,
    log: &dyn Fn() -> String,
) {
    let html = "text/html,application/xhtml+xml";
    let get = |path: &str, accept: &str, session: Option<&str>| {
        let mut request = client
            .get(format!("{front}{path}"))
            .header("Accept", accept.to_string());
        if let Some(session) = session {
            request = request.header("Cookie", format!("idgate_session={session}"));
        }
        request.send()
    };

    // No session: a browser is sent to sign in, with its URL whole.
    let anonymous = get("/docs/report?x=1&y=two&z=%20", html, None)
        .await
        .expect("send");
    assert_eq!(anonymous.status(), 302, "{}", log());
    let location = crate::helpers::location(&anonymous);
    assert_eq!(
        location,
        format!("{front}/login?redirect=%2Fdocs%2Freport%3Fx%3D1%26y%3Dtwo%26z%3D%2520")
    );
    // The sign-in page, served by idgate through the proxy, keeps that URL for after the sign-in.
    let sign_in_page = get(location.trim_start_matches(front), html, None)
        .await
        .expect("send");
    assert_eq!(sign_in_page.status(), 200);
    let page = sign_in_page.text().await.expect("page");
    assert!(
        page.contains("redirect=%2Fdocs%2Freport%3Fx%3D1%26y%3Dtwo%26z%3D%2520"),
        "{page}"
    );
    // An API client, or a browser's form post: 401, no redirect.
    assert_eq!(
        get("/docs/report", "application/json", None)
            .await
            .expect("send")
            .status(),
        401
    );
    let post = client
        .post(format!("{front}/docs/report"))
        .header("Accept", html)
        .send()
        .await
        .expect("send");
    assert_eq!(post.status(), 401);

    // Signed in (through the proxy): the upstream sees who, whatever the client says.
    let response = client
        .post(format!("{front}/authenticate"))
        .form(&[
            ("action", "login"),
            ("id_token", &app.token_for("ana@example.org")),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), 200);
    let session = session_cookie(&response).expect("cookie").0;
    let through = client
        .get(format!("{front}/docs/report"))
        .header("Cookie", format!("idgate_session={session}"))
        .header("X-Auth-Email", "boss@example.org")
        .header("X-Auth-Member-Id", "999999")
        .send()
        .await
        .expect("send");
    assert_eq!(through.status(), 200);
    assert_eq!(
        through.text().await.expect("body"),
        format!("upstream /docs/report for ana@example.org ({member_id})")
    );

    // Signed out: the proxy sends the browser to sign in again.
    let logout = client
        .post(format!("{front}/logout"))
        .header("Cookie", format!("idgate_session={session}"))
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status(), 200);
    assert_eq!(
        get("/docs/report", html, Some(&session))
            .await
            .expect("send")
            .status(),
        302
    );
}

/// `GET /forward-auth` as Traefik and Caddy call it: the original request in `X-Forwarded-*`
/// headers, believed from trusted proxies only.
mod for_traefik_and_caddy {
    use crate::helpers::{
        TestDb, forwarded, session_cookie, signin_config, spawn_signin_app,
        spawn_signin_app_configured, with_headers,
    };

    async fn ask(
        app: &crate::helpers::SignInApp,
        headers: &[(&str, &str)],
        session: Option<&str>,
    ) -> reqwest::Response {
        let mut request = with_headers(
            app.client.get(format!("{}/forward-auth", app.address)),
            headers,
        );
        if let Some(session) = session {
            request = request.header("Cookie", format!("idgate_session={session}"));
        }
        request.send().await.expect("send")
    }

    #[tokio::test]
    async fn a_browser_is_sent_to_sign_in_and_everything_else_gets_401() {
        let app = spawn_signin_app(TestDb::sqlite()).await;
        app.add_member("ana@example.org");
        let html = "text/html,application/xhtml+xml";
        // A page of a registered website, its query string whole.
        let page = forwarded(
            "GET",
            "docs.example.org",
            "/space/doc?a=1&b=two&c=%20",
            html,
        );
        let response = ask(&app, &page, None).await;
        assert_eq!(response.status(), 302);
        let location = crate::helpers::location(&response);
        // Without --public-url idgate's address is the request's (https: the trusted proxy
        // says so).
        let expected = format!(
            "{}/login?redirect={}",
            app.address.replace("http://", "https://"),
            url::form_urlencoded::byte_serialize(
                b"https://docs.example.org/space/doc?a=1&b=two&c=%20"
            )
            .collect::<String>()
        );
        assert_eq!(location, expected);
        // The sign-in page keeps that address for after the sign-in.
        let sign_in = app
            .client
            .get(location.replace("https://", "http://"))
            .send()
            .await
            .expect("send")
            .text()
            .await
            .expect("page");
        assert!(
            sign_in.contains("redirect=https%3A%2F%2Fdocs.example.org%2Fspace%2Fdoc%3Fa%3D1%26b%3Dtwo%26c%3D%2520"),
            "{sign_in}"
        );
        // Not a page request, or not a registered host: 401, never a redirect.
        for headers in [
            forwarded("POST", "docs.example.org", "/space", html),
            forwarded("GET", "docs.example.org", "/api/doc", "application/json"),
            forwarded("GET", "evil.example", "/phish", html),
            forwarded("GET", "docs.example.org", "//evil.example/", html),
        ] {
            assert_eq!(ask(&app, &headers, None).await.status(), 401, "{headers:?}");
        }
        // Signed in: 200 with who it is.
        let signed_in = app.login(&app.token_for("ana@example.org")).await;
        let session = session_cookie(&signed_in).expect("cookie").0;
        let ok = ask(&app, &page, Some(&session)).await;
        assert_eq!(ok.status(), 200);
        assert_eq!(
            ok.headers().get("x-auth-email").map(|v| v.as_bytes()),
            Some(&b"ana@example.org"[..])
        );
    }

    #[tokio::test]
    async fn forwarded_headers_from_an_untrusted_peer_get_401() {
        let app = spawn_signin_app_configured(
            TestDb::sqlite(),
            |authority| signin_config(authority).replace("  trustedProxies: 127.0.0.1/32\n", ""),
            |_| {},
        )
        .await;
        let page = forwarded("GET", "docs.example.org", "/space", "text/html");
        assert_eq!(ask(&app, &page, None).await.status(), 401);
    }
}

const CADDY: &str = "/usr/bin/caddy";

/// Forward-auth with real Caddy (`forward_auth` to `/forward-auth`), configured by the very file
/// the documentation shows (`docs/recipes/Caddyfile`, its addresses from the environment):
/// a signed-out browser is sent to sign in with its URL (query string intact), an API client
/// gets 401, and a signed-in person reaches the upstream, which sees who.
#[tokio::test]
async fn caddy_forward_auth_sends_browsers_to_sign_in_and_lets_members_through() {
    if !installed(CADDY, "Caddy forward-auth test") {
        return;
    }
    let app = spawn_signin_app(TestDb::sqlite()).await;
    let member = app.add_member("ana@example.org");
    let upstream_port = spawn_upstream();

    let port = free_port();
    let dir = crate::helpers::temp_dir();
    let recipe = crate::helpers::repo_path("docs/recipes/Caddyfile");
    let log = dir.path().join("caddy.log");
    let child = Command::new(CADDY)
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&recipe)
        .env("SITE", format!("http://127.0.0.1:{port}"))
        .env("IDGATE", app.address.trim_start_matches("http://"))
        .env("APP", format!("127.0.0.1:{upstream_port}"))
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("caddy");
    let _caddy = Stopped(child);
    listening(port, "Caddy", &log).await;
    let front = format!("http://127.0.0.1:{port}");
    let caddy_log = || std::fs::read_to_string(&log).unwrap_or_default();
    through_the_proxy(&app, &app.client, &front, member.id, &caddy_log).await;
}

/// The recipes shown in the operators' guide are the files the tests run, character for
/// character.
#[test]
fn the_guide_shows_the_recipes_the_tests_run() {
    let guide = std::fs::read_to_string(crate::helpers::repo_path("docs/operations.md"))
        .expect("operations.md");
    for (fence, file) in [
        ("```nginx\n", "docs/recipes/nginx.conf"),
        ("```caddyfile\n", "docs/recipes/Caddyfile"),
    ] {
        let recipe = std::fs::read_to_string(crate::helpers::repo_path(file)).expect("recipe file");
        let shown: Vec<&str> = guide
            .split(fence)
            .skip(1)
            .map(|rest| rest.split("```").next().unwrap_or(""))
            .collect();
        assert_eq!(shown, vec![recipe.as_str()], "{file} in docs/operations.md");
    }
}
