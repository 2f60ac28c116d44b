//! The command line: `serve`, `check-config`, `members …`, `sessions …` and `audit`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::audit;
use crate::clock::rfc3339;
use crate::clock::unix_now;
use crate::db::{self, AnyConnection};
use crate::identity;
use crate::members::{self, Binding, Email, Member, MemberStatus, NewMember, import};
use crate::oidc::probe::Finding;
use crate::sessions::{self, CookieSettings};
use crate::settings::{DEFAULT_CONFIG, DEFAULT_DATABASE, DEFAULT_LISTEN, Settings};

/// Writes a line of a command's output; a reader that went away (`| head`) ends the command
/// quietly, as a successful one.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(error) = writeln!(std::io::stdout(), $($arg)*) {
            if error.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

mod admin;
mod member_commands;

use admin::{audit_log, sessions_command};
use member_commands::{members as member_command, record};

/// idgate: the single-sign-on gate of a document platform.
#[derive(Debug, Parser)]
#[command(name = "idgate", version, about, propagate_version = true)]
pub struct Cli {
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DATABASE [default: sqlite://idgate.db;
    /// only `serve` creates it there].
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    pub database: Option<String>,

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
    /// End one session (by handle), every session of a member, or every session signed in
    /// through a provider.
    Revoke {
        /// The session's handle, as `sessions list` shows it.
        #[arg(required_unless_present_any = ["member", "provider"], conflicts_with_all = ["member", "provider"])]
        handle: Option<String>,
        /// End every session of this member.
        #[arg(long, conflicts_with = "provider")]
        member: Option<String>,
        /// End every session signed in through this provider.
        #[arg(long)]
        provider: Option<String>,
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
    /// What an answered write (a sign-in, a sign-out) survives: power-loss (each commit waits
    /// for the disk) or process-crash (a crash of idgate, not of the machine; faster).
    #[arg(long, env = "IDGATE_DURABILITY", default_value = "power-loss", value_parser = ["power-loss", "process-crash"])]
    pub durability: String,
}

/// The public URL: an origin (`https://sso.example.org[:port]`), no path, query or user.
fn public_url(text: &str) -> Result<url::Url, String> {
    let mut url = url::Url::parse(text).map_err(|e| format!("`{text}`: {e}"))?;
    let usable = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some()
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    if !usable {
        return Err(format!(
            "`{text}` must be an http or https address such as https://sso.example.org or https://docs.example.org/sso (no query)"
        ));
    }
    // idgate serves under the path, if any: kept without a trailing `/`.
    let path = url.path().trim_end_matches('/').to_string();
    url.set_path(if path.is_empty() { "/" } else { &path });
    Ok(url)
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
    /// Also fetch each provider's discovery document and keys, and report what would make its
    /// sign-ins fail.
    #[arg(long)]
    pub probe: bool,
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
    /// Change a member in place (the same id, bindings kept).
    Set(SetArgs),
}

#[derive(Debug, Args)]
pub struct SetArgs {
    pub email: String,
    /// Make the member an administrator of idgate.
    #[arg(long, conflicts_with = "no_admin")]
    pub admin: bool,
    /// Make the member no administrator.
    #[arg(long)]
    pub no_admin: bool,
    #[arg(long, value_parser = ["activated", "unactivated", "set-password", "disabled"])]
    pub status: Option<String>,
    #[arg(long)]
    pub username: Option<String>,
    #[arg(long)]
    pub firstname: Option<String>,
    #[arg(long)]
    pub surname: Option<String>,
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
        Command::Serve(args) => serve(
            args,
            cli.database.unwrap_or_else(|| DEFAULT_DATABASE.to_string()),
        ),
        Command::CheckConfig(args) => return check_config(args),
        Command::Members(cmd) => {
            existing_database(cli.database).and_then(|database| member_command(cmd, &database))
        }
        Command::Sessions(cmd) => {
            existing_database(cli.database).and_then(|database| sessions_command(cmd, &database))
        }
        Command::Audit(args) => {
            existing_database(cli.database).and_then(|database| audit_log(args, &database))
        }
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
        durability: args.durability.parse()?,
        public_url: args.public_url,
        cookie: CookieSettings {
            name: args.cookie_name,
            lifetime_secs: i64::from(args.session_lifetime) * 3600,
            cache_secs: i64::from(args.session_cache),
        },
        response_mode: args.response_mode.parse()?,
    };
    let loopback = settings
        .listen
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback())
        || settings.listen.starts_with("localhost:");
    if settings.public_url.is_none() && !loopback {
        tracing::warn!(
            listen = %settings.listen,
            "--public-url is not set: redirect URIs and cookies follow the Host of each request, which is for development only (see docs/configuration.md)"
        );
    }
    crate::startup::serve(settings).map_err(|e| e.to_string())
}

