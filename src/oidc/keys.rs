//! Provider metadata and signing keys: discovery, the JWKS, and the cache that keeps them.
//!
//! The openidconnect crate verifies signatures but never refreshes keys, so the cache is here:
//! - documents are kept for their `Cache-Control` max-age (clamped 1 min … 24 h, 1 h by default);
//! - a token naming an unknown key refetches the JWKS at most once per 30 s per provider, and
//!   concurrent requests that need that refetch wait for the one fetch and share its result;
//! - while the provider is unreachable, the last good keys stay in use for 24 h past their expiry;
//! - a new JWKS replaces the old one whole, so a key it no longer lists stops working at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreJsonWebKey, CoreProviderMetadata};
use serde::Deserialize;
use serde_json::Value;

use super::http::{FetchError, Fetcher};
use crate::clock::Clock;
use crate::identity::Provider;
use crate::metrics::Metrics;

/// The shortest time between two JWKS fetches of one provider, in seconds.
pub const REFETCH_INTERVAL_SECS: i64 = 30;
/// How long past their expiry the last good keys serve while the provider is unreachable.
pub const STALE_GRACE_SECS: i64 = 24 * 60 * 60;

/// Why no keys could be had for a provider.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeyError {
    /// The provider could not be reached (or sent an unusable document) and no keys are cached.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The discovery document names another issuer than the configured `authorityUrl`.
    #[error("the discovery document of {authority} names the issuer {issuer}")]
    IssuerMismatch { authority: String, issuer: String },
}

/// What idgate uses of a provider's discovery document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub issuer: String,
    pub jwks_uri: String,
    pub authorization_endpoint: String,
    pub token_endpoint: Option<String>,
    pub userinfo_endpoint: Option<String>,
    /// Whether authorization responses carry `iss` (RFC 9207), so that its absence is an error.
    pub iss_parameter_supported: bool,
}

/// One key of a JWKS: its selectors and its public key material, decoded once when the JWKS
/// is fetched, so that a verification does no parsing.
#[derive(Debug, Clone)]
pub struct SigningKey {
    kid: Option<String>,
    kty: String,
    crv: Option<String>,
    alg: Option<String>,
    key_use: Option<String>,
    material: Material,
}

/// Public key material in the form the verifier takes.
#[derive(Debug, Clone)]
enum Material {
    /// RSA modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// An uncompressed SEC1 point (`04 ‖ x ‖ y`).
    Ec(Vec<u8>),
    /// An Ed25519 public key.
    Okp(Vec<u8>),
}

#[derive(Deserialize)]
struct KeyMembers {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    key_use: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

impl SigningKey {
    /// A key from a JWKS member; `None` for keys idgate cannot use (RFC 7517 says to skip
    /// them). The openidconnect crate's JWK type must accept it too.
    fn from_json(value: Value) -> Option<Self> {
        let members = KeyMembers::deserialize(&value).ok()?;
        CoreJsonWebKey::deserialize(&value).ok()?;
        let bytes = |b64: &Option<String>| -> Option<Vec<u8>> {
            URL_SAFE_NO_PAD
                .decode(b64.as_deref()?)
                .ok()
                .filter(|b| !b.is_empty())
        };
        let material = match members.kty.as_str() {
            "RSA" => Material::Rsa {
                n: bytes(&members.n)?,
                e: bytes(&members.e)?,
            },
            "EC" => {
                let mut point = vec![0x04];
                point.extend(bytes(&members.x)?);
                point.extend(bytes(&members.y)?);
                Material::Ec(point)
            }
            "OKP" => Material::Okp(bytes(&members.x)?),
            _ => return None,
        };
        Some(SigningKey {
            kid: members.kid,
            kty: members.kty,
            crv: members.crv,
            alg: members.alg,
            key_use: members.key_use,
            material,
        })
    }

    /// Whether this key may verify a signature made with `alg`: a signing key (or one that does
    /// not say), of the type and curve `alg` needs, naming `alg` or no algorithm.
    pub fn fits(&self, alg: &str) -> bool {
        if self.key_use.as_deref().is_some_and(|u| u != "sig") {
            return false;
        }
        if self.alg.as_deref().is_some_and(|a| a != alg) {
            return false;
        }
        let crv = self.crv.as_deref();
        match alg {
            "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => self.kty == "RSA",
            "ES256" => self.kty == "EC" && crv == Some("P-256"),
            "ES384" => self.kty == "EC" && crv == Some("P-384"),
            "EdDSA" => self.kty == "OKP" && crv == Some("Ed25519"),
            _ => false,
        }
    }

