//! Sessions and the replay guard's used tokens in the database (both backends).

use diesel::prelude::*;

use super::members::{
    MemberRow, SignInIdentity, SignInMember, SignInRow, SignInSqlType, push_sign_in_lookup,
};
use super::schema::{members, sessions, used_tokens};
use super::{AnyConnection, StoreError, on_backend};
use crate::audit::SecurityEvent;
use crate::members::Member;
use crate::sessions::Session;

/// A session to store (for a member given beside it).
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub id_hash: &'a str,
    pub provider: &'a str,
    pub now: i64,
    pub expires_at: i64,
    /// What the provider's sign-in said, when the session comes from an ID token.
    pub from_token: Option<FromToken<'a>>,
}

/// What a session remembers of the ID token it came from, for logout at and from the provider.
#[derive(Debug, Clone, Copy)]
pub struct FromToken<'a> {
    pub issuer: &'a str,
    pub subject: Option<&'a str>,
    /// The provider's session id (`sid`), if the token named one.
    pub sid: Option<&'a str>,
    /// The ID token itself, sent back as `id_token_hint` when the person signs out (a session
    /// made from an authentication code has none).
    pub id_token: Option<&'a str>,
}

pub fn insert_session(
    conn: &mut AnyConnection,
    member_id: i64,
    new: &NewSession<'_>,
) -> Result<(), StoreError> {
    let insert = diesel::insert_into(sessions::table).values((
        sessions::id_hash.eq(new.id_hash),
        sessions::member_id.eq(member_id),
        sessions::provider.eq(new.provider),
        sessions::created_at.eq(new.now),
        sessions::last_seen_at.eq(new.now),
        sessions::expires_at.eq(new.expires_at),
        sessions::issuer.eq(new.from_token.map(|t| t.issuer)),
        sessions::subject.eq(new.from_token.and_then(|t| t.subject)),
        sessions::sid.eq(new.from_token.and_then(|t| t.sid)),
        sessions::id_token.eq(new.from_token.and_then(|t| t.id_token)),
    ));
    on_backend!(conn, |c| insert.execute(c))?;
    Ok(())
}

/// The end of a sign-in: claims its ID token (see [`claim_token`]) and, when this is the token's
/// first use, stores the new session and the sign-in's security-log event. On PostgreSQL this
/// is one statement (one round trip), where the session and the event are inserted only if the
/// token's row was; on SQLite, three. Whatever the answer, the caller's transaction (its
/// savepoint) must be rolled back unless it is [`TokenUse::First`].
pub fn claim_token_for_session(
    conn: &mut AnyConnection,
    token: ClaimedToken<'_>,
    member_id: i64,
    new: &NewSession<'_>,
    event: &SecurityEvent,
) -> Result<TokenUse, StoreError> {
    let AnyConnection::Postgresql(c) = conn else {
        let token_use = claim_token(conn, token)?;
        if token_use == TokenUse::First {
            insert_session(conn, member_id, new)?;
            super::audit::insert_event(conn, event, new.now)?;
        }
        return Ok(token_use);
    };
    let claimed = SessionClaim {
        token,
        member_id: &member_id,
        new,
        event,
    }
    .get_result::<i64>(c)
    .map(|claimed| claimed > 0)
    .map_err(StoreError::from);
    token_use(claimed)
}

/// [`claim_token_for_session`]'s one statement on PostgreSQL: the session and the event are
/// inserted from the replay guard's `RETURNING` row, so only when the token's row was. A query
/// type of its own rather than `sql_query`, so that the connection prepares it once and then
/// only executes it (one round trip, no parsing or planning per sign-in).
struct SessionClaim<'a> {
    token: ClaimedToken<'a>,
    member_id: &'a i64,
    new: &'a NewSession<'a>,
    event: &'a SecurityEvent,
}

