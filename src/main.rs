//! The `idgate` binary: parses the command line, starts logging, and calls into the library.

use std::process::ExitCode;

use clap::Parser as _;
use idgate::cli::{Cli, Command};

/// mimalloc rather than the C library's allocator: a sign-in or session check allocates and
/// frees many small buffers on the HTTP worker and the database writer, where glibc's `malloc`
/// and `free` were a tenth of the CPU (see docs/performance.md). Built without transparent huge
/// pages (`no_thp`), which doubled the resident memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    idgate::telemetry::init(level);
    idgate::cli::run(cli)
}