fn check_config(args: CheckConfigArgs) -> ExitCode {
    let path = args.file.unwrap_or(args.config);
    let config = match identity::load(&path) {
        Ok(config) => config,
        Err(errors) => {
            out!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    let file = path.display();
    for warning in &config.warnings {
        let pos = warning.pos;
        out!(
            "{file}:{}:{}: warning: {}",
            pos.line,
            pos.column,
            warning.error
        );
    }
    let mut failed = false;
    if args.probe {
        let findings = match probe_providers(&config) {
            Ok(findings) => findings,
            Err(message) => {
                out!("{file}: cannot probe: {message}");
                return ExitCode::FAILURE;
            }
        };
        for (pos, finding) in findings {
            let (line, column) = (pos.line, pos.column);
            match finding {
                Finding::Error(message) => {
                    failed = true;
                    out!("{file}:{line}:{column}: {message}");
                }
                Finding::Warning(message) => {
                    out!("{file}:{line}:{column}: warning: {message}");
                }
            }
        }
    }
    if failed {
        return ExitCode::FAILURE;
    }
    out!(
        "{file}: ok ({} providers, {} domains, {} clients)",
        config.providers.len(),
        config.domains.rules().len(),
        config.clients.len()
    );
    ExitCode::SUCCESS
}

/// Every provider probed in turn (each fetch times out after 5 seconds); what each found, at
/// its `authorityUrl`.
fn probe_providers(
    config: &identity::IdentityConfig,
) -> Result<Vec<(identity::Pos, Finding)>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let fetcher = crate::oidc::http::Fetcher::new().map_err(|e| e.to_string())?;
    let mut all = Vec::new();
    for provider in &config.providers {
        let findings = runtime.block_on(crate::oidc::probe::probe(fetcher.clone(), provider));
        all.extend(findings.into_iter().map(|f| (provider.authority_pos, f)));
    }
    Ok(all)
}

/// The database of a command other than `serve`: the one given (flag or `DATABASE_URL`),
/// created and migrated if need be, or the default one, which must exist already: a command
/// run in the wrong directory must not make a new, empty database there.
fn existing_database(given: Option<String>) -> Result<String, String> {
    if let Some(url) = given {
        return Ok(url);
    }
    let path = DEFAULT_DATABASE
        .strip_prefix("sqlite://")
        .unwrap_or(DEFAULT_DATABASE);
    if std::path::Path::new(path).exists() {
        Ok(DEFAULT_DATABASE.to_string())
    } else {
        Err(format!(
            "no database at ./{path} (idgate serve creates it; or pass --database)"
        ))
    }
}

fn with_conn<T>(
    database_url: &str,
    work: impl FnOnce(&mut AnyConnection) -> Result<T, String>,
) -> Result<T, String> {
    let mut conn = db::connect(database_url).map_err(|e| e.to_string())?;
    work(&mut conn)
}

/// [`with_conn`] for an administrator's action: the action and its row of the security log are
/// one transaction, so that an action is never done without being logged (a failure of either
/// undoes both, and the command fails).
fn write_with_conn<T>(
    database_url: &str,
    work: impl FnOnce(&mut AnyConnection) -> Result<T, String>,
) -> Result<T, String> {
    /// The action's own error, or the database's.
    struct Failed(String);
    impl From<db::StoreError> for Failed {
        fn from(error: db::StoreError) -> Self {
            Failed(error.to_string())
        }
    }
    with_conn(database_url, |conn| {
        db::write_transaction(conn, |conn| work(conn).map_err(Failed)).map_err(|f| f.0)
    })
}

fn email(text: &str) -> Result<Email, String> {
    Email::parse(text).map_err(|e| format!("`{text}`: {e}"))
}
