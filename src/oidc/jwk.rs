//! A JWKS key as idgate uses it: the members that select it (`kid`, `kty`, `crv`, `alg`,
//! `use`) and its public key material, decoded once when the JWKS is fetched and parsed, for
//! each algorithm it verifies, at its first verification; verified with `aws-lc-rs`, except
//! ES256 once the key has a table of its multiples ([`super::es256`]; see [`Parsed`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use aws_lc_rs::signature::{self as sig, ParsedPublicKey, VerificationAlgorithm};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::CoreJsonWebKey;
use serde::Deserialize;
use serde_json::Value;

use super::es256::Es256Key;

/// One key of a JWKS: its selectors and its public key material, decoded once when the JWKS
/// is fetched, so that a verification does no decoding, and parsed once per algorithm, so
/// that it does no parsing either: for an RSA key that includes the Montgomery constants of
/// its modulus, a third of what an RS256 verification costs when they are computed each time
/// (see docs/performance.md).
#[derive(Debug, Clone)]
pub struct SigningKey {
    kid: Option<String>,
    kty: String,
    crv: Option<String>,
    alg: Option<String>,
    key_use: Option<String>,
    material: Material,
    /// The parsed key for each algorithm of [`SigningKey::algorithm`], made at its first use;
    /// `None` when the key material does not parse for that algorithm (a point not on the
    /// curve), which every verification then reports. An RSA modulus outside 2048 to 8192 bits
    /// may parse, and then fails every verification.
    parsed: Arc<[OnceLock<Option<Parsed>>; SLOTS]>,
    /// Whether ES256 may be verified with a table of the key's multiples ([`super::es256`]), as
    /// it may unless its JWKS has more than [`MOST_ES256_TABLES`] keys that may verify ES256.
    es256_table: bool,
}

/// The most keys of one JWKS that may verify ES256 (P-256 signing keys) and get a table of
/// multiples, of about 300 KiB each; the keys of a JWKS with more are verified by `aws-lc-rs`,
/// without a table, so that a JWKS (of up to 1 MiB) cannot make idgate hold gigabytes of
/// tables.
pub const MOST_ES256_TABLES: usize = 8;

/// Takes the tables of ES256 verification away from the P-256 keys of a JWKS that has more
/// than [`MOST_ES256_TABLES`] keys that may verify ES256.
pub(crate) fn limit_es256_tables(keys: &mut [SigningKey]) {
    if keys.iter().filter(|key| key.fits("ES256")).count() > MOST_ES256_TABLES {
        for key in keys.iter_mut() {
            key.es256_table = false;
        }
    }
}

/// A key parsed for one algorithm, verified by `aws-lc-rs`; for ES256, by a table of the key's
/// multiples ([`super::es256`]) once the key has verified one signature through `aws-lc-rs`, so
/// that only a signature the provider made, not any token naming the key, makes idgate build
/// the table.
#[derive(Debug)]
struct Parsed {
    aws_lc: ParsedPublicKey,
    /// For ES256, unless the JWKS has more than [`MOST_ES256_TABLES`] P-256 signing keys.
    es256: Option<Es256Table>,
}

/// A key's ES256 table, made by the verification that first verified a signature through
/// `aws-lc-rs`; the others go on with `aws-lc-rs` meanwhile rather than wait for it.
#[derive(Debug, Default)]
struct Es256Table {
    /// Whether a verification has begun to make the table.
    begun: AtomicBool,
    /// The table once made (`None` inside if the point did not parse for it, which a point
    /// `aws-lc-rs` took does not do).
    made: OnceLock<Option<Es256Key>>,
}

impl Parsed {
    /// The key `material` parsed for `algorithm`, to have an ES256 table when `es256_table`;
    /// `None` when it does not parse.
    fn new(
        algorithm: &'static dyn VerificationAlgorithm,
        material: &[u8],
        es256_table: bool,
    ) -> Option<Self> {
        Some(Parsed {
            aws_lc: ParsedPublicKey::new(algorithm, material).ok()?,
            es256: es256_table.then(Es256Table::default),
        })
    }

