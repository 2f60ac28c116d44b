//! Members and their bindings in the database (both backends). "Not found" is `Ok(None)`; a failed lookup is `Err`.
//!
//! Lookups by a unique key use `get_result`, not `first`: `first` adds `LIMIT ?`, and SQLite
//! prepares a statement again on every run when its `LIMIT` is a bound parameter.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable, Text};

use super::schema::{identity_bindings, member_bindings, members};
use super::sessions::{delete_member_sessions, delete_provider_sessions};
use super::{AnyConnection, StoreError, on_backend};
use crate::members::import::{ImportRow, ImportSummary, RowError};
use crate::members::{Binding, Email, Member, MemberStatus, NewMember, normalize_username};

/// A `members` row as read; [`Member::try_from`] checks it.
#[derive(Queryable, Selectable, QueryableByName)]
#[diesel(table_name = members)]
pub(super) struct MemberRow {
    id: i64,
    email: String,
    username: String,
    firstname: String,
    surname: String,
    status: String,
    locked: bool,
    admin: bool,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<MemberRow> for Member {
    type Error = StoreError;

    fn try_from(row: MemberRow) -> Result<Self, StoreError> {
        let status: MemberStatus = row
            .status
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("member {}: {e}", row.id)))?;
        Ok(Member {
            id: row.id,
            email: row.email,
            username: row.username,
            firstname: row.firstname,
            surname: row.surname,
            status,
            locked: row.locked,
            admin: row.admin,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// The member with this email (compared in normalised form).
pub fn find_member_by_email(
    conn: &mut AnyConnection,
    email: &Email,
) -> Result<Option<Member>, StoreError> {
    // Built in each arm: `as_select` is typed by its backend.
    on_backend!(conn, |c| members::table
        .filter(members::email_normalized.eq(email.normalized()))
        .select(MemberRow::as_select())
        .get_result(c)
        .optional())?
    .map(Member::try_from)
    .transpose()
}

/// The member of a sign-in, with what the binding rule needs to know of its bindings.
#[derive(Debug)]
pub struct SignInMember {
    pub member: Member,
    /// The subject the member is bound to at the token's issuer.
    pub bound_subject: Option<String>,
    /// Whether a binding not carried over yet (see [`legacy_conflict`]) contradicts the token.
    pub legacy_conflict: bool,
}

/// What a sign-in's token says of its person, for [`find_member_for_sign_in`].
#[derive(Debug, Clone, Copy)]
pub struct SignInIdentity<'a> {
    pub email: &'a Email,
    pub issuer: &'a str,
    pub subject: Option<&'a str>,
    /// The provider entries of the issuer, under which bindings not carried over are stored.
    pub providers: &'a [String],
}

/// The member with this email for a sign-in, with its bindings, in one query: read under a lock
/// that keeps a concurrent lock, unbind or removal (which update the row) until the sign-in's
/// transaction ends, while other sign-ins of the same member go on (`FOR SHARE` on PostgreSQL;
/// on SQLite the writer's `BEGIN IMMEDIATE` holds the whole database already). On SQLite an
/// issuer with several provider entries (rare) is read in separate queries.
pub fn find_member_for_sign_in(
    conn: &mut AnyConnection,
    who: SignInIdentity<'_>,
) -> Result<Option<SignInMember>, StoreError> {
    let row: Option<SignInRow> = match conn {
        AnyConnection::Postgresql(c) => SignInLookup(who).get_result(c).optional()?,
        AnyConnection::Sqlite(c) => match who.providers {
            [provider] => SqliteSignInLookup { who, provider }
                .get_result(c)
                .optional()?,
            _ => return find_member_for_sign_in_step_by_step(conn, who),
        },
    };
    row.map(SignInMember::try_from).transpose()
}

/// A row of [`SignInLookup`]: the member's columns, its bound subject, the legacy conflict.
pub(super) type SignInRow = (MemberRow, Option<String>, bool);

/// [`SignInLookup`]'s columns, in the order of [`SignInRow`].
pub(super) type SignInSqlType = (
    (
        BigInt,
        Text,
        Text,
        Text,
        Text,
        Text,
        Bool,
        Bool,
        BigInt,
        BigInt,
    ),
    Nullable<Text>,
    Bool,
);

impl TryFrom<SignInRow> for SignInMember {
    type Error = StoreError;

    fn try_from((member, bound_subject, legacy_conflict): SignInRow) -> Result<Self, StoreError> {
        Ok(SignInMember {
            member: Member::try_from(member)?,
            bound_subject,
            legacy_conflict,
        })
    }
}

/// [`find_member_for_sign_in`]'s one query on PostgreSQL. A query type of its own rather than
/// `sql_query`, so that the connection prepares it once and then only executes it (one round
/// trip, no parsing or planning per sign-in); the legacy predicate is [`legacy_conflict`]'s.
struct SignInLookup<'a>(SignInIdentity<'a>);

impl diesel::query_builder::QueryId for SignInLookup<'_> {
    type QueryId = SignInLookup<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl diesel::query_builder::Query for SignInLookup<'_> {
    type SqlType = SignInSqlType;
}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for SignInLookup<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        use diesel::sql_types::Array;
        let who = &self.0;
        // The member's row is locked first (the `WITH` query, which a locking clause keeps from
        // being merged into the rest), then its bindings are read, locked too: a binding that a
        // concurrent unbind (which holds the member's row meanwhile) deleted is then skipped,
        // where the statement's snapshot, taken before the wait, would still show it.
        out.push_sql(
            "WITH m AS (SELECT id, email, username, firstname, surname, status, locked, admin, \
                    created_at, updated_at FROM members WHERE email_normalized = ",
        );
        out.push_bind_param::<Text, _>(who.email.normalized())?;
        out.push_sql(
            " FOR SHARE) \
             SELECT m.id, m.email, m.username, m.firstname, m.surname, m.status, m.locked, \
                    m.admin, m.created_at, m.updated_at, \
                    (SELECT b.subject FROM identity_bindings b \
                      WHERE b.member_id = m.id AND b.issuer = ",
        );
        out.push_bind_param::<Text, _>(who.issuer)?;
        out.push_sql(
            " FOR SHARE), EXISTS (SELECT 1 FROM member_bindings l \
                 WHERE l.provider = ANY(",
        );
        out.push_bind_param::<Array<Text>, _>(who.providers)?;
        out.push_sql(") AND ((l.member_id = m.id AND l.subject <> ");
        out.push_bind_param::<Nullable<Text>, _>(&who.subject)?;
        out.push_sql(") OR (l.subject = ");
        out.push_bind_param::<Nullable<Text>, _>(&who.subject)?;
        out.push_sql(" AND l.member_id <> m.id)) FOR SHARE) FROM m");
        Ok(())
    }
}