impl diesel::query_builder::QueryId for SessionClaim<'_> {
    type QueryId = SessionClaim<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl diesel::query_builder::Query for SessionClaim<'_> {
    type SqlType = diesel::sql_types::BigInt;
}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for SessionClaim<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Text};
        out.push_sql("WITH claim AS (INSERT INTO used_tokens (token_hash, expires_at) VALUES (");
        out.push_bind_param::<Text, _>(self.token.fingerprint)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&self.token.usable_until)?;
        out.push_sql(") ON CONFLICT DO NOTHING RETURNING 1), ");
        let member = MemberOf::Id(self.member_id, &self.event.member_id);
        push_session_and_event(out.reborrow(), member, self.new, self.event)?;
        out.push_sql(" SELECT count(*) FROM claim");
        Ok(())
    }
}

impl RunQueryDsl<diesel::pg::PgConnection> for SessionClaim<'_> {}

/// Whose session and event [`push_session_and_event`] inserts.
enum MemberOf<'a> {
    /// This member's (the session's, then the event's `member_id`).
    Id(&'a i64, &'a Option<i64>),
    /// The member that the statement found, its row `f` ([`SignInClaim`]).
    Found,
}

/// The `session` and `logged` parts of a `WITH` whose `claim` part returns a row when the
/// token's row was inserted: they insert the session and the event from that row, so only then.
fn push_session_and_event<'b>(
    mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    member: MemberOf<'b>,
    new: &'b NewSession<'b>,
    event: &'b SecurityEvent,
) -> QueryResult<()> {
    use diesel::sql_types::{BigInt, Nullable, Text};
    let from = new.from_token;
    out.push_sql(
        "session AS (INSERT INTO sessions (id_hash, member_id, provider, created_at, \
           last_seen_at, expires_at, issuer, subject, sid, id_token) SELECT ",
    );
    out.push_bind_param::<Text, _>(new.id_hash)?;
    out.push_sql(", ");
    match member {
        MemberOf::Id(id, _) => out.push_bind_param::<BigInt, _>(id)?,
        MemberOf::Found => out.push_sql("f.id"),
    }
    out.push_sql(", ");
    out.push_bind_param::<Text, _>(new.provider)?;
    out.push_sql(", ");
    out.push_bind_param::<BigInt, _>(&new.now)?;
    out.push_sql(", ");
    out.push_bind_param::<BigInt, _>(&new.now)?;
    out.push_sql(", ");
    out.push_bind_param::<BigInt, _>(&new.expires_at)?;
    for value in [
        from.map(|t| t.issuer),
        from.and_then(|t| t.subject),
        from.and_then(|t| t.sid),
        from.and_then(|t| t.id_token),
    ] {
        out.push_sql(", ");
        match value {
            Some(text) => out.push_bind_param::<Nullable<Text>, _>(text)?,
            None => out.push_bind_param::<Nullable<Text>, _>(&None::<&str>)?,
        }
    }
    let rows = match member {
        MemberOf::Id(..) => " FROM claim), ",
        MemberOf::Found => " FROM claim, f), ",
    };
    out.push_sql(rows);
    out.push_sql(
        "logged AS (INSERT INTO security_log (at, event, outcome, reason, provider, email, \
           member_id, client_ip, user_agent, incident, email_source) SELECT ",
    );
    out.push_bind_param::<BigInt, _>(&new.now)?;
    out.push_sql(", ");
    out.push_bind_param::<Text, _>(event.event.as_str())?;
    out.push_sql(", ");
    out.push_bind_param::<Text, _>(event.outcome.as_str())?;
    for value in [&event.reason, &event.provider, &event.email] {
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(value)?;
    }
    out.push_sql(", ");
    match member {
        MemberOf::Id(_, logged) => out.push_bind_param::<Nullable<BigInt>, _>(logged)?,
        MemberOf::Found => out.push_sql("f.id"),
    }
    for value in [&event.client_ip, &event.user_agent] {
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(value)?;
    }
    out.push_sql(", ");
    out.push_bind_param::<Text, _>(&event.incident)?;
    out.push_sql(", ");
    out.push_bind_param::<Nullable<Text>, _>(&event.email_source)?;
    out.push_sql(&rows[..rows.len() - 2]);
    Ok(())
}

