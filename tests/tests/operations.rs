//! Running Hotline in production: configuration (file, `HOTLINE_*`, flags, rejection of
//! bad settings), the Prometheus endpoint scraped during traffic.

use std::process::Command;

use hotline_tests::{hotline_bin, numbered, Client, Server};

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
        &["--config", file_arg, "--idle-timeout-ms", "9000"],
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
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    let printed = dir.path().join("printed.toml");
    std::fs::write(&printed, &out).expect("write the printed config");
    let (code, again, err) = config_print(&["--config", printed.to_str().expect("utf-8")], &[]);
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