impl RunQueryDsl<diesel::pg::PgConnection> for SignInLookup<'_> {}

/// [`find_member_for_sign_in`] on SQLite for an issuer with several provider entries (or none):
/// the member, then its binding, then each entry's bindings not carried over, one query each
/// (SQLite prepares a query with a list of values again on every run).
fn find_member_for_sign_in_step_by_step(
    conn: &mut AnyConnection,
    who: SignInIdentity<'_>,
) -> Result<Option<SignInMember>, StoreError> {
    let Some(member) = find_member_by_email(conn, who.email)? else {
        return Ok(None);
    };
    let bound_subject = bound_subject(conn, member.id, who.issuer)?;
    let legacy_conflict = match who.subject {
        Some(subject) => legacy_conflict(conn, member.id, subject, who.providers)?,
        None => false,
    };
    Ok(Some(SignInMember {
        member,
        bound_subject,
        legacy_conflict,
    }))
}

/// [`find_member_for_sign_in`]'s one query on SQLite, for an issuer with one provider entry (the
/// rule): the same columns and predicates as [`SignInLookup`], without the locking clauses. A
/// query type of its own, prepared once per connection; its text never varies.
struct SqliteSignInLookup<'a> {
    who: SignInIdentity<'a>,
    provider: &'a String,
}

