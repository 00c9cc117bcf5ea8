//! Messaging end to end: delivery online and offline, several devices per user, idempotent
//! retries, order under concurrent senders, cursors and tokens, accounts and logins.

use std::collections::{BTreeMap, HashSet};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hotline_tests::{assert_dense, numbered, payload, payload_number, Client, OwnedDeliver, Registration, Server};
use hotline_wire::{Conversation, ErrorCode, SendAck, TOKEN_BYTES};

/// How long a test listens to conclude that nothing more is coming.
const QUIET: Duration = Duration::from_millis(300);

/// Panics unless `timestamp_us` is within a minute of this machine's clock (the server runs
/// on the same machine).
fn assert_recent(timestamp_us: u64) {
    let now_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_micros() as u64;
    let skew_us = now_us.abs_diff(timestamp_us);
    assert!(
        skew_us < 60_000_000,
        "timestamp_us {timestamp_us} is {skew_us} µs away from now ({now_us})"
    );
}

#[test]
fn hello_announces_version_1_and_the_default_limits() {
    let server = Server::start();
    let mut client = Client::connect(server.addr());
    let hello = client.hello();
    assert_eq!(hello.version, hotline_wire::PROTOCOL_VERSION);
    assert_eq!(hello.limits.frame_bytes_max, hotline_wire::FRAME_BYTES_MAX_DEFAULT);
    assert_eq!(hello.limits.payload_bytes_max, hotline_wire::PAYLOAD_BYTES_MAX_DEFAULT);
    assert_eq!(
        hello.limits.sync_page_messages_max,
        hotline_wire::SYNC_PAGE_MESSAGES_MAX_DEFAULT
    );
    assert_eq!(hello.limits.idle_timeout_ms, hotline_wire::IDLE_TIMEOUT_MS_DEFAULT);
    client.ping();
}

#[test]
fn an_online_recipient_gets_the_message_with_sender_conversation_and_seqs() {
    let server = Server::start();
    let (mut alice, a) = Client::new_user(server.addr(), "alice");
    let (mut bob, b) = Client::new_user(server.addr(), "bob");
    assert_ne!(a.user_id, 0);
    assert_ne!(a.user_id, b.user_id);
    assert_eq!(
        (a.device_id, a.inbox_seq, a.device_cursor),
        (1, 0, 0),
        "a new user's first device has an empty inbox"
    );
    assert_eq!(a.token.len(), TOKEN_BYTES);
    assert_ne!(a.token, b.token);

    let ack = alice.send(b.user_id, 11, b"hello bob").expect("alice sends");
    assert_ne!(ack.message_id, 0);
    assert_eq!(ack.inbox_seq, 1, "alice's own copy is the first entry of her inbox");
    assert_recent(ack.timestamp_us);

    let d = bob.expect_deliver();
    assert_eq!(d.message_id, ack.message_id);
    assert_eq!(d.conversation, Conversation::Direct(a.user_id));
    assert_eq!(d.sender, a.user_id);
    assert_eq!(d.sender_device, a.device_id);
    assert_eq!(d.inbox_seq, 1, "first entry of bob's inbox");
    assert_eq!(d.payload, b"hello bob");
    assert_eq!(d.client_msg_id, 11);
    assert_eq!(d.timestamp_us, ack.timestamp_us, "one message, one acceptance time");

    let reply = bob.send(a.user_id, 1, b"hi alice").expect("bob replies");
    assert_eq!(reply.inbox_seq, 2, "bob's inbox: alice's message, then his reply");
    assert_ne!(reply.message_id, ack.message_id);
    let d = alice.expect_deliver();
    assert_eq!(d.message_id, reply.message_id);
    assert_eq!(d.conversation, Conversation::Direct(b.user_id));
    assert_eq!(d.sender, b.user_id);
    assert_eq!(d.inbox_seq, 2, "alice's inbox: her message, then bob's reply");
    assert_eq!(d.payload, b"hi alice");

    alice.expect_no_deliver(QUIET);
    bob.expect_no_deliver(QUIET);
    assert_eq!(
        alice.delivered_seq(),
        2,
        "alice's SendAck and Deliver cover seqs 1 and 2"
    );
    assert_eq!(bob.delivered_seq(), 2);
}

