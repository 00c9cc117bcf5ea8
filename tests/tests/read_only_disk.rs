//! A read-only data directory: the file system under the log fails while the server runs
//! (ext4 aborts its journal and remounts read-only, the way a real disk error does), and
//! sends fail with `Error{StorageUnavailable}` while the server stays up; nothing already
//! acknowledged is lost; after the operator's repair (stop, umount, e2fsck, mount, start)
//! every acknowledged message is there exactly once and sends work again. And a server
//! started on a read-only directory stops at once, naming the directory and the cause.
//!
//! The data directory is an ext4 image on a loop device mounted by the test, and the error
//! is injected through `/sys/fs/ext4/<dev>/trigger_fs_error`, so it needs root and loop
//! devices: the tests are `#[ignore]`d, `make test` runs them with `--ignored` as root, and
//! run where they cannot mount one they fail saying why. An ext4 that remounted itself
//! read-only after an error cannot be made writable again while mounted (the kernel marks
//! it `emergency_ro`), hence the restart: that is what an operator has to do too.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hotline_tests::{
    assert_dense, assert_each_acked_once, ext4_loop_device, hotline_bin, run_tool, wait_with_deadline, Client,
    Durability, Server,
};
use hotline_wire::ErrorCode;

/// The image's size: room for RocksDB's files and its preallocated log.
const IMAGE_MB: u32 = 256;

/// How long a server on a read-only directory may take to give up.
const START_FAIL_WAIT: Duration = Duration::from_secs(30);

/// Under async durability, how long to wait after the last acknowledged send before the
/// file system fails (the background WAL fsync runs every 10 ms).
const ASYNC_FSYNC_WAIT: Duration = Duration::from_millis(200);

/// How long the test watches the idle server's CPU time on the failed log.
const IDLE_WATCH: Duration = Duration::from_secs(2);
/// Most CPU ticks (1/100 s on Linux) it may use meanwhile: a sweep a second costs a tick or
/// two; a writer retrying in a loop would burn the whole 200.
const IDLE_CPU_TICKS_MAX: u64 = 40;

/// The process's user + system CPU time so far, in clock ticks (`/proc/PID/stat`).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("read the server's stat");
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after_name = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

/// An ext4 file system in an image file on a loop device, mounted over a directory.
/// Dropping it unmounts (lazily, should something still hold it) and frees the device.
struct LoopFs {
    /// Holds the image; outside the mount.
    _image_dir: tempfile::TempDir,
    /// `/dev/loopN`.
    device: String,
    mount_point: PathBuf,
}

impl LoopFs {
    /// Makes the file system and mounts it over `mount_point` (which must exist).
    fn create(mount_point: &Path) -> Result<LoopFs, String> {
        let (image_dir, device) = ext4_loop_device(u64::from(IMAGE_MB))?;
        let fs = LoopFs {
            _image_dir: image_dir,
            device,
            mount_point: mount_point.to_owned(),
        };
        fs.mount(&["-o", "errors=remount-ro"])?;
        Ok(fs)
    }

    fn mount(&self, options: &[&str]) -> Result<(), String> {
        let mut args = options.to_vec();
        args.extend([self.device.as_str(), self.mount_point.to_str().ok_or("mount point")?]);
        run_tool("mount", &args).map(drop)
    }

    fn umount(&self) {
        run_tool("umount", &[self.mount_point.to_str().expect("UTF-8 mount point")])
            .expect("umount the loop file system");
    }

    /// The sysfs file that makes ext4 report an error, if this kernel has it.
    fn trigger_path(&self) -> PathBuf {
        let name = self.device.trim_start_matches("/dev/");
        PathBuf::from(format!("/sys/fs/ext4/{name}/trigger_fs_error"))
    }

    /// A file-system error: the journal aborts, the file system turns read-only.
    fn fail(&self) {
        fs::write(self.trigger_path(), "1").expect("write trigger_fs_error");
        let probe = self.mount_point.join("probe-after-the-error");
        let err = fs::File::create(&probe).expect_err("the file system is still writable after the error");
        assert_eq!(
            err.raw_os_error(),
            Some(libc::EROFS),
            "creating a file after the error: {err}"
        );
    }

