//! Admission control by queueing delay (`--shed-queue-delay-ms`, engine/src/admission.rs):
//! once requests have queued longer than the bound for a sustained interval, new sends are
//! refused at once with `Overloaded` and a `retry_after_ms`, instead of waiting behind
//! work the server cannot finish in time; logins and acks are never refused for delay;
//! nothing accepted is lost; and sends are admitted again once the queue drains.
//!
//! The queue is made to stand still with the writer's fault hook `HOTLINE_FAULT_HOLD_FSYNC`
//! (while its file exists, each early-delivery fsync waits): the log stops committing, as
//! it would on a disk that stalls, and every later write queues behind it.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::time::{Duration, Instant};

use hotline_tests::{Client, OwnedEvent, Server};
use hotline_wire::ErrorCode;

/// How long the log stands still. Sends go out every [`SEND_INTERVAL`] meanwhile, so the
/// server's admission gate sees the delay grow continuously.
const HOLD: Duration = Duration::from_millis(600);
const SEND_INTERVAL: Duration = Duration::from_millis(3);
/// The bound under test: the gate sheds after 100 ms (`SHED_INTERVAL_MS_MIN`) of standing delay.
const SHED_QUEUE_DELAY_MS: u32 = 5;

/// What one stall did to a stream of sends.
struct Stall {
    /// `(request_id, client_msg_id)` of every send made during the stall.
    sent: Vec<(u64, u64)>,
    /// Request ids answered `Overloaded` while the log still stood still, with their
    /// `retry_after_ms`.
    shed: HashMap<u64, u32>,
    /// Replies other than `Overloaded` that came while the log stood still.
    other_replies_during_hold: Vec<String>,
    /// A token login started while the log stood still (it waits for the log: what it
    /// answers must be durable), joined after.
    login_during_hold: Option<std::thread::JoinHandle<u64>>,
    server: Server,
    alice: Client,
    bob: Client,
    bob_user_id: u64,
}

/// Stalls the log of a one-core server run with `--shed-queue-delay-ms bound_ms`, sending
/// from alice to bob throughout, and starts logging carol back in meanwhile.
fn stall(bound_ms: u32) -> Stall {
    let hold_dir = tempfile::tempdir().expect("a directory for the hold file");
    let hold = hold_dir.path().join("hold-fsync");
    let server = Server::options()
        .cores(1)
        .arg("--shed-queue-delay-ms")
        .arg(bound_ms.to_string())
        .env("HOTLINE_FAULT_HOLD_FSYNC", hold.to_str().expect("UTF-8 path"))
        .start();
    let addr = server.addr();
    let (mut alice, _) = Client::new_user(addr, "alice");
    let (mut bob, b) = Client::new_user(addr, "bob");
    let (carol, c) = Client::new_user(addr, "carol");
    drop(carol);
    alice.send(b.user_id, 1, b"before").expect("a send before the stall");
    assert_eq!(bob.expect_deliver().payload, b"before");

    fs::write(&hold, b"").expect("create the hold file");
    let started = Instant::now();
    let mut sent = Vec::new();
    let mut login_during_hold = None;
    let mut client_msg_id = 100;
    while started.elapsed() < HOLD {
        sent.push((alice.send_request(b.user_id, client_msg_id, b"during"), client_msg_id));
        client_msg_id += 1;
        alice.drain_for(SEND_INTERVAL);
        if login_during_hold.is_none() && started.elapsed() > HOLD / 2 {
            let token = c.token.clone();
            login_during_hold = Some(std::thread::spawn(move || Client::resume(addr, &token).1.user_id));
        }
    }
    // Everything alice has by now came while the log stood still.
    let mut shed = HashMap::new();
    let mut other_replies_during_hold = Vec::new();
    for event in alice.queued() {
        match event {
            OwnedEvent::Error {
                request_id,
                code: ErrorCode::Overloaded,
                retry_after_ms,
                ..
            } => {
                shed.insert(*request_id, *retry_after_ms);
            }
            OwnedEvent::Deliver(_) => {}
            other => other_replies_during_hold.push(format!("{other:?}")),
        }
    }
    fs::remove_file(&hold).expect("release the log");
    Stall {
        sent,
        shed,
        other_replies_during_hold,
        login_during_hold,
        server,
        alice,
        bob,
        bob_user_id: b.user_id,
    }
}