/// A sign-in in one statement on PostgreSQL ([`find_member_and_sign_in`]).
pub struct SignInClaim<'a> {
    pub who: SignInIdentity<'a>,
    /// The states that let a member sign in (`member_inactive`).
    pub statuses: &'a [&'static str],
    /// The normalised usernames that may not sign in from the client's address: the API
    /// accounts when the address is not one of theirs, else none (`api_account_ip`).
    pub barred_usernames: &'a [String],
    pub token: ClaimedToken<'a>,
    pub new: &'a NewSession<'a>,
    /// The success event; its `member_id` is the member found.
    pub event: &'a SecurityEvent,
}

/// A sign-in's member lookup ([`find_member_for_sign_in`]) and, when the member's row passes
/// every rule that it decides, the claim of the token with the session and the success event
/// ([`claim_token_for_session`]): one statement, one round trip where those two take two (on
/// PostgreSQL; SQLite has no inserts in a `WITH`). The rules the row decides: the state
/// (`member_inactive`, `member_locked`), the binding (bound to the token's subject at its
/// issuer, no binding not carried over that contradicts it: `identity_mismatch`) and the
/// API-account rule (`barred_usernames`); the caller checks the domain rule first.
///
/// `None`: no member has that email. Else the member as found, locked as the lookup locks it,
/// and whether the session was stored. When it was not (a rule refused, a first binding at the
/// issuer, the token used before), nothing was written, and the caller goes on as after the
/// lookup. When it was, the caller still checks every rule on what was found, and fails the
/// transaction if one refuses.
///
/// [`find_member_for_sign_in`]: super::members::find_member_for_sign_in
pub fn find_member_and_sign_in(
    conn: &mut diesel::PgConnection,
    claim: SignInClaim<'_>,
) -> Result<Option<(SignInMember, bool)>, StoreError> {
    let Some((row, stored)) = claim.get_result::<(SignInRow, bool)>(conn).optional()? else {
        return Ok(None);
    };
    match SignInMember::try_from(row) {
        Ok(found) => Ok(Some((found, stored))),
        // Rows were written: a failure of the database, so that the caller's transaction is
        // rolled back rather than committed with the caller's refusal.
        Err(error) if stored => Err(StoreError::Db(super::DbError::Unavailable(format!(
            "a sign-in stored its session, then could not read its member: {error}"
        )))),
        Err(error) => Err(error),
    }
}

impl diesel::query_builder::QueryId for SignInClaim<'_> {
    type QueryId = SignInClaim<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl diesel::query_builder::Query for SignInClaim<'_> {
    type SqlType = (SignInSqlType, diesel::sql_types::Bool);
}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for SignInClaim<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{Array, BigInt, Nullable, Text};
        // `f` is the lookup as it stands, locks and all; a `WITH` part that is referred to more
        // than once, or locks rows, is run once.
        out.push_sql("WITH f AS (");
        push_sign_in_lookup(out.reborrow(), &self.who, true)?;
        out.push_sql("), claim AS (INSERT INTO used_tokens (token_hash, expires_at) SELECT ");
        out.push_bind_param::<Text, _>(self.token.fingerprint)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&self.token.usable_until)?;
        out.push_sql(" FROM f WHERE f.bound = ");
        out.push_bind_param::<Nullable<Text>, _>(&self.who.subject)?;
        out.push_sql(" AND NOT f.legacy AND NOT f.locked AND f.status = ANY(");
        out.push_bind_param::<Array<Text>, _>(self.statuses)?;
        // The username as the locked row has it (a rename committed meanwhile is seen).
        out.push_sql(") AND f.username_normalized <> ALL(");
        out.push_bind_param::<Array<Text>, _>(self.barred_usernames)?;
        out.push_sql(") ON CONFLICT DO NOTHING RETURNING 1), ");
        push_session_and_event(out.reborrow(), MemberOf::Found, self.new, self.event)?;
        out.push_sql(
            " SELECT f.id, f.email, f.username, f.firstname, f.surname, f.status, f.locked, \
               f.admin, f.created_at, f.updated_at, f.bound, f.legacy, \
               EXISTS (SELECT 1 FROM claim) FROM f",
        );
        Ok(())
    }
}

impl RunQueryDsl<diesel::pg::PgConnection> for SignInClaim<'_> {}

