//! ID-token verification: the token rules (`docs/http-api.md`), in table order, from `malformed` to
//! `email_not_verified`. The member and policy rules follow in [`crate::signin`].

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::keys::{KeyError, KeyLookup, KeySet, KeyStore, Metadata};
use super::token::{self, ALLOWED_ALGS, KeyId, TokenKind, UnverifiedToken};
use super::userinfo;
use crate::identity::{EmailSource, HMAC_ALGS, IdentityConfig, Provider, TENANT_PLACEHOLDER};
use crate::members::Email;
use crate::reason::Reason;

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECS: i64 = 60;
/// The longest an ID token may be valid, from now or from its `iat`, in seconds: nobody can make
/// the replay guard keep a row for longer.
pub const MAX_LIFETIME_SECS: i64 = 24 * 60 * 60;

/// A token that passed every token rule.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// The id of the provider that issued it.
    pub provider: String,
    /// Its `iss` (without a trailing `/`): bindings are kept per issuer.
    pub issuer: String,
    /// The `sub` claim, if it is a string.
    pub subject: Option<String>,
    pub email: Email,
    /// Whether the email came from the provider's userinfo endpoint rather than the token.
    pub email_from_userinfo: bool,
    /// Whether signing out at the provider would send this token back (`id_token_hint`):
    /// `providerLogout` is on and the provider has an end-session endpoint the token may travel
    /// to. Only then does a session keep the token.
    pub wanted_at_sign_out: bool,
    /// The provider's session id (`sid`), when the token names one.
    pub sid: Option<String>,
    /// Until when the token is accepted (`exp` plus the leeway), Unix seconds.
    pub usable_until: i64,
    /// The replay guard's key ([`crate::db::sessions::replay_guard_key`]): the token's `exp`
    /// (16 hex digits), then the SHA-256 (hex) of the signed part, which alone tells one token
    /// from another. Signatures are left out so that a re-encoded signature of the same token is
    /// still the same token.
    pub fingerprint: String,
}

/// Why a token was not verified.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A token rule failed.
    #[error("token refused: {0}")]
    Refused(Reason, Option<String>),
    /// The provider's keys could not be had: nothing is wrong with the token that we know of.
    #[error("the identity provider is unavailable: {0}")]
    Unavailable(String),
}

impl VerifyError {
    fn refused(reason: Reason) -> Self {
        VerifyError::Refused(reason, None)
    }
}

impl From<Reason> for VerifyError {
    fn from(reason: Reason) -> Self {
        VerifyError::refused(reason)
    }
}

/// What the claims say once checked (the pure part of verification).
#[cfg(test)]
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedClaims {
    pub subject: Option<String>,
    pub email: Email,
    pub expires: i64,
}

/// What a sign-in knows beside the ID token.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// The nonce idgate sent when it started the flow; `None` for a token posted directly.
    pub nonce: Option<&'a str>,
    /// The access token of the same sign-in (from the token endpoint, or posted beside the ID
    /// token), for the userinfo endpoint when the email is read there.
    pub access_token: Option<&'a str>,
    /// The provider the flow was started for: a token of any other is `unknown_issuer`, before
    /// anything is asked of a provider.
    pub provider: Option<&'a str>,
}

