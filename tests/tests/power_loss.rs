//! Power loss between an early delivery and its fsync. Under `--durability sync` the server
//! pushes a message to an online recipient before its fsync and acknowledges the sender only
//! after it. Here the fsync never reaches the disk: the data directory is an ext4 file
//! system on a loop device, mounted with a 60 s journal commit interval so nothing but the
//! server's own fsyncs makes data durable; the server's fsync after a delivery is held
//! (`HOTLINE_FAULT_HOLD_FSYNC`, a fault-injection file the writer waits on) while the
//! recipient gets the message *tentatively* (its durable watermark below it) and the sender
//! gets no `SendAck`; then the power is cut: ext4's shutdown ioctl without a log flush
//! (`EXT4_IOC_SHUTDOWN`, `EXT4_GOING_FLAGS_NOLOGFLUSH`, what xfstests' `godown` uses to
//! simulate a power failure) drops every unwritten page and fails all later I/O, so the
//! held fsync fails; the server is killed, the file system checked and mounted again: it
//! holds what the disk held at the cut.
//!
//! What must hold: nothing acknowledged is lost; the restarted server is a new epoch; a
//! recipient that follows the protocol's rule (drop entries above the durable watermark after
//! a login under another epoch) ends with exactly the server's inbox, although the lost
//! message's seq is reused by another message; and the sender's retry of the unacknowledged
//! message is appended once.
//!
//! Needs root and loop devices: `#[ignore]`d, run as root by `make test`
//! (`scripts/test-workspace`), failing with the reason where it cannot run.

use std::collections::BTreeMap;
use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hotline_tests::{ext4_loop_device, run_tool, Client, Durability, OwnedDeliver, OwnedEvent, Server};

/// The image's size: room for RocksDB's files and its preallocated log.
const IMAGE_MB: u64 = 256;
/// How long the test waits for what must arrive.
const WAIT: Duration = Duration::from_secs(10);
/// How long the sender is watched for a `SendAck` that must not come while the fsync is held.
const NO_ACK_WATCH: Duration = Duration::from_millis(500);
/// `EXT4_IOC_SHUTDOWN` (`_IOR('X', 125, __u32)`, the number XFS's `GOINGDOWN` has too).
const EXT4_IOC_SHUTDOWN: libc::c_ulong = 0x8004_587D;
/// Shut down without flushing the journal: a power cut.
const EXT4_GOING_FLAGS_NOLOGFLUSH: u32 = 2;

/// ext4 on a loop device, mounted over a directory, whose power can be cut. Dropping it
/// unmounts and frees the device.
struct PowerFs {
    _image_dir: tempfile::TempDir,
    device: String,
    mount_point: PathBuf,
}

impl PowerFs {
    fn create(mount_point: &Path) -> Result<PowerFs, String> {
        let (image_dir, device) = ext4_loop_device(IMAGE_MB)?;
        let fs = PowerFs {
            _image_dir: image_dir,
            device,
            mount_point: mount_point.to_owned(),
        };
        fs.mount()?;
        Ok(fs)
    }

    /// Mounts with a 60 s journal commit interval: within the test only an fsync makes
    /// anything durable (ext4's ordered mode would otherwise write data with the 5 s
    /// commit).
    fn mount(&self) -> Result<(), String> {
        let point = self.mount_point.to_str().ok_or("mount point")?;
        run_tool("mount", &["-o", "commit=60", &self.device, point]).map(drop)
    }

    /// The power goes: unwritten pages are dropped and every later I/O fails.
    fn cut_power(&self) {
        let dir = fs::File::open(&self.mount_point).expect("open the mount point");
        let flags: u32 = EXT4_GOING_FLAGS_NOLOGFLUSH;
        // SAFETY: EXT4_IOC_SHUTDOWN reads one u32 through the pointer, which points at
        // `flags`, alive for the call; `dir` is an open descriptor on the file system.
        let rc = unsafe { libc::ioctl(dir.as_raw_fd(), EXT4_IOC_SHUTDOWN, &flags as *const u32) };
        assert_eq!(rc, 0, "EXT4_IOC_SHUTDOWN: {}", std::io::Error::last_os_error());
    }

    /// The power comes back: check the file system (its journal is recovered) and mount it.
    fn power_on(&self) {
        let point = self.mount_point.to_str().expect("UTF-8 mount point");
        if run_tool("umount", &[point]).is_err() {
            run_tool("umount", &["-l", point]).expect("umount after the power cut");
        }
        // Exit 1: e2fsck fixed something (the journal of a shut-down file system).
        let status = Command::new("e2fsck")
            .args(["-f", "-y", &self.device])
            .output()
            .expect("run e2fsck");
        assert!(
            matches!(status.status.code(), Some(0 | 1)),
            "e2fsck could not repair the file system after the power cut: {}",
            String::from_utf8_lossy(&status.stdout)
        );
        self.mount().expect("mount after the power cut");
    }
}

impl Drop for PowerFs {
    fn drop(&mut self) {
        // Best effort: a drop has nowhere to report to.
        let _ = Command::new("umount").arg("-l").arg(&self.mount_point).status();
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
    }
}