    /// Whether `signature` over `message` verifies with this key (whose `material` it is).
    fn verifies(&self, material: &[u8], message: &[u8], signature: &[u8]) -> bool {
        if let Some(Some(table)) = self.es256.as_ref().and_then(|table| table.made.get()) {
            return table.verifies(message, signature);
        }
        let verified = self.aws_lc.verify_sig(message, signature).is_ok();
        if let (true, Some(table)) = (verified, &self.es256)
            && !table.begun.swap(true, Ordering::AcqRel)
        {
            // Only this verification gets here, so the cell is still empty.
            let _ = table.made.set(Es256Key::from_sec1(material));
        }
        verified
    }
}

/// The most algorithms one key type verifies (RSA: RS256, RS384, RS512, PS256, PS384, PS512).
const SLOTS: usize = 6;

/// Public key material in the form the verifier parses.
#[derive(Debug, Clone)]
enum Material {
    /// The DER `RSAPublicKey` (modulus and exponent) of RFC 8017.
    Rsa(Vec<u8>),
    /// An uncompressed SEC1 point (`04 ‖ x ‖ y`).
    Ec(Vec<u8>),
    /// An Ed25519 public key.
    Okp(Vec<u8>),
}

impl Material {
    fn bytes(&self) -> &[u8] {
        match self {
            Material::Rsa(der) => der,
            Material::Ec(point) => point,
            Material::Okp(x) => x,
        }
    }
}

/// The DER `RSAPublicKey` of a modulus and an exponent (unsigned, big-endian):
/// `SEQUENCE { INTEGER n, INTEGER e }` (RFC 8017, A.1.1).
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Option<Vec<u8>> {
    use pkcs1::der::Encode as _;
    pkcs1::RsaPublicKey {
        modulus: pkcs1::UintRef::new(n).ok()?,
        public_exponent: pkcs1::UintRef::new(e).ok()?,
    }
    .to_der()
    .ok()
}

#[derive(Deserialize)]
struct KeyMembers {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    key_use: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

impl SigningKey {
    /// A key from a JWKS member; `None` for keys idgate cannot use (RFC 7517 says to skip
    /// them). The openidconnect crate's JWK type must accept it too.
    pub(crate) fn from_json(value: Value) -> Option<Self> {
        let members = KeyMembers::deserialize(&value).ok()?;
        CoreJsonWebKey::deserialize(&value).ok()?;
        let bytes = |b64: &Option<String>| -> Option<Vec<u8>> {
            URL_SAFE_NO_PAD
                .decode(b64.as_deref()?)
                .ok()
                .filter(|b| !b.is_empty())
        };
        let material = match members.kty.as_str() {
            "RSA" => Material::Rsa(rsa_public_key_der(
                &bytes(&members.n)?,
                &bytes(&members.e)?,
            )?),
            "EC" => {
                // Each coordinate is exactly the curve's size (RFC 7518, 6.2.1.2): two of other
                // lengths would join into some other point.
                let (x, y) = (bytes(&members.x)?, bytes(&members.y)?);
                let size = match members.crv.as_deref() {
                    Some("P-256") => Some(32),
                    Some("P-384") => Some(48),
                    _ => None,
                };
                if x.len() != y.len() || size.is_some_and(|size| x.len() != size) {
                    return None;
                }
                let mut point = vec![0x04];
                point.extend(x);
                point.extend(y);
                Material::Ec(point)
            }
            // An Ed25519 key is its 32 bytes (RFC 8037, 2).
            "OKP" => {
                let x = bytes(&members.x)?;
                if members.crv.as_deref() == Some("Ed25519") && x.len() != 32 {
                    return None;
                }
                Material::Okp(x)
            }
            _ => return None,
        };
        Some(SigningKey {
            kid: members.kid,
            kty: members.kty,
            crv: members.crv,
            alg: members.alg,
            key_use: members.key_use,
            material,
            parsed: Arc::default(),
            es256_table: true,
        })
    }

