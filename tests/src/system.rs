//! Running the system's own tools (mkfs, losetup, mount, e2fsck) for the tests that build
//! a file system under the server: each call either succeeds with the tool's output or says
//! which tool failed and what it printed.

use std::fs;
use std::path::Path;
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

/// Whether this process runs as root (the loop-device tests need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// An ext4 file system in a fresh image of `image_mb` MiB on a new loop device: the image's
/// directory (dropping it removes the image) and the device (`/dev/loopN`; the caller
/// mounts it and frees it with `losetup -d`). Fails, saying why, without root or loop
/// devices.
pub fn ext4_loop_device(image_mb: u64) -> Result<(tempfile::TempDir, String), String> {
    if !is_root() {
        return Err("not root: cannot set up a loop device".into());
    }
    if !Path::new("/dev/loop-control").exists() {
        return Err("no /dev/loop-control: loop devices are unavailable here".into());
    }
    let image_dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let image = image_dir.path().join("ext4.img");
    let file = fs::File::create(&image).map_err(|e| format!("create the image: {e}"))?;
    file.set_len(image_mb << 20)
        .map_err(|e| format!("size the image: {e}"))?;
    let image = image.to_str().ok_or("a temporary path that is not UTF-8")?;
    run_tool("mkfs.ext4", &["-q", image])?;
    let device = run_tool("losetup", &["-f", "--show", image])?;
    Ok((image_dir, device))
}