    /// Verifies `signature` over `message` made with `alg` (one of the allow-list, which
    /// [`SigningKey::fits`] has matched to this key). RSA keys must have 2048 to 8192 bits;
    /// ECDSA signatures are the fixed `r ‖ s` form JWS uses.
    ///
    /// The work is done by `ring` (already in the build for TLS): the RustCrypto `rsa` crate
    /// behind openidconnect's `verify_signature` made RS256 verification the largest single
    /// cost of a sign-in (see `bench/README.md`).
    pub fn verify(&self, alg: &str, message: &[u8], signature: &[u8]) -> Result<(), String> {
        use ring::signature as sig;
        let bad = |_| {
            format!(
                "the {alg} signature does not verify with key {:?}",
                self.kid
            )
        };
        match (&self.material, alg) {
            (Material::Rsa { n, e }, _) => {
                let params: &sig::RsaParameters = match alg {
                    "RS256" => &sig::RSA_PKCS1_2048_8192_SHA256,
                    "RS384" => &sig::RSA_PKCS1_2048_8192_SHA384,
                    "RS512" => &sig::RSA_PKCS1_2048_8192_SHA512,
                    "PS256" => &sig::RSA_PSS_2048_8192_SHA256,
                    "PS384" => &sig::RSA_PSS_2048_8192_SHA384,
                    "PS512" => &sig::RSA_PSS_2048_8192_SHA512,
                    _ => return Err(format!("{alg} is not an RSA algorithm")),
                };
                sig::RsaPublicKeyComponents { n, e }
                    .verify(params, message, signature)
                    .map_err(bad)
            }
            (Material::Ec(point), "ES256") => {
                sig::UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, signature)
                    .map_err(bad)
            }
            (Material::Ec(point), "ES384") => {
                sig::UnparsedPublicKey::new(&sig::ECDSA_P384_SHA384_FIXED, point)
                    .verify(message, signature)
                    .map_err(bad)
            }
            (Material::Okp(x), "EdDSA") => sig::UnparsedPublicKey::new(&sig::ED25519, x)
                .verify(message, signature)
                .map_err(bad),
            _ => Err(format!("a {} key does not verify {alg}", self.kty)),
        }
    }
}

/// A provider's metadata and keys as fetched together at one time.
#[derive(Debug)]
pub struct KeySet {
    pub metadata: Arc<Metadata>,
    keys: Vec<SigningKey>,
    /// When the JWKS stops being fresh (Unix seconds).
    expires_at: i64,
}

/// The outcome of looking a key up.
#[derive(Debug)]
pub enum KeyLookup<'a> {
    Found(&'a SigningKey),
    /// No key has that `kid` (or, without `kid`, no key fits): a refetch may find it.
    Missing,
    /// Without `kid`, several keys fit: the token cannot say which.
    Ambiguous,
}

impl KeySet {
    /// The key for a token: the one whose `kid` matches and that fits `alg`; without `kid`, the
    /// only key that fits `alg`.
    pub fn find(&self, kid: Option<&str>, alg: &str) -> KeyLookup<'_> {
        let mut fitting = self
            .keys
            .iter()
            .filter(|k| k.fits(alg))
            .filter(|k| kid.is_none_or(|kid| k.kid.as_deref() == Some(kid)));
        match (fitting.next(), fitting.next()) {
            (None, _) => KeyLookup::Missing,
            (Some(key), None) => KeyLookup::Found(key),
            (Some(_), Some(_)) => KeyLookup::Ambiguous,
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The cache of one authority.
#[derive(Debug, Default)]
struct ProviderCache {
    current: RwLock<Option<Arc<KeySet>>>,
    /// Held while deciding and fetching, so that concurrent requests share one fetch.
    refresh: Arc<tokio::sync::Mutex<RefreshState>>,
}

#[derive(Debug, Default)]
struct RefreshState {
    /// When the JWKS was last fetched (or a fetch attempted), for the 30-second window.
    last_attempt: Option<i64>,
    /// Why the last attempt failed, answered while the window is closed and nothing is cached.
    last_error: Option<KeyError>,
    /// The discovery document and when it stops being fresh.
    metadata: Option<(Arc<Metadata>, i64)>,
}

impl ProviderCache {
    fn current(&self) -> Option<Arc<KeySet>> {
        self.current.read().map_or(None, |guard| guard.clone())
    }

    fn set(&self, keys: Option<Arc<KeySet>>) {
        if let Ok(mut guard) = self.current.write() {
            *guard = keys;
        }
    }
}

/// Why a refresh is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Nothing is cached, or what is cached has expired.
    Fresh,
    /// A token names a key the cached JWKS lacks.
    UnknownKey,
}

/// Metadata and keys of every provider, shared by all requests (cheap to clone).
#[derive(Debug, Clone)]
pub struct KeyStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    fetcher: Fetcher,
    clock: Arc<dyn Clock>,
    caches: Mutex<HashMap<String, Arc<ProviderCache>>>,
    metrics: Arc<Metrics>,
}

