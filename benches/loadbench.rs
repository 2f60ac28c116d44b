//! The load benchmark of idgate's two hot paths (see `benches/README.md`): ID-token sign-in (RS256
//! and ES256 at 1, 16 and 64 connections) and `GET /auth` with a session cookie (64 connections),
//! on SQLite and, given a PostgreSQL server, on PostgreSQL too, and beside them the same load on
//! Apache with mod_auth_openidc when it is installed, all in one run.
//!
//! It starts the mock OpenID provider of the tests in this process, each server as a child process
//! (pinned to CPU 0 when `taskset` and two CPUs are there; this process should run on CPU 1, as
//! `benches/run.sh` does), pre-mints distinct tokens, and reports requests per second, p50/p99
//! latency, the server process's CPU time per operation (from /proc; for PostgreSQL also the
//! database server's own), bytes written, writes per commit, memory, and how many provider
//! requests the measured phases caused; then the peer's CPU per operation over idgate's.
//!
//! benches/run.sh [--postgres URL] [--database URL] [--tokens N] [--auth-seconds S] [--no-peer]
//!                [--perf FILE] [--binary PATH] [--durability MODE]... [--repeat N]
//! cargo bench --bench loadbench -- [the same options]

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark stops on the first failure"
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use idgate_test_support::provider::{self, MockProvider, TestKey};
use idgate_test_support::tls::{self, OPENSSL};

struct Args {
    /// One database instead of a fresh SQLite file (and no second backend).
    database: Option<String>,
    /// A PostgreSQL server where the benchmark creates (and drops) its own database, to measure
    /// PostgreSQL after SQLite.
    postgres: Option<String>,
    tokens: usize,
    auth_seconds: u64,
    /// Whether to measure Apache with mod_auth_openidc too, when it is installed.
    peer: bool,
    /// Where to write `perf record` profiles of idgate (its RS256 and ES256 16-connection phases
    /// and its session checks, in the first run).
    perf: Option<String>,
    /// Another idgate binary to measure (an earlier build, for a before and after in one run).
    binary: Option<PathBuf>,
    /// idgate's `--durability` settings to measure, each on every database (fresh each time).
    durabilities: Vec<String>,
    /// How many times to measure everything (each time on fresh databases), for the median and
    /// the range of each ratio.
    repeat: usize,
}

fn args() -> Args {
    let mut args = Args {
        database: None,
        postgres: None,
        tokens: 6000,
        auth_seconds: 5,
        peer: true,
        perf: None,
        binary: None,
        durabilities: Vec::new(),
        repeat: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--database" => args.database = it.next(),
            "--postgres" => args.postgres = it.next(),
            "--perf" => args.perf = it.next(),
            "--binary" => args.binary = it.next().map(PathBuf::from),
            "--no-peer" => args.peer = false,
            "--durability" => args
                .durabilities
                .push(it.next().expect("--durability power-loss|process-crash")),
            "--repeat" => {
                args.repeat = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n >= 1)
                    .expect("--repeat N (1 or more)");
            }
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
    if args.durabilities.is_empty() {
        args.durabilities.push(DEFAULT_DURABILITY.to_string());
    }
    // Every run signs in with the same tokens, so each needs databases that have seen none.
    assert!(
        args.repeat == 1 || args.database.is_none(),
        "--repeat measures on fresh databases: leave out --database"
    );
    args
}

/// A server under load (idgate, or Apache with mod_auth_openidc): its process, its address, and
/// a way to stop it.
struct Server {
    child: Child,
    address: String,
    /// Whether it is idgate (which has `/metrics` and a writer).
    idgate: bool,
    /// Whether PostgreSQL's own processes are measured beside it.
    postgres: bool,
}

