//! The command line (SPEC §1): `serve`, `check-config`, `members …`, `sessions …` and `audit`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::audit;
use crate::clock::unix_now;
use crate::db::{self, AnyConnection};
use crate::identity;
use crate::members::{self, Binding, Email, Member, MemberStatus, NewMember, import};
use crate::routes::answer::rfc3339;
use crate::sessions::{self, CookieSettings};
use crate::settings::{DEFAULT_CONFIG, DEFAULT_DATABASE, DEFAULT_LISTEN, Settings};
use crate::startup::Application;

/// idgate: the single-sign-on gate of a document platform.
#[derive(Debug, Parser)]
#[command(name = "idgate", version, about, propagate_version = true)]
pub struct Cli {
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DATABASE.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true, default_value = DEFAULT_DATABASE)]
    pub database: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service.
    Serve(ServeArgs),
    /// Validate a configuration file; print every problem as FILE:LINE:COLUMN: message.
    CheckConfig(CheckConfigArgs),
    /// Member administration.
    #[command(subcommand)]
    Members(MembersCommand),
    /// Session administration.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Print the security log, oldest first.
    Audit(AuditArgs),
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List sessions (each by a handle: the first 16 hex characters of its id's hash).
    List {
        /// Only this member's sessions.
        #[arg(long)]
        member: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// End one session (by handle) or every session of a member.
    Revoke {
        /// The session's handle, as `sessions list` shows it.
        #[arg(required_unless_present = "member", conflicts_with = "member")]
        handle: Option<String>,
        /// End every session of this member.
        #[arg(long)]
        member: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only events of this recent period, such as 90s, 10m, 2h or 7d (default: all).
    #[arg(long, value_parser = audit::parse_duration)]
    pub since: Option<i64>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The identity configuration.
    #[arg(long, env = "IDGATE_CONFIG", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "IDGATE_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: String,
    /// The address people reach idgate at (the provider redirect is {public-url}/callback).
    #[arg(long, env = "IDGATE_PUBLIC_URL", value_parser = public_url)]
    pub public_url: Option<url::Url>,
    /// The name of the session cookie.
    #[arg(long, env = "IDGATE_COOKIE_NAME", default_value = sessions::DEFAULT_COOKIE_NAME, value_parser = cookie_name)]
    pub cookie_name: String,
    /// The absolute lifetime of a session, in hours (1 to 720).
    #[arg(long, env = "IDGATE_SESSION_LIFETIME", default_value_t = sessions::DEFAULT_LIFETIME_HOURS, value_parser = clap::value_parser!(u32).range(1..=720))]
    pub session_lifetime: u32,
    /// Seconds a session check may be answered from memory (0 to 5; 0 asks the database every
    /// time). Revocations elsewhere are honoured within this time.
    #[arg(long, env = "IDGATE_SESSION_CACHE", default_value_t = sessions::DEFAULT_CACHE_SECS, value_parser = clap::value_parser!(u32).range(0..=5))]
    pub session_cache: u32,
    /// How providers answer the sign-in: query (GET /callback) or form_post (POST /callback).
    #[arg(long, env = "IDGATE_RESPONSE_MODE", default_value = "query", value_parser = ["query", "form_post"])]
    pub response_mode: String,
}

/// The public URL: an origin (`https://sso.example.org[:port]`), no path, query or user.
fn public_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| format!("`{text}`: {e}"))?;
    let origin_only = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    if origin_only {
        Ok(url)
    } else {
        Err(format!(
            "`{text}` must be an origin such as https://sso.example.org (idgate serves at the root)"
        ))
    }
}

/// A cookie name: an RFC 6265 token.
fn cookie_name(name: &str) -> Result<String, String> {
    let separators = "()<>@,;:\\\"/[]?={} \t";
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() && !separators.contains(c))
    {
        Ok(name.to_string())
    } else {
        Err(format!("`{name}` is not a valid cookie name"))
    }
}

