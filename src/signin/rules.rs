//! The member rules shared by sign-in, code redemption and Bearer tokens.

use super::*;

/// The member state rules (`member_inactive`, `member_locked`).
pub(super) fn check_state(member: &Member) -> Result<(), TxError> {
    let refuse = |reason| TxError::Refused(reason, Some(member.id));
    if !member.status.may_sign_in() {
        return Err(refuse(Reason::MemberInactive));
    }
    if member.locked {
        return Err(refuse(Reason::MemberLocked));
    }
    Ok(())
}

/// The API-account rule (`api_account_ip`).
pub(super) fn check_api_account(
    member: &Member,
    client_ip: Option<IpAddr>,
    config: &IdentityConfig,
) -> Result<(), TxError> {
    let properties = &config.properties;
    if access::api_account_allowed(
        &member.username,
        client_ip,
        &properties.api_account_usernames,
        &properties.api_account_ips,
    ) {
        Ok(())
    } else {
        Err(TxError::Refused(Reason::ApiAccountIp, Some(member.id)))
    }
}

/// The binding rule (`identity_mismatch`): the member's binding to this provider names this
/// subject, or there is none yet and this sign-in stores it. Two first sign-ins racing with the
/// same subject both pass; with different subjects, the second is refused.
pub(super) fn check_binding(
    conn: &mut AnyConnection,
    member: &Member,
    provider: &str,
    subject: Option<&str>,
    now: i64,
) -> Result<(), TxError> {
    let refuse = || TxError::Refused(Reason::IdentityMismatch, Some(member.id));
    let subject = subject.ok_or_else(refuse)?;
    let bound = |conn: &mut AnyConnection| -> Result<Option<String>, TxError> {
        Ok(db::members::bindings_of(conn, member.id)?
            .into_iter()
            .find(|b| b.provider == provider)
            .map(|b| b.subject))
    };
    let stored = match bound(conn)? {
        Some(stored) => stored,
        None if db::members::bind_subject(conn, member.id, provider, subject, now)? => {
            return Ok(());
        }
        // Another sign-in bound this member (or bound this subject elsewhere) meanwhile.
        None => bound(conn)?.ok_or_else(refuse)?,
    };
    if stored == subject {
        Ok(())
    } else {
        Err(refuse())
    }
}