impl Drop for Server {
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

/// The command that pins a server to CPU 0, when there are two CPUs and `taskset`.
fn pinned(program: &Path) -> Command {
    if machine_cpus() >= 2 && Path::new("/usr/bin/taskset").exists() {
        let mut command = Command::new("/usr/bin/taskset");
        command.args(["-c", "0"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// idgate's own default `--durability`.
const DEFAULT_DURABILITY: &str = "power-loss";

fn start_idgate(binary: &Path, dir: &Path, database: &str, durability: &str) -> Server {
    // idgate's log goes to a file, as the peer's logs do: through a pipe read by this process
    // (on the other core), every line would also cost idgate a wake-up of that core.
    static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let log_path = dir.join(format!("idgate-{n}.log"));
    let log = std::fs::File::create(&log_path).expect("idgate's log file");
    let mut child = pinned(binary)
        .current_dir(dir)
        .env("IDGATE_LOG_FORMAT", "json")
        .env_remove("RUST_LOG")
        .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
        // Only when asked for: an earlier build (`--binary`) may not know the flag.
        .args(
            (durability != DEFAULT_DURABILITY)
                .then_some(["--durability", durability])
                .into_iter()
                .flatten(),
        )
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start idgate");
    let port = loop {
        let text = std::fs::read_to_string(&log_path).expect("idgate's log");
        let serving = text.lines().find_map(|line| {
            let event = serde_json::from_str::<serde_json::Value>(line).ok()?;
            (event["message"] == "idgate is serving").then(|| event["port"].as_u64())?
        });
        if let Some(port) = serving {
            break port;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("idgate stopped ({status}):\n{text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Server {
        address: format!("http://127.0.0.1:{port}"),
        child,
        idgate: true,
        postgres: database.starts_with("postgres"),
    }
}

const APACHE: &str = "/usr/sbin/apache2";
const APACHE_MODULES: &str = "/usr/lib/apache2/modules";
const NGINX: &str = "/usr/sbin/nginx";

/// Whether Apache and mod_auth_openidc are installed (Debian's `apache2` and
/// `libapache2-mod-auth-openidc`), with nginx and openssl, which serve it the provider's keys
/// over https.
fn peer_installed() -> bool {
    Path::new(APACHE).exists()
        && Path::new(APACHE_MODULES)
            .join("mod_auth_openidc.so")
            .exists()
        && Path::new(NGINX).exists()
        && Path::new(OPENSSL).exists()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn wait_for_port(port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A helper process, stopped when dropped.
struct Helper(Child);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// mod_auth_openidc takes a JWKS for Bearer tokens only over https (and 2.4.12 crashes on an EC
/// key given as a file): nginx serves the mock provider's JWKS over https with a certificate of
/// the moment. Returns nginx and the JWKS URL.
async fn serve_jwks_over_https(root: &Path, provider: &MockProvider) -> (Helper, String) {
    let jwks = reqwest::get(format!("{}/jwks", provider.url))
        .await
        .expect("the provider's JWKS")
        .text()
        .await
        .expect("JWKS");
    std::fs::write(root.join("jwks.json"), jwks).expect("jwks.json");
    tls::self_signed_certificate(&root.join("tls.crt"), &root.join("tls.key"));
    let port = free_port();
    let r = root.display();
    let conf = format!(
        r#"daemon off;
worker_processes 1;
pid {r}/nginx.pid;
error_log {r}/nginx-error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {r}/body;
  proxy_temp_path {r}/proxy;
  fastcgi_temp_path {r}/fastcgi;
  uwsgi_temp_path {r}/uwsgi;
  scgi_temp_path {r}/scgi;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {r}/tls.crt;
    ssl_certificate_key {r}/tls.key;
    location = /jwks {{ default_type application/json; alias {r}/jwks.json; }}
  }}
}}
"#
    );
    std::fs::write(root.join("nginx.conf"), conf).expect("nginx.conf");
    let child = Command::new(NGINX)
        .arg("-c")
        .arg(root.join("nginx.conf"))
        .arg("-p")
        .arg(root)
        .arg("-e")
        .arg(root.join("nginx-error.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    let nginx = Helper(child);
    wait_for_port(port, "nginx", &root.join("nginx-error.log"));
    (nginx, format!("https://127.0.0.1:{port}/jwks"))
}

/// Apache with mod_auth_openidc, one worker process with 192 threads (the event MPM closes idle
/// connections when its threads run short), pinned like idgate: `/api/`
/// admits a request with a valid JWT as Bearer token (the signature checked against the
/// provider's JWKS), `/app/` a browser with a session (signed in by an implicit-flow ID token
/// posted to `/app/redirect_uri`), sessions in its shared-memory cache. Its logs go to files:
/// the error log, and an access log in Debian's default format (`combined`) of every request
/// but the session checks (answered `200`), which idgate leaves to the proxy's log too; a
/// sign-in is two lines there, as it is in idgate's log.
async fn start_peer(dir: &Path, provider: &MockProvider) -> (Server, Helper) {
    let port = free_port();
    let root = dir.join("apache");
    for folder in ["www/api", "www/app"] {
        std::fs::create_dir_all(root.join(folder)).expect("apache folders");
        std::fs::write(root.join(folder).join("ok.txt"), "ok\n").expect("page");
    }
    let (nginx, jwks) = serve_jwks_over_https(&root, provider).await;
    let modules = APACHE_MODULES;
    let (root_s, url) = (root.display(), &provider.url);
    let conf = format!(
        r#"ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile {root_s}/apache.pid
DefaultRuntimeDir {root_s}
ErrorLog {root_s}/error.log
LogLevel warn
LogFormat "%h %l %u %t \"%r\" %>s %O \"%{{Referer}}i\" \"%{{User-Agent}}i\"" combined
CustomLog {root_s}/access.log combined "expr=%{{REQUEST_STATUS}} != 200"
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authn_core_module {modules}/mod_authn_core.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule authz_user_module {modules}/mod_authz_user.so
LoadModule auth_openidc_module {modules}/mod_auth_openidc.so
StartServers 1
ServerLimit 1
ThreadLimit 192
ThreadsPerChild 192
MaxRequestWorkers 192
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 300
DocumentRoot {root_s}/www
<Directory {root_s}/www>
  Require all granted
</Directory>
OIDCProviderMetadataURL {url}/.well-known/openid-configuration
OIDCClientID {client}
OIDCClientSecret {secret}
OIDCRedirectURI http://127.0.0.1:{port}/app/redirect_uri
OIDCCryptoPassphrase loadbench-only-passphrase
OIDCResponseType id_token
OIDCResponseMode form_post
OIDCCacheType shm
OIDCOAuthVerifyJwksUri {jwks}
OIDCOAuthSSLValidateServer Off
OIDCOAuthRemoteUserClaim sub
<Location /api/>
  AuthType oauth20
  Require valid-user
</Location>
<Location /app/>
  AuthType openid-connect
  Require valid-user
</Location>
"#,
        client = provider::CLIENT_ID,
        secret = provider::CLIENT_SECRET,
    );
    let conf_path = root.join("apache.conf");
    std::fs::write(&conf_path, conf).expect("apache.conf");
    // Started as root, Apache serves as this user; its files must be readable by it.
    let _ = Command::new("chmod").args(["-R", "a+rX"]).arg(dir).status();
    let child = pinned(Path::new(APACHE))
        .args(["-DFOREGROUND", "-f"])
        .arg(&conf_path)
        .args(["-c", "User www-data", "-c", "Group www-data"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start apache2");
    wait_for_port(port, "Apache", &root.join("error.log"));
    let server = Server {
        child,
        address: format!("http://127.0.0.1:{port}"),
        idgate: false,
        postgres: false,
    };
    (server, nginx)
}

/// Starts `perf record` (software clock; call graphs from DWARF, since a release build keeps no
/// frame pointers) on the idgate process.
fn start_perf(pid: u32, file: &str) -> Child {
    let child = Command::new("perf")
        .args([
            "record",
            "-e",
            "cpu-clock",
            "-F",
            "2000",
            "--call-graph",
            "dwarf,16384",
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

/// idgate's database writer's `(writes, commits)` so far, from `GET /metrics`.
async fn writer_counts(server: &Server) -> Option<(u64, u64)> {
    if !server.idgate {
        return None;
    }
    let text = reqwest::get(format!("{}/metrics", server.address))
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

/// User and system CPU time of a process so far, from /proc/PID/stat, in seconds; with its
/// command name.
fn cpu_and_name(stat_path: &Path) -> Option<(f64, String)> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    let (head, after_name) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_string();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 (utime, stime) of stat(5), counted after the name.
    let clock_ticks = 100.0;
    Some(((ticks(11) + ticks(12)) / clock_ticks, name))
}

/// CPU time so far of a process and of its children (Apache's worker process), in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let own = cpu_and_name(Path::new(&format!("/proc/{pid}/stat"))).map_or(0.0, |(cpu, _)| cpu);
    let children: f64 = std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path().join("stat"))
                .filter(|stat| parent_of(stat) == Some(pid))
                .filter_map(|stat| cpu_and_name(&stat))
                .map(|(cpu, _)| cpu)
                .sum()
        })
        .unwrap_or(0.0);
    own + children
}

/// The parent process id in a /proc/PID/stat file.
fn parent_of(stat_path: &Path) -> Option<u32> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time so far of every PostgreSQL server process on this machine (the postmaster, the
/// connections' backends, the WAL writer, the checkpointer…), in seconds. A backend that ended
/// during a phase takes its time with it; idgate keeps its connections open.
fn postgres_cpu_seconds() -> f64 {
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .filter_map(|e| cpu_and_name(&e.path().join("stat")))
                .filter(|(_, name)| name == "postgres")
                .map(|(cpu, _)| cpu)
                .sum()
        })
        .unwrap_or(0.0)
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
    /// PostgreSQL's own CPU per operation, when the server runs on it.
    postgres_us_per_op: Option<f64>,
    /// Bytes the server handed to `write`/`pwrite` (database files and log), per operation.
    written_kib_per_op: f64,
    /// Writes per commit of idgate's database writer (from `/metrics`).
    writes_per_commit: Option<f64>,
    provider_requests: usize,
}

/// What a phase is measured by, from its start: the server process's CPU time and writes,
/// PostgreSQL's CPU time, and idgate's writer counters.
struct Meter {
    started: Instant,
    cpu_seconds: f64,
    postgres_seconds: Option<f64>,
    written_bytes: u64,
    writer: Option<(u64, u64)>,
}

impl Meter {
    async fn start(server: &Server) -> Meter {
        let pid = server.child.id();
        Meter {
            writer: writer_counts(server).await,
            cpu_seconds: cpu_seconds(pid),
            postgres_seconds: server.postgres.then(postgres_cpu_seconds),
            written_bytes: written_bytes(pid),
            started: Instant::now(),
        }
    }

    /// The phase's figures, per operation where they are costs.
    async fn finish(
        self,
        server: &Server,
        name: String,
        mut latencies: Vec<Duration>,
        provider_requests: usize,
    ) -> Phase {
        let seconds = self.started.elapsed().as_secs_f64();
        let pid = server.child.id();
        let operations = latencies.len().max(1) as f64;
        let cpu = cpu_seconds(pid) - self.cpu_seconds;
        let postgres = self
            .postgres_seconds
            .map(|before| (postgres_cpu_seconds() - before) / operations * 1e6);
        let written = written_bytes(pid) - self.written_bytes;
        let writes_per_commit = match (self.writer, writer_counts(server).await) {
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
            postgres_us_per_op: postgres,
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
    server: &Server,
    provider: &MockProvider,
    connections: usize,
    requests: Vec<reqwest::RequestBuilder>,
) -> Phase {
    let provider_before = provider.jwks_fetches() + provider.discovery_fetches();
    let meter = Meter::start(server).await;
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
        .finish(server, name.to_string(), latencies, provider_requests)
        .await
}

/// The session check (`url` with `cookie`), as many requests as `connections` workers complete
/// in `seconds`.
async fn run_session_phase(
    server: &Server,
    client: &reqwest::Client,
    url: String,
    cookie: String,
    connections: usize,
    seconds: u64,
) -> Phase {
    let meter = Meter::start(server).await;
    let deadline = Instant::now() + Duration::from_secs(seconds);
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
                    assert_eq!(response.status(), 200, "the session check refused");
                    let _ = response.bytes().await;
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
    let name = format!("session check, {connections} connections");
    meter.finish(server, name, latencies, 0).await
}

/// The connections each sign-in phase runs with.
const CONNECTIONS: [usize; 3] = [1, 16, 64];

/// The members every run imports (`user0@example.org`…); the tokens name them in turn.
const MEMBERS: usize = 100;

fn sign_in_name(alg: &str, connections: usize) -> String {
    format!(
        "sign-in {alg}, {connections} connection{}",
        if connections == 1 { "" } else { "s" }
    )
}

/// The figures of one server in one run.
struct Run {
    title: String,
    phases: Vec<Phase>,
    memory: (f64, f64),
}

impl Run {
    /// Whether PostgreSQL's own CPU was measured beside the server's (idgate on PostgreSQL).
    fn measures_postgres(&self) -> bool {
        self.phases.iter().any(|p| p.postgres_us_per_op.is_some())
    }
}

/// Minted tokens, shared by every server of the run (each idgate has a database of its own, so
/// its replay guard has seen none of them).
struct Tokens {
    rs: Vec<String>,
    es: Vec<String>,
    warm: Vec<String>,
    /// The keys that signed them (RS256, ES256), which sign the peer's tokens too.
    keys: [TestKey; 2],
}

/// A fresh database on the PostgreSQL server `admin` (dropped first if a previous run left it).
fn fresh_postgres_database(admin: &str) -> String {
    let name = "idgate_loadbench";
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        let done = Command::new("psql")
            .args([admin, "-qAtc", &sql])
            .output()
            .expect("psql");
        assert!(
            done.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&done.stderr)
        );
    }
    let mut url = url::Url::parse(admin).expect("a PostgreSQL URL");
    url.set_path(name);
    url.to_string()
}

/// What one idgate run is on: its database and its `--durability`; whether it is profiled
/// (with `--perf`).
struct Setup<'a> {
    database: &'a str,
    durability: &'a str,
    profiled: bool,
}

/// idgate on its setup's database: imports the members, starts `serve`, runs every phase.
async fn run_idgate(
    binary: &Path,
    dir: &Path,
    setup: Setup<'_>,
    provider: &MockProvider,
    client: &reqwest::Client,
    tokens: &Tokens,
    args: &Args,
) -> Run {
    let Setup {
        database,
        durability,
        profiled,
    } = setup;
    let perf = args.perf.as_deref().filter(|_| profiled);
    // Profiles of a run with another durability than the default are named after it.
    let variant = if durability == DEFAULT_DURABILITY {
        String::new()
    } else {
        format!(".{durability}")
    };
    let imported = Command::new(binary)
        .current_dir(dir)
        .args(["members", "import", "members.csv", "--database", database])
        .output()
        .expect("import");
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let idgate = start_idgate(binary, dir, database, durability);
    let backend = if idgate.postgres {
        "postgresql"
    } else {
        "sqlite"
    };
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
    let _ = run_phase("warm-up", &idgate, provider, 8, requests(&tokens.warm[1..])).await;
    let mut phases = Vec::new();
    for (alg, all) in [("RS256", &tokens.rs), ("ES256", &tokens.es)] {
        let third = all.len() / 3;
        for (i, connections) in CONNECTIONS.into_iter().enumerate() {
            let slice = &all[i * third..(i + 1) * third];
            let profile = (connections == 16).then_some(perf).flatten().map(|file| {
                start_perf(
                    idgate.child.id(),
                    &format!("{file}.{alg}.{backend}{variant}"),
                )
            });
            let name = sign_in_name(alg, connections);
            phases.push(run_phase(&name, &idgate, provider, connections, requests(slice)).await);
            if let Some(perf) = profile {
                stop_perf(perf);
            }
        }
    }
    let session = {
        let response = client
            .post(format!("{}/authenticate", idgate.address))
            .form(&[("action", "login"), ("id_token", tokens.warm[0].as_str())])
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
    let profile = perf.map(|file| {
        start_perf(
            idgate.child.id(),
            &format!("{file}.auth.{backend}{variant}"),
        )
    });
    phases.push(
        run_session_phase(
            &idgate,
            client,
            format!("{}/auth", idgate.address),
            format!("idgate_session={session}"),
            64,
            args.auth_seconds,
        )
        .await,
    );
    if let Some(perf) = profile {
        stop_perf(perf);
    }
    Run {
        title: format!(
            "{} on {}{}",
            args.binary.as_ref().map_or_else(
                || format!("idgate {}", env!("CARGO_PKG_VERSION")),
                |b| format!("idgate at {}", b.display())
            ),
            if idgate.postgres {
                "PostgreSQL"
            } else {
                "SQLite"
            },
            if variant.is_empty() {
                String::new()
            } else {
                format!(", --durability {durability}")
            }
        ),
        phases,
        memory: memory_mib(idgate.child.id()),
    }
}

/// Signs a browser in at the peer, as its implicit flow does: the request for a page is
/// redirected to the provider with a state (in a cookie) and a nonce; the ID token, minted here
/// with that nonce, is posted back to the peer's redirect URI with the state cookie, and the
/// answer sets the session cookie. Two requests to the peer; the minting is the generator's.
async fn peer_sign_in(client: &reqwest::Client, peer: &str, issuer: &str, key: &TestKey) -> String {
    let start = client
        .get(format!("{peer}/app/ok.txt"))
        .header("Accept", "text/html")
        .send()
        .await
        .expect("the peer's sign-in start");
    assert_eq!(start.status(), 302, "the peer did not redirect to sign in");
    let location = start
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("location");
    let location = url::Url::parse(location).expect("the provider URL");
    let query = |name: &str| {
        location
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("no {name} in {location}"))
    };
    let (state, nonce) = (query("state"), query("nonce"));
    let state_cookie: Vec<String> = start
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.split(';').next())
        .map(String::from)
        .collect();
    let now = idgate::clock::unix_now();
    let claims = serde_json::json!({
        "iss": issuer,
        "sub": "sub-user0@example.org",
        "aud": provider::CLIENT_ID,
        "email": "user0@example.org",
        "email_verified": true,
        "iat": now,
        "exp": now + 300,
        "nonce": nonce,
    });
    let header = serde_json::json!({"alg": key.alg(), "kid": key.kid, "typ": "JWT"});
    let token = provider::sign_token(key, &header, &claims);
    let back = client
        .post(format!("{peer}/app/redirect_uri"))
        .header("Cookie", state_cookie.join("; "))
        .form(&[("id_token", token.as_str()), ("state", state.as_str())])
        .send()
        .await
        .expect("the peer's redirect URI");
    back.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.split(';').next())
        .find(|c| c.starts_with("mod_auth_openidc_session="))
        .map(String::from)
        .unwrap_or_else(|| panic!("the peer set no session: {}", back.status()))
}

/// `count` sign-ins at the peer through `connections` concurrent workers.
async fn run_peer_sign_ins(
    name: &str,
    peer: &Server,
    issuer: &str,
    key: &TestKey,
    connections: usize,
    count: usize,
) -> Phase {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(128)
        .build()
        .expect("client");
    let meter = Meter::start(peer).await;
    let remaining = Arc::new(std::sync::atomic::AtomicUsize::new(count));
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (client, remaining) = (client.clone(), remaining.clone());
            let (address, issuer, key) = (peer.address.clone(), issuer.to_string(), key.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while remaining
                    .fetch_update(
                        std::sync::atomic::Ordering::SeqCst,
                        std::sync::atomic::Ordering::SeqCst,
                        |n| n.checked_sub(1),
                    )
                    .is_ok()
                {
                    let sent = Instant::now();
                    let _ = peer_sign_in(&client, &address, &issuer, &key).await;
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(count);
    for worker in workers {
        latencies.extend(worker.await.expect("worker"));
    }
    meter.finish(peer, name.to_string(), latencies, 0).await
}

/// Apache with mod_auth_openidc under the same load: each sign-in is its implicit flow with a
/// fresh ID token (ending with a session in its cache); the session check is a request with its
/// session cookie. Then, for reference, its check of a fresh token as Bearer token (verified,
/// nothing stored).
async fn run_peer(
    dir: &Path,
    provider: &MockProvider,
    client: &reqwest::Client,
    keys: [&TestKey; 2],
    args: &Args,
) -> Run {
    let (peer, _jwks_server) = start_peer(dir, provider).await;
    let [rsa, ec] = keys;
    let _ = run_peer_sign_ins("warm-up", &peer, &provider.url, rsa, 8, 50).await;
    let mut phases = Vec::new();
    for (alg, key) in [("RS256", rsa), ("ES256", ec)] {
        for connections in CONNECTIONS {
            let name = sign_in_name(alg, connections);
            let count = args.tokens / 3;
            phases.push(
                run_peer_sign_ins(&name, &peer, &provider.url, key, connections, count).await,
            );
        }
    }
    let signer = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let cookie = peer_sign_in(&signer, &peer.address, &provider.url, rsa).await;
    phases.push(
        run_session_phase(
            &peer,
            client,
            format!("{}/app/ok.txt", peer.address),
            cookie,
            64,
            args.auth_seconds,
        )
        .await,
    );
    // Minted now rather than taken from idgate's: a run repeated with `--repeat` comes here
    // long after those were issued, and the peer may hold a token's age against it.
    let now = idgate::clock::unix_now();
    let bearer: Vec<reqwest::RequestBuilder> = (0..args.tokens / 3)
        .map(|i| {
            let claims = provider.claims(&format!("user{}@example.org", i % MEMBERS), now);
            client
                .get(format!("{}/api/ok.txt", peer.address))
                .bearer_auth(provider.token(rsa, &claims))
        })
        .collect();
    phases.push(
        run_phase(
            "Bearer token check RS256, 16 connections",
            &peer,
            provider,
            16,
            bearer,
        )
        .await,
    );
    Run {
        title: "Apache 2.4 with mod_auth_openidc (the peer)".into(),
        phases,
        memory: memory_mib(peer.child.id()),
    }
}

fn print_run(run: &Run) {
    println!("\n{}\n", run.title);
    println!(
        "| phase | requests | per second | p50 ms | p99 ms | CPU µs/op | PostgreSQL CPU µs/op | KiB written/op | writes/commit | provider requests |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let dash = || "-".to_string();
    for p in &run.phases {
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.0} | {} | {:.1} | {} | {} |",
            p.name,
            p.requests,
            p.requests as f64 / p.seconds,
            p.p50_ms,
            p.p99_ms,
            p.cpu_us_per_op,
            p.postgres_us_per_op
                .map_or_else(dash, |n| format!("{n:.0}")),
            p.written_kib_per_op,
            p.writes_per_commit.map_or_else(dash, |n| format!("{n:.1}")),
            p.provider_requests
        );
    }
    println!(
        "\nmemory: RSS {:.1} MiB, peak {:.1} MiB",
        run.memory.0, run.memory.1
    );
}

/// The peer's CPU per operation over each idgate run's (idgate's process; for PostgreSQL also
/// with the database server's CPU added): the columns' titles, then each phase's name and its
/// ratio in each column.
fn ratios(peer: &Run, runs: &[Run]) -> (Vec<String>, Vec<(String, Vec<f64>)>) {
    let mut titles = Vec::new();
    for run in runs {
        titles.push(run.title.clone());
        if run.measures_postgres() {
            titles.push(format!("{} with PostgreSQL's CPU", run.title));
        }
    }
    let compared = runs.first().map_or(0, |run| run.phases.len());
    let rows = peer
        .phases
        .iter()
        .take(compared)
        .enumerate()
        .map(|(i, p)| {
            let mut values = Vec::new();
            for run in runs {
                let ours = &run.phases[i];
                values.push(p.cpu_us_per_op / ours.cpu_us_per_op);
                if let Some(pg) = ours.postgres_us_per_op {
                    values.push(p.cpu_us_per_op / (ours.cpu_us_per_op + pg));
                }
            }
            (p.name.clone(), values)
        })
        .collect();
    (titles, rows)
}

fn print_table_head(titles: &[String]) {
    let header: String = titles.iter().map(|t| format!(" {t} |")).collect();
    let rule = "---:|".repeat(titles.len());
    println!("| phase |{header}\n|---|{rule}");
}

fn print_ratios(peer: &Run, runs: &[Run]) {
    println!("\npeer CPU per operation / idgate CPU per operation (higher: idgate cheaper)\n");
    let (titles, rows) = ratios(peer, runs);
    print_table_head(&titles);
    for (name, values) in rows {
        let cells: String = values.iter().map(|v| format!(" {v:.2} |")).collect();
        println!("| {name} |{cells}");
    }
}

/// `values`' median and range, as `median (lowest–highest)`.
fn median_and_range(mut values: Vec<f64>, decimals: usize) -> String {
    values.sort_by(f64::total_cmp);
    let (Some(lowest), Some(highest)) = (values.first(), values.last()) else {
        return String::new();
    };
    let middle = values.len() / 2;
    let median = if values.len().is_multiple_of(2) {
        f64::midpoint(values[middle - 1], values[middle])
    } else {
        values[middle]
    };
    format!("{median:.decimals$} ({lowest:.decimals$}–{highest:.decimals$})")
}

/// Each server's CPU per operation over several runs, median (range), by phase: what compares
/// two builds (`--binary`, `--no-peer`) when there is no peer to divide by.
fn print_cpu_summary(measured: &[(Vec<Run>, Option<Run>)]) {
    let servers: Vec<Vec<&Run>> = measured
        .iter()
        .map(|(runs, peer)| runs.iter().chain(peer.iter()).collect())
        .collect();
    let Some(first) = servers.first() else {
        return;
    };
    let mut titles = Vec::new();
    for run in first {
        titles.push(run.title.clone());
        if run.measures_postgres() {
            titles.push(format!("{}: PostgreSQL's CPU", run.title));
        }
    }
    let mut names: Vec<&str> = Vec::new();
    for phase in first.iter().flat_map(|run| &run.phases) {
        if !names.contains(&phase.name.as_str()) {
            names.push(&phase.name);
        }
    }
    println!(
        "\nCPU µs per operation, median (range) of {} runs\n",
        measured.len()
    );
    print_table_head(&titles);
    for name in names {
        let mut cells = String::new();
        for (column, run) in first.iter().enumerate() {
            let phases = || {
                servers.iter().filter_map(move |runs| {
                    runs.get(column)?.phases.iter().find(|p| p.name == name)
                })
            };
            let own: Vec<f64> = phases().map(|p| p.cpu_us_per_op).collect();
            cells.push_str(&format!(" {} |", median_and_range(own, 0)));
            if run.measures_postgres() {
                let server: Vec<f64> = phases().filter_map(|p| p.postgres_us_per_op).collect();
                cells.push_str(&format!(" {} |", median_and_range(server, 0)));
            }
        }
        println!("| {name} |{cells}");
    }
}

/// The median of the ratios of several runs (those that measured the peer), with their range.
fn print_ratio_summary(measured: &[(Vec<Run>, Option<Run>)]) {
    let compared: Vec<(&[Run], &Run)> = measured
        .iter()
        .filter_map(|(runs, peer)| Some((runs.as_slice(), peer.as_ref()?)))
        .collect();
    let Some((runs, peer)) = compared.first() else {
        return;
    };
    let (titles, first) = ratios(peer, runs);
    let each: Vec<_> = compared
        .iter()
        .map(|(runs, peer)| ratios(peer, runs).1)
        .collect();
    println!(
        "\npeer CPU per operation / idgate CPU per operation, median (range) of {} runs\n",
        compared.len()
    );
    print_table_head(&titles);
    for (row, (name, values)) in first.iter().enumerate() {
        let cells: String = (0..values.len())
            .map(|column| {
                let all: Vec<f64> = each.iter().map(|rows| rows[row].1[column]).collect();
                format!(" {} |", median_and_range(all, 2))
            })
            .collect();
        println!("| {name} |{cells}");
    }
}

/// Every idgate run (each durability on each database, fresh), then the peer when it is
/// installed. Only the first round is profiled.
async fn measure_all(
    round: usize,
    binary: &Path,
    dir: &Path,
    provider: &MockProvider,
    client: &reqwest::Client,
    tokens: &Tokens,
    args: &Args,
) -> (Vec<Run>, Option<Run>) {
    let mut runs = Vec::new();
    for durability in &args.durabilities {
        // A fresh database for each run (every run signs in with the same tokens): the one
        // given, else an SQLite file, then (with `--postgres`) a PostgreSQL database.
        let sqlite = || {
            let file = dir.join(format!("bench-{durability}-{round}.db"));
            format!("sqlite://{}", file.display())
        };
        let mut databases = vec![args.database.clone().unwrap_or_else(sqlite)];
        if let Some(admin) = &args.postgres {
            databases.push(fresh_postgres_database(admin));
        }
        for database in &databases {
            eprintln!(
                "measuring idgate on {} ({durability})…",
                database.split(':').next().unwrap_or("")
            );
            let setup = Setup {
                database,
                durability,
                profiled: round == 1,
            };
            runs.push(run_idgate(binary, dir, setup, provider, client, tokens, args).await);
        }
    }
    let peer = if args.peer && peer_installed() {
        eprintln!("measuring Apache with mod_auth_openidc…");
        let [rsa, ec] = &tokens.keys;
        Some(run_peer(dir, provider, client, [rsa, ec], args).await)
    } else {
        if args.peer {
            eprintln!(
                "the peer is not measured: install Debian's apache2 and libapache2-mod-auth-openidc"
            );
        }
        None
    };
    (runs, peer)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = args();
    // The idgate cargo built with this benchmark, in the same profile, unless another is given.
    let binary = args
        .binary
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_idgate")));
    assert!(binary.exists(), "no idgate at {}", binary.display());
    let dir = tempfile::tempdir().expect("temporary directory");

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
    let csv: String = std::iter::once("email,username,firstname,surname,status\n".to_string())
        .chain((0..MEMBERS).map(|i| format!("user{i}@example.org,,,,activated\n")))
        .collect();
    std::fs::write(dir.path().join("members.csv"), csv).expect("csv");

    // Connections idle for 2 seconds are not reused: idgate closes a connection after 5 idle
    // seconds (actix-web's keep-alive), and a request sent on one as it closes fails. Without
    // this, a phase that starts 5 seconds after an earlier one left connections idle (the 64
    // connections of RS256 reused by ES256's 64 after its 1- and 16-connection phases) lost some.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .pool_idle_timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    eprintln!(
        "minting {} RS256 and {} ES256 tokens…",
        args.tokens, args.tokens
    );
    let now = idgate::clock::unix_now();
    let mint = |key: &TestKey, count: usize, from: usize| -> Vec<String> {
        (from..from + count)
            .map(|i| {
                let mut claims = provider.claims(&format!("user{}@example.org", i % MEMBERS), now);
                // Tokens are used soon after they are issued, so their expiry times grow in the
                // order they arrive: here as if issued four a second, and sent in that order.
                claims["exp"] = serde_json::json!(now + 3600 + i64::try_from(i / 4).unwrap_or(0));
                provider.token(key, &claims)
            })
            .collect()
    };
    let tokens = Tokens {
        rs: mint(&rsa, args.tokens, 0),
        es: mint(&ec, args.tokens, 0),
        warm: mint(&rsa, 51, args.tokens),
        keys: [rsa, ec],
    };

    let mut measured = Vec::new();
    for round in 1..=args.repeat {
        if args.repeat > 1 {
            eprintln!("run {round} of {}…", args.repeat);
        }
        let (runs, peer) = measure_all(
            round,
            &binary,
            dir.path(),
            &provider,
            &client,
            &tokens,
            &args,
        )
        .await;
        println!(
            "\n{}{} CPUs, servers pinned: {}, {} tokens per algorithm ({} per phase)",
            if args.repeat > 1 {
                format!("run {round} of {}: ", args.repeat)
            } else {
                String::new()
            },
            machine_cpus(),
            machine_cpus() >= 2 && Path::new("/usr/bin/taskset").exists(),
            args.tokens,
            args.tokens / 3
        );
        for run in runs.iter().chain(peer.iter()) {
            print_run(run);
        }
        if let Some(peer) = &peer {
            print_ratios(peer, &runs);
        }
        measured.push((runs, peer));
    }
    if measured.len() > 1 {
        print_cpu_summary(&measured);
        print_ratio_summary(&measured);
    }
}