impl KeyStore {
    pub fn new(fetcher: Fetcher, clock: Arc<dyn Clock>, metrics: Arc<Metrics>) -> Self {
        KeyStore {
            inner: Arc::new(Inner {
                fetcher,
                clock,
                caches: Mutex::new(HashMap::new()),
                metrics,
            }),
        }
    }

    /// The HTTP client for provider requests.
    pub fn fetcher(&self) -> &Fetcher {
        &self.inner.fetcher
    }

    fn cache(&self, provider: &Provider) -> Arc<ProviderCache> {
        let mut caches = match self.inner.caches.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        caches
            .entry(provider.authority().to_string())
            .or_default()
            .clone()
    }

    /// The provider's keys: the cached ones while fresh, else a refresh (or, when the provider is
    /// unreachable, the last good keys for up to 24 h past their expiry).
    pub async fn keys(&self, provider: &Provider) -> Result<Arc<KeySet>, KeyError> {
        let cache = self.cache(provider);
        let seen = cache.current();
        if let Some(keys) = &seen
            && self.inner.clock.now() < keys.expires_at
        {
            self.inner.metrics.cache("keys", true);
            return Ok(keys.clone());
        }
        self.inner.metrics.cache("keys", false);
        self.refresh(cache, provider, seen, Want::Fresh).await
    }

    /// The provider's keys after a token named a key that `seen` lacks: refetched unless the
    /// JWKS was fetched less than 30 s ago; a refetch already under way is joined, not repeated.
    pub async fn keys_after_unknown_key(
        &self,
        provider: &Provider,
        seen: &Arc<KeySet>,
    ) -> Result<Arc<KeySet>, KeyError> {
        let cache = self.cache(provider);
        self.refresh(cache, provider, Some(seen.clone()), Want::UnknownKey)
            .await
    }

    async fn refresh(
        &self,
        cache: Arc<ProviderCache>,
        provider: &Provider,
        seen: Option<Arc<KeySet>>,
        want: Want,
    ) -> Result<Arc<KeySet>, KeyError> {
        let mut state = cache.refresh.clone().lock_owned().await;
        let current = cache.current();
        let now = self.inner.clock.now();
        // Another request refreshed while this one waited: use its result.
        let replaced = match (&current, &seen) {
            (Some(c), Some(s)) => !Arc::ptr_eq(c, s),
            (Some(_), None) => true,
            _ => false,
        };
        if replaced && let Some(keys) = usable(&current, now) {
            let fresh_enough = want == Want::UnknownKey || now < keys.expires_at;
            if fresh_enough {
                return Ok(keys);
            }
        }
        let window_open = state
            .last_attempt
            .is_none_or(|at| now.saturating_sub(at) >= REFETCH_INTERVAL_SECS);
        if !window_open {
            return match (usable(&current, now), state.last_error.clone()) {
                (Some(keys), _) => Ok(keys),
                (None, Some(error)) => Err(error),
                (None, None) => Err(KeyError::Fetch(FetchError::Unreachable {
                    url: provider.authority().to_string(),
                    reason: "no keys fetched yet".into(),
                })),
            };
        }
        state.last_attempt = Some(now);
        // The fetch runs as a task of its own, holding the refresh lock: a request that gives
        // up waiting (its client went away) does not abandon the fetch the others wait for.
        let (inner, provider) = (self.inner.clone(), provider.clone());
        let task = tokio::spawn(async move {
            let result = inner.fetch(&provider, &mut state, now).await;
            inner.settle(&cache, &provider, &mut state, current, result, now, want)
        });
        task.await.unwrap_or_else(|e| {
            Err(KeyError::Fetch(FetchError::Unreachable {
                url: String::new(),
                reason: format!("the key refresh did not finish: {e}"),
            }))
        })
    }
}