/// Verifies an ID token against the configured providers.
pub async fn verify_id_token(
    keys: &KeyStore,
    config: &IdentityConfig,
    raw: &str,
    context: Context<'_>,
    now: impl Fn() -> i64,
) -> Result<VerifiedToken, VerifyError> {
    let token = parse_for_providers(config, raw, TokenKind::Id)?;
    // A logout token (its `events`) is no ID token, typed or not.
    if token.claims.contains_key("events") {
        return Err(Reason::WrongTokenType.into());
    }
    let (iss, provider) = named_provider(config, &token)?;
    if context.provider.is_some_and(|p| p != provider.id) {
        // A token from another provider than the flow was started for (mix-up).
        return Err(VerifyError::Refused(
            Reason::UnknownIssuer,
            Some("the token is not from the flow's provider".into()),
        ));
    }
    let set = check_issuer_and_signature(keys, provider, iss, &token).await?;
    let (subject, expires) = check_identity(&token.claims, provider, now(), context.nonce)?;
    let email_from_userinfo = match provider.email_source {
        EmailSource::IdToken => false,
        EmailSource::Userinfo => true,
        EmailSource::Auto => !token.claims.contains_key("email"),
    };
    let email = if email_from_userinfo {
        let access_token = context.access_token.ok_or_else(|| {
            VerifyError::Refused(
                Reason::BadEmail,
                Some("no email in the ID token, and no access token for userinfo".into()),
            )
        })?;
        check_at_hash(&token, access_token)?;
        userinfo::email_for_sign_in(
            keys,
            provider,
            &set.metadata,
            subject.as_deref(),
            access_token,
        )
        .await?
    } else {
        check_email(&token.claims, provider)?
    };
    let usable_until = expires.saturating_add(LEEWAY_SECS);
    let fingerprint = crate::db::sessions::replay_guard_key(
        usable_until,
        &crate::ids::hash_id(token.signing_input),
    );
    Ok(VerifiedToken {
        provider: provider.id.clone(),
        issuer: iss.trim_end_matches('/').to_string(),
        subject,
        email,
        email_from_userinfo,
        sid: match token.claims.get("sid") {
            Some(Value::String(sid)) if !sid.is_empty() && sid.len() <= 256 => Some(sid.clone()),
            _ => None,
        },
        usable_until,
        fingerprint,
        wanted_at_sign_out: provider.provider_logout
            && set
                .metadata
                .end_session_url()
                .is_some_and(|url| super::keys::may_receive_id_token(&url)),
    })
}

/// The provider an ID or logout token's `iss` names (for this client).
fn token_provider<'c>(
    config: &'c IdentityConfig,
    iss: &str,
    claims: &Map<String, Value>,
) -> Option<&'c Provider> {
    find_provider(config, iss, claims, |p| Some(p.client_id.as_str()))
}

/// Parses an ID or logout token. The provider `iss` names decides the algorithms; a token naming
/// none gets the default (asymmetric) list, and is refused as `unknown_issuer` later.
fn parse_for_providers<'t>(
    config: &IdentityConfig,
    raw: &'t str,
    kind: TokenKind,
) -> Result<UnverifiedToken<'t>, Reason> {
    let accepts = |alg: &str, claims: &Map<String, Value>| match claims.get("iss") {
        Some(Value::String(iss)) => token_provider(config, iss, claims)
            .map_or(ALLOWED_ALGS.contains(&alg), |p| p.accepts_alg(alg)),
        _ => ALLOWED_ALGS.contains(&alg),
    };
    token::parse_with(raw, kind, &accepts)
}

/// The token's `iss` and the provider it names (`unknown_issuer` without either).
fn named_provider<'a, 'c>(
    config: &'c IdentityConfig,
    token: &'a UnverifiedToken<'_>,
) -> Result<(&'a str, &'c Provider), Reason> {
    let iss = match token.claims.get("iss") {
        Some(Value::String(iss)) => iss.as_str(),
        _ => return Err(Reason::UnknownIssuer),
    };
    let provider = token_provider(config, iss, &token.claims).ok_or(Reason::UnknownIssuer)?;
    Ok((iss, provider))
}

/// The provider's keys; the token's `iss` must be exactly the issuer its discovery document
/// gives (`unknown_issuer`), and its signature one of those keys' (or the client secret's).
async fn check_issuer_and_signature(
    keys: &KeyStore,
    provider: &Provider,
    iss: &str,
    token: &UnverifiedToken<'_>,
) -> Result<Arc<KeySet>, VerifyError> {
    let set = keys.keys(provider).await.map_err(key_error)?;
    if issuer_of(provider, &set.metadata, &token.claims)? != iss {
        return Err(Reason::UnknownIssuer.into());
    }
    check_signature(keys, provider, Arc::clone(&set), token).await?;
    Ok(set)
}

/// An `at_hash`, when the ID token has one, names this access token (the left half of its hash
/// with the signature's hash function, base64url): else the access token is another sign-in's,
/// and the email it would read is refused (`bad_email`).
fn check_at_hash(token: &UnverifiedToken<'_>, access_token: &str) -> Result<(), VerifyError> {
    let Some(claimed) = token.claims.get("at_hash") else {
        return Ok(());
    };
    let digest: Vec<u8> = match token.alg {
        "RS384" | "PS384" | "ES384" | "HS384" => sha2::Sha384::digest(access_token).to_vec(),
        "RS512" | "PS512" | "HS512" | "EdDSA" => sha2::Sha512::digest(access_token).to_vec(),
        _ => Sha256::digest(access_token).to_vec(),
    };
    let expected = URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2]);
    match claimed {
        Value::String(claimed) if bool::from(claimed.as_bytes().ct_eq(expected.as_bytes())) => {
            Ok(())
        }
        _ => Err(VerifyError::Refused(
            Reason::BadEmail,
            Some("at_hash does not match the access token".into()),
        )),
    }
}

