//! Groups end to end: roles and who may manage membership, delivery to every member's
//! devices, history through Sync, removal taking effect at once, a 1,000-member group, and
//! edits and deletes of one's own messages.

use std::time::Duration;

use hotline_tests::{Client, Server};
use hotline_wire::{Conversation, ErrorCode, GroupMember, GroupRole, MessageKind, Persistence, Send, SendFlags};

/// How long a test listens to conclude that nothing more is coming.
const QUIET: Duration = Duration::from_millis(300);

fn member(user_id: u64, role: GroupRole) -> GroupMember {
    GroupMember { user_id, role }
}

#[test]
fn only_owners_and_admins_manage_membership_and_non_members_can_neither_send_nor_read() {
    let server = Server::start();
    let (mut alice, a) = Client::new_user(server.addr(), "alice");
    let (mut bob, b) = Client::new_user(server.addr(), "bob");
    let (mut carol, c) = Client::new_user(server.addr(), "carol");
    let (mut dave, d) = Client::new_user(server.addr(), "dave");
    let g = alice.create_group("ops", Persistence::ARCHIVE).expect("create");
    assert_ne!(g, 0);
    alice
        .add_member(g, b.user_id, GroupRole::ADMIN)
        .expect("owner adds an admin");
    alice
        .add_member(g, c.user_id, GroupRole::MEMBER)
        .expect("owner adds a member");

    // A non-member.
    assert_eq!(dave.send_group(g, 1, b"hi", SendFlags::NONE), Err(ErrorCode::Forbidden));
    assert_eq!(dave.group_members(g, 0), Err(ErrorCode::Forbidden));
    assert_eq!(
        dave.add_member(g, d.user_id, GroupRole::MEMBER),
        Err(ErrorCode::Forbidden)
    );
    assert_eq!(dave.leave_group(g), Err(ErrorCode::Forbidden));
    // A plain member.
    assert_eq!(
        carol.add_member(g, d.user_id, GroupRole::MEMBER),
        Err(ErrorCode::Forbidden)
    );
    assert_eq!(carol.remove_member(g, b.user_id), Err(ErrorCode::Forbidden));
    // An admin: adds plain members only, removes plain members only.
    assert_eq!(
        bob.add_member(g, d.user_id, GroupRole::ADMIN),
        Err(ErrorCode::Forbidden)
    );
    bob.add_member(g, d.user_id, GroupRole::MEMBER)
        .expect("admin adds a member");
    bob.remove_member(g, c.user_id).expect("admin removes a member");
    assert_eq!(bob.remove_member(g, a.user_id), Err(ErrorCode::Forbidden));
    // The owner cannot walk out on the others.
    assert_eq!(alice.leave_group(g), Err(ErrorCode::Forbidden));
    // Unknown group, unknown user.
    assert_eq!(
        alice.add_member(g + 100, b.user_id, GroupRole::MEMBER),
        Err(ErrorCode::NoSuchGroup)
    );
    assert_eq!(
        alice.add_member(g, 999_999, GroupRole::MEMBER),
        Err(ErrorCode::NoSuchUser)
    );

    let members = bob.all_group_members(g).expect("members");
    let mut want = vec![
        member(a.user_id, GroupRole::OWNER),
        member(b.user_id, GroupRole::ADMIN),
        member(d.user_id, GroupRole::MEMBER),
    ];
    want.sort_by_key(|m| m.user_id);
    assert_eq!(members, want);
    let (groups, more) = bob.my_groups(0);
    assert!(!more);
    assert_eq!(groups.len(), 1);
    assert_eq!(
        (groups[0].group_id, groups[0].name.as_str(), groups[0].role),
        (g, "ops", GroupRole::ADMIN)
    );
    let (carols, _) = carol.my_groups(0);
    assert!(
        carols.is_empty(),
        "a removed member no longer lists the group: {carols:?}"
    );

    dave.leave_group(g).expect("a member leaves");
    assert_eq!(dave.send_group(g, 2, b"hi", SendFlags::NONE), Err(ErrorCode::Forbidden));
}

