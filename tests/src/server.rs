//! One `hotline serve` process on a temporary data directory: [`Server`], configured by
//! [`ServerOptions`] before it starts. It starts on port 0 and reads the listening lines
//! (plain, TLS, WebSocket, metrics, API) from the server's stdout; it can `kill -9`,
//! SIGTERM or SIGINT the process, restart it on the same directory, and run `hotline user
//! add` and `hotline user provision` on that directory while it is stopped. Also the
//! binary under test ([`hotline_bin`]), the test certificate and a bounded HTTP GET.
//!
//! # Invariants
//! - A [`Server`] owns its process and its directory: dropping it kills the process, and
//!   the data directory lives as long as the `Server` does, across restarts.
//! - A panicking test's [`Server`] prints every run's stderr (one file per run) when it
//!   drops.
//! - Nothing waits forever: a start waits at most [`SERVER_START_WAIT`] for the listening
//!   line, a stop or `hotline user add` at most [`SERVER_EXIT_WAIT`].

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long a starting server may take to print its listening line (a debug build opening
/// RocksDB on a loaded 2-core machine is slow, but not this slow).
pub const SERVER_START_WAIT: Duration = Duration::from_secs(60);

/// How long a signalled server, or `hotline user add`, may take to exit.
pub const SERVER_EXIT_WAIT: Duration = Duration::from_secs(30);

/// The line `hotline serve` prints on stdout, followed by the address, once it accepts;
/// always its last listening line.
pub const LISTENING_LINE_PREFIX: &str = "hotline listening on ";
/// Printed before [`LISTENING_LINE_PREFIX`] when the TLS listener is on.
pub const TLS_LINE_PREFIX: &str = "hotline tls listening on ";
/// Printed before [`LISTENING_LINE_PREFIX`] for the Prometheus endpoint.
pub const METRICS_LINE_PREFIX: &str = "hotline metrics listening on ";
/// Printed before [`LISTENING_LINE_PREFIX`] for the integration API (`--api-listen`).
pub const API_LINE_PREFIX: &str = "hotline api listening on ";
/// Printed before [`LISTENING_LINE_PREFIX`] for the WebSocket listener (`wss` with TLS).
pub const WS_LINE_PREFIXES: [&str; 2] = ["hotline ws listening on ", "hotline wss listening on "];

/// `hotline serve` flags of the abuse limits that the harness sets to 0 (off) unless a
/// test passes the flag itself (`tests/tests/abuse.rs` does).
pub const ABUSE_LIMIT_FLAGS: [&str; 6] = [
    "--login-attempts-per-ip-per-minute",
    "--login-attempts-per-username-per-minute",
    "--messages-per-user-per-second",
    "--messages-per-conversation-per-second",
    "--connections-per-ip-max",
    "--registrations-per-ip-per-hour",
];

/// The admission gate's `hotline serve` flag, which the harness sets to 0 (off) unless a test
/// passes it itself (`tests/tests/overload.rs` does).
const SHED_QUEUE_DELAY_FLAG: &str = "--shed-queue-delay-ms";

/// Bytes of a run's stderr shown when a test fails.
const STDERR_TAIL_BYTES: usize = 16 << 10;

/// The `hotline` binary under test: `$HOTLINE_BIN` if set, else `hotline` in the target
/// directory of the running test (`<target>/<profile>/deps/<test>-<hash>` runs, the binary
/// is `<target>/<profile>/hotline`). Panics with the fix when it is missing.
pub fn hotline_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("HOTLINE_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("the running test knows its own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("a test executable lives in <target>/<profile>/deps/");
    let bin = profile_dir.join(format!("hotline{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "no server binary at {}: run `cargo build -p hotline-engine` with the same CARGO_TARGET_DIR \
         and profile as the tests (`cargo test --workspace` builds it too), or set HOTLINE_BIN",
        bin.display()
    );
    bin
}

/// `--durability`: whether a `SendAck` waits for fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Acknowledged means on disk (survives `kill -9` and power loss).
    Sync,
    /// Acknowledged means written; the disk catches up.
    Async,
}

/// `--registration`: whether clients may create accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    Open,
    Closed,
}

/// How to run `hotline serve`. Defaults: 2 cores (so users land on different cores),
/// `sync` durability, open registration, the server's own idle timeout.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    cores: u32,
    durability: Durability,
    registration: Registration,
    idle_timeout_ms: Option<u32>,
    tls: bool,
    args_extra: Vec<String>,
    env_extra: Vec<(String, String)>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            cores: 2,
            durability: Durability::Sync,
            registration: Registration::Open,
            idle_timeout_ms: None,
            tls: false,
            args_extra: Vec::new(),
            env_extra: Vec::new(),
        }
    }
}

