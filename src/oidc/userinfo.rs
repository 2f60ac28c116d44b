//! The userinfo endpoint: where a Bearer access token's email comes from, since
//! access tokens carry authorization claims, not the email; and a sign-in's, when the provider
//! releases the email there only (`emailSource`). Answers are cached per
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
type Slot = Arc<tokio::sync::Mutex<Entry>>;

/// What is known of one subject.
#[derive(Debug, Default)]
enum Entry {
    #[default]
    Unknown,
    /// The email and when it was fetched.
    Known(Email, i64),
    /// The provider could not be asked, at this time: the waiters behind a failed lookup do
    /// not each try again for [`RETRY_AFTER_SECS`].
    Unavailable(String, i64),
}

/// How long a failed lookup is answered from memory.
const RETRY_AFTER_SECS: i64 = 10;

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

    /// Forgets every answer (after a reload: providers and their rules may have changed).
    pub fn clear(&self) {
        let mut slots = match self.slots.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        slots.cache_clear();
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
        // Keyed by the issuer, not the provider's id, which a reload may point elsewhere.
        // And by the provider entry, whose rules (`requireVerifiedEmail`) checked the email.
        let slot = self.slot((
            format!("{} {}", provider.id, access.issuer),
            access.subject.clone(),
        ));
        let mut entry = slot.lock().await;
        let now = self.clock.now();
        match &*entry {
            Entry::Known(email, fetched_at)
                if now.saturating_sub(*fetched_at) < USERINFO_TTL_SECS =>
            {
                self.metrics.cache("userinfo", true);
                return Ok(email.clone());
            }
            Entry::Unavailable(reason, failed_at)
                if now.saturating_sub(*failed_at) < RETRY_AFTER_SECS =>
            {
                return Err(VerifyError::Unavailable(reason.clone()));
            }
            _ => {}
        }
        self.metrics.cache("userinfo", false);
        let result = self.lookup(keys, provider, access, raw_token).await;
        match &result {
            Ok(email) => *entry = Entry::Known(email.clone(), now),
            Err(VerifyError::Unavailable(reason)) => {
                *entry = Entry::Unavailable(reason.clone(), now)
            }
            Err(VerifyError::Refused(..)) => *entry = Entry::Unknown,
        }
        result
    }

    async fn lookup(
        &self,
        keys: &KeyStore,
        provider: &Provider,
        access: &VerifiedAccess,
        raw_token: &str,
    ) -> Result<Email, VerifyError> {
        let set = keys
            .keys(provider)
            .await
            .map_err(|e| VerifyError::Unavailable(e.to_string()))?;
        let endpoint = set.metadata.userinfo_endpoint.as_deref().ok_or_else(|| {
            VerifyError::Unavailable(format!("{} has no userinfo_endpoint", provider.id))
        })?;
        self.metrics.fetch(&provider.id, "userinfo");
        let claims = fetch(keys.fetcher(), endpoint, raw_token).await?;
        check_subject(&claims, &access.subject)?;
        Ok(verify::check_email(&claims, provider)?)
    }
}

/// The email of the person an ID token names, asked of the provider's userinfo endpoint with the
/// access token of the same sign-in: never cached (one request per sign-in). The answer's `sub`
/// must be the ID token's, and its email passes the same rules as an ID token's.
pub async fn email_for_sign_in(
    keys: &KeyStore,
    provider: &Provider,
    metadata: &super::keys::Metadata,
    subject: Option<&str>,
    access_token: &str,
) -> Result<Email, VerifyError> {
    let endpoint = metadata.userinfo_endpoint.as_deref().ok_or_else(|| {
        VerifyError::Refused(
            Reason::BadEmail,
            Some(format!("{} has no userinfo_endpoint", provider.id)),
        )
    })?;
    // RFC 6750's token characters only: anything else is no access token (and could not be
    // sent in a header).
    let plausible = !access_token.is_empty()
        && access_token.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
        });
    if !plausible {
        return Err(VerifyError::Refused(
            Reason::BadEmail,
            Some("the access token is not a token".into()),
        ));
    }
    keys.metrics().fetch(&provider.id, "userinfo");
    let claims = fetch(keys.fetcher(), endpoint, access_token)
        .await
        .map_err(|error| match error {
            // The provider does not take the access token: no email can be had with it.
            VerifyError::Refused(_, detail) => VerifyError::Refused(Reason::BadEmail, detail),
            unavailable => unavailable,
        })?;
    check_subject(&claims, subject.unwrap_or_default())?;
    Ok(verify::check_email(&claims, provider)?)
}

/// A userinfo answer is about the token's subject, or about someone else.
fn check_subject(claims: &Map<String, Value>, subject: &str) -> Result<(), VerifyError> {
    match claims.get("sub") {
        Some(Value::String(sub)) if !subject.is_empty() && sub == subject => Ok(()),
        _ => Err(VerifyError::Refused(
            Reason::IdentityMismatch,
            Some("the userinfo sub is not the token's".into()),
        )),
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
                status: 400 | 401 | 403,
                ..
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