#[test]
fn a_group_message_reaches_every_member_device_once_and_syncs_like_history() {
    let server = Server::start();
    let (mut alice, a) = Client::new_user(server.addr(), "alice");
    let (mut alice2, _) = Client::login_new_device(server.addr(), "alice", "alice-2");
    let (mut bob, b) = Client::new_user(server.addr(), "bob");
    let (mut bob2, _) = Client::login_new_device(server.addr(), "bob", "bob-2");
    let (mut carol, c) = Client::new_user(server.addr(), "carol");
    let (mut outsider, _) = Client::new_user(server.addr(), "outsider");
    let g = alice.create_group("team", Persistence::ARCHIVE).expect("create");
    alice.add_member(g, b.user_id, GroupRole::MEMBER).expect("add bob");
    alice.add_member(g, c.user_id, GroupRole::MEMBER).expect("add carol");

    let ack = alice.send_group(g, 7, b"hello team", SendFlags::NONE).expect("send");
    assert_eq!(ack.inbox_seq, 1, "the sender's own copy is in her inbox");
    for (name, client) in [
        ("alice-2", &mut alice2),
        ("bob", &mut bob),
        ("bob-2", &mut bob2),
        ("carol", &mut carol),
    ] {
        let d = client.expect_deliver();
        assert_eq!(d.message_id, ack.message_id, "{name}");
        assert_eq!(d.conversation, Conversation::Group(g), "{name}");
        assert_eq!(
            (d.sender, d.payload.as_slice()),
            (a.user_id, &b"hello team"[..]),
            "{name}"
        );
        client.expect_no_deliver(QUIET);
    }
    alice.expect_no_deliver(QUIET);
    outsider.expect_no_deliver(QUIET);

    // History: the message is in every member's inbox, and in no one else's.
    for client in [&mut bob, &mut carol] {
        let history = client.sync_all(0);
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].message_id, ack.message_id);
        assert_eq!(history[0].conversation, Conversation::Group(g));
        assert_eq!(history[0].payload, b"hello team", "the payload stored once comes back");
    }
    assert!(outsider.sync_all(0).is_empty(), "a non-member cannot read the group");
    // A device logging in later gets it too.
    let (mut carol2, _) = Client::login_new_device(server.addr(), "carol", "carol-2");
    let caught_up = carol2.expect_deliver();
    assert_eq!(
        (caught_up.message_id, caught_up.payload.as_slice()),
        (ack.message_id, &b"hello team"[..])
    );
    let _ = c;
}

#[test]
fn a_removed_member_stops_receiving_at_once() {
    let server = Server::start();
    let (mut alice, _) = Client::new_user(server.addr(), "alice");
    let (mut bob, b) = Client::new_user(server.addr(), "bob");
    let (mut carol, c) = Client::new_user(server.addr(), "carol");
    let g = alice.create_group("g", Persistence::ARCHIVE).expect("create");
    alice.add_member(g, b.user_id, GroupRole::MEMBER).expect("add bob");
    alice.add_member(g, c.user_id, GroupRole::MEMBER).expect("add carol");
    let first = alice.send_group(g, 1, b"one", SendFlags::NONE).expect("send");
    assert_eq!(carol.expect_deliver().message_id, first.message_id);
    assert_eq!(bob.expect_deliver().message_id, first.message_id);

    alice.remove_member(g, c.user_id).expect("remove carol");
    let second = alice.send_group(g, 2, b"two", SendFlags::NONE).expect("send");
    assert_eq!(bob.expect_deliver().message_id, second.message_id);
    carol.expect_no_deliver(QUIET);
    assert_eq!(
        carol.send_group(g, 1, b"let me in", SendFlags::NONE),
        Err(ErrorCode::Forbidden)
    );
    assert_eq!(carol.sync_all(0).len(), 1, "only what was sent while a member");
}