#[test]
fn messages_sent_while_the_recipient_is_offline_arrive_in_order_at_login() {
    let server = Server::start();
    let (mut alice, a) = Client::new_user(server.addr(), "alice");
    let bob_id = Client::register_user(server.addr(), "bob");
    let acks: Vec<SendAck> = (1..=5)
        .map(|n| {
            alice
                .send(bob_id, n, &payload("offline", n, 0))
                .expect("send to offline bob")
        })
        .collect();

    let (mut bob, b) = Client::login_new_device(server.addr(), "bob", "phone");
    assert_eq!((b.inbox_seq, b.device_cursor), (5, 0));
    let delivered = bob.expect_delivers(5);
    assert_dense(&delivered, 1, "bob's catch-up at login");
    for (d, (n, ack)) in delivered.iter().zip((1..).zip(&acks)) {
        assert_eq!(d.message_id, ack.message_id);
        assert_eq!(d.payload, payload("offline", n, 0));
        assert_eq!(d.sender, a.user_id);
        assert_eq!(d.conversation, Conversation::Direct(a.user_id));
    }
    bob.expect_no_deliver(QUIET);
}

#[test]
fn two_devices_of_one_user_both_receive_and_converge_after_sync() {
    let server = Server::start();
    let (mut alice, a) = Client::new_user(server.addr(), "alice");
    let (mut phone, p) = Client::new_user(server.addr(), "bob");
    let (mut laptop, l) = Client::login_new_device(server.addr(), "bob", "laptop");
    assert_eq!(p.user_id, l.user_id);
    assert_eq!(
        (p.device_id, l.device_id),
        (1, 2),
        "each password login opens the next device"
    );
    assert_ne!(p.token, l.token);

    let acks = alice.send_all(p.user_id, &numbered("to-bob", 1..=3, 0), 1);
    let on_phone = phone.expect_delivers(3);
    let on_laptop = laptop.expect_delivers(3);
    assert_dense(&on_phone, 1, "phone");
    assert_eq!(on_phone, on_laptop, "both devices get the same entries");
    for (d, ack) in on_phone.iter().zip(&acks) {
        assert_eq!(d.message_id, ack.message_id);
    }

    // The phone replies; the laptop sees the reply as its own user's message.
    let reply = phone.send(a.user_id, 1, b"reply from phone").expect("phone replies");
    assert_eq!(reply.inbox_seq, 4);
    let echoed = laptop.expect_deliver();
    assert_eq!(echoed.message_id, reply.message_id);
    assert_eq!(echoed.inbox_seq, 4);
    assert_eq!(alice.expect_deliver().message_id, reply.message_id);

    let synced_phone = phone.sync_all(0);
    let synced_laptop = laptop.sync_all(0);
    assert_eq!(synced_phone.len(), 4);
    assert_dense(&synced_phone, 1, "phone's sync");
    assert_eq!(synced_phone, synced_laptop, "both devices converge on one inbox");
    assert_eq!(&synced_phone[..3], &on_phone[..], "Sync returns what was pushed");
    assert_eq!(synced_phone[3], echoed);
    assert_eq!((phone.delivered_seq(), laptop.delivered_seq()), (4, 4));
}

#[test]
fn the_senders_other_device_sees_what_it_sent() {
    let server = Server::start();
    let (mut phone, p) = Client::new_user(server.addr(), "alice");
    let (mut laptop, l) = Client::login_new_device(server.addr(), "alice", "laptop");
    let (mut bob, b) = Client::new_user(server.addr(), "bob");

    let ack = phone.send(b.user_id, 5, b"from the phone").expect("send from phone");
    let mirrored = laptop.expect_deliver();
    assert_eq!(mirrored.conversation, Conversation::Direct(b.user_id));
    assert_eq!(mirrored.sender, p.user_id);
    assert_eq!(mirrored.sender_device, p.device_id);
    assert_eq!(mirrored.inbox_seq, ack.inbox_seq);
    assert_eq!(mirrored.message_id, ack.message_id);
    assert_eq!(mirrored.client_msg_id, 5);
    assert_eq!(mirrored.payload, b"from the phone");
    let received = bob.expect_deliver();
    assert_eq!(received.conversation, Conversation::Direct(p.user_id));
    assert_eq!(received.sender_device, p.device_id);
    phone.expect_no_deliver(QUIET);

    let ack = laptop.send(b.user_id, 6, b"from the laptop").expect("send from laptop");
    assert_eq!(ack.inbox_seq, 2);
    let mirrored = phone.expect_deliver();
    assert_eq!(mirrored.conversation, Conversation::Direct(b.user_id));
    assert_eq!(mirrored.sender_device, l.device_id);
    assert_eq!(mirrored.inbox_seq, 2);
    assert_eq!(bob.expect_deliver().sender_device, l.device_id);
    laptop.expect_no_deliver(QUIET);
}

