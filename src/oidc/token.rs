//! The first three token rules, checked before any key is looked at: the token's shape
//! (`malformed`), its algorithm (`unsupported_alg`) and its type (`wrong_token_type`).
//!
//! Nothing here trusts the token: the header only says which algorithm and key to *try*; the
//! `jku`, `x5u`, `jwk` and `x5c` headers are never read, so keys always come from the provider's
//! own JWKS.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Value};

use crate::reason::Reason;

/// The largest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The signature algorithms accepted by default: asymmetric only, never `none` or HMAC.
pub use crate::identity::ASYMMETRIC_ALGS as ALLOWED_ALGS;
use crate::identity::HMAC_ALGS;

/// A token whose shape, algorithm and type are acceptable, not yet verified.
#[derive(Debug, Clone, PartialEq)]
pub struct UnverifiedToken<'a> {
    /// `header.payload`, the bytes the signature covers.
    pub signing_input: &'a str,
    pub signature: Vec<u8>,
    /// One of [`ALLOWED_ALGS`], or of the HMAC algorithms where the caller allowed them.
    pub alg: &'static str,
    pub kid: KeyId,
    pub claims: Map<String, Value>,
}

/// The header's `kid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyId {
    /// No `kid`: the one key that fits the algorithm, if only one does.
    Absent,
    Named(String),
    /// A `kid` that is not a string: it names no key, which the key rule refuses
    /// (`unknown_key`) in its turn, after the rules before it.
    NotText,
}

/// Checks the token's shape, algorithm (asymmetric only) and type, in that order.
pub fn parse(raw: &str) -> Result<UnverifiedToken<'_>, Reason> {
    parse_as(raw, TokenKind::Id)
}

/// Whether a token's `alg` is accepted, given its (unverified) claims: the provider its `iss`
/// names decides.
pub type AlgPolicy<'a> = &'a dyn Fn(&str, &Map<String, Value>) -> bool;

/// Which kind of token is expected: its `typ` must fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// An ID token: `typ` absent or `JWT`.
    Id,
    /// A JWT access token (RFC 9068): `typ` absent, `JWT`, `at+jwt` or `application/at+jwt`.
    Access,
    /// A back-channel logout token: `typ` absent, `logout+jwt` or `application/logout+jwt`.
    Logout,
}

impl TokenKind {
    fn accepts(self, typ: &str) -> bool {
        let typ = typ.to_ascii_lowercase();
        match self {
            TokenKind::Id => typ == "jwt",
            TokenKind::Access => matches!(typ.as_str(), "jwt" | "at+jwt" | "application/at+jwt"),
            TokenKind::Logout => matches!(typ.as_str(), "logout+jwt" | "application/logout+jwt"),
        }
    }
}

/// [`parse`] for a token of the given kind.
pub fn parse_as(raw: &str, kind: TokenKind) -> Result<UnverifiedToken<'_>, Reason> {
    parse_with(raw, kind, &|alg, _| ALLOWED_ALGS.contains(&alg))
}

/// [`parse_as`] with the algorithms `accepts` allows (among [`ALLOWED_ALGS`] and HMAC; never
/// `none`).
pub fn parse_with<'r>(
    raw: &'r str,
    kind: TokenKind,
    accepts: AlgPolicy<'_>,
) -> Result<UnverifiedToken<'r>, Reason> {
    if raw.len() > MAX_TOKEN_BYTES {
        return Err(Reason::Malformed);
    }
    let mut parts = raw.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Reason::Malformed);
    };
    let header = strict_object(&decode(header_b64)?)?;
    let claims = strict_object(&decode(payload_b64)?)?;
    let signature = decode(signature_b64)?;
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => ALLOWED_ALGS
            .iter()
            .chain(&HMAC_ALGS)
            .find(|a| **a == alg.as_str() && accepts(a, &claims)),
        _ => None,
    };
    let Some(alg) = alg else {
        return Err(Reason::UnsupportedAlg);
    };
    if header.contains_key("crit") {
        return Err(Reason::UnsupportedAlg);
    }

    match header.get("typ") {
        None => {}
        Some(Value::String(typ)) if kind.accepts(typ) => {}
        Some(_) => return Err(Reason::WrongTokenType),
    }

    // A `kid` that is not a string names no key; the key rule says so, in its turn.
    let kid = match header.get("kid") {
        None => KeyId::Absent,
        Some(Value::String(kid)) => KeyId::Named(kid.clone()),
        Some(_) => KeyId::NotText,
    };

    Ok(UnverifiedToken {
        signing_input: &raw[..header_b64.len() + 1 + payload_b64.len()],
        signature,
        alg,
        kid,
        claims,
    })
}