#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The file to check (default: --config).
    pub file: Option<PathBuf>,
    /// The identity configuration.
    #[arg(long, env = "IDGATE_CONFIG", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum MembersCommand {
    /// Add a member.
    Add(AddArgs),
    /// Add or update members from a CSV file with header email,username,firstname,surname,status.
    Import {
        /// The CSV file.
        file: PathBuf,
    },
    /// List members.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Lock a member: they cannot sign in until unlocked.
    Lock { email: String },
    /// Unlock a member.
    Unlock { email: String },
    /// Clear a member's bindings to provider subjects (all providers, or one).
    Unbind {
        email: String,
        /// Only the binding to this provider.
        #[arg(long)]
        provider: Option<String>,
    },
    /// Remove a member.
    Remove { email: String },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    #[arg(long)]
    pub email: String,
    /// Default: the email address.
    #[arg(long)]
    pub username: Option<String>,
    #[arg(long, default_value = "")]
    pub firstname: String,
    #[arg(long, default_value = "")]
    pub surname: String,
    #[arg(long, default_value = "activated", value_parser = ["activated", "unactivated", "set-password", "disabled"])]
    pub status: String,
    /// Make the member an administrator of idgate.
    #[arg(long)]
    pub admin: bool,
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve(args) => serve(args, cli.database),
        Command::CheckConfig(args) => return check_config(args),
        Command::Members(cmd) => members(cmd, &cli.database),
        Command::Sessions(cmd) => sessions_command(cmd, &cli.database),
        Command::Audit(args) => audit_log(args, &cli.database),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("idgate: {message}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs, database_url: String) -> Result<(), String> {
    let settings = Settings {
        config_path: args.config,
        listen: args.listen,
        database_url,
        public_url: args.public_url,
        cookie: CookieSettings {
            name: args.cookie_name,
            lifetime_secs: i64::from(args.session_lifetime) * 3600,
            cache_secs: i64::from(args.session_cache),
        },
        response_mode: args.response_mode.parse()?,
    };
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings.clone()).map_err(|e| e.to_string())?;
        tracing::info!(
            listen = %settings.listen,
            port = app.port(),
            config = %settings.config_path.display(),
            database = %app.state().db.url().redacted(),
            "idgate is serving"
        );
        app.run_until_stopped().await.map_err(|e| e.to_string())
    })
}

