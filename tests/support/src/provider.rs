//! A mock OpenID provider: discovery and a JWKS on a random port, served by a real HTTP server,
//! with real RSA, EC and Ed25519 keys that sign real tokens. It counts what it serves and can
//! rotate its keys, go down, or answer slowly.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// A private key of the provider's, with its `kid`.
#[derive(Clone)]
pub struct TestKey {
    pub kid: String,
    kind: KeyKind,
}

#[derive(Clone)]
enum KeyKind {
    /// A shared secret (HS256): published as an `oct` JWK only to show that it is never used.
    Hmac(Vec<u8>),
    /// `ring` signs (fast enough that minting tokens never holds back a load benchmark's
    /// reference; see benches/README.md) and gives the public parts the JWK publishes.
    Rsa(Arc<ring::signature::RsaKeyPair>),
    Ec(Arc<ring::signature::EcdsaKeyPair>),
    Ed(ed25519_dalek::SigningKey),
}

/// The PKCS#8 document (DER) inside a fixture's PEM.
fn pem_der(name: &str) -> Vec<u8> {
    let text = pem(name);
    let (label, der) = pem_rfc7468::decode_vec(text.as_bytes())
        .unwrap_or_else(|e| panic!("key {name} is not PEM: {e}"));
    assert_eq!(label, "PRIVATE KEY", "key {name} is not PKCS#8");
    der
}

fn pem(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../fixtures/keys/{name}.pem"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read key {name}: {e}"))
}

/// The system time in Unix seconds.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl TestKey {
    /// A shared secret for HS256 (idgate's key is the client secret, never a JWK).
    pub fn hmac(secret: &str, kid: &str) -> TestKey {
        TestKey {
            kid: kid.into(),
            kind: KeyKind::Hmac(secret.as_bytes().to_vec()),
        }
    }

    pub fn rsa(file: &str, kid: &str) -> TestKey {
        let key = ring::signature::RsaKeyPair::from_pkcs8(&pem_der(file)).expect("RSA key");
        TestKey {
            kid: kid.into(),
            kind: KeyKind::Rsa(Arc::new(key)),
        }
    }

    pub fn ec(file: &str, kid: &str) -> TestKey {
        let key = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &pem_der(file),
            &ring::rand::SystemRandom::new(),
        )
        .expect("EC key");
        TestKey {
            kid: kid.into(),
            kind: KeyKind::Ec(Arc::new(key)),
        }
    }

    pub fn ed(file: &str, kid: &str) -> TestKey {
        use ed25519_dalek::pkcs8::DecodePrivateKey as _;
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem(file)).expect("Ed25519 key");
        TestKey {
            kid: kid.into(),
            kind: KeyKind::Ed(key),
        }
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        match &self.kind {
            KeyKind::Hmac(secret) => json!({"kty": "oct", "kid": self.kid, "k": b64(secret)}),
            KeyKind::Rsa(key) => {
                let public = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(key.public());
                json!({"kty": "RSA", "kid": self.kid, "use": "sig",
                       "n": b64(&public.n), "e": b64(&public.e)})
            }
            KeyKind::Ec(key) => {
                use ring::signature::KeyPair as _;
                // The uncompressed point: 0x04, then x and y (32 bytes each).
                let point = key.public_key().as_ref();
                assert_eq!(point.len(), 65, "a P-256 point");
                json!({"kty": "EC", "kid": self.kid, "crv": "P-256", "use": "sig",
                       "x": b64(&point[1..33]), "y": b64(&point[33..])})
            }
            KeyKind::Ed(key) => json!({"kty": "OKP", "kid": self.kid, "crv": "Ed25519",
                                       "x": b64(key.verifying_key().as_bytes())}),
        }
    }

    /// The algorithm this key signs with by default.
    pub fn alg(&self) -> &'static str {
        match self.kind {
            KeyKind::Hmac(_) => "HS256",
            KeyKind::Rsa(..) => "RS256",
            KeyKind::Ec(..) => "ES256",
            KeyKind::Ed(_) => "EdDSA",
        }
    }

    /// Signs `input` with `alg` (ES256 signatures are raw r‖s, as JWS requires).
    pub fn sign(&self, alg: &str, input: &[u8]) -> Vec<u8> {
        match &self.kind {
            KeyKind::Hmac(secret) => {
                use hmac::Mac as _;
                assert_eq!(alg, "HS256", "an HMAC key signs HS256 here");
                let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("key");
                mac.update(input);
                mac.finalize().into_bytes().to_vec()
            }
            KeyKind::Rsa(key) => {
                use ring::signature as sig;
                let padding: &'static dyn sig::RsaEncoding = match alg {
                    "RS256" => &sig::RSA_PKCS1_SHA256,
                    "RS384" => &sig::RSA_PKCS1_SHA384,
                    "RS512" => &sig::RSA_PKCS1_SHA512,
                    "PS256" => &sig::RSA_PSS_SHA256,
                    "PS384" => &sig::RSA_PSS_SHA384,
                    "PS512" => &sig::RSA_PSS_SHA512,
                    other => panic!("an RSA key does not sign {other}"),
                };
                let mut signature = vec![0; key.public().modulus_len()];
                key.sign(
                    padding,
                    &ring::rand::SystemRandom::new(),
                    input,
                    &mut signature,
                )
                .expect("RSA signature");
                signature
            }
            KeyKind::Ec(key) => key
                .sign(&ring::rand::SystemRandom::new(), input)
                .expect("ECDSA signature")
                .as_ref()
                .to_vec(),
            KeyKind::Ed(key) => {
                use ed25519_dalek::Signer as _;
                key.sign(input).to_bytes().to_vec()
            }
        }
    }
}