impl diesel::query_builder::QueryId for SqliteSignInLookup<'_> {
    type QueryId = SqliteSignInLookup<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl diesel::query_builder::Query for SqliteSignInLookup<'_> {
    type SqlType = <SignInLookup<'static> as diesel::query_builder::Query>::SqlType;
}

impl diesel::query_builder::QueryFragment<diesel::sqlite::Sqlite> for SqliteSignInLookup<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::sqlite::Sqlite>,
    ) -> QueryResult<()> {
        let who = &self.who;
        out.push_sql(
            "SELECT m.id, m.email, m.username, m.firstname, m.surname, m.status, m.locked, \
                    m.admin, m.created_at, m.updated_at, \
                    (SELECT b.subject FROM identity_bindings b \
                      WHERE b.member_id = m.id AND b.issuer = ",
        );
        out.push_bind_param::<Text, _>(who.issuer)?;
        out.push_sql("), EXISTS (SELECT 1 FROM member_bindings l WHERE l.provider = ");
        out.push_bind_param::<Text, _>(self.provider)?;
        out.push_sql(" AND ((l.member_id = m.id AND l.subject <> ");
        out.push_bind_param::<Nullable<Text>, _>(&who.subject)?;
        out.push_sql(") OR (l.subject = ");
        out.push_bind_param::<Nullable<Text>, _>(&who.subject)?;
        out.push_sql(" AND l.member_id <> m.id))) FROM members m WHERE m.email_normalized = ");
        out.push_bind_param::<Text, _>(who.email.normalized())?;
        Ok(())
    }
}

impl RunQueryDsl<diesel::sqlite::SqliteConnection> for SqliteSignInLookup<'_> {}

pub fn find_member_by_id(conn: &mut AnyConnection, id: i64) -> Result<Option<Member>, StoreError> {
    members::table
        .find(id)
        .select(MemberRow::as_select())
        .get_result(conn)
        .optional()?
        .map(Member::try_from)
        .transpose()
}

/// The member with this id, its row locked until the transaction ends (PostgreSQL; SQLite's
/// write lock, taken earlier in the transaction, covers the whole database).
pub fn lock_member(conn: &mut AnyConnection, id: i64) -> Result<Option<Member>, StoreError> {
    diesel::update(members::table.find(id))
        .set(members::updated_at.eq(members::updated_at))
        .returning((
            members::id,
            members::email,
            members::username,
            members::firstname,
            members::surname,
            members::status,
            members::locked,
            members::admin,
            members::created_at,
            members::updated_at,
        ))
        .get_result::<MemberRow>(conn)
        .optional()?
        .map(Member::try_from)
        .transpose()
}

/// As [`lock_member`], by email. The lock comes first, before any read: on SQLite a
/// transaction that reads and then writes can fail when another connection wrote meanwhile.
pub fn lock_member_by_email(
    conn: &mut AnyConnection,
    email: &Email,
) -> Result<Option<Member>, StoreError> {
    let updated = diesel::update(members::table)
        .filter(members::email_normalized.eq(email.normalized()))
        .set(members::updated_at.eq(members::updated_at))
        .execute(conn)?;
    if updated == 0 {
        return Ok(None);
    }
    find_member_by_email(conn, email)
}

/// The member who holds this username, if any.
pub fn find_member_by_username(
    conn: &mut AnyConnection,
    username: &str,
) -> Result<Option<Member>, StoreError> {
    members::table
        .filter(members::username_normalized.eq(normalize_username(username)))
        .select(MemberRow::as_select())
        .get_result(conn)
        .optional()?
        .map(Member::try_from)
        .transpose()
}