/// A JWT access token that passed its checks: issued by a provider with an
/// `apiAudience`, for that audience, signed, in date.
#[derive(Debug, Clone)]
pub struct VerifiedAccess {
    pub provider: String,
    /// Its `iss` (without a trailing `/`).
    pub issuer: String,
    pub subject: String,
    /// The token's `exp`, Unix seconds.
    pub expires: i64,
}

/// Verifies a Bearer access token: the structural rules (with `typ` `at+jwt` allowed), `iss`
/// of a provider that has `apiAudience`, the key and signature, `aud` naming `apiAudience`,
/// `exp`/`nbf`/`iat` with the leeway, and a `sub`.
pub async fn verify_access_token(
    keys: &KeyStore,
    config: &IdentityConfig,
    raw: &str,
    now: impl Fn() -> i64,
) -> Result<VerifiedAccess, VerifyError> {
    let token = token::parse_as(raw, token::TokenKind::Access)?;
    let iss = match token.claims.get("iss") {
        Some(Value::String(iss)) => iss.as_str(),
        _ => return Err(Reason::UnknownIssuer.into()),
    };
    let provider = find_provider(config, iss, &token.claims, |p| p.api_audience.as_deref())
        .ok_or(Reason::UnknownIssuer)?;
    let auds = audiences(&token.claims).unwrap_or_default();
    let set = keys.keys(provider).await.map_err(key_error)?;
    if issuer_of(provider, &set.metadata, &token.claims)? != iss {
        return Err(Reason::UnknownIssuer.into());
    }
    check_signature(keys, provider, set, &token).await?;
    let audience = provider.api_audience.as_deref().unwrap_or_default();
    // An ID token (for idgate's client, or with a nonce) is never an access token.
    let is_id_token =
        auds.contains(&provider.client_id.as_str()) || token.claims.contains_key("nonce");
    if !auds.contains(&audience) || is_id_token {
        return Err(Reason::BadAudience.into());
    }
    let now = now();
    let expires = check_times(&token.claims, now)?;
    let subject = match token.claims.get("sub") {
        Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
        _ => return Err(Reason::IdentityMismatch.into()),
    };
    Ok(VerifiedAccess {
        provider: provider.id.clone(),
        issuer: iss.trim_end_matches('/').to_string(),
        subject,
        expires,
    })
}

/// The back-channel logout event a logout token must carry.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A logout token (OpenID Connect Back-Channel Logout 1.0) that passed its checks.
#[derive(Debug, Clone)]
pub struct VerifiedLogout {
    pub provider: String,
    /// Its `iss` (without a trailing `/`).
    pub issuer: String,
    /// The provider session to end, if named.
    pub sid: Option<String>,
    /// The subject whose sessions to end, if named.
    pub subject: Option<String>,
    pub jti: String,
    /// Until when the `jti` is remembered: past `exp` and a day after `iat`, after which the
    /// token is refused anyway.
    pub remember_until: i64,
}

