//! Sessions and the replay guard's used tokens in the database (both backends).

use diesel::prelude::*;

use super::members::{MemberRow, SignInMember, SignInRow, SignInSqlType};
use super::schema::{members, sessions, used_tokens};
use super::{AnyConnection, StoreError, on_backend};
use crate::audit::SecurityEvent;
use crate::members::Member;
use crate::oidc::verify::LEEWAY_SECS;
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
        use diesel::sql_types::{BigInt, Nullable, Text};
        let (new, event) = (self.new, self.event);
        let from = new.from_token;
        out.push_sql("WITH claim AS (INSERT INTO used_tokens (token_hash, expires_at) VALUES (");
        out.push_bind_param::<Text, _>(self.token.fingerprint)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&self.token.usable_until)?;
        out.push_sql(
            ") ON CONFLICT DO NOTHING RETURNING 1), \
             session AS (INSERT INTO sessions (id_hash, member_id, provider, created_at, \
               last_seen_at, expires_at, issuer, subject, sid, id_token) SELECT ",
        );
        out.push_bind_param::<Text, _>(new.id_hash)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(self.member_id)?;
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
        out.push_sql(
            " FROM claim), \
             logged AS (INSERT INTO security_log (at, event, outcome, reason, provider, email, \
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
        out.push_bind_param::<Nullable<BigInt>, _>(&event.member_id)?;
        for value in [&event.client_ip, &event.user_agent] {
            out.push_sql(", ");
            out.push_bind_param::<Nullable<Text>, _>(value)?;
        }
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&event.incident)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&event.email_source)?;
        out.push_sql(" FROM claim) SELECT count(*) FROM claim");
        Ok(())
    }
}

impl RunQueryDsl<diesel::pg::PgConnection> for SessionClaim<'_> {}

/// A common sign-in, for [`sign_in_together`]: a session for a member already bound at the
/// token's issuer, ending no previous session. What the writer needs to make it in one
/// statement with the sign-ins queued beside it (PostgreSQL).
#[derive(Debug, Clone)]
pub struct SignInTogether {
    /// The token's email, normalised.
    pub email: String,
    pub issuer: String,
    pub subject: Option<String>,
    /// The provider entries of the issuer, under which bindings not carried over are stored.
    pub providers: Vec<String>,
    /// The normalised usernames that may not sign in from the client's address: the API
    /// accounts when the address is not one of theirs, else none (`api_account_ip`).
    pub barred_usernames: Vec<String>,
    /// The replay guard's key of the token, and until when it is kept.
    pub fingerprint: String,
    pub usable_until: i64,
    /// The session: its key, its provider, when it starts and ends, the provider's session
    /// id and the ID token it keeps.
    pub id_hash: String,
    pub provider: String,
    pub now: i64,
    pub expires_at: i64,
    pub sid: Option<String>,
    pub id_token: Option<String>,
    /// The success event; its `member_id` is the member found.
    pub event: SecurityEvent,
}

impl SignInTogether {
    /// The common sign-in of the member `who` names, with the token's claim and the session as
    /// the step-by-step sign-in stores them ([`claim_token_for_session`]), barring
    /// `barred_usernames`, logging `event` on success. The session's issuer and subject are
    /// `who`'s: the session comes from the token that names the member.
    pub fn new(
        who: super::members::SignInIdentity<'_>,
        token: ClaimedToken<'_>,
        new: &NewSession<'_>,
        barred_usernames: Vec<String>,
        event: SecurityEvent,
    ) -> SignInTogether {
        let from_token = new.from_token.as_ref();
        SignInTogether {
            email: who.email.normalized().to_string(),
            issuer: who.issuer.to_string(),
            subject: who.subject.map(str::to_string),
            providers: who.providers.to_vec(),
            barred_usernames,
            fingerprint: token.fingerprint.to_string(),
            usable_until: token.usable_until,
            id_hash: new.id_hash.to_string(),
            provider: new.provider.to_string(),
            now: new.now,
            expires_at: new.expires_at,
            sid: from_token.and_then(|f| f.sid).map(str::to_string),
            id_token: from_token.and_then(|f| f.id_token).map(str::to_string),
            event,
        }
    }

    /// Whether the two may be made in one statement, given different tokens: the same legacy
    /// provider entries and API accounts (the statement takes one list of each).
    pub fn goes_with(&self, other: &SignInTogether) -> bool {
        self.providers == other.providers && self.barred_usernames == other.barred_usernames
    }
}