    /// The key's `kid`, if it has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Whether this key may verify a signature made with `alg`: a signing key (or one that does
    /// not say), of the type and curve `alg` needs, naming `alg` or no algorithm.
    pub fn fits(&self, alg: &str) -> bool {
        if self.key_use.as_deref().is_some_and(|u| u != "sig") {
            return false;
        }
        if self.alg.as_deref().is_some_and(|a| a != alg) {
            return false;
        }
        self.algorithm(alg).is_some()
    }

    /// The verification algorithm for `alg` on this key's type and curve, with its slot among
    /// the key's parsed forms; `None` when this key does not verify `alg`. The one table of
    /// which key verifies which algorithm, for [`SigningKey::fits`] and [`SigningKey::verify`].
    fn algorithm(&self, alg: &str) -> Option<(usize, &'static dyn VerificationAlgorithm)> {
        let found: (usize, &'static dyn VerificationAlgorithm) =
            match (&self.material, alg, self.crv.as_deref()) {
                (Material::Rsa(_), "RS256", _) => (0, &sig::RSA_PKCS1_2048_8192_SHA256),
                (Material::Rsa(_), "RS384", _) => (1, &sig::RSA_PKCS1_2048_8192_SHA384),
                (Material::Rsa(_), "RS512", _) => (2, &sig::RSA_PKCS1_2048_8192_SHA512),
                (Material::Rsa(_), "PS256", _) => (3, &sig::RSA_PSS_2048_8192_SHA256),
                (Material::Rsa(_), "PS384", _) => (4, &sig::RSA_PSS_2048_8192_SHA384),
                (Material::Rsa(_), "PS512", _) => (5, &sig::RSA_PSS_2048_8192_SHA512),
                (Material::Ec(_), "ES256", Some("P-256")) => (0, &sig::ECDSA_P256_SHA256_FIXED),
                (Material::Ec(_), "ES384", Some("P-384")) => (1, &sig::ECDSA_P384_SHA384_FIXED),
                (Material::Okp(_), "EdDSA", Some("Ed25519")) => (0, &sig::ED25519),
                _ => return None,
            };
        Some(found)
    }

    /// Verifies `signature` over `message` made with `alg` (one of the allow-list, which
    /// [`SigningKey::fits`] has matched to this key). RSA keys must have 2048 to 8192 bits;
    /// ECDSA signatures are the fixed `r ‖ s` form JWS uses.
    ///
    /// The work is done on the key parsed at its first use for `alg`: by `aws-lc-rs`, or for
    /// ES256 with the key's table of multiples once it has one ([`Parsed`]). `ring`, which
    /// idgate used before, parses an RSA key again for every signature and has no way to keep
    /// it parsed, which made RS256 verification a third dearer (see docs/performance.md).
    pub fn verify(&self, alg: &str, message: &[u8], signature: &[u8]) -> Result<(), String> {
        let Some((slot, algorithm)) = self.algorithm(alg) else {
            return Err(format!("a {} key does not verify {alg}", self.kty));
        };
        let parsed = self.parsed[slot]
            .get_or_init(|| {
                let es256_table = alg == "ES256" && self.es256_table;
                Parsed::new(algorithm, self.material.bytes(), es256_table)
            })
            .as_ref()
            .ok_or_else(|| format!("key {:?} is not a usable {alg} key", self.kid))?;
        if parsed.verifies(self.material.bytes(), message, signature) {
            Ok(())
        } else {
            Err(format!(
                "the {alg} signature does not verify with key {:?}",
                self.kid
            ))
        }
    }

    /// Whether this key has a table of its multiples for ES256.
    #[cfg(test)]
    pub(crate) fn has_es256_table(&self) -> bool {
        let parsed = self.parsed[0].get().and_then(Option::as_ref);
        let table = parsed.and_then(|parsed| parsed.es256.as_ref()?.made.get());
        matches!(table, Some(Some(_)))
    }
}

#[cfg(test)]
mod tests {
    use idgate_test_support::provider::TestKey;