/// The replay guard's key of an ID token and how long it is kept.
#[derive(Debug, Clone, Copy)]
pub struct ClaimedToken<'a> {
    pub fingerprint: &'a str,
    pub usable_until: i64,
}

/// The columns of a `sessions` row that a lookup reads, beside the member.
type SessionColumns = (String, String, i64, i64, i64);

/// The session with this id hash, with its member.
pub fn find_session(
    conn: &mut AnyConnection,
    id_hash: &str,
) -> Result<Option<Session>, StoreError> {
    // Built in each arm: `as_select` is typed by its backend.
    let row: Option<(SessionColumns, MemberRow)> = on_backend!(conn, |c| sessions::table
        .inner_join(members::table)
        .filter(sessions::id_hash.eq(id_hash))
        .select((
            (
                sessions::id_hash,
                sessions::provider,
                sessions::created_at,
                sessions::last_seen_at,
                sessions::expires_at,
            ),
            MemberRow::as_select(),
        ))
        .get_result(c)
        .optional())?;
    row.map(
        |((id_hash, provider, created_at, last_seen_at, expires_at), member)| {
            Ok(Session {
                id_hash,
                member: Member::try_from(member)?,
                provider,
                created_at,
                last_seen_at,
                expires_at,
            })
        },
    )
    .transpose()
}

/// Records activity on a session (the sliding idle timeout); false when the session is gone.
pub fn touch_session(
    conn: &mut AnyConnection,
    id_hash: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let update = diesel::update(sessions::table.find(id_hash)).set(sessions::last_seen_at.eq(now));
    Ok(on_backend!(conn, |c| update.execute(c))? > 0)
}

/// Ends a session and gives back the ID token it remembered (for the provider's sign-out),
/// in one statement.
pub fn take_session_id_token(
    conn: &mut AnyConnection,
    id_hash: &str,
) -> Result<Option<String>, StoreError> {
    let query = diesel::delete(sessions::table.find(id_hash)).returning(sessions::id_token);
    Ok(on_backend!(conn, |c| query.get_result(c).optional())?.flatten())
}

/// Ends the sessions of the provider session `sid` at `issuer`; the id hashes of those ended.
pub fn delete_provider_session(
    conn: &mut AnyConnection,
    issuer: &str,
    sid: &str,
) -> Result<Vec<String>, StoreError> {
    Ok(diesel::delete(
        sessions::table
            .filter(sessions::issuer.eq(issuer))
            .filter(sessions::sid.eq(sid)),
    )
    .returning(sessions::id_hash)
    .load(conn)?)
}

/// Ends the sessions of `subject` at `issuer`: those that remember them, and those made before
/// sessions remembered them, signed in through `provider` by the member bound to that subject;
/// the id hashes of those ended. A scan of the sessions (no index has their subjects): such a
/// logout, naming no `sid`, is rare, and an index would cost every sign-in a page.
pub fn delete_subject_sessions(
    conn: &mut AnyConnection,
    issuer: &str,
    subject: &str,
    provider: &str,
) -> Result<Vec<String>, StoreError> {
    let mut ended: Vec<String> = diesel::delete(
        sessions::table
            .filter(sessions::issuer.eq(issuer))
            .filter(sessions::subject.eq(subject)),
    )
    .returning(sessions::id_hash)
    .load(conn)?;
    if let Some(member_id) = super::members::bound_member(conn, issuer, subject)? {
        let older: Vec<String> = diesel::delete(
            sessions::table
                .filter(sessions::issuer.is_null())
                .filter(sessions::member_id.eq(member_id))
                .filter(sessions::provider.eq(provider)),
        )
        .returning(sessions::id_hash)
        .load(conn)?;
        ended.extend(older);
    }
    Ok(ended)
}