#[test]
fn a_message_to_a_1000_member_group_reaches_every_online_member_exactly_once_and_offline_ones_at_login() {
    const MEMBERS: usize = 1_000;
    const OFFLINE: usize = 100;
    let mut server = Server::options().stopped();
    let accounts = server.provision("m", MEMBERS);
    server.restart();
    let (owner_id, owner_token) = &accounts[0];
    let (mut owner, _) = Client::resume(server.addr(), owner_token);
    let g = owner.create_group("everyone", Persistence::ARCHIVE).expect("create");
    // Pipelined adds in windows, so the writer batches them.
    for chunk in accounts[1..].chunks(200) {
        let requests: Vec<u64> = chunk
            .iter()
            .map(|(user_id, _)| owner.add_member_request(g, *user_id, GroupRole::MEMBER))
            .collect();
        for r in requests {
            owner.wait_done(r).expect("add a member");
        }
    }
    assert_eq!(owner.all_group_members(g).expect("members").len(), MEMBERS);

    let online: Vec<Client> = accounts[1..MEMBERS - OFFLINE]
        .iter()
        .map(|(_, token)| Client::resume(server.addr(), token).0)
        .collect();
    let message = owner.send_group(g, 1, b"to everyone", SendFlags::NONE).expect("send");
    let marker = owner
        .send_group(g, 2, b"marker", SendFlags::NONE)
        .expect("send the marker");
    for (i, mut client) in online.into_iter().enumerate() {
        // In order, so anything between the message and the marker would be a duplicate.
        let got: Vec<u64> = client.expect_delivers(2).iter().map(|d| d.message_id).collect();
        assert_eq!(got, [message.message_id, marker.message_id], "online member {i}");
    }
    for (user_id, token) in &accounts[MEMBERS - OFFLINE..] {
        let (mut late, login) = Client::resume(server.addr(), token);
        assert_eq!(login.user_id, *user_id);
        let got: Vec<u64> = late.expect_delivers(2).iter().map(|d| d.message_id).collect();
        assert_eq!(
            got,
            [message.message_id, marker.message_id],
            "offline member {user_id} at login"
        );
        late.expect_no_deliver(Duration::from_millis(20));
    }
    let _ = owner_id;
}

#[test]
fn only_the_sender_edits_or_deletes_a_message_and_both_are_delivered_and_synced() {
    let server = Server::start();
    let (mut alice, a) = Client::new_user(server.addr(), "alice");
    let (mut bob, b) = Client::new_user(server.addr(), "bob");
    let original = alice.send(b.user_id, 1, b"helo").expect("send");
    assert_eq!(bob.expect_deliver().message_id, original.message_id);

    let edit = |to, client_msg_id, refers_to, payload: &'static [u8]| Send {
        kind: MessageKind::EDIT,
        refers_to,
        ..Send::direct(to, client_msg_id, payload, SendFlags::NONE)
    };
    assert_eq!(
        bob.send_message(&edit(a.user_id, 1, original.message_id, b"hacked")),
        Err(ErrorCode::Forbidden),
        "nobody edits another's message"
    );
    let delete_by_bob = Send {
        kind: MessageKind::DELETE,
        ..edit(a.user_id, 2, original.message_id, b"")
    };
    assert_eq!(bob.send_message(&delete_by_bob), Err(ErrorCode::Forbidden));
    assert_eq!(
        alice.send_message(&edit(b.user_id, 2, 424_242, b"x")),
        Err(ErrorCode::NoSuchMessage)
    );
    let edited = alice
        .send_message(&edit(b.user_id, 3, original.message_id, b"hello"))
        .expect("edit");
    let d = bob.expect_deliver();
    assert_eq!(
        (d.message_id, d.kind, d.refers_to, d.payload.as_slice()),
        (edited.message_id, MessageKind::EDIT, original.message_id, &b"hello"[..])
    );
    let delete = Send {
        kind: MessageKind::DELETE,
        ..edit(b.user_id, 4, original.message_id, b"")
    };
    let deleted = alice.send_message(&delete).expect("delete");
    let d = bob.expect_deliver();
    assert_eq!(
        (d.message_id, d.kind, d.refers_to),
        (deleted.message_id, MessageKind::DELETE, original.message_id)
    );

    let history = bob.sync_all(0);
    let kinds: Vec<(MessageKind, u64)> = history.iter().map(|m| (m.kind, m.refers_to)).collect();
    assert_eq!(
        kinds,
        [
            (MessageKind::NORMAL, 0),
            (MessageKind::EDIT, original.message_id),
            (MessageKind::DELETE, original.message_id)
        ]
    );

    // In a group, likewise.
    let g = alice.create_group("g", Persistence::ARCHIVE).expect("create");
    alice.add_member(g, b.user_id, GroupRole::MEMBER).expect("add");
    let posted = alice.send_group(g, 5, b"group post", SendFlags::NONE).expect("post");
    let group_edit = |client_msg_id| Send {
        group: g,
        ..edit(0, client_msg_id, posted.message_id, b"mine now")
    };
    assert_eq!(bob.send_message(&group_edit(10)), Err(ErrorCode::Forbidden));
    alice
        .send_message(&group_edit(6))
        .expect("the sender edits in the group");
    // An edit must stay in the original's conversation.
    assert_eq!(
        alice.send_message(&edit(b.user_id, 7, posted.message_id, b"x")),
        Err(ErrorCode::NoSuchMessage)
    );
}

