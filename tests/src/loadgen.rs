//! The load generator beside the server under test ([`loadgen_bin`]), one bounded
//! `hotline-loadgen run` and its JSON report ([`run_loadgen`], [`LoadgenReport`]), and a
//! bounded wait for any child process ([`wait_with_deadline`]).
//!
//! Nothing waits forever: a child that outlives its deadline is killed, and the panic shows
//! its output.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::server::hotline_bin;

/// `$HOTLINE_LOADGEN_BIN`, or `hotline-loadgen` beside the [`hotline_bin`] under test.
pub fn loadgen_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("HOTLINE_LOADGEN_BIN") {
        return PathBuf::from(bin);
    }
    let bin = hotline_bin().with_file_name(format!("hotline-loadgen{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "no load generator at {}: run `cargo build -p hotline-loadgen` with the same CARGO_TARGET_DIR and \
         profile as the tests (`cargo test --workspace` builds it too), or set HOTLINE_LOADGEN_BIN",
        bin.display()
    );
    bin
}

/// What a finished `hotline-loadgen run` left: its JSON report, parsed and as text, and the
/// summary it printed.
#[derive(Debug)]
pub struct LoadgenReport {
    pub json: serde_json::Value,
    pub text: String,
    pub stdout: String,
}

impl LoadgenReport {
    /// A count from the report; panics, showing the report, if `key` holds none.
    pub fn n(&self, key: &str) -> u64 {
        self.json[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} is not a count in the report: {}", self.text))
    }
}

/// Runs `command` (a `hotline-loadgen run ... --json json`) for at most `wait`, asserts it
/// exited 0 (`what` names the run in the failure, beside its output), and reads the report
/// it wrote to `json`.
pub fn run_loadgen(command: &mut Command, json: &Path, wait: Duration, what: &str) -> LoadgenReport {
    let started = Instant::now();
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let output = wait_with_deadline(command.spawn().expect("spawn hotline-loadgen"), wait);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{what}: hotline-loadgen failed after {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        started.elapsed(),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = fs::read_to_string(json).expect("the JSON report was written");
    let json = serde_json::from_str(&text).expect("the report is valid JSON");
    LoadgenReport { json, text, stdout }
}

/// Waits for `child` (stdout and stderr piped) at most `wait`; kills it and panics with its
/// output if it runs longer.
pub fn wait_with_deadline(mut child: Child, wait: Duration) -> std::process::Output {
    let deadline = Instant::now() + wait;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().expect("collect the child's output"),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
            _ => {
                // Best effort: the panic below is the report.
                let _ = child.kill();
                let output = child.wait_with_output().expect("collect the child's output");
                panic!(
                    "the child process did not finish within {wait:?}\nstdout:\n{}\nstderr:\n{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
    }
}