impl ServerOptions {
    /// `--cores`.
    pub fn cores(mut self, cores: u32) -> Self {
        self.cores = cores;
        self
    }

    /// `--durability`.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// `--registration`.
    pub fn registration(mut self, registration: Registration) -> Self {
        self.registration = registration;
        self
    }

    /// `--idle-timeout-ms` (left to the server's default when never called).
    pub fn idle_timeout_ms(mut self, idle_timeout_ms: u32) -> Self {
        self.idle_timeout_ms = Some(idle_timeout_ms);
        self
    }

    /// TLS with the test certificate ([`test_certificate`]) on a TLS listener (port 0).
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// One more argument, appended after all the others.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args_extra.push(arg.into());
        self
    }

    /// One more environment variable for the server process.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env_extra.push((key.into(), value.into()));
        self
    }

    /// Creates the data directory and starts the server on it.
    pub fn start(self) -> Server {
        let mut server = self.stopped();
        server.restart();
        server
    }

    /// Creates the data directory without starting anything: for `hotline user add` before
    /// the first start. [`Server::restart`] starts it.
    pub fn stopped(self) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("hotline-e2e-")
            .tempdir()
            .expect("create a temporary directory for the server");
        let data_dir = dir.path().join("data");
        fs::create_dir(&data_dir).expect("create the data directory inside the temporary directory");
        Server {
            options: self,
            dir,
            data_dir,
            child: None,
            addr: None,
            tls_addr: None,
            ws_addr: None,
            metrics_addr: None,
            api_addr: None,
            runs: 0,
        }
    }
}

/// One `hotline serve` process and the temporary directory holding its data and its
/// stderr (one file per run, `stderr-<run>.log`).
///
/// Invariant: `child` and `addr` are both `Some` exactly while a started process has not
/// been killed, signalled or reaped by this harness.
#[derive(Debug)]
pub struct Server {
    options: ServerOptions,
    dir: tempfile::TempDir,
    data_dir: PathBuf,
    child: Option<Child>,
    addr: Option<SocketAddr>,
    tls_addr: Option<SocketAddr>,
    ws_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    api_addr: Option<SocketAddr>,
    /// How many times the binary was started; names the current run's stderr file.
    runs: u32,
}

impl Server {
    /// A server with the default options, started.
    pub fn start() -> Server {
        ServerOptions::default().start()
    }

    /// Options to change before [`ServerOptions::start`].
    pub fn options() -> ServerOptions {
        ServerOptions::default()
    }

    /// The address it listens on. Panics when it is not running.
    pub fn addr(&self) -> SocketAddr {
        self.addr
            .expect("the server is not running (killed or terminated): call restart() first")
    }

    /// The TLS listener's address. Panics unless started with [`ServerOptions::tls`].
    pub fn tls_addr(&self) -> SocketAddr {
        self.tls_addr
            .expect("no TLS listener: start the server with ServerOptions::tls()")
    }

    /// The WebSocket listener's address (every test server has one, on port 0).
    pub fn ws_addr(&self) -> SocketAddr {
        self.ws_addr.expect("the server printed no WebSocket listening line")
    }