/// Verifies a logout token: the structural, issuer, key, signature and audience rules of ID
/// tokens; `typ`, when present, `logout+jwt`; `iat` present; `exp`, when present, not past; a
/// `jti`; the back-channel logout event; `sid` or `sub`; no `nonce`. Every refusal is
/// `VerifyError::Refused` (the reason says which rule).
pub async fn verify_logout_token(
    keys: &KeyStore,
    config: &IdentityConfig,
    raw: &str,
    now: i64,
) -> Result<VerifiedLogout, VerifyError> {
    let token = parse_for_providers(config, raw, TokenKind::Logout)?;
    let (iss, provider) = named_provider(config, &token)?;
    check_issuer_and_signature(keys, provider, iss, &token).await?;
    let claims = &token.claims;
    check_audience(claims, provider)?;
    let refuse = |why: &str| VerifyError::Refused(Reason::Malformed, Some(why.to_string()));
    let issued = claims.get("iat").and_then(numeric_date);
    let Some(issued) = issued.filter(|at| *at <= now.saturating_add(LEEWAY_SECS)) else {
        return Err(refuse("no iat, or one in the future"));
    };
    // A logout token is for now: one issued more than a day ago, or valid for more than a day,
    // could outlive the memory of its `jti`.
    if issued < now.saturating_sub(MAX_LIFETIME_SECS) {
        return Err(refuse("issued more than a day ago"));
    }
    let expires = match claims.get("exp") {
        None => None,
        Some(value) => match numeric_date(value) {
            Some(exp) if now < exp.saturating_add(LEEWAY_SECS) => Some(exp),
            _ => return Err(VerifyError::Refused(Reason::Expired, None)),
        },
    };
    if expires.is_some_and(|exp| exp > now.saturating_add(MAX_LIFETIME_SECS)) {
        return Err(VerifyError::Refused(Reason::BadLifetime, None));
    }
    let text = |name: &str| match claims.get(name) {
        Some(Value::String(v)) if !v.is_empty() && v.len() <= 256 => Some(v.clone()),
        _ => None,
    };
    let jti = text("jti").ok_or_else(|| refuse("no jti"))?;
    let has_event = claims
        .get("events")
        .and_then(Value::as_object)
        .is_some_and(|events| {
            events
                .get(BACKCHANNEL_LOGOUT_EVENT)
                .is_some_and(Value::is_object)
        });
    if !has_event {
        return Err(refuse("no back-channel logout event"));
    }
    // A `sid` or `sub` that is there must be usable: left out, it would widen the logout (a
    // bad `sid` beside a `sub` would end every session of the member).
    let optional_text = |name: &str| match claims.get(name) {
        None => Ok(None),
        Some(_) => text(name)
            .map(Some)
            .ok_or_else(|| refuse(&format!("a {name} that is not a text of 1 to 256 bytes"))),
    };
    let (sid, subject) = (optional_text("sid")?, optional_text("sub")?);
    if sid.is_none() && subject.is_none() {
        return Err(refuse("neither sid nor sub"));
    }
    if claims.contains_key("nonce") {
        return Err(refuse("a nonce: this is not a logout token"));
    }
    Ok(VerifiedLogout {
        provider: provider.id.clone(),
        issuer: iss.trim_end_matches('/').to_string(),
        sid,
        subject,
        jti,
        // Past anything that would still be accepted: `exp`, and a day after `iat`.
        remember_until: expires
            .unwrap_or(i64::MIN)
            .max(issued.saturating_add(MAX_LIFETIME_SECS))
            .saturating_add(LEEWAY_SECS),
    })
}

/// `exp` at most [`MAX_LIFETIME_SECS`] after now and, when `iat` is present, after `iat`.
fn check_lifetime(claims: &Map<String, Value>, expires: i64, now: i64) -> Result<(), Reason> {
    let issued = claims.get("iat").and_then(numeric_date);
    let too_long = |from: i64| expires > from.saturating_add(MAX_LIFETIME_SECS);
    if too_long(now) || issued.is_some_and(too_long) {
        return Err(Reason::BadLifetime);
    }
    Ok(())
}

/// `exp` (required, not past), `nbf` and `iat` (if present, not in the future), each with the
/// leeway; the expiry.
fn check_times(claims: &Map<String, Value>, now: i64) -> Result<i64, Reason> {
    let expires = match claims.get("exp").and_then(numeric_date) {
        Some(exp) if now < exp.saturating_add(LEEWAY_SECS) => exp,
        _ => return Err(Reason::Expired),
    };
    for name in ["nbf", "iat"] {
        match claims.get(name) {
            None => {}
            Some(value) => match numeric_date(value) {
                Some(at) if at <= now.saturating_add(LEEWAY_SECS) => {}
                _ => return Err(Reason::NotYetValid),
            },
        }
    }
    Ok(expires)
}

/// The provider whose authority is `iss` (a trailing `/` ignored). Where several providers
/// share an authority, the one whose client the token is for.
///
/// `audience_of` says which audience names a provider for this kind of token (its `clientId`
/// for ID tokens, its `apiAudience` for access tokens); providers without one are not candidates.
pub fn find_provider<'a>(
    config: &'a IdentityConfig,
    iss: &str,
    claims: &Map<String, Value>,
    audience_of: impl Fn(&'a Provider) -> Option<&'a str>,
) -> Option<&'a Provider> {
    let iss = iss.trim_end_matches('/');
    let mut candidates = config
        .providers
        .iter()
        .filter(|p| audience_of(p).is_some() && names_provider(p, iss, claims));
    let first = candidates.next()?;
    let audiences = audiences(claims).unwrap_or_default();
    Some(
        std::iter::once(first)
            .chain(candidates)
            .find(|p| audience_of(p).is_some_and(|a| audiences.contains(&a)))
            .unwrap_or(first),
    )
}

