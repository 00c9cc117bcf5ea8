//! Faults injected into a running server, and what it does under each: an fsync that fails
//! once (the disk otherwise fine; a full disk, a read-only one and a power cut are in
//! `disk_full.rs`, `read_only_disk.rs` and `power_loss.rs`), a helper thread that panics,
//! and a core whose thread stalls. The fsync fails in the kernel, through a pass-through
//! FUSE file system over the data directory ([`FsyncFaultFs`]); the other two come from the
//! server's own fault hooks (`HOTLINE_FAULT_*`, read once at start, unset in production).

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use hotline_tests::{
    assert_dense, assert_each_acked_once, Client, Durability, FsyncFaultFs, LoggedIn, OwnedEvent, Server,
};
use hotline_wire::{ErrorCode, SendAck};

/// A helper job that panics (here a password login of the username the fault hook names)
/// answers its requester `Internal`, is counted, and costs nothing else: more panics than
/// there are helper threads later, the other users still register (another helper job),
/// log in and chat, and the counter says how many panicked.
#[test]
fn a_helper_job_that_panics_answers_internal_and_the_server_goes_on() {
    const HELPERS: usize = 2;
    let server = Server::options()
        .arg("--helper-threads")
        .arg(HELPERS.to_string())
        .env("HOTLINE_FAULT_HELPER_PANIC_USERNAME", "mallory")
        .start();
    let addr = server.addr();
    Client::register_user(addr, "mallory");
    let panics = HELPERS as u64 * 3;
    for attempt in 0..panics {
        let mut c = Client::connect(addr);
        assert_eq!(
            c.login_password("mallory", &Client::password_for("mallory"), "laptop")
                .map(|l| l.user_id),
            Err(ErrorCode::Internal),
            "attempt {attempt}"
        );
    }
    let (mut alice, _) = Client::new_user(addr, "alice");
    let (mut bob, b) = Client::new_user(addr, "bob");
    alice.send(b.user_id, 1, b"still here").expect("send after the panics");
    assert_eq!(bob.expect_deliver().payload, b"still here");
    let metrics = server.scrape_metrics();
    assert_eq!(metrics.get("hotline_helper_panics_total"), Some(&(panics as f64)));
}

/// How long the fsync test waits for what must arrive.
const WAIT: Duration = Duration::from_secs(10);
/// How long a sender is watched for a `SendAck` that must not come while its fsync is held.
const NO_ACK_WATCH: Duration = Duration::from_millis(500);
/// Well under what a read waits for its entries to be durable (`READ_SYNC_WAIT_MS`, 10 s, in
/// `engine/src/helper.rs`): after a failed fsync, the durable point cannot move, and a read
/// is refused at once instead of holding a helper thread for the whole wait.
const READ_REFUSAL_WAIT: Duration = Duration::from_secs(2);

/// Whether the reply to `request_id` has arrived (and waits, queued, to be taken).
fn answered(client: &Client, request_id: u64) -> bool {
    client
        .queued()
        .iter()
        .any(|e| e.request_id() == request_id && !matches!(e, OwnedEvent::Deliver(_)))
}

/// A server whose data directory is an [`FsyncFaultFs`]. Dropped, it kills the server,
/// then unmounts its file system (so the server's temporary directory can go), then the
/// backing directory goes.
struct OnFaultyFsync {
    server: Server,
    disk: FsyncFaultFs,
    _backing: tempfile::TempDir,
}

impl Drop for OnFaultyFsync {
    fn drop(&mut self) {
        if self.server.is_running() {
            self.server.kill9();
        }
        self.disk.unmount();
    }
}

