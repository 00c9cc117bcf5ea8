//! Sample frames shared by the wire tests: at least one of every `Body` member.
#![allow(dead_code)]

use hotline_wire::*;

pub const PAYLOAD: &[u8] = b"opaque \x00\x01\xff payload";
pub const TOKEN: [u8; TOKEN_BYTES] = [7; TOKEN_BYTES];

pub fn deliver(seq: u64, payload: &[u8]) -> Deliver<'_> {
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
    }
}

/// One message of every body type (and the interesting variants of some).
pub fn every_message() -> Vec<Message<'static>> {
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
        }),
        Message::Logout,
        Message::LogoutOk,
        Message::Send(Send {
            client_msg_id: 5,
            to: 42,
            payload: PAYLOAD,
            flags: SendFlags::READ_RECEIPT,
        }),
        Message::Send(Send {
            client_msg_id: 6,
            to: 42,
            payload: &[],
            flags: SendFlags::NONE,
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
    ]
}