fn check_config(args: CheckConfigArgs) -> ExitCode {
    let path = args.file.unwrap_or(args.config);
    match identity::load(&path) {
        Ok(config) => {
            println!(
                "{}: ok ({} providers, {} domains, {} clients)",
                path.display(),
                config.providers.len(),
                config.domains.rules().len(),
                config.clients.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            println!("{errors}");
            ExitCode::FAILURE
        }
    }
}

fn with_conn<T>(
    database_url: &str,
    work: impl FnOnce(&mut AnyConnection) -> Result<T, String>,
) -> Result<T, String> {
    let mut conn = db::connect(database_url).map_err(|e| e.to_string())?;
    work(&mut conn)
}

fn email(text: &str) -> Result<Email, String> {
    Email::parse(text).map_err(|e| format!("`{text}`: {e}"))
}

fn members(cmd: MembersCommand, database_url: &str) -> Result<(), String> {
    let now = unix_now();
    match cmd {
        MembersCommand::Add(args) => {
            let status: MemberStatus = args.status.parse()?;
            if let Some(u) = &args.username {
                members::check_username(u)?;
            }
            let new = NewMember {
                email: email(&args.email)?,
                username: args.username,
                firstname: args.firstname,
                surname: args.surname,
                status,
                admin: args.admin,
            };
            let member = with_conn(database_url, |conn| {
                members::insert_member(conn, &new, now).map_err(|e| e.to_string())
            })?;
            println!("added member {} <{}>", member.id, member.email);
            Ok(())
        }
        MembersCommand::Import { file } => {
            let input = std::fs::File::open(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let rows = import::parse_csv(input).map_err(|errors| bad_rows(&file, &errors))?;
            let summary = with_conn(database_url, |conn| {
                import::import(conn, &rows, now).map_err(|e| match e {
                    import::ImportError::BadRows(errors) => bad_rows(&file, &errors),
                    other => other.to_string(),
                })
            })?;
            println!(
                "imported {}: {} added, {} updated",
                file.display(),
                summary.added,
                summary.updated
            );
            Ok(())
        }
        MembersCommand::List { json } => {
            let all = with_conn(database_url, |conn| {
                members::list_members(conn).map_err(|e| e.to_string())
            })?;
            print_members(&all, json);
            Ok(())
        }
        MembersCommand::Lock { email: e } => set_locked(database_url, &e, true, now),
        MembersCommand::Unlock { email: e } => set_locked(database_url, &e, false, now),
        MembersCommand::Unbind { email: e, provider } => {
            let address = email(&e)?;
            let removed = with_conn(database_url, |conn| {
                let removed = members::unbind(conn, &address, provider.as_deref())
                    .map_err(|e| e.to_string())?;
                if removed.is_some() {
                    let event = audit::Event::MemberUnbound;
                    record(conn, event, address.as_str(), None, provider.as_deref())?;
                }
                Ok(removed)
            })?;
            match removed {
                Some(n) => {
                    println!("removed {n} binding(s) of {address}");
                    Ok(())
                }
                None => Err(format!("no member with the email {address}")),
            }
        }
        MembersCommand::Remove { email: e } => {
            let address = email(&e)?;
            let removed = with_conn(database_url, |conn| {
                let removed = members::remove_member(conn, &address).map_err(|e| e.to_string())?;
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
                println!("removed member {address}");
                Ok(())
            } else {
                Err(format!("no member with the email {address}"))
            }
        }
    }
}

/// Writes an administrator's action to the security log (and the log).
fn record(
    conn: &mut AnyConnection,
    kind: audit::Event,
    email: &str,
    member_id: Option<i64>,
    provider: Option<&str>,
) -> Result<(), String> {
    let mut event = audit::SecurityEvent::new(
        kind,
        audit::Outcome::Success,
        crate::error::new_incident_id(),
    );
    event.email = (!email.is_empty()).then(|| audit::clean(email, 254));
    event.member_id = member_id;
    event.provider = provider.map(str::to_string);
    event.user_agent = Some("idgate command line".into());
    event.trace();
    audit::insert_event(conn, &event, unix_now()).map_err(|e| e.to_string())
}

fn set_locked(database_url: &str, text: &str, locked: bool, now: i64) -> Result<(), String> {
    let address = email(text)?;
    let member = with_conn(database_url, |conn| {
        let member = members::set_locked(conn, &address, locked, now).map_err(|e| e.to_string())?;
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
            println!("{} {}", if locked { "locked" } else { "unlocked" }, m.email);
            Ok(())
        }
        None => Err(format!("no member with the email {address}")),
    }
}

/// The member with this email, or an error naming it.
fn member_id(conn: &mut AnyConnection, text: &str) -> Result<i64, String> {
    let address = email(text)?;
    members::find_member_by_email(conn, &address)
        .map_err(|e| e.to_string())?
        .map(|m| m.id)
        .ok_or_else(|| format!("no member with the email {address}"))
}

fn sessions_command(cmd: SessionsCommand, database_url: &str) -> Result<(), String> {
    match cmd {
        SessionsCommand::List { member, json } => {
            let all = with_conn(database_url, |conn| {
                let member = member.as_deref().map(|m| member_id(conn, m)).transpose()?;
                sessions::list_sessions(conn, member).map_err(|e| e.to_string())
            })?;
            if !json {
                println!(
                    "{:<16} {:<32} {:<12} {:<20} {:<20} EXPIRES",
                    "HANDLE", "EMAIL", "PROVIDER", "CREATED", "LAST SEEN"
                );
            }
            for s in &all {
                if json {
                    match serde_json::to_string(s) {
                        Ok(text) => println!("{text}"),
                        Err(e) => eprintln!("idgate: cannot print session {}: {e}", s.handle),
                    }
                } else {
                    println!(
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
        SessionsCommand::Revoke { handle, member } => with_conn(database_url, |conn| {
            if let Some(member) = member {
                let id = member_id(conn, &member)?;
                let ended =
                    sessions::delete_member_sessions(conn, id).map_err(|e| e.to_string())?;
                record(conn, audit::Event::SessionsRevoked, &member, Some(id), None)?;
                println!("revoked {ended} session(s) of {member}");
                return Ok(());
            }
            let handle = handle.unwrap_or_default();
            if sessions::revoke_by_handle(conn, &handle).map_err(|e| e.to_string())? {
                record(conn, audit::Event::SessionsRevoked, "", None, None)?;
                println!("revoked session {handle}");
                Ok(())
            } else {
                Err(format!("no session with the handle {handle}"))
            }
        }),
    }
}

fn audit_log(args: AuditArgs, database_url: &str) -> Result<(), String> {
    let since = args
        .since
        .map_or(i64::MIN, |secs| unix_now().saturating_sub(secs));
    let events = with_conn(database_url, |conn| {
        audit::list_events(conn, since).map_err(|e| e.to_string())
    })?;
    for e in &events {
        if args.json {
            match serde_json::to_string(e) {
                Ok(text) => println!("{text}"),
                Err(err) => eprintln!("idgate: cannot print event {}: {err}", e.id),
            }
            continue;
        }
        let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        println!(
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
                Ok(text) => println!("{text}"),
                Err(e) => eprintln!("idgate: cannot print member {}: {e}", member.id),
            }
        }
        return;
    }
    println!(
        "{:<6} {:<32} {:<20} {:<24} {:<12} {:<12} PROVIDERS",
        "ID", "EMAIL", "USERNAME", "NAME", "STATUS", "FLAGS"
    );
    for (m, bindings) in all {
        let name = format!("{} {}", m.firstname, m.surname);
        let flags: Vec<&str> = [(m.locked, "locked"), (m.admin, "admin")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, f)| *f)
            .collect();
        let providers: Vec<&str> = bindings.iter().map(|b| b.provider.as_str()).collect();
        println!(
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