#[test]
fn a_new_device_receives_the_whole_inbox_including_sent_messages() {
    let server = Server::start();
    let (mut alice, a) = Client::new_user(server.addr(), "alice");
    let (mut bob, b) = Client::new_user(server.addr(), "bob");
    alice.send(b.user_id, 1, b"a1").expect("send");
    alice.send(b.user_id, 2, b"a2").expect("send");
    bob.send(a.user_id, 1, b"b1").expect("send");
    alice.expect_deliver();
    alice.send(b.user_id, 3, b"a3").expect("send");

    let (mut tablet, t) = Client::login_new_device(server.addr(), "alice", "tablet");
    assert_eq!((t.device_id, t.inbox_seq, t.device_cursor), (2, 4, 0));
    let inbox = tablet.expect_delivers(4);
    assert_dense(&inbox, 1, "the tablet's catch-up");
    let senders: Vec<u64> = inbox.iter().map(|d| d.sender).collect();
    assert_eq!(senders, [a.user_id, a.user_id, b.user_id, a.user_id]);
    let payloads: Vec<&[u8]> = inbox.iter().map(|d| d.payload.as_slice()).collect();
    assert_eq!(payloads, [b"a1", b"a2", b"b1", b"a3"]);
    assert!(inbox.iter().all(|d| d.conversation == Conversation::Direct(b.user_id)));
    tablet.expect_no_deliver(QUIET);
}

#[test]
fn sending_to_yourself_writes_one_entry() {
    let server = Server::start();
    let (mut phone, a) = Client::new_user(server.addr(), "alice");
    let (mut laptop, _) = Client::login_new_device(server.addr(), "alice", "laptop");
    let ack = phone.send(a.user_id, 1, b"note to self").expect("send to self");
    assert_eq!(ack.inbox_seq, 1);
    let d = laptop.expect_deliver();
    assert_eq!(d.conversation, Conversation::Direct(a.user_id));
    assert_eq!((d.inbox_seq, d.message_id), (1, ack.message_id));
    laptop.expect_no_deliver(QUIET);
    phone.expect_no_deliver(Duration::ZERO);
    assert_eq!(phone.sync_all(0), [d], "one entry, not a sent copy and a received copy");
    let next = phone.send(a.user_id, 2, b"second note").expect("send to self");
    assert_eq!(next.inbox_seq, 2);
}

#[test]
fn a_retried_send_is_stored_once() {
    let server = Server::start();
    let (mut alice, a) = Client::new_user(server.addr(), "alice");
    let (mut bob, b) = Client::new_user(server.addr(), "bob");
    let first = alice.send(b.user_id, 42, b"exactly once").expect("send");
    let same_connection = alice.send(b.user_id, 42, b"exactly once").expect("retry");
    assert_eq!(
        (same_connection.message_id, same_connection.inbox_seq),
        (first.message_id, first.inbox_seq),
        "a retry on the same connection names the stored message"
    );
    drop(alice);

    // The same device on a new connection (after a dropped connection, say).
    let (mut resumed, _) = Client::resume(server.addr(), &a.token);
    let catch_up = resumed.expect_deliver();
    assert_eq!((catch_up.inbox_seq, catch_up.message_id), (1, first.message_id));
    let after_reconnect = resumed.send(b.user_id, 42, b"exactly once").expect("retry");
    assert_eq!(
        (after_reconnect.message_id, after_reconnect.inbox_seq),
        (first.message_id, first.inbox_seq)
    );

    // Another device of the same user.
    let (mut laptop, _) = Client::login_new_device(server.addr(), "alice", "laptop");
    let other_device = laptop.send(b.user_id, 42, b"exactly once").expect("retry");
    assert_eq!(
        (other_device.message_id, other_device.inbox_seq),
        (first.message_id, first.inbox_seq)
    );

    let d = bob.expect_deliver();
    assert_eq!(d.message_id, first.message_id);
    bob.expect_no_deliver(QUIET);
    assert_eq!(bob.sync_all(0).len(), 1, "bob's inbox holds the message once");
    assert_eq!(resumed.sync_all(0).len(), 1, "alice's inbox holds the message once");

    let next = resumed.send(b.user_id, 43, b"a new message").expect("send");
    assert_eq!(next.inbox_seq, 2, "the retries took no seqs");
    assert_ne!(next.message_id, first.message_id);
    assert_eq!(bob.expect_deliver().inbox_seq, 2);
}

