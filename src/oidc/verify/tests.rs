use serde_json::json;

use super::*;

const NOW: i64 = 1_800_000_000;

fn provider() -> Provider {
    Provider {
        id: "p".into(),
        title: "P".into(),
        description: None,
        authority_url: url::Url::parse("https://id.example.org")
            .unwrap_or_else(|e| unreachable!("{e}")),
        authority_pos: Default::default(),
        client_id: "client".into(),
        client_secret: None,
        scopes: vec!["openid".into()],
        require_verified_email: false,
        trusted_audiences: vec!["https://api.example.org".into()],
        api_audience: None,
        email_source: crate::identity::EmailSource::Auto,
        id_token_signing_algs: crate::identity::ASYMMETRIC_ALGS.to_vec(),
        authorization_params: Default::default(),
        tenants: None,
        provider_logout: true,
    }
}

fn claims(extra: Value) -> Map<String, Value> {
    let mut base = json!({
        "iss": "https://id.example.org",
        "sub": "s1",
        "aud": "client",
        "exp": NOW + 300,
        "iat": NOW,
        "email": "ana@example.org",
    });
    if let (Value::Object(base), Value::Object(extra)) = (&mut base, extra) {
        for (k, v) in extra {
            if v.is_null() {
                base.remove(&k);
            } else {
                base.insert(k, v);
            }
        }
    }
    match base {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn check(extra: Value) -> Result<CheckedClaims, Reason> {
    check_claims(&claims(extra), &provider(), NOW, None)
}

#[test]
fn good_claims_give_the_email_subject_and_expiry() {
    let checked = check(json!({}));
    assert_eq!(
        checked.as_ref().map(|c| c.email.normalized()),
        Ok("ana@example.org")
    );
    assert_eq!(
        checked.as_ref().map(|c| c.subject.clone()),
        Ok(Some("s1".into()))
    );
    assert_eq!(checked.map(|c| c.expires), Ok(NOW + 300));
}

#[test]
fn the_audience_must_name_the_client_and_trust_the_rest() {
    assert_eq!(
        check(json!({"aud": "other"})).err(),
        Some(Reason::BadAudience)
    );
    assert_eq!(check(json!({"aud": null})).err(), Some(Reason::BadAudience));
    assert_eq!(check(json!({"aud": 7})).err(), Some(Reason::BadAudience));
    assert_eq!(check(json!({"aud": []})).err(), Some(Reason::BadAudience));
    assert_eq!(
        check(json!({"aud": ["client", 1]})).err(),
        Some(Reason::BadAudience)
    );
    assert!(check(json!({"aud": ["client"]})).is_ok());
    // Several audiences: azp must name the client, and the others must be trusted.
    let two = json!(["client", "https://api.example.org"]);
    assert_eq!(check(json!({"aud": two})).err(), Some(Reason::BadAudience));
    assert!(check(json!({"aud": two, "azp": "client"})).is_ok());
    assert_eq!(
        check(json!({"aud": two, "azp": "https://api.example.org"})).err(),
        Some(Reason::BadAudience)
    );
    assert_eq!(
        check(json!({"aud": ["client", "evil"], "azp": "client"})).err(),
        Some(Reason::BadAudience)
    );
    assert_eq!(
        check(json!({"azp": "someone-else"})).err(),
        Some(Reason::BadAudience)
    );
}

#[test]
fn expiry_allows_sixty_seconds_of_skew_and_needs_a_number() {
    assert!(check(json!({"exp": NOW - 59})).is_ok());
    assert_eq!(check(json!({"exp": NOW - 60})).err(), Some(Reason::Expired));
    assert_eq!(check(json!({"exp": null})).err(), Some(Reason::Expired));
    assert_eq!(
        check(json!({"exp": "2099-01-01"})).err(),
        Some(Reason::Expired)
    );
    assert!(check(json!({"exp": (NOW + 10) as f64 + 0.5})).is_ok());
}

#[test]
fn nbf_and_iat_may_not_be_in_the_future_beyond_the_leeway() {
    assert!(check(json!({"nbf": NOW + 60, "iat": NOW + 60})).is_ok());
    assert_eq!(
        check(json!({"nbf": NOW + 61})).err(),
        Some(Reason::NotYetValid)
    );
    assert_eq!(
        check(json!({"iat": NOW + 61})).err(),
        Some(Reason::NotYetValid)
    );
    assert_eq!(
        check(json!({"iat": "now"})).err(),
        Some(Reason::NotYetValid)
    );
    assert!(check(json!({"iat": null})).is_ok(), "iat is optional");
}

#[test]
fn the_nonce_must_match_when_idgate_sent_one() {
    let with = claims(json!({"nonce": "n-123"}));
    assert!(check_claims(&with, &provider(), NOW, Some("n-123")).is_ok());
    assert_eq!(
        check_claims(&with, &provider(), NOW, Some("n-124")).err(),
        Some(Reason::BadNonce)
    );
    assert_eq!(
        check_claims(&claims(json!({})), &provider(), NOW, Some("n-123")).err(),
        Some(Reason::BadNonce)
    );
    assert!(
        check_claims(&with, &provider(), NOW, None).is_ok(),
        "a direct post expects none"
    );
}

#[test]
fn the_email_must_be_a_plain_address() {
    for bad in [
        json!(null),
        json!(7),
        json!(["ana@example.org"]),
        json!("ana"),
        json!("a@b@example.org"),
        json!("ana @example.org"),
        json!(format!("{}@example.org", "a".repeat(90))),
    ] {
        assert_eq!(
            check(json!({"email": bad})).err(),
            Some(Reason::BadEmail),
            "{bad}"
        );
    }
}

#[test]
fn email_verified_must_be_true_when_present_or_required() {
    assert!(check(json!({"email_verified": true})).is_ok());
    assert!(check(json!({"email_verified": "true"})).is_ok());
    for bad in [json!(false), json!("false"), json!(1), json!("yes")] {
        assert_eq!(
            check(json!({"email_verified": bad})).err(),
            Some(Reason::EmailNotVerified),
            "{bad}"
        );
    }
    let mut strict = provider();
    strict.require_verified_email = true;
    assert_eq!(
        check_claims(&claims(json!({})), &strict, NOW, None).err(),
        Some(Reason::EmailNotVerified)
    );
    assert!(check_claims(&claims(json!({"email_verified": true})), &strict, NOW, None).is_ok());
}

#[test]
fn the_first_failing_rule_is_reported() {
    let all_bad = json!({"aud": "other", "exp": NOW - 3600, "email": "x", "email_verified": false});
    assert_eq!(check(all_bad).err(), Some(Reason::BadAudience));
    let late_and_bad_email = json!({"exp": NOW - 3600, "email": "x"});
    assert_eq!(check(late_and_bad_email).err(), Some(Reason::Expired));
}

/// HS256, HS384 and HS512 each verify a MAC made with their own hash and the client secret, and
/// refuse one made with another hash or another key, or over other bytes.
#[test]
fn hmac_signatures_verify_with_their_own_hash_and_the_client_secret() {
    use aws_lc_rs::hmac;
    let secret = "a client secret of at least 32 bytes";
    let mut provider = provider();
    provider.client_secret = Some(crate::identity::Secret::new(secret.into()));
    let input = "header.claims";
    let algorithms = [
        ("HS256", hmac::HMAC_SHA256),
        ("HS384", hmac::HMAC_SHA384),
        ("HS512", hmac::HMAC_SHA512),
    ];
    let mac = |algorithm, key: &str, bytes: &str| {
        hmac::sign(&hmac::Key::new(algorithm, key.as_bytes()), bytes.as_bytes())
            .as_ref()
            .to_vec()
    };
    let token =
        |alg: &'static str, signing_input: &'static str, signature: Vec<u8>| UnverifiedToken {
            signing_input,
            signature,
            alg,
            kid: KeyId::Absent,
            claims: Map::new(),
        };
    let bad = |result: Result<(), VerifyError>| {
        matches!(result, Err(VerifyError::Refused(Reason::BadSignature, _)))
    };
    for (alg, algorithm) in algorithms {
        let good = token(alg, input, mac(algorithm, secret, input));
        assert!(check_hmac(&provider, &good).is_ok(), "{alg}");
        let other_key = token(alg, input, mac(algorithm, "another secret", input));
        assert!(bad(check_hmac(&provider, &other_key)), "{alg}");
        let other_bytes = token(alg, "header.claimz", mac(algorithm, secret, input));
        assert!(bad(check_hmac(&provider, &other_bytes)), "{alg}");
        for (other, _) in algorithms.iter().filter(|(other, _)| *other != alg) {
            let crossed = token(other, input, mac(algorithm, secret, input));
            assert!(bad(check_hmac(&provider, &crossed)), "{alg} as {other}");
        }
    }
}