/// Every member with their bindings, ordered by id.
pub fn list_members(conn: &mut AnyConnection) -> Result<Vec<(Member, Vec<Binding>)>, StoreError> {
    let rows: Vec<MemberRow> = members::table
        .order(members::id)
        .select(MemberRow::as_select())
        .load(conn)?;
    let bindings: Vec<(i64, Binding)> = identity_bindings::table
        .order((identity_bindings::member_id, identity_bindings::issuer))
        .select(BINDING_COLUMNS)
        .load::<BindingRow>(conn)?
        .into_iter()
        .map(split_binding)
        .collect();
    rows.into_iter()
        .map(|row| {
            let member = Member::try_from(row)?;
            let own = bindings
                .iter()
                .filter(|(id, _)| *id == member.id)
                .map(|(_, binding)| binding.clone())
                .collect();
            Ok((member, own))
        })
        .collect()
}

/// Adds a member; the email and the username must both be free.
pub fn insert_member(
    conn: &mut AnyConnection,
    new: &NewMember,
    now: i64,
) -> Result<Member, StoreError> {
    let username = new
        .username
        .clone()
        .unwrap_or_else(|| new.email.normalized().to_string());
    super::write_transaction(conn, |conn| {
        if find_member_by_email(conn, &new.email)?.is_some() {
            return Err(StoreError::DuplicateEmail(new.email.to_string()));
        }
        if find_member_by_username(conn, &username)?.is_some() {
            return Err(StoreError::DuplicateUsername(username.clone()));
        }
        let id: i64 = diesel::insert_into(members::table)
            .values((
                members::email.eq(new.email.as_str()),
                members::email_normalized.eq(new.email.normalized()),
                members::username.eq(&username),
                members::username_normalized.eq(normalize_username(&username)),
                members::firstname.eq(&new.firstname),
                members::surname.eq(&new.surname),
                members::status.eq(new.status.as_str()),
                members::locked.eq(false),
                members::admin.eq(new.admin),
                members::created_at.eq(now),
                members::updated_at.eq(now),
            ))
            .returning(members::id)
            .get_result(conn)?;
        find_member_by_id(conn, id)?
            .ok_or_else(|| StoreError::Corrupt(format!("member {id} vanished after insert")))
    })
}

/// Locks or unlocks a member; `None` when there is no such member.
pub fn set_locked(
    conn: &mut AnyConnection,
    email: &Email,
    locked: bool,
    now: i64,
) -> Result<Option<Member>, StoreError> {
    super::write_transaction(conn, |conn| {
        let changed = diesel::update(members::table)
            .filter(members::email_normalized.eq(email.normalized()))
            .set((members::locked.eq(locked), members::updated_at.eq(now)))
            .execute(conn)?;
        if changed == 0 {
            return Ok(None);
        }
        let member = find_member_by_email(conn, email)?;
        if locked && let Some(m) = &member {
            delete_member_sessions(conn, m.id)?;
        }
        Ok(member)
    })
}

/// Removes a member and their bindings; false when there was no such member.
pub fn remove_member(conn: &mut AnyConnection, email: &Email) -> Result<bool, StoreError> {
    super::write_transaction(conn, |conn| {
        let Some(member) = lock_member_by_email(conn, email)? else {
            return Ok(false);
        };
        diesel::delete(identity_bindings::table.filter(identity_bindings::member_id.eq(member.id)))
            .execute(conn)?;
        diesel::delete(member_bindings::table.filter(member_bindings::member_id.eq(member.id)))
            .execute(conn)?;
        delete_member_sessions(conn, member.id)?;
        diesel::delete(members::table.find(member.id)).execute(conn)?;
        Ok(true)
    })
}

/// The columns of a binding, with its member.
const BINDING_COLUMNS: (
    identity_bindings::member_id,
    identity_bindings::issuer,
    identity_bindings::subject,
    identity_bindings::provider,
    identity_bindings::created_at,
) = (
    identity_bindings::member_id,
    identity_bindings::issuer,
    identity_bindings::subject,
    identity_bindings::provider,
    identity_bindings::created_at,
);

