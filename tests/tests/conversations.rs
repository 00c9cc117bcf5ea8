//! Around the messages: delivery and read receipts, read positions and unread counts synced
//! across devices, typing indicators, presence with coalescing, persistence levels.

use std::time::{Duration, Instant};

use hotline_tests::{Client, Server};
use hotline_wire::{
    Conversation, ErrorCode, GroupRole, Message, Persistence, PresenceSubscribe, ReceiptKind, SendFlags, Typing,
};

/// How long a test listens to conclude that nothing more is coming.
const QUIET: Duration = Duration::from_millis(300);

const RECEIPTS: SendFlags = SendFlags(SendFlags::DELIVERY_RECEIPT.0 | SendFlags::READ_RECEIPT.0);

#[test]
fn receipts_reach_the_senders_devices_when_a_recipient_acks_and_reads() {
    let server = Server::start();
    let (mut alice, a) = Client::new_user(server.addr(), "alice");
    let (mut alice2, _) = Client::login_new_device(server.addr(), "alice", "alice-2");
    let (mut bob, b) = Client::new_user(server.addr(), "bob");
    let plain = alice.send(b.user_id, 1, b"no receipts").expect("send");
    let asked = alice
        .send_message(&hotline_wire::Send::direct(b.user_id, 2, b"receipts please", RECEIPTS))
        .expect("send");
    let _ = alice2.expect_delivers(2);
    let delivered = bob.expect_delivers(2);
    assert_eq!(delivered[1].flags, RECEIPTS);
    bob.ack_confirmed(delivered[1].inbox_seq);
    for (name, client) in [("alice", &mut alice), ("alice-2", &mut alice2)] {
        let r = client
            .next_receipt(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("{name}: no receipt"));
        assert_eq!(
            (r.kind, r.message_id, r.conversation, r.user_id),
            (
                ReceiptKind::DELIVERED,
                asked.message_id,
                Conversation::Direct(b.user_id),
                b.user_id
            ),
            "{name}"
        );
        assert!(client.next_receipt(QUIET).is_none(), "{name}: one receipt per message");
    }
    let position = bob
        .mark_read(Conversation::Direct(a.user_id), delivered[1].inbox_seq)
        .expect("mark read");
    assert_eq!(position.unread, 0);
    let r = alice.next_receipt(Duration::from_secs(5)).expect("a read receipt");
    assert_eq!((r.kind, r.message_id), (ReceiptKind::READ, asked.message_id));
    assert!(
        alice.next_receipt(QUIET).is_none(),
        "no receipt for {plain:?}, sent without flags"
    );
}

#[test]
fn read_positions_are_stored_synced_to_other_devices_and_give_unread_counts() {
    let server = Server::start();
    let (mut alice, a) = Client::new_user(server.addr(), "alice");
    let (mut bob, b) = Client::new_user(server.addr(), "bob");
    let (mut bob2, _) = Client::login_new_device(server.addr(), "bob", "bob-2");
    for i in 1..=4 {
        alice.send(b.user_id, i, b"hi").expect("send");
    }
    let inbox = bob.expect_delivers(4);
    let _ = bob2.expect_delivers(4);
    // Bob answers once: his own messages never count as unread.
    bob.send(a.user_id, 1, b"yo").expect("reply");
    let conversation = Conversation::Direct(a.user_id);
    let (list, more) = bob.conversations();
    assert!(!more);
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].conversation, list[0].unread, list[0].read_seq),
        (conversation, 4, 0)
    );

    let position = bob
        .mark_read(conversation, inbox[1].inbox_seq)
        .expect("read the first two");
    assert_eq!((position.read_seq, position.unread), (inbox[1].inbox_seq, 2));
    let pushed = bob2
        .next_read_position(Duration::from_secs(5))
        .expect("the other device hears");
    assert_eq!(pushed, position);
    assert!(
        bob.next_read_position(QUIET).is_none(),
        "the marking device got the reply, not a push"
    );
    // Never backwards.
    let again = bob
        .mark_read(conversation, inbox[0].inbox_seq)
        .expect("an older position");
    assert_eq!(again, position);
    // A seq of another conversation is refused.
    let (mut carol, _) = Client::new_user(server.addr(), "carol");
    carol.send(b.user_id, 1, b"hey").expect("send");
    let from_carol = bob.expect_deliver();
    assert_eq!(
        bob.mark_read(conversation, from_carol.inbox_seq),
        Err(ErrorCode::NoSuchMessage)
    );
    // Stored: a device logging in later lists the same.
    let (mut bob3, _) = Client::login_new_device(server.addr(), "bob", "bob-3");
    let (list, _) = bob3.conversations();
    let with_alice = list.iter().find(|p| p.conversation == conversation).expect("listed");
    assert_eq!((with_alice.read_seq, with_alice.unread), (inbox[1].inbox_seq, 2));
}

