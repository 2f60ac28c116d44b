//! What a request needs, below the web layer: the running configuration, the database, the
//! provider keys and caches, the clock and the metrics. The sign-in rules take an [`AppState`]
//! and return domain values, so they run (and are tested) without an HTTP server.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::access::rate::RateLimiter;
use crate::clock::Clock;
use crate::db::sessions::Purged;
use crate::db::{self, Database, StoreError};
use crate::identity::IdentityConfig;
use crate::metrics::Metrics;
use crate::oidc::http::{FetchError, Fetcher};
use crate::oidc::keys::KeyStore;
use crate::oidc::userinfo::UserinfoCache;
use crate::sessions::SessionCache;
use crate::settings::Settings;

/// What every request handler shares.
#[derive(Debug)]
pub struct AppState {
    /// The running configuration; a reload swaps it in one atomic step. Shared, so that a
    /// sign-in's database work can check it as it stands when that work runs.
    pub config: Arc<ArcSwap<IdentityConfig>>,
    pub db: Database,
    pub settings: Settings,
    pub clock: Arc<dyn Clock>,
    /// Provider metadata and signing keys.
    pub keys: KeyStore,
    /// Userinfo answers for Bearer access tokens.
    pub userinfo: UserinfoCache,
    /// Live sessions read from the database in the last seconds.
    pub session_cache: SessionCache,
    /// Held while a reload reads and swaps the configuration.
    pub reload_lock: tokio::sync::Mutex<()>,
    /// The limit on anonymous writes per client address (`rateLimitPerMinute`).
    pub limiter: RateLimiter,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// The state of a service with this configuration and database; fails only when the HTTP
    /// client for identity providers cannot be built.
    pub fn new(
        settings: Settings,
        config: IdentityConfig,
        db: Database,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, FetchError> {
        let metrics = Arc::new(Metrics::new(Some(db.writer_counters())));
        let keys = KeyStore::new(Fetcher::new()?, clock.clone(), metrics.clone());
        let userinfo = UserinfoCache::new(clock.clone(), metrics.clone());
        let session_cache = SessionCache::new(settings.cookie.cache_secs);
        Ok(AppState {
            config: Arc::new(ArcSwap::from_pointee(config)),
            db,
            settings,
            clock,
            keys,
            userinfo,
            session_cache,
            reload_lock: tokio::sync::Mutex::new(()),
            limiter: RateLimiter::default(),
            metrics,
        })
    }

    /// Takes one anonymous write of `ip`'s allowance (see [`RateLimiter`]); `Err` says in how
    /// many seconds to try again. Requests without a known address are not limited.
    pub fn take_anonymous_write(&self, ip: Option<std::net::IpAddr>) -> Result<(), u64> {
        let per_minute = self.config.load().properties.rate_limit_per_minute;
        // An IPv6 client holds a whole /64: it is one address here.
        let key = ip.map(|ip| match ip {
            std::net::IpAddr::V6(v6) => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                std::net::IpAddr::from(segments)
            }
            v4 => v4,
        });
        match key {
            Some(ip) => self.limiter.take(ip, self.clock.now(), per_minute),
            None => Ok(()),
        }
    }

    /// Removes what has expired: timed-out sessions, used tokens past their expiry, unfinished
    /// login flows, unredeemed authentication codes, and security-log rows older than
    /// `securityLogDays`. Four transactions, none holding two kinds of rows a request takes in
    /// another order.
    pub async fn purge_expired(&self) -> Result<Purged, StoreError> {
        let now = self.clock.now();
        let properties = self.config.load().properties.clone();
        let idle_secs = properties.idle_secs();
        let store = &self.db;
        let mut purged = store
            .write(move |conn| db::sessions::purge_expired(conn, now, idle_secs))
            .await?;
        purged.flows = store
            .write(move |conn| db::flows::purge_flows(conn, now))
            .await?;
        purged.codes = store
            .write(move |conn| db::codes::purge_codes(conn, now))
            .await?;
        let before = now.saturating_sub(i64::from(properties.security_log_days) * 86_400);
        purged.events = store
            .write(move |conn| db::audit::purge_events(conn, before))
            .await?;
        Ok(purged)
    }
}