/// What the provider serves; tests change it while the app runs.
struct Served {
    keys: Vec<TestKey>,
    /// Published as they are, instead of `keys`, when set.
    raw_keys: Option<Vec<Value>>,
    issuer: String,
    down: bool,
    jwks_delay: Option<Duration>,
    cache_control: Option<String>,
    /// Who the authorization endpoint signs in (it asks nobody).
    user: Option<(String, String)>,
    /// Changes applied to the ID tokens the token endpoint issues (`null` removes a claim).
    id_token_changes: Value,
    /// Whether authorization responses carry `iss` (RFC 9207).
    send_iss: bool,
    /// An `error` to answer the authorization request with.
    authorize_error: Option<String>,
    /// Codes issued and not yet redeemed.
    codes: HashMap<String, IssuedCode>,
    /// How each token request authenticated its client: `basic:ID` or `public:ID`.
    token_clients: Vec<String>,
    /// What the userinfo endpoint says of each subject (`sub` → claims).
    userinfo: HashMap<String, Value>,
    userinfo_calls: usize,
    /// The userinfo endpoint answers 503.
    userinfo_down: bool,
    /// Served as the JWKS instead of a document, when set (a broken answer).
    jwks_body: Option<Vec<u8>>,
    /// Whether discovery names an end-session endpoint (RP-Initiated Logout).
    end_session: bool,
    /// The `claims_supported` discovery lists, when set (none is listed otherwise).
    claims_supported: Option<Vec<String>>,
}

/// A code the authorization endpoint issued.
#[derive(Clone)]
struct IssuedCode {
    client_id: String,
    redirect_uri: String,
    nonce: Option<String>,
    challenge: String,
    email: String,
    sub: String,
}

/// Clients registered at the mock: confidential ones with a secret, public ones without.
const CLIENTS: [(&str, Option<&str>); 2] =
    [(CLIENT_ID, Some(CLIENT_SECRET)), ("strict-client", None)];

struct Shared {
    base: String,
    served: Mutex<Served>,
    jwks_fetches: AtomicUsize,
    discovery_fetches: AtomicUsize,
}

impl Shared {
    fn served(&self) -> std::sync::MutexGuard<'_, Served> {
        self.served.lock().expect("lock")
    }
}

