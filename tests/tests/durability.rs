//! Durability: with `--durability sync`, whatever the server acknowledged survives `kill -9`
//! exactly once with dense seqs, and a retry after the restart is recognised. Also users
//! created offline with `hotline user add`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use hotline_tests::{
    assert_dense, numbered, payload, Client, Durability, LoggedIn, OwnedDeliver, Registration, Server,
};
use hotline_wire::{ErrorCode, SendAck};

/// Senders whose messages are all acknowledged before the crash.
const SENDERS: u64 = 3;
/// Messages each of them sends.
const PER_SENDER: u64 = 100;
/// Messages in the burst that the crash interrupts.
const BURST: u64 = 2_000;
/// Burst messages acknowledged before `kill -9`, so the crash lands mid-burst.
const BURST_ACKED_BEFORE_KILL: usize = 50;
/// Unanswered sends per connection.
const WINDOW: usize = 16;

/// Indexes an inbox by payload, failing on any payload stored twice.
fn by_payload(inbox: &[OwnedDeliver]) -> HashMap<&[u8], &OwnedDeliver> {
    let mut index = HashMap::with_capacity(inbox.len());
    for m in inbox {
        if let Some(earlier) = index.insert(m.payload.as_slice(), m) {
            panic!("a message is stored twice: {earlier:?} and {m:?}");
        }
    }
    index
}

