//! `idgate members …`: member administration.

use super::*;

pub(super) fn members(cmd: MembersCommand, database_url: &str) -> Result<(), String> {
    let now = unix_now();
    match cmd {
        MembersCommand::Add(args) => {
            let status: MemberStatus = args.status.parse()?;
            if let Some(u) = &args.username {
                members::check_username(u)?;
            }
            members::check_text("email", &args.email)?;
            members::check_text("first name", &args.firstname)?;
            members::check_text("surname", &args.surname)?;
            let new = NewMember {
                email: email(&args.email)?,
                username: args.username,
                firstname: args.firstname,
                surname: args.surname,
                status,
                admin: args.admin,
            };
            let member = write_with_conn(database_url, |conn| {
                let member =
                    db::members::insert_member(conn, &new, now).map_err(|e| e.to_string())?;
                record(
                    conn,
                    audit::Event::MemberAdded,
                    &member.email,
                    Some(member.id),
                    None,
                )?;
                Ok(member)
            })?;
            out!("added member {} <{}>", member.id, member.email);
            Ok(())
        }
        MembersCommand::Set(args) => {
            let address = email(&args.email)?;
            let status = args.status.as_deref().map(str::parse).transpose()?;
            if let Some(u) = &args.username {
                members::check_username(u)?;
            }
            for (what, text) in [("first name", &args.firstname), ("surname", &args.surname)] {
                if let Some(text) = text {
                    members::check_text(what, text)?;
                }
            }
            let update = db::members::MemberUpdate {
                username: args.username,
                firstname: args.firstname,
                surname: args.surname,
                status,
                admin: match (args.admin, args.no_admin) {
                    (true, _) => Some(true),
                    (_, true) => Some(false),
                    _ => None,
                },
            };
            let member = write_with_conn(database_url, |conn| {
                let Some(member) =
                    db::members::find_member_by_email(conn, &address).map_err(|e| e.to_string())?
                else {
                    return Err(format!("no member with the email {address}"));
                };
                db::members::update_member(conn, member.id, &update, now)
                    .map_err(|e| e.to_string())?;
                record(
                    conn,
                    audit::Event::MemberChanged,
                    &member.email,
                    Some(member.id),
                    None,
                )?;
                Ok(member)
            })?;
            out!("changed member {} <{}>", member.id, member.email);
            Ok(())
        }
        MembersCommand::Import { file } => {
            let input = std::fs::File::open(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let rows = import::parse_csv(input).map_err(|errors| bad_rows(&file, &errors))?;
            let summary = write_with_conn(database_url, |conn| {
                let summary = db::members::import(conn, &rows, now).map_err(|e| match e {
                    db::members::ImportError::BadRows(errors) => bad_rows(&file, &errors),
                    other => other.to_string(),
                })?;
                record(conn, audit::Event::MembersImported, "", None, None)?;
                Ok(summary)
            })?;
            out!(
                "imported {}: {} added, {} updated",
                file.display(),
                summary.added,
                summary.updated
            );
            Ok(())
        }
        MembersCommand::List { json } => {
            let all = with_conn(database_url, |conn| {
                db::members::list_members(conn).map_err(|e| e.to_string())
            })?;
            print_members(&all, json);
            Ok(())
        }
        MembersCommand::Lock { email: e } => set_locked(database_url, &e, true, now),
        MembersCommand::Unlock { email: e } => set_locked(database_url, &e, false, now),
        MembersCommand::Unbind { email: e, provider } => {
            let address = email(&e)?;
            // A provider's binding is its issuer's: the configuration says which that is, and
            // which other provider entries share it.
            let path = std::env::var_os("IDGATE_CONFIG")
                .map_or_else(|| PathBuf::from(DEFAULT_CONFIG), PathBuf::from);
            let config = match &provider {
                Some(_) if path.exists() => Some(identity::load(&path).map_err(|e| {
                    format!("the configuration says which issuer the provider is on: {e}")
                })?),
                Some(id) => {
                    out!(
                        "no configuration at {}: only the bindings made through `{id}` are cleared",
                        path.display()
                    );
                    None
                }
                None => None,
            };
            let named = provider
                .as_deref()
                .and_then(|id| config.as_ref()?.provider(id))
                .filter(|p| p.tenants.is_none());
            let sharing: Vec<String> = named
                .zip(config.as_ref())
                .map(|(named, config)| config.providers_of_issuer(named.authority()))
                .unwrap_or_default();
            let which = match provider.as_deref() {
                Some(id) => db::members::Unbind::Provider {
                    id,
                    issuer: named.map(|p| p.authority()),
                    sharing: &sharing,
                },
                None => db::members::Unbind::All,
            };
            let removed = write_with_conn(database_url, |conn| {
                let removed =
                    db::members::unbind(conn, &address, which).map_err(|e| e.to_string())?;
                if removed.is_some() {
                    let event = audit::Event::MemberUnbound;
                    record(conn, event, address.as_str(), None, provider.as_deref())?;
                }
                Ok(removed)
            })?;
            match removed {
                Some(n) => {
                    out!("removed {n} binding(s) of {address}");
                    Ok(())
                }
                None => Err(format!("no member with the email {address}")),
            }
        }
        MembersCommand::Remove { email: e } => {
            let address = email(&e)?;
            let removed = write_with_conn(database_url, |conn| {
                let removed =
                    db::members::remove_member(conn, &address).map_err(|e| e.to_string())?;
                if removed {
                    record(
                        conn,
                        audit::Event::MemberRemoved,
                        address.as_str(),
                        None,
                        None,
                    )?;
                }
                Ok(removed)
            })?;
            if removed {
                out!("removed member {address}");
                Ok(())
            } else {
                Err(format!("no member with the email {address}"))
            }
        }
    }
}

/// Writes an administrator's action to the security log (and the log).
pub(super) fn record(
    conn: &mut AnyConnection,
    kind: audit::Event,
    email: &str,
    member_id: Option<i64>,
    provider: Option<&str>,
) -> Result<(), String> {
    let mut event =
        audit::SecurityEvent::new(kind, audit::Outcome::Success, crate::ids::new_incident_id());
    event.email = (!email.is_empty()).then(|| audit::clean(email, 254));
    event.member_id = member_id;
    event.provider = provider.map(str::to_string);
    event.user_agent = Some("idgate command line".into());
    event.trace();
    db::audit::insert_event(conn, &event, unix_now()).map_err(|e| e.to_string())
}

fn set_locked(database_url: &str, text: &str, locked: bool, now: i64) -> Result<(), String> {
    let address = email(text)?;
    let member = write_with_conn(database_url, |conn| {
        let member =
            db::members::set_locked(conn, &address, locked, now).map_err(|e| e.to_string())?;
        if let Some(m) = &member {
            let kind = if locked {
                audit::Event::MemberLocked
            } else {
                audit::Event::MemberUnlocked
            };
            record(conn, kind, &m.email, Some(m.id), None)?;
        }
        Ok(member)
    })?;
    match member {
        Some(m) => {
            out!("{} {}", if locked { "locked" } else { "unlocked" }, m.email);
            Ok(())
        }
        None => Err(format!("no member with the email {address}")),
    }
}

fn bad_rows(file: &std::path::Path, errors: &[import::RowError]) -> String {
    let lines: Vec<String> = errors
        .iter()
        .map(|e| format!("{}:{}: {}", file.display(), e.line, e.message))
        .collect();
    format!(
        "nothing was imported; {} bad row(s):\n{}",
        errors.len(),
        lines.join("\n")
    )
}

#[derive(Serialize)]
struct MemberLine<'a> {
    #[serde(flatten)]
    member: &'a Member,
    bindings: &'a [Binding],
}