#[test]
fn a_log_that_stands_still_sheds_new_sends_at_once_and_admits_again_once_it_drains() {
    let mut s = stall(SHED_QUEUE_DELAY_MS);
    assert!(
        s.other_replies_during_hold.is_empty(),
        "no send can be acknowledged while its fsync is held: {:?}",
        s.other_replies_during_hold
    );
    assert!(
        !s.shed.is_empty(),
        "{} sends over {HOLD:?} of a log standing still, none shed",
        s.sent.len()
    );
    assert!(
        s.shed.len() < s.sent.len(),
        "the first sends queue: the gate waits for a standing delay"
    );
    for (request_id, retry_after_ms) in &s.shed {
        assert!(
            *retry_after_ms > 0,
            "Overloaded for request {request_id} says when to retry"
        );
    }
    // The gate sheds from the interval on: the sends of the stall's first 100 ms queue, and
    // (the gate holds once it sheds) at least half of the rest are refused at once.
    let first_shed = s
        .sent
        .iter()
        .position(|(request_id, _)| s.shed.contains_key(request_id))
        .expect("some were shed");
    assert!(
        s.shed.len() * 2 >= s.sent.len() - first_shed,
        "{} of the {} sends after the first shed one were shed",
        s.shed.len(),
        s.sent.len() - first_shed
    );

    // Released: every send not shed is acknowledged, and bob gets exactly those, in order.
    let mut accepted = Vec::new();
    for (request_id, client_msg_id) in &s.sent {
        if s.shed.contains_key(request_id) {
            continue;
        }
        let ack = s
            .alice
            .try_send_reply(*request_id, *client_msg_id)
            .expect("the connection stays open")
            .expect("a send that was not shed is acknowledged once the log moves");
        accepted.push(ack.message_id);
    }
    let delivered: Vec<u64> = s
        .bob
        .expect_delivers(accepted.len())
        .iter()
        .map(|d| d.message_id)
        .collect();
    assert_eq!(delivered, accepted, "bob gets every accepted send, in order, once");
    s.bob.expect_no_deliver(Duration::from_millis(200));
    assert_eq!(
        accepted.iter().collect::<BTreeSet<_>>().len(),
        accepted.len(),
        "no message id twice"
    );

    // Drained: sends go through again, and an Ack is answered, not shed.
    let after = s.alice.send(s.bob_user_id, 10_000, b"after").expect("admitted again");
    let last = s.bob.expect_deliver();
    assert_eq!(last.message_id, after.message_id);
    assert_eq!(s.bob.ack_confirmed(last.inbox_seq), last.inbox_seq);

    // The login made while shedding was not refused: it completed once the log moved.
    let carol = s.login_during_hold.take().expect("a login was started").join();
    assert!(carol.is_ok(), "the token login made while shedding failed");

    let metrics = s.server.scrape_metrics();
    assert_eq!(
        metrics.get("hotline_shed_total{reason=\"queue_delay\"}"),
        Some(&(s.shed.len() as f64)),
        "every shed send is counted"
    );
}

/// The control: the same stall with shedding by delay off queues every send (what the
/// bound changes), and they are all acknowledged once the log moves.
#[test]
fn with_shedding_off_a_log_that_stands_still_makes_every_send_wait() {
    let mut s = stall(0);
    assert!(
        s.shed.is_empty(),
        "shedding is off, yet {} sends were shed",
        s.shed.len()
    );
    assert!(
        s.other_replies_during_hold.is_empty(),
        "{:?}",
        s.other_replies_during_hold
    );
    for (request_id, client_msg_id) in &s.sent {
        s.alice
            .try_send_reply(*request_id, *client_msg_id)
            .expect("the connection stays open")
            .expect("acknowledged once the log moves");
    }
    assert_eq!(s.bob.expect_delivers(s.sent.len()).len(), s.sent.len());
}
