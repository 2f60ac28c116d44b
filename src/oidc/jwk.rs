//! A JWKS key as idgate uses it: the members that select it (`kid`, `kty`, `crv`, `alg`,
//! `use`) and its public key material, decoded once when the JWKS is fetched, verified with
//! `ring`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::CoreJsonWebKey;
use serde::Deserialize;
use serde_json::Value;

/// One key of a JWKS: its selectors and its public key material, decoded once when the JWKS
/// is fetched, so that a verification does no parsing.
#[derive(Debug, Clone)]
pub struct SigningKey {
    kid: Option<String>,
    kty: String,
    crv: Option<String>,
    alg: Option<String>,
    key_use: Option<String>,
    material: Material,
}

/// Public key material in the form the verifier takes.
#[derive(Debug, Clone)]
enum Material {
    /// RSA modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// An uncompressed SEC1 point (`04 ‖ x ‖ y`).
    Ec(Vec<u8>),
    /// An Ed25519 public key.
    Okp(Vec<u8>),
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
            "RSA" => Material::Rsa {
                n: bytes(&members.n)?,
                e: bytes(&members.e)?,
            },
            "EC" => {
                let mut point = vec![0x04];
                point.extend(bytes(&members.x)?);
                point.extend(bytes(&members.y)?);
                Material::Ec(point)
            }
            "OKP" => Material::Okp(bytes(&members.x)?),
            _ => return None,
        };
        Some(SigningKey {
            kid: members.kid,
            kty: members.kty,
            crv: members.crv,
            alg: members.alg,
            key_use: members.key_use,
            material,
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
    /// The work is done by `ring` (already in the build for TLS): the RustCrypto `rsa` crate
    /// behind openidconnect's `verify_signature` made RS256 verification the largest single
    /// cost of a sign-in (see `docs/performance.md`).
    pub fn verify(&self, alg: &str, message: &[u8], signature: &[u8]) -> Result<(), String> {
        use ring::signature as sig;
        let bad = |_| {
            format!(
                "the {alg} signature does not verify with key {:?}",
                self.kid
            )
        };
        match (&self.material, alg) {
            (Material::Rsa { n, e }, _) => {
                let params: &sig::RsaParameters = match alg {
                    "RS256" => &sig::RSA_PKCS1_2048_8192_SHA256,
                    "RS384" => &sig::RSA_PKCS1_2048_8192_SHA384,
                    "RS512" => &sig::RSA_PKCS1_2048_8192_SHA512,
                    "PS256" => &sig::RSA_PSS_2048_8192_SHA256,
                    "PS384" => &sig::RSA_PSS_2048_8192_SHA384,
                    "PS512" => &sig::RSA_PSS_2048_8192_SHA512,
                    _ => return Err(format!("{alg} is not an RSA algorithm")),
                };
                sig::RsaPublicKeyComponents { n, e }
                    .verify(params, message, signature)
                    .map_err(bad)
            }
            (Material::Ec(point), "ES256") => {
                sig::UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, signature)
                    .map_err(bad)
            }
            (Material::Ec(point), "ES384") => {
                sig::UnparsedPublicKey::new(&sig::ECDSA_P384_SHA384_FIXED, point)
                    .verify(message, signature)
                    .map_err(bad)
            }
            (Material::Okp(x), "EdDSA") => sig::UnparsedPublicKey::new(&sig::ED25519, x)
                .verify(message, signature)
                .map_err(bad),
            _ => Err(format!("a {} key does not verify {alg}", self.kty)),
        }
    }
}
