use super::*;

fn key(json: &str) -> SigningKey {
    serde_json::from_str(json)
        .ok()
        .and_then(SigningKey::from_json)
        .unwrap_or_else(|| unreachable!("bad test key {json}"))
}

const RSA: &str = r#"{"kty":"RSA","kid":"r1","n":"AQAB","e":"AQAB"}"#;
const P256: &str = concat!(
    r#"{"kty":"EC","kid":"e1","crv":"P-256","#,
    r#""x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","#,
    r#""y":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#
);
const P384: &str = concat!(
    r#"{"kty":"EC","kid":"e2","crv":"P-384","#,
    r#""x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","#,
    r#""y":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#
);
const ED: &str = concat!(
    r#"{"kty":"OKP","kid":"d1","crv":"Ed25519","#,
    r#""x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#
);

#[test]
fn keys_fit_only_the_algorithms_of_their_type_and_curve() {
    assert!(key(RSA).fits("RS256") && key(RSA).fits("PS512"));
    assert!(!key(RSA).fits("ES256"));
    assert!(key(P256).fits("ES256") && !key(P256).fits("ES384"));
    assert!(key(P384).fits("ES384") && !key(P384).fits("ES256"));
    assert!(key(ED).fits("EdDSA") && !key(ED).fits("ES256"));
    let named = key(r#"{"kty":"RSA","alg":"RS512","n":"AQAB","e":"AQAB"}"#);
    assert!(named.fits("RS512") && !named.fits("RS256"));
    let encryption = key(r#"{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"}"#);
    assert!(!encryption.fits("RS256"));
}

#[test]
fn a_token_without_kid_needs_exactly_one_fitting_key() {
    let set = |keys: &[&str]| KeySet {
        metadata: Arc::new(Metadata {
            issuer: String::new(),
            jwks_uri: String::new(),
            authorization_endpoint: String::new(),
            token_endpoint: None,
            userinfo_endpoint: None,
            iss_parameter_supported: false,
            signing_algs: Vec::new(),
            claims_supported: None,
            end_session_endpoint: None,
        }),
        keys: keys.iter().map(|k| key(k)).collect(),
        expires_at: 0,
    };
    let one = set(&[RSA, P256]);
    assert!(matches!(one.find(None, "RS256"), KeyLookup::Found(_)));
    assert!(matches!(one.find(Some("r1"), "RS256"), KeyLookup::Found(_)));
    assert!(matches!(one.find(Some("e1"), "RS256"), KeyLookup::Missing));
    assert!(matches!(one.find(Some("zz"), "ES256"), KeyLookup::Missing));
    let two = set(&[RSA, r#"{"kty":"RSA","kid":"r2","n":"AQAB","e":"AQAB"}"#]);
    assert!(matches!(two.find(None, "RS256"), KeyLookup::Ambiguous));
    assert!(matches!(two.find(Some("r2"), "RS256"), KeyLookup::Found(_)));
}

#[test]
fn unreadable_keys_are_skipped() {
    let body = br#"{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"},{"nokty":1},{"kty":"XYZ"}]}"#;
    assert_eq!(parse_jwks(body).map(|k| k.len()), Ok(1));
    assert!(parse_jwks(b"[]").is_err());
}

/// The P-256 keys of a JWKS get tables of multiples for ES256, each after its first signature
/// that verifies, while there are at most `MOST_ES256_TABLES` of them; beyond, aws-lc verifies
/// them, and both verify alike.
#[test]
fn a_jwks_with_many_p256_keys_gets_no_tables() {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, KeyPair as _};
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    let algorithm = &sig::ECDSA_P256_SHA256_FIXED_SIGNING;
    let random = SystemRandom::new();
    let pairs: Vec<EcdsaKeyPair> = (0..=super::super::jwk::MOST_ES256_TABLES)
        .map(|_| {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(algorithm, &random)
                .unwrap_or_else(|e| unreachable!("{e}"));
            EcdsaKeyPair::from_pkcs8(algorithm, pkcs8.as_ref())
                .unwrap_or_else(|e| unreachable!("{e}"))
        })
        .collect();
    let jwks = |pairs: &[EcdsaKeyPair]| {
        let jwk = |pair: &EcdsaKeyPair, kid: String, key_use: &str| {
            let point = pair.public_key().as_ref();
            serde_json::json!({
                "kty": "EC", "crv": "P-256", "kid": kid, "use": key_use,
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            })
        };
        let mut keys: Vec<Value> = pairs
            .iter()
            .enumerate()
            .map(|(i, pair)| jwk(pair, format!("k{i}"), "sig"))
            .collect();
        // Keys that cannot verify ES256 do not count.
        keys.push(jwk(&pairs[0], "enc".into(), "enc"));
        keys.push(serde_json::from_str(RSA).unwrap_or_else(|e| unreachable!("{e}")));
        let body = serde_json::json!({ "keys": keys }).to_string();
        parse_jwks(body.as_bytes()).unwrap_or_else(|e| unreachable!("{e}"))
    };
    for (pairs, tables) in [(&pairs[1..], true), (&pairs[..], false)] {
        let keys = jwks(pairs);
        assert_eq!(keys.len(), pairs.len() + 2);
        for (pair, key) in pairs.iter().zip(&keys) {
            let signature = pair
                .sign(&random, b"signed part")
                .unwrap_or_else(|e| unreachable!("{e}"));
            // A signature that does not verify makes no table; the first that does makes one
            // (unless the JWKS has too many P-256 keys), and the verdicts stay the same.
            assert!(
                key.verify("ES256", b"other part", signature.as_ref())
                    .is_err()
            );
            assert!(!key.has_es256_table());
            assert_eq!(
                key.verify("ES256", b"signed part", signature.as_ref()),
                Ok(())
            );
            assert_eq!(key.has_es256_table(), tables, "{} keys", pairs.len());
            assert_eq!(
                key.verify("ES256", b"signed part", signature.as_ref()),
                Ok(())
            );
            assert!(
                key.verify("ES256", b"other part", signature.as_ref())
                    .is_err()
            );
        }
    }
}

#[test]
fn an_id_token_travels_only_over_https_or_to_this_machine() {
    let allowed = |url: &str| url::Url::parse(url).is_ok_and(|u| may_receive_id_token(&u));
    for url in [
        "https://login.example.org/logout",
        "http://localhost:8080/logout",
        "http://LOCALHOST/logout",
        "http://127.0.0.1/logout",
        "http://127.8.9.10/logout",
        "http://[::1]:9000/logout",
    ] {
        assert!(allowed(url), "{url}");
    }
    for url in [
        "http://login.example.org/logout",
        "http://10.0.0.1/logout",
        "http://[::2]/logout",
        "http://localhost.example.org/logout",
    ] {
        assert!(!allowed(url), "{url}");
    }
}