/// A `--durability sync` server on an [`FsyncFaultFs`], its early-delivery fsyncs held
/// while `hold` exists (`HOTLINE_FAULT_HOLD_FSYNC`), started.
fn on_faulty_fsync(hold: &Path) -> OnFaultyFsync {
    let server = Server::options()
        .durability(Durability::Sync)
        .arg("--helper-threads")
        .arg("2")
        .env("HOTLINE_FAULT_HOLD_FSYNC", hold.to_str().expect("UTF-8 path"))
        .stopped();
    let backing = tempfile::tempdir().expect("a backing directory");
    let disk =
        FsyncFaultFs::mount(backing.path(), server.data_dir()).unwrap_or_else(|why| panic!("cannot run here: {why}"));
    let mut setup = OnFaultyFsync {
        server,
        disk,
        _backing: backing,
    };
    setup.server.restart();
    setup
}

/// An fsync that fails once, the disk fine before and after (a transient I/O error; the
/// kernel answers `EIO` to RocksDB's own fdatasync of the log). The message whose group
/// commit it covered was delivered early, tentatively, and is never acknowledged: its
/// sender gets `StorageUnavailable` and the recipient's durable watermark never covers it.
/// After it every write is refused, although the disk works again (the kernel may have
/// dropped the pages the failed fsync did not write, so a later fsync proves nothing), reads
/// that must wait for durability are refused, and the health gauge drops; a restart
/// recovers the log: everything acknowledged is there exactly once, the sender's retry of
/// the failed message is stored once, and writes work again.
#[test]
#[ignore = "needs root (mounts a FUSE file system)"]
fn an_fsync_that_fails_once_acknowledges_nothing_it_covered_and_refuses_writes_until_a_restart() {
    let hold_dir = tempfile::tempdir().expect("a directory for the hold file");
    let hold = hold_dir.path().join("hold-fsync");
    let mut setup = on_faulty_fsync(&hold);
    let addr = setup.server.addr();
    let (mut alice, a) = Client::new_user(addr, "alice");
    let (mut bob, b) = Client::new_user(addr, "bob");
    let acked: Vec<_> = (1..=10u64)
        .map(|n| {
            alice
                .send(b.user_id, n, format!("before {n}").as_bytes())
                .expect("a send before the fault")
        })
        .collect();
    assert_dense(
        &bob.expect_delivers(acked.len()),
        1,
        "bob's deliveries before the fault",
    );
    assert_eq!(bob.wait_durable(10, WAIT), 10, "everything before the fault is durable");

    // The next fsync is held: the message goes out to bob early, tentatively.
    fs::write(&hold, b"").expect("create the hold file");
    let failed = alice.send_request(b.user_id, 11, b"unacknowledged");
    let early = bob.expect_deliver();
    assert_eq!(
        (early.inbox_seq, early.payload.as_slice()),
        (11, &b"unacknowledged"[..])
    );
    alice.expect_no_deliver(NO_ACK_WATCH);
    assert!(!answered(&alice, failed), "answered before its fsync");
    // Armed, released: the log's fsync fails in the kernel.
    setup.disk.fail_next_fsync(".log");
    fs::remove_file(&hold).expect("release the held fsync");
    assert_eq!(
        alice.try_send_reply(failed, 11).map(|r| r.map(drop)),
        Some(Err(ErrorCode::StorageUnavailable)),
        "the send whose fsync failed must not be acknowledged"
    );
    let failed_fsyncs = setup.disk.failed_fsyncs();
    assert!(
        matches!(failed_fsyncs.as_slice(), [log] if log.extension() == Some("log".as_ref())),
        "one fsync of the write-ahead log failed: {failed_fsyncs:?}"
    );
    assert_eq!(
        bob.session().durable_seq(),
        10,
        "the watermark never covers the failed commit"
    );

    refused_after_a_failed_fsync(&mut setup.server, (&mut alice, &a), (&mut bob, &b));

    // The operator restarts the server (the disk is fine): the log is recovered.
    drop((alice, bob));
    let status = setup.server.terminate();
    let stderr = setup.server.stderr();
    for line in stderr.lines().filter(|l| l.contains("ERROR") || l.contains("WARN")) {
        eprintln!("server: {line}");
    }
    assert!(status.success(), "SIGTERM after a failed fsync: {status}\n{stderr}");
    assert!(
        stderr.contains("the log's fsync failed"),
        "the failed fsync is logged as such:\n{stderr}"
    );
    setup.server.restart();
    recovered_after_a_failed_fsync(&setup.server, &acked, &b);
}

