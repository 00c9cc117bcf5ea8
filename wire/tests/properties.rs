//! Property tests: random frames round-trip; random and mutated bytes never panic the decoder.

use hotline_wire::*;
use proptest::prelude::*;

/// Raw material for one random message; `build` picks the body type from `kind`.
#[derive(Debug, Clone)]
struct Raw {
    kind: u8,
    request_id: u64,
    n: [u64; 5],
    v: [u16; 2],
    text: [String; 2],
    bytes: Vec<u8>,
    flags: u8,
    more: bool,
    page: Vec<(u64, u8, Vec<u8>)>,
}

fn raw() -> impl Strategy<Value = Raw> {
    (
        0u8..31,
        any::<u64>(),
        any::<[u64; 5]>(),
        any::<[u16; 2]>(),
        ("\\PC{0,40}", "\\PC{0,40}"),
        proptest::collection::vec(any::<u8>(), 0..600),
        any::<u8>(),
        any::<bool>(),
        proptest::collection::vec(
            (any::<u64>(), 0u8..3, proptest::collection::vec(any::<u8>(), 0..40)),
            0..12,
        ),
    )
        .prop_map(|(kind, request_id, n, v, (t0, t1), bytes, flags, more, page)| Raw {
            kind,
            request_id,
            n,
            v,
            text: [t0, t1],
            bytes,
            flags,
            more,
            page,
        })
}

fn conversation(kind: u8, id: u64) -> Conversation {
    match kind {
        0 => Conversation::Direct(id),
        1 => Conversation::Group(id),
        k => Conversation::Other { kind: k, id },
    }
}

fn deliver<'a>(r: &'a Raw, seq: u64, kind: u8, payload: &'a [u8]) -> Deliver<'a> {
    Deliver {
        message_id: r.n[0],
        conversation: conversation(kind, r.n[1]),
        sender: r.n[2],
        sender_device: r.n[3],
        inbox_seq: seq,
        timestamp_us: r.n[4],
        payload,
        flags: SendFlags(r.flags),
        client_msg_id: r.n[1] ^ r.n[2],
        kind: hotline_wire::MessageKind(r.flags >> 4),
        refers_to: r.n[3] ^ seq,
        durable_seq: r.n[4] ^ seq,
    }
}