    use super::*;

    #[test]
    fn an_rsa_public_key_is_encoded_as_der_integers_in_a_sequence() {
        // Leading zeros go; a high bit gets a zero byte, so that the integer stays positive.
        assert_eq!(
            rsa_public_key_der(&[0, 0, 0x80, 0x01], &[0x01, 0x00, 0x01]).as_deref(),
            Some(
                [
                    0x30, 0x0a, 0x02, 0x03, 0x00, 0x80, 0x01, 0x02, 0x03, 0x01, 0x00, 0x01
                ]
                .as_slice()
            )
        );
        assert_eq!(
            rsa_public_key_der(&[0], &[0x03]).as_deref(),
            Some([0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x03].as_slice())
        );
        // A 2048-bit modulus needs the long form of DER lengths.
        let der = rsa_public_key_der(&[0xff; 256], &[0x01, 0x00, 0x01]).unwrap_or_default();
        assert_eq!(&der[..4], [0x30, 0x82, 0x01, 0x0a]);
        assert_eq!(&der[4..9], [0x02, 0x82, 0x01, 0x01, 0x00]);
        assert_eq!(der.len(), 4 + 0x010a);
    }

    /// A key whose material does not parse for an algorithm fails every verification with it,
    /// with the reason, and the next call gives the same answer from the remembered parse.
    #[test]
    fn an_unusable_key_fails_each_verification_alike() {
        let coordinate = URL_SAFE_NO_PAD.encode([1; 32]);
        let off_curve = serde_json::json!(
            {"kty": "EC", "kid": "e1", "crv": "P-256", "x": coordinate, "y": coordinate});
        let key = SigningKey::from_json(off_curve).unwrap_or_else(|| unreachable!("a JWK"));
        for _ in 0..2 {
            let error = key.verify("ES256", b"message", &[1; 64]).err();
            assert_eq!(
                error.as_deref(),
                Some("key Some(\"e1\") is not a usable ES256 key")
            );
        }
        assert_eq!(
            key.verify("RS256", b"m", b"s").err().as_deref(),
            Some("a EC key does not verify RS256")
        );
    }

    /// RSA keys shorter than 2048 bits are refused even when the signature is right, and the
    /// same signature scheme with a 2048-bit key verifies (so that the refusal is the size).
    #[test]
    fn an_rsa_signature_verifies_only_with_a_modulus_of_2048_bits_or_more() {
        use rsa::signature::{SignatureEncoding as _, Signer as _};
        use rsa::traits::PublicKeyParts as _;
        let short = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024)
            .unwrap_or_else(|e| unreachable!("an RSA key: {e}"));
        let b64 = |bytes: Vec<u8>| URL_SAFE_NO_PAD.encode(bytes);
        let short_key = SigningKey::from_json(serde_json::json!({"kty": "RSA",
            "n": b64(short.n().to_bytes_be()), "e": b64(short.e().to_bytes_be())}))
        .unwrap_or_else(|| unreachable!("a JWK"));
        let short_signature = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(short)
            .sign(b"header.claims")
            .to_vec();
        let long = TestKey::rsa("rsa1", "r1");
        let long_key = SigningKey::from_json(long.jwk()).unwrap_or_else(|| unreachable!("a JWK"));
        for (key, signature, verifies) in [
            (short_key, short_signature, false),
            (long_key, long.sign("RS256", b"header.claims"), true),
        ] {
            assert_eq!(
                key.verify("RS256", b"header.claims", &signature).is_ok(),
                verifies,
                "{verifies}"
            );
            assert!(key.verify("RS256", b"header.claimz", &signature).is_err());
            assert!(key.verify("RS384", b"header.claims", &signature).is_err());
        }
    }

