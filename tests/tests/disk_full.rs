//! A full disk: sends fail with `Error{StorageUnavailable}`, nothing already acknowledged is
//! lost, and the server recovers once space returns. The data directory is a small tmpfs
//! mounted by the test, so it needs root: it is `#[ignore]`d, `make test` runs it with
//! `--ignored` as root, and run where it cannot mount it fails saying why.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hotline_tests::{assert_dense, assert_each_acked_once, Client, Server};
use hotline_wire::ErrorCode;

/// The tmpfs's size: room for RocksDB's files, small enough to fill in a blink.
const TMPFS_MB: u32 = 256;

/// Unmounts the tmpfs when dropped (after the server, declared later, has stopped).
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        // Best effort: a leftover mount under /tmp only costs that tmpfs's memory.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount_tmpfs(dir: &Path) -> Result<Mount, String> {
    // SAFETY: geteuid has no preconditions and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root: cannot mount a size-limited tmpfs".into());
    }
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={TMPFS_MB}m"), "tmpfs"])
        .arg(dir)
        .status()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if !status.success() {
        return Err(format!("mount -t tmpfs failed ({status}): no mount privilege here?"));
    }
    Ok(Mount(dir.to_owned()))
}

/// Writes zeros into `path` until the file system is full.
fn fill(path: &Path) {
    let mut f = File::create(path).expect("create the filler file");
    let chunk = vec![0u8; 1 << 20];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
}

#[test]
#[ignore = "needs root (mounts a tmpfs)"]
fn a_full_disk_fails_sends_clearly_loses_nothing_and_recovers() {
    let mut server = Server::options().stopped();
    let _mount = mount_tmpfs(server.data_dir()).unwrap_or_else(|why| panic!("cannot run here: {why}"));
    server.restart();
    let addr = server.addr();
    let (mut alice, _) = Client::new_user(addr, "alice");
    let (mut bob, b) = Client::new_user(addr, "bob");
    let mut acked = Vec::new();
    for n in 1..=20u64 {
        acked.push(
            alice
                .send(b.user_id, n, format!("before {n}").as_bytes())
                .expect("send with space"),
        );
    }

    let filler = server.data_dir().join("filler");
    fill(&filler);
    // RocksDB preallocates its write-ahead log, so it takes tens of MB more to run out.
    let mut n = 100;
    let mut errors = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while errors.is_empty() && Instant::now() < deadline {
        let batch: Vec<(u64, Vec<u8>)> = (n + 1..=n + 200).map(|i| (i, vec![b'x'; 60 << 10])).collect();
        n += 200;
        let outcome = alice.send_pipelined(b.user_id, &batch, 16, |_, _| {});
        assert!(
            !outcome.closed,
            "the server closed the sender's connection on a full disk"
        );
        outcome.sort_into(&mut acked, &mut errors);
    }
    assert!(
        !errors.is_empty(),
        "the disk is full, yet every send succeeded for 30 s"
    );
    assert!(
        errors.iter().all(|c| *c == ErrorCode::StorageUnavailable),
        "sends on a full disk must fail with StorageUnavailable: {errors:?}"
    );
    eprintln!("{} acked, then {} refused on the full disk", acked.len(), errors.len());
    assert_eq!(
        server.scrape_metrics().get("hotline_storage_healthy"),
        Some(&0.0),
        "the health gauge on a full disk"
    );

    fs::remove_file(&filler).expect("free the space");
    let deadline = Instant::now() + Duration::from_secs(10);
    let recovered = loop {
        n += 1;
        match alice.send(b.user_id, n, b"after") {
            Ok(ack) => break ack,
            Err(code) => {
                assert!(
                    Instant::now() < deadline,
                    "still failing 10 s after space returned: {code:?}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    acked.push(recovered);
    assert_eq!(
        server.scrape_metrics().get("hotline_storage_healthy"),
        Some(&1.0),
        "the health gauge once space returned"
    );

    let inbox = bob.sync_all(0);
    assert_dense(&inbox, 1, "bob's inbox after the full disk");
    assert_each_acked_once(&inbox, &acked, "bob's inbox after the full disk");
    // And it survives a restart.
    server.kill9();
    server.restart();
    let (mut bob, _) = Client::resume(server.addr(), &b.token);
    let again = bob.sync_all(0);
    assert_eq!(again.len(), inbox.len(), "after a restart");
}