/// Unpadded base64url, canonical (no stray trailing bits), nothing else.
fn decode(part: &str) -> Result<Vec<u8>, Reason> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| Reason::Malformed)
}

/// A JSON object in which no object, at any depth, names a member twice.
fn strict_object(bytes: &[u8]) -> Result<Map<String, Value>, Reason> {
    match serde_json::from_slice::<StrictValue>(bytes) {
        Ok(StrictValue(Value::Object(map))) => Ok(map),
        _ => Err(Reason::Malformed),
    }
}

/// A JSON value that refuses duplicate member names (serde_json keeps the last one silently,
/// which lets two parsers read two different tokens from the same bytes).
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            match map.entry(key) {
                Entry::Occupied(taken) => {
                    return Err(de::Error::custom(format!(
                        "duplicate member `{}`",
                        taken.key()
                    )));
                }
                Entry::Vacant(slot) => {
                    let StrictValue(value) = access.next_value()?;
                    slot.insert(value);
                }
            }
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn token(header: &str, payload: &str, signature: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            b64(header.as_bytes()),
            b64(payload.as_bytes()),
            b64(signature)
        )
    }

    const PAYLOAD: &str = r#"{"iss":"https://id.example.org","sub":"1","exp":2000000000}"#;

    #[test]
    fn a_well_formed_token_gives_its_parts() {
        let raw = token(r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#, PAYLOAD, b"sig");
        let t = parse(&raw).unwrap_or_else(|r| unreachable!("{r}"));
        assert_eq!(t.alg, "RS256");
        assert_eq!(t.kid, KeyId::Named("k1".into()));
        assert_eq!(t.signature, b"sig");
        assert_eq!(t.claims["sub"], "1");
        assert_eq!(
            t.signing_input,
            raw.rsplit_once('.').map_or("", |(input, _)| input)
        );
    }

    #[test]
    fn shapes_that_are_not_three_base64url_json_parts_are_malformed() {
        let good_header = b64(br#"{"alg":"RS256"}"#);
        let good_payload = b64(PAYLOAD.as_bytes());
        let cases = [
            String::new(),
            "garbage".to_string(),
            format!("{good_header}.{good_payload}"),
            format!("{good_header}.{good_payload}.c2ln.c2ln"),
            format!("{good_header}.{good_payload}.c2ln="),
            format!("{good_header}.{good_payload}.c2l+"),
            format!("{good_header}.{good_payload}.c2ln "),
            format!("{good_header}.{}.c2ln", b64(b"not json")),
            format!("{good_header}.{}.c2ln", b64(b"[1,2]")),
            format!("{}.{good_payload}.c2ln", b64(b"\"RS256\"")),
            format!(".{good_payload}.c2ln"),
            format!("{good_header}..c2ln"),
        ];
        for raw in cases {
            assert_eq!(parse(&raw), Err(Reason::Malformed), "{raw}");
        }
    }

    #[test]
    fn a_token_over_16_kib_is_malformed() {
        let payload = format!(r#"{{"pad":"{}"}}"#, "a".repeat(MAX_TOKEN_BYTES));
        let raw = token(r#"{"alg":"RS256"}"#, &payload, b"sig");
        assert_eq!(parse(&raw), Err(Reason::Malformed));
    }

    #[test]
    fn duplicate_member_names_are_malformed_at_any_depth() {
        let twice = r#"{"sub":"a","sub":"b"}"#;
        assert_eq!(
            parse(&token(r#"{"alg":"RS256"}"#, twice, b"s")),
            Err(Reason::Malformed)
        );
        let nested = r#"{"sub":"a","x":[{"k":1,"k":2}]}"#;
        assert_eq!(
            parse(&token(r#"{"alg":"RS256"}"#, nested, b"s")),
            Err(Reason::Malformed)
        );
        let header = r#"{"alg":"RS256","alg":"none"}"#;
        assert_eq!(parse(&token(header, PAYLOAD, b"s")), Err(Reason::Malformed));
    }

    #[test]
    fn none_hmac_and_unknown_algorithms_are_unsupported() {
        for header in [
            r#"{"alg":"none"}"#,
            r#"{"alg":"NONE"}"#,
            r#"{"alg":"HS256"}"#,
            r#"{"alg":"HS512"}"#,
            r#"{"alg":"ES512"}"#,
            r#"{"alg":"rs256"}"#,
            r#"{"alg":["RS256"]}"#,
            r#"{"typ":"JWT"}"#,
        ] {
            assert_eq!(
                parse(&token(header, PAYLOAD, b"")),
                Err(Reason::UnsupportedAlg),
                "{header}"
            );
        }
    }

    #[test]
    fn alg_none_is_unsupported_even_with_a_bad_type() {
        let raw = token(r#"{"alg":"none","typ":"at+jwt"}"#, PAYLOAD, b"");
        assert_eq!(parse(&raw), Err(Reason::UnsupportedAlg));
    }

    #[test]
    fn a_crit_header_is_unsupported() {
        let raw = token(r#"{"alg":"ES256","crit":["exp"],"exp":1}"#, PAYLOAD, b"s");
        assert_eq!(parse(&raw), Err(Reason::UnsupportedAlg));
    }

    #[test]
    fn every_allowed_algorithm_passes() {
        for alg in ALLOWED_ALGS {
            let raw = token(&format!(r#"{{"alg":"{alg}"}}"#), PAYLOAD, b"s");
            assert_eq!(parse(&raw).map(|t| t.alg), Ok(alg));
        }
    }

    #[test]
    fn only_jwt_is_an_id_token_type() {
        for typ in [r#""JWT""#, r#""jwt""#, r#""Jwt""#] {
            let raw = token(&format!(r#"{{"alg":"RS256","typ":{typ}}}"#), PAYLOAD, b"s");
            assert!(parse(&raw).is_ok(), "{typ}");
        }
        for typ in [
            r#""at+jwt""#,
            r#""application/at+jwt""#,
            r#""logout+jwt""#,
            "1",
            "null",
        ] {
            let raw = token(&format!(r#"{{"alg":"RS256","typ":{typ}}}"#), PAYLOAD, b"s");
            assert_eq!(parse(&raw), Err(Reason::WrongTokenType), "{typ}");
        }
    }

    #[test]
    fn access_tokens_may_say_they_are_access_tokens() {
        for typ in ["at+jwt", "application/at+jwt", "JWT"] {
            let raw = token(
                &format!(r#"{{"alg":"RS256","typ":"{typ}"}}"#),
                PAYLOAD,
                b"s",
            );
            assert!(parse_as(&raw, TokenKind::Access).is_ok(), "{typ}");
        }
        let raw = token(r#"{"alg":"RS256","typ":"logout+jwt"}"#, PAYLOAD, b"s");
        assert_eq!(
            parse_as(&raw, TokenKind::Access),
            Err(Reason::WrongTokenType)
        );
    }

    #[test]
    fn key_headers_are_ignored_not_used() {
        let header = r#"{"alg":"RS256","jku":"https://evil.example/jwks","jwk":{"kty":"RSA"},"x5u":"https://evil.example/c","x5c":["AA"]}"#;
        let raw = token(header, PAYLOAD, b"s");
        assert_eq!(parse(&raw).map(|t| t.kid), Ok(KeyId::Absent));
    }

    #[test]
    fn a_kid_that_is_not_a_string_names_no_key_and_comes_after_the_algorithm() {
        let raw = token(r#"{"alg":"RS256","kid":7}"#, PAYLOAD, b"s");
        assert_eq!(parse(&raw).map(|t| t.kid), Ok(KeyId::NotText));
        let raw = token(r#"{"alg":"none","kid":7}"#, PAYLOAD, b"s");
        assert_eq!(parse(&raw), Err(Reason::UnsupportedAlg));
    }
}
