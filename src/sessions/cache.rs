//! A short in-process cache of live sessions, so that most session checks (`/auth` behind a
//! proxy sees every request) need no database round trip. An entry is used for at most
//! `--session-cache` seconds (2 by default, 0 turns the cache off): a logout on this instance
//! removes its entry at once; a logout, a revocation or a lock elsewhere (another instance, the
//! command line) is honoured within that time, well inside the 5 seconds allowed for that.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use super::Session;

/// How many sessions are kept at most: with entries used for 2 s, that is 5,000 distinct
/// sessions a second before the oldest give way.
const CAPACITY: usize = 10_000;

/// The cache; keyed by the SHA-256 of the session id. Entries leave by time (oldest first, on
/// every `put`) and by number, so that memory follows the sessions of the last seconds, not every
/// session ever checked.
pub struct SessionCache {
    inner: Mutex<Entries>,
    ttl_secs: i64,
}

#[derive(Default)]
struct Entries {
    /// The session and when it was read from the database (Unix seconds, the injectable clock).
    by_id: HashMap<String, (Session, i64)>,
    /// Ids in the order they were put, with the time they were put (an id put again appears
    /// twice; the older mention is skipped when it comes up).
    order: VecDeque<(String, i64)>,
}

impl Entries {
    /// Drops entries read `ttl_secs` or more before `now`, and the oldest beyond the capacity.
    fn evict(&mut self, now: i64, ttl_secs: i64) {
        while let Some((id, at)) = self.order.front() {
            let expired = now.saturating_sub(*at) >= ttl_secs;
            if !expired && self.order.len() <= CAPACITY {
                break;
            }
            if self.by_id.get(id).is_some_and(|(_, read_at)| read_at == at) {
                self.by_id.remove(id);
            }
            self.order.pop_front();
        }
    }
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
        SessionCache {
            inner: Mutex::new(Entries::default()),
            ttl_secs,
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        match self.inner.lock() {
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
        match self.entries().by_id.get(id_hash) {
            Some((session, read_at)) if now.saturating_sub(*read_at) < self.ttl_secs => {
                Some(session.clone())
            }
            _ => None,
        }
    }

    /// Remembers a live session as read from the database at `now`, and forgets what has
    /// expired.
    pub fn put(&self, session: &Session, now: i64) {
        if self.ttl_secs <= 0 {
            return;
        }
        let mut entries = self.entries();
        entries
            .by_id
            .insert(session.id_hash.clone(), (session.clone(), now));
        entries.order.push_back((session.id_hash.clone(), now));
        entries.evict(now, self.ttl_secs);
    }

    /// Forgets a session (it ended here).
    pub fn forget(&self, id_hash: &str) {
        self.entries().by_id.remove(id_hash);
    }

    /// How many sessions are held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries().by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: usize) -> Session {
        crate::sessions::test_session(format!("{id:064x}"), 0, i64::MAX)
    }

    #[test]
    fn entries_leave_by_time_and_memory_stays_bounded() {
        let cache = SessionCache::new(2);
        for id in 0..1_000 {
            cache.put(&session(id), 100);
        }
        assert_eq!(cache.len(), 1_000);
        assert!(cache.get(&session(5).id_hash, 101).is_some());
        assert!(cache.get(&session(5).id_hash, 102).is_none(), "2 s on");
        // The next put, two seconds on, forgets every expired entry.
        cache.put(&session(1_000), 102);
        assert_eq!(cache.len(), 1);
        // Never more than the capacity, however many distinct sessions are checked.
        for id in 0..(CAPACITY + 500) {
            cache.put(&session(id), 200);
        }
        assert_eq!(cache.len(), CAPACITY);
        // Put again, an entry is kept from its latest reading.
        cache.put(&session(1), 300);
        cache.put(&session(1), 301);
        cache.put(&session(2), 302);
        assert!(cache.get(&session(1).id_hash, 302).is_some());
    }

    #[test]
    fn a_cache_time_of_zero_keeps_nothing() {
        let cache = SessionCache::new(0);
        cache.put(&session(1), 100);
        assert_eq!(cache.len(), 0);
    }
}