/// A device's kept inbox under the protocol's rule: entries by seq, and the durable
/// watermark; after a login under another epoch, what lies above the watermark goes.
#[derive(Default)]
struct KeptInbox {
    entries: BTreeMap<u64, OwnedDeliver>,
    durable: u64,
    epoch: u64,
}

impl KeptInbox {
    fn keep(&mut self, d: OwnedDeliver) {
        self.entries.entry(d.inbox_seq).or_insert(d);
    }

    fn logged_in(&mut self, epoch: u64) {
        if self.epoch != 0 && epoch != self.epoch {
            let durable = self.durable;
            self.entries.retain(|&seq, _| seq <= durable);
        }
        self.epoch = epoch;
    }

    fn payloads(&self) -> Vec<Vec<u8>> {
        self.entries.values().map(|d| d.payload.clone()).collect()
    }
}

#[test]
#[ignore = "needs root (mounts a loop device)"]
fn a_power_loss_between_early_delivery_and_fsync_loses_nothing_acknowledged_and_the_epoch_rule_heals() {
    let hold_dir = tempfile::tempdir().expect("a directory for the hold file");
    let hold = hold_dir.path().join("hold-fsync");
    let mut server = Server::options()
        .durability(Durability::Sync)
        .cores(1)
        .env("HOTLINE_FAULT_HOLD_FSYNC", hold.to_str().expect("UTF-8 path"))
        .stopped();
    let disk = PowerFs::create(server.data_dir()).unwrap_or_else(|why| panic!("cannot run here: {why}"));
    server.restart();
    let addr = server.addr();
    let (mut alice, _) = Client::new_user(addr, "alice");
    let (carol, _) = Client::new_user(addr, "carol");
    let (mut bob, b) = Client::new_user(addr, "bob");
    let mut kept = KeptInbox::default();
    kept.logged_in(b.epoch);

    // A message acknowledged and durable before anything goes wrong.
    alice.send(b.user_id, 1, b"m1").expect("m1 is acknowledged");
    kept.keep(bob.expect_deliver());
    kept.durable = bob.wait_durable(1, WAIT);
    assert_eq!(kept.durable, 1, "m1 is durable");
    bob.ack_confirmed(1);

    // The next fsync is held; m2 is written to the page cache and delivered early.
    fs::write(&hold, b"").expect("create the hold file");
    let m2_request = alice.send_request(b.user_id, 2, b"m2");
    let m2 = bob.expect_deliver();
    assert_eq!((m2.inbox_seq, m2.payload.as_slice()), (2, &b"m2"[..]));
    assert_eq!(
        bob.session().durable_seq(),
        1,
        "m2 arrived before its fsync: the watermark stays below it"
    );
    kept.keep(m2);
    kept.durable = bob.session().durable_seq();
    alice.expect_no_deliver(NO_ACK_WATCH);
    let acked_m2 = alice
        .queued()
        .iter()
        .any(|e| matches!(e, OwnedEvent::SendAck { request_id, .. } if *request_id == m2_request));
    assert!(!acked_m2, "m2 was acknowledged although its fsync cannot have happened");

    // Power cut: m2's pages are dropped, the held fsync then fails; the process dies.
    disk.cut_power();
    fs::remove_file(&hold).expect("release the held fsync");
    assert!(
        matches!(alice.try_send_reply(m2_request, 2), Some(Err(_)) | None),
        "m2 must not be acknowledged once its fsync failed"
    );
    server.kill9();
    drop((alice, carol, bob));
    disk.power_on();
    server.restart();
    let addr = server.addr();

    // Bob comes back under a new epoch and drops what was not durable.
    let (mut bob, again) = Client::resume(addr, &b.token);
    assert_eq!(again.epoch, b.epoch + 1, "a restart is a new epoch");
    assert_eq!(again.inbox_seq, 1, "m2 never reached the disk");
    assert_eq!(again.device_cursor, 1);
    kept.logged_in(again.epoch);
    assert_eq!(kept.payloads(), [b"m1".to_vec()], "the rule drops the tentative m2");

    // Carol's message takes seq 2, the seq m2 had: a client that kept m2 would now hold the
    // wrong message there.
    let (mut carol, _) = Client::login_new_device(addr, "carol", "after");
    carol.send(b.user_id, 3, b"m3").expect("m3 is acknowledged");
    let m3 = bob.expect_deliver();
    assert_eq!((m3.inbox_seq, m3.payload.as_slice()), (2, &b"m3"[..]));
    kept.keep(m3);

    // Alice retries m2 (never acknowledged): appended once, after m3.
    let (mut alice, _) = Client::login_new_device(addr, "alice", "after");
    alice.send(b.user_id, 2, b"m2").expect("the retried m2 is acknowledged");
    kept.keep(bob.expect_deliver());
    kept.durable = bob.wait_durable(3, WAIT);
    assert_eq!(kept.durable, 3);

    let inbox = bob.sync_all(0);
    let server_payloads: Vec<Vec<u8>> = inbox.iter().map(|d| d.payload.clone()).collect();
    assert_eq!(server_payloads, [b"m1".to_vec(), b"m3".to_vec(), b"m2".to_vec()]);
    assert_eq!(kept.payloads(), server_payloads, "bob's kept inbox is the server's");
    drop(disk);
}
