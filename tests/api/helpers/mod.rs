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