type BindingRow = (i64, String, String, String, i64);

/// A binding row as its member's id and the binding.
fn split_binding(row: BindingRow) -> (i64, Binding) {
    let (member_id, issuer, subject, provider, created_at) = row;
    (
        member_id,
        Binding {
            issuer,
            provider,
            subject,
            created_at,
        },
    )
}

/// The member's bindings, ordered by issuer.
pub fn bindings_of(conn: &mut AnyConnection, member_id: i64) -> Result<Vec<Binding>, StoreError> {
    let query = identity_bindings::table
        .filter(identity_bindings::member_id.eq(member_id))
        .order(identity_bindings::issuer)
        .select(BINDING_COLUMNS);
    let rows: Vec<BindingRow> = on_backend!(conn, |c| query.load(c))?;
    Ok(rows.into_iter().map(|row| split_binding(row).1).collect())
}

/// The subject the member is bound to at `issuer`, if any.
pub fn bound_subject(
    conn: &mut AnyConnection,
    member_id: i64,
    issuer: &str,
) -> Result<Option<String>, StoreError> {
    let query = identity_bindings::table
        .find((member_id, issuer))
        .select(identity_bindings::subject);
    Ok(on_backend!(conn, |c| query.get_result(c).optional())?)
}

/// The member `subject` of `issuer` is bound to, if any.
pub fn bound_member(
    conn: &mut AnyConnection,
    issuer: &str,
    subject: &str,
) -> Result<Option<i64>, StoreError> {
    let query = identity_bindings::table
        .filter(identity_bindings::issuer.eq(issuer))
        .filter(identity_bindings::subject.eq(subject))
        .select(identity_bindings::member_id);
    Ok(on_backend!(conn, |c| query.get_result(c).optional())?)
}

/// Binds the member to `subject` of `issuer` (through the provider entry `provider`). False
/// when the member is bound at that issuer already, or the subject is bound to another member.
pub fn bind_subject(
    conn: &mut AnyConnection,
    member_id: i64,
    issuer: &str,
    provider: &str,
    subject: &str,
    now: i64,
) -> Result<bool, StoreError> {
    // Either unique key refusing the row leaves the caller's transaction usable (see
    // `sessions::remember_token`).
    let insert = diesel::insert_into(identity_bindings::table)
        .values((
            identity_bindings::member_id.eq(member_id),
            identity_bindings::issuer.eq(issuer),
            identity_bindings::subject.eq(subject),
            identity_bindings::provider.eq(provider),
            identity_bindings::created_at.eq(now),
        ))
        .on_conflict_do_nothing();
    let stored = on_backend!(conn, |c| insert.execute(c))?;
    Ok(stored > 0)
}

/// Which bindings `members unbind` clears: all of them, or those of the issuers (and of the
/// provider entries, for bindings not carried over yet) given.
#[derive(Debug, Clone, Copy)]
pub enum Unbind<'a> {
    All,
    Provider {
        /// The provider entry named.
        id: &'a str,
        /// Its issuer, when the configuration could be read.
        issuer: Option<&'a str>,
        /// The provider entries on that issuer, whose sessions end with the binding.
        sharing: &'a [String],
    },
}

