//! Authentication codes traded for sessions (see `docs/http-api.md`).

use std::time::Instant;

use super::*;

/// Trades an authentication code for a session: the code must be live and, when the request
/// names a client, issued to it; the member must still be allowed in.
pub async fn redeem_code(
    state: &AppState,
    code: &str,
    client_id: Option<&str>,
    attempt: &Attempt,
) -> Result<(SignedIn, String), SignInError> {
    let config = state.config.load_full();
    let running = state.config.clone();
    let mut event = attempt.event(Event::CodeRedeemed);
    let (session_id, id_hash) = new_session_id();
    let now = state.clock.now();
    let idle_secs = config.properties.idle_secs();
    let expires_at = now.saturating_add(state.settings.cookie.lifetime_secs);
    let code_hash = hash_id(code);
    let client_id = client_id.map(str::to_ascii_lowercase);
    let client_ip = attempt.client_ip;
    let replaces = attempt.previous_session.clone();
    let logged = event.clone();
    let started = Instant::now();
    let outcome = state
        .db
        .write::<_, StoreError, _>(move |conn| {
            // The code is used up whatever follows: a refusal below rolls back only its own
            // savepoint, so a code presented for the wrong client, or for a member now refused,
            // is gone too.
            let code = match db::codes::redeem_code(conn, &code_hash, now)? {
                Some(code) if client_id.as_ref().is_none_or(|c| *c == code.client_id) => code,
                _ => return Ok(Err(TxError::Refused(Reason::InvalidCode, None))),
            };
            Ok(db::transaction(conn, |conn| -> Result<_, TxError> {
                let member = db::members::lock_member(conn, code.member_id)?
                    .ok_or(TxError::Refused(Reason::NoMember, None))?;
                // The configuration as it stands now (a reload may have closed the way).
                if !running.load().allows(&code.provider, &member.email) {
                    return Err(TxError::Refused(Reason::DomainNotAllowed, Some(member.id)));
                }
                check_state(&member)?;
                check_api_account(&member, client_ip, &config)?;
                if let Some(old) = &replaces {
                    delete_session(conn, old)?;
                }
                insert_session(
                    conn,
                    member.id,
                    &NewSession {
                        id_hash: &id_hash,
                        provider: &code.provider,
                        now,
                        expires_at,
                        // What the code remembers of the provider's sign-in; no ID token.
                        from_token: code.issuer.as_deref().map(|issuer| FromToken {
                            issuer,
                            subject: code.subject.as_deref(),
                            sid: code.sid.as_deref(),
                            id_token: None,
                        }),
                    },
                )?;
                let mut logged = logged.clone();
                logged.outcome = Outcome::Success;
                logged.member_id = Some(member.id);
                logged.provider = Some(code.provider.clone());
                logged.email = Some(member.email.clone());
                db::audit::insert_event(conn, &logged, now)?;
                Ok((member, code))
            }))
        })
        .await;
    let result = match outcome {
        Ok(Ok((member, code))) => {
            event.outcome = Outcome::Success;
            event.member_id = Some(member.id);
            event.provider = Some(code.provider.clone());
            event.email = Some(member.email.clone());
            event.trace();
            let view = SessionView {
                member,
                provider: code.provider,
                ends_at: expires_at.min(now.saturating_add(idle_secs)),
            };
            Ok((SignedIn { session_id, view }, code.client_id))
        }
        Ok(Err(error)) => Err(transaction_failure(state, event, error).await),
        Err(error) => Err(database_failure(event, &error)),
    };
    measure(state, "code_redeemed", result.as_ref().err(), started);
    result
}
