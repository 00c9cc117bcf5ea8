//! Codec micro-benchmarks: encode and decode (length check + verification + typed read) of
//! the two hot-path frames, Send and Deliver, at 16 B, 128 B and 4 KiB payloads. Criterion
//! reports time per frame and, through `Throughput::Elements(1)`, frames per second.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hotline_wire::{
    Conversation, Decoded, Deliver, Encoder, FrameDecoder, Message, Send, SendFlags, FRAME_BYTES_MAX_DEFAULT,
};
use std::hint::black_box;

const PAYLOAD_SIZES: [usize; 3] = [16, 128, 4096];

fn send(payload: &[u8]) -> Message<'_> {
    Message::Send(Send {
        client_msg_id: 0x1234_5678,
        to: 987_654,
        payload,
        flags: SendFlags::DELIVERY_RECEIPT,
        group: 0,
        kind: hotline_wire::MessageKind::NORMAL,
        refers_to: 0,
    })
}

fn deliver(payload: &[u8]) -> Message<'_> {
    Message::Deliver(Deliver {
        message_id: 1 << 40,
        conversation: Conversation::Direct(123_456),
        sender: 123_456,
        sender_device: 3,
        inbox_seq: 1_000_000,
        timestamp_us: 1_764_000_000_000_000,
        payload,
        flags: SendFlags::NONE,
        client_msg_id: 0x1234_5678,
        kind: hotline_wire::MessageKind::NORMAL,
        refers_to: 0,
        durable_seq: 999_999,
    })
}

fn codec(c: &mut Criterion) {
    type Build = for<'a> fn(&'a [u8]) -> Message<'a>;
    let kinds: [(&str, Build); 2] = [("send", send), ("deliver", deliver)];
    for (name, build) in kinds {
        let mut group = c.benchmark_group(format!("wire/{name}"));
        group.throughput(Throughput::Elements(1));
        for size in PAYLOAD_SIZES {
            let payload = vec![0xA5u8; size];
            let message = build(&payload);
            let mut encoder = Encoder::new();
            let mut out = Vec::with_capacity(8192);
            group.bench_with_input(BenchmarkId::new("encode", size), &message, |b, m| {
                b.iter(|| {
                    out.clear();
                    encoder.encode_into(black_box(7), black_box(m), &mut out);
                    black_box(out.len())
                })
            });
            let bytes = encoder.encode(7, &message).to_vec();
            let decoder = FrameDecoder::new(FRAME_BYTES_MAX_DEFAULT, 0);
            group.bench_with_input(BenchmarkId::new("decode", size), &bytes, |b, bytes| {
                b.iter(|| match decoder.decode(black_box(bytes)) {
                    Ok(Decoded::Frame { frame, consumed }) => black_box((frame.request_id, consumed)),
                    other => panic!("benchmark frame did not decode: {other:?}"),
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, codec);
criterion_main!(benches);
