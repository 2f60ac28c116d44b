//! Sessions: random ids of which the database keeps only the SHA-256, the cookie that carries
//! them, and the two timeouts (idle, sliding; absolute).

mod cache;
mod store;

use actix_web::cookie::{Cookie, SameSite};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng as _;
use sha2::{Digest as _, Sha256};

pub use cache::SessionCache;
pub use store::*;

use crate::members::Member;

/// The default name of the session cookie.
pub const DEFAULT_COOKIE_NAME: &str = "idgate_session";
/// The default absolute lifetime of a session, in hours.
pub const DEFAULT_LIFETIME_HOURS: u32 = 12;
/// The default time a session check may be answered from memory, in seconds.
pub const DEFAULT_CACHE_SECS: u32 = 2;

/// 256 random bits, base64url (43 characters): session ids, states, nonces, PKCE verifiers and
/// authentication codes. `rand`'s thread generator is a CSPRNG seeded from the OS.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A new session id. Only the holder of the cookie knows it.
pub fn new_session_id() -> String {
    random_token()
}

/// The SHA-256 of a secret (hex): what the database keeps and looks up instead of it.
pub fn hash_id(id: &str) -> String {
    hex(&Sha256::digest(id.as_bytes()))
}

/// Lowercase hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Whether a string could be a session id at all; anything else is not looked up.
pub fn is_plausible_id(id: &str) -> bool {
    id.len() == 43
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

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

/// How the session cookie is made.
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

impl CookieSettings {
    /// The cookie that carries a new session: HttpOnly, SameSite=Lax, Path=/, Secure over https.
    /// No expiry: it lasts as long as the browser session, and the server ends it sooner.
    pub fn session_cookie(&self, id: String, secure: bool) -> Cookie<'static> {
        Cookie::build(self.name.clone(), id)
            .http_only(true)
            .same_site(SameSite::Lax)
            .path("/")
            .secure(secure)
            .finish()
    }

    /// A cookie that makes the browser forget the session.
    pub fn removal_cookie(&self, secure: bool) -> Cookie<'static> {
        let mut cookie = self.session_cookie(String::new(), secure);
        cookie.make_removal();
        cookie
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::members::MemberStatus;

    #[test]
    fn ids_are_stored_as_the_lowercase_hex_of_their_sha256() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(
            hash_id("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    fn session(last_seen_at: i64, expires_at: i64) -> Session {
        Session {
            id_hash: String::new(),
            member: Member {
                id: 1,
                email: "a@example.org".into(),
                username: "a".into(),
                firstname: String::new(),
                surname: String::new(),
                status: MemberStatus::Activated,
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

    #[test]
    fn session_ids_are_random_256_bit_and_stored_hashed() {
        let a = new_session_id();
        let b = new_session_id();
        assert_ne!(a, b);
        assert!(is_plausible_id(&a), "{a}");
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).map(|v| v.len()).ok(), Some(32));
        assert_eq!(hash_id(&a).len(), 64);
        assert_ne!(hash_id(&a), a);
        assert!(!is_plausible_id("short"));
        assert!(!is_plausible_id(&format!("{}!", &a[..42])));
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

    #[test]
    fn the_cookie_is_http_only_lax_and_secure_over_https() {
        let settings = CookieSettings::default();
        let cookie = settings.session_cookie("v".into(), true).to_string();
        assert!(cookie.starts_with("idgate_session=v"), "{cookie}");
        for part in ["HttpOnly", "SameSite=Lax", "Path=/", "Secure"] {
            assert!(cookie.contains(part), "{cookie} lacks {part}");
        }
        let plain = settings.session_cookie("v".into(), false).to_string();
        assert!(!plain.contains("Secure"), "{plain}");
        let removal = settings.removal_cookie(false).to_string();
        assert!(removal.contains("Max-Age=0"), "{removal}");
    }
}
