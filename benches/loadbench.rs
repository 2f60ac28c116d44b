//! The load benchmark of idgate's two hot paths (see `benches/README.md`): ID-token sign-in (RS256
//! and ES256, 1 and 64 connections) and `GET /auth` with a session cookie (64 connections).
//!
//! It starts the mock OpenID provider of the tests in this process, the `idgate` binary cargo
//! built for it (`serve`) as a child process (pinned to CPU 0 when `taskset` and two CPUs are
//! there; this process should run on CPU 1, as `benches/run.sh` does), pre-mints distinct tokens, and reports requests per
//! second, p50/p99 latency, the idgate process's CPU time per operation (from /proc), its memory,
//! and how many provider requests the measured phases caused.
//!
//! benches/run.sh [--database URL] [--tokens N] [--auth-seconds S] [--perf FILE]
//! cargo bench --bench loadbench -- [the same options]

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark stops on the first failure"
)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use idgate_test_support::provider::{self, MockProvider, TestKey};

struct Args {
    database: Option<String>,
    tokens: usize,
    auth_seconds: u64,
    /// Where to write a `perf record` profile of idgate during the RS256 64-connection phase.
    perf: Option<String>,
}

fn args() -> Args {
    let mut args = Args {
        database: None,
        tokens: 4000,
        auth_seconds: 10,
        perf: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--database" => args.database = it.next(),
            "--perf" => args.perf = it.next(),
            "--tokens" => args.tokens = it.next().and_then(|n| n.parse().ok()).expect("--tokens N"),
            "--auth-seconds" => {
                args.auth_seconds = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--auth-seconds S");
            }
            // What `cargo bench` passes to every benchmark.
            "--bench" => {}
            other => panic!("unknown argument {other}; see the top of benches/loadbench.rs"),
        }
    }
    args
}

/// The idgate process: its pid, its address, and a way to stop it.
struct Idgate {
    child: Child,
    address: String,
}

impl Drop for Idgate {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// The machine's CPUs (not this process's affinity, which `benches/run.sh` narrows to one).
fn machine_cpus() -> usize {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|info| info.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(1)
        .max(1)
}

fn pinning() -> Option<Vec<&'static str>> {
    let cpus = machine_cpus();
    (cpus >= 2 && Path::new("/usr/bin/taskset").exists())
        .then(|| vec!["/usr/bin/taskset", "-c", "0"])
}

fn start_idgate(binary: &Path, dir: &Path, database: &str) -> Idgate {
    let (program, pin_args): (PathBuf, Vec<String>) = match pinning() {
        Some(pin) => (
            PathBuf::from(pin[0]),
            pin[1..]
                .iter()
                .map(|s| s.to_string())
                .chain([binary.display().to_string()])
                .collect(),
        ),
        None => (binary.to_path_buf(), Vec::new()),
    };
    let mut child = Command::new(program)
        .args(pin_args)
        .current_dir(dir)
        .env("IDGATE_LOG_FORMAT", "json")
        .env_remove("RUST_LOG")
        .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start idgate");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let port = loop {
        let line = lines.next().expect("idgate stopped").expect("log line");
        if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
            && event["message"] == "idgate is serving"
        {
            break event["port"].as_u64().expect("port");
        }
    };
    // Keep reading the log so that idgate never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Idgate {
        address: format!("http://127.0.0.1:{port}"),
        child,
    }
}

/// Starts `perf record` (call graphs, software clock) on the idgate process.
fn start_perf(pid: u32, file: &str) -> Child {
    let child = Command::new("perf")
        .args([
            "record",
            "-e",
            "cpu-clock",
            "-F",
            "4000",
            "-g",
            "-o",
            file,
            "-p",
        ])
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start perf");
    // perf attaches within a moment; a phase of several seconds makes the gap negligible.
    std::thread::sleep(Duration::from_millis(300));
    child
}

fn stop_perf(mut perf: Child) {
    let _ = Command::new("kill")
        .args(["-INT", &perf.id().to_string()])
        .status();
    let _ = perf.wait();
}

/// The SQLite writer's `(writes, commits)` so far, from `GET /metrics` (none on PostgreSQL).
async fn writer_counts(idgate: &Idgate) -> Option<(u64, u64)> {
    let text = reqwest::get(format!("{}/metrics", idgate.address))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let value = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
    };
    Some((
        value("idgate_db_writes_total ")?,
        value("idgate_db_commits_total ")?,
    ))
}

/// Bytes the process has passed to write calls so far (`wchar` of /proc/PID/io).
fn written_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("wchar: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// User and system CPU time of a process so far, from /proc/PID/stat, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 (utime, stime) of stat(5), counted after the name.
    let clock_ticks = 100.0;
    (ticks(11) + ticks(12)) / clock_ticks
}

