//! Platform members: who they are, their state, and their bindings to provider subjects.

pub mod import;

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::access::canonical_email_domain;

/// A member's account state (PageSeeder's member status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemberStatus {
    Activated,
    Unactivated,
    SetPassword,
    Disabled,
}

impl MemberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Activated => "activated",
            MemberStatus::Unactivated => "unactivated",
            MemberStatus::SetPassword => "set-password",
            MemberStatus::Disabled => "disabled",
        }
    }

    /// The states that let a member sign in.
    pub const MAY_SIGN_IN: [MemberStatus; 2] = [MemberStatus::Activated, MemberStatus::SetPassword];

    /// Whether the state lets the member sign in (`activated` or `set-password`).
    pub fn may_sign_in(self) -> bool {
        Self::MAY_SIGN_IN.contains(&self)
    }
}

impl FromStr for MemberStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "activated" => Ok(MemberStatus::Activated),
            "unactivated" => Ok(MemberStatus::Unactivated),
            "set-password" => Ok(MemberStatus::SetPassword),
            "disabled" => Ok(MemberStatus::Disabled),
            _ => Err(format!(
                "invalid status `{s}`: expected activated, unactivated, set-password or disabled"
            )),
        }
    }
}

impl fmt::Display for MemberStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An email address checked as the `bad_email` rule requires, with its normalised form: the local
/// part with ASCII letters in lower case, the domain in ASCII (punycode), which must already be
/// canonical apart from ASCII case and genuine internationalised labels. Members are matched on
/// the normalised form, so that one normalised form is one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    original: String,
    normalized: String,
}

/// Why a string is not an acceptable email address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("an email address must be under 100 characters")]
    TooLong,
    #[error("an email address must contain exactly one `@`")]
    NotOneAt,
    #[error("an email address must not contain white space or control characters")]
    BadCharacter,
    #[error("an email address needs a local part and a domain")]
    EmptyPart,
    #[error("the domain of the email address is not a valid domain name")]
    BadDomain,
}