/// Removes bindings of a member (and the sessions signed in through them); `None` when there is
/// no such member.
pub fn unbind(
    conn: &mut AnyConnection,
    email: &Email,
    which: Unbind<'_>,
) -> Result<Option<usize>, StoreError> {
    super::write_transaction(conn, |conn| {
        // Waits for a sign-in of this member in progress, whose session then ends here too.
        let Some(member) = lock_member_by_email(conn, email)? else {
            return Ok(None);
        };
        let mine = identity_bindings::table.filter(identity_bindings::member_id.eq(member.id));
        let legacy = member_bindings::table.filter(member_bindings::member_id.eq(member.id));
        let removed = match which {
            Unbind::Provider {
                id,
                issuer,
                sharing,
            } => {
                for provider in sharing.iter().map(String::as_str).chain([id]) {
                    delete_provider_sessions(conn, member.id, provider)?;
                }
                let by_issuer = match issuer {
                    Some(issuer) => {
                        diesel::delete(mine.filter(identity_bindings::issuer.eq(issuer)))
                            .execute(conn)?
                    }
                    None => diesel::delete(mine.filter(identity_bindings::provider.eq(id)))
                        .execute(conn)?,
                };
                by_issuer
                    + diesel::delete(legacy.filter(member_bindings::provider.eq(id)))
                        .execute(conn)?
            }
            Unbind::All => {
                delete_member_sessions(conn, member.id)?;
                diesel::delete(mine).execute(conn)? + diesel::delete(legacy).execute(conn)?
            }
        };
        Ok(Some(removed))
    })
}

/// Whether a binding stored by provider id and not carried over yet, through one of
/// `providers` (the entries of one issuer), contradicts a token of that issuer: the member is
/// bound there to another subject, or `subject` is bound there to another member.
pub fn legacy_conflict(
    conn: &mut AnyConnection,
    member_id: i64,
    subject: &str,
    providers: &[String],
) -> Result<bool, StoreError> {
    // One query per provider entry (an issuer has one, as a rule): SQLite prepares a query with
    // a list of values (`IN (…)`) again on every run, one with a single value only once.
    for provider in providers {
        let contradicting = member_bindings::table
            .filter(member_bindings::provider.eq(provider))
            .filter(
                (member_bindings::member_id
                    .eq(member_id)
                    .and(member_bindings::subject.ne(subject)))
                .or(member_bindings::subject
                    .eq(subject)
                    .and(member_bindings::member_id.ne(member_id))),
            );
        let query = diesel::select(diesel::dsl::exists(contradicting));
        if on_backend!(conn, |c| query.get_result::<bool>(c))? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Members whose stored email is not in the canonical form the sign-in rules now give it (an
/// earlier version normalised non-ASCII letters and domains more loosely): `(id, email)`. They
/// cannot sign in until their email is corrected.
pub fn noncanonical_members(conn: &mut AnyConnection) -> Result<Vec<(i64, String)>, StoreError> {
    let rows: Vec<(i64, String, String)> = members::table
        .select((members::id, members::email, members::email_normalized))
        .order(members::id)
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter(|(_, email, stored)| {
            // An earlier build stored an address with a trailing dot and compared it without the
            // dot, as idgate still does: such a member signs in with the address as compared.
            let compared = email.strip_suffix('.').unwrap_or(email);
            Email::parse(compared).map_or(true, |e| e.normalized() != stored)
        })
        .map(|(id, email, _)| (id, email))
        .collect())
}

/// What carrying bindings over found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CarriedOver {
    /// Bindings now kept per issuer.
    pub moved: usize,
    /// Bindings left as they were: they disagree with one already kept for the issuer.
    pub conflicting: usize,
}

/// Carries bindings stored by provider id (before bindings were kept per issuer) over to their
/// provider's issuer, for the providers `issuers` names (`(provider id, issuer)`); bindings of
/// providers it does not name wait for a configuration that does.
pub fn carry_over_bindings(
    conn: &mut AnyConnection,
    issuers: &[(String, String)],
) -> Result<CarriedOver, StoreError> {
    let mut found = CarriedOver::default();
    for (provider, issuer) in issuers {
        let old: Vec<(i64, String, i64)> = member_bindings::table
            .filter(member_bindings::provider.eq(provider))
            .select((
                member_bindings::member_id,
                member_bindings::subject,
                member_bindings::created_at,
            ))
            .load(conn)?;
        for (member_id, subject, created_at) in old {
            let agrees = match bound_subject(conn, member_id, issuer)? {
                Some(kept) => kept == subject,
                None => bind_subject(conn, member_id, issuer, provider, &subject, created_at)?,
            };
            if agrees {
                diesel::delete(
                    member_bindings::table
                        .filter(member_bindings::member_id.eq(member_id))
                        .filter(member_bindings::provider.eq(provider)),
                )
                .execute(conn)?;
                found.moved += 1;
            } else {
                found.conflicting += 1;
            }
        }
    }
    Ok(found)
}

#[derive(Debug, Clone, Default)]
pub struct MemberUpdate {
    pub username: Option<String>,
    pub firstname: Option<String>,
    pub surname: Option<String>,
    pub status: Option<MemberStatus>,
    /// Whether the member administers idgate; unchanged when `None`.
    pub admin: Option<bool>,
}

/// The columns an update writes; `None` leaves a column alone.
#[derive(AsChangeset)]
#[diesel(table_name = members)]
struct MemberChanges<'a> {
    username: Option<&'a str>,
    username_normalized: Option<String>,
    firstname: Option<&'a str>,
    surname: Option<&'a str>,
    status: Option<&'static str>,
    admin: Option<bool>,
    updated_at: i64,
}

