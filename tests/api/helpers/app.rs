//! The real app on a random port, in this process: with the example configuration, or with a
//! mock provider and a clock the test moves; and what tests assert of its answers.

use std::sync::Arc;

use idgate::clock::SystemClock;
use idgate::db::Database;
use idgate::settings::Settings;
use idgate::startup::Application;

use super::{TestDb, repo_path};

/// A running app on a random port.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db: TestDb,
}

/// Starts the real app with the example configuration on the given database.
pub async fn spawn_app_on(db: TestDb) -> TestApp {
    let settings = Settings {
        config_path: repo_path("identity.yaml"),
        listen: "127.0.0.1:0".into(),
        database_url: db.url.clone(),
        durability: idgate::db::Durability::default(),
        public_url: None,
        cookie: Default::default(),
        response_mode: idgate::flows::ResponseMode::Query,
    };
    let config = idgate::identity::load(&settings.config_path).unwrap_or_else(|e| panic!("{e}"));
    let app = Application::build_with(settings, config, db.open(), Arc::new(SystemClock))
        .unwrap_or_else(|e| panic!("cannot build the app: {e}"));
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::new(),
        db,
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_on(TestDb::sqlite()).await
}

/// The identity configuration of the sign-in tests, for a mock provider at `authority`.
///
/// - `example.org` allows SSO; `internal.example.org` only the password form;
///   `other-only.example.org` only the provider `other`; unlisted domains get `internal`.
/// - `strict` shares the mock's authority with another client id and requires verified emails.
/// - `api-bot` is an API account allowed from 10.1.2.3 only; 127.0.0.1 is a trusted proxy.
pub fn signin_config(authority: &str) -> String {
    format!(
        r#"defaultAuthentication: internal
providers:
  - id: mock
    title: Mock
    authorityUrl: {authority}
    clientId: {client}
    clientSecret: {secret}
    trustedAudiences: [https://api.example.org]
    apiAudience: {api}
  - id: strict
    title: Strict
    authorityUrl: {authority}
    clientId: strict-client
    requireVerifiedEmail: true
  - id: other
    title: Other
    authorityUrl: http://127.0.0.1:9/other
    clientId: other
domains:
  - name: example.org
    authentication: external
  - name: internal.example.org
    authentication: internal
  - name: other-only.example.org
    authentication: external
    providers: [other]
clients:
  - id: 0123456789abcdef
    name: Docs
    website: https://docs.example.org
properties:
  apiAccountUsernames: api-bot
  apiAccountIPs: 10.1.2.3
  sessionTimeout: 30
  trustedProxies: 127.0.0.1/32
"#,
        client = idgate_test_support::provider::CLIENT_ID,
        secret = idgate_test_support::provider::CLIENT_SECRET,
        api = idgate_test_support::provider::API_AUDIENCE,
    )
}

/// The app with a mock provider and a clock the test moves.
pub struct SignInApp {
    pub address: String,
    pub client: reqwest::Client,
    pub provider: idgate_test_support::provider::MockProvider,
    pub key: idgate_test_support::provider::TestKey,
    pub clock: idgate::clock::ManualClock,
    pub database: Database,
    /// The database, which lives as long as the app.
    pub db: TestDb,
}

/// Starts a mock provider publishing an RSA key (`rsa1`), an EC key and an Ed25519 key, and
/// the app configured with [`signin_config`] on `db`, its clock at the real time.
pub async fn spawn_signin_app(db: TestDb) -> SignInApp {
    spawn_signin_app_with(db, |_| {}).await
}

/// As [`spawn_signin_app`], with the settings changed by `change` first.
pub async fn spawn_signin_app_with(db: TestDb, change: impl FnOnce(&mut Settings)) -> SignInApp {
    spawn_signin_app_configured(db, signin_config, change).await
}

/// As [`spawn_signin_app_with`], with the configuration `yaml` writes for the mock's authority.
pub async fn spawn_signin_app_configured(
    db: TestDb,
    yaml: impl FnOnce(&str) -> String,
    change: impl FnOnce(&mut Settings),
) -> SignInApp {
    use idgate_test_support::provider::{MockProvider, TestKey};
    let key = TestKey::rsa("rsa1", "rsa1");
    let provider = MockProvider::start(vec![
        key.clone(),
        TestKey::ec("ec1", "ec1"),
        TestKey::ed("ed1", "ed1"),
    ])
    .await;
    let text = yaml(&provider.url);
    let yaml = db.dir.path().join("identity.yaml");
    std::fs::write(&yaml, text).unwrap_or_else(|e| panic!("{e}"));
    let mut settings = Settings {
        config_path: yaml,
        listen: "127.0.0.1:0".into(),
        database_url: db.url.clone(),
        durability: idgate::db::Durability::default(),
        public_url: None,
        cookie: Default::default(),
        response_mode: idgate::flows::ResponseMode::Query,
    };
    change(&mut settings);
    let config = idgate::identity::load(&settings.config_path).unwrap_or_else(|e| panic!("{e}"));
    let clock = idgate::clock::ManualClock::starting_at(idgate::clock::unix_now());
    let database = Database::open(&settings.database_url)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", settings.database_url));
    let app = Application::build_with(settings, config, database.clone(), Arc::new(clock.clone()))
        .unwrap_or_else(|e| panic!("cannot build the app: {e}"));
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    SignInApp {
        address,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|e| panic!("{e}")),
        provider,
        key,
        clock,
        database,
        db,
    }
}