#[test]
fn concurrent_senders_keep_each_senders_order_and_seqs_stay_dense() {
    const SENDERS: u64 = 4;
    const PER_SENDER: u64 = 200;
    let server = Server::options().cores(2).start();
    let addr = server.addr();
    let (mut recipient, r) = Client::new_user(addr, "recipient");
    let senders: Vec<_> = (0..SENDERS)
        .map(|i| {
            let to = r.user_id;
            thread::spawn(move || {
                let (mut client, login) = Client::new_user(addr, &format!("sender{i}"));
                let acks: Vec<SendAck> = (1..=PER_SENDER)
                    .map(|n| {
                        client
                            .send(to, n, &payload(&format!("s{i}"), n, 0))
                            .expect("send to the recipient")
                    })
                    .collect();
                (login.user_id, acks)
            })
        })
        .collect();

    let delivered = recipient.expect_delivers((SENDERS * PER_SENDER) as usize);
    let acks_by_sender: BTreeMap<u64, Vec<SendAck>> = senders
        .into_iter()
        .map(|h| h.join().expect("a sender thread panicked"))
        .collect();
    recipient.expect_no_deliver(QUIET);

    assert_dense(&delivered, 1, "the recipient's live deliveries");
    let mut last_n: BTreeMap<u64, u64> = BTreeMap::new();
    for d in &delivered {
        let (_, n) = payload_number(&d.payload).expect("a numbered payload");
        let last = last_n.entry(d.sender).or_insert(0);
        assert_eq!(
            n,
            *last + 1,
            "sender {}'s messages out of order or missing: {d:?}",
            d.sender
        );
        *last = n;
        let acks = &acks_by_sender[&d.sender];
        assert_eq!(d.message_id, acks[(n - 1) as usize].message_id);
    }
    assert_eq!(last_n.len(), SENDERS as usize);
    assert!(last_n.values().all(|&n| n == PER_SENDER), "{last_n:?}");
    let ids: HashSet<u64> = delivered.iter().map(|d| d.message_id).collect();
    assert_eq!(ids.len(), delivered.len(), "message ids are unique");
    assert_eq!(recipient.sync_all(0), delivered, "Sync agrees with what was pushed");
}

#[test]
fn pipelined_sends_on_one_connection_keep_their_order() {
    let server = Server::start();
    let (mut alice, _) = Client::new_user(server.addr(), "alice");
    let (mut bob, b) = Client::new_user(server.addr(), "bob");
    let acks = alice.send_all(b.user_id, &numbered("pipelined", 1..=300, 0), 32);
    let seqs: Vec<u64> = acks.iter().map(|a| a.inbox_seq).collect();
    assert_eq!(
        seqs,
        (1..=300).collect::<Vec<u64>>(),
        "alice's copies in the order sent"
    );
    let delivered = bob.expect_delivers(300);
    assert_dense(&delivered, 1, "bob's deliveries");
    for (n, d) in (1..).zip(&delivered) {
        assert_eq!(
            d.payload,
            payload("pipelined", n, 0),
            "seq {} holds the wrong message",
            d.inbox_seq
        );
    }
}