/// The keys, if they are within their lifetime plus the grace for outages.
fn usable(keys: &Option<Arc<KeySet>>, now: i64) -> Option<Arc<KeySet>> {
    keys.as_ref()
        .filter(|k| now < k.expires_at.saturating_add(STALE_GRACE_SECS))
        .cloned()
}

impl Inner {
    /// Stores the outcome of a fetch. A failure keeps the last good keys only when the
    /// provider is unreachable (network error, 5xx, 429); a provider that answers with another
    /// issuer, an unusable document or a 4xx loses its cached keys at once.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site, all parts of one refresh"
    )]
    fn settle(
        &self,
        cache: &ProviderCache,
        provider: &Provider,
        state: &mut RefreshState,
        current: Option<Arc<KeySet>>,
        result: Result<KeySet, KeyError>,
        now: i64,
        want: Want,
    ) -> Result<Arc<KeySet>, KeyError> {
        match result {
            Ok(keys) => {
                state.last_error = None;
                let keys = Arc::new(keys);
                cache.set(Some(keys.clone()));
                tracing::info!(
                    provider = %provider.id,
                    keys = keys.len(),
                    reason = ?want,
                    "fetched the provider's keys"
                );
                Ok(keys)
            }
            Err(error) => {
                state.last_error = Some(error.clone());
                let outage = matches!(&error, KeyError::Fetch(e) if e.is_outage());
                match usable(&current, now).filter(|_| outage) {
                    Some(keys) => {
                        tracing::warn!(provider = %provider.id, %error, "cannot refresh the provider's keys; using the last good ones");
                        Ok(keys)
                    }
                    None => {
                        if !outage {
                            cache.set(None);
                            state.metadata = None;
                        }
                        tracing::warn!(provider = %provider.id, %error, "cannot fetch the provider's keys");
                        Err(error)
                    }
                }
            }
        }
    }

    /// Fetches discovery (unless still fresh) and the JWKS.
    async fn fetch(
        &self,
        provider: &Provider,
        state: &mut RefreshState,
        now: i64,
    ) -> Result<KeySet, KeyError> {
        let metadata = match &state.metadata {
            Some((metadata, expires_at)) if now < *expires_at => metadata.clone(),
            _ => {
                let (metadata, ttl) = self.discover(provider).await?;
                let metadata = Arc::new(metadata);
                state.metadata = Some((metadata.clone(), now.saturating_add(ttl)));
                metadata
            }
        };
        self.metrics.fetch(&provider.id, "jwks");
        let fetched = self.fetcher.get(&metadata.jwks_uri).await?;
        let keys = parse_jwks(&fetched.body).map_err(|reason| FetchError::Invalid {
            url: metadata.jwks_uri.clone(),
            reason,
        })?;
        Ok(KeySet {
            metadata,
            keys,
            expires_at: now.saturating_add(fetched.ttl_secs),
        })
    }

    async fn discover(&self, provider: &Provider) -> Result<(Metadata, i64), KeyError> {
        let url = format!("{}/.well-known/openid-configuration", provider.authority());
        self.metrics.fetch(&provider.id, "discovery");
        let fetched = self.fetcher.get(&url).await?;
        let invalid = |reason: String| FetchError::Invalid {
            url: url.clone(),
            reason,
        };
        let parsed: CoreProviderMetadata =
            serde_json::from_slice(&fetched.body).map_err(|e| invalid(e.to_string()))?;
        let extra: ExtraMetadata =
            serde_json::from_slice(&fetched.body).map_err(|e| invalid(e.to_string()))?;
        let issuer = parsed.issuer().as_str();
        if issuer.trim_end_matches('/') != provider.authority() {
            return Err(KeyError::IssuerMismatch {
                authority: provider.authority().to_string(),
                issuer: issuer.to_string(),
            });
        }
        let metadata = Metadata {
            issuer: issuer.to_string(),
            jwks_uri: parsed.jwks_uri().as_str().to_string(),
            authorization_endpoint: parsed.authorization_endpoint().as_str().to_string(),
            token_endpoint: parsed.token_endpoint().map(|u| u.as_str().to_string()),
            userinfo_endpoint: parsed.userinfo_endpoint().map(|u| u.as_str().to_string()),
            iss_parameter_supported: extra
                .authorization_response_iss_parameter_supported
                .unwrap_or(false),
        };
        Ok((metadata, fetched.ttl_secs))
    }
}

