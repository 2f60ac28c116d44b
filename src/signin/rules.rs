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
        || client_ip,
        &properties.api_account_usernames,
        &properties.api_account_ips,
    ) {
        Ok(())
    } else {
        Err(TxError::Refused(Reason::ApiAccountIp, Some(member.id)))
    }
}

/// The binding rule (`identity_mismatch`): the member's binding at this issuer names this
/// subject, or there is none yet and this sign-in stores it (through `provider`). A subject is
/// bound to one member only: a subject bound to another member is refused too. Two first
/// sign-ins racing with the same subject both pass; with different subjects, the second is
/// refused. `found` holds what the member's lookup read of its bindings.
pub(super) fn check_binding(
    conn: &mut AnyConnection,
    found: &SignInMember,
    issuer: &str,
    provider: &str,
    subject: Option<&str>,
    now: i64,
) -> Result<(), TxError> {
    let member = &found.member;
    let refuse = || TxError::Refused(Reason::IdentityMismatch, Some(member.id));
    // Decided on what the lookup read, unless this is the member's first binding at the issuer.
    let (Some(subject), None, false) = (
        subject,
        found.bound_subject.as_deref(),
        found.legacy_conflict,
    ) else {
        return check_binding_as_found(found, subject);
    };
    if db::members::bind_subject(conn, member.id, issuer, provider, subject, now)? {
        return Ok(());
    }
    // Another sign-in bound this member meanwhile, or the subject is another member's.
    if db::members::bound_subject(conn, member.id, issuer)?.ok_or_else(refuse)? == subject {
        Ok(())
    } else {
        Err(refuse())
    }
}

/// The binding rule on what the member's lookup read, without a write: passes only when the
/// member is bound at the issuer to this subject, and no binding not carried over contradicts
/// it ([`check_binding`] would store a first binding, which this refuses).
pub(super) fn check_binding_as_found(
    found: &SignInMember,
    subject: Option<&str>,
) -> Result<(), TxError> {
    match (subject, found.bound_subject.as_deref()) {
        (Some(subject), Some(stored)) if !found.legacy_conflict && stored == subject => Ok(()),
        _ => Err(TxError::Refused(
            Reason::IdentityMismatch,
            Some(found.member.id),
        )),
    }
}

/// The binding rule for Bearer tokens, which never make a binding: refused when the member is
/// bound to another subject of the issuer, or the subject to another member.
pub(super) fn check_existing_binding(
    conn: &mut AnyConnection,
    member: &Member,
    issuer: &str,
    subject: &str,
    legacy: &[String],
) -> Result<(), TxError> {
    let refuse = || TxError::Refused(Reason::IdentityMismatch, Some(member.id));
    check_legacy_binding(conn, member, subject, legacy)?;
    if db::members::bound_subject(conn, member.id, issuer)?.is_some_and(|s| s != subject) {
        return Err(refuse());
    }
    if db::members::bound_member(conn, issuer, subject)?.is_some_and(|m| m != member.id) {
        return Err(refuse());
    }
    Ok(())
}

/// Bindings stored by provider id and not carried over to their issuer yet (their provider was
/// not configured, or carrying them over failed or found a conflict) still bind, both ways:
/// the rule fails closed. `legacy` names the provider entries of the token's issuer.
fn check_legacy_binding(
    conn: &mut AnyConnection,
    member: &Member,
    subject: &str,
    legacy: &[String],
) -> Result<(), TxError> {
    if db::members::legacy_conflict(conn, member.id, subject, legacy)? {
        return Err(TxError::Refused(Reason::IdentityMismatch, Some(member.id)));
    }
    Ok(())
}
