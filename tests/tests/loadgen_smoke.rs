//! The load generator against a real server: a few hundred provisioned accounts, a few
//! seconds of pairs traffic, and the books must balance (nothing lost or duplicated), with a
//! well-formed JSON report carrying every key the results tables read.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hotline_tests::{hotline_bin, loadgen_bin, run_loadgen, Server};

/// Accounts (= connections) the smoke run opens.
const CONNECTIONS: usize = 300;

/// Sends per second over all connections: modest, so a debug build on a loaded 2-core
/// machine keeps up.
const RATE: u32 = 1_500;

/// How long the whole loadgen run may take before the test gives up on it.
const LOADGEN_WAIT: Duration = Duration::from_secs(60);

/// Keys every report must have (the list, plus the run's parameters).
const REQUIRED_KEYS: [&str; 26] = [
    "command",
    "commit",
    "machine",
    "connections",
    "sent",
    "acked",
    "delivered",
    "lost",
    "duplicated",
    "out_of_order",
    "errors",
    "throughput_msgs_per_s",
    "latency_us",
    "ack_latency_us",
    "connect_latency_us",
    "server_rss_bytes",
    "server_rss_bytes_per_connection",
    "kernel_tcp_mem_bytes",
    "rate",
    "payload",
    "pattern",
    "duration",
    "warmup",
    "workers",
    "latency_curve_us",
    "server_cpu_percent",
];

/// The pid of the `hotline serve` process using `data_dir` (the harness keeps its child to itself).
fn server_pid(data_dir: &Path) -> Option<u32> {
    let needle = data_dir.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        (args.contains(&&b"serve"[..]) && args.contains(&needle)).then_some(pid)
    })
}

fn provision(data_dir: &Path, out: &Path, count: usize) {
    let status = Command::new(hotline_bin())
        .args([
            "user",
            "provision",
            "--prefix",
            "lg",
            "--count",
            &count.to_string(),
            "--data-dir",
        ])
        .arg(data_dir)
        .arg("--out")
        .arg(out)
        .status()
        .expect("run hotline user provision");
    assert!(status.success(), "hotline user provision exited with {status}");
}

#[test]
fn loadgen_pairs_run_loses_nothing_and_writes_a_complete_report() {
    let mut server = Server::options().stopped();
    let work = tempfile::tempdir().expect("temporary directory");
    let accounts = work.path().join("accounts.txt");
    provision(server.data_dir(), &accounts, CONNECTIONS);
    server.restart();
    let pid = server_pid(server.data_dir());
    let json = work.path().join("report.json");
    let mut command = Command::new(loadgen_bin());
    command
        .arg("run")
        .args(["--target", &server.addr().to_string()])
        .arg("--accounts")
        .arg(&accounts)
        .args(["--connections", &CONNECTIONS.to_string()])
        .args(["--rate", &RATE.to_string()])
        .args([
            "--duration",
            "3",
            "--warmup",
            "1",
            "--payload",
            "100",
            "--pattern",
            "pairs",
        ])
        .args(["--workers", "2", "--source-addrs", "127.0.0.2-127.0.0.3"])
        .arg("--json")
        .arg(&json);
    if let Some(pid) = pid {
        command.args(["--server-pid", &pid.to_string()]);
    }
    let run = run_loadgen(&mut command, &json, LOADGEN_WAIT, "pairs");
    let (report, text, stdout) = (&run.json, &run.text, &run.stdout);
    let n = |key: &str| run.n(key);
    for key in REQUIRED_KEYS {
        assert!(report.get(key).is_some(), "the report lacks {key:?}: {text}");
    }
    assert_eq!(n("connections"), CONNECTIONS as u64);
    assert_eq!(
        n("connected"),
        CONNECTIONS as u64,
        "every connection logged in: {stdout}"
    );
    assert_eq!((n("lost"), n("duplicated"), n("errors")), (0, 0, 0), "{stdout}");
    // 4 s of sending at RATE: everything sent was acknowledged and delivered exactly once.
    assert_eq!(n("sent"), 4 * u64::from(RATE), "{stdout}");
    assert_eq!(n("acked"), n("sent"), "{stdout}");
    assert_eq!(n("delivered"), n("sent"), "{stdout}");
    let throughput = report["throughput_msgs_per_s"]
        .as_f64()
        .expect("throughput is a number");
    assert!(
        (throughput - f64::from(RATE)).abs() < f64::from(RATE) * 0.1,
        "throughput {throughput} should be near the offered {RATE}/s"
    );
    for hist in ["latency_us", "ack_latency_us", "connect_latency_us"] {
        for p in ["p50", "p90", "p99", "p999", "max"] {
            let v = report[hist][p]
                .as_u64()
                .unwrap_or_else(|| panic!("{hist}.{p} missing: {text}"));
            assert!(v > 0, "{hist}.{p} is 0");
        }
        assert!(report[hist]["p50"].as_u64() <= report[hist]["max"].as_u64());
    }
    for key in ["cores", "memory_bytes", "kernel"] {
        assert!(report["machine"].get(key).is_some(), "machine.{key} missing");
    }
    if pid.is_some() {
        assert!(report["server_rss_bytes"].as_u64().is_some_and(|b| b > 0), "{text}");
    }
    assert!(stdout.contains("lost 0 duplicated 0"), "the human summary: {stdout}");
}

