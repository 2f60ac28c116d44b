//! Random tokens and the hashes the database keeps instead of them: session ids, flow states,
//! nonces, PKCE verifiers, authentication codes and incident ids. A leaf: it imports nothing of
//! idgate.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng as _;
use sha2::{Digest as _, Sha256};

/// 256 random bits, base64url (43 characters): session ids, states, nonces, PKCE verifiers and
/// authentication codes. `rand`'s thread generator is a CSPRNG seeded from the OS.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A new session id and its [`session_key`]. The id is the time it was made (milliseconds since
/// 1970, 8 bytes, big-endian), then 256 random bits, base64url (54 characters). The time is not
/// secret; it puts the session's key after those of older sessions, so that a new session's
/// entry goes at the end of the database's index of keys (one page written) rather than on a
/// random page of it. Ids of 43 characters (256 random bits alone) were made before and stay
/// valid.
pub fn new_session_id() -> (String, String) {
    // The system's clock rather than the service's: the time only orders keys, and a clock set
    // back costs nothing but some of that order.
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        });
    let mut bytes = [0u8; SESSION_ID_BYTES];
    bytes[..TIME_BYTES].copy_from_slice(&millis.to_be_bytes());
    rand::rng().fill(&mut bytes[TIME_BYTES..]);
    let id = URL_SAFE_NO_PAD.encode(bytes);
    let key = timed_key(&bytes, &id);
    (id, key)
}

/// The bytes of a [`new_session_id`]: the time, then the random part (32).
const SESSION_ID_BYTES: usize = TIME_BYTES + 32;
/// The time's bytes at the start of a [`new_session_id`].
const TIME_BYTES: usize = 8;
/// The length of a [`new_session_id`] in base64url.
const SESSION_ID_LEN: usize = 54;
/// The length of a SHA-256 in hex ([`hash_id`]).
pub const HASH_LEN: usize = 64;
/// The length of the time at the start of a [`session_key`] of a [`new_session_id`] (hex).
pub const SESSION_KEY_TIME_LEN: usize = 2 * TIME_BYTES;

/// What the database keeps and looks up instead of a session id, when `id` has the shape of
/// one (anything else is never looked up): for a [`new_session_id`] (40 bytes in canonical
/// base64url), its time (16 hex digits) then the SHA-256 (hex) of the whole id, 80 characters;
/// for an id of 43 characters (a [`random_token`], as sessions had before), the SHA-256 alone
/// ([`hash_id`]), 64 characters.
pub fn session_key(id: &str) -> Option<String> {
    match id.len() {
        SESSION_ID_LEN => {
            let bytes = URL_SAFE_NO_PAD.decode(id).ok()?;
            (bytes.len() == SESSION_ID_BYTES).then(|| timed_key(&bytes, id))
        }
        43 => is_base64url(id).then(|| hash_id(id)),
        _ => None,
    }
}

/// The [`session_key`] of a [`new_session_id`] made of `bytes`.
fn timed_key(bytes: &[u8], id: &str) -> String {
    hex(&bytes[..TIME_BYTES]) + &hash_id(id)
}

/// The part of a [`session_key`] that is the SHA-256 of the id (its last 64 characters).
pub fn session_key_hash(key: &str) -> &str {
    key.get(key.len().saturating_sub(HASH_LEN)..).unwrap_or(key)
}

fn is_base64url(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
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

/// Whether a string has the shape of a [`random_token`]; anything else is never looked up.
pub fn is_plausible_id(id: &str) -> bool {
    id.len() == 43 && is_base64url(id)
}

/// A short random id that ties what a person sees to the detail in the security log.
pub fn new_incident_id() -> String {
    let bytes: [u8; 8] = rand::rng().random();
    hex(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stored_as_the_lowercase_hex_of_their_sha256() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(
            hash_id("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn tokens_are_random_256_bit_and_stored_hashed() {
        let a = random_token();
        let b = random_token();
        assert_ne!(a, b);
        assert!(is_plausible_id(&a), "{a}");
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).map(|v| v.len()).ok(), Some(32));
        assert_eq!(hash_id(&a).len(), 64);
        assert_ne!(hash_id(&a), a);
        assert!(!is_plausible_id("short"));
        assert!(!is_plausible_id(&format!("{}!", &a[..42])));
    }

    #[test]
    fn session_ids_are_ordered_by_time_and_keyed_by_their_time_and_hash() {
        let (id, key) = new_session_id();
        assert_eq!(session_key(&id).as_ref(), Some(&key), "{id}");
        let bytes = URL_SAFE_NO_PAD.decode(&id).unwrap_or_default();
        assert_eq!(bytes.len(), 40);
        let mut time = [0u8; 8];
        time.copy_from_slice(&bytes[..8]);
        let millis = u64::from_be_bytes(time);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|since| since.as_millis())
            .unwrap_or_default();
        assert!(u128::from(millis) <= now && now - u128::from(millis) < 60_000);
        assert_eq!(key, format!("{millis:016x}{}", hash_id(&id)));
        assert_eq!(session_key_hash(&key), hash_id(&id));
        assert_ne!(new_session_id().0[11..], id[11..], "256 random bits");

        // Keys sort as their times do, whatever the random parts.
        let at = |millis: u64, fill: u8| {
            let mut bytes = [fill; 40];
            bytes[..8].copy_from_slice(&millis.to_be_bytes());
            session_key(&URL_SAFE_NO_PAD.encode(bytes))
        };
        for (earlier, later) in [
            (at(1_000, 0xff), at(1_001, 0x00)),
            (at(0x00ff, 0), at(0x0100, 0)),
        ] {
            assert!(
                matches!((&earlier, &later), (Some(a), Some(b)) if a < b),
                "{earlier:?}"
            );
        }
    }

    #[test]
    fn only_the_canonical_encoding_of_a_session_id_is_looked_up() {
        // The last of 54 characters carries the id's last 2 bits and 4 bits that must be zero:
        // `A`, `Q`, `g` or `w`; with any other it is not the encoding of an id.
        let (id, _) = new_session_id();
        for last in ["A", "Q", "g", "w"] {
            assert!(session_key(&format!("{}{last}", &id[..53])).is_some());
        }
        for last in ["B", "P", "R", "f", "h", "v", "x", "-", "_", "9"] {
            assert_eq!(session_key(&format!("{}{last}", &id[..53])), None);
        }
    }

    #[test]
    fn ids_of_43_characters_keep_their_key() {
        let old = random_token();
        assert_eq!(session_key(&old), Some(hash_id(&old)));
        assert_eq!(session_key_hash(&hash_id(&old)), hash_id(&old));
        for odd in [
            "",
            "short",
            &format!("{old}!"),
            &"A".repeat(53),
            &"A".repeat(55),
        ] {
            assert_eq!(session_key(odd), None, "{odd}");
        }
        assert_eq!(
            session_key(&format!("{}.", &new_session_id().0[..53])),
            None
        );
    }

    #[test]
    fn incident_ids_are_sixteen_hex_digits() {
        let id = new_incident_id();
        assert_eq!(id.len(), 16);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    }
}