impl Email {
    pub fn parse(text: &str) -> Result<Self, EmailError> {
        if text.chars().count() >= 100 {
            return Err(EmailError::TooLong);
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(EmailError::BadCharacter);
        }
        let mut parts = text.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(EmailError::NotOneAt);
        };
        if local.is_empty() || domain.is_empty() {
            return Err(EmailError::EmptyPart);
        }
        let domain = canonical_email_domain(domain).ok_or(EmailError::BadDomain)?;
        Ok(Email {
            original: text.to_string(),
            // ASCII case folding only: other characters must match exactly (U+212A KELVIN SIGN
            // is not `k`).
            normalized: format!("{}@{domain}", local.to_ascii_lowercase()),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.original
    }

    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    /// The normalised (ASCII) domain.
    pub fn domain(&self) -> &str {
        self.normalized
            .rsplit_once('@')
            .map_or("", |(_, domain)| domain)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

/// A member as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub id: i64,
    pub email: String,
    pub username: String,
    pub firstname: String,
    pub surname: String,
    pub status: MemberStatus,
    pub locked: bool,
    pub admin: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A member's binding to one provider's subject (`sub`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Binding {
    /// The issuer whose subject this is (a tenant's, for a multi-tenant provider).
    pub issuer: String,
    /// The provider entry that made the binding.
    pub provider: String,
    pub subject: String,
    pub created_at: i64,
}

/// A member to add.
#[derive(Debug, Clone)]
pub struct NewMember {
    pub email: Email,
    /// Defaults to the normalised email.
    pub username: Option<String>,
    pub firstname: String,
    pub surname: String,
    pub status: MemberStatus,
    pub admin: bool,
}

/// How usernames are compared: case-insensitively, like emails.
pub fn normalize_username(username: &str) -> String {
    username.to_lowercase()
}

/// Checks a username: non-empty, at most 100 characters, no white space or control characters.
pub fn check_username(username: &str) -> Result<(), String> {
    if username.is_empty() || username.chars().count() > 100 {
        return Err("a username must have 1 to 100 characters".into());
    }
    if username
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || is_bidi_control(c))
    {
        return Err("a username must not contain white space or control characters".into());
    }
    Ok(())
}

/// Checks text an administrator gives a member (a name, an email): no control characters and no
/// bidirectional controls, which would make listings and logs read otherwise than they hold (and
/// XML answers ill-formed).
pub fn check_text(what: &str, text: &str) -> Result<(), String> {
    if text.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return Err(format!(
            "the {what} must not contain control or bidirectional-control characters"
        ));
    }
    Ok(())
}

/// Unicode's bidirectional formatting characters (and the zero-width ones around them).
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_for_matching() {
        let email = Email::parse("Jane.Doe@bücher.Example").ok();
        assert_eq!(
            email.as_ref().map(Email::normalized),
            Some("jane.doe@xn--bcher-kva.example")
        );
        assert_eq!(
            email.as_ref().map(Email::as_str),
            Some("Jane.Doe@bücher.Example")
        );
        assert_eq!(
            email.as_ref().map(Email::domain),
            Some("xn--bcher-kva.example")
        );
    }

    #[test]
    fn one_normalised_form_is_one_address() {
        let normalized = |e: &str| Email::parse(e).map(|e| e.normalized().to_string());
        // ASCII case only: KELVIN SIGN is not `k`, and a non-ASCII letter keeps its case.
        assert_eq!(
            normalized("\u{212A}ate@example.org").as_deref(),
            Ok("\u{212A}ate@example.org")
        );
        assert_eq!(
            normalized("ÄGIR@example.org").as_deref(),
            Ok("Ägir@example.org")
        );
        // A genuine internationalised domain matches its punycode twin.
        assert_eq!(
            normalized("ana@bücher.example"),
            normalized("ana@xn--bcher-kva.example")
        );
        // Anything else UTS-46 would map is refused.
        for twin in [
            "kurt@ｅｘａｍｐｌｅ.org",
            "kira@example\u{3002}org",
            "kim@exam\u{ad}ple.org",
            "kai@BÜCHER.example",
            "kate@example.org.",
        ] {
            assert_eq!(Email::parse(twin), Err(EmailError::BadDomain), "{twin}");
        }
    }

    #[test]
    fn bad_emails_are_refused_with_their_reason() {
        assert_eq!(Email::parse("a@b@example.org"), Err(EmailError::NotOneAt));
        assert_eq!(
            Email::parse("nobody.example.org"),
            Err(EmailError::NotOneAt)
        );
        assert_eq!(
            Email::parse("a b@example.org"),
            Err(EmailError::BadCharacter)
        );
        assert_eq!(
            Email::parse("a\u{0}b@example.org"),
            Err(EmailError::BadCharacter)
        );
        assert_eq!(Email::parse("@example.org"), Err(EmailError::EmptyPart));
        assert_eq!(Email::parse("a@"), Err(EmailError::EmptyPart));
        assert_eq!(Email::parse("a@exa_mple..org"), Err(EmailError::BadDomain));
        let long = format!("{}@example.org", "a".repeat(88));
        assert_eq!(long.len(), 100);
        assert_eq!(Email::parse(&long), Err(EmailError::TooLong));
        assert!(Email::parse(&long[1..]).is_ok());
    }

    #[test]
    fn statuses_round_trip_and_say_who_may_sign_in() {
        for s in ["activated", "unactivated", "set-password", "disabled"] {
            assert_eq!(
                s.parse::<MemberStatus>().map(|m| m.to_string()),
                Ok(s.to_string())
            );
        }
        assert!("Activated".parse::<MemberStatus>().is_err());
        assert!(MemberStatus::Activated.may_sign_in());
        assert!(MemberStatus::SetPassword.may_sign_in());
        assert!(!MemberStatus::Unactivated.may_sign_in());
        assert!(!MemberStatus::Disabled.may_sign_in());
    }
}