/// Ends the sessions, and removes the unused authentication codes, that `allowed` no longer
/// lets through (`allowed(provider, member email)`): how many of each.
pub fn revoke_disallowed(
    conn: &mut AnyConnection,
    allowed: &dyn Fn(&str, &str) -> bool,
) -> Result<(Vec<String>, usize), StoreError> {
    use super::schema::auth_codes;
    let live: Vec<(String, String, String)> = sessions::table
        .inner_join(members::table)
        .select((sessions::id_hash, sessions::provider, members::email))
        .load(conn)?;
    let ended: Vec<String> = live
        .into_iter()
        .filter(|(_, provider, email)| !allowed(provider, email))
        .map(|(id_hash, _, _)| id_hash)
        .collect();
    for chunk in ended.chunks(500) {
        diesel::delete(sessions::table.filter(sessions::id_hash.eq_any(chunk))).execute(conn)?;
    }
    let codes: Vec<(String, String, String)> = auth_codes::table
        .inner_join(members::table)
        .select((auth_codes::code_hash, auth_codes::provider, members::email))
        .load(conn)?;
    let voided: Vec<String> = codes
        .into_iter()
        .filter(|(_, provider, email)| !allowed(provider, email))
        .map(|(code_hash, _, _)| code_hash)
        .collect();
    for chunk in voided.chunks(500) {
        diesel::delete(auth_codes::table.filter(auth_codes::code_hash.eq_any(chunk)))
            .execute(conn)?;
    }
    Ok((ended, voided.len()))
}

/// Ends a session; false when there was none.
pub fn delete_session(conn: &mut AnyConnection, id_hash: &str) -> Result<bool, StoreError> {
    Ok(diesel::delete(sessions::table.find(id_hash)).execute(conn)? > 0)
}

/// Ends every session of a member (locked, disabled, unbound or removed); how many ended.
pub fn delete_member_sessions(
    conn: &mut AnyConnection,
    member_id: i64,
) -> Result<usize, StoreError> {
    Ok(diesel::delete(sessions::table.filter(sessions::member_id.eq(member_id))).execute(conn)?)
}

/// Ends every session signed in through `provider`; how many.
pub fn delete_sessions_through(
    conn: &mut AnyConnection,
    provider: &str,
) -> Result<usize, StoreError> {
    Ok(diesel::delete(sessions::table.filter(sessions::provider.eq(provider))).execute(conn)?)
}

/// Ends the member's sessions signed in through one provider.
pub fn delete_provider_sessions(
    conn: &mut AnyConnection,
    member_id: i64,
    provider: &str,
) -> Result<usize, StoreError> {
    Ok(diesel::delete(
        sessions::table
            .filter(sessions::member_id.eq(member_id))
            .filter(sessions::provider.eq(provider)),
    )
    .execute(conn)?)
}

/// What the replay guard says of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenUse {
    /// Stored now: this is the token's first use.
    First,
    /// Used before.
    Again,
    /// Another transaction stored it and has not committed yet, longer than the writer waits
    /// for a lock (PostgreSQL: another instance is signing the same token in right now). The
    /// transaction must end (roll back to its savepoint): the failed statement aborted it.
    InUse,
}

/// Claims an ID token for one sign-in, until it is no longer usable (see [`TokenUse`]).
pub fn claim_token(
    conn: &mut AnyConnection,
    token: ClaimedToken<'_>,
) -> Result<TokenUse, StoreError> {
    token_use(remember_token(conn, token.fingerprint, token.usable_until))
}

/// What storing a token's row says of its use: stored, there already, or waited for too long
/// (a lock timeout).
fn token_use(stored: Result<bool, StoreError>) -> Result<TokenUse, StoreError> {
    match stored {
        Ok(true) => Ok(TokenUse::First),
        Ok(false) => Ok(TokenUse::Again),
        Err(StoreError::Db(super::DbError::Query(diesel::result::Error::DatabaseError(
            _,
            info,
        )))) if info.message().contains("lock timeout") => {
            tracing::info!(
                "the replay guard's row of a token is held by another transaction (another instance signing it in): refused as replayed"
            );
            Ok(TokenUse::InUse)
        }
        Err(error) => Err(error),
    }
}

