//! Process lifecycle: SIGTERM and SIGINT shut down cleanly (exit 0, data intact on
//! restart, open connections do not hold the exit up), and idle connections are pinged,
//! then closed with IdleTimeout unless they answer.

use std::time::{Duration, Instant};

use hotline_tests::{assert_dense, numbered, Client, Durability, OwnedEvent, Server};
use hotline_wire::ErrorCode;

/// The idle timeout the idle tests run with.
const IDLE_TIMEOUT_MS: u32 = 1_000;

/// Messages, a confirmed cursor and open connections, then SIGTERM: exit 0, and after a
/// restart the inbox, the cursor and the tokens are all there.
fn sigterm_keeps_everything(durability: Durability) {
    let mut server = Server::options().durability(durability).start();
    let (mut alice, a) = Client::new_user(server.addr(), "alice");
    let (mut bob, b) = Client::new_user(server.addr(), "bob");
    let acks = alice.send_all(b.user_id, &numbered("m", 1..=20, 0), 8);
    bob.expect_delivers(20);
    assert_eq!(bob.ack_confirmed(10), 10);

    // Both connections are still open: a graceful shutdown must not wait for clients.
    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM: {status}");
    drop((alice, bob));
    server.restart();

    let (mut bob, again) = Client::resume(server.addr(), &b.token);
    assert_eq!(
        (again.device_id, again.inbox_seq, again.device_cursor),
        (b.device_id, 20, 10)
    );
    let rest = bob.expect_delivers(10);
    assert_dense(&rest, 11, "bob's deliveries after the cursor");
    for (d, ack) in rest.iter().zip(&acks[10..]) {
        assert_eq!(d.message_id, ack.message_id);
    }
    let (mut alice, _) = Client::resume(server.addr(), &a.token);
    let sent = alice.sync_all(0);
    assert_dense(&sent, 1, "alice's inbox after restart");
    let ids: Vec<u64> = sent.iter().map(|d| d.message_id).collect();
    let acked: Vec<u64> = acks.iter().map(|a| a.message_id).collect();
    assert_eq!(ids, acked);
}

#[test]
fn sigterm_exits_0_and_keeps_the_data_with_sync_durability() {
    sigterm_keeps_everything(Durability::Sync);
}

#[test]
fn sigterm_exits_0_and_keeps_the_data_with_async_durability() {
    sigterm_keeps_everything(Durability::Async);
}

#[test]
fn sigint_exits_0_like_sigterm() {
    let mut server = Server::start();
    let (mut alice, a) = Client::new_user(server.addr(), "alice");
    let ack = alice.send(a.user_id, 1, b"before ^C").expect("send");
    let status = server.interrupt();
    assert_eq!(status.code(), Some(0), "exit status after SIGINT: {status}");
    server.restart();
    let (mut alice, _) = Client::resume(server.addr(), &a.token);
    let inbox = alice.sync_all(0);
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].message_id, ack.message_id);
}

#[test]
fn a_silent_connection_is_pinged_then_closed_with_idle_timeout() {
    let server = Server::options().idle_timeout_ms(IDLE_TIMEOUT_MS).start();
    let (mut silent, _) = Client::new_user(server.addr(), "silent");
    assert_eq!(
        silent.session().limits().idle_timeout_ms,
        IDLE_TIMEOUT_MS,
        "HelloOk announces the configured idle timeout"
    );
    // Reads go on, but the Pong the session queues for the server's Ping never goes out.
    silent.pause_writes();
    let silent_since = Instant::now();
    assert!(
        silent.is_closed_by_server(Duration::from_secs(5)),
        "still open 5 s into a {IDLE_TIMEOUT_MS} ms idle timeout"
    );
    let closed_after = silent_since.elapsed();
    assert!(
        closed_after >= Duration::from_millis(u64::from(IDLE_TIMEOUT_MS) / 2),
        "closed after {closed_after:?}, before the idle timeout could have passed"
    );
    assert!(
        closed_after <= Duration::from_millis(3 * u64::from(IDLE_TIMEOUT_MS)),
        "closed only after {closed_after:?}"
    );
    assert!(
        silent.unwritten_bytes() > 0,
        "the server closed without pinging first (the session has no Pong waiting)"
    );
    assert_eq!(silent.expect_error(Duration::ZERO), (0, ErrorCode::IdleTimeout));
}

#[test]
fn a_connection_that_answers_pings_outlives_the_idle_timeout() {
    let server = Server::options().idle_timeout_ms(IDLE_TIMEOUT_MS).start();
    let (mut talker, _) = Client::new_user(server.addr(), "talker");
    talker.drain_for(Duration::from_millis(3 * u64::from(IDLE_TIMEOUT_MS)));
    assert_eq!(
        talker.closed_reason(),
        None,
        "closed although it answered every ping; queued: {:?}",
        talker.queued()
    );
    assert!(
        !talker.queued().iter().any(|e| matches!(e, OwnedEvent::Error { .. })),
        "{:?}",
        talker.queued()
    );
    talker.ping();
}