#[test]
fn typing_is_pushed_live_rate_limited_and_refused_without_login_or_membership() {
    let server = Server::start();
    let (mut alice, a) = Client::new_user(server.addr(), "alice");
    let (mut bob, b) = Client::new_user(server.addr(), "bob");
    // Two back to back: the second is within the per-device interval and dropped.
    bob.typing(Conversation::Direct(a.user_id));
    bob.typing(Conversation::Direct(a.user_id));
    let t = alice.next_typing(Duration::from_secs(5)).expect("a typing notice");
    assert_eq!(
        (t.conversation, t.user_id),
        (Conversation::Direct(b.user_id), b.user_id)
    );
    assert!(
        alice.next_typing(QUIET).is_none(),
        "a second Typing within the interval is dropped"
    );
    alice.expect_no_deliver(Duration::from_millis(1)); // never stored: no inbox entry
    assert!(alice.sync_all(0).is_empty());

    let g = alice.create_group("g", Persistence::ARCHIVE).expect("create");
    // The limit is per device: bob's other device is not limited by the first one's typing.
    let (mut bob2, _) = Client::login_new_device(server.addr(), "bob", "bob-2");
    bob2.typing(Conversation::Group(g));
    let (request_id, code) = bob2.expect_error(Duration::from_secs(5));
    assert_eq!(
        (request_id, code),
        (0, ErrorCode::Forbidden),
        "a non-member cannot type in the group"
    );

    let mut stranger = Client::connect(server.addr());
    stranger.hello();
    let typing = Message::Typing(Typing {
        conversation: Conversation::Direct(a.user_id),
    });
    let request = stranger.raw_request(&typing);
    assert_eq!(
        stranger.expect_error(Duration::from_secs(5)),
        (request, ErrorCode::InvalidState)
    );
    let subscribe = Message::PresenceSubscribe(PresenceSubscribe {
        user_ids: vec![a.user_id],
    });
    let request = stranger.raw_request(&subscribe);
    assert_eq!(
        stranger.expect_error(Duration::from_secs(5)),
        (request, ErrorCode::InvalidState)
    );
}

#[test]
fn presence_reaches_subscribers_who_share_a_group_and_a_flapping_client_is_coalesced() {
    const FLAPS: usize = 100;
    let mut server = Server::start();
    let (mut alice, _) = Client::new_user(server.addr(), "alice");
    let (bob, b) = Client::new_user(server.addr(), "bob");
    let stranger = Client::register_user(server.addr(), "stranger");
    drop(bob);
    let g = alice.create_group("g", Persistence::ARCHIVE).expect("create");
    alice.add_member(g, b.user_id, GroupRole::MEMBER).expect("add bob");
    alice.presence_subscribe(&[b.user_id, stranger]).expect("subscribe");
    let p = alice
        .next_presence(Duration::from_secs(5))
        .expect("bob's current state");
    assert_eq!((p.user_id, p.online), (b.user_id, false));
    assert!(
        alice.next_presence(QUIET).is_none(),
        "no presence of a user sharing nothing"
    );

    let (bob, login) = Client::login_new_device(server.addr(), "bob", "bob-2");
    let p = alice.next_presence(Duration::from_secs(5)).expect("bob online");
    assert_eq!((p.user_id, p.online), (b.user_id, true));
    // Online while any device is: a second device leaving changes nothing (listening past
    // the coalescing window and a sweep, when a wrongly pending "offline" would go out).
    let (mut bob3, _) = Client::login_new_device(server.addr(), "bob", "bob-3");
    bob3.ping();
    drop(bob3);
    assert!(
        alice.next_presence(Duration::from_millis(2_500)).is_none(),
        "bob still has a device online"
    );
    drop(bob);

    let started = Instant::now();
    for _ in 0..FLAPS {
        let (mut flapper, _) = Client::resume(server.addr(), &login.token);
        flapper.ping();
    }
    let flapping_secs = started.elapsed().as_secs();
    let mut events = Vec::new();
    while let Some(p) = alice.next_presence(Duration::from_millis(2_500)) {
        events.push(p);
    }
    let bound = (flapping_secs as usize + 4) * 2;
    assert!(
        events.len() <= bound,
        "{FLAPS} flaps in {flapping_secs} s gave {} presence events (bound {bound})",
        events.len()
    );
    let last = events.last().expect("the final state is published");
    assert!(!last.online, "bob ended offline: {events:?}");
    assert!(last.last_seen_us > 0);

    // Last seen is stored: after a restart a new subscription still learns it.
    drop(alice);
    assert!(server.terminate().success(), "graceful shutdown");
    server.restart();
    let (mut alice, _) = Client::login_new_device(server.addr(), "alice", "alice-2");
    alice.presence_subscribe(&[b.user_id]).expect("subscribe again");
    let p = alice.next_presence(Duration::from_secs(5)).expect("bob's stored state");
    assert_eq!((p.user_id, p.online), (b.user_id, false));
    assert!(p.last_seen_us >= last.last_seen_us, "{p:?} vs {last:?}");
}