/// How many of `sign_ins`, from the first on, may be made in one statement
/// ([`sign_in_together`]): they go with the first ([`SignInTogether::goes_with`]) and their
/// tokens differ (two with one token would both be told that the session was stored).
pub fn how_many_together<'a>(sign_ins: impl IntoIterator<Item = &'a SignInTogether>) -> usize {
    let mut sign_ins = sign_ins.into_iter();
    let Some(first) = sign_ins.next() else {
        return 0;
    };
    let mut tokens = std::collections::HashSet::from([first.fingerprint.as_str()]);
    1 + sign_ins
        .take_while(|s| first.goes_with(s) && tokens.insert(s.fingerprint.as_str()))
        .count()
}

/// What [`sign_in_together`] did for one sign-in.
#[derive(Debug)]
pub struct SignedInTogether {
    /// The sign-in's token (the replay guard's key), for its caller to check that this answer
    /// is its own.
    pub fingerprint: String,
    /// The member (locked as [`super::members::find_member_for_sign_in`] locks it, for the rest
    /// of the transaction) and whether the session was stored; `None` when no member has the
    /// email.
    pub found: Option<(SignInMember, bool)>,
}

/// Several common sign-ins ([`SignInTogether`]) in one statement, one round trip (PostgreSQL;
/// SQLite has no inserts in a `WITH`): each member's lookup, as
/// [`super::members::find_member_for_sign_in`] makes it, and, for each member whose row passes
/// every rule it decides, the claim of the token with the session and the success event
/// ([`claim_token_for_session`]). The rules the row decides: the state (`member_inactive`,
/// `member_locked`), the binding (bound to the token's subject at its issuer, no binding not
/// carried over that contradicts it: `identity_mismatch`) and the API-account rule; the caller
/// checks the domain rule first, and every rule again on what was found.
///
/// One answer per sign-in, in order. A sign-in whose session was not stored (a rule refused, a
/// first binding at the issuer, the token used before) has written nothing, and its caller goes
/// on as after the lookup. The sign-ins must all go together ([`how_many_together`]): else the
/// call fails.
pub fn sign_in_together(
    conn: &mut diesel::PgConnection,
    sign_ins: &[&SignInTogether],
) -> Result<Vec<SignedInTogether>, StoreError> {
    if sign_ins.is_empty() {
        return Ok(Vec::new());
    }
    if how_many_together(sign_ins.iter().copied()) != sign_ins.len() {
        return Err(StoreError::Db(super::DbError::Unavailable(
            "sign-ins that cannot go in one statement were given together".into(),
        )));
    }
    // Any failure from here on comes after rows were written: a failure of the database, so
    // that the caller's transaction is rolled back rather than committed with a refusal.
    let failed = |why: String| StoreError::Db(super::DbError::Unavailable(why));
    let rows: Vec<(i64, SignInRow, bool)> = SignInsTogether::new(sign_ins).load(conn)?;
    let mut answers: Vec<SignedInTogether> = sign_ins
        .iter()
        .map(|s| SignedInTogether {
            fingerprint: s.fingerprint.clone(),
            found: None,
        })
        .collect();
    for (n, row, stored) in rows {
        let answer = usize::try_from(n)
            .ok()
            .and_then(|n| answers.get_mut(n))
            .filter(|answer| answer.found.is_none())
            .ok_or_else(|| {
                failed(format!(
                    "sign-in {n} of {} answered twice or unasked",
                    sign_ins.len()
                ))
            })?;
        let found = SignInMember::try_from(row)
            .map_err(|error| failed(format!("a sign-in could not read its member: {error}")))?;
        answer.found = Some((found, stored));
    }
    Ok(answers)
}

/// [`sign_in_together`]'s statement: every sign-in's values in one array per column, so that
/// the text is the same for any number of sign-ins, prepared once per connection.
struct SignInsTogether<'a> {
    n: Vec<i64>,
    email: Vec<&'a str>,
    issuer: Vec<&'a str>,
    subject: Vec<Option<&'a str>>,
    fingerprint: Vec<&'a str>,
    usable_until: Vec<i64>,
    id_hash: Vec<&'a str>,
    provider: Vec<&'a str>,
    now: Vec<i64>,
    expires_at: Vec<i64>,
    sid: Vec<Option<&'a str>>,
    id_token: Vec<Option<&'a str>>,
    event: Vec<&'static str>,
    outcome: Vec<&'static str>,
    reason: Vec<Option<&'a str>>,
    log_provider: Vec<Option<&'a str>>,
    log_email: Vec<Option<&'a str>>,
    client_ip: Vec<Option<&'a str>>,
    user_agent: Vec<Option<&'a str>>,
    incident: Vec<&'a str>,
    email_source: Vec<Option<&'static str>>,
    statuses: Vec<&'static str>,
    providers: &'a [String],
    barred_usernames: &'a [String],
}

