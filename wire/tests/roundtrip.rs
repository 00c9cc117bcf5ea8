//! Every message type survives encode → decode unchanged, through the length-prefixed
//! stream framing and through bare bodies (WebSocket), whole and fed one byte at a time.

mod common;

use hotline_wire::*;

fn decoder() -> FrameDecoder {
    FrameDecoder::new(FRAME_BYTES_MAX_DEFAULT, SYNC_PAGE_MESSAGES_MAX_DEFAULT)
}

#[test]
fn every_message_type_round_trips() {
    let mut enc = Encoder::new();
    let dec = decoder();
    let messages = common::every_message();
    let mut seen = std::collections::HashSet::new();
    for (i, msg) in messages.iter().enumerate() {
        let request_id = i as u64 * 1_000_003;
        let bytes = enc.encode(request_id, msg).to_vec();
        let Decoded::Frame { frame, consumed } = dec.decode(&bytes).expect("decodes") else {
            panic!("{} did not decode whole", msg.name());
        };
        assert_eq!(consumed, bytes.len());
        assert_eq!(frame.request_id, request_id);
        assert_eq!(&frame.message, msg);
        let body = enc.encode_body(request_id, msg).to_vec();
        assert_eq!(dec.decode_body(&body).expect("body decodes").message, *msg);
        seen.insert(msg.name());
    }
    // Every union member of the schema is covered.
    for name in fb::Body::ENUM_VALUES
        .iter()
        .filter_map(|b| b.variant_name())
        .filter(|n| *n != "NONE")
    {
        assert!(seen.contains(name), "no round-trip sample for {name}");
    }
}

#[test]
fn a_stream_fed_one_byte_at_a_time_yields_every_frame_once() {
    let mut enc = Encoder::new();
    let messages = common::every_message();
    let mut stream = Vec::new();
    for (i, msg) in messages.iter().enumerate() {
        enc.encode_into(i as u64, msg, &mut stream);
    }
    let dec = decoder();
    let mut buf = Vec::new();
    let mut decoded = 0usize;
    for byte in stream {
        buf.push(byte);
        loop {
            match dec.decode(&buf).expect("valid stream") {
                Decoded::NeedMore { bytes_needed } => {
                    assert!(bytes_needed > 0);
                    break;
                }
                Decoded::Frame { frame, consumed } => {
                    assert_eq!(frame.request_id, decoded as u64);
                    assert_eq!(frame.message, messages[decoded]);
                    decoded += 1;
                    buf.drain(..consumed);
                }
            }
        }
    }
    assert_eq!(decoded, messages.len());
    assert!(buf.is_empty());
}

#[test]
fn a_large_sync_page_round_trips_within_limits() {
    let payload = vec![0xAB; 3_000];
    let page = Message::SyncPage(SyncPage {
        messages: (1..=u64::from(SYNC_PAGE_MESSAGES_MAX_DEFAULT))
            .map(|s| common::deliver(s, &payload))
            .collect(),
        inbox_seq: 1 << 40,
        more: true,
    });
    let mut enc = Encoder::new();
    let bytes = enc.encode(1, &page).to_vec();
    assert!(bytes.len() <= FRAME_BYTES_MAX_DEFAULT as usize);
    let Decoded::Frame { frame, .. } = decoder().decode(&bytes).expect("decodes") else {
        panic!("incomplete")
    };
    assert_eq!(frame.message, page);
}

#[test]
fn a_largest_payload_deliver_fits_in_a_frame() {
    let payload = vec![1u8; PAYLOAD_BYTES_MAX_DEFAULT as usize];
    let mut d = common::deliver(1, &payload);
    d.inbox_seq = u64::MAX;
    d.message_id = u64::MAX;
    d.sender = u64::MAX;
    d.sender_device = u64::MAX;
    d.timestamp_us = u64::MAX;
    d.client_msg_id = u64::MAX;
    let bytes = Encoder::new().encode(u64::MAX, &Message::Deliver(d)).to_vec();
    let body = bytes.len() - FRAME_HEADER_BYTES;
    assert!(
        body as u32 <= PAYLOAD_BYTES_MAX_DEFAULT + DELIVER_OVERHEAD_BYTES_MAX,
        "overhead {}",
        body
    );
}
