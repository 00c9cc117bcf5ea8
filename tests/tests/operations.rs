//! Running Hotline in production: configuration (file, `HOTLINE_*`, flags, rejection of
//! bad settings), the Prometheus endpoint scraped during traffic.

use std::process::Command;

use hotline_tests::{hotline_bin, numbered, Client, Server, REPLY_WAIT_DEFAULT};
use hotline_wire::ErrorCode;

/// `hotline config print` with `args` and `env`: (exit code, stdout, stderr).
fn config_print(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut command = Command::new(hotline_bin());
    command.args(["config", "print"]).args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    command.env_remove("HOTLINE_CONFIG").env_remove("HOTLINE_CORES");
    let out = command.output().expect("run hotline config print");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The file sets a value, `HOTLINE_*` beats the file, a flag beats both; the printed
/// configuration is itself a valid `--config` file that gives the same result.
#[test]
fn flags_beat_environment_beat_the_file_and_print_round_trips() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("hotline.toml");
    std::fs::write(
        &file,
        "cores = 3\nidle_timeout_ms = 5000\ngroup_members_max = 7\nweb = false\nws_allowed_origins = [\"https://a.example\"]\n",
    )
    .expect("write the config file");
    let file_arg = file.to_str().expect("utf-8 temp path");
    let (code, out, err) = config_print(
        &[
            "--config",
            file_arg,
            "--idle-timeout-ms",
            "9000",
            "--webhook-url",
            "http://127.0.0.1:9/h",
            "--webhook-secret",
            "do-not-print-this-secret",
            "--metrics-token",
            "nor-this-metrics-token",
        ],
        &[("HOTLINE_GROUP_MEMBERS_MAX", "11"), ("HOTLINE_IDLE_TIMEOUT_MS", "7000")],
    );
    assert_eq!(code, Some(0), "stderr: {err}");
    for line in [
        "cores = 3\n",
        "idle_timeout_ms = 9000\n",
        "group_members_max = 11\n",
        "web = false\n",
        "ws_allowed_origins = [\"https://a.example\"]\n",
        "metrics_listen = \"127.0.0.1:9700\"\n",
        "# webhook_secret is set (not shown)\n",
        "# metrics_token is set (not shown)\n",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    assert!(
        !out.contains("do-not-print-this-secret") && !out.contains("nor-this-metrics-token"),
        "a secret was printed:\n{out}"
    );
    let printed = dir.path().join("printed.toml");
    std::fs::write(&printed, &out).expect("write the printed config");
    // Secrets are left out of the print: they come back from the environment.
    let (code, again, err) = config_print(
        &["--config", printed.to_str().expect("utf-8")],
        &[
            ("HOTLINE_WEBHOOK_SECRET", "do-not-print-this-secret"),
            ("HOTLINE_METRICS_TOKEN", "nor-this-metrics-token"),
        ],
    );
    assert_eq!(code, Some(0), "stderr: {err}");
    assert_eq!(again, out, "printing the printed configuration changed it");
}

/// Bad settings stop start-up with a message naming the key, the value and why.
#[test]
fn an_invalid_configuration_names_the_key_the_value_and_why() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let cases: [(&str, &[&str]); 4] = [
        ("corse = 4\n", &["unknown key `corse`"]),
        ("cores = 0\n", &["cores = 0", "at least one core"]),
        ("cores = \"many\"\n", &["'many'", "--cores", "invalid digit"]),
        (
            "payload_bytes_max = 2000000\n",
            &["payload_bytes_max = 2000000", "frame_bytes_max"],
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("bad-{i}.toml"));
        std::fs::write(&file, text).expect("write the config file");
        let out = Command::new(hotline_bin())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "off",
                "--ws-listen",
                "off",
            ])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--config")
            .arg(&file)
            .env_remove("HOTLINE_CORES")
            .output()
            .expect("run hotline serve");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text:?} was accepted");
        for e in *expected {
            assert!(stderr.contains(e), "{text:?}: stderr lacks {e:?}:\n{stderr}");
        }
    }
    let (code, _, err) = config_print(&[], &[("HOTLINE_SYNC_PAGE_MESSAGES_MAX", "0")]);
    assert_eq!(code, Some(2));
    assert!(err.contains("sync_page_messages_max = 0"), "{err}");
}

