//! Sessions: random ids of which the database keeps only the SHA-256 (see [`crate::ids`]), and
//! the two timeouts (idle, sliding; absolute). The cookie that carries them is made by the web
//! layer from [`CookieSettings`].

mod cache;

pub use cache::SessionCache;

use crate::members::Member;

/// The default name of the session cookie.
pub const DEFAULT_COOKIE_NAME: &str = "idgate_session";
/// The default absolute lifetime of a session, in hours.
pub const DEFAULT_LIFETIME_HOURS: u32 = 12;
/// The default time a session check may be answered from memory, in seconds.
pub const DEFAULT_CACHE_SECS: u32 = 2;

/// A session as stored, with its member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id_hash: String,
    pub member: Member,
    pub provider: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    /// The absolute end (created + lifetime).
    pub expires_at: i64,
}

impl Session {
    /// When the session ends if nothing else happens: the idle timeout from the last request, or
    /// the absolute end, whichever comes first.
    pub fn ends_at(&self, idle_secs: i64) -> i64 {
        self.expires_at
            .min(self.last_seen_at.saturating_add(idle_secs))
    }

    /// Whether the session still lets its member in: not timed out, and the member may sign in.
    pub fn is_live(&self, now: i64, idle_secs: i64) -> bool {
        now < self.ends_at(idle_secs) && self.member.status.may_sign_in() && !self.member.locked
    }

    /// Whether the last-seen time is old enough to be worth writing again. Writes are throttled
    /// to a quarter of the idle timeout (at most a minute), so the idle timeout stays accurate to
    /// that much while a busy session costs one write a minute, not one per request.
    pub fn needs_touch(&self, now: i64, idle_secs: i64) -> bool {
        now.saturating_sub(self.last_seen_at) >= (idle_secs / 4).clamp(1, 60)
    }
}

/// How the session cookie is made, and how long sessions live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieSettings {
    pub name: String,
    /// Absolute lifetime of a session, in seconds.
    pub lifetime_secs: i64,
    /// How long a session check may be answered from memory, in seconds (0: never).
    pub cache_secs: i64,
}

impl Default for CookieSettings {
    fn default() -> Self {
        CookieSettings {
            name: DEFAULT_COOKIE_NAME.to_string(),
            lifetime_secs: i64::from(DEFAULT_LIFETIME_HOURS) * 3600,
            cache_secs: i64::from(DEFAULT_CACHE_SECS),
        }
    }
}

/// What `/session` and a successful sign-in answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    pub member: Member,
    pub provider: String,
    /// When the session ends unless used again (Unix seconds).
    pub ends_at: i64,
}

/// A session of an activated member, for unit tests.
#[cfg(test)]
pub(crate) fn test_session(id_hash: String, last_seen_at: i64, expires_at: i64) -> Session {
    Session {
        id_hash,
        member: Member {
            id: 1,
            email: "a@example.org".into(),
            username: "a".into(),
            firstname: String::new(),
            surname: String::new(),
            status: crate::members::MemberStatus::Activated,
            locked: false,
            admin: false,
            created_at: 0,
            updated_at: 0,
        },
        provider: "p".into(),
        created_at: 0,
        last_seen_at,
        expires_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::members::MemberStatus;

    fn session(last_seen_at: i64, expires_at: i64) -> Session {
        test_session(String::new(), last_seen_at, expires_at)
    }

    #[test]
    fn a_session_ends_at_the_idle_timeout_or_its_absolute_end() {
        let s = session(1_000, 10_000);
        assert_eq!(s.ends_at(1_800), 2_800);
        assert!(s.is_live(2_799, 1_800));
        assert!(!s.is_live(2_800, 1_800));
        let near_end = session(9_500, 10_000);
        assert_eq!(near_end.ends_at(1_800), 10_000);
        assert!(!near_end.is_live(10_000, 1_800));
    }

    #[test]
    fn a_locked_or_disabled_member_ends_the_session() {
        let mut s = session(1_000, 10_000);
        s.member.locked = true;
        assert!(!s.is_live(1_001, 1_800));
        let mut s = session(1_000, 10_000);
        s.member.status = MemberStatus::Disabled;
        assert!(!s.is_live(1_001, 1_800));
    }

    #[test]
    fn last_seen_writes_are_throttled() {
        let s = session(1_000, 10_000);
        assert!(!s.needs_touch(1_059, 1_800));
        assert!(s.needs_touch(1_060, 1_800));
        assert!(
            s.needs_touch(1_015, 60),
            "a one-minute timeout writes every 15 s"
        );
    }
}
