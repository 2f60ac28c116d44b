//! The Debian package: built with `cargo deb`, installed with `dpkg -i`, its systemd unit
//! verified with `systemd-analyze verify`, the installed binary started as the `idgate` user with
//! the packaged files until `/readyz` answers 200, then purged.
//!
//! Needs root, `cargo-deb`, `dpkg` and `systemd-analyze`, and a machine where no `idgate` package
//! is installed; `.ci/run` provides them and sets `IDGATE_E2E=1`, which makes their absence a
//! failure. Elsewhere the test says it was skipped.

use std::io::BufRead as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// Whether the test can run here; without `IDGATE_E2E=1` a gap skips it.
fn ready() -> bool {
    let is_root = String::from_utf8_lossy(&run("id", &["-u"]).stdout).trim() == "0";
    let missing: Vec<String> = [
        (is_root, "root (dpkg -i)"),
        (succeeds(&cargo(), &["deb", "--version"]), "cargo-deb"),
        (succeeds("dpkg", &["--version"]), "dpkg"),
        (
            succeeds("systemd-analyze", &["--version"]),
            "systemd-analyze",
        ),
    ]
    .into_iter()
    .filter(|(present, _)| !present)
    .map(|(_, what)| what.to_string())
    .collect();
    if !crate::helpers::tools_ready("Debian package test", &missing) {
        return false;
    }
    assert!(
        !succeeds("dpkg", &["-s", "idgate"]),
        "an idgate package is installed on this machine; the package test would replace it"
    );
    true
}

/// Purges the package when dropped, so a failing test leaves the machine as it found it.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["--purge", "idgate"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn build_package(out: &Path) -> PathBuf {
    let built = Command::new(cargo())
        .args(["deb", "--output"])
        .arg(out)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo deb runs");
    assert!(
        built.status.success(),
        "cargo deb failed: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let name = format!("idgate_{}_amd64.deb", env!("CARGO_PKG_VERSION"));
    let package = out.join(&name);
    assert!(package.exists(), "cargo deb did not write {name}");
    package
}

fn mode(path: &str) -> (u32, String, String) {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let owner = |flag: &str| {
        String::from_utf8_lossy(&run("stat", &[flag, path]).stdout)
            .trim()
            .to_string()
    };
    (meta.mode() & 0o7777, owner("-c%U"), owner("-c%G"))
}

