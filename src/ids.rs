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
    id.len() == 43
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
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
    fn incident_ids_are_sixteen_hex_digits() {
        let id = new_incident_id();
        assert_eq!(id.len(), 16);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    }
}
