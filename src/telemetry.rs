//! Logging through `tracing`: human-readable by default, JSON lines with `IDGATE_LOG_FORMAT=json`.
//! Logs go to standard error, so that command output on standard output stays clean.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `default_level` applies unless `RUST_LOG` says otherwise.
pub fn init(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let json = std::env::var("IDGATE_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (tests starting several apps) is harmless and ignored.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
