//! The wire contract holds for a client that is not Rust: tests/python/wire_client.py, with
//! PyPI's `flatbuffers` runtime and code `flatc --python` generates from the schema at test
//! time, talks to the real server over TCP (size-prefixed buffers) and WebSocket (standard
//! buffers) and reads every server frame strictly (bounds and alignment).
//!
//! The Python code is generated here, not committed: what is tested is exactly what a
//! third party gets from `wire/schema/hotline.fbs`, and there is no second generated tree
//! for `scripts/gen-wire --check` to keep in step. Set-up (`scripts/ensure-flatc`,
//! `scripts/ensure-pyclient`: a venv cached in ~/.cache/hotline) failing fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hotline_tests::{wait_with_deadline, Server};

/// The flatc release the committed Rust code comes from (see scripts/gen-wire).
const FLATC_VERSION: &str = "25.12.19";
/// The Python client's run: about a second; generous for a busy machine.
const PYTHON_WAIT: Duration = Duration::from_secs(120);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_path_buf()
}

/// Runs `script` (in scripts/) and returns its stdout's last line; panics with its stderr.
fn ensure(script: &str) -> String {
    let out = Command::new(repo_root().join("scripts").join(script))
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/{script}: {e}"));
    assert!(
        out.status.success(),
        "scripts/{script} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
}

/// flatc as scripts/gen-wire finds it: `FLATC`, the cached venv, or `flatc` on PATH.
fn flatc() -> PathBuf {
    ensure("ensure-flatc");
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let candidates = std::env::var_os("FLATC")
        .map(PathBuf::from)
        .into_iter()
        .chain([home.join(".cache/hotline/flatc-venv/bin/flatc"), PathBuf::from("flatc")]);
    for candidate in candidates {
        let version = Command::new(&candidate).arg("--version").output();
        if version.is_ok_and(|v| String::from_utf8_lossy(&v.stdout).contains(FLATC_VERSION)) {
            return candidate;
        }
    }
    panic!("no flatc {FLATC_VERSION} after scripts/ensure-flatc (FLATC, ~/.cache/hotline/flatc-venv, PATH)");
}

#[test]
fn a_python_client_from_the_schema_speaks_tcp_and_websocket_strictly() {
    let python = ensure("ensure-pyclient");
    let generated = tempfile::tempdir().expect("a directory for the generated Python");
    let status = Command::new(flatc())
        .args(["--python", "--gen-object-api", "-o"])
        .arg(generated.path())
        .arg(repo_root().join("wire/schema/hotline.fbs"))
        .status()
        .expect("run flatc --python");
    assert!(status.success(), "flatc --python exited with {status}");

    let server = Server::start();
    let child = Command::new(&python)
        .arg(repo_root().join("tests/python/wire_client.py"))
        .arg("--gen")
        .arg(generated.path())
        .args([
            "--tcp",
            &server.addr().to_string(),
            "--ws",
            &server.ws_addr().to_string(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let out = wait_with_deadline(child, PYTHON_WAIT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the Python client failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    for line in [
        "tcp: Hello, Register, Login, Send, SendAck, Deliver ok",
        "tcp: a standard buffer behind a plain length is refused as MalformedFrame",
        "ws: Hello, Register, Login, Send, SendAck, Deliver ok",
        "contract held",
    ] {
        assert!(
            stdout.contains(line),
            "the Python client did not report {line:?}:\n{stdout}"
        );
    }
}