    /// What an operator does after the error, the server stopped: check and mount again.
    fn repair(&self) {
        self.umount();
        // e2fsck exits 1 when it fixed something (the aborted journal's error flag).
        let status = Command::new("e2fsck")
            .args(["-f", "-y", &self.device])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run e2fsck");
        assert!(
            matches!(status.code(), Some(0 | 1)),
            "e2fsck could not repair the file system: {status}"
        );
        self.mount(&["-o", "errors=remount-ro"]).expect("mount after e2fsck");
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        // Best effort: a drop has nowhere to report to. A lazy umount succeeds even while a
        // killed server's files are being closed; a busy loop device is freed on last close.
        let _ = Command::new("umount").arg("-l").arg(&self.mount_point).status();
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
    }
}

/// A [`LoopFs`] over `dir` that can also fail on demand, or the reason it cannot be had.
fn failable_fs(dir: &Path) -> Result<LoopFs, String> {
    let fs = LoopFs::create(dir)?;
    if !fs.trigger_path().exists() {
        return Err(format!(
            "{} is missing: this kernel cannot inject ext4 errors",
            fs.trigger_path().display()
        ));
    }
    Ok(fs)
}

#[test]
#[ignore = "needs root (mounts a loop device)"]
fn a_read_only_data_dir_fails_sends_clearly_loses_nothing_and_recovers_after_a_restart() {
    fails_clearly_loses_nothing_and_recovers(Durability::Sync);
}

/// The same under `--durability async`, where a `SendAck` waits for the log write but not
/// its fsync: the write itself fails on the read-only file system, so nothing is
/// acknowledged after the error.
#[test]
#[ignore = "needs root (mounts a loop device)"]
fn a_read_only_data_dir_under_async_durability_loses_nothing_acknowledged() {
    fails_clearly_loses_nothing_and_recovers(Durability::Async);
}

