//! The security log in the database (both backends): events stored, and read back for
//! `idgate audit`.

use diesel::prelude::*;
use serde::Serialize;

use super::schema::security_log;
use super::{AnyConnection, Database, StoreError, on_backend};
use crate::audit::SecurityEvent;

impl Database {
    /// Writes an event to the log and stores it. A failure to store is logged, not returned: the
    /// answer to the request does not depend on it.
    pub async fn record(&self, event: &SecurityEvent, at: i64) {
        event.trace();
        let stored = event.clone();
        if let Err(error) = self
            .write(move |conn| insert_event(conn, &stored, at))
            .await
        {
            tracing::error!(incident = %event.incident, %error, "cannot write the security log");
        }
    }
}

/// Stores an event.
pub fn insert_event(
    conn: &mut AnyConnection,
    event: &SecurityEvent,
    at: i64,
) -> Result<(), StoreError> {
    let insert = diesel::insert_into(security_log::table).values((
        security_log::at.eq(at),
        security_log::event.eq(event.event.as_str()),
        security_log::outcome.eq(event.outcome.as_str()),
        security_log::reason.eq(event.reason.as_deref()),
        security_log::provider.eq(event.provider.as_deref()),
        security_log::email.eq(event.email.as_deref()),
        security_log::member_id.eq(event.member_id),
        security_log::client_ip.eq(event.client_ip.as_deref()),
        security_log::user_agent.eq(event.user_agent.as_deref()),
        security_log::incident.eq(&event.incident),
        security_log::email_source.eq(event.email_source),
    ));
    on_backend!(conn, |c| insert.execute(c))?;
    Ok(())
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Serialize)]
#[diesel(table_name = security_log)]
#[serde(rename_all = "camelCase")]
pub struct LoggedEvent {
    pub id: i64,
    pub at: i64,
    pub event: String,
    pub outcome: String,
    pub reason: Option<String>,
    pub provider: Option<String>,
    pub email: Option<String>,
    pub member_id: Option<i64>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub incident: String,
    pub email_source: Option<String>,
}

/// Events at or after `since` (Unix seconds), oldest first.
pub fn list_events(conn: &mut AnyConnection, since: i64) -> Result<Vec<LoggedEvent>, StoreError> {
    Ok(security_log::table
        .filter(security_log::at.ge(since))
        .order(security_log::id)
        .select(LoggedEvent::as_select())
        .load(conn)?)
}

/// Removes the events from before `before` (Unix seconds); how many.
pub fn purge_events(conn: &mut AnyConnection, before: i64) -> Result<usize, StoreError> {
    Ok(diesel::delete(security_log::table.filter(security_log::at.lt(before))).execute(conn)?)
}
