//! Login flows in the database: stored when started, taken (and so removed) by the callback.

use diesel::prelude::*;

use super::schema::login_flows;
use super::{AnyConnection, StoreError};

/// A started flow as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct StoredFlow {
    pub state_hash: String,
    /// SHA-256 of the browser's flow cookie.
    pub browser_hash: String,
    pub provider: String,
    pub nonce: String,
    pub code_verifier: String,
    /// The `redirect_uri` sent to the provider (the token request repeats it).
    pub redirect_uri: String,
    /// Where to send the person afterwards (already checked).
    pub redirect: Option<String>,
    pub expires_at: i64,
}

pub fn insert_flow(conn: &mut AnyConnection, flow: &StoredFlow) -> Result<(), StoreError> {
    diesel::insert_into(login_flows::table)
        .values((
            login_flows::state_hash.eq(&flow.state_hash),
            login_flows::browser_hash.eq(&flow.browser_hash),
            login_flows::provider.eq(&flow.provider),
            login_flows::nonce.eq(&flow.nonce),
            login_flows::code_verifier.eq(&flow.code_verifier),
            login_flows::redirect_uri.eq(&flow.redirect_uri),
            login_flows::redirect.eq(flow.redirect.as_deref()),
            login_flows::expires_at.eq(flow.expires_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Removes and returns the flow with this state hash, in one statement: of two callbacks with
/// the same state, exactly one gets the flow.
/// Takes (and so removes) the flow of this state, if the browser that started it (by its
/// value's hash) is the one asking: another browser that learnt a `state` cannot void the flow.
pub fn take_flow(
    conn: &mut AnyConnection,
    state_hash: &str,
    browser_hash: &str,
) -> Result<Option<StoredFlow>, StoreError> {
    Ok(diesel::delete(
        login_flows::table
            .find(state_hash)
            .filter(login_flows::browser_hash.eq(browser_hash)),
    )
    .returning(login_flows::all_columns)
    .get_result::<StoredFlow>(conn)
    .optional()?)
}

/// Removes flows that were never finished.
pub fn purge_flows(conn: &mut AnyConnection, now: i64) -> Result<usize, StoreError> {
    Ok(diesel::delete(login_flows::table.filter(login_flows::expires_at.le(now))).execute(conn)?)
}
