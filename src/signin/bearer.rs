//! Bearer access tokens on `/session` and `/auth`.

use super::*;

/// Authorizes a Bearer access token: the token's checks, the email from the
/// provider's userinfo (cached), then the same member rules as a sign-in, without a session.
/// Refusals go to the security log; accepted tokens do not (they are as many as API calls).
pub async fn authorize_bearer(
    state: &AppState,
    raw_token: &str,
    attempt: &Attempt,
) -> Result<SessionView, SignInError> {
    let config = state.config.load_full();
    let mut event = attempt.event(Event::Bearer);
    let clock = state.clock.clone();
    let access = match verify_access_token(&state.keys, &config, raw_token, || clock.now()).await {
        Ok(access) => access,
        Err(error) => {
            describe_unverified(&mut event, &config, raw_token, &error);
            event.email = None;
            // Anyone can send junk to `/auth`: a token no provider signed is logged, not stored.
            let signed = matches!(&error, VerifyError::Refused(r, _) if *r > Reason::BadSignature);
            if !signed {
                return Err(refuse_unstored(event, error));
            }
            return Err(refuse(state, event, error).await);
        }
    };
    event.provider = Some(access.provider.clone());
    let Some(provider) = config.provider(&access.provider) else {
        return Err(refuse(state, event, Reason::UnknownIssuer.into()).await);
    };
    let email = match state
        .userinfo
        .email(&state.keys, provider, &access, raw_token)
        .await
    {
        Ok(email) => email,
        Err(error) => return Err(refuse(state, event, error).await),
    };
    event.email = Some(audit::clean(email.as_str(), 254));
    if !config
        .domains
        .decide(email.domain())
        .allows_provider(&provider.id)
    {
        return Err(refuse(state, event, Reason::DomainNotAllowed.into()).await);
    }
    let client_ip = attempt.client_ip;
    let subject = access.subject.clone();
    let issuer = access.issuer.clone();
    let checks = config.clone();
    let outcome = state
        .db
        .run::<_, StoreError, _>(move |conn| {
            Ok((|| -> Result<Member, TxError> {
                // Reads only: the member, and the bindings of this issuer both ways.
                let member = db::members::find_member_by_email(conn, &email)?
                    .ok_or(TxError::Refused(Reason::NoMember, None))?;
                check_state(&member)?;
                let legacy = checks.providers_of_issuer(&issuer);
                check_existing_binding(conn, &member, &issuer, &subject, &legacy)?;
                check_api_account(&member, client_ip, &checks)?;
                Ok(member)
            })())
        })
        .await;
    match outcome {
        Ok(Ok(member)) => Ok(SessionView {
            member,
            provider: access.provider,
            ends_at: access.expires,
        }),
        Ok(Err(error)) => Err(transaction_failure(state, event, error).await),
        Err(error) => Err(database_failure(event, &error)),
    }
}