fn print_members(all: &[(Member, Vec<Binding>)], json: bool) {
    if json {
        for (member, bindings) in all {
            let line = MemberLine { member, bindings };
            match serde_json::to_string(&line) {
                Ok(text) => out!("{text}"),
                Err(e) => eprintln!("idgate: cannot print member {}: {e}", member.id),
            }
        }
        return;
    }
    out!(
        "{:<6} {:<32} {:<20} {:<24} {:<12} {:<12} PROVIDERS",
        "ID",
        "EMAIL",
        "USERNAME",
        "NAME",
        "STATUS",
        "FLAGS"
    );
    for (m, bindings) in all {
        let name = format!("{} {}", m.firstname, m.surname);
        let flags: Vec<&str> = [(m.locked, "locked"), (m.admin, "admin")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, f)| *f)
            .collect();
        let providers: Vec<&str> = bindings.iter().map(|b| b.provider.as_str()).collect();
        out!(
            "{:<6} {:<32} {:<20} {:<24} {:<12} {:<12} {}",
            m.id,
            m.email,
            m.username,
            name.trim(),
            m.status.as_str(),
            if flags.is_empty() {
                "-".to_string()
            } else {
                flags.join(",")
            },
            if providers.is_empty() {
                "-".to_string()
            } else {
                providers.join(",")
            },
        );
    }
}