/// Whether `iss` (without a trailing `/`) may be an issuer of `provider`: its authority, or, for
/// a multi-tenant provider, an issuer on the authority's host naming an accepted `tid`. The
/// exact issuer is checked against the discovery document ([`issuer_of`]) once it is fetched.
fn names_provider(provider: &Provider, iss: &str, claims: &Map<String, Value>) -> bool {
    if provider.tenants.is_none() {
        return provider.authority() == iss;
    }
    let tid = match claims.get("tid") {
        Some(Value::String(tid)) if provider.accepts_tenant(tid) => tid,
        _ => return false,
    };
    iss.contains(tid.as_str())
        && url::Url::parse(iss).is_ok_and(|u| u.origin() == provider.authority_url.origin())
}

/// The issuer the provider's tokens must name: the discovery document's, with the token's
/// tenant in place of `{tenantid}` for a multi-tenant provider (whose `tid` must be accepted).
pub fn issuer_of(
    provider: &Provider,
    metadata: &Metadata,
    claims: &Map<String, Value>,
) -> Result<String, Reason> {
    if !metadata.issuer.contains(TENANT_PLACEHOLDER) {
        return Ok(metadata.issuer.clone());
    }
    match claims.get("tid") {
        Some(Value::String(tid))
            if provider.accepts_tenant(tid) && crate::identity::is_tenant_id(tid) =>
        {
            Ok(metadata.issuer.replace(TENANT_PLACEHOLDER, tid))
        }
        _ => Err(Reason::UnknownIssuer),
    }
}

fn key_error(error: KeyError) -> VerifyError {
    match error {
        KeyError::IssuerMismatch { .. } => {
            VerifyError::Refused(Reason::UnknownIssuer, Some(error.to_string()))
        }
        KeyError::Fetch(e) => VerifyError::Unavailable(e.to_string()),
    }
}

/// Finds the key (refetching the JWKS once for an unknown one) and checks the signature.
async fn check_signature(
    keys: &KeyStore,
    provider: &Provider,
    set: Arc<KeySet>,
    token: &UnverifiedToken<'_>,
) -> Result<(), VerifyError> {
    let kid = match &token.kid {
        KeyId::Absent => None,
        KeyId::Named(kid) => Some(kid.as_str()),
        KeyId::NotText => {
            return Err(VerifyError::Refused(
                Reason::UnknownKey,
                Some("a kid that is not a string".into()),
            ));
        }
    };
    if HMAC_ALGS.contains(&token.alg) {
        return check_hmac(provider, token);
    }
    let verify = |set: &KeySet| -> Option<Result<(), VerifyError>> {
        match set.find(kid, token.alg) {
            KeyLookup::Found(key) => Some(
                key.verify(token.alg, token.signing_input.as_bytes(), &token.signature)
                    .map_err(|e| VerifyError::Refused(Reason::BadSignature, Some(e))),
            ),
            KeyLookup::Ambiguous => Some(Err(VerifyError::Refused(
                Reason::UnknownKey,
                Some("no kid, and several keys fit the algorithm".into()),
            ))),
            KeyLookup::Missing => None,
        }
    };
    if let Some(result) = verify(&set) {
        return result;
    }
    let refreshed = keys
        .keys_after_unknown_key(provider, &set)
        .await
        .map_err(key_error)?;
    verify(&refreshed).unwrap_or(Err(Reason::UnknownKey.into()))
}

/// An HMAC signature, keyed by the provider's client secret (UTF-8 bytes) and never by
/// anything a JWKS holds. Only providers that list the algorithm get here, and those have a
/// secret (the configuration refuses HMAC without one).
fn check_hmac(provider: &Provider, token: &UnverifiedToken<'_>) -> Result<(), VerifyError> {
    use aws_lc_rs::hmac;
    let algorithm = match token.alg {
        "HS256" => hmac::HMAC_SHA256,
        "HS384" => hmac::HMAC_SHA384,
        _ => hmac::HMAC_SHA512,
    };
    let secret = provider
        .client_secret
        .as_ref()
        .filter(|s| !s.expose().is_empty())
        .ok_or(Reason::UnsupportedAlg)?;
    let key = hmac::Key::new(algorithm, secret.expose().as_bytes());
    hmac::verify(&key, token.signing_input.as_bytes(), &token.signature)
        .map_err(|_| VerifyError::Refused(Reason::BadSignature, Some("HMAC mismatch".into())))
}