/// Discovery members the crate's metadata type does not carry.
#[derive(Deserialize)]
struct ExtraMetadata {
    /// RFC 9207: the provider sends `iss` with every authorization response.
    #[serde(default)]
    authorization_response_iss_parameter_supported: Option<bool>,
}

/// The keys of a JWKS document; keys idgate cannot read are skipped, as RFC 7517 asks.
fn parse_jwks(body: &[u8]) -> Result<Vec<SigningKey>, String> {
    #[derive(Deserialize)]
    struct Jwks {
        keys: Vec<Value>,
    }
    let jwks: Jwks = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(jwks
        .keys
        .into_iter()
        .filter_map(SigningKey::from_json)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(json: &str) -> SigningKey {
        serde_json::from_str(json)
            .ok()
            .and_then(SigningKey::from_json)
            .unwrap_or_else(|| unreachable!("bad test key {json}"))
    }

    const RSA: &str = r#"{"kty":"RSA","kid":"r1","n":"AQAB","e":"AQAB"}"#;
    const P256: &str = r#"{"kty":"EC","kid":"e1","crv":"P-256","x":"AA","y":"AA"}"#;
    const P384: &str = r#"{"kty":"EC","kid":"e2","crv":"P-384","x":"AA","y":"AA"}"#;
    const ED: &str = r#"{"kty":"OKP","kid":"d1","crv":"Ed25519","x":"AA"}"#;

    #[test]
    fn keys_fit_only_the_algorithms_of_their_type_and_curve() {
        assert!(key(RSA).fits("RS256") && key(RSA).fits("PS512"));
        assert!(!key(RSA).fits("ES256"));
        assert!(key(P256).fits("ES256") && !key(P256).fits("ES384"));
        assert!(key(P384).fits("ES384") && !key(P384).fits("ES256"));
        assert!(key(ED).fits("EdDSA") && !key(ED).fits("ES256"));
        let named = key(r#"{"kty":"RSA","alg":"RS512","n":"AQAB","e":"AQAB"}"#);
        assert!(named.fits("RS512") && !named.fits("RS256"));
        let encryption = key(r#"{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"}"#);
        assert!(!encryption.fits("RS256"));
    }

    #[test]
    fn a_token_without_kid_needs_exactly_one_fitting_key() {
        let set = |keys: &[&str]| KeySet {
            metadata: Arc::new(Metadata {
                issuer: String::new(),
                jwks_uri: String::new(),
                authorization_endpoint: String::new(),
                token_endpoint: None,
                userinfo_endpoint: None,
                iss_parameter_supported: false,
            }),
            keys: keys.iter().map(|k| key(k)).collect(),
            expires_at: 0,
        };
        let one = set(&[RSA, P256]);
        assert!(matches!(one.find(None, "RS256"), KeyLookup::Found(_)));
        assert!(matches!(one.find(Some("r1"), "RS256"), KeyLookup::Found(_)));
        assert!(matches!(one.find(Some("e1"), "RS256"), KeyLookup::Missing));
        assert!(matches!(one.find(Some("zz"), "ES256"), KeyLookup::Missing));
        let two = set(&[RSA, r#"{"kty":"RSA","kid":"r2","n":"AQAB","e":"AQAB"}"#]);
        assert!(matches!(two.find(None, "RS256"), KeyLookup::Ambiguous));
        assert!(matches!(two.find(Some("r2"), "RS256"), KeyLookup::Found(_)));
    }

    #[test]
    fn unreadable_keys_are_skipped() {
        let body = br#"{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"},{"nokty":1},{"kty":"XYZ"}]}"#;
        assert_eq!(parse_jwks(body).map(|k| k.len()), Ok(1));
        assert!(parse_jwks(b"[]").is_err());
    }
}
