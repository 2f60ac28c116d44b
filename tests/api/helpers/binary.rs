//! The `idgate` binary as a separate process: a command's output, or `idgate serve` until the
//! test drops it.

use std::path::Path;
use std::process::{Command, Output};

/// The `idgate` binary, to run in `dir`, with none of the caller's `DATABASE_URL` or
/// `IDGATE_CONFIG`: every test that runs the binary starts it through here.
pub fn idgate_command(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_idgate"));
    command
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("IDGATE_CONFIG");
    command
}

/// Runs the `idgate` binary in `dir` with `--database url`.
pub fn idgate(dir: &Path, database_url: &str, args: &[&str]) -> Output {
    idgate_command(dir)
        .args(args)
        .args(["--database", database_url])
        .output()
        .unwrap_or_else(|e| panic!("cannot run idgate: {e}"))
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `idgate serve` as a separate process, stopped (SIGTERM) when dropped.
pub struct ServeProcess {
    pub port: u16,
    pub address: String,
    /// The log events written before idgate said it serves.
    pub started: Vec<serde_json::Value>,
    child: std::process::Child,
    /// The log still to read; `None` once closed ([`ServeProcess::close_log`]).
    lines: Option<std::io::Lines<std::io::BufReader<std::process::ChildStderr>>>,
}

impl ServeProcess {
    /// Starts `idgate serve` in `dir` on a random port with JSON logs, and waits until it serves.
    pub fn start(dir: &Path, database_url: &str, extra: &[&str]) -> ServeProcess {
        Self::start_logging(dir, database_url, extra, None)
    }

    /// As [`ServeProcess::start`], with the log filter `RUST_LOG=filter` when given.
    pub fn start_logging(
        dir: &Path,
        database_url: &str,
        extra: &[&str],
        filter: Option<&str>,
    ) -> ServeProcess {
        let mut command = idgate_command(dir);
        if let Some(filter) = filter {
            command.env("RUST_LOG", filter);
        }
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database",
                database_url,
            ])
            .args(extra);
        Self::spawn(command)
    }

    /// Runs `command` (an `idgate serve`, from [`idgate_command`]) with JSON logs on a pipe, and
    /// waits until it serves.
    pub fn spawn(mut command: Command) -> ServeProcess {
        use std::io::BufRead as _;
        let mut child = command
            .env("IDGATE_LOG_FORMAT", "json")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run idgate: {e}"));
        let stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
        let mut process = ServeProcess {
            port: 0,
            address: String::new(),
            started: Vec::new(),
            child,
            lines: Some(std::io::BufReader::new(stderr).lines()),
        };
        let mut started = process.events_until("idgate is serving");
        let port = started
            .pop()
            .and_then(|serving| serving["port"].as_u64().and_then(|p| u16::try_from(p).ok()));
        let port = port.unwrap_or_else(|| panic!("no port in the log"));
        process.port = port;
        process.address = format!("http://127.0.0.1:{port}");
        process.started = started;
        process
    }

    /// Reads the log until an event with this message, and returns it.
    pub fn wait_for(&mut self, message: &str) -> serde_json::Value {
        self.events_until(message)
            .pop()
            .unwrap_or_else(|| panic!("no `{message}`"))
    }

    /// Every log event read until one with this message, that one included.
    pub fn events_until(&mut self, message: &str) -> Vec<serde_json::Value> {
        let lines = self
            .lines
            .as_mut()
            .unwrap_or_else(|| panic!("the log is closed"));
        let mut events = Vec::new();
        loop {
            let line = match lines.next() {
                Some(Ok(line)) => line,
                other => panic!("idgate stopped before `{message}`: {other:?}"),
            };
            if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) {
                let done = event["message"] == message;
                events.push(event);
                if done {
                    return events;
                }
            }
        }
    }

    /// Stops reading the log, as a log collector that died would: idgate's writes to it fail.
    pub fn close_log(&mut self) {
        self.lines = None;
    }

    /// Sends `signal` (`-TERM`, `-HUP`, …) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(status.success(), "kill {signal}");
    }

    /// Waits until the process ends (after a signal that stops it): its exit status.
    pub fn wait(mut self) -> std::process::ExitStatus {
        self.child
            .wait()
            .unwrap_or_else(|e| panic!("cannot wait for idgate: {e}"))
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        // Not when it has ended (and been waited for): its pid may be another process's now.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let _ = self.child.wait();
        }
    }
}
