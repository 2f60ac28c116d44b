//! Logging through `tracing`: human-readable by default, JSON lines with `IDGATE_LOG_FORMAT=json`.
//! Logs go to standard error, so that command output on standard output stays clean.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// What actix-web's HTTP/1 dispatcher logs at ERROR is a client's mistake (a request that does
/// not parse, a connection dropped mid-request), not a fault of the service: left out unless
/// `RUST_LOG` asks for it.
const QUIET_CLIENT_ERRORS: &str = "actix_http::h1::dispatcher=off";

/// Installs the global subscriber. `default_level` applies unless `RUST_LOG` says otherwise.
pub fn init(default_level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default_level},{QUIET_CLIENT_ERRORS}")));
    let json = std::env::var("IDGATE_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    // Colour only for a person at a terminal who has not asked for none.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        // A log that cannot be written (standard error closed) is lost, and nothing else: by
        // default the subscriber reports the failure on standard error with `eprint!`, which
        // panics there, and every request that logs would fail.
        .log_internal_errors(false)
        .with_writer(std::io::stderr);
    // A second initialisation (tests starting several apps) is harmless and ignored.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
