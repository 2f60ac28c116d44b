//! `idgate sessions …` and `idgate audit`: sessions and the security log.

use super::*;

/// The member with this email, or an error naming it.
fn member_id(conn: &mut AnyConnection, text: &str) -> Result<i64, String> {
    let address = email(text)?;
    db::members::find_member_by_email(conn, &address)
        .map_err(|e| e.to_string())?
        .map(|m| m.id)
        .ok_or_else(|| format!("no member with the email {address}"))
}

pub(super) fn sessions_command(cmd: SessionsCommand, database_url: &str) -> Result<(), String> {
    match cmd {
        SessionsCommand::List { member, json } => {
            let all = with_conn(database_url, |conn| {
                let member = member.as_deref().map(|m| member_id(conn, m)).transpose()?;
                db::sessions::list_sessions(conn, member).map_err(|e| e.to_string())
            })?;
            if !json {
                out!(
                    "{:<16} {:<32} {:<12} {:<20} {:<20} EXPIRES",
                    "HANDLE",
                    "EMAIL",
                    "PROVIDER",
                    "CREATED",
                    "LAST SEEN"
                );
            }
            for s in &all {
                if json {
                    match serde_json::to_string(s) {
                        Ok(text) => out!("{text}"),
                        Err(e) => eprintln!("idgate: cannot print session {}: {e}", s.handle),
                    }
                } else {
                    out!(
                        "{:<16} {:<32} {:<12} {:<20} {:<20} {}",
                        s.handle,
                        s.email,
                        s.provider,
                        rfc3339(s.created_at),
                        rfc3339(s.last_seen_at),
                        rfc3339(s.expires_at)
                    );
                }
            }
            Ok(())
        }
        SessionsCommand::Revoke {
            handle,
            member,
            provider,
        } => write_with_conn(database_url, |conn| {
            if let Some(provider) = provider {
                let ended = db::sessions::delete_sessions_through(conn, &provider)
                    .map_err(|e| e.to_string())?;
                record(
                    conn,
                    audit::Event::SessionsRevoked,
                    "",
                    None,
                    Some(&provider),
                )?;
                out!("revoked {ended} session(s) signed in through {provider}");
                return Ok(());
            }
            if let Some(member) = member {
                let id = member_id(conn, &member)?;
                let ended =
                    db::sessions::delete_member_sessions(conn, id).map_err(|e| e.to_string())?;
                record(conn, audit::Event::SessionsRevoked, &member, Some(id), None)?;
                out!("revoked {ended} session(s) of {member}");
                return Ok(());
            }
            let handle = handle.unwrap_or_default();
            if db::sessions::revoke_by_handle(conn, &handle).map_err(|e| e.to_string())? {
                record(conn, audit::Event::SessionsRevoked, "", None, None)?;
                out!("revoked session {handle}");
                Ok(())
            } else {
                Err(format!("no session with the handle {handle}"))
            }
        }),
    }
}

pub(super) fn audit_log(args: AuditArgs, database_url: &str) -> Result<(), String> {
    let since = args
        .since
        .map_or(i64::MIN, |secs| unix_now().saturating_sub(secs));
    let events = with_conn(database_url, |conn| {
        db::audit::list_events(conn, since).map_err(|e| e.to_string())
    })?;
    for e in &events {
        if args.json {
            match serde_json::to_string(e) {
                Ok(text) => out!("{text}"),
                Err(err) => eprintln!("idgate: cannot print event {}: {err}", e.id),
            }
            continue;
        }
        let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        out!(
            "{} {:<13} {:<7} {:<20} provider={} email={} member={} ip={} incident={} agent={:?}",
            rfc3339(e.at),
            e.event,
            e.outcome,
            dash(&e.reason),
            dash(&e.provider),
            dash(&e.email),
            e.member_id.map_or_else(|| "-".into(), |id| id.to_string()),
            dash(&e.client_ip),
            e.incident,
            e.user_agent.as_deref().unwrap_or("-"),
        );
    }
    Ok(())
}
