use std::sync::LazyLock;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, KeyPair as _, UnparsedPublicKey};
use serde_json::Value;

use super::*;

/// Project Wycheproof's ES256 vectors (tests/data/wycheproof/README.md).
const WYCHEPROOF: &str =
    include_str!("../../../tests/data/wycheproof/ecdsa_secp256r1_sha256_p1363_test.json");

fn hex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .map(|i| {
            u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap_or_else(|e| unreachable!("{e}"))
        })
        .collect()
}

fn aws_lc_verifies(point: &[u8], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, point)
        .verify(message, signature)
        .is_ok()
}

fn scalar(bytes: [u8; 32]) -> Scalar {
    <Scalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(bytes))
}

/// Every vector gets its expected verdict: the valid signatures verify, and none of the invalid
/// ones does (r or s zero, n or beyond, a point at infinity on the way, an x coordinate beyond
/// n, keys and messages made for edge cases of the arithmetic).
#[test]
fn the_wycheproof_vectors_get_their_verdicts() {
    let vectors: Value = serde_json::from_str(WYCHEPROOF).unwrap_or_else(|e| unreachable!("{e}"));
    let mut checked = 0;
    let mut wrong = Vec::new();
    for group in vectors["testGroups"].as_array().into_iter().flatten() {
        let point = hex(group["publicKey"]["uncompressed"]
            .as_str()
            .unwrap_or_default());
        let key = Es256Key::from_sec1(&point).unwrap_or_else(|| unreachable!("key {point:02x?}"));
        for test in group["tests"].as_array().into_iter().flatten() {
            let message = hex(test["msg"].as_str().unwrap_or_default());
            let signature = hex(test["sig"].as_str().unwrap_or_default());
            let expected = match test["result"].as_str() {
                Some("valid") => true,
                Some("invalid") => false,
                other => unreachable!("result {other:?}"),
            };
            // aws-lc gives every vector its expected verdict too, so the two agree on all.
            assert_eq!(aws_lc_verifies(&point, &message, &signature), expected);
            if key.verifies(&message, &signature) != expected {
                wrong.push(test["tcId"].clone());
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 262);
    assert_eq!(wrong, Vec::<Value>::new(), "vectors judged wrongly");
}

/// The sum of table entries is the scalar multiple, for scalars around zero and n, and for
/// those whose digits are at their bounds: bytes of 0x80 and 0x81 carry at every digit (and
/// take the 128th entry and the 33rd row), bytes of 0x7f are the largest that do not.
#[test]
fn the_table_gives_the_multiples_of_edge_scalars() {
    let point = ProjectivePoint::GENERATOR * scalar([7; 32]);
    let table = Multiples::of(point);
    let minus_one = -Scalar::ONE;
    let mut scalars = vec![
        Scalar::ZERO,
        Scalar::ONE,
        minus_one,
        minus_one - Scalar::ONE,
    ];
    for byte in [0x01, 0x7f, 0x80, 0x81, 0xff] {
        scalars.push(scalar([byte; 32]));
        let mut low = [0; 32];
        low[31] = byte;
        scalars.push(scalar(low));
        let mut high = [0; 32];
        high[0] = byte;
        scalars.push(scalar(high));
    }
    for k in scalars {
        assert_eq!(table.times(&k), point * k, "{k:?}");
        assert_eq!(GENERATOR.times(&k), ProjectivePoint::GENERATOR * k, "{k:?}");
    }
}

/// Only an uncompressed point of the curve other than the identity is a key.
#[test]
fn points_that_are_not_keys_are_refused() {
    let good = hex(concat!(
        "04",
        "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296",
        "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"
    ));
    assert!(
        Es256Key::from_sec1(&good).is_some(),
        "the generator is a key"
    );
    let mut off_curve = good.clone();
    off_curve[64] ^= 1;
    let mut compressed = vec![0x03];
    compressed.extend_from_slice(&good[1..33]);
    let mut beyond_p = vec![0x04];
    beyond_p.extend_from_slice(&[0xff; 64]);
    for point in [
        off_curve,
        compressed,
        beyond_p,
        vec![0x00],
        good[..64].to_vec(),
        Vec::new(),
    ] {
        assert!(Es256Key::from_sec1(&point).is_none(), "{point:02x?}");
    }
}

/// A few keys for the random tests (each table takes milliseconds to make).
static KEYS: LazyLock<Vec<(EcdsaKeyPair, Vec<u8>, Es256Key)>> = LazyLock::new(|| {
    let random = SystemRandom::new();
    (0..3)
        .map(|_| {
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &random)
                    .unwrap_or_else(|e| unreachable!("{e}"));
            let pair =
                EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
                    .unwrap_or_else(|e| unreachable!("{e}"));
            let point = pair.public_key().as_ref().to_vec();
            let key = Es256Key::from_sec1(&point).unwrap_or_else(|| unreachable!("{point:02x?}"));
            (pair, point, key)
        })
        .collect()
});

proptest::proptest! {
    /// The table's sum is the scalar multiple for any scalar.
    #[test]
    fn the_table_gives_the_multiple_of_any_scalar(bytes in proptest::array::uniform32(0u8..)) {
        let k = scalar(bytes);
        proptest::prop_assert_eq!(GENERATOR.times(&k), ProjectivePoint::GENERATOR * k);
        proptest::prop_assert_eq!(
            KEYS[0].2.multiples.times(&k),
            PublicKey::from_sec1_bytes(&KEYS[0].1)
                .map(|key| key.to_projective() * k)
                .unwrap_or_default()
        );
    }

    /// Signatures made by aws-lc verify, and so does each one's twin with `s` replaced by
    /// `n - s`, as in aws-lc; with one bit of the signature or of the message changed, or as
    /// random bytes, a signature verifies exactly when aws-lc verifies it.
    #[test]
    fn the_verdicts_are_aws_lc_verdicts(
        which in 0..3usize,
        message in proptest::collection::vec(0u8.., 0..200),
        flip in 0..(64 * 8usize),
        random in proptest::collection::vec(0u8.., 64),
    ) {
        let (pair, point, key) = &KEYS[which];
        let signature = pair
            .sign(&SystemRandom::new(), &message)
            .unwrap_or_else(|e| unreachable!("{e}"))
            .as_ref()
            .to_vec();
        proptest::prop_assert!(key.verifies(&message, &signature));
        let mut twin = signature[..32].to_vec();
        let s = <Scalar as Reduce<FieldBytes>>::reduce(
            &FieldBytes::try_from(&signature[32..]).unwrap_or_else(|e| unreachable!("{e}")),
        );
        twin.extend_from_slice(&(-s).to_repr());
        proptest::prop_assert_ne!(&twin, &signature);
        proptest::prop_assert!(aws_lc_verifies(point, &message, &twin));
        proptest::prop_assert!(key.verifies(&message, &twin));
        let mut changed = signature.clone();
        changed[flip / 8] ^= 1 << (flip % 8);
        proptest::prop_assert_eq!(
            key.verifies(&message, &changed),
            aws_lc_verifies(point, &message, &changed)
        );
        let mut other_message = message.clone();
        other_message.push(b'.');
        proptest::prop_assert!(!key.verifies(&other_message, &signature));
        proptest::prop_assert_eq!(
            key.verifies(&message, &random),
            aws_lc_verifies(point, &message, &random)
        );
        // Another key's signature does not verify.
        let other = &KEYS[(which + 1) % 3].2;
        proptest::prop_assert!(!other.verifies(&message, &signature));
    }
}

/// A signature of another length than 64 bytes does not verify, even one whose first 64 bytes
/// are a good signature.
#[test]
fn only_64_byte_signatures_verify() {
    let (pair, _, key) = &KEYS[0];
    let signature = pair
        .sign(&SystemRandom::new(), b"message")
        .unwrap_or_else(|e| unreachable!("{e}"));
    let signature = signature.as_ref();
    assert!(key.verifies(b"message", signature));
    let mut longer = signature.to_vec();
    longer.push(0);
    assert!(!key.verifies(b"message", &longer));
    assert!(!key.verifies(b"message", &signature[..63]));
    assert!(!key.verifies(b"message", &[]));
}