impl<'a> SignInsTogether<'a> {
    fn new(sign_ins: &[&'a SignInTogether]) -> Self {
        let column = |f: fn(&'a SignInTogether) -> &'a str| sign_ins.iter().map(|s| f(s)).collect();
        let optional =
            |f: fn(&'a SignInTogether) -> Option<&'a str>| sign_ins.iter().map(|s| f(s)).collect();
        let number = |f: fn(&SignInTogether) -> i64| sign_ins.iter().map(|s| f(s)).collect();
        let first = sign_ins.first().copied();
        SignInsTogether {
            n: (0..sign_ins.len())
                .map(|n| i64::try_from(n).unwrap_or(i64::MAX))
                .collect(),
            email: column(|s| &s.email),
            issuer: column(|s| &s.issuer),
            subject: optional(|s| s.subject.as_deref()),
            fingerprint: column(|s| &s.fingerprint),
            usable_until: number(|s| s.usable_until),
            id_hash: column(|s| &s.id_hash),
            provider: column(|s| &s.provider),
            now: number(|s| s.now),
            expires_at: number(|s| s.expires_at),
            sid: optional(|s| s.sid.as_deref()),
            id_token: optional(|s| s.id_token.as_deref()),
            event: sign_ins.iter().map(|s| s.event.event.as_str()).collect(),
            outcome: sign_ins.iter().map(|s| s.event.outcome.as_str()).collect(),
            reason: optional(|s| s.event.reason.as_deref()),
            log_provider: optional(|s| s.event.provider.as_deref()),
            log_email: optional(|s| s.event.email.as_deref()),
            client_ip: optional(|s| s.event.client_ip.as_deref()),
            user_agent: optional(|s| s.event.user_agent.as_deref()),
            incident: column(|s| &s.event.incident),
            email_source: sign_ins.iter().map(|s| s.event.email_source).collect(),
            statuses: crate::members::MemberStatus::MAY_SIGN_IN
                .iter()
                .map(|s| s.as_str())
                .collect(),
            providers: first.map_or(&[], |s| &s.providers),
            barred_usernames: first.map_or(&[], |s| &s.barred_usernames),
        }
    }
}

impl diesel::query_builder::QueryId for SignInsTogether<'_> {
    type QueryId = SignInsTogether<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl diesel::query_builder::Query for SignInsTogether<'_> {
    type SqlType = (
        diesel::sql_types::BigInt,
        SignInSqlType,
        diesel::sql_types::Bool,
    );
}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for SignInsTogether<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{Array, BigInt, Nullable, Text};
        out.push_sql("WITH i AS (SELECT * FROM unnest(");
        out.push_bind_param::<Array<BigInt>, _>(&self.n)?;
        for texts in [
            &self.email,
            &self.issuer,
            &self.fingerprint,
            &self.id_hash,
            &self.provider,
            &self.incident,
        ] {
            out.push_sql(", ");
            out.push_bind_param::<Array<Text>, _>(texts)?;
        }
        for numbers in [&self.usable_until, &self.now, &self.expires_at] {
            out.push_sql(", ");
            out.push_bind_param::<Array<BigInt>, _>(numbers)?;
        }
        for texts in [&self.event, &self.outcome] {
            out.push_sql(", ");
            out.push_bind_param::<Array<Text>, _>(texts)?;
        }
        for optional in [
            &self.subject,
            &self.sid,
            &self.id_token,
            &self.reason,
            &self.log_provider,
            &self.log_email,
            &self.client_ip,
            &self.user_agent,
        ] {
            out.push_sql(", ");
            out.push_bind_param::<Array<Nullable<Text>>, _>(optional)?;
        }
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.email_source)?;
        // The member's row is locked first (the `WITH` part `m`, which a locking clause keeps
        // from being merged into the rest), then its bindings are read, locked too: a binding
        // that a concurrent unbind (which holds the member's row meanwhile) deleted is then
        // skipped, where the statement's snapshot, taken before the wait, would still show it.
        // A change of the member committed during the wait is seen: the row locked is the row
        // as it stands then. The legacy predicate is `members::legacy_conflict`'s.
        out.push_sql(
            ") AS i (n, email, issuer, fingerprint, id_hash, provider, incident, usable_until, \
                     at, expires_at, event, outcome, subject, sid, id_token, reason, \
                     log_provider, log_email, client_ip, user_agent, email_source)), \
             m AS (SELECT i.*, x.id, x.email AS member_email, x.username, \
                          x.username_normalized, x.firstname, x.surname, x.status, x.locked, \
                          x.admin, x.created_at, x.updated_at \
                   FROM i JOIN members x ON x.email_normalized = i.email \
                   ORDER BY x.id FOR SHARE OF x), \
             f AS (SELECT m.*, \
                          (SELECT b.subject FROM identity_bindings b \
                            WHERE b.member_id = m.id AND b.issuer = m.issuer FOR SHARE) AS bound, \
                          EXISTS (SELECT 1 FROM member_bindings l WHERE l.provider = ANY(",
        );
        out.push_bind_param::<Array<Text>, _>(self.providers)?;
        out.push_sql(
            ") AND ((l.member_id = m.id AND l.subject <> m.subject) \
                 OR (l.subject = m.subject AND l.member_id <> m.id)) FOR SHARE) AS legacy \
                   FROM m), \
             claim AS (INSERT INTO used_tokens (token_hash, expires_at) \
                       SELECT f.fingerprint, f.usable_until FROM f \
                       WHERE f.bound = f.subject AND NOT f.legacy AND NOT f.locked \
                         AND f.status = ANY(",
        );
        out.push_bind_param::<Array<Text>, _>(&self.statuses)?;
        out.push_sql(") AND f.username_normalized <> ALL(");
        out.push_bind_param::<Array<Text>, _>(self.barred_usernames)?;
        // Rows are locked in one order on every instance (members by id, tokens by key), so
        // that two instances' statements wait for each other rather than deadlock. Events
        // take their ids in the sign-ins' order: the sequence is read as the sorted rows are
        // inserted.
        out.push_sql(
            ") ORDER BY f.fingerprint ON CONFLICT DO NOTHING RETURNING token_hash), \
             s AS (SELECT f.* FROM f JOIN claim c ON c.token_hash = f.fingerprint), \
             session AS (INSERT INTO sessions (id_hash, member_id, provider, created_at, \
                           last_seen_at, expires_at, issuer, subject, sid, id_token) \
                         SELECT id_hash, id, provider, at, at, expires_at, issuer, subject, \
                                sid, id_token FROM s), \
             logged AS (INSERT INTO security_log (at, event, outcome, reason, provider, email, \
                          member_id, client_ip, user_agent, incident, email_source) \
                        SELECT at, event, outcome, reason, log_provider, log_email, id, \
                               client_ip, user_agent, incident, email_source FROM s ORDER BY n) \
             SELECT f.n, f.id, f.member_email, f.username, f.firstname, f.surname, f.status, \
                    f.locked, f.admin, f.created_at, f.updated_at, f.bound, f.legacy, \
                    EXISTS (SELECT 1 FROM claim c WHERE c.token_hash = f.fingerprint) \
             FROM f ORDER BY f.n",
        );
        Ok(())
    }
}