/// Both readiness sources (`--poller uring` and `--poller epoll`) carry the whole path:
/// logins handed across cores, pipelined sends, and a reader that stalls until its socket
/// is full (the server arms a write wait) and then takes everything, in order.
#[test]
fn either_connection_poller_carries_pipelined_sends_and_a_stalled_reader() {
    const MESSAGES: u64 = 300;
    const PAYLOAD_BYTES: usize = 16 << 10;
    for (poller, name) in [("uring", "io_uring"), ("epoll", "epoll")] {
        let server = Server::options().cores(2).arg("--poller").arg(poller).start();
        assert!(
            server
                .stderr()
                .contains(&format!("connection readiness through {name}")),
            "--poller {poller} is not in use; stderr:\n{}",
            server.stderr()
        );
        let users: Vec<_> = (0..4)
            .map(|i| Client::new_user(server.addr(), &format!("{poller}{i}")))
            .collect();
        let mut users = users.into_iter();
        let (mut sender, _) = users.next().expect("four users");
        let (mut reader, r) = users.next().expect("four users");
        // 4.8 MiB to a reader that reads nothing yet: far past its socket buffers.
        let acks = sender.send_all(r.user_id, &numbered(poller, 1..=MESSAGES, PAYLOAD_BYTES), 32);
        assert_eq!(
            acks.len() as u64,
            MESSAGES,
            "--poller {poller}: every send acknowledged"
        );
        let delivered = reader.expect_delivers(MESSAGES as usize);
        assert_dense(
            &delivered,
            1,
            &format!("--poller {poller}: the stalled reader's deliveries"),
        );
        for (n, d) in (1..).zip(&delivered) {
            assert_eq!(
                d.payload,
                payload(poller, n, PAYLOAD_BYTES),
                "--poller {poller}: seq {}",
                d.inbox_seq
            );
        }
        // Afterwards the reader is live again, for a user of either core.
        for (i, (mut other, _)) in users.enumerate() {
            other.send(r.user_id, 1, b"after").expect("a send after the flood");
            let d = reader.expect_deliver();
            assert_eq!((d.inbox_seq, &d.payload[..]), (MESSAGES + 1 + i as u64, &b"after"[..]));
        }
    }
}

#[test]
fn token_login_resumes_the_device_after_its_acked_cursor() {
    let server = Server::start();
    let (mut alice, _) = Client::new_user(server.addr(), "alice");
    let (mut bob, b) = Client::new_user(server.addr(), "bob");
    let acks = alice.send_all(b.user_id, &numbered("m", 1..=5, 0), 1);
    assert_dense(&bob.expect_delivers(5), 1, "bob's deliveries");
    assert_eq!(bob.ack_confirmed(3), 3);
    drop(bob);

    let (mut bob, again) = Client::resume(server.addr(), &b.token);
    assert_eq!(
        (again.user_id, again.device_id),
        (b.user_id, b.device_id),
        "the same device"
    );
    assert_eq!((again.inbox_seq, again.device_cursor), (5, 3));
    let rest = bob.expect_delivers(2);
    assert_dense(&rest, 4, "what follows the cursor");
    assert_eq!(rest[0].message_id, acks[3].message_id);
    assert_eq!(rest[1].message_id, acks[4].message_id);
    bob.expect_no_deliver(QUIET);

    // Cursors are per device: a new device starts from the beginning.
    let (mut laptop, l) = Client::login_new_device(server.addr(), "bob", "laptop");
    assert_eq!((l.device_id, l.device_cursor), (2, 0));
    assert_dense(&laptop.expect_delivers(5), 1, "the new device's catch-up");
}

#[test]
fn the_ack_cursor_never_moves_backwards_nor_past_the_inbox_head() {
    let server = Server::start();
    let (mut alice, _) = Client::new_user(server.addr(), "alice");
    let (mut bob, b) = Client::new_user(server.addr(), "bob");
    alice.send_all(b.user_id, &numbered("m", 1..=5, 0), 1);
    bob.expect_delivers(5);
    assert_eq!(bob.ack_confirmed(4), 4);
    assert_eq!(bob.ack_confirmed(2), 4, "an older ack leaves the cursor where it was");
    assert_eq!(
        bob.try_ack_confirmed(6),
        Err(ErrorCode::InvalidRequest),
        "seq 6 does not exist yet"
    );
    assert_eq!(bob.ack_confirmed(5), 5);
    drop(bob);
    let (_, again) = Client::resume(server.addr(), &b.token);
    assert_eq!(again.device_cursor, 5);
}

#[test]
fn logout_revokes_the_token_and_closes_the_connection() {
    let server = Server::start();
    let (mut alice, a) = Client::new_user(server.addr(), "alice");
    alice.logout().expect("logout");
    assert!(
        alice.is_closed_by_server(Duration::from_secs(5)),
        "the server keeps a logged-out connection open"
    );

    let mut client = Client::connect(server.addr());
    assert_eq!(
        client.login_token(&a.token, "again"),
        Err(ErrorCode::InvalidCredentials)
    );
    let login = client
        .login_password("alice", &Client::password_for("alice"), "laptop")
        .expect("the password still works after a failed token login on this connection");
    assert_eq!(login.device_id, 2);
    assert_ne!(login.token, a.token);
}

