//! The load generator's peer drivers against the real servers they compare Hotline with
//! (`--target-kind nats|nats-js|mqtt`): a second of pairs traffic, and the books must balance.
//! Each needs its server installed (`nats-server`, `mosquitto`: Debian's packages, which
//! `scripts/ensure-test-deps` installs as root; JetStream's fsync-always needs nats-server
//! 2.10 or newer, which `scripts/ensure-nats` installs), so all are `#[ignore]`d; `make test` runs
//! them with `--ignored` as root, and run where the server is missing they fail saying why.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hotline_tests::loadgen_bin;

/// Connections (50 pairs) and sends per second: small, so a debug build on a loaded box keeps up.
const CONNECTIONS: usize = 100;
const RATE: u32 = 500;

/// How long a server may take to listen, and the load generator to finish.
const LISTEN_WAIT: Duration = Duration::from_secs(10);
const LOADGEN_WAIT: Duration = Duration::from_secs(60);

/// A server process, killed when dropped.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `name` on `PATH` or in `/usr/sbin` (where Debian puts mosquitto); panics, naming the
/// package to install, when it is not installed.
fn installed(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|bin| bin.is_file())
        .unwrap_or_else(|| panic!("cannot run here: {name} is not installed (apt-get install {name})"))
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("its address").port()
}

fn wait_listening(addr: SocketAddr, peer: &mut Peer) {
    let deadline = Instant::now() + LISTEN_WAIT;
    while TcpStream::connect(addr).is_err() {
        assert!(
            peer.0.try_wait().expect("wait").is_none(),
            "the server exited before listening"
        );
        assert!(Instant::now() < deadline, "the server is not listening on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `command` (a peer server listening on 127.0.0.1:`port`, output discarded) and
/// waits until it accepts connections; the peer is killed when the guard drops.
fn start_peer(command: &mut Command, port: u16, what: &str) -> (Peer, SocketAddr) {
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let mut peer = Peer(child);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_listening(addr, &mut peer);
    (peer, addr)
}

/// Runs pairs traffic against `addr` and checks the books; returns the report.
fn run_loadgen(kind: &str, addr: SocketAddr) -> hotline_tests::LoadgenReport {
    let loadgen = loadgen_bin();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let json = dir.path().join("report.json");
    let mut command = Command::new(&loadgen);
    command
        .args(["run", "--target-kind", kind, "--target", &addr.to_string()])
        .args(["--connections", &CONNECTIONS.to_string(), "--rate", &RATE.to_string()])
        .args(["--duration", "1", "--warmup", "0.5", "--drain", "3", "--json"])
        .arg(&json);
    let run = hotline_tests::run_loadgen(&mut command, &json, LOADGEN_WAIT, kind);
    let (report, summary) = (&run.json, &run.stdout);
    let n = |key: &str| run.n(key);
    assert_eq!(n("connected"), CONNECTIONS as u64, "{summary}");
    assert!(n("sent") > 0, "{summary}");
    assert_eq!(n("delivered"), n("sent"), "every message arrived: {summary}");
    assert_eq!((n("lost"), n("duplicated"), n("errors")), (0, 0, 0), "{summary}");
    assert_eq!(report["tags"]["target_kind"], kind);
    run
}

#[test]
#[ignore = "needs nats-server (apt-get install nats-server)"]
fn loadgen_books_balance_against_core_nats() {
    let bin = installed("nats-server");
    let port = free_port();
    let mut command = Command::new(bin);
    command.args(["-a", "127.0.0.1", "-p", &port.to_string()]);
    let (_peer, addr) = start_peer(&mut command, port, "nats-server");
    run_loadgen("nats", addr);
}

/// A nats-server with JetStream's `sync_interval` (>= 2.10): `$HOTLINE_NATS_SERVER`, else
/// the one scripts/ensure-nats installs, else `nats-server` on `PATH` if it is new enough.
/// Panics with the fix when there is none.
fn nats_server_with_jetstream_sync() -> PathBuf {
    let venv =
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/hotline/nats-venv/bin/nats-server"));
    let candidates = std::env::var_os("HOTLINE_NATS_SERVER")
        .map(PathBuf::from)
        .into_iter()
        .chain(venv)
        .chain([PathBuf::from("nats-server")]);
    for bin in candidates {
        let Ok(out) = Command::new(&bin).arg("--version").output() else {
            continue;
        };
        // "nats-server: v2.15.1"
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let version: Vec<u32> = text
            .trim()
            .trim_start_matches("nats-server: v")
            .split('.')
            .filter_map(|n| n.parse().ok())
            .collect();
        if version.len() >= 2 && (version[0], version[1]) >= (2, 10) {
            return bin;
        }
    }
    panic!("no nats-server >= 2.10 (JetStream's sync_interval): run scripts/ensure-nats, or set HOTLINE_NATS_SERVER");
}

/// JetStream as compare-peers runs it (file storage, fsync on every write, acknowledged
/// publishes, a durable consumer per user): every publish gets its PubAck, every message
/// arrives once, and the stream is on disk.
#[test]
#[ignore = "needs nats-server >= 2.10 (scripts/ensure-nats installs it); run with --include-ignored"]
fn loadgen_books_balance_against_nats_jetstream_with_every_message_fsynced() {
    let bin = nats_server_with_jetstream_sync();
    let port = free_port();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = dir.path().join("store");
    let config = dir.path().join("nats-js.conf");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\njetstream {{\n  store_dir: {:?}\n  sync_interval: always\n}}\n",
            store
        ),
    )
    .expect("write the config");
    let mut command = Command::new(bin);
    command.arg("-c").arg(&config);
    let (_peer, addr) = start_peer(&mut command, port, "nats-server");
    let run = run_loadgen("nats-js", addr);
    assert_eq!(
        run.n("acked"),
        run.n("sent"),
        "every publish got its PubAck: {}",
        run.stdout
    );
    assert_eq!(run.n("unacked"), 0, "{}", run.stdout);
    let stream = store.join("jetstream/$G/streams/LG");
    assert!(stream.is_dir(), "the stream is file-stored at {}", stream.display());
}

#[test]
#[ignore = "needs mosquitto (apt-get install mosquitto)"]
fn loadgen_books_balance_against_mosquitto_at_qos_1() {
    let bin = installed("mosquitto");
    let port = free_port();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = dir.path().join("mosquitto.conf");
    std::fs::write(
        &config,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\nmax_inflight_messages 1000\n"),
    )
    .expect("write the config");
    let mut command = Command::new(bin);
    command.arg("-c").arg(&config);
    let (_peer, addr) = start_peer(&mut command, port, "mosquitto");
    run_loadgen("mqtt", addr);
}