/// With `--metrics-token`, only a scrape bearing the token gets the counters: none, a wrong
/// one, another scheme and a prefix of it get `401` with `WWW-Authenticate`; a token too
/// short is refused at start.
#[test]
fn with_a_metrics_token_only_a_scrape_bearing_it_gets_the_counters() {
    const TOKEN: &str = "metrics-token-0123456789";
    let server = Server::options().arg("--metrics-token").arg(TOKEN).start();
    let addr = server.metrics_addr();
    for refused in [
        None,
        Some("Bearer wrong-token-0123456789".to_owned()),
        Some(format!("Basic {TOKEN}")),
        Some(format!("Bearer {}", &TOKEN[..TOKEN.len() - 1])),
    ] {
        let (status, head, _) = http_request(addr, "/metrics", refused.as_deref());
        assert!(status.contains(" 401 "), "{refused:?}: {status}");
        assert!(head.contains("WWW-Authenticate: Bearer"), "{head}");
    }
    let (status, _, body) = http_request(addr, "/metrics", Some(&format!("Bearer {TOKEN}")));
    assert!(status.contains(" 200 "), "{status}");
    assert!(body.contains("hotline_messages_sent_total"), "{body}");
    let (status, _, _) = http_request(addr, "/metrics", Some(&format!("bearer  {TOKEN}")));
    assert!(status.contains(" 200 "), "the scheme is case-insensitive: {status}");

    let (code, _, err) = config_print(&["--metrics-token", "short"], &[]);
    assert_ne!(code, Some(0));
    assert!(err.contains("metrics_token") && !err.contains("short"), "{err}");
}

/// `GET path` with an optional `Authorization` value: (status line, head, body).
fn http_request(addr: std::net::SocketAddr, path: &str, authorization: Option<&str>) -> (String, String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the metrics endpoint");
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read the response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a complete head");
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, head.to_owned(), body.to_owned())
}

/// Counters move as traffic flows: connections per core, logins, frames by type, sent
/// and delivered messages, the latency and batch histograms, and the RocksDB gauges.
#[test]
fn metrics_scraped_during_traffic_move_as_they_should() {
    let server = Server::start();
    let before = server.scrape_metrics();
    let get = |m: &std::collections::BTreeMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(-1.0);
    assert_eq!(get(&before, "hotline_messages_sent_total"), 0.0);
    assert_eq!(get(&before, "hotline_logins_total{result=\"ok\"}"), 0.0);
    assert!(before.contains_key("hotline_connections{core=\"1\"}"), "{before:?}");

    let (mut alice, _) = Client::new_user(server.addr(), "alice");
    let (mut bob, b) = Client::new_user(server.addr(), "bob");
    let mut wrong = Client::connect(server.addr());
    assert!(wrong.login_password("bob", "not-the-password", "d").is_err());
    alice.send_all(b.user_id, &numbered("m", 1..=25, 0), 8);
    bob.expect_delivers(25);

    let during = server.scrape_metrics();
    let connections: f64 = (0..2)
        .map(|c| get(&during, &format!("hotline_connections{{core=\"{c}\"}}")))
        .sum();
    assert_eq!(connections, 3.0, "alice, bob and the failed login are connected");
    assert!(get(&during, "hotline_logins_total{result=\"ok\"}") >= 2.0);
    assert_eq!(get(&during, "hotline_logins_total{result=\"failed\"}"), 1.0);
    assert_eq!(get(&during, "hotline_frames_in_total{type=\"Send\"}"), 25.0);
    assert_eq!(get(&during, "hotline_frames_out_total{type=\"SendAck\"}"), 25.0);
    assert!(get(&during, "hotline_frames_out_total{type=\"Deliver\"}") >= 25.0);
    assert_eq!(get(&during, "hotline_messages_sent_total"), 25.0);
    let delivered = get(&during, "hotline_messages_delivered_total{path=\"live\"}")
        + get(&during, "hotline_messages_delivered_total{path=\"catch_up\"}");
    assert!(delivered >= 25.0, "delivered {delivered}");
    assert!(get(&during, "hotline_delivery_latency_seconds_count") >= 1.0);
    assert!(get(&during, "hotline_commit_fsync_latency_seconds_count") >= 1.0);
    let batches = get(&during, "hotline_group_commit_batch_requests_count");
    assert!(batches >= 1.0 && get(&during, "hotline_group_commit_batch_requests_sum") >= 25.0);
    assert_eq!(get(&during, "hotline_queue_depth{queue=\"writer\"}"), 0.0);
    assert!(
        during.keys().any(|k| k.starts_with("hotline_rocksdb{cf=\"inbox\"")),
        "no RocksDB gauges"
    );

    // The same live numbers over the admin socket, which only the server's user may open.
    let socket = server.data_dir().join("admin.sock");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&socket).expect("admin.sock").permissions());
    assert_eq!(mode & 0o777, 0o600, "admin.sock mode {mode:o}");
    let out = Command::new(hotline_bin())
        .args(["admin", "stats", "--data-dir"])
        .arg(server.data_dir())
        .output()
        .expect("run hotline admin stats");
    let stats = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for line in [
        "connections 3\n",
        "messages_sent 25\n",
        "logins_failed 1\n",
        "users 2\n",
    ] {
        assert!(stats.contains(line), "admin stats lacks {line:?}:\n{stats}");
    }

    drop((alice, bob, wrong));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let after = server.scrape_metrics();
        let open: f64 = (0..2)
            .map(|c| get(&after, &format!("hotline_connections{{core=\"{c}\"}}")))
            .sum();
        if open == 0.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{open} connections still counted after closing all"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The sample configuration in the repository loads, and names every key the server has.
