//! Sign-in with an ID token: the token rules ([`crate::oidc::verify`]), then the member and
//! policy rules of the token rules in table order, then a new session. Every attempt is written to the
//! security log.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::access;
use crate::audit::{self, Event, Outcome, SecurityEvent};
use crate::db::codes::{StoredCode, insert_code};
use crate::db::members::{SignInIdentity, SignInMember};
use crate::db::sessions::{
    ClaimedToken, FromToken, NewSession, TokenUse, claim_token, claim_token_for_session,
    delete_session, insert_session,
};
use crate::db::{self, AnyConnection, StoreError};
use crate::flows::CODE_LIFETIME_SECS;
use crate::identity::IdentityConfig;
use crate::ids::{hash_id, new_incident_id, new_session_id, random_token};
use crate::members::Member;
use crate::metrics::SignInLabels;
use crate::oidc::token;
use crate::oidc::verify::{
    Context, VerifiedToken, VerifyError, find_provider, verify_access_token, verify_id_token,
};
use crate::reason::Reason;
use crate::sessions::SessionView;
use crate::state::AppState;

mod bearer;
mod redeem;
mod rules;

pub use bearer::authorize_bearer;
pub use redeem::redeem_code;
use rules::{
    check_api_account, check_binding, check_binding_as_found, check_existing_binding, check_state,
};

/// Where an attempt comes from, for the rules and the security log.
#[derive(Debug, Clone, Default)]
pub struct Attempt {
    pub client_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// The hash of the session the browser holds, which a new sign-in ends.
    pub previous_session: Option<String>,
}

/// What the flow that receives the token expects of it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Expected<'a> {
    /// The nonce idgate sent, when idgate started the flow.
    pub nonce: Option<&'a str>,
    /// The provider the flow was started for: a token from any other is `unknown_issuer`.
    pub provider: Option<&'a str>,
    /// The access token of the same sign-in, for the userinfo endpoint when the email is read
    /// there (`emailSource`).
    pub access_token: Option<&'a str>,
}

/// What a successful sign-in gives.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Grant {
    /// A session for the browser that sent the token.
    Session,
    /// A one-time authentication code for a registered client (its lowercase id).
    Code { client_id: String },
}

/// A new session: its id (for the cookie only, never logged) and what it holds.
#[derive(Debug)]
pub struct SignedIn {
    pub session_id: String,
    pub view: SessionView,
}

/// What was granted: a session, or an authentication code (never logged).
#[derive(Debug)]
enum Granted {
    Session(SignedIn),
    Code { code: String, expires_in: i64 },
}

/// Why a sign-in did not happen; `incident` ties the answer to the security log.
#[derive(Debug)]
pub enum SignInError {
    Refused {
        reason: Reason,
        incident: String,
        /// For a member or policy rule: the email the provider asserted (the person may have
        /// signed in at the provider with another account than meant).
        email: Option<String>,
    },
    Unavailable {
        incident: String,
    },
    /// Refused, beyond the address's allowance of anonymous writes: nothing was stored.
    RateLimited {
        incident: String,
        retry_after: u64,
    },
}

/// Signs in with an ID token (every rule of the token rules) and starts a session.
pub async fn sign_in(
    state: &AppState,
    raw_token: &str,
    expected: Expected<'_>,
    attempt: &Attempt,
) -> Result<SignedIn, SignInError> {
    let started = Instant::now();
    let result = grant(state, raw_token, expected, Grant::Session, attempt).await;
    measure(state, "login", result.as_ref().err(), started);
    match result? {
        Granted::Session(signed_in) => Ok(signed_in),
        Granted::Code { .. } => Err(SignInError::Unavailable {
            incident: new_incident_id(),
        }),
    }
}

