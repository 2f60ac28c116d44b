//! Why a sign-in was refused: the reason codes of the token, member and flow rules (see
//! `docs/http-api.md`), each with a fixed message. The web layer gives each its HTTP status.

use std::fmt;

/// A refusal reason. The order of the token variants is the order of the token rules table (`docs/http-api.md`): a token
/// is refused with the first rule that fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// Not a well-formed compact JWS of at most 16 KiB with JSON header and payload.
    Malformed,
    /// `alg` outside the asymmetric allow-list, or a `crit` header.
    UnsupportedAlg,
    /// `typ` present and not `JWT`: an access token or another kind of token.
    WrongTokenType,
    /// `iss` names no configured provider (or its discovery disagrees).
    UnknownIssuer,
    /// No usable key in the provider's JWKS.
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// `aud`/`azp` do not name this client (or name untrusted audiences).
    BadAudience,
    /// `exp` missing or past.
    Expired,
    /// `nbf` or `iat` in the future.
    NotYetValid,
    /// Valid for more than 24 hours (from now, or from `iat`).
    BadLifetime,
    /// `nonce` differs from the one sent.
    BadNonce,
    /// `email` missing or not an acceptable address.
    BadEmail,
    /// `email_verified` false (or absent when required).
    EmailNotVerified,
    /// The email's domain does not allow SSO through this provider.
    DomainNotAllowed,
    /// No member (or several) with this email.
    NoMember,
    /// The member is neither `activated` nor `set-password`.
    MemberInactive,
    /// The member is locked.
    MemberLocked,
    /// The member is bound to another subject of this provider.
    IdentityMismatch,
    /// An API account signing in from an address outside `apiAccountIPs`.
    ApiAccountIp,
    /// The token was already used to sign in.
    Replayed,
    /// `action=code` for a `client_id` that is not a registered client.
    UnknownClient,
    /// An authentication code that is unknown, used, expired or for another client.
    InvalidCode,
    /// A callback whose `state` is missing, unknown, used, expired, or not this browser's.
    BadState,
    /// The provider answered the callback with an error (the person cancelled, say).
    ProviderError,
}

impl Reason {
    /// The code written in answers and in the security log.
    pub fn code(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::UnsupportedAlg => "unsupported_alg",
            Reason::WrongTokenType => "wrong_token_type",
            Reason::UnknownIssuer => "unknown_issuer",
            Reason::UnknownKey => "unknown_key",
            Reason::BadSignature => "bad_signature",
            Reason::BadAudience => "bad_audience",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::BadLifetime => "bad_lifetime",
            Reason::BadNonce => "bad_nonce",
            Reason::BadEmail => "bad_email",
            Reason::EmailNotVerified => "email_not_verified",
            Reason::DomainNotAllowed => "domain_not_allowed",
            Reason::NoMember => "no_member",
            Reason::MemberInactive => "member_inactive",
            Reason::MemberLocked => "member_locked",
            Reason::IdentityMismatch => "identity_mismatch",
            Reason::ApiAccountIp => "api_account_ip",
            Reason::Replayed => "replayed",
            Reason::UnknownClient => "unknown_client",
            Reason::InvalidCode => "invalid_code",
            Reason::BadState => "bad_state",
            Reason::ProviderError => "provider_error",
        }
    }

    /// A fixed sentence for the caller; the detail stays in the security log.
    pub fn message(self) -> &'static str {
        match self {
            Reason::Malformed => "The ID token is not a well-formed signed JWT.",
            Reason::UnsupportedAlg => "The ID token's signature algorithm is not accepted.",
            Reason::WrongTokenType => "This token is not an ID token.",
            Reason::UnknownIssuer => {
                "The ID token was not issued by a configured identity provider."
            }
            Reason::UnknownKey => {
                "The ID token was signed with a key the identity provider does not publish."
            }
            Reason::BadSignature => "The ID token's signature is not valid.",
            Reason::BadAudience => "The ID token was not issued for this service.",
            Reason::Expired => "The ID token has expired.",
            Reason::NotYetValid => "The ID token is not valid yet.",
            Reason::BadLifetime => "The ID token is valid for longer than a day.",
            Reason::BadNonce => "The ID token does not belong to this sign-in.",
            Reason::BadEmail => "The ID token carries no usable email address.",
            Reason::EmailNotVerified => "The identity provider has not verified the email address.",
            Reason::DomainNotAllowed => {
                "Single sign-on is not allowed for this email domain or provider."
            }
            Reason::NoMember => "No member has this email address.",
            Reason::MemberInactive => "This account is not active.",
            Reason::MemberLocked => "This account is locked.",
            Reason::IdentityMismatch => {
                "This account is bound to another identity at this provider."
            }
            Reason::ApiAccountIp => "This API account may not sign in from this address.",
            Reason::Replayed => "This ID token has already been used to sign in.",
            Reason::UnknownClient => "The client is not registered.",
            Reason::InvalidCode => "The authentication code is unknown, used or expired.",
            Reason::BadState => {
                "This sign-in was not started here, has expired or was already finished."
            }
            Reason::ProviderError => "The identity provider did not sign you in.",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_order_decides_which_reason_is_reported() {
        assert!(Reason::Malformed < Reason::UnsupportedAlg);
        assert!(Reason::UnsupportedAlg < Reason::BadSignature);
        assert!(Reason::BadSignature < Reason::BadAudience);
        assert!(Reason::ApiAccountIp < Reason::Replayed);
    }
}