#[test]
fn an_ephemeral_group_is_live_only_and_never_written() {
    let server = Server::start();
    let (mut alice, _) = Client::new_user(server.addr(), "alice");
    let (mut bob, b) = Client::new_user(server.addr(), "bob");
    let carol = Client::register_user(server.addr(), "carol");
    let g = alice.create_group("live", Persistence::EPHEMERAL).expect("create");
    alice.add_member(g, b.user_id, GroupRole::MEMBER).expect("add bob");
    alice.add_member(g, carol, GroupRole::MEMBER).expect("add carol");
    let ack = alice.send_group(g, 1, b"now or never", SendFlags::NONE).expect("send");
    assert_eq!(ack.inbox_seq, 0, "nothing written");
    let d = bob.expect_deliver();
    assert_eq!(
        (d.message_id, d.inbox_seq, d.payload.as_slice()),
        (ack.message_id, 0, &b"now or never"[..])
    );
    assert!(bob.sync_all(0).is_empty());
    assert!(alice.sync_all(0).is_empty());
    let (mut carol_client, login) = Client::login_new_device(server.addr(), "carol", "carol-1");
    assert_eq!(login.inbox_seq, 0);
    carol_client.expect_no_deliver(QUIET);
}

#[test]
fn store_until_delivered_entries_expire_once_every_device_acked() {
    let server = Server::start();
    let (mut alice, a) = Client::new_user(server.addr(), "alice");
    let (mut bob, b) = Client::new_user(server.addr(), "bob");
    let (mut bob2, _) = Client::login_new_device(server.addr(), "bob", "bob-2");
    let (mut bob3, _) = Client::login_new_device(server.addr(), "bob", "bob-3");
    alice
        .set_persistence(Conversation::Direct(b.user_id), Persistence::UNTIL_DELIVERED)
        .expect("either party sets it");
    let ack = alice.send(b.user_id, 1, b"burn after reading").expect("send");
    let d = bob.expect_deliver();
    let _ = bob2.expect_deliver();
    bob.ack_confirmed(d.inbox_seq);
    bob2.ack_confirmed(d.inbox_seq);
    assert_eq!(
        bob.sync_all(0)[0].payload,
        b"burn after reading",
        "kept while a device has not acked"
    );
    // The last device logs out instead of acking: it no longer holds the entry back.
    bob3.logout().expect("logout");
    let page = bob.sync_all(0);
    assert_eq!(page.len(), 1, "the seq stays, so inboxes stay dense");
    assert_eq!(
        (page[0].message_id, page[0].kind, page[0].payload.len()),
        (ack.message_id, hotline_wire::MessageKind::EXPIRED, 0)
    );
    // Alice's own copy lives until her device acks it.
    assert_eq!(alice.sync_all(0)[0].payload, b"burn after reading");
    alice.ack_confirmed(ack.inbox_seq);
    assert_eq!(alice.sync_all(0)[0].kind, hotline_wire::MessageKind::EXPIRED);
    let _ = a;
}