#[test]
fn the_group_size_limit_is_a_setting_and_a_full_group_refuses_more() {
    let server = Server::options().arg("--group-members-max").arg("2").start();
    let (mut alice, _) = Client::new_user(server.addr(), "alice");
    let bob = Client::register_user(server.addr(), "bob");
    let carol = Client::register_user(server.addr(), "carol");
    let g = alice.create_group("pair", Persistence::ARCHIVE).expect("create");
    alice
        .add_member(g, bob, GroupRole::MEMBER)
        .expect("the second member fits");
    assert_eq!(alice.add_member(g, carol, GroupRole::MEMBER), Err(ErrorCode::GroupFull));
    alice
        .add_member(g, bob, GroupRole::ADMIN)
        .expect("a role change adds no one");
}

#[test]
fn malformed_conversation_requests_are_typed_errors_and_keep_the_connection() {
    let server = Server::start();
    let (mut alice, a) = Client::new_user(server.addr(), "alice");
    let g = alice.create_group("g", Persistence::ARCHIVE).expect("create");
    let both = Send {
        group: g,
        ..Send::direct(a.user_id, 1, b"x", SendFlags::NONE)
    };
    assert_eq!(
        alice.send_message(&both),
        Err(ErrorCode::InvalidRequest),
        "to and group"
    );
    let delete_with_payload = Send {
        kind: MessageKind::DELETE,
        refers_to: 1,
        ..Send::direct(a.user_id, 2, b"x", SendFlags::NONE)
    };
    assert_eq!(alice.send_message(&delete_with_payload), Err(ErrorCode::InvalidRequest));
    let unknown_kind = Send {
        kind: MessageKind(77),
        ..Send::direct(a.user_id, 3, b"x", SendFlags::NONE)
    };
    assert_eq!(alice.send_message(&unknown_kind), Err(ErrorCode::InvalidRequest));
    let expired = Send {
        kind: MessageKind::EXPIRED,
        ..Send::direct(a.user_id, 4, b"", SendFlags::NONE)
    };
    assert_eq!(
        alice.send_message(&expired),
        Err(ErrorCode::InvalidRequest),
        "only the server expires"
    );
    assert_eq!(alice.create_group("g", Persistence(9)), Err(ErrorCode::InvalidRequest));
    assert_eq!(
        alice.add_member(g, a.user_id, GroupRole(9)),
        Err(ErrorCode::InvalidRequest)
    );
    assert_eq!(
        alice.send_group(g + 1, 5, b"x", SendFlags::NONE),
        Err(ErrorCode::NoSuchGroup)
    );
    alice.ping();
}

