//! The userinfo endpoint (SPEC §5): where a Bearer access token's email comes from, since
//! access tokens carry authorization claims, not the email. Answers are cached per
//! (provider, `sub`) for 5 minutes, and concurrent lookups of one key share one request, so a
//! busy API does not call the provider on every request.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cached::{Cached as _, LruTtlCache};
use serde_json::{Map, Value};

use super::http::Fetcher;
use super::keys::KeyStore;
use super::verify::{self, VerifiedAccess, VerifyError};
use crate::clock::Clock;
use crate::identity::Provider;
use crate::members::Email;
use crate::metrics::Metrics;
use crate::reason::Reason;

/// How long a userinfo answer is used, in seconds.
pub const USERINFO_TTL_SECS: i64 = 5 * 60;
/// How many (provider, `sub`) answers are kept at most.
const CAPACITY: usize = 50_000;

type Key = (String, String);
/// One key's answer, or the lookup under way: concurrent lookups wait on the lock.
type Slot = Arc<tokio::sync::Mutex<Option<(Email, i64)>>>;

/// The userinfo cache.
pub struct UserinfoCache {
    slots: Mutex<LruTtlCache<Key, Slot>>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for UserinfoCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserinfoCache").finish_non_exhaustive()
    }
}

impl UserinfoCache {
    pub fn new(clock: Arc<dyn Clock>, metrics: Arc<Metrics>) -> Self {
        let ttl = Duration::from_secs(USERINFO_TTL_SECS.unsigned_abs());
        UserinfoCache {
            slots: Mutex::new(LruTtlCache::new(CAPACITY, ttl)),
            clock,
            metrics,
        }
    }

    fn slot(&self, key: Key) -> Slot {
        let mut slots = match self.slots.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        slots.cache_get_or_set_with(key, Slot::default).clone()
    }

    /// The checked email of the token's subject: from the cache while fresh, else from the
    /// provider's userinfo endpoint (whose `sub` must be the token's).
    pub async fn email(
        &self,
        keys: &KeyStore,
        provider: &Provider,
        access: &VerifiedAccess,
        raw_token: &str,
    ) -> Result<Email, VerifyError> {
        let slot = self.slot((access.provider.clone(), access.subject.clone()));
        let mut entry = slot.lock().await;
        let now = self.clock.now();
        if let Some((email, fetched_at)) = &*entry
            && now.saturating_sub(*fetched_at) < USERINFO_TTL_SECS
        {
            self.metrics.cache("userinfo", true);
            return Ok(email.clone());
        }
        self.metrics.cache("userinfo", false);
        let set = keys
            .keys(provider)
            .await
            .map_err(|e| VerifyError::Unavailable(e.to_string()))?;
        let endpoint = set.metadata.userinfo_endpoint.as_deref().ok_or_else(|| {
            VerifyError::Unavailable(format!("{} has no userinfo_endpoint", provider.id))
        })?;
        self.metrics.fetch(&provider.id, "userinfo");
        let claims = fetch(keys.fetcher(), endpoint, raw_token).await?;
        match claims.get("sub") {
            Some(Value::String(sub)) if *sub == access.subject => {}
            _ => {
                return Err(VerifyError::Refused(
                    Reason::IdentityMismatch,
                    Some("the userinfo sub is not the access token's".into()),
                ));
            }
        }
        let email = verify::check_email(&claims, provider)?;
        *entry = Some((email.clone(), now));
        Ok(email)
    }
}

async fn fetch(
    fetcher: &Fetcher,
    endpoint: &str,
    raw_token: &str,
) -> Result<Map<String, Value>, VerifyError> {
    let fetched = fetcher
        .get_with_bearer(endpoint, raw_token)
        .await
        .map_err(|e| match e {
            // The provider refused the token (revoked, say): the caller's problem, not ours.
            // The provider no longer accepts the token (revoked, say).
            super::http::FetchError::Status {
                status: 401 | 403, ..
            } => VerifyError::Refused(Reason::Expired, Some(e.to_string())),
            other => VerifyError::Unavailable(other.to_string()),
        })?;
    match serde_json::from_slice(&fetched.body) {
        Ok(Value::Object(claims)) => Ok(claims),
        _ => Err(VerifyError::Unavailable(format!(
            "{endpoint} sent an answer that is not a JSON object"
        ))),
    }
}
