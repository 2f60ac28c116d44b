//! Test fixtures, by concern: fresh databases on both backends ([`db`]), the app on a random
//! port ([`app`]), the binary as a process ([`binary`]), and the repository's files.

use std::path::{Path, PathBuf};

mod app;
mod binary;
mod db;

pub use app::*;
pub use binary::*;
pub use db::{TestDb, temp_dir};
pub(crate) use db::{async_on_both_backends, on_both_backends};

/// The repository's own files.
pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

pub fn fixture(name: &str) -> PathBuf {
    repo_path(&format!("tests/fixtures/identity/{name}"))
}

/// The headers a proxy (Traefik, Caddy) sends `GET /forward-auth` for a request it holds: the
/// original request's method, `https`, host and URI in `X-Forwarded-*`, and its `Accept`.
pub fn forwarded<'a>(
    method: &'a str,
    host: &'a str,
    uri: &'a str,
    accept: &'a str,
) -> Vec<(&'static str, &'a str)> {
    vec![
        ("X-Forwarded-Method", method),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", host),
        ("X-Forwarded-Uri", uri),
        ("Accept", accept),
    ]
}

/// `request` with each of `headers` added.
pub fn with_headers(
    mut request: reqwest::RequestBuilder,
    headers: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
}

/// Whether a test that needs outside tools can run: `missing` names what is not installed.
/// With `IDGATE_E2E=1` (as `.ci/run` sets) a gap is a failure; elsewhere the test says it was
/// skipped and returns.
pub fn tools_ready(test: &str, missing: &[String]) -> bool {
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("IDGATE_E2E").as_deref() != Ok("1"),
        "IDGATE_E2E=1 but missing for the {test}: {missing:?}"
    );
    eprintln!("{test} skipped: missing {missing:?}");
    false
}