#[test]
fn the_sample_config_is_valid_and_documents_every_key() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../hotline.sample.toml");
    let (code, out, err) = config_print(&["--config", sample], &[]);
    assert_eq!(code, Some(0), "stderr: {err}");
    let text = std::fs::read_to_string(sample).expect("read the sample config");
    for line in out.lines().filter(|l| !l.starts_with("# hotline")) {
        let key = line.trim_start_matches("# ").split([' ', '=']).next().expect("a key");
        assert!(
            text.contains(&format!("\n{key} = ")) || text.contains(&format!("\n# {key} = ")),
            "the sample config does not document `{key}`"
        );
    }
}

/// The admin socket is the server's user's alone: another local user (`nobody`), who can
/// reach the socket file (the data directory made traversable for the test), cannot
/// connect, while the server's own user runs commands through it.
#[test]
#[ignore = "needs root (connects as another user)"]
fn another_local_user_cannot_use_the_admin_socket() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    const NOBODY: u32 = 65_534;
    let server = Server::start();
    let socket = server.data_dir().join("admin.sock");
    let mode = std::fs::metadata(&socket)
        .expect("the admin socket exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");
    std::fs::set_permissions(server.data_dir(), std::fs::Permissions::from_mode(0o711))
        .expect("make the data directory traversable");
    let (ok, out, err) = admin(&server, &["stats"], "");
    assert!(ok && !out.is_empty(), "the server's own user is served: {err}");

    let probe = "import socket, sys\n\
                 s = socket.socket(socket.AF_UNIX)\n\
                 try:\n    s.connect(sys.argv[1])\nexcept PermissionError:\n    sys.exit(13)\n\
                 s.sendall(b'stats\\n')\nprint(s.recv(100))";
    let out = Command::new("python3")
        .args(["-c", probe])
        .arg(&socket)
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .expect("run python3 as nobody");
    assert_eq!(
        out.status.code(),
        Some(13),
        "nobody connected to the admin socket: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `hotline ARGS...` to completion: (success, stdout, stderr).
fn hotline(args: &[&std::ffi::OsStr]) -> (bool, String, String) {
    let out = Command::new(hotline_bin()).args(args).output().expect("run hotline");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A backup taken while the server runs (and keeps taking messages) restores into a
/// database holding every message sent before it, byte for byte, and the same tokens;
/// `hotline export` lists a user's whole history as JSON lines.
#[test]
fn backup_while_serving_restores_every_message_and_export_lists_history() {
    use std::ffi::OsStr;
    let mut server = Server::start();
    let (mut alice, a) = Client::new_user(server.addr(), "alice");
    let (mut bob, b) = Client::new_user(server.addr(), "bob");
    let before = numbered("before", 1..=40, 100);
    let acks = alice.send_all(b.user_id, &before, 8);
    bob.expect_delivers(40);
    bob.send_all(a.user_id, &numbered("reply", 1..=5, 0), 4);

    let backups = tempfile::tempdir().expect("temporary directory");
    let to = backups.path().join("b1");
    let data = server.data_dir().to_path_buf();
    let (ok, out, err) = hotline(&[
        OsStr::new("backup"),
        OsStr::new("--to"),
        to.as_os_str(),
        OsStr::new("--data-dir"),
        data.as_os_str(),
    ]);
    assert!(ok, "backup failed: {err}");
    assert!(out.contains("backup written to"), "{out}");
    // Traffic after the backup is not in it.
    alice.send_all(b.user_id, &numbered("after", 41..=50, 0), 8);

    let (ok, out, err) = hotline(&[
        OsStr::new("export"),
        OsStr::new("--user"),
        OsStr::new("bob"),
        OsStr::new("--data-dir"),
        data.as_os_str(),
    ]);
    assert!(ok, "export failed: {err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(lines.len(), 55, "bob's inbox: 40 + 5 + 10 messages");
    let first_text = String::from_utf8(before[0].1.clone()).expect("numbered payloads are text");
    assert_eq!(lines[0]["text"], first_text.as_str());
    assert_eq!(lines[0]["sender"], a.user_id);
    assert_eq!(lines[0]["conversation"]["kind"], "direct");
    let (ok, _, err) = hotline(&[
        OsStr::new("export"),
        OsStr::new("--user"),
        OsStr::new("nobody"),
        OsStr::new("--data-dir"),
        data.as_os_str(),
    ]);
    assert!(!ok && err.contains("no user named \"nobody\""), "{err}");

    drop((alice, bob));
    assert_eq!(server.terminate().code(), Some(0));
    // Restoring over existing data is refused; into an empty directory it works.
    let (ok, _, err) = hotline(&[
        OsStr::new("restore"),
        OsStr::new("--from"),
        to.as_os_str(),
        OsStr::new("--data-dir"),
        data.as_os_str(),
    ]);
    assert!(!ok && err.contains("not empty"), "{err}");
    std::fs::rename(&data, backups.path().join("old-data")).expect("move the old data aside");
    let (ok, out, err) = hotline(&[
        OsStr::new("restore"),
        OsStr::new("--from"),
        to.as_os_str(),
        OsStr::new("--data-dir"),
        data.as_os_str(),
    ]);
    assert!(ok, "restore failed: {err}");
    assert!(out.contains("(2 users)"), "{out}");
    server.restart();

    let (mut bob, again) = Client::resume(server.addr(), &b.token);
    assert_eq!(again.inbox_seq, 45, "bob's inbox head in the backup");
    let all = bob.sync_all(0);
    assert_eq!(all.len(), 45);
    for ((d, (_, payload)), ack) in all.iter().zip(&before).zip(&acks) {
        assert_eq!(d.message_id, ack.message_id);
        assert_eq!(&d.payload, payload);
    }
}

/// Retention: past the global period, messages become `Expired` stubs in every inbox
/// (dense seqs, no payload) in the background; a conversation with its own period of 0
/// keeps everything; new messages are untouched.
#[test]
fn retention_expires_old_messages_in_the_background_per_conversation() {
    use hotline_wire::MessageKind;
    // 0.00002 days = 1.7 s. alice (1) - carol (3) keep forever.
    let server = Server::options()
        .arg("--retention-days")
        .arg("0.00002")
        .arg("--retention-sweep-interval-ms")
        .arg("100")
        .arg("--retention-conversation")
        .arg("direct:3-1=0")
        .start();
    let (mut alice, a) = Client::new_user(server.addr(), "alice");
    let (mut bob, b) = Client::new_user(server.addr(), "bob");
    let (mut carol, c) = Client::new_user(server.addr(), "carol");
    assert_eq!(
        (a.user_id, b.user_id, c.user_id),
        (1, 2, 3),
        "the override names these ids"
    );
    alice.send_all(b.user_id, &numbered("old", 1..=5, 0), 4);
    alice.send_all(c.user_id, &numbered("kept", 6..=10, 0), 4);
    bob.expect_delivers(5);
    carol.expect_delivers(5);
    let fresh = bob.sync_all(0);
    assert!(fresh
        .iter()
        .all(|d| d.kind != MessageKind::EXPIRED && !d.payload.is_empty()));

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let expired = server.scrape_metrics().get("hotline_retention_expired_total").copied();
        if expired == Some(10.0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "retention expired {expired:?}, not 10 entries"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let old = bob.sync_all(0);
    assert_eq!(old.len(), 5);
    for (i, d) in old.iter().enumerate() {
        assert_eq!(d.inbox_seq, i as u64 + 1, "stubs keep the inbox dense");
        assert_eq!(d.kind, MessageKind::EXPIRED);
        assert!(d.payload.is_empty());
        assert_eq!(d.message_id, fresh[i].message_id);
    }
    let kept = carol.sync_all(0);
    assert_eq!(kept.len(), 5);
    assert!(kept
        .iter()
        .all(|d| d.kind != MessageKind::EXPIRED && !d.payload.is_empty()));
    // Something new is untouched (the sweeps go on, but it is younger than 1.7 s).
    alice.send_all(b.user_id, &numbered("new", 11..=11, 0), 1);
    let new = bob.expect_delivers(1);
    assert_eq!(new[0].inbox_seq, 6);
    assert!(!new[0].payload.is_empty() && new[0].kind != MessageKind::EXPIRED);
}

/// `hotline admin ...` with `stdin`: (success, stdout, stderr).
fn admin(server: &Server, args: &[&str], stdin: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(hotline_bin())
        .arg("admin")
        .args(args)
        .arg("--data-dir")
        .arg(server.data_dir())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run hotline admin");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("hotline admin output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Accounts are managed on a running server over the admin socket: add, reset a
/// password (the old one stops working), revoke every token, list groups, disable,
/// enable, remove.
#[test]
fn admin_manages_users_on_a_running_server() {
    use hotline_wire::Persistence;
    let server = Server::options()
        .registration(hotline_tests::Registration::Closed)
        .start();
    let (ok, out, err) = admin(&server, &["user-add", "dana"], "first pass\n");
    assert!(ok, "{err}");
    let dana_id: u64 = out.trim().parse().expect("user-add prints the user id");
    let (ok, _, err) = admin(&server, &["user-add", "dana"], "again\n");
    assert!(!ok && err.contains("already exists"), "{err}");

    let mut dana = Client::connect(server.addr());
    let login = dana
        .login_password("dana", "first pass", "laptop")
        .expect("log in as the new user");
    assert_eq!(login.user_id, dana_id);
    let group = dana
        .create_group("ops", Persistence::default())
        .expect("create a group");
    let (ok, out, err) = admin(&server, &["groups", "dana"], "");
    assert!(ok, "{err}");
    assert!(
        out.starts_with(&format!("{group} ")) && out.trim_end().ends_with(" ops"),
        "{out}"
    );

    let (ok, _, err) = admin(&server, &["reset-password", "dana"], "second pass\n");
    assert!(ok, "{err}");
    assert!(Client::connect(server.addr())
        .login_password("dana", "first pass", "x")
        .is_err());
    Client::connect(server.addr())
        .login_password("dana", "second pass", "phone")
        .expect("the new password works");

    let (ok, out, err) = admin(&server, &["revoke-tokens", "dana"], "");
    assert!(ok, "{err}");
    assert!(out.contains("revoked 2 tokens of dana"), "{out}");
    // The revoked device's live session ends at once, saying why (not at its next login).
    assert_eq!(dana.expect_error(REPLY_WAIT_DEFAULT).1, ErrorCode::InvalidCredentials);
    assert!(
        dana.is_closed_by_server(REPLY_WAIT_DEFAULT),
        "a revoked device's connection stays open"
    );
    assert!(Client::connect(server.addr())
        .login_token(&login.token, "laptop")
        .is_err());
    let (ok, _, err) = admin(&server, &["revoke-tokens", "nobody"], "");
    assert!(!ok && err.contains("no user named"), "{err}");

    // Disable: the password is refused and tokens die; enable: the same password works.
    let phone = Client::connect(server.addr())
        .login_password("dana", "second pass", "phone")
        .expect("log in before disabling");
    let (ok, out, err) = admin(&server, &["disable", "dana"], "");
    assert!(ok && out.contains("revoked 1 tokens"), "{out}{err}");
    assert!(Client::connect(server.addr())
        .login_password("dana", "second pass", "x")
        .is_err());
    assert!(Client::connect(server.addr())
        .login_token(&phone.token, "phone")
        .is_err());
    let (ok, _, err) = admin(&server, &["disable", "dana"], "");
    assert!(!ok && err.contains("already disabled"), "{err}");
    let (ok, _, err) = admin(&server, &["enable", "dana"], "");
    assert!(ok, "{err}");
    Client::connect(server.addr())
        .login_password("dana", "second pass", "again")
        .expect("enabled again with the same password");
    // Remove: nothing logs in any more, and the name cannot be taken again.
    let (ok, out, err) = admin(&server, &["user-remove", "dana"], "");
    assert!(ok && out.contains("revoked 1 tokens"), "{out}{err}");
    assert!(Client::connect(server.addr())
        .login_password("dana", "second pass", "x")
        .is_err());
    let (ok, _, err) = admin(&server, &["user-add", "dana"], "new owner\n");
    assert!(!ok && err.contains("already exists"), "{err}");
}

/// One HTTP request as the webhook receiver saw it.
#[derive(Debug)]
struct Received {
    head: String,
    body: Vec<u8>,
}

/// A loopback webhook receiver: answers 500 to the first `failures` requests, then 200,
/// and passes every request on.
fn webhook_receiver(failures: usize) -> (std::net::SocketAddr, std::sync::mpsc::Receiver<Received>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
    let addr = listener.local_addr().expect("receiver address");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (i, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { return };
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let mut data = Vec::new();
            let mut buf = [0u8; 4096];
            let (head, body) = loop {
                if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&data[..end]).into_owned();
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().to_owned())
                        })
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    if data.len() >= end + 4 + length {
                        break (head, data[end + 4..end + 4 + length].to_vec());
                    }
                }
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => data.extend_from_slice(&buf[..n]),
                }
            };
            let status = if i < failures {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            if tx.send(Received { head, body }).is_err() {
                return;
            }
        }
    });
    (addr, rx)
}