async fn discovery(shared: web::Data<Shared>) -> HttpResponse {
    shared.discovery_fetches.fetch_add(1, Ordering::SeqCst);
    let (down, issuer, send_iss, end_session, claims_supported) = {
        let s = shared.served();
        (
            s.down,
            s.issuer.clone(),
            s.send_iss,
            s.end_session,
            s.claims_supported.clone(),
        )
    };
    if down {
        return HttpResponse::ServiceUnavailable().finish();
    }
    let base = &shared.base;
    let mut document = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "jwks_uri": format!("{base}/jwks"),
        "response_types_supported": ["code", "id_token"],
        "response_modes_supported": ["query", "form_post"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
        "authorization_response_iss_parameter_supported": send_iss,
    });
    if end_session {
        document["end_session_endpoint"] = json!(format!("{base}/end-session"));
    }
    if let Some(claims) = claims_supported {
        document["claims_supported"] = json!(claims);
    }
    HttpResponse::Ok().json(document)
}

async fn jwks(shared: web::Data<Shared>) -> HttpResponse {
    shared.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if let Some(body) = shared.served().jwks_body.clone() {
        return HttpResponse::Ok()
            .content_type("application/json")
            .body(body);
    }
    let (down, delay, cache_control, keys) = {
        let s = shared.served();
        let keys: Vec<Value> = match &s.raw_keys {
            Some(raw) => raw.clone(),
            None => s.keys.iter().map(TestKey::jwk).collect(),
        };
        (s.down, s.jwks_delay, s.cache_control.clone(), keys)
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if down {
        return HttpResponse::ServiceUnavailable().finish();
    }
    let mut response = HttpResponse::Ok();
    if let Some(cc) = cache_control {
        response.insert_header(("Cache-Control", cc));
    }
    response.json(json!({ "keys": keys }))
}

/// Signs the configured user in at once and answers as the request asks (query or form_post).
async fn authorize(
    shared: web::Data<Shared>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let q = query.into_inner();
    let param = |name: &str| q.get(name).cloned().unwrap_or_default();
    let redirect_uri = param("redirect_uri");
    let mut answer: Vec<(String, String)> = vec![("state".into(), param("state"))];
    {
        let mut s = shared.served();
        if let Some(error) = &s.authorize_error {
            answer.push(("error".into(), error.clone()));
        } else {
            assert_eq!(param("response_type"), "code");
            assert_eq!(param("code_challenge_method"), "S256");
            let (email, sub) = s.user.clone().expect("a user to sign in");
            let code = format!("code-{:016x}", rand::random::<u64>());
            s.codes.insert(
                code.clone(),
                IssuedCode {
                    client_id: param("client_id"),
                    redirect_uri: redirect_uri.clone(),
                    nonce: q.get("nonce").cloned(),
                    challenge: param("code_challenge"),
                    email,
                    sub,
                },
            );
            answer.push(("code".into(), code));
        }
        if s.send_iss {
            answer.push(("iss".into(), s.issuer.clone()));
        }
    }
    if param("response_mode") == "form_post" {
        let inputs: String = answer
            .iter()
            .map(|(k, v)| format!(r#"<input type="hidden" name="{k}" value="{v}">"#))
            .collect();
        return HttpResponse::Ok().content_type("text/html").body(format!(
            r#"<form method="post" action="{redirect_uri}">{inputs}</form>"#
        ));
    }
    let mut location = url::Url::parse(&redirect_uri).expect("redirect_uri");
    location.query_pairs_mut().extend_pairs(&answer);
    HttpResponse::Found()
        .insert_header(("Location", location.to_string()))
        .finish()
}

/// The token endpoint: checks the client, the code (single use), the redirect URI and the PKCE
/// verifier, and answers with an ID token.
async fn token(
    shared: web::Data<Shared>,
    req: actix_web::HttpRequest,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let form = form.into_inner();
    let param = |name: &str| form.get(name).cloned().unwrap_or_default();
    let refuse = |error: &str| HttpResponse::BadRequest().json(json!({ "error": error }));
    let client = match req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    {
        Some(basic) => {
            let decoded = base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                basic.trim_start_matches("Basic "),
            )
            .expect("base64");
            let decoded = String::from_utf8(decoded).expect("utf-8");
            let (id, secret) = decoded.split_once(':').expect("id:secret");
            if !CLIENTS.contains(&(id, Some(secret))) {
                return HttpResponse::Unauthorized().json(json!({ "error": "invalid_client" }));
            }
            format!("basic:{id}")
        }
        None => {
            let id = param("client_id");
            if !CLIENTS.contains(&(id.as_str(), None)) {
                return HttpResponse::Unauthorized().json(json!({ "error": "invalid_client" }));
            }
            format!("public:{id}")
        }
    };
    let mut s = shared.served();
    s.token_clients.push(client.clone());
    let Some(code) = s.codes.remove(&param("code")) else {
        return refuse("invalid_grant");
    };
    let verifier_hash = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        <sha2::Sha256 as sha2::Digest>::digest(param("code_verifier").as_bytes()),
    );
    if verifier_hash != code.challenge
        || param("redirect_uri") != code.redirect_uri
        || !client.ends_with(&format!(":{}", code.client_id))
        || param("grant_type") != "authorization_code"
    {
        return refuse("invalid_grant");
    }
    let now = unix_now();
    let mut claims = json!({
        "iss": s.issuer, "sub": code.sub, "aud": code.client_id, "email": code.email,
        "email_verified": true, "iat": now, "exp": now + 300,
    });
    if let Some(nonce) = code.nonce {
        claims["nonce"] = json!(nonce);
    }
    if let Value::Object(changes) = &s.id_token_changes {
        for (name, value) in changes {
            if value.is_null() {
                claims.as_object_mut().expect("object").remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
    }
    let key = s.keys[0].clone();
    let id_token = sign_token(
        &key,
        &json!({"alg": key.alg(), "kid": key.kid, "typ": "JWT"}),
        &claims,
    );
    HttpResponse::Ok().json(
        json!({ "access_token": access_token_for(&code.sub), "token_type": "Bearer", "id_token": id_token }),
    )
}

/// The access token the token endpoint gives: JWT-shaped (unsigned), so that the userinfo
/// endpoint can tell whose it is.
pub fn access_token_for(sub: &str) -> String {
    format!(
        "at.{}.none",
        b64(json!({ "sub": sub }).to_string().as_bytes())
    )
}

/// The `at_hash` of an access token for an RS256/ES256 ID token: the left half of its SHA-256,
/// base64url.
pub fn at_hash(access_token: &str) -> String {
    let digest = <sha2::Sha256 as sha2::Digest>::digest(access_token.as_bytes());
    b64(&digest[..16])
}

/// The userinfo endpoint: the claims set for the access token's `sub` (the token is read, not
/// verified: idgate verified it before asking).
async fn userinfo(shared: web::Data<Shared>, req: actix_web::HttpRequest) -> HttpResponse {
    let mut s = shared.served();
    s.userinfo_calls += 1;
    if s.userinfo_down {
        return HttpResponse::ServiceUnavailable().finish();
    }
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let payload = token.split('.').nth(1).unwrap_or_default();
    let claims: Value =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
    match claims["sub"].as_str().and_then(|sub| s.userinfo.get(sub)) {
        Some(info) => HttpResponse::Ok().json(info),
        None => HttpResponse::Unauthorized().json(json!({ "error": "invalid_token" })),
    }
}

/// A running mock provider.
pub struct MockProvider {
    pub url: String,
    shared: web::Data<Shared>,
    handle: actix_web::dev::ServerHandle,
}

/// The audience of the mock's access tokens for idgate's API.
pub const API_AUDIENCE: &str = "https://docs.example.org/api";

/// The client id idgate is registered with at the mock provider, and its secret.
pub const CLIENT_ID: &str = "idgate-test";
pub const CLIENT_SECRET: &str = "test-secret";

impl MockProvider {
    /// Starts a provider that publishes `keys` (the first one signs the tokens it issues).
    pub async fn start(keys: Vec<TestKey>) -> MockProvider {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let url = format!("http://127.0.0.1:{port}");
        let shared = web::Data::new(Shared {
            base: url.clone(),
            served: Mutex::new(Served {
                keys,
                raw_keys: None,
                issuer: url.clone(),
                down: false,
                jwks_delay: None,
                cache_control: None,
                user: None,
                id_token_changes: json!({}),
                send_iss: true,
                authorize_error: None,
                codes: HashMap::new(),
                token_clients: Vec::new(),
                userinfo: HashMap::new(),
                userinfo_calls: 0,
                userinfo_down: false,
                jwks_body: None,
                end_session: false,
                claims_supported: None,
            }),
            jwks_fetches: AtomicUsize::new(0),
            discovery_fetches: AtomicUsize::new(0),
        });
        let data = shared.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route(
                    "/.well-known/openid-configuration",
                    web::get().to(discovery),
                )
                .route("/jwks", web::get().to(jwks))
                .route("/authorize", web::get().to(authorize))
                .route("/token", web::post().to(token))
                .route("/userinfo", web::get().to(userinfo))
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        MockProvider {
            url,
            shared,
            handle,
        }
    }

    fn served(&self) -> std::sync::MutexGuard<'_, Served> {
        self.shared.served()
    }

    /// Signs this person in at the authorization endpoint from now on.
    pub fn set_user(&self, email: &str, sub: &str) {
        self.served().user = Some((email.into(), sub.into()));
    }

    /// Changes the claims of the ID tokens the token endpoint issues.
    pub fn set_id_token_changes(&self, changes: Value) {
        self.served().id_token_changes = changes;
    }

    /// Whether authorization responses carry `iss`.
    pub fn set_send_iss(&self, send: bool) {
        self.served().send_iss = send;
    }

    /// Answers authorization requests with this error.
    pub fn set_authorize_error(&self, error: &str) {
        self.served().authorize_error = Some(error.into());
    }

    /// What the userinfo endpoint answers for `sub`.
    pub fn set_userinfo(&self, sub: &str, claims: Value) {
        self.served().userinfo.insert(sub.into(), claims);
    }

    /// Whether discovery names an end-session endpoint (`{url}/end-session`).
    pub fn set_end_session(&self, offered: bool) {
        self.served().end_session = offered;
    }

    /// The claims discovery lists as `claims_supported` (`None`: the member is left out).
    pub fn set_claims_supported(&self, claims: Option<&[&str]>) {
        self.served().claims_supported =
            claims.map(|c| c.iter().map(ToString::to_string).collect());
    }

    /// A back-channel logout token signed by `key`, for `aud`, with `claims` added (`null`
    /// removes one) to `iss`, `aud`, `iat`, `jti` and the back-channel logout event.
    pub fn logout_token(&self, key: &TestKey, aud: &str, now: i64, claims: Value) -> String {
        sign_token(
            key,
            &json!({"alg": key.alg(), "kid": key.kid, "typ": "logout+jwt"}),
            &self.logout_claims(aud, now, claims),
        )
    }

    /// The claims of [`MockProvider::logout_token`].
    pub fn logout_claims(&self, aud: &str, now: i64, claims: Value) -> Value {
        let mut all = json!({
            "iss": self.url, "aud": aud, "iat": now, "exp": now + 120,
            "jti": format!("{:016x}", rand::random::<u64>()),
            "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
        });
        if let (Value::Object(all), Value::Object(claims)) = (&mut all, claims) {
            for (name, value) in claims {
                if value.is_null() {
                    all.remove(&name);
                } else {
                    all.insert(name, value);
                }
            }
        }
        all
    }

    /// Serves these bytes as the JWKS (or, with `None`, the keys again).
    pub fn set_jwks_body(&self, body: Option<Vec<u8>>) {
        self.served().jwks_body = body;
    }

    /// Makes the userinfo endpoint answer 503 (or serve again).
    pub fn set_userinfo_down(&self, down: bool) {
        self.served().userinfo_down = down;
    }

    pub fn userinfo_calls(&self) -> usize {
        self.served().userinfo_calls
    }

    /// A JWT access token (RFC 9068) for `sub`, for idgate's API, valid five minutes from `now`.
    pub fn access_token(&self, key: &TestKey, sub: &str, now: i64, changes: Value) -> String {
        let mut claims = json!({
            "iss": self.url, "sub": sub, "aud": API_AUDIENCE, "client_id": CLIENT_ID,
            "scope": "documents:read", "iat": now, "exp": now + 300,
            "jti": format!("{:016x}", rand::random::<u64>()),
        });
        if let Value::Object(changes) = changes {
            for (name, value) in changes {
                claims[name] = value;
            }
        }
        sign_token(
            key,
            &json!({"alg": key.alg(), "kid": key.kid, "typ": "at+jwt"}),
            &claims,
        )
    }

    /// How each token request authenticated (`basic:ID` or `public:ID`).
    pub fn token_clients(&self) -> Vec<String> {
        self.served().token_clients.clone()
    }

    pub fn jwks_fetches(&self) -> usize {
        self.shared.jwks_fetches.load(Ordering::SeqCst)
    }

    pub fn discovery_fetches(&self) -> usize {
        self.shared.discovery_fetches.load(Ordering::SeqCst)
    }

    /// Publishes these keys from now on.
    pub fn publish(&self, keys: Vec<TestKey>) {
        self.served().keys = keys;
    }

    /// Publishes these JWKs exactly as given.
    pub fn publish_raw(&self, keys: Vec<Value>) {
        self.served().raw_keys = Some(keys);
    }

    /// Makes every document answer 503 (or serve again).
    pub fn set_down(&self, down: bool) {
        self.served().down = down;
    }

    /// Names another issuer in the discovery document.
    pub fn set_issuer(&self, issuer: &str) {
        self.served().issuer = issuer.into();
    }

    /// Holds each JWKS answer back this long (so concurrent requests pile up behind one fetch).
    pub fn set_jwks_delay(&self, delay: Duration) {
        self.served().jwks_delay = Some(delay);
    }

    pub fn set_cache_control(&self, value: &str) {
        self.served().cache_control = Some(value.into());
    }

    /// Standard claims for `email`, valid at `now` for five minutes.
    pub fn claims(&self, email: &str, now: i64) -> Value {
        json!({
            "iss": self.url,
            "sub": format!("sub-{email}"),
            "aud": CLIENT_ID,
            "email": email,
            "email_verified": true,
            "iat": now,
            "exp": now + 300,
            "jti": format!("{:016x}", rand::random::<u64>()),
        })
    }

    /// A token signed by `key` with its default algorithm.
    pub fn token(&self, key: &TestKey, claims: &Value) -> String {
        let header = json!({"alg": key.alg(), "kid": key.kid, "typ": "JWT"});
        sign_token(key, &header, claims)
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        drop(handle.stop(false));
    }
}

/// `header.payload.signature`, signed by `key` with the header's `alg`.
pub fn sign_token(key: &TestKey, header: &Value, claims: &Value) -> String {
    sign_claims_text(key, header, &claims.to_string())
}

/// [`sign_token`] with the claims as written (for hostile shapes a `Value` cannot hold, such as
/// a member given twice).
pub fn sign_claims_text(key: &TestKey, header: &Value, claims: &str) -> String {
    let alg = header["alg"].as_str().unwrap_or("RS256");
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.as_bytes())
    );
    let signature = key.sign(alg, input.as_bytes());
    format!("{input}.{}", b64(&signature))
}

/// A token assembled from raw parts (for hostile shapes).
pub fn raw_token(header: &str, claims: &str, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.as_bytes()),
        b64(claims.as_bytes()),
        b64(signature)
    )
}