/// Applies an update to the member with this id.
pub fn update_member(
    conn: &mut AnyConnection,
    id: i64,
    update: &MemberUpdate,
    now: i64,
) -> Result<(), StoreError> {
    let changes = MemberChanges {
        username: update.username.as_deref(),
        username_normalized: update.username.as_deref().map(normalize_username),
        firstname: update.firstname.as_deref(),
        surname: update.surname.as_deref(),
        status: update.status.map(MemberStatus::as_str),
        admin: update.admin,
        updated_at: now,
    };
    diesel::update(members::table.find(id))
        .set(&changes)
        .execute(conn)?;
    if update.status.is_some_and(|s| !s.may_sign_in()) {
        delete_member_sessions(conn, id)?;
    }
    Ok(())
}

/// Why an import imported nothing.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Some rows are bad; each is listed with its line.
    #[error("{}", list(.0))]
    BadRows(Vec<RowError>),
    /// The database failed; the transaction was rolled back.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn list(errors: &[RowError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Adds or updates every row in one transaction; if any row conflicts with another member
/// (a username already taken), nothing is written and every conflict is reported.
pub fn import(
    conn: &mut AnyConnection,
    rows: &[ImportRow],
    now: i64,
) -> Result<ImportSummary, ImportError> {
    super::write_transaction(conn, |conn| {
        let mut summary = ImportSummary::default();
        let mut errors = Vec::new();
        for row in rows {
            let existing = find_member_by_email(conn, &row.email)?;
            let username = row.username.clone().or_else(|| {
                existing
                    .is_none()
                    .then(|| row.email.normalized().to_string())
            });
            if let Some(u) = &username
                && let Some(holder) = find_member_by_username(conn, u)?
                && existing.as_ref().is_none_or(|m| m.id != holder.id)
            {
                errors.push(RowError {
                    line: row.line,
                    message: format!("the username {u} is already taken by {}", holder.email),
                });
                continue;
            }
            match existing {
                Some(member) => {
                    let update = MemberUpdate {
                        username,
                        firstname: row.firstname.clone(),
                        surname: row.surname.clone(),
                        status: row.status,
                        admin: None,
                    };
                    update_member(conn, member.id, &update, now)?;
                    summary.updated += 1;
                }
                None => {
                    let new = NewMember {
                        email: row.email.clone(),
                        username,
                        firstname: row.firstname.clone().unwrap_or_default(),
                        surname: row.surname.clone().unwrap_or_default(),
                        status: row.status.unwrap_or(MemberStatus::Activated),
                        admin: false,
                    };
                    insert_member(conn, &new, now)?;
                    summary.added += 1;
                }
            }
        }
        if errors.is_empty() {
            Ok(summary)
        } else {
            Err(ImportError::BadRows(errors))
        }
    })
}
