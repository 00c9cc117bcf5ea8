//! Running the system's own tools (mkfs, losetup, mount, dmsetup) for the tests that build
//! a file system under the server: each call either succeeds with the tool's output or says
//! which tool failed and what it printed.

use std::process::{Command, Stdio};

/// Runs `program` with `args` (no input) and returns its trimmed standard output, or a line
/// naming the tool, its status and its standard error.
pub fn run_tool(program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{program} {args:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Whether this process runs as root (the loop-device and device-mapper tests need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and touches no memory.
    unsafe { libc::geteuid() == 0 }
}