/// HMAC-SHA256 per RFC 2104, independent of the server's.
fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let inner = Sha256::new()
        .chain_update(k.map(|b| b ^ 0x36))
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(k.map(|b| b ^ 0x5c))
        .chain_update(inner)
        .finalize();
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

/// An HTTP request to the integration API: (status, JSON body).
fn api(server: &Server, method: &str, path: &str, token: &str, body: &str) -> (u16, serde_json::Value) {
    let r = hotline_tests::api_request(server.api_addr(), method, path, token, body);
    (r.status, r.body)
}

/// A service sends as its user and reads a conversation page through the API; users
/// coming online and a message to a bot reach a real loopback receiver as signed
/// webhooks, in order, the first retried after a 500.
#[test]
fn integration_api_sends_and_reads_and_webhooks_are_signed_and_retried() {
    const TOKEN: &str = "svc-token-0123456789";
    const SECRET: &str = "webhook-secret-0123456789";
    let (receiver, hooks) = webhook_receiver(1);
    let server = Server::options()
        .arg("--api-listen")
        .arg("127.0.0.1:0")
        .arg("--api-token")
        .arg(format!("svc:{TOKEN}"))
        .arg("--webhook-url")
        .arg(format!("http://{receiver}/hook"))
        .arg("--webhook-secret")
        .arg(SECRET)
        .arg("--webhook-user")
        .arg("bot")
        .arg("--webhook-online")
        .start();
    let (_svc_client, svc) = Client::new_user(server.addr(), "svc");
    let (mut bob, b) = Client::new_user(server.addr(), "bob");
    let (_bot_client, bot) = Client::new_user(server.addr(), "bot");

    let (status, _) = api(
        &server,
        "POST",
        "/v1/messages",
        "wrong-token-0123456789",
        r#"{"to":"bob","text":"x"}"#,
    );
    assert_eq!(status, 401);
    let (status, sent) = api(
        &server,
        "POST",
        "/v1/messages",
        TOKEN,
        r#"{"to":"bob","text":"hello from svc"}"#,
    );
    assert_eq!(status, 200, "{sent}");
    let delivered = bob.expect_delivers(1);
    assert_eq!(delivered[0].payload, b"hello from svc");
    assert_eq!(delivered[0].sender, svc.user_id);
    assert_eq!(sent["message_id"], delivered[0].message_id);
    bob.send_all(svc.user_id, &[(1, b"hi svc".to_vec())], 1);
    let (status, page) = api(&server, "GET", "/v1/conversations/bob?after=0&limit=10", TOKEN, "");
    assert_eq!(status, 200, "{page}");
    let texts: Vec<&str> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["text"].as_str().expect("text"))
        .collect();
    assert_eq!(texts, ["hello from svc", "hi svc"]);
    let (status, _) = api(&server, "GET", "/v1/conversations/nobody", TOKEN, "");
    assert_eq!(status, 404);

    bob.send_all(bot.user_id, &[(2, b"ping bot".to_vec())], 1);
    // Expected: svc, bob and bot came online (the first POST answered 500 and retried),
    // then the message to the bot.
    let wait = std::time::Duration::from_secs(10);
    let mut received = Vec::new();
    while received.len() < 5 {
        received.push(hooks.recv_timeout(wait).expect("the webhooks arrive"));
    }
    assert!(
        hooks.recv_timeout(std::time::Duration::from_millis(500)).is_err(),
        "nothing else was posted"
    );
    assert_eq!(received[0].body, received[1].body, "a retry carries the same event");
    for r in &received {
        assert!(r.head.starts_with("POST /hook HTTP/1.1"), "{}", r.head);
        let signature = r
            .head
            .lines()
            .find_map(|l| l.strip_prefix("X-Hotline-Signature: "))
            .expect("a signature header");
        assert_eq!(
            signature,
            format!("sha256={}", hmac_sha256_hex(SECRET.as_bytes(), &r.body))
        );
    }
    let events: Vec<serde_json::Value> = received[1..]
        .iter()
        .map(|r| serde_json::from_slice(&r.body).expect("JSON event"))
        .collect();
    let online: Vec<(u64, &str)> = events[..3]
        .iter()
        .map(|e| {
            assert_eq!(e["event"], "online");
            (
                e["user_id"].as_u64().expect("user_id"),
                e["user"].as_str().expect("user"),
            )
        })
        .collect();
    assert_eq!(online, [(svc.user_id, "svc"), (b.user_id, "bob"), (bot.user_id, "bot")]);
    let event = &events[3];
    assert_eq!(event["event"], "message");
    assert_eq!(event["bot"], "bot");
    assert_eq!(event["message"]["text"], "ping bot");
    assert_eq!(event["message"]["kind"], "normal");
    assert_eq!(event["message"]["sender"], b.user_id);
    let metrics = server.scrape_metrics();
    assert_eq!(metrics.get("hotline_webhooks_delivered_total"), Some(&4.0));
    assert_eq!(metrics.get("hotline_webhook_retries_total"), Some(&1.0));
    assert_eq!(metrics.get("hotline_api_messages_sent_total"), Some(&1.0));
}
