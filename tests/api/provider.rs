//! A mock OpenID provider: discovery and a JWKS on a random port, served by a real HTTP server,
//! with real RSA, EC and Ed25519 keys that sign real tokens. It counts what it serves and can
//! rotate its keys, go down, or answer slowly.

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
    Rsa(rsa::RsaPrivateKey),
    Ec(p256::ecdsa::SigningKey),
    Ed(ed25519_dalek::SigningKey),
}

fn pem(name: &str) -> String {
    std::fs::read_to_string(crate::helpers::repo_path(&format!(
        "tests/fixtures/keys/{name}.pem"
    )))
    .unwrap_or_else(|e| panic!("cannot read key {name}: {e}"))
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl TestKey {
    pub fn rsa(file: &str, kid: &str) -> TestKey {
        use rsa::pkcs8::DecodePrivateKey as _;
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(&pem(file)).expect("RSA key");
        TestKey {
            kid: kid.into(),
            kind: KeyKind::Rsa(key),
        }
    }

    pub fn ec(file: &str, kid: &str) -> TestKey {
        use p256::pkcs8::DecodePrivateKey as _;
        let key = p256::ecdsa::SigningKey::from_pkcs8_pem(&pem(file)).expect("EC key");
        TestKey {
            kid: kid.into(),
            kind: KeyKind::Ec(key),
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
            KeyKind::Rsa(key) => {
                use rsa::traits::PublicKeyParts as _;
                json!({"kty": "RSA", "kid": self.kid, "use": "sig",
                       "n": b64(&key.n().to_bytes_be()), "e": b64(&key.e().to_bytes_be())})
            }
            KeyKind::Ec(key) => {
                let point = key.verifying_key().to_sec1_point(false);
                json!({"kty": "EC", "kid": self.kid, "crv": "P-256", "use": "sig",
                       "x": b64(point.x().expect("x")), "y": b64(point.y().expect("y"))})
            }
            KeyKind::Ed(key) => json!({"kty": "OKP", "kid": self.kid, "crv": "Ed25519",
                                       "x": b64(key.verifying_key().as_bytes())}),
        }
    }

    /// The algorithm this key signs with by default.
    pub fn alg(&self) -> &'static str {
        match self.kind {
            KeyKind::Rsa(_) => "RS256",
            KeyKind::Ec(_) => "ES256",
            KeyKind::Ed(_) => "EdDSA",
        }
    }

    /// Signs `input` with `alg` (ES256 signatures are raw r‖s, as JWS requires).
    pub fn sign(&self, alg: &str, input: &[u8]) -> Vec<u8> {
        match &self.kind {
            KeyKind::Rsa(key) => {
                use rsa::signature::{RandomizedSigner as _, SignatureEncoding as _, Signer as _};
                let key = key.clone();
                let mut rng = rsa::rand_core::OsRng;
                match alg {
                    "RS256" => rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key)
                        .sign(input)
                        .to_vec(),
                    "RS384" => rsa::pkcs1v15::SigningKey::<sha2::Sha384>::new(key)
                        .sign(input)
                        .to_vec(),
                    "RS512" => rsa::pkcs1v15::SigningKey::<sha2::Sha512>::new(key)
                        .sign(input)
                        .to_vec(),
                    "PS256" => rsa::pss::SigningKey::<sha2::Sha256>::new(key)
                        .sign_with_rng(&mut rng, input)
                        .to_vec(),
                    other => panic!("an RSA key does not sign {other}"),
                }
            }
            KeyKind::Ec(key) => {
                use p256::ecdsa::signature::Signer as _;
                let signature: p256::ecdsa::Signature = key.sign(input);
                signature.to_bytes().to_vec()
            }
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
}

/// A running mock provider.
pub struct MockProvider {
    pub url: String,
    served: Arc<Mutex<Served>>,
    jwks_fetches: Arc<AtomicUsize>,
    discovery_fetches: Arc<AtomicUsize>,
    handle: actix_web::dev::ServerHandle,
}

/// The client id idgate is registered with at the mock provider.
pub const CLIENT_ID: &str = "idgate-test";

impl MockProvider {
    /// Starts a provider that publishes `keys`.
    pub async fn start(keys: Vec<TestKey>) -> MockProvider {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let url = format!("http://127.0.0.1:{port}");
        let served = Arc::new(Mutex::new(Served {
            keys,
            raw_keys: None,
            issuer: url.clone(),
            down: false,
            jwks_delay: None,
            cache_control: None,
        }));
        let jwks_fetches = Arc::new(AtomicUsize::new(0));
        let discovery_fetches = Arc::new(AtomicUsize::new(0));
        let (s, j, d, base) = (
            served.clone(),
            jwks_fetches.clone(),
            discovery_fetches.clone(),
            url.clone(),
        );
        let server = HttpServer::new(move || {
            let (s1, d1, base1) = (s.clone(), d.clone(), base.clone());
            let (s2, j2) = (s.clone(), j.clone());
            App::new()
                .route(
                    "/.well-known/openid-configuration",
                    web::get().to(move || {
                        let (served, count, base) = (s1.clone(), d1.clone(), base1.clone());
                        async move {
                            count.fetch_add(1, Ordering::SeqCst);
                            let (down, issuer) = {
                                let s = served.lock().expect("lock");
                                (s.down, s.issuer.clone())
                            };
                            if down {
                                return HttpResponse::ServiceUnavailable().finish();
                            }
                            HttpResponse::Ok().json(json!({
                                "issuer": issuer,
                                "authorization_endpoint": format!("{base}/authorize"),
                                "token_endpoint": format!("{base}/token"),
                                "userinfo_endpoint": format!("{base}/userinfo"),
                                "jwks_uri": format!("{base}/jwks"),
                                "response_types_supported": ["code", "id_token"],
                                "subject_types_supported": ["public"],
                                "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
                            }))
                        }
                    }),
                )
                .route(
                    "/jwks",
                    web::get().to(move || {
                        let (served, count) = (s2.clone(), j2.clone());
                        async move {
                            count.fetch_add(1, Ordering::SeqCst);
                            let (down, delay, cache_control, keys) = {
                                let s = served.lock().expect("lock");
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
                    }),
                )
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        MockProvider {
            url,
            served,
            jwks_fetches,
            discovery_fetches,
            handle,
        }
    }

    pub fn jwks_fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }

    pub fn discovery_fetches(&self) -> usize {
        self.discovery_fetches.load(Ordering::SeqCst)
    }

    /// Publishes these keys from now on.
    pub fn publish(&self, keys: Vec<TestKey>) {
        self.served.lock().expect("lock").keys = keys;
    }

    /// Publishes these JWKs exactly as given.
    pub fn publish_raw(&self, keys: Vec<Value>) {
        self.served.lock().expect("lock").raw_keys = Some(keys);
    }

    /// Makes every document answer 503 (or serve again).
    pub fn set_down(&self, down: bool) {
        self.served.lock().expect("lock").down = down;
    }

    /// Names another issuer in the discovery document.
    pub fn set_issuer(&self, issuer: &str) {
        self.served.lock().expect("lock").issuer = issuer.into();
    }

    /// Holds each JWKS answer back this long (so concurrent requests pile up behind one fetch).
    pub fn set_jwks_delay(&self, delay: Duration) {
        self.served.lock().expect("lock").jwks_delay = Some(delay);
    }

    pub fn set_cache_control(&self, value: &str) {
        self.served.lock().expect("lock").cache_control = Some(value.into());
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
    let alg = header["alg"].as_str().unwrap_or("RS256");
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
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