/// The variables of `/etc/default/idgate`, as systemd's `EnvironmentFile=` reads them.
fn environment_file() -> Vec<(String, String)> {
    std::fs::read_to_string("/etc/default/idgate")
        .expect("/etc/default/idgate")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The status code of a plain HTTP/1.1 GET.
fn status_of(port: u64, path: &str) -> u16 {
    use std::io::{Read as _, Write as _};
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", u16::try_from(port).expect("a port")))
            .expect("the installed idgate accepts connections");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("the request is sent");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"))
}

#[test]
fn the_debian_package_installs_a_service_that_starts() {
    if !ready() {
        return;
    }
    let out = tempfile::tempdir().expect("a temporary directory");
    let package = build_package(out.path());

    let contents = String::from_utf8_lossy(
        &run("dpkg-deb", &["--contents", package.to_str().unwrap()]).stdout,
    )
    .to_string();
    for path in [
        "./usr/bin/idgate",
        "./etc/idgate/identity.yaml",
        "./etc/default/idgate",
        "/systemd/system/idgate.service",
    ] {
        assert!(
            contents.contains(path),
            "{path} not in the package:\n{contents}"
        );
    }
    let conffiles = String::from_utf8_lossy(
        &run(
            "dpkg-deb",
            &["--info", package.to_str().unwrap(), "conffiles"],
        )
        .stdout,
    )
    .to_string();
    assert!(
        conffiles.contains("/etc/idgate/identity.yaml"),
        "{conffiles}"
    );
    assert!(conffiles.contains("/etc/default/idgate"), "{conffiles}");

    let installed = Installed;
    let install = run("dpkg", &["-i", package.to_str().unwrap()]);
    assert!(
        install.status.success(),
        "dpkg -i failed: {}{}",
        String::from_utf8_lossy(&install.stdout),
        String::from_utf8_lossy(&install.stderr)
    );

    // The system user, the state directory and the secrets file.
    assert!(succeeds("getent", &["passwd", "idgate"]), "no idgate user");
    assert_eq!(
        mode("/var/lib/idgate"),
        (0o750, "idgate".into(), "idgate".into())
    );
    assert_eq!(
        mode("/etc/default/idgate"),
        (0o640, "root".into(), "idgate".into())
    );
    assert_eq!(
        mode("/etc/idgate/identity.yaml"),
        (0o640, "root".into(), "idgate".into())
    );

    // The unit, as installed.
    let listed = String::from_utf8_lossy(&run("dpkg", &["-L", "idgate"]).stdout).to_string();
    let unit = listed
        .lines()
        .find(|line| line.ends_with("/systemd/system/idgate.service"))
        .unwrap_or_else(|| panic!("no unit installed:\n{listed}"))
        .to_string();
    let verify = run("systemd-analyze", &["verify", &unit]);
    assert!(
        verify.status.success(),
        "systemd-analyze verify {unit}: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let text = std::fs::read_to_string(&unit).expect("the unit");
    for line in [
        "User=idgate",
        "ExecStart=/usr/bin/idgate serve",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "EnvironmentFile=-/etc/default/idgate",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/idgate",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "CapabilityBoundingSet=\n",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
    ] {
        assert!(text.contains(line), "the unit lacks {line:?}");
    }

    // The installed binary, as the unit runs it: the idgate user, the packaged settings, the
    // state directory; only the port is chosen by the test.
    let mut child = Command::new("runuser")
        .args(["-u", "idgate", "--", "/usr/bin/idgate", "serve"])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(environment_file())
        .env("IDGATE_LISTEN", "127.0.0.1:0")
        .env("IDGATE_LOG_FORMAT", "json")
        .current_dir("/var/lib/idgate")
        .stderr(Stdio::piped())
        .spawn()
        .expect("runuser starts idgate");
    let stderr = child.stderr.take().expect("stderr");
    let mut port = None;
    let mut lines = std::io::BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        let Ok(line) = line else { break };
        if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
            && event["message"] == "idgate is serving"
        {
            port = event["port"].as_u64();
            break;
        }
        eprintln!("{line}");
    }
    let Some(port) = port else {
        let _ = child.kill();
        panic!("the installed idgate did not start");
    };
    // Keep reading the log, so the service never writes to a closed pipe.
    let log = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    let ready = status_of(port, "/readyz");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let log = log.join().unwrap_or_default();
    assert_eq!(
        ready, 200,
        "/readyz of the installed service; its log: {log:#?}"
    );
    assert_eq!(
        mode("/var/lib/idgate/idgate.db").1,
        "idgate",
        "the database belongs to the service user"
    );

    // Checking the configuration as docs/operations.md says: as the service user, with the
    // service's variables (a secret the configuration reads among them).
    let yaml = std::fs::read_to_string("/etc/idgate/identity.yaml").expect("the configuration");
    let with_secret = yaml.replacen(
        "# clientSecret: ${ENTRYPAGE_SECRET}",
        "clientSecret: ${ENTRYPAGE_SECRET}",
        1,
    );
    assert_ne!(with_secret, yaml, "the example names ENTRYPAGE_SECRET");
    std::fs::write("/etc/idgate/identity.yaml", with_secret).expect("write the configuration");
    let mut settings = std::fs::read_to_string("/etc/default/idgate").expect("the settings");
    settings.push_str("ENTRYPAGE_SECRET=s3cret\n");
    std::fs::write("/etc/default/idgate", settings).expect("write the settings");
    let documented = r#"set -a; . /etc/default/idgate; exec idgate check-config "$IDGATE_CONFIG""#;
    let checked = run("runuser", &["-u", "idgate", "--", "sh", "-c", documented]);
    assert!(
        checked.status.success(),
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    // Without the service's variables, the secret is missing.
    let bare = run(
        "runuser",
        &[
            "-u",
            "idgate",
            "--",
            "idgate",
            "check-config",
            "/etc/idgate/identity.yaml",
        ],
    );
    assert!(!bare.status.success());
    assert!(
        String::from_utf8_lossy(&bare.stdout).contains("ENTRYPAGE_SECRET")
            || String::from_utf8_lossy(&bare.stderr).contains("ENTRYPAGE_SECRET")
    );

    drop(installed);
    assert!(
        !Path::new("/usr/bin/idgate").exists(),
        "the binary stays after purge"
    );
    assert!(
        !Path::new("/var/lib/idgate").exists(),
        "the state stays after purge"
    );
    assert!(
        !succeeds("getent", &["passwd", "idgate"]),
        "the user stays after purge"
    );
}