/// VmRSS and VmHWM of a process, in MiB.
fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
}

struct Phase {
    name: String,
    requests: usize,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_us_per_op: f64,
    /// Bytes idgate handed to `write`/`pwrite` (the database files and its log), per operation.
    written_kib_per_op: f64,
    /// Writes per commit of the SQLite writer (from `/metrics`), when it has one.
    writes_per_commit: Option<f64>,
    provider_requests: usize,
}

/// What a phase is measured by, from its start: the idgate process's CPU time and writes, and
/// its SQLite writer's counters.
struct Meter {
    started: Instant,
    cpu_seconds: f64,
    written_bytes: u64,
    writer: Option<(u64, u64)>,
}

impl Meter {
    async fn start(idgate: &Idgate) -> Meter {
        let pid = idgate.child.id();
        Meter {
            writer: writer_counts(idgate).await,
            cpu_seconds: cpu_seconds(pid),
            written_bytes: written_bytes(pid),
            started: Instant::now(),
        }
    }

    /// The phase's figures, per operation where they are costs.
    async fn finish(
        self,
        idgate: &Idgate,
        name: String,
        mut latencies: Vec<Duration>,
        provider_requests: usize,
    ) -> Phase {
        let seconds = self.started.elapsed().as_secs_f64();
        let pid = idgate.child.id();
        let operations = latencies.len().max(1) as f64;
        let cpu = cpu_seconds(pid) - self.cpu_seconds;
        let written = written_bytes(pid) - self.written_bytes;
        let writes_per_commit = match (self.writer, writer_counts(idgate).await) {
            (Some((w0, c0)), Some((w1, c1))) if c1 > c0 => {
                Some((w1 - w0) as f64 / (c1 - c0) as f64)
            }
            _ => None,
        };
        latencies.sort_unstable();
        Phase {
            name,
            requests: latencies.len(),
            seconds,
            p50_ms: percentile(&latencies, 0.50),
            p99_ms: percentile(&latencies, 0.99),
            cpu_us_per_op: cpu / operations * 1e6,
            written_kib_per_op: written as f64 / operations / 1024.0,
            writes_per_commit,
            provider_requests,
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

/// Runs `requests` through `connections` concurrent workers; each request must answer 200.
async fn run_phase(
    name: &str,
    idgate: &Idgate,
    provider: &MockProvider,
    connections: usize,
    requests: Vec<reqwest::RequestBuilder>,
) -> Phase {
    let provider_before = provider.jwks_fetches() + provider.discovery_fetches();
    let meter = Meter::start(idgate).await;
    let total = requests.len();
    // Workers take requests from the end: reversed, they go in the order given.
    let mut requests = requests;
    requests.reverse();
    let queue = Arc::new(std::sync::Mutex::new(requests));
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let queue = queue.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let Some(request) = queue.lock().expect("queue").pop() else {
                        break;
                    };
                    let sent = Instant::now();
                    let response = request.send().await.expect("request");
                    let status = response.status();
                    let _ = response.bytes().await;
                    assert_eq!(status, 200, "a request failed during the benchmark");
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(total);
    for worker in workers {
        latencies.extend(worker.await.expect("worker"));
    }
    let provider_requests =
        provider.jwks_fetches() + provider.discovery_fetches() - provider_before;
    meter
        .finish(idgate, name.to_string(), latencies, provider_requests)
        .await
}

/// `/auth` with one valid session cookie, as many requests as `connections` workers complete in
/// `seconds`.
async fn run_auth_phase(
    idgate: &Idgate,
    client: &reqwest::Client,
    session: &str,
    connections: usize,
    seconds: u64,
) -> Phase {
    let meter = Meter::start(idgate).await;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let url = format!("{}/auth", idgate.address);
    let cookie = format!("idgate_session={session}");
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (client, url, cookie) = (client.clone(), url.clone(), cookie.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let response = client
                        .get(&url)
                        .header("Cookie", &cookie)
                        .send()
                        .await
                        .expect("request");
                    assert_eq!(response.status(), 200, "/auth refused the session");
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.expect("worker"));
    }
    let name = format!("GET /auth, {connections} connections");
    meter.finish(idgate, name, latencies, 0).await
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = args();
    // The idgate cargo built with this benchmark, in the same profile.
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_idgate"));
    assert!(binary.exists(), "no idgate at {}", binary.display());
    let dir = tempfile::tempdir().expect("temporary directory");
    let database = args
        .database
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));