    /// Coordinates and Ed25519 keys of the wrong size make a JWK idgate skips, as RFC 7517
    /// asks of keys with values out of the supported ranges.
    #[test]
    fn keys_of_the_wrong_size_are_skipped() {
        let b64 = |len: usize| URL_SAFE_NO_PAD.encode(vec![1; len]);
        let ec = |crv: &str, x: usize, y: usize| {
            SigningKey::from_json(serde_json::json!(
                {"kty": "EC", "crv": crv, "x": b64(x), "y": b64(y)}))
            .is_some()
        };
        assert!(ec("P-256", 32, 32) && ec("P-384", 48, 48));
        assert!(!ec("P-256", 31, 33) && !ec("P-256", 48, 48) && !ec("P-384", 32, 32));
        let ed = |x: usize| {
            SigningKey::from_json(serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": b64(x)}))
                .is_some()
        };
        assert!(ed(32) && !ed(31) && !ed(33));
    }

    /// Every algorithm of the allow-list verifies its own signatures, and no other algorithm
    /// verifies them with the same key: each algorithm has a parsed key of its own, whatever
    /// was verified with the key before.
    #[test]
    fn each_algorithm_verifies_only_its_own_signatures() {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{self as s, KeyPair as _};
        const ALL: [&str; 9] = [
            "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
        ];
        let message = b"header.claims";
        let key = |test_key: &TestKey| {
            SigningKey::from_json(test_key.jwk()).unwrap_or_else(|| unreachable!("a JWK"))
        };
        let (rsa, p256, ed) = (
            TestKey::rsa("rsa1", "r1"),
            TestKey::ec("ec1", "e1"),
            TestKey::ed("ed1", "d1"),
        );
        let (rsa_key, p256_key, ed_key) = (key(&rsa), key(&p256), key(&ed));
        let mut signed: Vec<(&str, &SigningKey, Vec<u8>)> =
            ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
                .into_iter()
                .map(|alg| (alg, &rsa_key, rsa.sign(alg, message)))
                .collect();
        signed.push(("ES256", &p256_key, p256.sign("ES256", message)));
        signed.push(("EdDSA", &ed_key, ed.sign("EdDSA", message)));
        // The test provider has no P-384 key.
        let rng = SystemRandom::new();
        let algorithm = &s::ECDSA_P384_SHA384_FIXED_SIGNING;
        let document = s::EcdsaKeyPair::generate_pkcs8(algorithm, &rng)
            .unwrap_or_else(|e| unreachable!("an EC key: {e}"));
        let p384 = s::EcdsaKeyPair::from_pkcs8(algorithm, document.as_ref())
            .unwrap_or_else(|e| unreachable!("an EC key: {e}"));
        let point = p384.public_key().as_ref();
        let p384_key = SigningKey::from_json(serde_json::json!({"kty": "EC", "crv": "P-384",
            "x": URL_SAFE_NO_PAD.encode(&point[1..49]), "y": URL_SAFE_NO_PAD.encode(&point[49..])}))
        .unwrap_or_else(|| unreachable!("an EC JWK"));
        let p384_signature = p384
            .sign(&rng, message)
            .unwrap_or_else(|e| unreachable!("an ECDSA signature: {e}"));
        signed.push(("ES384", &p384_key, p384_signature.as_ref().to_vec()));
        for (alg, key, signature) in &signed {
            assert_eq!(key.verify(alg, message, signature), Ok(()), "{alg}");
            assert!(
                key.verify(alg, b"header.claimz", signature).is_err(),
                "{alg}"
            );
            for other in ALL.iter().filter(|other| *other != alg) {
                assert!(
                    key.verify(other, message, signature).is_err(),
                    "a {alg} signature verified as {other}"
                );
            }
        }
    }
}
