//! The security log: every authentication event, successful or not, in the database
//! and in the log. Raw tokens, codes and session ids are never part of an event.

use serde::Serialize;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Login,
    Logout,
    CodeIssued,
    CodeRedeemed,
    ConfigReload,
    /// An administrator locked, unlocked, unbound or removed a member, or revoked sessions
    /// (the command line).
    MemberAdded,
    MembersImported,
    MemberChanged,
    MemberLocked,
    MemberUnlocked,
    MemberUnbound,
    MemberRemoved,
    SessionsRevoked,
    /// A Bearer access token presented to `/session` or `/auth` (refusals only: accepted ones
    /// are as frequent as API requests).
    Bearer,
    /// A provider ended sessions: a back-channel logout token, or a front-channel request.
    BackchannelLogout,
    FrontchannelLogout,
    /// A reload ended sessions and codes the new configuration no longer allows.
    ConfigRevoked,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Login => "login",
            Event::Logout => "logout",
            Event::CodeIssued => "code_issued",
            Event::CodeRedeemed => "code_redeemed",
            Event::ConfigReload => "config_reload",
            Event::Bearer => "bearer",
            Event::MemberAdded => "member_added",
            Event::MembersImported => "members_imported",
            Event::MemberChanged => "member_changed",
            Event::MemberLocked => "member_locked",
            Event::MemberUnlocked => "member_unlocked",
            Event::MemberUnbound => "member_unbound",
            Event::MemberRemoved => "member_removed",
            Event::SessionsRevoked => "sessions_revoked",
            Event::BackchannelLogout => "backchannel_logout",
            Event::FrontchannelLogout => "frontchannel_logout",
            Event::ConfigRevoked => "config_revoked",
        }
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    /// Refused by a rule; the reason says which.
    Failure,
    /// Could not be decided (database or provider unavailable).
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Error => "error",
        }
    }
}

/// One event of the security log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityEvent {
    pub event: Event,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub provider: Option<String>,
    /// As the token or request said it (cleaned of control characters, shortened).
    pub email: Option<String>,
    pub member_id: Option<i64>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub incident: String,
    /// Where a sign-in's email came from, when not the ID token (`userinfo`).
    pub email_source: Option<&'static str>,
}

impl SecurityEvent {
    pub fn new(event: Event, outcome: Outcome, incident: String) -> Self {
        SecurityEvent {
            event,
            outcome,
            reason: None,
            provider: None,
            email: None,
            member_id: None,
            client_ip: None,
            user_agent: None,
            incident,
            email_source: None,
        }
    }

    /// Writes the event to the log (target `idgate::security`).
    pub fn trace(&self) {
        tracing::info!(
            target: "idgate::security",
            event = self.event.as_str(),
            outcome = self.outcome.as_str(),
            reason = self.reason.as_deref(),
            provider = self.provider.as_deref(),
            email = self.email.as_deref(),
            member_id = self.member_id,
            client_ip = self.client_ip.as_deref(),
            user_agent = self.user_agent.as_deref(),
            email_source = self.email_source,
            incident = %self.incident,
            "security event"
        );
    }
}

/// Text from a request, made safe to store and print: control characters replaced, at most
/// `max` characters.
pub fn clean(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .map(|c| {
            if c.is_control() || crate::members::is_bidi_control(c) {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

/// Parses durations such as `90s`, `10m`, `2h`, `7d` into seconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let bad = || {
        format!(
            "invalid duration `{text}`: use a number and s, m, h or d, such as 90s, 10m, 2h or 7d"
        )
    };
    let split = text
        .char_indices()
        .last()
        .map(|(at, _)| at)
        .ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().map_err(|_| bad())?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    if number < 0 {
        return Err(bad());
    }
    number.checked_mul(unit).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_minutes_hours_and_days() {
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("10m"), Ok(600));
        assert_eq!(parse_duration("2h"), Ok(7_200));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        for bad in ["", "s", "10", "10w", "-5m", "1.5h", "h10", "5µ", "µ"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn request_text_is_cleaned_before_it_is_kept() {
        assert_eq!(
            clean("Mozilla\r\n\u{1b}[31m", 100),
            "Mozilla\u{fffd}\u{fffd}\u{fffd}[31m"
        );
        assert_eq!(clean("abcdef", 3), "abc");
        assert_eq!(clean("a\u{202e}b", 10), "a\u{fffd}b");
    }
}