    /// The Prometheus endpoint's address (the harness always turns it on, port 0).
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr.expect("the server printed no metrics listening line")
    }

    /// The integration API's address (only with `--api-listen`).
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
            .expect("the server printed no api listening line (pass --api-listen)")
    }

    /// `GET /metrics`: the exposition text, parsed into `name{labels}` → value.
    pub fn scrape_metrics(&self) -> std::collections::BTreeMap<String, f64> {
        let body = http_get(self.metrics_addr(), "/metrics").expect("scrape the metrics endpoint");
        body.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                Some((name.to_owned(), value.parse().ok()?))
            })
            .collect()
    }

    /// The running process's id (`None` when stopped), e.g. to read its memory.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The data directory, the same across restarts.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Whether a process started by this harness is still running (it may have crashed).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(Ok(Some(_)) | Err(_)) | None => false,
        }
    }

    /// Starts the binary on this server's data directory: after [`Server::kill9`],
    /// [`Server::terminate`], or on a server made with [`ServerOptions::stopped`]. The
    /// port is new each time.
    #[allow(
        clippy::too_many_lines,
        reason = "one start-up sequence of the real binary, read top to bottom"
    )]
    pub fn restart(&mut self) {
        assert!(
            self.child.is_none(),
            "restart: the server is still running; kill9() or terminate() it first"
        );
        self.runs += 1;
        let stderr_path = self.stderr_path(self.runs);
        let stderr = File::create(&stderr_path).expect("create the server's stderr file");
        let bin = hotline_bin();
        let options = &self.options;
        let mut command = Command::new(&bin);
        command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--cores", &options.cores.to_string()])
            .args([
                "--durability",
                match options.durability {
                    Durability::Sync => "sync",
                    Durability::Async => "async",
                },
            ])
            .args([
                "--registration",
                match options.registration {
                    Registration::Open => "open",
                    Registration::Closed => "closed",
                },
            ]);
        if let Some(ms) = options.idle_timeout_ms {
            command.args(["--idle-timeout-ms", &ms.to_string()]);
        }
        // Port 0 always: parallel tests must not race for the default WebSocket port.
        command.args(["--ws-listen", "127.0.0.1:0"]);
        command.args(["--metrics-listen", "127.0.0.1:0"]);
        if options.tls {
            let (cert, key) = test_certificate();
            command
                .arg("--tls-cert")
                .arg(cert)
                .arg("--tls-key")
                .arg(key)
                .args(["--tls-listen", "127.0.0.1:0"]);
        }
        // Abuse limits and shedding by delay off unless a test sets them: most tests are one
        // client hammering a debug build, whose own queue would trip the admission gate
        // (tests/tests/overload.rs sets it).
        for flag in ABUSE_LIMIT_FLAGS.iter().chain([&SHED_QUEUE_DELAY_FLAG]) {
            if !options.args_extra.iter().any(|a| a == flag) {
                command.args([flag, "0"]);
            }
        }
        command
            .args(&options.args_extra)
            .envs(options.env_extra.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let stdout = child.stdout.take().expect("stdout was piped");
        let (line_tx, line_rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            // Every line up to the plain listening line (the last one printed at start-up).
            let mut start_lines = Vec::new();
            let last = loop {
                match lines.next() {
                    Some(Ok(line)) if !line.starts_with(LISTENING_LINE_PREFIX) && start_lines.len() < 16 => {
                        start_lines.push(line)
                    }
                    other => break other,
                }
            };
            // The receiver may have given up already; nothing to do about it then.
            let _ = line_tx.send((start_lines, last));
            // Keep draining, so a chatty server never blocks on a full pipe.
            lines.for_each(drop);
        });
        let received = line_rx.recv_timeout(SERVER_START_WAIT);
        let start_lines = received.as_ref().map(|(lines, _)| lines.clone()).unwrap_or_default();
        let line = match received.map(|(_, last)| last) {
            Ok(Some(Ok(line))) => line,
            Ok(Some(Err(e))) => start_failed(child, &stderr_path, &format!("reading its stdout failed: {e}")),
            Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => start_failed(
                child,
                &stderr_path,
                "it closed stdout without printing the listening line",
            ),
            Err(mpsc::RecvTimeoutError::Timeout) => start_failed(
                child,
                &stderr_path,
                &format!("it printed nothing within {SERVER_START_WAIT:?}"),
            ),
        };
        let Some(addr) = line
            .strip_prefix(LISTENING_LINE_PREFIX)
            .and_then(|rest| rest.trim().parse::<SocketAddr>().ok())
        else {
            start_failed(
                child,
                &stderr_path,
                &format!("its first stdout line was {line:?}, not \"{LISTENING_LINE_PREFIX}<ip>:<port>\""),
            )
        };
        let addr_after = |prefixes: &[&str]| {
            start_lines.iter().find_map(|l| {
                prefixes
                    .iter()
                    .find_map(|p| l.strip_prefix(p))
                    .and_then(|rest| rest.trim().parse::<SocketAddr>().ok())
            })
        };
        self.tls_addr = addr_after(&[TLS_LINE_PREFIX]);
        self.ws_addr = addr_after(&WS_LINE_PREFIXES);
        self.metrics_addr = addr_after(&[METRICS_LINE_PREFIX]);
        self.api_addr = addr_after(&[API_LINE_PREFIX]);
        self.child = Some(child);
        self.addr = Some(addr);
    }

    /// `kill -9`: no shutdown code runs. Returns once the process is gone.
    pub fn kill9(&mut self) {
        let mut child = self.take_child("kill9");
        // On Unix `Child::kill` is SIGKILL.
        child.kill().expect("SIGKILL the server");
        child.wait().expect("reap the killed server");
    }

    /// SIGTERM, then waits (at most [`SERVER_EXIT_WAIT`]) for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        self.stop_with_signal(libc::SIGTERM)
    }

    /// SIGINT (Ctrl-C), then waits (at most [`SERVER_EXIT_WAIT`]) for the exit status.
    pub fn interrupt(&mut self) -> ExitStatus {
        self.stop_with_signal(libc::SIGINT)
    }

    /// Sends `signal` (SIGTERM, SIGINT...) and waits (at most [`SERVER_EXIT_WAIT`]) for the
    /// exit status. Panics, after a SIGKILL, if the server does not exit in time.
    pub fn stop_with_signal(&mut self, signal: libc::c_int) -> ExitStatus {
        let mut child = self.take_child("stop_with_signal");
        send_signal(&child, signal);
        let deadline = Instant::now() + SERVER_EXIT_WAIT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                Ok(None) => {
                    // Best effort: the panic below is the report.
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "the server did not exit within {SERVER_EXIT_WAIT:?} of signal {signal}; stderr:\n{}",
                        self.stderr()
                    );
                }
                Err(e) => panic!("waiting for the server to exit: {e}"),
            }
        }
    }

    /// Runs `hotline user add USERNAME --data-dir DIR` with `password` on stdin and returns
    /// the user id it prints. The server must be stopped (the command owns the directory).
    pub fn user_add(&self, username: &str, password: &str) -> u64 {
        assert!(
            self.child.is_none(),
            "user_add: stop the server first (kill9/terminate, or build it with ServerOptions::stopped)"
        );
        let bin = hotline_bin();
        let mut child = Command::new(&bin)
            .args(["user", "add", username, "--data-dir"])
            .arg(&self.data_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {} user add: {e}", bin.display()));
        let mut stdin = child.stdin.take().expect("stdin was piped");
        // A failed write means the command exited early; its status and stderr below say why.
        let stdin_written = stdin.write_all(format!("{password}\n").as_bytes());
        drop(stdin);
        let pid = child.id();
        let (done_tx, done_rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = done_tx.send(child.wait_with_output());
        });
        let output = match done_rx.recv_timeout(SERVER_EXIT_WAIT) {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => panic!("waiting for `hotline user add`: {e}"),
            Err(_) => {
                // SAFETY: kill(2) has no memory effects; `pid` is our unreaped child (the
                // waiting thread has not returned), so it names no other process.
                unsafe { libc::kill(pid_of(pid), libc::SIGKILL) };
                panic!("`hotline user add {username}` did not finish within {SERVER_EXIT_WAIT:?}");
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "`hotline user add {username}` exited with {} (stdin write: {stdin_written:?}); stdout: {stdout:?}; \
             stderr:\n{stderr}",
            output.status
        );
        stdout
            .split_whitespace()
            .rev()
            .find_map(|word| word.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("`hotline user add {username}` printed no user id: {stdout:?}"))
    }

    /// Runs `hotline user provision --count COUNT --prefix PREFIX` (token-only accounts, no
    /// argon2) and returns `(user_id, token)` per account. The server must be stopped.
    pub fn provision(&self, prefix: &str, count: usize) -> Vec<(u64, Vec<u8>)> {
        assert!(self.child.is_none(), "provision: stop the server first");
        let out = self.dir.path().join(format!("accounts-{prefix}.txt"));
        let status = Command::new(hotline_bin())
            .args([
                "user",
                "provision",
                "--prefix",
                prefix,
                "--count",
                &count.to_string(),
                "--data-dir",
            ])
            .arg(&self.data_dir)
            .arg("--out")
            .arg(&out)
            .stdout(Stdio::null())
            .status()
            .expect("run hotline user provision");
        assert!(status.success(), "hotline user provision exited with {status}");
        let text = fs::read_to_string(&out).expect("read the provisioned accounts");
        let accounts: Vec<(u64, Vec<u8>)> = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|line| {
                let mut parts = line.split_whitespace();
                let user_id = parts.next().and_then(|w| w.parse().ok());
                let hex = parts.nth(1).unwrap_or("");
                let token: Option<Vec<u8>> = (0..hex.len() / 2)
                    .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
                    .collect();
                match (user_id, token) {
                    (Some(user_id), Some(token)) if token.len() == hotline_wire::TOKEN_BYTES => (user_id, token),
                    _ => panic!("bad accounts line {line:?}"),
                }
            })
            .collect();
        assert_eq!(accounts.len(), count, "provision wrote {} accounts", accounts.len());
        accounts
    }

    /// The current (or last) run's stderr so far, at most its last 16 KiB.
    pub fn stderr(&self) -> String {
        tail_of_file(&self.stderr_path(self.runs))
    }

    /// The running process, leaving the server stopped (no addresses); `what` names the
    /// caller when there is none.
    fn take_child(&mut self, what: &str) -> Child {
        let child = self
            .child
            .take()
            .unwrap_or_else(|| panic!("{what}: the server is not running"));
        self.addr = None;
        self.tls_addr = None;
        self.ws_addr = None;
        child
    }

    fn stderr_path(&self, run: u32) -> PathBuf {
        self.dir.path().join(format!("stderr-{run}.log"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Best effort: a drop has nowhere to report to.
            let _ = child.kill();
            let _ = child.wait();
        }
        if thread::panicking() {
            for run in 1..=self.runs {
                eprintln!(
                    "----- hotline serve stderr, run {run} of {} (data dir {}) -----\n{}",
                    self.runs,
                    self.data_dir.display(),
                    tail_of_file(&self.stderr_path(run))
                );
            }
        }
    }
}

