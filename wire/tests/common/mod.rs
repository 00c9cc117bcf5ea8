//! Sample frames shared by the wire tests: at least one of every `Body` member.
#![allow(dead_code)]

use hotline_wire::*;

pub(crate) const PAYLOAD: &[u8] = b"opaque \x00\x01\xff payload";
pub(crate) const TOKEN: [u8; TOKEN_BYTES] = [7; TOKEN_BYTES];

pub(crate) fn deliver(seq: u64, payload: &[u8]) -> Deliver<'_> {
    Deliver {
        message_id: 1_000 + seq,
        conversation: Conversation::Direct(42),
        sender: 42,
        sender_device: 3,
        inbox_seq: seq,
        timestamp_us: 1_700_000_000_000_000 + seq,
        payload,
        flags: SendFlags::DELIVERY_RECEIPT,
        client_msg_id: 9_000 + seq,
        kind: hotline_wire::MessageKind::NORMAL,
        refers_to: 0,
        durable_seq: seq - 1,
    }
}

/// One message of every body type (and the interesting variants of some).
#[allow(clippy::too_many_lines, reason = "test data: one literal per body type")]
pub(crate) fn every_message() -> Vec<Message<'static>> {
    vec![
        Message::Hello(Hello {
            version_min: 1,
            version_max: 3,
            client_name: "test-client/1.0",
        }),
        Message::HelloOk(HelloOk {
            version: 1,
            server_name: "hotline",
            limits: Limits::default(),
        }),
        Message::Register(Register {
            username: "alice",
            password: "correct horse",
        }),
        Message::RegisterOk(RegisterOk { user_id: 17 }),
        Message::Login(Login {
            credentials: Credentials::Password {
                username: "alice",
                password: "pw",
            },
            device_name: "laptop",
        }),
        Message::Login(Login {
            credentials: Credentials::Token(&TOKEN),
            device_name: "",
        }),
        Message::LoginOk(LoginOk {
            user_id: 17,
            device_id: 2,
            token: &TOKEN,
            inbox_seq: 99,
            device_cursor: 90,
            epoch: 4,
        }),
        Message::Logout,
        Message::LogoutOk,
        Message::Send(Send {
            client_msg_id: 5,
            to: 42,
            payload: PAYLOAD,
            flags: SendFlags::READ_RECEIPT,
            group: 0,
            kind: hotline_wire::MessageKind::NORMAL,
            refers_to: 0,
        }),
        Message::Send(Send {
            client_msg_id: 6,
            to: 42,
            payload: &[],
            flags: SendFlags::NONE,
            group: 0,
            kind: hotline_wire::MessageKind::NORMAL,
            refers_to: 0,
        }),
        Message::SendAck(SendAck {
            client_msg_id: 5,
            message_id: 77,
            inbox_seq: 12,
            timestamp_us: 123,
        }),
        Message::Deliver(deliver(12, PAYLOAD)),
        Message::Deliver(Deliver {
            conversation: Conversation::Group(8),
            ..deliver(13, b"")
        }),
        Message::Deliver(Deliver {
            conversation: Conversation::Other { kind: 9, id: 1 },
            ..deliver(14, b"x")
        }),
        Message::Ack(Ack { up_to_seq: 12 }),
        Message::AckOk(AckOk { device_cursor: 12 }),
        Message::Durable(Durable { inbox_seq: 13 }),
        Message::Sync(Sync {
            after_seq: 3,
            limit: 50,
        }),
        Message::SyncPage(SyncPage {
            messages: vec![],
            inbox_seq: 0,
            more: false,
        }),
        Message::SyncPage(SyncPage {
            messages: (1..=5).map(|s| deliver(s, PAYLOAD)).collect(),
            inbox_seq: 20,
            more: true,
        }),
        Message::Ping(Ping { nonce: 1 }),
        Message::Pong(Pong { nonce: u64::MAX }),
        Message::Error(ErrorBody {
            code: ErrorCode::RateLimited,
            message: "slow down",
            retry_after_ms: 250,
        }),
        Message::Send(Send {
            client_msg_id: 7,
            to: 0,
            payload: b"fixed",
            flags: SendFlags::DELIVERY_RECEIPT,
            group: 9,
            kind: hotline_wire::MessageKind::EDIT,
            refers_to: 77,
        }),
        Message::Deliver(Deliver {
            kind: hotline_wire::MessageKind::DELETE,
            refers_to: 77,
            ..deliver(15, b"")
        }),
        Message::GroupCreate(hotline_wire::GroupCreate {
            name: "ops",
            persistence: hotline_wire::Persistence::UNTIL_DELIVERED,
        }),
        Message::GroupCreated(hotline_wire::GroupCreated { group_id: 3 }),
        Message::GroupAddMember(hotline_wire::GroupAddMember {
            group_id: 3,
            user_id: 4,
            role: hotline_wire::GroupRole::ADMIN,
        }),
        Message::GroupRemoveMember(hotline_wire::GroupRemoveMember {
            group_id: 3,
            user_id: 4,
        }),
        Message::GroupLeave(hotline_wire::GroupLeave { group_id: 3 }),
        Message::GroupMembers(hotline_wire::GroupMembers {
            group_id: 3,
            after_user_id: 1,
        }),
        Message::GroupMemberList(hotline_wire::GroupMemberList {
            group_id: 3,
            members: vec![hotline_wire::GroupMember {
                user_id: 4,
                role: hotline_wire::GroupRole::OWNER,
            }],
            more: true,
        }),
        Message::MyGroups(hotline_wire::MyGroups { after_group_id: 2 }),
        Message::GroupList(hotline_wire::GroupList {
            groups: vec![hotline_wire::GroupInfo {
                group_id: 3,
                name: "ops",
                role: hotline_wire::GroupRole::MEMBER,
                persistence: hotline_wire::Persistence::EPHEMERAL,
            }],
            more: false,
        }),
        Message::Done,
        Message::Receipt(hotline_wire::Receipt {
            kind: hotline_wire::ReceiptKind::READ,
            message_id: 77,
            conversation: Conversation::Direct(4),
            user_id: 4,
            timestamp_us: 5,
        }),
        Message::MarkRead(hotline_wire::MarkRead {
            conversation: Conversation::Group(3),
            up_to_seq: 12,
        }),
        Message::ReadPosition(hotline_wire::ReadPosition {
            conversation: Conversation::Group(3),
            read_seq: 12,
            unread: 2,
            last_seq: 14,
        }),
        Message::Conversations(hotline_wire::Conversations { after: None }),
        Message::Conversations(hotline_wire::Conversations {
            after: Some(Conversation::Direct(2)),
        }),
        Message::ConversationList(hotline_wire::ConversationList {
            conversations: vec![hotline_wire::ReadPosition {
                conversation: Conversation::Direct(2),
                read_seq: 1,
                unread: 0,
                last_seq: 1,
            }],
            more: true,
        }),
        Message::Typing(hotline_wire::Typing {
            conversation: Conversation::Group(3),
        }),
        Message::TypingNotice(hotline_wire::TypingNotice {
            conversation: Conversation::Direct(2),
            user_id: 2,
        }),
        Message::PresenceSubscribe(hotline_wire::PresenceSubscribe { user_ids: vec![2, 3] }),
        Message::Presence(hotline_wire::Presence {
            user_id: 2,
            online: true,
            last_seen_us: 9,
        }),
        Message::SetPersistence(hotline_wire::SetPersistence {
            conversation: Conversation::Direct(2),
            persistence: hotline_wire::Persistence::EPHEMERAL,
        }),
    ]
}
