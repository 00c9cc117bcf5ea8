//! Every invalid configuration stops `hotline serve` (and `hotline config print`) with exit
//! status 2 and a message naming the key, however it was given: a bad value in the file, in
//! a `HOTLINE_*` variable or in a flag, an unknown key, an unparsable file, a value of the
//! wrong type, a limit at odds with another.
//!
//! Regression: a value that parsed but was out of range (`payload_bytes_max = 2000000`,
//! `idle_timeout_ms = 10`) made `serve` exit 1, while `config print`, unknown keys and bad
//! flags exited 2.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hotline_tests::{hotline_bin, wait_with_deadline};

/// Exit status of every invalid configuration (README: "stops start-up (exit 2)").
const INVALID_CONFIGURATION_EXIT: i32 = 2;
/// An invalid configuration is refused before anything starts; a server that starts
/// instead runs until this deadline and the test fails naming the case.
const REFUSAL_WAIT: Duration = Duration::from_secs(20);

/// How one case hands the server its setting.
enum Given {
    File(&'static str),
    Env(&'static str, &'static str),
    Flags(&'static [&'static str]),
}

struct Case {
    what: &'static str,
    given: Given,
    /// Each must appear in stderr.
    says: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        what: "a value out of range in the file",
        given: Given::File("payload_bytes_max = 2000000\n"),
        says: &[
            "invalid configuration",
            "payload_bytes_max = 2000000",
            "frame_bytes_max",
        ],
    },
    Case {
        what: "a too short idle timeout in the file",
        given: Given::File("idle_timeout_ms = 10\n"),
        says: &["invalid configuration", "idle_timeout_ms = 10", "at least 200 ms"],
    },
    Case {
        what: "a too short idle timeout in HOTLINE_IDLE_TIMEOUT_MS",
        given: Given::Env("HOTLINE_IDLE_TIMEOUT_MS", "10"),
        says: &["invalid configuration", "idle_timeout_ms = 10"],
    },
    Case {
        what: "a too short idle timeout as a flag",
        given: Given::Flags(&["--idle-timeout-ms", "10"]),
        says: &["invalid configuration", "idle_timeout_ms = 10"],
    },
    Case {
        what: "zero cores as a flag",
        given: Given::Flags(&["--cores", "0"]),
        says: &["cores = 0", "at least one core"],
    },
    Case {
        what: "an unparsable number in the environment",
        given: Given::Env("HOTLINE_CORES", "many"),
        says: &["'many'", "--cores", "invalid digit"],
    },
    Case {
        what: "an unparsable flag value",
        given: Given::Flags(&["--frame-bytes-max", "lots"]),
        says: &["'lots'", "--frame-bytes-max"],
    },
    Case {
        what: "an unknown key in the file",
        given: Given::File("corse = 4\n"),
        says: &["invalid configuration", "unknown key `corse`"],
    },
    Case {
        what: "a file that is not TOML",
        given: Given::File("cores = [unclosed\n"),
        says: &["invalid configuration"],
    },
    Case {
        what: "a value of the wrong TOML type",
        given: Given::File("cores = \"many\"\n"),
        says: &["'many'", "--cores", "invalid digit"],
    },
    Case {
        what: "a payload limit over the frame limit (flags)",
        given: Given::Flags(&["--frame-bytes-max", "4096", "--payload-bytes-max", "8192"]),
        says: &["invalid configuration", "payload_bytes_max = 8192"],
    },
    Case {
        what: "a TLS certificate without its key",
        given: Given::Flags(&["--tls-cert", "/nonexistent/cert.pem"]),
        says: &["--tls-key"],
    },
    Case {
        what: "wss without TLS",
        given: Given::File("ws_tls = true\n"),
        says: &["invalid configuration", "ws_tls"],
    },
    Case {
        what: "webhook_online without a webhook URL",
        given: Given::Env("HOTLINE_WEBHOOK_ONLINE", "true"),
        says: &["invalid configuration", "webhook_online", "needs webhook_url"],
    },
    Case {
        what: "API tokens without an API listener",
        given: Given::Flags(&["--api-token", "svc:0123456789abcdef"]),
        says: &["invalid configuration", "api_tokens", "needs api_listen"],
    },
];

/// Runs `hotline ARGS... [--config FILE]` with the case's setting; (exit code, stderr).
fn run(args: &[&str], case: &Case, dir: &Path, i: usize) -> (Option<i32>, String) {
    let mut command = Command::new(hotline_bin());
    command.args(args);
    // Nothing from the environment the test runs in.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("HOTLINE_") {
            command.env_remove(key);
        }
    }
    match &case.given {
        Given::File(text) => {
            let file = dir.join(format!("case-{i}.toml"));
            std::fs::write(&file, text).expect("write the config file");
            command.arg("--config").arg(file);
        }
        Given::Env(key, value) => {
            command.env(key, value);
        }
        Given::Flags(flags) => {
            command.args(*flags);
        }
    }
    let child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run hotline");
    let out = wait_with_deadline(child, REFUSAL_WAIT);
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn every_invalid_configuration_exits_2_from_serve_and_config_print() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data_dir = dir.path().join("data");
    let data_dir = data_dir.to_str().expect("utf-8 temp path");
    let serve = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "off",
        "--ws-listen",
        "off",
        "--data-dir",
        data_dir,
    ];
    let mut wrong = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        for args in [&serve[..], &["config", "print"][..]] {
            let (code, stderr) = run(args, case, dir.path(), i);
            if code != Some(INVALID_CONFIGURATION_EXIT) {
                wrong.push(format!(
                    "`hotline {}` with {}: exit {code:?}\n{stderr}",
                    args[0], case.what
                ));
            }
            for says in case.says {
                if !stderr.contains(says) {
                    wrong.push(format!(
                        "`hotline {}` with {}: stderr lacks {says:?}\n{stderr}",
                        args[0], case.what
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(
        !Path::new(data_dir).exists(),
        "a refused configuration created the data directory"
    );
}
