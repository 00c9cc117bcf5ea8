//! The command line refuses what cannot work before it opens a connection, naming the fix.
//! (Also makes `cargo test` build the `hotline-loadgen` binary the end-to-end smoke test runs.)

use std::process::Command;

fn loadgen(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hotline-loadgen"))
        .args(args)
        .output()
        .expect("run hotline-loadgen");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn help_says_what_rate_means_for_fanout() {
    let (code, text) = loadgen(&["run", "--help"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("messages per second") && text.contains("rate / K"),
        "{text}"
    );
}

#[test]
fn too_few_accounts_and_tiny_payloads_are_refused_with_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let accounts = dir.path().join("accounts.txt");
    let line = format!("1 lg0 {}\n2 lg1 {}\n", "ab".repeat(32), "cd".repeat(32));
    std::fs::write(&accounts, line).expect("write accounts");
    let path = accounts.to_str().expect("utf-8 path");
    let base = ["run", "--target", "127.0.0.1:9", "--accounts", path];
    let (code, text) = loadgen(&[&base[..], &["--connections", "10"]].concat());
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("hotline user provision --count 10"), "{text}");
    let (code, text) = loadgen(&[&base[..], &["--connections", "2", "--payload", "8"]].concat());
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("24-byte header"), "{text}");
    let (code, text) = loadgen(&[&base[..], &["--connections", "2", "--pattern", "ring"]].concat());
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("pairs, fanout:K or group:K"), "{text}");
}
