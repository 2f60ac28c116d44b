//! A JWKS key as idgate uses it: the members that select it (`kid`, `kty`, `crv`, `alg`,
//! `use`) and its public key material, decoded once when the JWKS is fetched and parsed, for
//! each algorithm it verifies, at its first verification; verified with `aws-lc-rs`.

use std::sync::{Arc, OnceLock};

use aws_lc_rs::signature::{self as sig, ParsedPublicKey, VerificationAlgorithm};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::CoreJsonWebKey;
use serde::Deserialize;
use serde_json::Value;

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
    /// The parsed key for each algorithm of [`Material::algorithm`], made at its first use;
    /// `None` when the key material does not parse for that algorithm (a point not on the
    /// curve), which every verification then reports. An RSA modulus outside 2048 to 8192 bits
    /// may parse, and then fails every verification.
    parsed: Arc<[OnceLock<Option<ParsedPublicKey>>; SLOTS]>,
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
    /// The verification algorithm for `alg` on this type of key, with its slot among the key's
    /// parsed forms; `None` when this type of key does not verify `alg`.
    fn algorithm(&self, alg: &str) -> Option<(usize, &'static dyn VerificationAlgorithm)> {
        let found: (usize, &'static dyn VerificationAlgorithm) = match (self, alg) {
            (Material::Rsa(_), "RS256") => (0, &sig::RSA_PKCS1_2048_8192_SHA256),
            (Material::Rsa(_), "RS384") => (1, &sig::RSA_PKCS1_2048_8192_SHA384),
            (Material::Rsa(_), "RS512") => (2, &sig::RSA_PKCS1_2048_8192_SHA512),
            (Material::Rsa(_), "PS256") => (3, &sig::RSA_PSS_2048_8192_SHA256),
            (Material::Rsa(_), "PS384") => (4, &sig::RSA_PSS_2048_8192_SHA384),
            (Material::Rsa(_), "PS512") => (5, &sig::RSA_PSS_2048_8192_SHA512),
            (Material::Ec(_), "ES256") => (0, &sig::ECDSA_P256_SHA256_FIXED),
            (Material::Ec(_), "ES384") => (1, &sig::ECDSA_P384_SHA384_FIXED),
            (Material::Okp(_), "EdDSA") => (0, &sig::ED25519),
            _ => return None,
        };
        Some(found)
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Material::Rsa(der) => der,
            Material::Ec(point) => point,
            Material::Okp(x) => x,
        }
    }
}