impl SignInApp {
    pub fn now(&self) -> i64 {
        use idgate::clock::Clock as _;
        self.clock.now()
    }

    /// Adds an activated member.
    pub fn add_member(&self, email: &str) -> idgate::members::Member {
        self.add_member_with(email, None, idgate::members::MemberStatus::Activated)
    }

    pub fn add_member_with(
        &self,
        email: &str,
        username: Option<&str>,
        status: idgate::members::MemberStatus,
    ) -> idgate::members::Member {
        let new = idgate::members::NewMember {
            email: idgate::members::Email::parse(email).unwrap_or_else(|e| panic!("{e}")),
            username: username.map(str::to_string),
            firstname: "Ana".into(),
            surname: "Lima".into(),
            status,
            admin: false,
        };
        let mut conn = self.database.conn().unwrap_or_else(|e| panic!("{e}"));
        idgate::db::members::insert_member(&mut conn, &new, self.now())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The mock's claims for `email`, valid now, with `changes` applied (a `null` removes the
    /// claim).
    pub fn claims_with(&self, email: &str, changes: serde_json::Value) -> serde_json::Value {
        let mut claims = self.provider.claims(email, self.now());
        if let (serde_json::Value::Object(claims), serde_json::Value::Object(changes)) =
            (&mut claims, changes)
        {
            for (name, value) in changes {
                if value.is_null() {
                    claims.remove(&name);
                } else {
                    claims.insert(name, value);
                }
            }
        }
        claims
    }

    /// An RS256 token of [`SignInApp::claims_with`].
    pub fn token_with(&self, email: &str, changes: serde_json::Value) -> String {
        self.provider
            .token(&self.key, &self.claims_with(email, changes))
    }

    /// A valid RS256 token for `email`.
    pub fn token_for(&self, email: &str) -> String {
        self.provider
            .token(&self.key, &self.provider.claims(email, self.now()))
    }

    /// `POST /authenticate` with `action=login` and the token.
    pub async fn login(&self, token: &str) -> reqwest::Response {
        self.login_with(token, &[]).await
    }

    /// The request of [`SignInApp::login`], to send later (or from another task).
    pub fn login_request(&self, token: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}/authenticate", self.address))
            .form(&[("action", "login"), ("id_token", token)])
    }

    pub async fn login_with(&self, token: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.login_request(token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// `GET path` with the session cookie.
    pub async fn get_with_session(&self, path: &str, session: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .header("Cookie", format!("idgate_session={session}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The `idgate_session` cookie a response sets: its value and its attributes.
pub fn session_cookie(response: &reqwest::Response) -> Option<(String, String)> {
    set_cookie(response, "idgate_session")
}

/// The `Location` of a redirect, empty when there is none.
pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The cookie `name` a response sets: its value and its attributes.
pub fn set_cookie(response: &reqwest::Response, name: &str) -> Option<(String, String)> {
    let prefix = format!("{name}=");
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&prefix))
        .map(|c| {
            let value = c[prefix.len()..].split(';').next().unwrap_or("");
            (value.to_string(), c.to_string())
        })
}

/// Concurrent attempts at what only one may do (use a token, redeem a code): exactly one answers
/// 200 and every other 401.
pub async fn assert_one_of_them_wins(
    attempts: Vec<tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>>,
) {
    let mut statuses = Vec::new();
    for attempt in attempts {
        statuses.push(
            attempt
                .await
                .unwrap_or_else(|e| panic!("task: {e}"))
                .unwrap_or_else(|e| panic!("response: {e}"))
                .status()
                .as_u16(),
        );
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        statuses.len() - 1,
        "{statuses:?}"
    );
}

/// A JWT's claims, and the hex SHA-256 of its signed part (header and payload, as the replay
/// guard hashes it).
pub fn token_parts(token: &str) -> (serde_json::Value, String) {
    use base64::Engine as _;
    use sha2::Digest as _;
    let signed_part = token.rsplit_once('.').map_or("", |(head, _)| head);
    let payload = signed_part.split('.').nth(1).unwrap_or("");
    let claims = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let hash = idgate::ids::hex(&sha2::Sha256::digest(signed_part.as_bytes()));
    (claims, hash)
}

/// Asserts a refusal: its status, its reason code, and that no session cookie was set.
pub async fn assert_refused(response: reqwest::Response, status: u16, reason: &str) {
    assert_eq!(response.status().as_u16(), status, "status for {reason}");
    let cookie = session_cookie(&response);
    assert!(cookie.is_none(), "a refusal set a cookie: {cookie:?}");
    let body: serde_json::Value = response.json().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(body["error"]["id"], reason, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}

/// One more in-process instance on `db`, configured by the file `yaml`, with the default
/// settings and `clock`: what several instances on one database are made of. Its address.
pub fn start_instance(
    db: &TestDb,
    yaml: &std::path::Path,
    clock: Arc<dyn idgate::clock::Clock>,
) -> String {
    let settings = Settings {
        config_path: yaml.to_path_buf(),
        listen: "127.0.0.1:0".into(),
        database_url: db.url.clone(),
        durability: idgate::db::Durability::default(),
        ..Settings::default()
    };
    let config = idgate::identity::load(yaml).unwrap_or_else(|e| panic!("{e}"));
    let app = Application::build_with(settings, config, db.open(), clock)
        .unwrap_or_else(|e| panic!("cannot start: {e}"));
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    address
}
