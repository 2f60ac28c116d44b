//! Provider metadata and signing keys: discovery, the JWKS, and the cache that keeps them.
//!
//! The openidconnect crate verifies signatures but never refreshes keys, so the cache is here:
//! - documents are kept for their `Cache-Control` max-age (clamped 1 min … 24 h, 1 h by default);
//! - a token naming an unknown key refetches the JWKS at most once per 5 s per provider, and
//!   concurrent requests that need that refetch wait for the one fetch and share its result;
//! - while the provider is unreachable or answers unusably, the last good keys stay in use for
//!   24 h past their expiry;
//! - a new JWKS replaces the old one whole, so a key it no longer lists stops working at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use openidconnect::core::CoreProviderMetadata;
use serde::Deserialize;
use serde_json::Value;

use super::http::{FetchError, Fetcher};
pub use super::jwk::SigningKey;
use crate::clock::Clock;
use crate::identity::{Provider, TENANT_PLACEHOLDER};
use crate::metrics::Metrics;

/// The shortest time between two JWKS fetches of one provider, in seconds.
pub const REFETCH_INTERVAL_SECS: i64 = 5;
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
    /// `id_token_signing_alg_values_supported`.
    pub signing_algs: Vec<String>,
    /// `claims_supported`, when the document lists it.
    pub claims_supported: Option<Vec<String>>,
    /// Where a person signs out at the provider (RP-Initiated Logout 1.0), if it says.
    pub end_session_endpoint: Option<String>,
}

impl Metadata {
    /// The end-session endpoint (RP-Initiated Logout 1.0), when the document names a valid URL.
    pub fn end_session_url(&self) -> Option<url::Url> {
        url::Url::parse(self.end_session_endpoint.as_deref()?).ok()
    }
}

/// Whether an ID token may travel to `url` (as `id_token_hint`): only over https, or to a
/// provider on this very machine.
pub fn may_receive_id_token(url: &url::Url) -> bool {
    url.scheme() == "https" || crate::identity::is_on_this_machine(url)
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
            .filter(|k| kid.is_none_or(|kid| k.kid() == Some(kid)));
        match (fitting.next(), fitting.next()) {
            (None, _) => KeyLookup::Missing,
            (Some(key), None) => KeyLookup::Found(key),
            (Some(_), Some(_)) => KeyLookup::Ambiguous,
        }
    }

    /// Whether some key may verify signatures made with `alg`.
    pub fn has_key_for(&self, alg: &str) -> bool {
        self.keys.iter().any(|k| k.fits(alg))
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
    /// When the JWKS was last fetched (or a fetch attempted), for the refetch window.
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

/// What `GET /readyz` says of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderStatus {
    /// Keys are cached and usable.
    Ok,
    /// Nothing fetched yet (no sign-in has needed the provider).
    NeverFetched,
    /// The last attempt failed and no usable keys are cached.
    Unreachable,
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

    /// What is known of the provider's keys, for `GET /readyz`: usable keys, a last attempt
    /// that failed with none usable, or no attempt yet.
    pub fn status(&self, provider: &Provider) -> ProviderStatus {
        let cache = self.cache(provider);
        let now = self.inner.clock.now();
        if usable(&cache.current(), now).is_some() {
            return ProviderStatus::Ok;
        }
        // A refresh under way holds the state: not known to have failed yet.
        match cache.refresh.try_lock() {
            Ok(state) if state.last_error.is_some() || state.last_attempt.is_some() => {
                ProviderStatus::Unreachable
            }
            _ => ProviderStatus::NeverFetched,
        }
    }

    /// The metrics provider requests are counted in.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
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
    /// JWKS was fetched less than [`REFETCH_INTERVAL_SECS`] ago; a refetch already under way is
    /// joined, not repeated.
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
            if want == Want::UnknownKey {
                let next = state
                    .last_attempt
                    .map_or(now, |at| at.saturating_add(REFETCH_INTERVAL_SECS));
                tracing::debug!(
                    provider = %provider.id,
                    next_allowed_at = %crate::clock::rfc3339(next),
                    "unknown key: the JWKS was fetched too recently to fetch it again"
                );
            }
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
    /// Stores the outcome of a fetch. A failure of any kind keeps the last good keys (for up to
    /// [`STALE_GRACE_SECS`] past their expiry).
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
                // Whatever went wrong (an outage, an answer too large or not JSON, another
                // issuer), the last good keys stay: one bad answer must not lock everyone out.
                match usable(&current, now) {
                    Some(keys) => {
                        tracing::warn!(provider = %provider.id, %error, "cannot refresh the provider's keys; using the last good ones");
                        Ok(keys)
                    }
                    None => {
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
        // A multi-tenant issuer (`…/{tenantid}/…`) is each token's tenant's, checked per token;
        // it needs `tenants`. Any other must be the configured authority.
        let matches = if issuer.contains(TENANT_PLACEHOLDER) {
            provider.tenants.is_some()
        } else {
            issuer.trim_end_matches('/') == provider.authority()
        };
        if !matches {
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
            signing_algs: parsed
                .id_token_signing_alg_values_supported()
                .iter()
                .filter_map(|alg| serde_json::to_value(alg).ok())
                .filter_map(|alg| alg.as_str().map(str::to_string))
                .collect(),
            claims_supported: parsed
                .claims_supported()
                .map(|claims| claims.iter().map(|c| c.as_str().to_string()).collect()),
            end_session_endpoint: extra.end_session_endpoint,
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
    /// RP-Initiated Logout 1.0.
    #[serde(default)]
    end_session_endpoint: Option<String>,
}

/// The keys of a JWKS document; keys idgate cannot read are skipped, as RFC 7517 asks.
fn parse_jwks(body: &[u8]) -> Result<Vec<SigningKey>, String> {
    #[derive(Deserialize)]
    struct Jwks {
        keys: Vec<Value>,
    }
    let jwks: Jwks = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut keys: Vec<SigningKey> = jwks
        .keys
        .into_iter()
        .filter_map(SigningKey::from_json)
        .collect();
    super::jwk::limit_es256_tables(&mut keys);
    Ok(keys)
}

#[cfg(test)]
mod tests;
