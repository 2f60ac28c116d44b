//! The `idgate` binary: parses the command line, starts logging, and calls into the library.

use std::process::ExitCode;

use clap::Parser as _;
use idgate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    idgate::telemetry::init(level);
    idgate::cli::run(cli)
}