/// The claim rules from `bad_audience` to `email_not_verified`, in table order (what a
/// sign-in runs as [`check_identity`], then [`check_email`]).
#[cfg(test)]
pub fn check_claims(
    claims: &Map<String, Value>,
    provider: &Provider,
    now: i64,
    expected_nonce: Option<&str>,
) -> Result<CheckedClaims, Reason> {
    let (subject, expires) = check_identity(claims, provider, now, expected_nonce)?;
    let email = check_email(claims, provider)?;
    Ok(CheckedClaims {
        subject,
        email,
        expires,
    })
}

/// The claim rules before the email's (`bad_audience` to `bad_nonce`): the subject, if any, and
/// the expiry.
fn check_identity(
    claims: &Map<String, Value>,
    provider: &Provider,
    now: i64,
    expected_nonce: Option<&str>,
) -> Result<(Option<String>, i64), Reason> {
    check_audience(claims, provider)?;
    let expires = check_times(claims, now)?;
    check_lifetime(claims, expires, now)?;

    if let Some(expected) = expected_nonce {
        let matches = match claims.get("nonce") {
            Some(Value::String(nonce)) => bool::from(nonce.as_bytes().ct_eq(expected.as_bytes())),
            _ => false,
        };
        if !matches {
            return Err(Reason::BadNonce);
        }
    }

    let subject = match claims.get("sub") {
        Some(Value::String(sub)) if !sub.is_empty() => Some(sub.clone()),
        _ => None,
    };
    Ok((subject, expires))
}

/// The `email` and `email_verified` rules (`bad_email`, `email_not_verified`), for ID-token
/// claims and userinfo answers alike.
pub fn check_email(claims: &Map<String, Value>, provider: &Provider) -> Result<Email, Reason> {
    let email = match claims.get("email") {
        Some(Value::String(email)) => Email::parse(email).map_err(|_| Reason::BadEmail)?,
        _ => return Err(Reason::BadEmail),
    };
    match claims.get("email_verified") {
        None if provider.require_verified_email => Err(Reason::EmailNotVerified),
        None | Some(Value::Bool(true)) => Ok(email),
        Some(Value::String(s)) if s == "true" => Ok(email),
        Some(_) => Err(Reason::EmailNotVerified),
    }
}

/// `aud` as a list of strings; `None` when it is missing or of another type.
fn audiences(claims: &Map<String, Value>) -> Option<Vec<&str>> {
    match claims.get("aud")? {
        Value::String(aud) => Some(vec![aud.as_str()]),
        Value::Array(items) => items.iter().map(Value::as_str).collect(),
        _ => None,
    }
}

/// `aud` names the client; with several audiences `azp` names it too; every other audience is
/// trusted; an `azp`, when present, always names the client.
fn check_audience(claims: &Map<String, Value>, provider: &Provider) -> Result<(), Reason> {
    let audiences = audiences(claims).ok_or(Reason::BadAudience)?;
    let client = provider.client_id.as_str();
    if !audiences.contains(&client) {
        return Err(Reason::BadAudience);
    }
    let trusted =
        |aud: &&str| *aud == client || provider.trusted_audiences.iter().any(|t| t == aud);
    if !audiences.iter().all(trusted) {
        return Err(Reason::BadAudience);
    }
    match claims.get("azp") {
        None if audiences.len() > 1 => Err(Reason::BadAudience),
        None => Ok(()),
        Some(Value::String(azp)) if azp == client => Ok(()),
        Some(_) => Err(Reason::BadAudience),
    }
}

/// A JSON NumericDate (seconds, possibly fractional) as whole seconds, rounded down. A number
/// beyond what is kept to the second (an integer past `i64`, a fraction of 10^15 or more) is
/// the far future or the far past, and the rules judge it as such: an `exp` there is
/// `bad_lifetime` whether it is written as an integer or not.
fn numeric_date(value: &Value) -> Option<i64> {
    let Value::Number(n) = value else {
        return None;
    };
    if let Some(seconds) = n.as_i64() {
        return Some(seconds);
    }
    let f = n.as_f64().filter(|f| f.is_finite())?;
    Some(if f.abs() < 1e15 {
        f.floor() as i64
    } else if f > 0.0 {
        i64::MAX
    } else {
        i64::MIN
    })
}

#[cfg(test)]
mod tests;