impl RunQueryDsl<diesel::pg::PgConnection> for SignInsTogether<'_> {}

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

/// Ends the sessions of the provider session `sid` at `issuer`, and voids the unused
/// authentication codes that would have become such sessions; the id hashes of the sessions
/// ended.
pub fn delete_provider_session(
    conn: &mut AnyConnection,
    issuer: &str,
    sid: &str,
) -> Result<Vec<String>, StoreError> {
    use super::schema::auth_codes;
    diesel::delete(
        auth_codes::table
            .filter(auth_codes::issuer.eq(issuer))
            .filter(auth_codes::sid.eq(sid)),
    )
    .execute(conn)?;
    Ok(diesel::delete(
        sessions::table
            .filter(sessions::issuer.eq(issuer))
            .filter(sessions::sid.eq(sid)),
    )
    .returning(sessions::id_hash)
    .load(conn)?)
}

/// Ends the sessions of `subject` at `issuer` signed in through `provider` (another provider
/// entry on the same issuer is another client, whose sessions this logout is not for): those
/// that remember them, and those made before sessions remembered them by the member bound to
/// that subject; the id hashes of those ended. The unused authentication codes of that subject
/// through that provider are voided too. A scan of the sessions (no index has their subjects):
/// such a logout, naming no `sid`, is rare, and an index would cost every sign-in a page.
pub fn delete_subject_sessions(
    conn: &mut AnyConnection,
    issuer: &str,
    subject: &str,
    provider: &str,
) -> Result<Vec<String>, StoreError> {
    use super::schema::auth_codes;
    diesel::delete(
        auth_codes::table
            .filter(auth_codes::issuer.eq(issuer))
            .filter(auth_codes::subject.eq(subject))
            .filter(auth_codes::provider.eq(provider)),
    )
    .execute(conn)?;
    let mut ended: Vec<String> = diesel::delete(
        sessions::table
            .filter(sessions::issuer.eq(issuer))
            .filter(sessions::subject.eq(subject))
            .filter(sessions::provider.eq(provider)),
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

/// The replay guard's key of a token remembered until `until` (Unix seconds): that time less
/// the leeway (for an ID token its `exp`) in 16 hex digits, then `hash_hex`, what tells the
/// token from others. Keys sort by when their rows may go, so that new rows go to the end of the
/// guard (tokens are used soon after they are issued: a write changes a page at the end, not a
/// random one) and the purge takes the expired rows as a range of keys.
pub fn replay_guard_key(until: i64, hash_hex: &str) -> String {
    let from = u64::try_from(until.saturating_sub(LEEWAY_SECS)).unwrap_or(0);
    format!("{from:016x}{hash_hex}")
}

/// Every key of a row remembered until `now` or before ([`replay_guard_key`]) sorts before this
/// one; keys of rows remembered for longer do not.
fn replay_keys_remembered_after(now: i64) -> String {
    replay_guard_key(now.saturating_add(1), "")
}

/// The replay guard's key of a back-channel logout token: [`LOGOUT_KEY_START`], then
/// `hash_hex` (of its issuer and `jti`), whatever the token's times, so that a `jti` is taken
/// once per issuer.
pub fn logout_guard_key(hash_hex: &str) -> String {
    format!("{LOGOUT_KEY_START}{hash_hex}")
}

/// The start of every [`logout_guard_key`]: such keys sort after every [`replay_guard_key`]
/// (hex digits), where the purge finds them as a range of their own.
const LOGOUT_KEY_START: &str = "logout:";

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
    // Ranges of keys find the rows (there is no index of their expiries): the tokens' by their
    // start, the logout tokens' apart. The expiry itself decides, so that no row ever goes
    // before its time.
    let tokens = diesel::delete(
        used_tokens::table
            .filter(used_tokens::token_hash.lt(replay_keys_remembered_after(now)))
            .filter(used_tokens::expires_at.le(now)),
    )
    .execute(conn)?;
    let logout_tokens = diesel::delete(
        used_tokens::table
            .filter(used_tokens::token_hash.ge(LOGOUT_KEY_START))
            .filter(used_tokens::expires_at.le(now)),
    )
    .execute(conn)?;
    Ok(Purged {
        sessions,
        tokens: tokens + logout_tokens,
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

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// A row's key falls in the purge's range exactly when the row may go: when it was
        /// remembered until `now` or before.
        #[test]
        fn a_key_is_in_the_purge_range_only_once_its_row_may_go(
            until in LEEWAY_SECS..(1i64 << 40),
            now in LEEWAY_SECS..(1i64 << 40),
            hash in "[0-9a-f]{64}",
        ) {
            let key = replay_guard_key(until, &hash);
            proptest::prop_assert_eq!(key < replay_keys_remembered_after(now), until <= now);
            proptest::prop_assert!(logout_guard_key(&hash).as_str() >= LOGOUT_KEY_START);
            proptest::prop_assert!(key.as_str() < LOGOUT_KEY_START);
        }

        /// The same, around the moment the row may go.
        #[test]
        fn a_key_enters_the_purge_range_the_second_its_row_may_go(
            until in LEEWAY_SECS..(1i64 << 40),
            after in -2i64..=2,
            hash in "[0-9a-f]{64}",
        ) {
            let key = replay_guard_key(until, &hash);
            let now = until + after;
            proptest::prop_assert_eq!(key < replay_keys_remembered_after(now), after >= 0);
        }
    }
}