#[test]
fn loadgen_group_fanout_run_creates_groups_and_loses_nothing() {
    // 3 groups of 1 sender + 20 members; 600 deliveries/s = 30 group messages/s.
    const GROUP_CONNECTIONS: usize = 63;
    const GROUP_RATE: u32 = 600;
    let mut server = Server::options().stopped();
    let work = tempfile::tempdir().expect("temporary directory");
    let accounts = work.path().join("accounts.txt");
    provision(server.data_dir(), &accounts, GROUP_CONNECTIONS);
    server.restart();
    let json = work.path().join("report.json");
    let mut command = Command::new(loadgen_bin());
    command
        .arg("run")
        .args(["--target", &server.addr().to_string()])
        .arg("--accounts")
        .arg(&accounts)
        .args(["--connections", &GROUP_CONNECTIONS.to_string()])
        .args(["--rate", &GROUP_RATE.to_string()])
        .args(["--duration", "2", "--warmup", "1", "--payload", "100"])
        .args(["--pattern", "group:20"])
        .arg("--json")
        .arg(&json);
    let run = run_loadgen(&mut command, &json, LOADGEN_WAIT, "group:20");
    let (report, text, stdout) = (&run.json, &run.text, &run.stdout);
    let n = |key: &str| run.n(key);
    assert_eq!((n("lost"), n("duplicated"), n("errors")), (0, 0, 0), "{stdout}");
    // 3 s of sending at GROUP_RATE deliveries/s, every one acknowledged and delivered once.
    assert_eq!(n("sent"), 3 * u64::from(GROUP_RATE), "{stdout}");
    assert_eq!(n("acked"), n("sent"), "{stdout}");
    assert_eq!(n("delivered"), n("sent"), "{stdout}");
    assert_eq!(report["pattern"].as_str(), Some("group:20"), "{text}");
}

/// `--transport tls` and `--transport ws` against the server's TLS and WebSocket listeners:
/// every connection logs in through its handshake, and the books balance as on TCP.
#[test]
fn loadgen_over_tls_and_websocket_loses_nothing() {
    const TRANSPORT_CONNECTIONS: usize = 40;
    const TRANSPORT_RATE: u32 = 200;
    let mut server = Server::options().tls().stopped();
    let work = tempfile::tempdir().expect("temporary directory");
    let accounts = work.path().join("accounts.txt");
    provision(server.data_dir(), &accounts, TRANSPORT_CONNECTIONS);
    server.restart();
    let (cert, _) = hotline_tests::test_certificate();
    for (transport, target) in [("tls", server.tls_addr()), ("ws", server.ws_addr())] {
        let json = work.path().join(format!("report-{transport}.json"));
        let mut command = Command::new(loadgen_bin());
        command
            .arg("run")
            .args(["--transport", transport, "--target", &target.to_string()])
            .arg("--tls-ca")
            .arg(&cert)
            .arg("--accounts")
            .arg(&accounts)
            .args(["--connections", &TRANSPORT_CONNECTIONS.to_string()])
            .args(["--rate", &TRANSPORT_RATE.to_string()])
            .args(["--duration", "1", "--warmup", "1", "--payload", "100", "--workers", "1"])
            .arg("--json")
            .arg(&json);
        let run = run_loadgen(&mut command, &json, LOADGEN_WAIT, transport);
        let (report, text, stdout) = (&run.json, &run.text, &run.stdout);
        let n = |key: &str| run.n(key);
        assert_eq!(n("connected"), TRANSPORT_CONNECTIONS as u64, "{transport}: {stdout}");
        assert_eq!(
            (n("lost"), n("duplicated"), n("errors")),
            (0, 0, 0),
            "{transport}: {stdout}"
        );
        assert_eq!(n("sent"), 2 * u64::from(TRANSPORT_RATE), "{transport}: {stdout}");
        assert_eq!(n("delivered"), n("sent"), "{transport}: {stdout}");
        assert_eq!(report["tags"]["transport"], transport, "{text}");
    }
}