/// After the failed fsync: every write is refused at once (a send, the recipient's own
/// send, a registration); reads whose answer must be durable (an inbox read, a token login)
/// wait for a durable point that no longer moves and are refused; the live connections stay
/// up; the metrics say storage is unhealthy.
fn refused_after_a_failed_fsync(
    server: &mut Server,
    (alice, a): (&mut Client, &LoggedIn),
    (bob, b): (&mut Client, &LoggedIn),
) {
    let addr = server.addr();
    for n in 12..=16u64 {
        assert_eq!(
            alice.send(b.user_id, n, b"refused").map(drop),
            Err(ErrorCode::StorageUnavailable),
            "send {n} after the failed fsync"
        );
    }
    assert_eq!(
        bob.send(a.user_id, 1, b"refused").map(drop),
        Err(ErrorCode::StorageUnavailable)
    );
    assert_eq!(
        Client::connect(addr).register("carol", &Client::password_for("carol")),
        Err(ErrorCode::StorageUnavailable),
        "a registration is a write"
    );
    bob.expect_no_deliver(NO_ACK_WATCH);

    let started = Instant::now();
    bob.set_wait(READ_REFUSAL_WAIT);
    std::thread::scope(|s| {
        let login = s.spawn(|| {
            let mut again = Client::connect(addr);
            again.set_wait(READ_REFUSAL_WAIT);
            again.login_token(&b.token, "bob again").map(|l| l.user_id)
        });
        assert_eq!(
            bob.try_sync(0, 100).map(drop),
            Err(ErrorCode::StorageUnavailable),
            "an inbox read"
        );
        assert_eq!(
            login.join().expect("the login thread"),
            Err(ErrorCode::StorageUnavailable),
            "a token login"
        );
    });
    assert!(
        started.elapsed() < READ_REFUSAL_WAIT,
        "reads after the failed fsync were refused only after {:?}",
        started.elapsed()
    );
    bob.set_wait(WAIT);
    assert!(server.is_running(), "the server died after a failed fsync");
    let metrics = server.scrape_metrics();
    assert_eq!(metrics.get("hotline_storage_healthy"), Some(&0.0), "the health gauge");
    assert!(
        metrics
            .get("hotline_group_commits_failed_total")
            .is_some_and(|v| *v >= 1.0),
        "the failed commit is counted: {metrics:?}"
    );
}

/// After the restart: a new epoch; every acknowledged message exactly once, then at most
/// the unacknowledged one (its write reached the file; only its fsync failed), nothing that
/// was refused; the retry of the unacknowledged send is stored once; writes work again.
fn recovered_after_a_failed_fsync(server: &Server, acked: &[SendAck], b: &LoggedIn) {
    let addr = server.addr();
    let (mut bob, again) = Client::resume(addr, &b.token);
    assert_eq!(again.epoch, b.epoch + 1, "a restart is a new epoch");
    let inbox = bob.sync_all(0);
    assert_dense(&inbox, 1, "bob's inbox after the restart");
    assert_each_acked_once(&inbox, acked, "bob's inbox after the restart");
    let unacknowledged: Vec<&[u8]> = inbox[acked.len()..].iter().map(|d| d.payload.as_slice()).collect();
    eprintln!(
        "the unacknowledged message survived the restart: {}",
        !unacknowledged.is_empty()
    );
    assert!(
        unacknowledged.is_empty() || unacknowledged == [&b"unacknowledged"[..]],
        "only what was acknowledged, and perhaps the unacknowledged message: {unacknowledged:?}"
    );

    let (mut alice, _) = Client::login_new_device(addr, "alice", "after the restart");
    let retry = alice
        .send(b.user_id, 11, b"unacknowledged")
        .expect("the retry is acknowledged");
    assert_eq!(
        retry.inbox_seq, 11,
        "the retry is stored once, after the acknowledged ones"
    );
    let after = alice
        .send(b.user_id, 17, b"after the restart")
        .expect("a write after the restart");
    assert_eq!(after.inbox_seq, 12);
    let payloads: Vec<Vec<u8>> = bob.sync_all(0).into_iter().map(|d| d.payload).collect();
    let expected: Vec<Vec<u8>> = (1..=10)
        .map(|n| format!("before {n}").into_bytes())
        .chain([b"unacknowledged".to_vec(), b"after the restart".to_vec()])
        .collect();
    assert_eq!(payloads, expected, "bob's inbox after the retry");
    assert_eq!(server.scrape_metrics().get("hotline_storage_healthy"), Some(&1.0));
}