#[test]
fn a_group_message_with_receipts_gets_one_per_member() {
    let server = Server::start();
    let (mut alice, _) = Client::new_user(server.addr(), "alice");
    let (mut bob, b) = Client::new_user(server.addr(), "bob");
    let (mut carol, c) = Client::new_user(server.addr(), "carol");
    let g = alice.create_group("g", Persistence::ARCHIVE).expect("create");
    alice.add_member(g, b.user_id, GroupRole::MEMBER).expect("add bob");
    alice.add_member(g, c.user_id, GroupRole::MEMBER).expect("add carol");
    let ack = alice
        .send_group(g, 1, b"ack me", SendFlags::DELIVERY_RECEIPT)
        .expect("send");
    for member in [&mut bob, &mut carol] {
        let d = member.expect_deliver();
        member.ack_confirmed(d.inbox_seq);
    }
    let mut from: Vec<u64> = (0..2)
        .map(|_| {
            let r = alice
                .next_receipt(Duration::from_secs(5))
                .expect("a receipt per member");
            assert_eq!((r.message_id, r.conversation), (ack.message_id, Conversation::Group(g)));
            r.user_id
        })
        .collect();
    from.sort_unstable();
    let mut want = vec![b.user_id, c.user_id];
    want.sort_unstable();
    assert_eq!(from, want);
    assert!(alice.next_receipt(QUIET).is_none(), "none from the sender herself");
}

#[test]
fn membership_history_and_unread_counts_survive_a_restart() {
    let mut server = Server::start();
    let (mut alice, _) = Client::new_user(server.addr(), "alice");
    let (bob, b) = Client::new_user(server.addr(), "bob");
    let carol = Client::register_user(server.addr(), "carol");
    let g = alice.create_group("kept", Persistence::ARCHIVE).expect("create");
    alice.add_member(g, b.user_id, GroupRole::ADMIN).expect("add bob");
    let first = alice.send_group(g, 1, b"before", SendFlags::NONE).expect("send");
    drop((alice, bob));
    server.kill9();
    server.restart();

    let (mut alice, _) = Client::login_new_device(server.addr(), "alice", "alice-2");
    let (mut bob, _) = Client::login_new_device(server.addr(), "bob", "bob-2");
    assert_eq!(bob.expect_deliver().message_id, first.message_id, "history at login");
    let second = alice
        .send_group(g, 2, b"after", SendFlags::NONE)
        .expect("send after the restart");
    assert_eq!(bob.expect_deliver().message_id, second.message_id);
    let (mut carol_client, _) = Client::login_new_device(server.addr(), "carol", "carol-1");
    assert_eq!(
        carol_client.send_group(g, 1, b"x", SendFlags::NONE),
        Err(ErrorCode::Forbidden),
        "still not a member"
    );
    assert_eq!(
        bob.add_member(g, carol, GroupRole::ADMIN),
        Err(ErrorCode::Forbidden),
        "roles kept"
    );
    let (list, _) = bob.conversations();
    let group = list
        .iter()
        .find(|p| p.conversation == Conversation::Group(g))
        .expect("the group conversation is listed");
    assert_eq!((group.unread, group.read_seq), (2, 0));
    let next = alice.create_group("next", Persistence::ARCHIVE).expect("create");
    assert!(next > g, "group ids keep increasing across restarts");
}

#[test]
fn pipelined_membership_requests_past_the_in_flight_limit_are_paused_not_lost() {
    // More than SENDS_IN_FLIGHT_MAX (1,024) requests at once: the server stops reading the
    // connection at the limit and resumes as answers go out, so every one is answered.
    const REQUESTS: usize = 1_500;
    let server = Server::start();
    let (mut alice, _) = Client::new_user(server.addr(), "alice");
    let bob = Client::register_user(server.addr(), "bob");
    let g = alice.create_group("busy", Persistence::ARCHIVE).expect("create");
    let requests: Vec<u64> = (0..REQUESTS)
        .map(|i| {
            let role = if i % 2 == 0 {
                GroupRole::MEMBER
            } else {
                GroupRole::ADMIN
            };
            alice.add_member_request(g, bob, role)
        })
        .collect();
    for r in requests {
        alice.wait_done(r).expect("answered");
    }
    let members = alice.all_group_members(g).expect("members");
    assert_eq!(members.len(), 2);
    assert!(
        members.contains(&member(bob, GroupRole::ADMIN)),
        "the last role set wins: {members:?}"
    );
}