/// Remembers that an ID token was used to sign in, until `expires_at`. False when it already was.
/// `ON CONFLICT DO NOTHING` leaves the caller's transaction usable without a savepoint of its
/// own (on PostgreSQL a failed statement would abort the whole transaction); when another
/// transaction has inserted the same token and not committed yet, PostgreSQL waits for it and
/// then says whether the token was stored.
pub fn remember_token(
    conn: &mut AnyConnection,
    fingerprint: &str,
    expires_at: i64,
) -> Result<bool, StoreError> {
    let insert = diesel::insert_into(used_tokens::table)
        .values((
            used_tokens::token_hash.eq(fingerprint),
            used_tokens::expires_at.eq(expires_at),
        ))
        .on_conflict_do_nothing();
    let stored = on_backend!(conn, |c| insert.execute(c))?;
    Ok(stored > 0)
}

/// What a purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub sessions: usize,
    pub tokens: usize,
    pub flows: usize,
    pub codes: usize,
    /// Security-log rows past `securityLogDays`.
    pub events: usize,
}

/// Removes sessions past their absolute end or idle for longer than `idle_secs`, and used
/// tokens past their expiry.
pub fn purge_expired(
    conn: &mut AnyConnection,
    now: i64,
    idle_secs: i64,
) -> Result<Purged, StoreError> {
    let sessions = diesel::delete(
        sessions::table.filter(
            sessions::expires_at
                .le(now)
                .or(sessions::last_seen_at.le(now.saturating_sub(idle_secs))),
        ),
    )
    .execute(conn)?;
    let tokens =
        diesel::delete(used_tokens::table.filter(used_tokens::expires_at.le(now))).execute(conn)?;
    Ok(Purged {
        sessions,
        tokens,
        ..Purged::default()
    })
}

/// A session as an administrator sees it: the first 16 hex characters of the SHA-256 of its id
/// (a handle that reveals nothing of the id), its member and its times.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionSummary {
    pub handle: String,
    pub member_id: i64,
    pub email: String,
    pub provider: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

/// How long a handle is: enough to name one session, too little to find it by.
pub const HANDLE_LEN: usize = 16;

/// Every session (of one member, when given), oldest first.
pub fn list_sessions(
    conn: &mut AnyConnection,
    member_id: Option<i64>,
) -> Result<Vec<SessionSummary>, StoreError> {
    let mut query = sessions::table
        .inner_join(members::table)
        .select((
            sessions::id_hash,
            sessions::member_id,
            members::email,
            sessions::provider,
            sessions::created_at,
            sessions::last_seen_at,
            sessions::expires_at,
        ))
        .order((sessions::created_at, sessions::id_hash))
        .into_boxed();
    if let Some(id) = member_id {
        query = query.filter(sessions::member_id.eq(id));
    }
    let rows: Vec<(String, i64, String, String, i64, i64, i64)> = query.load(conn)?;
    Ok(rows
        .into_iter()
        .map(
            |(hash, member_id, email, provider, created_at, last_seen_at, expires_at)| {
                SessionSummary {
                    handle: crate::ids::session_key_hash(&hash)
                        .chars()
                        .take(HANDLE_LEN)
                        .collect(),
                    member_id,
                    email,
                    provider,
                    created_at,
                    last_seen_at,
                    expires_at,
                }
            },
        )
        .collect())
}

/// Ends the session whose handle this is; false when none has it.
pub fn revoke_by_handle(conn: &mut AnyConnection, handle: &str) -> Result<bool, StoreError> {
    if handle.len() != HANDLE_LEN || !handle.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(false);
    }
    // The keys whose SHA-256 part starts with the handle: a key of 64 characters is that hash
    // alone, one of 80 has the session's time (16 characters) before it (see
    // `ids::session_key`). An administrator's command, so a scan of the table is fine.
    let handle = handle.to_ascii_lowercase();
    let rest = "_".repeat(crate::ids::HASH_LEN - HANDLE_LEN);
    let time = "_".repeat(crate::ids::SESSION_KEY_TIME_LEN);
    Ok(diesel::delete(
        sessions::table.filter(
            sessions::id_hash
                .like(format!("{handle}{rest}"))
                .or(sessions::id_hash.like(format!("{time}{handle}{rest}"))),
        ),
    )
    .execute(conn)?
        > 0)
}
