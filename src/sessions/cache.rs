//! A short in-process cache of live sessions, so that most session checks (`/auth` behind a
//! proxy sees every request) need no database round trip. An entry is used for at most
//! `--session-cache` seconds (2 by default, 0 turns the cache off): a logout on this instance
//! removes its entry at once; a logout, a revocation or a lock elsewhere (another instance, the
//! command line) is honoured within that time, well inside the 5 seconds allowed for that.

use std::sync::Mutex;
use std::time::Duration;

use cached::{Cached as _, LruTtlCache};

use super::Session;

/// How many sessions are kept at most.
const CAPACITY: usize = 100_000;

/// The cache; keyed by the SHA-256 of the session id.
pub struct SessionCache {
    entries: Mutex<LruTtlCache<String, (Session, i64)>>,
    ttl_secs: i64,
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache")
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

impl SessionCache {
    pub fn new(ttl_secs: i64) -> Self {
        let lifespan = Duration::from_secs(ttl_secs.clamp(1, 60).unsigned_abs());
        SessionCache {
            entries: Mutex::new(LruTtlCache::new(CAPACITY, lifespan)),
            ttl_secs,
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, LruTtlCache<String, (Session, i64)>> {
        match self.entries.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The session, if it was read from the database less than the cache time ago (by the
    /// injectable clock, `now`).
    pub fn get(&self, id_hash: &str, now: i64) -> Option<Session> {
        if self.ttl_secs <= 0 {
            return None;
        }
        let mut entries = self.entries();
        match entries.cache_get(id_hash) {
            Some((session, read_at)) if now.saturating_sub(*read_at) < self.ttl_secs => {
                Some(session.clone())
            }
            _ => None,
        }
    }

    /// Remembers a live session as read from the database at `now`.
    pub fn put(&self, session: &Session, now: i64) {
        if self.ttl_secs > 0 {
            self.entries()
                .cache_set(session.id_hash.clone(), (session.clone(), now));
        }
    }

    /// Forgets a session (it ended here).
    pub fn forget(&self, id_hash: &str) {
        let _ = self.entries().cache_remove(id_hash);
    }
}