/// Checks an ID token (every rule of the token rules) for a registered client and issues a one-time
/// authentication code: `(code, seconds it is valid)`.
pub async fn issue_code(
    state: &AppState,
    raw_token: &str,
    expected: Expected<'_>,
    client_id: &str,
    attempt: &Attempt,
) -> Result<(String, i64), SignInError> {
    let grant_kind = Grant::Code {
        client_id: client_id.to_string(),
    };
    let started = Instant::now();
    let result = grant(state, raw_token, expected, grant_kind, attempt).await;
    measure(state, "code_issued", result.as_ref().err(), started);
    match result? {
        Granted::Code { code, expires_in } => Ok((code, expires_in)),
        Granted::Session(_) => Err(SignInError::Unavailable {
            incident: new_incident_id(),
        }),
    }
}

/// Counts a sign-in (or code) by outcome and reason, with its latency.
fn measure(state: &AppState, event: &'static str, error: Option<&SignInError>, started: Instant) {
    let (outcome, reason) = match error {
        None => ("success", ""),
        Some(SignInError::Refused { reason, .. }) => ("failure", reason.code()),
        Some(SignInError::Unavailable { .. }) => ("error", "unavailable"),
        Some(SignInError::RateLimited { .. }) => ("failure", "rate_limited"),
    };
    state.metrics.sign_in(
        SignInLabels {
            event,
            outcome,
            reason,
        },
        started.elapsed(),
    );
}

/// Every rule of the token rules, then the grant.
async fn grant(
    state: &AppState,
    raw_token: &str,
    expected: Expected<'_>,
    grant: Grant,
    attempt: &Attempt,
) -> Result<Granted, SignInError> {
    let config = state.config.load_full();
    let event_kind = match grant {
        Grant::Session => Event::Login,
        Grant::Code { .. } => Event::CodeIssued,
    };
    let mut event = attempt.event(event_kind);

    let clock = state.clock.clone();
    let context = Context {
        nonce: expected.nonce,
        access_token: expected.access_token,
        provider: expected.provider,
    };
    let verified =
        match verify_id_token(&state.keys, &config, raw_token, context, || clock.now()).await {
            Ok(verified) => verified,
            Err(error) => {
                describe_unverified(&mut event, &config, raw_token, &error);
                return Err(refuse(state, event, error).await);
            }
        };
    event.provider = Some(verified.provider.clone());
    event.email = Some(audit::clean(verified.email.as_str(), 254));
    event.email_source = verified.email_from_userinfo.then_some("userinfo");

    let domain = config.domains.decide(verified.email.domain());
    if !domain.allows_provider(&verified.provider) {
        return Err(refuse(state, event, Reason::DomainNotAllowed.into()).await);
    }

    // A session id, or an authentication code (256 random bits), and the key kept of it.
    let (secret, secret_hash) = match grant {
        Grant::Session => new_session_id(),
        Grant::Code { .. } => {
            let code = random_token();
            let hash = hash_id(&code);
            (code, hash)
        }
    };
    let now = state.clock.now();
    let idle_secs = config.properties.idle_secs();
    let expires_at = match grant {
        Grant::Session => now.saturating_add(state.settings.cookie.lifetime_secs),
        Grant::Code { .. } => now.saturating_add(CODE_LIFETIME_SECS),
    };
    let replaces = match grant {
        Grant::Session => attempt.previous_session.clone(),
        Grant::Code { .. } => None,
    };
    let work = Completion {
        id_token: (matches!(grant, Grant::Session) && verified.wanted_at_sign_out)
            .then(|| raw_token.to_string()),
        verified,
        grant,
        secret_hash,
        client_ip: attempt.client_ip,
        now,
        expires_at,
        config: config.clone(),
        running: state.config.clone(),
        replaces,
        event: event.clone(),
    };
    // Only PostgreSQL makes sign-ins together; SQLite runs each as it comes.
    let together = (!state.db.url().is_sqlite())
        .then(|| common_sign_in(&work))
        .flatten();
    match state
        .db
        .write_sign_in(together, move |conn, run| complete(conn, &work, run))
        .await
    {
        Ok((member, provider)) => {
            event.outcome = Outcome::Success;
            event.member_id = Some(member.id);
            event.trace();
            Ok(match event_kind {
                Event::CodeIssued => Granted::Code {
                    code: secret,
                    expires_in: CODE_LIFETIME_SECS,
                },
                _ => Granted::Session(SignedIn {
                    session_id: secret,
                    view: SessionView {
                        member,
                        provider,
                        ends_at: expires_at.min(now.saturating_add(idle_secs)),
                    },
                }),
            })
        }
        Err(error) => Err(transaction_failure(state, event, error).await),
    }
}

