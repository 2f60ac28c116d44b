//! One-time authentication codes: a registered document app trades an ID token for a
//! code, and the browser trades the code for a session. 256 random bits, valid 60 seconds,
//! single use even under concurrency, bound to the member and the client; the database keeps
//! only the code's SHA-256, so any instance can redeem it.

use diesel::prelude::*;

use super::schema::auth_codes;
use super::{AnyConnection, StoreError};

/// A code as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct StoredCode {
    pub code_hash: String,
    pub member_id: i64,
    /// The registered client (lowercase id) the code was issued to.
    pub client_id: String,
    pub provider: String,
    pub expires_at: i64,
    /// What the session will remember of the provider's sign-in (see [`FromToken`]).
    ///
    /// [`FromToken`]: super::sessions::FromToken
    pub issuer: Option<String>,
    pub subject: Option<String>,
    pub sid: Option<String>,
}

pub fn insert_code(conn: &mut AnyConnection, code: &StoredCode) -> Result<(), StoreError> {
    diesel::insert_into(auth_codes::table)
        .values((
            auth_codes::code_hash.eq(&code.code_hash),
            auth_codes::member_id.eq(code.member_id),
            auth_codes::client_id.eq(&code.client_id),
            auth_codes::provider.eq(&code.provider),
            auth_codes::expires_at.eq(code.expires_at),
            auth_codes::issuer.eq(&code.issuer),
            auth_codes::subject.eq(&code.subject),
            auth_codes::sid.eq(&code.sid),
        ))
        .execute(conn)?;
    Ok(())
}

/// Redeems a code: removes it in one statement and returns it if it had not expired. Of two
/// concurrent redemptions exactly one gets the code; a used, unknown or expired code is `None`.
pub fn redeem_code(
    conn: &mut AnyConnection,
    code_hash: &str,
    now: i64,
) -> Result<Option<StoredCode>, StoreError> {
    let code = diesel::delete(auth_codes::table.find(code_hash))
        .returning(auth_codes::all_columns)
        .get_result::<StoredCode>(conn)
        .optional()?;
    Ok(code.filter(|c| now < c.expires_at))
}

/// Removes expired codes.
pub fn purge_codes(conn: &mut AnyConnection, now: i64) -> Result<usize, StoreError> {
    Ok(diesel::delete(auth_codes::table.filter(auth_codes::expires_at.le(now))).execute(conn)?)
}