#[allow(clippy::too_many_lines, reason = "test data: one arm per body type")]
fn build(r: &Raw) -> Message<'_> {
    let [a, b, c, d, e] = r.n;
    let (s0, s1) = (r.text[0].as_str(), r.text[1].as_str());
    match r.kind {
        0 => Message::Hello(Hello {
            version_min: r.v[0],
            version_max: r.v[1],
            client_name: s0,
        }),
        1 => Message::HelloOk(HelloOk {
            version: r.v[0],
            server_name: s0,
            limits: Limits {
                frame_bytes_max: a as u32,
                payload_bytes_max: b as u32,
                sync_page_messages_max: c as u32,
                idle_timeout_ms: d as u32,
                username_bytes_max: e as u32,
                password_bytes_max: (a >> 32) as u32,
                device_name_bytes_max: (b >> 32) as u32,
            },
        }),
        2 => Message::Register(Register {
            username: s0,
            password: s1,
        }),
        3 => Message::RegisterOk(RegisterOk { user_id: a }),
        4 if r.more => Message::Login(Login {
            credentials: Credentials::Token(&r.bytes),
            device_name: s1,
        }),
        4 => Message::Login(Login {
            credentials: Credentials::Password {
                username: s0,
                password: s1,
            },
            device_name: s0,
        }),
        5 => Message::LoginOk(LoginOk {
            user_id: a,
            device_id: b,
            token: &r.bytes,
            inbox_seq: c,
            device_cursor: d,
            epoch: e,
        }),
        6 => Message::Logout,
        7 => Message::LogoutOk,
        8 => Message::Send(Send {
            client_msg_id: a,
            to: b,
            payload: &r.bytes,
            flags: SendFlags(r.flags),
            group: c,
            kind: hotline_wire::MessageKind(r.v[0] as u8),
            refers_to: d,
        }),
        9 => Message::SendAck(SendAck {
            client_msg_id: a,
            message_id: b,
            inbox_seq: c,
            timestamp_us: d,
        }),
        10 => Message::Deliver(deliver(r, e, r.flags % 4, &r.bytes)),
        11 => Message::Ack(Ack { up_to_seq: a }),
        12 => Message::Sync(Sync {
            after_seq: a,
            limit: b as u32,
        }),
        13 => Message::SyncPage(SyncPage {
            messages: r.page.iter().map(|(seq, kind, p)| deliver(r, *seq, *kind, p)).collect(),
            inbox_seq: a,
            more: r.more,
        }),
        14 => Message::Ping(Ping { nonce: a }),
        15 => Message::Pong(Pong { nonce: a }),
        16 => Message::AckOk(AckOk { device_cursor: a }),
        17 => Message::GroupCreate(hotline_wire::GroupCreate {
            name: s0,
            persistence: hotline_wire::Persistence(r.flags),
        }),
        18 => Message::GroupAddMember(hotline_wire::GroupAddMember {
            group_id: a,
            user_id: b,
            role: hotline_wire::GroupRole(r.flags),
        }),
        19 => Message::GroupMemberList(hotline_wire::GroupMemberList {
            group_id: a,
            members: r
                .page
                .iter()
                .map(|(user_id, role, _)| hotline_wire::GroupMember {
                    user_id: *user_id,
                    role: hotline_wire::GroupRole(*role),
                })
                .collect(),
            more: r.more,
        }),
        20 => Message::GroupList(hotline_wire::GroupList {
            groups: r
                .page
                .iter()
                .map(|(group_id, role, _)| hotline_wire::GroupInfo {
                    group_id: *group_id,
                    name: s1,
                    role: hotline_wire::GroupRole(*role),
                    persistence: hotline_wire::Persistence(r.flags),
                })
                .collect(),
            more: r.more,
        }),
        21 => Message::Receipt(hotline_wire::Receipt {
            kind: hotline_wire::ReceiptKind(r.flags),
            message_id: a,
            conversation: conversation(r.flags % 4, b),
            user_id: c,
            timestamp_us: d,
        }),
        22 => Message::MarkRead(hotline_wire::MarkRead {
            conversation: conversation(r.flags % 4, a),
            up_to_seq: b,
        }),
        23 => Message::ConversationList(hotline_wire::ConversationList {
            conversations: r
                .page
                .iter()
                .map(|(seq, kind, _)| hotline_wire::ReadPosition {
                    conversation: conversation(*kind, a),
                    read_seq: *seq,
                    unread: b,
                    last_seq: c,
                })
                .collect(),
            more: r.more,
        }),
        24 => Message::Conversations(hotline_wire::Conversations {
            after: r.more.then(|| conversation(r.flags % 4, a)),
        }),
        25 => Message::Typing(hotline_wire::Typing {
            conversation: conversation(r.flags % 4, a),
        }),
        26 => Message::TypingNotice(hotline_wire::TypingNotice {
            conversation: conversation(r.flags % 4, a),
            user_id: b,
        }),
        27 => Message::PresenceSubscribe(hotline_wire::PresenceSubscribe { user_ids: r.n.to_vec() }),
        28 => Message::Presence(hotline_wire::Presence {
            user_id: a,
            online: r.more,
            last_seen_us: b,
        }),
        29 => Message::Durable(hotline_wire::Durable { inbox_seq: a }),
        _ => Message::Error(ErrorBody {
            code: ErrorCode::from_wire(r.v[0] % ErrorCode::ALL.len() as u16),
            message: s0,
            retry_after_ms: a as u32,
        }),
    }
}

fn decoder() -> FrameDecoder {
    FrameDecoder::new(FRAME_BYTES_MAX_DEFAULT, SYNC_PAGE_MESSAGES_MAX_DEFAULT)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn random_frames_round_trip(r in raw(), split in any::<prop::sample::Index>()) {
        let msg = build(&r);
        let bytes = Encoder::new().encode(r.request_id, &msg).to_vec();
        let dec = decoder();
        // Any strict prefix asks for more; the whole buffer gives the message back.
        let cut = split.index(bytes.len());
        let need_more = matches!(dec.decode(&bytes[..cut]), Ok(Decoded::NeedMore { .. }));
        prop_assert!(need_more);
        let Ok(Decoded::Frame { frame, consumed }) = dec.decode(&bytes) else {
            return Err(TestCaseError::fail("whole frame did not decode"));
        };
        prop_assert_eq!(consumed, bytes.len());
        prop_assert_eq!(frame.request_id, r.request_id);
        prop_assert_eq!(&frame.message, &msg);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2_048)) {
        let _ = decoder().decode(&bytes);
        let _ = decoder().decode_body(&bytes);
    }

    #[test]
    fn mutated_frames_never_panic(r in raw(), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut bytes = Encoder::new().encode(r.request_id, &build(&r)).to_vec();
        for (at, value) in flips {
            // Leave the length prefix intact so the verifier, not the length check, is exercised.
            let i = FRAME_HEADER_BYTES + at.index(bytes.len() - FRAME_HEADER_BYTES);
            bytes[i] = value;
        }
        if let Ok(Decoded::Frame { frame, .. }) = decoder().decode(&bytes) {
            // Whatever survived verification is a real message that encodes again.
            let again = Encoder::new().encode(frame.request_id, &frame.message).to_vec();
            let redecoded = matches!(decoder().decode(&again), Ok(Decoded::Frame { .. }));
            prop_assert!(redecoded);
        }
    }
}
