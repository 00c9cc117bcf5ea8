//! One connection's inbound path, fed a sequence of reads: the input is split into chunks
//! (each chunk's first byte is its length), and the chunks go, in order, (a) into the
//! plain-TCP path (an inbound buffer carried between reads, frames decoded and drained as
//! the server's event loop does) and (b) into a server-side WebSocket layer (the HTTP
//! upgrade phase, then WebSocket messages) whose frames go through the same decoder.
//! Invariants: no panic; the carried buffer never holds more than one frame's worth plus
//! one read; every byte is either consumed by a frame or still carried; after an over-long
//! length prefix nothing more is decoded (the server closes).
//!
//! This models the transport and framing part of per-connection handling without the
//! engine (whose `Core` needs RocksDB, a 13-minute sanitizer build).
#![no_main]

use std::sync::Arc;

use hotline_transport::{Layer, ServerSettings, WsServerSettings};
use hotline_wire::{
    frame_body_len, Decoded, FrameDecoder, FrameError, FRAME_HEADER_BYTES, SYNC_PAGE_MESSAGES_MAX_DEFAULT,
};
use libfuzzer_sys::fuzz_target;

/// Small, so the fuzzer reaches the limit.
const FRAME_BYTES_MAX: u32 = 4096;

/// Slices and decodes every whole frame at the front of `inbound` the way the server's
/// event loop does (`engine/src/conn.rs`: length first, then the frame), draining
/// what it used; false once the stream is no longer trusted (the server closes).
fn drain_frames(decoder: &FrameDecoder, inbound: &mut Vec<u8>) -> bool {
    let mut at = 0;
    let trusted = loop {
        let rest = &inbound[at..];
        let len = match frame_body_len(rest, FRAME_BYTES_MAX) {
            Ok(None) => break true,
            Ok(Some(len)) => len,
            Err(FrameError::TooLarge { .. }) => break false,
            Err(_) => {
                at += FRAME_HEADER_BYTES;
                continue;
            }
        };
        let end = FRAME_HEADER_BYTES + len;
        if rest.len() < end {
            break true;
        }
        match decoder.decode(&rest[..end]) {
            Ok(Decoded::Frame { consumed, .. }) => assert_eq!(consumed, end),
            Ok(Decoded::NeedMore { .. }) => panic!("a whole frame was sliced out, yet NeedMore"),
            Err(_) => {}
        }
        at += end;
    };
    inbound.drain(..at.min(inbound.len()));
    trusted
}

fuzz_target!(|data: &[u8]| {
    let decoder = FrameDecoder::new(FRAME_BYTES_MAX, SYNC_PAGE_MESSAGES_MAX_DEFAULT);
    let settings = ServerSettings {
        tls: None,
        ws: Some(Arc::new(WsServerSettings {
            frame_bytes_max: FRAME_BYTES_MAX,
            origins_allowed: Vec::new(),
            files: None,
        })),
    };
    let mut ws = Layer::server(&settings).ok().flatten().expect("a WebSocket layer");
    let mut plain: Vec<u8> = Vec::new();
    let mut plain_trusted = true;
    let mut ws_frames: Vec<u8> = Vec::new();
    let mut ws_ok = true;
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let chunk = &tail[..usize::from(len).min(tail.len())];
        rest = &tail[chunk.len()..];

        if plain_trusted {
            plain.extend_from_slice(chunk);
            plain_trusted = drain_frames(&decoder, &mut plain);
            if plain_trusted {
                assert!(plain.len() < 4 + FRAME_BYTES_MAX as usize + 256, "carried {} bytes", plain.len());
            }
        }

        if ws_ok {
            ws_ok = ws.ingest(chunk, &mut ws_frames).is_ok();
            drain_frames(&decoder, &mut ws_frames);
            // A reply goes out the same way the server sends one.
            if ws.is_open() {
                let _ = ws.seal(&[4, 0, 0, 0, 0, 0, 0, 0]);
                let n = ws.wire().len();
                ws.consume_wire(n);
            }
        }
    }
});