fn pid_of(id: u32) -> libc::pid_t {
    libc::pid_t::try_from(id).expect("a process id fits pid_t")
}

fn send_signal(child: &Child, signal: libc::c_int) {
    // SAFETY: kill(2) has no memory effects; the pid is our child, not yet reaped, so it
    // cannot have been reused for another process.
    let rc = unsafe { libc::kill(pid_of(child.id()), signal) };
    assert_eq!(rc, 0, "kill({}, {signal}): {}", child.id(), io::Error::last_os_error());
}

/// The self-signed test certificate and key (`transport/testdata`, for `localhost` and
/// 127.0.0.1, made by `scripts/self-signed-cert`).
pub fn test_certificate() -> (PathBuf, PathBuf) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../transport/testdata");
    (dir.join("cert.pem"), dir.join("key.pem"))
}

fn start_failed(mut child: Child, stderr_path: &Path, why: &str) -> ! {
    // Best effort: the panic below is the report.
    let _ = child.kill();
    let status = child.wait();
    panic!(
        "hotline serve did not start: {why} (exit: {status:?}); stderr:\n{}",
        tail_of_file(stderr_path)
    );
}

fn tail_of_file(path: &Path) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let from = bytes.len().saturating_sub(STDERR_TAIL_BYTES);
            String::from_utf8_lossy(&bytes[from..]).into_owned()
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