/// The DER `RSAPublicKey` of a modulus and an exponent (unsigned, big-endian):
/// `SEQUENCE { INTEGER n, INTEGER e }`.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn push_len(out: &mut Vec<u8>, len: usize) {
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
    }
    fn integer(unsigned: &[u8]) -> Vec<u8> {
        let skip = unsigned.iter().take_while(|b| **b == 0).count();
        let digits = &unsigned[skip.min(unsigned.len().saturating_sub(1))..];
        let pad = digits.first().is_some_and(|b| b & 0x80 != 0);
        let mut out = vec![0x02];
        push_len(&mut out, digits.len() + usize::from(pad));
        if pad {
            out.push(0);
        }
        out.extend_from_slice(digits);
        out
    }
    let (n, e) = (integer(n), integer(e));
    let mut out = vec![0x30];
    push_len(&mut out, n.len() + e.len());
    out.extend(n);
    out.extend(e);
    out
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
            "RSA" => Material::Rsa(rsa_public_key_der(&bytes(&members.n)?, &bytes(&members.e)?)),
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
        let crv = self.crv.as_deref();
        match alg {
            "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => self.kty == "RSA",
            "ES256" => self.kty == "EC" && crv == Some("P-256"),
            "ES384" => self.kty == "EC" && crv == Some("P-384"),
            "EdDSA" => self.kty == "OKP" && crv == Some("Ed25519"),
            _ => false,
        }
    }

    /// Verifies `signature` over `message` made with `alg` (one of the allow-list, which
    /// [`SigningKey::fits`] has matched to this key). RSA keys must have 2048 to 8192 bits;
    /// ECDSA signatures are the fixed `r ‖ s` form JWS uses.
    ///
    /// The work is done by `aws-lc-rs` on the key parsed at its first use for `alg`: `ring`,
    /// which idgate used before, parses an RSA key again for every signature and has no way to
    /// keep it parsed, which made RS256 verification a third dearer (see docs/performance.md).
    pub fn verify(&self, alg: &str, message: &[u8], signature: &[u8]) -> Result<(), String> {
        let Some((slot, algorithm)) = self.material.algorithm(alg) else {
            return Err(format!("a {} key does not verify {alg}", self.kty));
        };
        let parsed = self.parsed[slot]
            .get_or_init(|| ParsedPublicKey::new(algorithm, self.material.bytes()).ok());
        parsed
            .as_ref()
            .ok_or_else(|| format!("key {:?} is not a usable {alg} key", self.kid))?
            .verify_sig(message, signature)
            .map_err(|_| {
                format!(
                    "the {alg} signature does not verify with key {:?}",
                    self.kid
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rsa_public_key_is_encoded_as_der_integers_in_a_sequence() {
        // Leading zeros go; a high bit gets a zero byte, so that the integer stays positive.
        assert_eq!(
            rsa_public_key_der(&[0, 0, 0x80, 0x01], &[0x01, 0x00, 0x01]),
            [
                0x30, 0x0a, 0x02, 0x03, 0x00, 0x80, 0x01, 0x02, 0x03, 0x01, 0x00, 0x01
            ]
        );
        assert_eq!(
            rsa_public_key_der(&[0], &[0x03]),
            [0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x03]
        );
        // A 2048-bit modulus needs the long form of DER lengths.
        let der = rsa_public_key_der(&[0xff; 256], &[0x01, 0x00, 0x01]);
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
        let jwk = |key: &rsa::RsaPrivateKey| {
            let b64 = |bytes: Vec<u8>| URL_SAFE_NO_PAD.encode(bytes);
            let jwk = serde_json::json!({"kty": "RSA", "kid": "r1",
                "n": b64(key.n().to_bytes_be()), "e": b64(key.e().to_bytes_be())});
            SigningKey::from_json(jwk).unwrap_or_else(|| unreachable!("a JWK"))
        };
        use rsa::pkcs8::DecodePrivateKey as _;
        let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys/rsa1.pem");
        let pem = std::fs::read_to_string(fixture).unwrap_or_default();
        let long = rsa::RsaPrivateKey::from_pkcs8_pem(&pem)
            .unwrap_or_else(|e| unreachable!("the 2048-bit test key: {e}"));
        let short = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024)
            .unwrap_or_else(|e| unreachable!("an RSA key: {e}"));
        for (private, verifies) in [(short, false), (long, true)] {
            let bits = private.n().bits();
            let signature = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(private.clone())
                .sign(b"header.claims")
                .to_vec();
            let key = jwk(&private);
            assert_eq!(
                key.verify("RS256", b"header.claims", &signature).is_ok(),
                verifies,
                "{bits} bits"
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
        use rsa::pkcs8::DecodePrivateKey as _;
        use rsa::traits::PublicKeyParts as _;
        const ALL: [&str; 9] = [
            "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
        ];
        let rng = SystemRandom::new();
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let message = b"header.claims";
        let fixture = |name: &str| {
            let path = format!(
                "{}/tests/fixtures/keys/{name}.pem",
                env!("CARGO_MANIFEST_DIR")
            );
            std::fs::read_to_string(path).unwrap_or_default()
        };
        let der = |pem: &str| -> Vec<u8> {
            let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap_or_default()
        };
        let pem = fixture("rsa1");
        let public = rsa::RsaPrivateKey::from_pkcs8_pem(&pem)
            .unwrap_or_else(|e| unreachable!("the RSA test key: {e}"));
        let rsa_key = SigningKey::from_json(serde_json::json!({"kty": "RSA",
            "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be())}))
        .unwrap_or_else(|| unreachable!("an RSA JWK"));
        let signer = s::RsaKeyPair::from_pkcs8(&der(&pem))
            .unwrap_or_else(|e| unreachable!("the RSA test key: {e}"));
        let mut signed: Vec<(&str, &SigningKey, Vec<u8>)> = Vec::new();
        let paddings: [(&str, &'static dyn s::RsaEncoding); 6] = [
            ("RS256", &s::RSA_PKCS1_SHA256),
            ("RS384", &s::RSA_PKCS1_SHA384),
            ("RS512", &s::RSA_PKCS1_SHA512),
            ("PS256", &s::RSA_PSS_SHA256),
            ("PS384", &s::RSA_PSS_SHA384),
            ("PS512", &s::RSA_PSS_SHA512),
        ];
        for (alg, padding) in paddings {
            let mut signature = vec![0; signer.public_modulus_len()];
            signer
                .sign(padding, &rng, message, &mut signature)
                .unwrap_or_else(|e| unreachable!("{alg}: {e}"));
            signed.push((alg, &rsa_key, signature));
        }
        let ec_jwk = |crv: &str, pair: &s::EcdsaKeyPair| {
            let point = pair.public_key().as_ref();
            let half = (point.len() - 1) / 2;
            SigningKey::from_json(serde_json::json!({"kty": "EC", "crv": crv,
                "x": b64(&point[1..=half]), "y": b64(&point[half + 1..])}))
            .unwrap_or_else(|| unreachable!("an EC JWK"))
        };
        let ec_pair = |algorithm: &'static s::EcdsaSigningAlgorithm| {
            let document = s::EcdsaKeyPair::generate_pkcs8(algorithm, &rng)
                .unwrap_or_else(|e| unreachable!("an EC key: {e}"));
            s::EcdsaKeyPair::from_pkcs8(algorithm, document.as_ref())
                .unwrap_or_else(|e| unreachable!("an EC key: {e}"))
        };
        let p256 = ec_pair(&s::ECDSA_P256_SHA256_FIXED_SIGNING);
        let p384 = ec_pair(&s::ECDSA_P384_SHA384_FIXED_SIGNING);
        let (p256_key, p384_key) = (ec_jwk("P-256", &p256), ec_jwk("P-384", &p384));
        let ec_signature = |pair: &s::EcdsaKeyPair| {
            pair.sign(&rng, message)
                .unwrap_or_else(|e| unreachable!("an ECDSA signature: {e}"))
                .as_ref()
                .to_vec()
        };
        signed.push(("ES256", &p256_key, ec_signature(&p256)));
        signed.push(("ES384", &p384_key, ec_signature(&p384)));
        let ed = s::Ed25519KeyPair::generate().unwrap_or_else(|e| unreachable!("{e}"));
        let ed_key = SigningKey::from_json(serde_json::json!(
            {"kty": "OKP", "crv": "Ed25519", "x": b64(ed.public_key().as_ref())}))
        .unwrap_or_else(|| unreachable!("an Ed25519 JWK"));
        signed.push(("EdDSA", &ed_key, ed.sign(message).as_ref().to_vec()));
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
