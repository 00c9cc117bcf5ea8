//! Feeds arbitrary bytes to the frame decoder as a stream (every frame in the input, the
//! way a connection reads them) and as a bare WebSocket body. It must never panic, never
//! read out of bounds, and whatever it accepts must encode and decode again unchanged.
#![no_main]

use hotline_wire::{Decoded, Encoder, FrameDecoder, FRAME_BYTES_MAX_DEFAULT, SYNC_PAGE_MESSAGES_MAX_DEFAULT};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let decoder = FrameDecoder::new(FRAME_BYTES_MAX_DEFAULT, SYNC_PAGE_MESSAGES_MAX_DEFAULT);
    let mut encoder = Encoder::new();
    let mut rest = data;
    while let Ok(Decoded::Frame { frame, consumed }) = decoder.decode(rest) {
        let again = encoder.encode(frame.request_id, &frame.message).to_vec();
        match decoder.decode(&again) {
            Ok(Decoded::Frame { frame: back, .. }) => assert_eq!(back, frame),
            other => panic!("re-encoded frame did not decode: {other:?}"),
        }
        rest = &rest[consumed..];
    }
    if let Ok(frame) = decoder.decode_body(data) {
        let body = encoder.encode_body(frame.request_id, &frame.message).to_vec();
        assert_eq!(decoder.decode_body(&body).ok(), Some(frame));
    }
});