/// How long an integration-API request may take before the test fails.
const API_REPLY_WAIT: Duration = Duration::from_secs(30);

/// One integration-API answer, read whole.
#[derive(Debug)]
pub struct ApiResponse {
    pub status: u16,
    /// The status line and headers.
    pub head: String,
    /// The JSON body (`Null` if it is not JSON).
    pub body: serde_json::Value,
    /// From connect to the end of the answer.
    pub took: Duration,
}

/// One request to the integration API at `addr` as the service with `token` (one request
/// per connection, as the API serves them); panics if no whole answer comes in time.
pub fn api_request(addr: SocketAddr, method: &str, path: &str, token: &str, body: &str) -> ApiResponse {
    let started = Instant::now();
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the API");
    stream.set_read_timeout(Some(API_REPLY_WAIT)).expect("a read timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send the request");
    let (status, head, body) = read_http_response(&mut stream);
    ApiResponse {
        status,
        head,
        body,
        took: started.elapsed(),
    }
}

/// Reads a whole HTTP answer from `stream` (the server closes after it): status, head and
/// JSON body (`Null` if it is not JSON).
fn read_http_response(stream: &mut std::net::TcpStream) -> (u16, String, serde_json::Value) {
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read the response");
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not a whole response: {response:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (
        status,
        head.to_owned(),
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

/// A minimal HTTP/1.1 GET over loopback, bounded in time: the body of a 200 answer, or an
/// error naming the status.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<String, String> {
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| e.to_string())?;
    let (head, body) = response.split_once("\r\n\r\n").ok_or("no header end")?;
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 200 ") {
        return Err(format!("GET {path}: {status}"));
    }
    Ok(body.to_owned())
}
