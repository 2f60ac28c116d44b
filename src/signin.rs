//! Sign-in with an ID token: the token rules ([`crate::oidc::verify`]), then the member and
//! policy rules of SPEC §3 in table order, then a new session. Every attempt is written to the
//! security log.

use std::net::IpAddr;

use diesel::Connection as _;

use crate::access;
use crate::audit::{self, Event, Outcome, SecurityEvent};
use crate::db::AnyConnection;
use crate::error::new_incident_id;
use crate::identity::IdentityConfig;
use crate::members::{self, Member, StoreError};
use crate::oidc::token;
use crate::oidc::verify::{VerifiedToken, VerifyError, verify_id_token};
use crate::reason::Reason;
use crate::routes::answer::SessionView;
use crate::sessions::{self, NewSession};
use crate::startup::AppState;

/// Where an attempt comes from, for the rules and the security log.
#[derive(Debug, Clone, Default)]
pub struct Attempt {
    pub client_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

/// A new session: its id (for the cookie only, never logged) and what it holds.
#[derive(Debug)]
pub struct SignedIn {
    pub session_id: String,
    pub view: SessionView,
}

/// Why a sign-in did not happen; `incident` ties the answer to the security log.
#[derive(Debug)]
pub enum SignInError {
    Refused { reason: Reason, incident: String },
    Unavailable { incident: String },
}

/// Signs in with an ID token. `expected_nonce` is the nonce idgate sent when it started the flow.
pub async fn sign_in(
    state: &AppState,
    raw_token: &str,
    expected_nonce: Option<&str>,
    attempt: &Attempt,
) -> Result<SignedIn, SignInError> {
    let config = state.config.load_full();
    let mut event = SecurityEvent::new(Event::Login, Outcome::Failure, new_incident_id());
    event.client_ip = attempt.client_ip.map(|ip| ip.to_string());
    event.user_agent = attempt
        .user_agent
        .as_deref()
        .map(|ua| audit::clean(ua, 256));

    let clock = state.clock.clone();
    let verified = match verify_id_token(&state.keys, &config, raw_token, expected_nonce, || {
        clock.now()
    })
    .await
    {
        Ok(verified) => verified,
        Err(error) => {
            describe_unverified(&mut event, &config, raw_token, &error);
            return Err(refuse(state, event, error).await);
        }
    };
    event.provider = Some(verified.provider.clone());
    event.email = Some(audit::clean(verified.email.as_str(), 254));

    let domain = config.domains.decide(verified.email.domain());
    if !domain.allows_provider(&verified.provider) {
        return Err(refuse(state, event, Reason::DomainNotAllowed.into()).await);
    }

    let session_id = sessions::new_session_id();
    let now = state.clock.now();
    let idle_secs = i64::from(config.properties.session_timeout) * 60;
    let work = Completion {
        verified,
        id_hash: sessions::hash_id(&session_id),
        client_ip: attempt.client_ip,
        now,
        expires_at: now.saturating_add(state.settings.cookie.lifetime_secs),
        api_usernames: config.properties.api_account_usernames.clone(),
        api_ips: config.properties.api_account_ips.clone(),
        event: event.clone(),
    };
    let outcome = state.db.run(move |conn| Ok(complete(conn, work))).await;
    match outcome {
        Ok(Ok((member, provider, expires_at))) => {
            event.outcome = Outcome::Success;
            event.member_id = Some(member.id);
            event.trace();
            let ends_at = expires_at.min(now.saturating_add(idle_secs));
            Ok(SignedIn {
                session_id,
                view: SessionView {
                    member,
                    provider,
                    ends_at,
                },
            })
        }
        Ok(Err(TxError::Refused(reason, member_id))) => {
            event.member_id = member_id;
            Err(refuse(state, event, reason.into()).await)
        }
        Ok(Err(TxError::Store(error))) | Err(error) => {
            event.outcome = Outcome::Error;
            event.reason = Some("unavailable".into());
            tracing::error!(incident = %event.incident, %error, "sign-in failed: database");
            event.trace();
            Err(SignInError::Unavailable {
                incident: event.incident,
            })
        }
    }
}

/// For the log of a refused token: the provider its `iss` names, and the email only when the
/// provider's signature vouches for it (a refusal after `bad_signature`).
fn describe_unverified(
    event: &mut SecurityEvent,
    config: &IdentityConfig,
    raw: &str,
    error: &VerifyError,
) {
    let Ok(token) = token::parse(raw) else {
        return;
    };
    let iss = token.claims.get("iss").and_then(|v| v.as_str());
    event.provider = iss.and_then(|iss| {
        config
            .providers
            .iter()
            .find(|p| p.authority() == iss.trim_end_matches('/'))
            .map(|p| p.id.clone())
    });
    if let VerifyError::Refused(reason, _) = error
        && *reason > Reason::BadSignature
    {
        event.email = token
            .claims
            .get("email")
            .and_then(|v| v.as_str())
            .map(|e| audit::clean(e, 254));
    }
}

/// Logs a refusal (database and tracing) and turns it into the caller's error.
async fn refuse(state: &AppState, mut event: SecurityEvent, error: VerifyError) -> SignInError {
    let (outcome, detail) = match &error {
        VerifyError::Refused(reason, detail) => {
            event.reason = Some(reason.code().to_string());
            (Outcome::Failure, detail.clone())
        }
        VerifyError::Unavailable(detail) => {
            event.reason = Some("provider_unavailable".to_string());
            (Outcome::Error, Some(detail.clone()))
        }
    };
    event.outcome = outcome;
    if let Some(detail) = detail {
        tracing::info!(target: "idgate::security", incident = %event.incident, %detail, "refusal detail");
    }
    event.trace();
    let at = state.clock.now();
    let stored = event.clone();
    if let Err(e) = state
        .db
        .run(move |conn| audit::insert_event(conn, &stored, at))
        .await
    {
        tracing::error!(incident = %event.incident, error = %e, "cannot write the security log");
    }
    match error {
        VerifyError::Refused(reason, _) => SignInError::Refused {
            reason,
            incident: event.incident,
        },
        VerifyError::Unavailable(_) => SignInError::Unavailable {
            incident: event.incident,
        },
    }
}

/// The database part of a sign-in, decided in one transaction.
struct Completion {
    verified: VerifiedToken,
    id_hash: String,
    client_ip: Option<IpAddr>,
    now: i64,
    expires_at: i64,
    api_usernames: Vec<String>,
    api_ips: Vec<ipnet::IpNet>,
    event: SecurityEvent,
}

#[derive(Debug)]
enum TxError {
    /// A rule refused; the member, when one was found.
    Refused(Reason, Option<i64>),
    Store(StoreError),
}

impl From<diesel::result::Error> for TxError {
    fn from(e: diesel::result::Error) -> Self {
        TxError::Store(e.into())
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        TxError::Store(e)
    }
}

/// The member rules from `no_member` to `replayed`, then the session and the success event, in
/// one transaction: a refusal stores nothing (no binding, no used token).
///
/// The replay guard's row is written first: that takes SQLite's write lock at the start (so
/// concurrent sign-ins queue instead of failing), and of two concurrent uses of one token exactly
/// one finds the row absent. Its answer is applied last, in table order.
fn complete(conn: &mut AnyConnection, work: Completion) -> Result<(Member, String, i64), TxError> {
    conn.transaction(|conn| {
        let v = &work.verified;
        let first_use = sessions::remember_token(conn, &v.fingerprint, v.usable_until)?;
        let member = members::find_member_by_email(conn, &v.email)?
            .ok_or(TxError::Refused(Reason::NoMember, None))?;
        let refuse = |reason| TxError::Refused(reason, Some(member.id));
        if !member.status.may_sign_in() {
            return Err(refuse(Reason::MemberInactive));
        }
        if member.locked {
            return Err(refuse(Reason::MemberLocked));
        }
        let subject = v
            .subject
            .as_deref()
            .ok_or(refuse(Reason::IdentityMismatch))?;
        let bound = members::bindings_of(conn, member.id)?
            .into_iter()
            .find(|b| b.provider == v.provider);
        match bound {
            Some(binding) if binding.subject == subject => {}
            Some(_) => return Err(refuse(Reason::IdentityMismatch)),
            None => {
                if !members::bind_subject(conn, member.id, &v.provider, subject, work.now)? {
                    return Err(refuse(Reason::IdentityMismatch));
                }
            }
        }
        if !access::api_account_allowed(
            &member.username,
            work.client_ip,
            &work.api_usernames,
            &work.api_ips,
        ) {
            return Err(refuse(Reason::ApiAccountIp));
        }
        if !first_use {
            return Err(refuse(Reason::Replayed));
        }
        sessions::insert_session(
            conn,
            &NewSession {
                id_hash: &work.id_hash,
                member_id: member.id,
                provider: &v.provider,
                now: work.now,
                expires_at: work.expires_at,
            },
        )?;
        let mut event = work.event.clone();
        event.outcome = Outcome::Success;
        event.member_id = Some(member.id);
        audit::insert_event(conn, &event, work.now)?;
        Ok((member, v.provider.clone(), work.expires_at))
    })
}