#[test]
fn register_rejects_taken_and_malformed_usernames() {
    let server = Server::start();
    let mut client = Client::connect(server.addr());
    let alice = client.register("alice", "pw-alice").expect("register alice");
    assert_ne!(alice, 0);
    assert_eq!(client.register("alice", "another"), Err(ErrorCode::UserExists));
    let too_long = "x".repeat(65);
    for bad in [
        "",
        "has space",
        "semi;colon",
        "slash/name",
        "ünïcödé",
        "tab\tname",
        too_long.as_str(),
    ] {
        assert_eq!(
            client.register(bad, "pw"),
            Err(ErrorCode::InvalidRequest),
            "username {bad:?} must be refused"
        );
    }
    let longest = "y".repeat(64);
    let ids = [
        client
            .register(&longest, "pw")
            .expect("64 bytes is the limit, not over it"),
        client.register("A.b-c_9", "pw").expect("every allowed character class"),
    ];
    assert!(ids.iter().all(|&id| id != 0 && id != alice));
    assert_ne!(ids[0], ids[1]);
    let login = client
        .login_password(&longest, "pw", "dev")
        .expect("log in as the 64-byte name");
    assert_eq!(login.user_id, ids[0]);
}

#[test]
fn registration_closed_refuses_register() {
    let server = Server::options().registration(Registration::Closed).start();
    let mut client = Client::connect(server.addr());
    assert_eq!(client.register("alice", "pw"), Err(ErrorCode::RegistrationClosed));
    assert_eq!(
        client.login_password("alice", "pw", "dev"),
        Err(ErrorCode::InvalidCredentials),
        "a refused registration created no account"
    );
    client.ping();
}

#[test]
fn a_wrong_password_is_invalid_credentials_and_the_connection_stays_usable() {
    let server = Server::start();
    let (_, a) = Client::new_user(server.addr(), "alice");
    let mut client = Client::connect(server.addr());
    assert_eq!(
        client.login_password("alice", "not-the-password", "dev"),
        Err(ErrorCode::InvalidCredentials)
    );
    assert_eq!(
        client.login_password("nobody", "whatever", "dev"),
        Err(ErrorCode::InvalidCredentials),
        "an unknown user looks the same as a wrong password"
    );
    client.ping();
    let login = client
        .login_password("alice", &Client::password_for("alice"), "dev")
        .expect("the right password on the same connection");
    assert_eq!(login.user_id, a.user_id);
    assert_eq!(login.device_id, 2, "failed logins opened no devices");
}

#[test]
fn sync_pages_through_the_callers_own_inbox() {
    const TOTAL: u64 = 260;
    let server = Server::start();
    let (mut alice, a) = Client::new_user(server.addr(), "alice");
    let (mut bob, b) = Client::new_user(server.addr(), "bob");
    let acks = alice.send_all(b.user_id, &numbered("s", 1..=TOTAL, 0), 32);
    let page_max = u64::from(hotline_wire::SYNC_PAGE_MESSAGES_MAX_DEFAULT);

    // Payloads of a few bytes: 256 of them are far below any byte bound on a page (which
    // must admit at least one 64 KiB message), so only the message limit applies.
    let first = bob.sync(0, 0);
    assert_eq!(first.inbox_seq, TOTAL);
    assert_eq!(
        first.messages.len() as u64,
        page_max,
        "limit 0 means the server's maximum"
    );
    assert!(first.more);
    assert_dense(&first.messages, 1, "first page");
    let second = bob.sync(page_max, 0);
    assert_eq!(second.messages.len() as u64, TOTAL - page_max);
    assert!(!second.more);
    assert_dense(&second.messages, page_max + 1, "second page");

    let small = bob.sync(0, 5);
    assert_eq!(small.messages.len(), 5);
    assert!(small.more);
    assert_eq!(&small.messages[..], &first.messages[..5]);
    let tail = bob.sync(TOTAL - 5, 5);
    assert_eq!(tail.messages.len(), 5);
    assert!(!tail.more, "exactly the last 5 remained");
    let clamped = bob.sync(0, 10_000);
    assert_eq!(
        clamped.messages.len() as u64,
        page_max,
        "a limit over the maximum is clamped"
    );
    let empty = bob.sync(TOTAL, 0);
    assert!(empty.messages.is_empty() && !empty.more);
    assert_eq!(empty.inbox_seq, TOTAL);

    let whole: Vec<OwnedDeliver> = bob.sync_all(0);
    assert_eq!(whole.len() as u64, TOTAL);
    for ((d, ack), n) in whole.iter().zip(&acks).zip(1..) {
        assert_eq!(d.conversation, Conversation::Direct(a.user_id), "bob's view");
        assert_eq!(d.message_id, ack.message_id);
        assert_eq!(d.payload, payload("s", n, 0));
    }
    let alices = alice.sync_all(0);
    assert_eq!(alices.len() as u64, TOTAL);
    assert!(
        alices.iter().all(|d| d.conversation == Conversation::Direct(b.user_id)),
        "alice's Sync reads alice's inbox, not bob's"
    );
}