#[test]
#[allow(clippy::too_many_lines, reason = "an end-to-end scenario, read top to bottom")]
fn every_acknowledged_message_survives_kill_9_exactly_once() {
    let mut server = Server::options().durability(Durability::Sync).cores(2).start();
    let addr = server.addr();
    let (recipient, r) = Client::new_user(addr, "recipient");
    let to = r.user_id;
    // Offline from here: everything is read back after the restart.
    drop(recipient);

    // Phase 1: a few senders at once, every message acknowledged.
    let acked: Vec<(LoggedIn, Vec<SendAck>)> = (0..SENDERS)
        .map(|i| {
            thread::spawn(move || {
                let (mut client, login) = Client::new_user(addr, &format!("sender{i}"));
                let acks = client.send_all(to, &numbered(&format!("s{i}"), 1..=PER_SENDER, 0), WINDOW);
                (login, acks)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().expect("a sender thread panicked"))
        .collect();

    // Phase 2: a burst, killed part way.
    let (mut burster, burster_login) = Client::new_user(addr, "burster");
    let burst = numbered("burst", 1..=BURST, 0);
    let burst_acked = Arc::new(AtomicUsize::new(0));
    let burst_thread = {
        let burst = burst.clone();
        let burst_acked = Arc::clone(&burst_acked);
        thread::spawn(move || {
            burster.send_pipelined(to, &burst, WINDOW, |_, reply| {
                if reply.is_ok() {
                    burst_acked.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while burst_acked.load(Ordering::SeqCst) < BURST_ACKED_BEFORE_KILL && !burst_thread.is_finished() {
        assert!(Instant::now() < deadline, "the burst made no progress in 30 s");
        thread::sleep(Duration::from_millis(1));
    }
    server.kill9();
    let interrupted = burst_thread.join().expect("the burst thread panicked");
    let burst_acks = interrupted.acks();
    assert!(
        interrupted.replies.iter().all(|(_, reply)| reply.is_ok()),
        "a burst send failed: {:?}",
        interrupted.replies.iter().find(|(_, reply)| reply.is_err())
    );
    eprintln!(
        "burst: {} of {BURST} acknowledged when kill -9 landed (connection closed: {})",
        burst_acks.len(),
        interrupted.closed
    );

    server.restart();
    let addr = server.addr();

    // The recipient resumes by token and reads the whole inbox.
    let (mut recipient, again) = Client::resume(addr, &r.token);
    assert_eq!(again.device_id, r.device_id, "the token survived the crash");
    let inbox = recipient.sync_all(0);
    assert_dense(&inbox, 1, "the recipient's inbox after kill -9");
    assert_eq!(again.inbox_seq, inbox.len() as u64, "LoginOk's head is the last seq");
    let stored = by_payload(&inbox);
    for (i, (login, acks)) in (0..).zip(&acked) {
        for (n, ack) in (1..).zip(acks) {
            let m = stored
                .get(payload(&format!("s{i}"), n, 0).as_slice())
                .unwrap_or_else(|| panic!("acknowledged message s{i}:{n} ({ack:?}) was lost"));
            assert_eq!(m.message_id, ack.message_id);
            assert_eq!(m.sender, login.user_id);
        }
    }
    for (n, ack) in &burst_acks {
        let m = stored
            .get(payload("burst", *n, 0).as_slice())
            .unwrap_or_else(|| panic!("acknowledged burst message {n} ({ack:?}) was lost"));
        assert_eq!(m.message_id, ack.message_id);
    }
    assert!(inbox.len() as u64 <= SENDERS * PER_SENDER + BURST);
    let caught_up = recipient.expect_delivers(inbox.len());
    assert_eq!(caught_up, inbox, "the catch-up push after restart matches Sync");

    // Each sender's own copies are there too, at the seqs their acks named.
    for (login, acks) in &acked {
        let (mut sender, _) = Client::resume(addr, &login.token);
        let own = sender.sync_all(0);
        assert_dense(&own, 1, "a sender's inbox after kill -9");
        assert_eq!(own.len() as u64, PER_SENDER);
        for ack in acks {
            let index = usize::try_from(ack.inbox_seq - 1).expect("a seq fits usize");
            assert_eq!(
                own[index].message_id, ack.message_id,
                "sender copy at seq {}",
                ack.inbox_seq
            );
        }
    }

    // A retry of an acknowledged message is recognised across the restart.
    let (first_login, first_acks) = &acked[0];
    let (mut sender, _) = Client::resume(addr, &first_login.token);
    let retried = sender.send(to, 1, &payload("s0", 1, 0)).expect("retry after restart");
    assert_eq!(
        (retried.message_id, retried.inbox_seq),
        (first_acks[0].message_id, first_acks[0].inbox_seq)
    );
    let head = recipient.sync(0, 1).inbox_seq;
    assert_eq!(head, inbox.len() as u64, "the retry stored nothing new");

    // The burst's client retries everything it sent, as a real client would: afterwards
    // every burst message is stored exactly once, and the acknowledged ones kept their ids.
    let (mut burster, _) = Client::resume(addr, &burster_login.token);
    let reacks = burster.send_all(to, &burst, WINDOW);
    for (n, ack) in &burst_acks {
        let index = usize::try_from(n - 1).expect("fits usize");
        assert_eq!(
            (reacks[index].message_id, reacks[index].inbox_seq),
            (ack.message_id, ack.inbox_seq),
            "burst message {n}"
        );
    }
    let mut burster_seqs: Vec<u64> = reacks.iter().map(|a| a.inbox_seq).collect();
    burster_seqs.sort_unstable();
    assert_eq!(
        burster_seqs,
        (1..=BURST).collect::<Vec<u64>>(),
        "the burster's inbox is dense"
    );
    let inbox = recipient.sync_all(0);
    assert_dense(&inbox, 1, "the recipient's inbox after the retries");
    assert_eq!(inbox.len() as u64, SENDERS * PER_SENDER + BURST);
    let stored = by_payload(&inbox);
    for n in 1..=BURST {
        assert!(
            stored.contains_key(payload("burst", n, 0).as_slice()),
            "burst message {n} missing after its retry"
        );
    }
}

#[test]
fn a_confirmed_ack_and_the_token_survive_kill_9() {
    let mut server = Server::options().durability(Durability::Sync).start();
    let (mut alice, _) = Client::new_user(server.addr(), "alice");
    let (mut bob, b) = Client::new_user(server.addr(), "bob");
    let acks = alice.send_all(b.user_id, &numbered("m", 1..=5, 0), 1);
    bob.expect_delivers(5);
    assert_eq!(bob.ack_confirmed(3), 3);
    server.kill9();
    server.restart();

    let (mut bob, again) = Client::resume(server.addr(), &b.token);
    assert_eq!(
        (again.device_id, again.inbox_seq, again.device_cursor),
        (b.device_id, 5, 3)
    );
    let rest = bob.expect_delivers(2);
    assert_dense(&rest, 4, "deliveries after the durable cursor");
    assert_eq!(rest[1].message_id, acks[4].message_id);
}

#[test]
fn users_added_offline_log_in_with_their_password() {
    let mut server = Server::options().registration(Registration::Closed).stopped();
    let carol_id = server.user_add("carol", "correct horse battery staple");
    assert_ne!(carol_id, 0);
    server.restart();

    let mut carol = Client::connect(server.addr());
    assert_eq!(
        carol.login_password("carol", "wrong horse", "laptop"),
        Err(ErrorCode::InvalidCredentials)
    );
    let login = carol
        .login_password("carol", "correct horse battery staple", "laptop")
        .expect("log in with the password given to `user add`");
    assert_eq!(login.user_id, carol_id);
    drop(carol);

    // On a data directory already in use, after a clean stop.
    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "SIGTERM exit status");
    let dave_id = server.user_add("dave", "dave's password");
    assert_ne!(dave_id, carol_id);
    server.restart();

    let (mut carol, _) = Client::resume(server.addr(), &login.token);
    let ack = carol.send(dave_id, 1, b"welcome, dave").expect("send to dave");
    let mut dave = Client::connect(server.addr());
    let d = dave
        .login_password("dave", "dave's password", "phone")
        .expect("dave logs in");
    assert_eq!(d.user_id, dave_id);
    let delivered = dave.expect_deliver();
    assert_eq!((delivered.message_id, delivered.sender), (ack.message_id, carol_id));
}

/// Early delivery (the default under `sync`): a recipient learns how far its inbox is
/// durable from each `Deliver` (or, once traffic stops, from the sweep's `Durable` push), so
/// it can acknowledge everything; each start is a new epoch; and with `--early-delivery
/// off` every delivery is durable when it arrives.
#[test]
fn the_durable_watermark_reaches_every_delivery_and_every_start_is_a_new_epoch() {
    const MESSAGES: u64 = 20;
    let wait = Duration::from_secs(10);
    let mut server = Server::options().durability(Durability::Sync).start();
    let addr = server.addr();
    let (mut alice, a) = Client::new_user(addr, "alice");
    let (mut bob, b) = Client::new_user(addr, "bob");
    assert!(
        a.epoch >= 1 && b.epoch == a.epoch,
        "one epoch per run: {} {}",
        a.epoch,
        b.epoch
    );
    for n in 1..=MESSAGES {
        alice.send(b.user_id, n, &payload("early", n, 0)).expect("send");
    }
    let got = bob.expect_delivers(MESSAGES as usize);
    assert_dense(&got, 1, "bob's live deliveries");
    assert_eq!(bob.delivered_seq(), MESSAGES);
    assert!(bob.session().durable_seq() <= MESSAGES);
    assert_eq!(
        bob.wait_durable(MESSAGES, wait),
        MESSAGES,
        "every sent message was acknowledged, so bob hears it is durable"
    );
    assert_eq!(bob.session().ackable_seq(), MESSAGES);
    assert_eq!(bob.ack_confirmed(MESSAGES), MESSAGES);
    drop((alice, bob));

    let _ = server.terminate();
    server.restart();
    let (_, again) = Client::resume(server.addr(), &b.token);
    assert_eq!(again.epoch, a.epoch + 1, "a restart is a new epoch");
    assert_eq!(again.device_cursor, MESSAGES);
    drop(server);

    let server = Server::options()
        .durability(Durability::Sync)
        .arg("--early-delivery=off")
        .start();
    let addr = server.addr();
    let (mut alice, _) = Client::new_user(addr, "alice");
    let (mut bob, b) = Client::new_user(addr, "bob");
    for n in 1..=MESSAGES {
        alice.send(b.user_id, n, &payload("late", n, 0)).expect("send");
        let d = bob.expect_deliver();
        assert_eq!(
            bob.session().durable_seq(),
            d.inbox_seq,
            "without early delivery a Deliver is durable when it arrives"
        );
    }
}