fn fails_clearly_loses_nothing_and_recovers(durability: Durability) {
    let mut server = Server::options().durability(durability).stopped();
    let fs = failable_fs(server.data_dir()).unwrap_or_else(|why| panic!("cannot run here: {why}"));
    server.restart();
    let addr = server.addr();
    let (mut alice, _) = Client::new_user(addr, "alice");
    let (mut bob, b) = Client::new_user(addr, "bob");
    let mut acked = Vec::new();
    for n in 1..=20u64 {
        acked.push(
            alice
                .send(b.user_id, n, format!("before {n}").as_bytes())
                .expect("send before the error"),
        );
    }
    let delivered = bob.expect_delivers(acked.len());
    assert_dense(&delivered, 1, "bob's live deliveries before the error");

    if durability == Durability::Async {
        // Async acknowledges before the fsync, which follows within ~10 ms: what was acked
        // in that window before the file system failed is lost, as in a machine crash.
        std::thread::sleep(ASYNC_FSYNC_WAIT);
    }
    fs.fail();
    // Every send from now on is refused, clearly, and the sender's connection stays up.
    let mut n = 100;
    let mut errors = Vec::new();
    for _ in 0..5 {
        let batch: Vec<(u64, Vec<u8>)> = (n + 1..=n + 40)
            .map(|i| (i, format!("after {i}").into_bytes()))
            .collect();
        n += 40;
        let outcome = alice.send_pipelined(b.user_id, &batch, 8, |_, _| {});
        assert!(
            !outcome.closed,
            "the server closed the sender's connection on a read-only disk"
        );
        outcome.sort_into(&mut acked, &mut errors);
    }
    assert_eq!(errors.len(), 200, "sends on a read-only disk were acknowledged");
    assert!(
        errors.iter().all(|c| *c == ErrorCode::StorageUnavailable),
        "sends on a read-only disk must fail with StorageUnavailable: {errors:?}"
    );

    // The rest of the server still works: what is stored reads back, a device logs in again
    // by token, and the metrics say the log is failing.
    assert!(server.is_running(), "the server died on a read-only disk");
    let inbox = bob.sync_all(0);
    assert_dense(&inbox, 1, "bob's inbox read during the error");
    assert_eq!(inbox.len(), acked.len(), "bob's inbox during the error");
    let mut again = Client::connect(addr);
    let login = again.login_token(&b.token, "bob again");
    assert!(login.is_ok(), "a token login during the error: {login:?}");
    let metrics = server.scrape_metrics();
    eprintln!(
        "metrics during the error: storage healthy {:?}, failed commits {:?}",
        metrics.get("hotline_storage_healthy"),
        metrics.get("hotline_group_commits_failed_total")
    );
    assert_eq!(metrics.get("hotline_storage_healthy"), Some(&0.0), "the health gauge");
    assert!(
        metrics
            .get("hotline_group_commits_failed_total")
            .is_some_and(|v| *v >= 1.0),
        "failed commits are counted: {metrics:?}"
    );
    // Nothing spins on the failing log: an idle server stays idle.
    let pid = server.pid().expect("running");
    let cpu_before = cpu_ticks(pid);
    std::thread::sleep(IDLE_WATCH);
    let cpu_ticks_idle = cpu_ticks(pid) - cpu_before;
    eprintln!("CPU while idle on the failed log: {cpu_ticks_idle} ticks in {IDLE_WATCH:?}");
    assert!(
        cpu_ticks_idle <= IDLE_CPU_TICKS_MAX,
        "the idle server used {cpu_ticks_idle} CPU ticks in {IDLE_WATCH:?} on a failed log (spinning?)"
    );
    let stderr = server.stderr();
    let error_lines = stderr.lines().filter(|l| l.contains("ERROR")).count();
    for line in stderr.lines().filter(|l| l.contains("ERROR") || l.contains("WARN")) {
        eprintln!("server: {line}");
    }
    assert!(
        error_lines <= 10,
        "200 refused sends logged {error_lines} error lines (the log must not flood):\n{stderr}"
    );

    // The operator's repair: stop the server (it must exit, and cleanly), check, restart.
    drop((alice, bob, again));
    let status = server.terminate();
    eprintln!("the server exited with {status} on a read-only disk");
    assert!(
        status.success(),
        "SIGTERM on a read-only disk: {status}\n{}",
        server.stderr()
    );
    fs.repair();
    server.restart();
    let addr = server.addr();
    let (mut bob, _) = Client::resume(addr, &b.token);
    let inbox = bob.sync_all(0);
    assert_dense(&inbox, 1, "bob's inbox after the repair");
    assert_each_acked_once(&inbox, &acked, "bob's inbox after the repair");
    assert_eq!(inbox.len(), acked.len(), "bob's inbox holds only what was acknowledged");
    let (mut alice, _) = Client::login_new_device(addr, "alice", "after the repair");
    let ack = alice
        .send(b.user_id, n + 1, b"after the repair")
        .expect("a send after the repair");
    assert_eq!(ack.inbox_seq, inbox.len() as u64 + 1, "the next seq follows on");
    assert_eq!(server.scrape_metrics().get("hotline_storage_healthy"), Some(&1.0));
}

#[test]
#[ignore = "needs root (mounts a loop device)"]
fn starting_on_a_read_only_data_dir_fails_fast_naming_the_directory_and_the_cause() {
    let mut server = Server::options().stopped();
    let fs = LoopFs::create(server.data_dir()).unwrap_or_else(|why| panic!("cannot run here: {why}"));
    // A database to open: one start on the writable file system.
    server.restart();
    let _ = Client::new_user(server.addr(), "alice");
    assert!(server.terminate().success());
    fs.umount();
    fs.mount(&["-o", "ro"]).expect("mount read-only");

    let started = Instant::now();
    let child = Command::new(hotline_bin())
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--ws-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(server.data_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hotline serve");
    let output = wait_with_deadline(child, START_FAIL_WAIT);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!(
        "exit {} after {:?}; stderr:\n{stderr}",
        output.status,
        started.elapsed()
    );
    assert_eq!(output.status.code(), Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(!stdout.contains("listening"), "it must not start serving:\n{stdout}");
    let dir = server.data_dir().display().to_string();
    assert!(
        stderr.contains(&dir),
        "the error must name the directory {dir}:\n{stderr}"
    );
    assert!(
        stderr.contains("Read-only file system") && stderr.contains("read-write"),
        "the error must give the cause and the fix:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "a clear error, not a panic:\n{stderr}");
}