/// Regression: frames pipelined behind a Login that failed waited for the client's next
/// write before they were read (the connection paused for the Login, and a failed login
/// did not resume the frames already buffered behind it).
#[test]
fn a_request_pipelined_behind_a_failed_login_is_answered_without_more_input() {
    use hotline_wire::{Credentials, Login, Message, Register};
    let server = Server::start();
    Client::register_user(server.addr(), "pipe");
    let mut client = Client::connect(server.addr());
    client.hello();
    let wrong = Message::Login(Login {
        credentials: Credentials::Password {
            username: "pipe",
            password: "not the password",
        },
        device_name: "first try",
    });
    let register = Message::Register(Register {
        username: "pipe2",
        password: "pipe2 password",
    });
    let mut encoder = hotline_wire::Encoder::new();
    let mut bytes = Vec::new();
    encoder.encode_into(901, &wrong, &mut bytes);
    encoder.encode_into(902, &register, &mut bytes);
    client.raw_write(&bytes);
    assert_eq!(
        client.expect_error(Duration::from_secs(10)),
        (901, ErrorCode::InvalidCredentials)
    );
    // No further bytes go out: the Register must be handled from what was buffered.
    client.drain_for(Duration::from_secs(2));
    let answered = client.queued().iter().any(|e| format!("{e:?}").contains("902"));
    assert!(
        answered,
        "the pipelined Register got no answer; queued: {:?}",
        client.queued()
    );
}

/// Bob, sent three messages by alice, has read them all and sent a plain `Ack` of the
/// first two (the server has read it).
fn bob_acked_two_of_three(server: &Server) -> (Client, hotline_tests::LoggedIn) {
    let (mut alice, _) = Client::new_user(server.addr(), "alice");
    let (mut bob, b) = Client::new_user(server.addr(), "bob");
    alice.send_all(b.user_id, &numbered("m", 1..=3, 0), 1);
    bob.expect_delivers(3);
    bob.ack(2);
    bob.ping(); // The Ack was read before the Pong came back.
    (bob, b)
}

/// A plain Ack (no request id) is stored about a second after it arrives
/// (`CURSOR_STORE_DELAY_MS`, each device on its own schedule rather than all at one sweep),
/// while its connection stays open: a second connection resuming the same device sees it.
#[test]
fn a_plain_ack_is_stored_while_the_device_stays_connected() {
    let server = Server::start();
    let (mut bob, b) = bob_acked_two_of_three(&server);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_again, resumed) = Client::resume(server.addr(), &b.token);
        if resumed.device_cursor == 2 {
            break;
        }
        assert_eq!(resumed.device_cursor, 0, "only the Ack moves the cursor");
        assert!(
            std::time::Instant::now() < deadline,
            "the plain Ack was not stored while its connection stayed open"
        );
        thread::sleep(Duration::from_millis(100));
    }
    bob.ping(); // Still connected: the disconnect did not store it.
}

/// A plain Ack (no request id) is stored lazily, when it comes due or when the connection
/// goes away; it must still be what the device resumes from.
#[test]
fn a_plain_ack_is_stored_by_the_time_the_device_comes_back() {
    let server = Server::start();
    let (bob, b) = bob_acked_two_of_three(&server);
    drop(bob);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (mut again, resumed) = Client::resume(server.addr(), &b.token);
        if resumed.device_cursor == 2 {
            let next = again.expect_deliver();
            assert_eq!(next.inbox_seq, 3, "delivery resumes right after the acked cursor");
            break;
        }
        assert!(
            resumed.device_cursor < 2,
            "cursor {} is past the ack",
            resumed.device_cursor
        );
        assert!(std::time::Instant::now() < deadline, "the plain Ack was never stored");
        drop(again);
        thread::sleep(Duration::from_millis(50));
    }
}