    let rsa = TestKey::rsa("rsa1", "rsa1");
    let ec = TestKey::ec("ec1", "ec1");
    let provider = MockProvider::start(vec![rsa.clone(), ec.clone()]).await;
    std::fs::write(
        dir.path().join("identity.yaml"),
        format!(
            "defaultAuthentication: internal\nproviders:\n  - id: mock\n    title: Mock\n    authorityUrl: {}\n    clientId: {}\ndomains:\n  - name: example.org\n    authentication: external\n",
            provider.url,
            provider::CLIENT_ID
        ),
    )
    .expect("identity.yaml");
    let members = 100;
    let csv: String = std::iter::once("email,username,firstname,surname,status\n".to_string())
        .chain((0..members).map(|i| format!("user{i}@example.org,,,,activated\n")))
        .collect();
    std::fs::write(dir.path().join("members.csv"), csv).expect("csv");
    let imported = Command::new(&binary)
        .current_dir(dir.path())
        .args(["members", "import", "members.csv", "--database", &database])
        .output()
        .expect("import");
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );

    let idgate = start_idgate(&binary, dir.path(), &database);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .build()
        .expect("client");
    eprintln!(
        "minting {} RS256 and {} ES256 tokens…",
        args.tokens, args.tokens
    );
    let now = idgate::clock::unix_now();
    let mint = |key: &TestKey, count: usize| -> Vec<String> {
        (0..count)
            .map(|i| {
                let mut claims = provider.claims(&format!("user{}@example.org", i % members), now);
                // Tokens are used soon after they are issued, so their expiry times grow in the
                // order they arrive: here as if issued four a second, and sent in that order.
                claims["exp"] = serde_json::json!(now + 3600 + i64::try_from(i / 4).unwrap_or(0));
                provider.token(key, &claims)
            })
            .collect()
    };
    let rs_tokens = mint(&rsa, args.tokens);
    let es_tokens = mint(&ec, args.tokens);
    let requests = |tokens: &[String]| -> Vec<reqwest::RequestBuilder> {
        tokens
            .iter()
            .map(|t| {
                client
                    .post(format!("{}/authenticate", idgate.address))
                    .form(&[("action", "login"), ("id_token", t.as_str())])
            })
            .collect()
    };
    // Warm up: discovery and keys fetched, connections open, pages in memory.
    let warm = mint(&rsa, 50);
    let _ = run_phase("warm-up", &idgate, &provider, 8, requests(&warm)).await;

    let quarter = args.tokens / 4;
    let mut phases = Vec::new();
    for (alg, tokens) in [("RS256", &rs_tokens), ("ES256", &es_tokens)] {
        for (connections, slice) in [(1, &tokens[..quarter]), (64, &tokens[quarter..])] {
            let name = format!(
                "sign-in {alg}, {connections} connection{}",
                if connections == 1 { "" } else { "s" }
            );
            let profile = (alg == "RS256" && connections == 64)
                .then_some(args.perf.as_deref())
                .flatten()
                .map(|file| start_perf(idgate.child.id(), file));
            phases.push(run_phase(&name, &idgate, &provider, connections, requests(slice)).await);
            if let Some(perf) = profile {
                stop_perf(perf);
            }
        }
    }

    let session = {
        let token = mint(&rsa, 1).remove(0);
        let response = client
            .post(format!("{}/authenticate", idgate.address))
            .form(&[("action", "login"), ("id_token", token.as_str())])
            .send()
            .await
            .expect("login");
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| c.strip_prefix("idgate_session="))
            .and_then(|c| c.split(';').next())
            .expect("a session cookie")
            .to_string()
    };
    phases.push(run_auth_phase(&idgate, &client, &session, 64, args.auth_seconds).await);
    let (rss, peak) = memory_mib(idgate.child.id());

    let backend = if database.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!(
        "\nidgate {} on {backend}, {} CPUs, idgate pinned: {}\n",
        env!("CARGO_PKG_VERSION"),
        machine_cpus(),
        pinning().is_some()
    );
    println!(
        "| phase | requests | per second | p50 ms | p99 ms | idgate CPU µs/op | KiB written/op | writes/commit | provider requests |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for p in &phases {
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.0} | {:.1} | {} | {} |",
            p.name,
            p.requests,
            p.requests as f64 / p.seconds,
            p.p50_ms,
            p.p99_ms,
            p.cpu_us_per_op,
            p.written_kib_per_op,
            p.writes_per_commit
                .map_or_else(|| "-".to_string(), |n| format!("{n:.1}")),
            p.provider_requests
        );
    }
    println!("\nidgate memory: RSS {rss:.1} MiB, peak {peak:.1} MiB");
}