/// How long the injected stall lasts: several times [`PROMPT`].
const STALL: Duration = Duration::from_secs(4);
/// How long a message between two users of the running core may take, acknowledged and
/// delivered, while the other core stalls (it takes milliseconds; a server that the stall
/// blocked as a whole would take the stall's seconds).
const PROMPT: Duration = Duration::from_secs(1);
/// How long the test waits for a requested stall to start (a core's sweeper looks for the
/// request once a second).
const STALL_START_WAIT: Duration = Duration::from_secs(5);

/// The home core of `user_id` with `cores` cores: `engine/src/mailbox.rs`'s `home_core`
/// (the same Fibonacci hash; the tests do not link the engine).
fn home_core(user_id: u64, cores: usize) -> usize {
    ((user_id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % cores as u64) as usize
}

/// Asks the server to stall `core` for `duration` (`HOTLINE_FAULT_STALL_CORE`'s file,
/// written whole) and returns once the core took the request, when its stall began.
fn stall_core(request: &Path, core: usize, duration: Duration) -> Instant {
    let partial = request.with_extension("partial");
    fs::write(&partial, format!("{core} {}", duration.as_millis())).expect("write the stall request");
    fs::rename(&partial, request).expect("put the stall request in place");
    let deadline = Instant::now() + STALL_START_WAIT;
    while request.exists() {
        assert!(
            Instant::now() < deadline,
            "core {core} did not take the stall request within {STALL_START_WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    Instant::now()
}

/// Registers users until two are homed on each of the two cores: `[on core 0, on core 1]`.
fn two_users_per_core(addr: std::net::SocketAddr) -> [Vec<(Client, LoggedIn)>; 2] {
    let mut homed: [Vec<_>; 2] = [Vec::new(), Vec::new()];
    for n in 0..64 {
        let (client, login) = Client::new_user(addr, &format!("user{n}"));
        let users = &mut homed[home_core(login.user_id, 2)];
        if users.len() < 2 {
            users.push((client, login));
        }
        if homed.iter().all(|users| users.len() == 2) {
            return homed;
        }
    }
    panic!("64 users and not two on each core: is home_core still the engine's?");
}

/// Sends message `client_msg_id` from `from` to `to` and returns how long it took to be
/// both acknowledged and delivered; panics past [`PROMPT`].
fn one_message(from: &mut Client, to: &mut Client, client_msg_id: u64) -> Duration {
    let to_id = to.identity().expect("logged in").0;
    let payload = format!("message {client_msg_id} from {:?}", from.identity());
    let sent = Instant::now();
    from.send(to_id, client_msg_id, payload.as_bytes())
        .expect("a send on the running core");
    let got = to
        .next_deliver(PROMPT)
        .expect("a delivery on the running core within PROMPT");
    assert_eq!(got.payload, payload.as_bytes());
    sent.elapsed()
}

/// A core whose thread stalls (4 s, injected through `HOTLINE_FAULT_STALL_CORE` from its
/// sweeper) stalls only its own users: meanwhile two users of the other core exchange
/// messages, each acknowledged and delivered within 1 s, and messages to a user of the
/// stalled core are acknowledged as promptly; once it resumes, that user gets them all, in
/// order, once each, and a request its other user sent during the stall is answered.
#[test]
fn a_stalled_core_delays_only_its_own_users_and_they_lose_nothing() {
    // Core 0 runs on, core 1 stalls.
    const STALLED: usize = 1;
    let stall_dir = tempfile::tempdir().expect("a directory for the stall request");
    let request = stall_dir.path().join("stall-core");
    let server = Server::options()
        .cores(2)
        .env("HOTLINE_FAULT_STALL_CORE", request.to_str().expect("UTF-8 path"))
        .start();
    let addr = server.addr();
    let [on_running, on_stalled] = two_users_per_core(addr);
    let [(mut alice, a), (mut bob, _)] = <[_; 2]>::try_from(on_running).expect("two users");
    let [(mut carol, c), (mut dave, _)] = <[_; 2]>::try_from(on_stalled).expect("two users");
    // Everyone's connection is on its home core and answers.
    alice.send(c.user_id, 1, b"warm-up").expect("a send before the stall");
    assert_eq!(carol.expect_deliver().payload, b"warm-up");
    dave.send(a.user_id, 1, b"warm-up").expect("a send before the stall");
    assert_eq!(alice.expect_deliver().payload, b"warm-up");
    let carol_head = carol.delivered_seq();

    let stalled_at = stall_core(&request, STALLED, STALL);
    let dave_request = dave.send_request(a.user_id, 2, b"sent during the stall");
    for n in 2..=6u64 {
        let sent = Instant::now();
        alice
            .send(c.user_id, n, format!("to carol {n}").as_bytes())
            .expect("a send to a user of the stalled core");
        assert!(
            sent.elapsed() < PROMPT,
            "the SendAck for carol's message {n} took {:?}",
            sent.elapsed()
        );
    }
    let mut slowest = Duration::ZERO;
    for n in 101..=110u64 {
        slowest = slowest
            .max(one_message(&mut alice, &mut bob, n))
            .max(one_message(&mut bob, &mut alice, n));
    }
    eprintln!("while core {STALLED} stalled, the slowest message on the other core took {slowest:?}");
    assert!(slowest < PROMPT, "a message on the running core took {slowest:?}");
    assert!(
        carol.next_deliver(Duration::from_millis(50)).is_none(),
        "carol's core is stalled: nothing reaches her yet"
    );
    assert!(
        dave.next_deliver(Duration::from_millis(50)).is_none() && !answered(&dave, dave_request),
        "dave's core is stalled: his send is not answered yet"
    );
    let during = stalled_at.elapsed();
    assert!(
        during < STALL,
        "the exchange took {during:?}: it did not all happen during the stall"
    );

    // The stalled core resumes: carol gets everything in order, once; dave's send is answered.
    let first = carol.expect_deliver();
    let resumed_after = stalled_at.elapsed();
    assert!(
        resumed_after >= STALL * 3 / 4,
        "carol got a message {resumed_after:?} into a {STALL:?} stall"
    );
    let mut to_carol = vec![first];
    to_carol.extend(carol.expect_delivers(4));
    assert_dense(&to_carol, carol_head + 1, "carol's deliveries after the stall");
    let payloads: Vec<Vec<u8>> = to_carol.into_iter().map(|d| d.payload).collect();
    let expected: Vec<Vec<u8>> = (2..=6).map(|n| format!("to carol {n}").into_bytes()).collect();
    assert_eq!(payloads, expected);
    carol.expect_no_deliver(Duration::from_millis(300));
    dave.try_send_reply(dave_request, 2)
        .expect("dave's connection is open")
        .expect("dave's send during the stall is acknowledged after it");
    assert_eq!(alice.expect_deliver().payload, b"sent during the stall");
    alice.expect_no_deliver(Duration::from_millis(300));
}