impl Attempt {
    /// A security-log event of this attempt, a failure until it succeeds.
    pub fn event(&self, kind: Event) -> SecurityEvent {
        let mut event = SecurityEvent::new(kind, Outcome::Failure, new_incident_id());
        event.client_ip = self.client_ip.map(|ip| ip.to_string());
        event.user_agent = self.user_agent.as_deref().map(|ua| audit::clean(ua, 256));
        event
    }
}

/// A sign-in's transaction that did not succeed: a refusal (logged and stored) or a database
/// failure (503).
async fn transaction_failure(
    state: &AppState,
    mut event: SecurityEvent,
    error: TxError,
) -> SignInError {
    match error {
        TxError::Refused(reason, member_id) => {
            event.member_id = member_id;
            refuse(state, event, reason.into()).await
        }
        TxError::Store(error) => database_failure(event, &error),
    }
}

/// The database failed: logged (tracing only: the database is what failed), answered 503.
fn database_failure(mut event: SecurityEvent, error: &StoreError) -> SignInError {
    event.outcome = Outcome::Error;
    event.reason = Some("unavailable".into());
    tracing::error!(incident = %event.incident, %error, "sign-in failed: database");
    event.trace();
    SignInError::Unavailable {
        incident: event.incident,
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
    // Any algorithm a provider may list: this only names the provider and the email.
    let any_alg: token::AlgPolicy<'_> = &|_, _| true;
    let Ok(token) = token::parse_with(raw, token::TokenKind::Id, any_alg) else {
        return;
    };
    let iss = token.claims.get("iss").and_then(|v| v.as_str());
    event.provider = iss.and_then(|iss| {
        find_provider(config, iss, &token.claims, |p| Some(p.client_id.as_str()))
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

/// Logs a refusal to tracing only, and turns it into the caller's error.
fn refuse_unstored(mut event: SecurityEvent, error: VerifyError) -> SignInError {
    match error {
        VerifyError::Refused(reason, _) => {
            event.reason = Some(reason.code().to_string());
            event.trace();
            SignInError::Refused {
                reason,
                incident: event.incident,
                email: None,
            }
        }
        VerifyError::Unavailable(_) => {
            event.outcome = Outcome::Error;
            event.reason = Some("provider_unavailable".to_string());
            event.trace();
            SignInError::Unavailable {
                incident: event.incident,
            }
        }
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
    // A refused sign-in is an anonymous write: beyond the address's allowance, nothing is
    // stored. Bearer tokens are session checks, which never count.
    let client_ip = event.client_ip.as_deref().and_then(|ip| ip.parse().ok());
    let limited = event.event != Event::Bearer;
    if limited && let Err(retry_after) = state.take_anonymous_write(client_ip) {
        event.reason = Some("rate_limited".to_string());
        event.trace();
        return SignInError::RateLimited {
            incident: event.incident,
            retry_after,
        };
    }
    state.db.record(&event, state.clock.now()).await;
    match error {
        VerifyError::Refused(reason, _) => SignInError::Refused {
            reason,
            email: (Reason::DomainNotAllowed..=Reason::ApiAccountIp)
                .contains(&reason)
                .then(|| event.email.clone())
                .flatten(),
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
    /// The ID token, remembered by a new session for `id_token_hint` at sign-out.
    id_token: Option<String>,
    grant: Grant,
    /// SHA-256 of the new session id or authentication code.
    secret_hash: String,
    client_ip: Option<IpAddr>,
    now: i64,
    expires_at: i64,
    config: Arc<IdentityConfig>,
    /// The running configuration, as it stands when the database work runs: a reload between
    /// the token's checks and the grant (which the writer orders with the reload's revocation)
    /// is honoured.
    running: Arc<arc_swap::ArcSwap<IdentityConfig>>,
    /// The browser's previous session (its hash), ended by this sign-in.
    replaces: Option<String>,
    event: SecurityEvent,
}

#[derive(Debug)]
enum TxError {
    /// A rule refused; the member, when one was found.
    Refused(Reason, Option<i64>),
    Store(StoreError),
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        TxError::Store(e)
    }
}

impl TxError {
    /// For [`db::Database::write_unguarded`], when this sign-in may have written something
    /// without a savepoint of its own: a failure of the database fails its batch; a refusal,
    /// or a row that cannot be read, answers this sign-in alone. Rows are read before any write
    /// (a row read after one, by [`db::sessions::sign_in_together`], that cannot be read is
    /// reported as a failure of the database instead).
    fn unguarded(self) -> db::Unguarded<TxError> {
        match self {
            TxError::Store(error @ StoreError::Db(_)) => db::Unguarded::Store(error),
            other => db::Unguarded::Refused(other),
        }
    }
}

/// The member rules from `no_member` to `replayed`, then the grant and the success event, run as
/// one transaction ([`crate::db::Database::write_unguarded`]): a refusal stores nothing (no
/// binding, no used token). The rules before the replay guard write nothing; a sign-in that
/// writes before it does so in a savepoint of its own. It may run twice (see
/// [`crate::db::Database::write`]): it depends on `work`, the database and the configuration
/// in force, which it reads again each time.
///
/// The member is read first, under a lock for the rest of the transaction
/// ([`db::members::find_member_for_sign_in`]), so that a concurrent lock, unbind or removal
/// either comes before this sign-in (and is seen) or after it (and ends the new session). The
/// replay guard's row is written with the session
/// ([`crate::db::sessions::claim_token_for_session`]), or before the first write when the
/// sign-in writes something else first; `replayed` is the last rule in table order either way.
/// Of two concurrent uses of one token at most one finds the row absent: the other waits for
/// its transaction's fate, and a token another instance is signing in at this very moment is
/// refused at once, as replayed.
///
/// On PostgreSQL the common sign-in has been made in one statement with those queued beside it
/// ([`common_sign_in`]); it goes on from what that statement did (`run.joined`).
fn complete(
    conn: &mut AnyConnection,
    work: &Completion,
    run: db::Run,
) -> Result<(Member, String), db::Unguarded<TxError>> {
    let found = match run.joined {
        Some(part) => match joined(part, work).map_err(TxError::unguarded)? {
            Joined::SignedIn(member) => return Ok((member, work.verified.provider.clone())),
            Joined::Looked(found) => found,
        },
        None => find_member(conn, work).map_err(TxError::unguarded)?,
    };
    let found = found
        .ok_or(TxError::Refused(Reason::NoMember, None))
        .map_err(db::Unguarded::Refused)?;
    check_member(&found, work).map_err(db::Unguarded::Refused)?;
    // A sign-in that writes before its session (the member's first binding at this issuer, or
    // the end of the browser's previous session) claims its token first: two instances signing
    // one token in at once then wait for each other on the replay guard's row, and the second
    // is refused as `replayed`, rather than on those other rows. Its writes come before its last
    // rules, so, as the writer gives this work no savepoint of its own
    // ([`db::Database::write_unguarded`]), they are made in one of their own.
    let writes_first = found.bound_subject.is_none() || work.replaces.is_some();
    if writes_first {
        // Whatever failed, the savepoint has undone it: this sign-in alone fails.
        return db::transaction(conn, |conn| finish(conn, found, work, true))
            .map_err(db::Unguarded::Refused);
    }
    finish(conn, found, work, writes_first).map_err(TxError::unguarded)
}

/// The common sign-in (a session for a member already bound at the issuer, ending no previous
/// session) that the writer makes on PostgreSQL in one statement with those queued beside it
/// ([`db::sessions::sign_in_together`]); `None` for any other. The statement stores the session
/// only when the member's row passes the rules it decides; the domain rule is checked here,
/// with the token's email (the member's, normalised), and every rule again on what the
/// statement found ([`joined`]).
fn common_sign_in(work: &Completion) -> Option<db::sessions::SignInTogether> {
    let v = &work.verified;
    let common = work.replaces.is_none() && work.grant == Grant::Session;
    if !common
        || !work
            .running
            .load()
            .allows(&v.provider, v.email.normalized())
    {
        return None;
    }
    let properties = &work.config.properties;
    let barred_usernames =
        if access::is_api_account_address(work.client_ip, &properties.api_account_ips) {
            Vec::new()
        } else {
            properties.api_account_usernames.clone()
        };
    let mut event = work.event.clone();
    event.outcome = Outcome::Success;
    let legacy = work.config.providers_of_issuer(&v.issuer);
    Some(db::sessions::SignInTogether::new(
        sign_in_identity(work, &legacy),
        claimed_token(v),
        &new_session(work),
        barred_usernames,
        event,
    ))
}

/// What the statement of sign-ins together did for this one.
enum Joined {
    /// Every rule passed and the session is stored.
    SignedIn(Member),
    /// Nothing was written: the rules go on from the member as found (`None`: no member).
    Looked(Option<SignInMember>),
}

/// [`complete`] from the statement of sign-ins together: its failure, which has aborted the
/// transaction, is a failure of the database; a stored session is granted only when every rule
/// holds on what the statement found. Should one refuse it (a bug), nothing is granted: a
/// failure of the database, which runs the batch again (see [`db::Database::write`]), where
/// this sign-in goes step by step.
fn joined(
    part: Result<db::sessions::SignedInTogether, String>,
    work: &Completion,
) -> Result<Joined, TxError> {
    let unavailable = |why: String| TxError::Store(StoreError::Db(db::DbError::Unavailable(why)));
    let part = part.map_err(unavailable)?;
    if part.fingerprint != work.verified.fingerprint {
        return Err(unavailable(
            "a sign-in was given another sign-in's part of their statement".into(),
        ));
    }
    let (found, stored) = match part.found {
        Some((found, stored)) => (found, stored),
        None => return Ok(Joined::Looked(None)),
    };
    if !stored {
        return Ok(Joined::Looked(Some(found)));
    }
    let holds = check_member(&found, work)
        .and_then(|()| check_binding_as_found(&found, work.verified.subject.as_deref()))
        .and_then(|()| check_api_account(&found.member, work.client_ip, &work.config));
    match holds {
        Ok(()) => Ok(Joined::SignedIn(found.member)),
        Err(refused) => {
            tracing::error!(
                ?refused,
                "a sign-in's statement stored a session that a rule refuses"
            );
            Err(unavailable(
                "a sign-in's statement disagreed with its rules".into(),
            ))
        }
    }
}

/// What the member's lookup asks for.
fn sign_in_identity<'a>(work: &'a Completion, legacy: &'a [String]) -> SignInIdentity<'a> {
    let v = &work.verified;
    SignInIdentity {
        email: &v.email,
        issuer: &v.issuer,
        subject: v.subject.as_deref(),
        providers: legacy,
    }
}

/// [`complete`]'s lookup of the member, which it locks for the rest of the transaction.
fn find_member(
    conn: &mut AnyConnection,
    work: &Completion,
) -> Result<Option<SignInMember>, TxError> {
    let legacy = work.config.providers_of_issuer(&work.verified.issuer);
    Ok(db::members::find_member_for_sign_in(
        conn,
        sign_in_identity(work, &legacy),
    )?)
}

/// [`complete`]'s rules before any write, once the member is found: its domain's providers as
/// they stand now, its state.
fn check_member(found: &SignInMember, work: &Completion) -> Result<(), TxError> {
    let member = &found.member;
    if !work
        .running
        .load()
        .allows(&work.verified.provider, &member.email)
    {
        return Err(TxError::Refused(Reason::DomainNotAllowed, Some(member.id)));
    }
    check_state(member)
}

/// The replay guard's key of the token.
fn claimed_token(v: &VerifiedToken) -> ClaimedToken<'_> {
    ClaimedToken {
        fingerprint: &v.fingerprint,
        usable_until: v.usable_until,
    }
}

/// The session a sign-in stores.
fn new_session(work: &Completion) -> NewSession<'_> {
    let v = &work.verified;
    NewSession {
        id_hash: &work.secret_hash,
        provider: &v.provider,
        now: work.now,
        expires_at: work.expires_at,
        from_token: Some(FromToken {
            issuer: &v.issuer,
            subject: v.subject.as_deref(),
            sid: v.sid.as_deref(),
            id_token: work.id_token.as_deref(),
        }),
    }
}

/// [`complete`] from the replay guard on: the binding rule and the API-account rule, then the
/// grant. `claim_first`: the token is claimed before anything else is written.
fn finish(
    conn: &mut AnyConnection,
    found: SignInMember,
    work: &Completion,
    claim_first: bool,
) -> Result<(Member, String), TxError> {
    let v = &work.verified;
    let member = &found.member;
    let token = claimed_token(v);
    // The answer still counts last, in table order; a claim that could not wait (`InUse`) ends
    // here, since on PostgreSQL its failed statement has aborted the transaction.
    let claimed = if claim_first {
        match claim_token(conn, token)? {
            TokenUse::InUse => return Err(TxError::Refused(Reason::Replayed, Some(member.id))),
            token_use => Some(token_use),
        }
    } else {
        None
    };
    check_binding(
        conn,
        &found,
        &v.issuer,
        &v.provider,
        v.subject.as_deref(),
        work.now,
    )?;
    check_api_account(member, work.client_ip, &work.config)?;
    let claimed_early = match claimed {
        Some(TokenUse::First) => true,
        Some(_) => return Err(TxError::Refused(Reason::Replayed, Some(member.id))),
        None => false,
    };
    if let Some(old) = &work.replaces {
        delete_session(conn, old)?;
    }
    let mut event = work.event.clone();
    event.outcome = Outcome::Success;
    event.member_id = Some(member.id);
    let token_use = match &work.grant {
        Grant::Session => {
            let new = new_session(work);
            if claimed_early {
                insert_session(conn, member.id, &new)?;
                db::audit::insert_event(conn, &event, work.now)?;
                TokenUse::First
            } else {
                claim_token_for_session(conn, token, member.id, &new, &event)?
            }
        }
        Grant::Code { client_id } => {
            let token_use = if claimed_early {
                TokenUse::First
            } else {
                claim_token(conn, token)?
            };
            if token_use == TokenUse::First {
                insert_code(
                    conn,
                    &StoredCode {
                        code_hash: work.secret_hash.clone(),
                        member_id: member.id,
                        client_id: client_id.clone(),
                        provider: v.provider.clone(),
                        expires_at: work.expires_at,
                        issuer: Some(v.issuer.clone()),
                        subject: v.subject.clone(),
                        sid: v.sid.clone(),
                    },
                )?;
                db::audit::insert_event(conn, &event, work.now)?;
            }
            token_use
        }
    };
    // Used before, or being used by another instance at this very moment (which this sign-in
    // cannot wait for): refused, and the writer undoes what this sign-in wrote.
    if token_use != TokenUse::First {
        return Err(TxError::Refused(Reason::Replayed, Some(member.id)));
    }
    Ok((found.member, v.provider.clone()))
}
