//! Hostile and broken bytes: each gives a typed error, never a panic, and the decoder never
//! allocates what a length prefix merely claims (a counting allocator watches every test).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use flatbuffers::{FlatBufferBuilder, InvalidFlatbuffer, VerifierOptions};
use hotline_wire::*;

/// Counts this thread's allocations, so tests running in parallel do not see each other's.
struct CountingAlloc;

thread_local! {
    static LARGEST_BYTES: Cell<usize> = const { Cell::new(0) };
    static TOTAL_BYTES: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: defers to the system allocator; the bookkeeping touches only const-initialised
// thread-locals, which never allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LARGEST_BYTES.try_with(|l| l.set(l.get().max(layout.size())));
        let _ = TOTAL_BYTES.try_with(|t| t.set(t.get() + layout.size()));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Runs `f` and returns its result with the largest single and the total bytes it allocated.
fn measured<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    LARGEST_BYTES.with(|l| l.set(0));
    TOTAL_BYTES.with(|t| t.set(0));
    let out = f();
    (out, LARGEST_BYTES.with(Cell::get), TOTAL_BYTES.with(Cell::get))
}

fn decoder() -> FrameDecoder {
    FrameDecoder::new(FRAME_BYTES_MAX_DEFAULT, 0)
}

fn malformed(result: Result<Decoded<'_>, FrameError>) -> InvalidFlatbuffer {
    match result {
        Err(FrameError::Malformed(e)) => e,
        other => panic!("expected Malformed, got {other:?}"),
    }
}

fn encode(request_id: u64, m: &Message<'_>) -> Vec<u8> {
    Encoder::new().encode(request_id, m).to_vec()
}

#[test]
fn a_4_gib_length_prefix_is_rejected_without_allocating() {
    let dec = decoder();
    let bytes = [0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3];
    let (result, largest, total) = measured(|| dec.decode(&bytes));
    assert_eq!(
        result,
        Err(FrameError::TooLarge {
            len: u64::from(u32::MAX),
            max: FRAME_BYTES_MAX_DEFAULT
        })
    );
    assert!(result.as_ref().is_err_and(FrameError::is_fatal));
    assert_eq!((largest, total), (0, 0), "rejecting a length must not allocate");
}

#[test]
fn one_byte_over_the_limit_is_too_large_and_the_limit_itself_is_not() {
    let dec = FrameDecoder::new(100, 0);
    let over = 101u32.to_le_bytes();
    assert_eq!(dec.decode(&over), Err(FrameError::TooLarge { len: 101, max: 100 }));
    let at = 100u32.to_le_bytes();
    assert_eq!(dec.decode(&at), Ok(Decoded::NeedMore { bytes_needed: 100 }));
    assert!(matches!(
        dec.decode_body(&[0; 101]),
        Err(FrameError::TooLarge { len: 101, max: 100 })
    ));
}

#[test]
fn a_truncated_frame_needs_more_and_a_short_length_is_malformed() {
    let whole = encode(
        3,
        &Message::Send(Send {
            client_msg_id: 1,
            to: 2,
            payload: b"hello",
            flags: SendFlags::NONE,
            group: 0,
            kind: hotline_wire::MessageKind::NORMAL,
            refers_to: 0,
        }),
    );
    let dec = decoder();
    assert_eq!(
        dec.decode(&whole[..whole.len() - 1]),
        Ok(Decoded::NeedMore { bytes_needed: 1 })
    );
    // Claim fewer bytes than the buffer really needs: its offsets now point past the end.
    let mut short = whole.clone();
    let cut = (whole.len() - FRAME_HEADER_BYTES - 16) as u32;
    short[..4].copy_from_slice(&cut.to_le_bytes());
    short.truncate(FRAME_HEADER_BYTES + cut as usize);
    let (result, largest, _) = measured(|| dec.decode(&short));
    malformed(result);
    assert!(largest < 4096, "error path allocated {largest} bytes");
}

#[test]
fn garbage_bytes_are_malformed() {
    let mut bytes = 24u32.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"\xde\xad\xbe\xef not a flatbuffer \x00\x01");
    bytes.truncate(28);
    malformed(decoder().decode(&bytes));
}

#[test]
fn an_out_of_bounds_root_offset_is_malformed() {
    let mut bytes = encode(1, &Message::Ping(Ping { nonce: 9 }));
    // The root offset is the first u32 after the length prefix.
    bytes[4..8].copy_from_slice(&0x7FFF_FFF0u32.to_le_bytes());
    malformed(decoder().decode(&bytes));
}

#[test]
fn an_out_of_bounds_vector_length_is_malformed() {
    let payload = [0x5Au8; 16];
    let mut bytes = encode(
        1,
        &Message::Send(Send {
            client_msg_id: 1,
            to: 2,
            payload: &payload,
            flags: SendFlags::NONE,
            group: 0,
            kind: hotline_wire::MessageKind::NORMAL,
            refers_to: 0,
        }),
    );
    // Find the payload's length word (16 u32 LE, directly before the payload bytes) and inflate it.
    let at = bytes
        .windows(20)
        .position(|w| w[..4] == 16u32.to_le_bytes() && w[4..] == payload)
        .expect("payload");
    bytes[at..at + 4].copy_from_slice(&1_000_000u32.to_le_bytes());
    let err = malformed(decoder().decode(&bytes));
    assert!(matches!(err, InvalidFlatbuffer::RangeOutOfBounds { .. }), "{err:?}");
}

fn frame_with_raw_body(tag: u8, with_body: bool) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let body = with_body.then(|| fb::Ping::create(&mut fbb, &fb::PingArgs { nonce: 1 }).as_union_value());
    let frame = fb::Frame::create(
        &mut fbb,
        &fb::FrameArgs {
            request_id: 77,
            body_type: fb::Body(tag),
            body,
        },
    );
    fbb.finish_size_prefixed(frame, None);
    fbb.finished_data().to_vec()
}

#[test]
fn an_unknown_union_tag_is_a_typed_error_that_keeps_the_request_id() {
    let err = decoder().decode(&frame_with_raw_body(200, true)).unwrap_err();
    assert_eq!(
        err,
        FrameError::UnknownBody {
            request_id: 77,
            tag: 200
        }
    );
    assert!(!err.is_fatal());
    assert_eq!(err.code(), ErrorCode::UnknownBody);
}

#[test]
fn a_missing_body_is_a_typed_error() {
    assert_eq!(
        decoder().decode(&frame_with_raw_body(0, false)),
        Err(FrameError::MissingBody { request_id: 77 })
    );
    // A known tag whose body offset is absent: the verifier calls the union inconsistent.
    let err = malformed(decoder().decode(&frame_with_raw_body(fb::Body::Send.0, false)));
    assert!(matches!(err, InvalidFlatbuffer::InconsistentUnion { .. }), "{err:?}");
}

#[test]
fn a_union_tag_naming_the_wrong_table_is_verified_as_that_table() {
    // Body says Send but points at a Ping table: verified as a Send, it reads field 0
    // (client_msg_id) from Ping's nonce and finds no payload. Memory-safe and typed.
    let bytes = frame_with_raw_body(fb::Body::Send.0, true);
    let frame = decoder().decode(&bytes).expect("well formed");
    let Decoded::Frame { frame, .. } = frame else {
        panic!("incomplete")
    };
    assert_eq!(
        frame.message,
        Message::Send(Send {
            client_msg_id: 1,
            to: 0,
            payload: &[],
            flags: SendFlags::NONE,
            group: 0,
            kind: hotline_wire::MessageKind::NORMAL,
            refers_to: 0,
        })
    );
}

#[test]
fn missing_and_contradictory_fields_are_typed_errors() {
    let mut fbb = FlatBufferBuilder::new();
    let username = Some(fbb.create_string("alice"));
    let body = fb::Register::create(
        &mut fbb,
        &fb::RegisterArgs {
            username,
            password: None,
        },
    );
    let frame = fb::Frame::create(
        &mut fbb,
        &fb::FrameArgs {
            request_id: 5,
            body_type: fb::Body::Register,
            body: Some(body.as_union_value()),
        },
    );
    fbb.finish_size_prefixed(frame, None);
    assert_eq!(
        decoder().decode(fbb.finished_data()),
        Err(FrameError::MissingField {
            request_id: 5,
            field: "Register.password"
        })
    );

    let mut fbb = FlatBufferBuilder::new();
    let username = Some(fbb.create_string("alice"));
    let password = Some(fbb.create_string("pw"));
    let token = Some(fbb.create_vector(&[1u8; 32]));
    let body = fb::Login::create(
        &mut fbb,
        &fb::LoginArgs {
            username,
            password,
            token,
            device_name: None,
        },
    );
    let frame = fb::Frame::create(
        &mut fbb,
        &fb::FrameArgs {
            request_id: 6,
            body_type: fb::Body::Login,
            body: Some(body.as_union_value()),
        },
    );
    fbb.finish_size_prefixed(frame, None);
    let err = decoder().decode(fbb.finished_data()).unwrap_err();
    assert!(
        matches!(
            err,
            FrameError::InvalidField {
                request_id: 6,
                field: "Login",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.code(), ErrorCode::InvalidRequest);
}

fn sync_page_frame() -> Vec<u8> {
    let page = SyncPage {
        messages: (1..=4).map(|s| common::deliver(s, b"abc")).collect(),
        inbox_seq: 4,
        more: false,
    };
    encode(1, &Message::SyncPage(page))
}

#[test]
fn excessive_nesting_hits_the_depth_limit() {
    let shallow = VerifierOptions {
        max_depth: 2,
        ..VerifierOptions::default()
    };
    let dec = FrameDecoder::new(FRAME_BYTES_MAX_DEFAULT, 16).with_verifier_options(shallow);
    let err = malformed(dec.decode(&sync_page_frame()));
    assert!(matches!(err, InvalidFlatbuffer::DepthLimitReached), "{err:?}");
}

#[test]
fn too_many_tables_hits_the_table_limit() {
    // A server's decoder (no SyncPage expected) refuses a page of more tables than it allows.
    let page = SyncPage {
        messages: (1..=40).map(|s| common::deliver(s, b"")).collect(),
        ..SyncPage::default()
    };
    let bytes = encode(1, &Message::SyncPage(page));
    let err = malformed(FrameDecoder::new(FRAME_BYTES_MAX_DEFAULT, 0).decode(&bytes));
    assert!(matches!(err, InvalidFlatbuffer::TooManyTables), "{err:?}");
    // ...which a client's decoder, sized for pages, accepts.
    assert!(FrameDecoder::new(FRAME_BYTES_MAX_DEFAULT, 64).decode(&bytes).is_ok());
}

#[test]
fn apparent_size_is_bounded() {
    let tight = VerifierOptions {
        max_apparent_size: 64,
        ..VerifierOptions::default()
    };
    let dec = FrameDecoder::new(FRAME_BYTES_MAX_DEFAULT, 16).with_verifier_options(tight);
    let err = malformed(dec.decode(&sync_page_frame()));
    assert!(matches!(err, InvalidFlatbuffer::ApparentSizeTooLarge), "{err:?}");
}

#[test]
fn a_string_that_is_not_utf8_is_malformed() {
    let mut bytes = encode(
        1,
        &Message::Error(ErrorBody {
            code: ErrorCode::Internal,
            message: "abcdef",
            retry_after_ms: 0,
        }),
    );
    let at = bytes.windows(6).position(|w| w == b"abcdef").expect("string");
    bytes[at] = 0xFF;
    let err = malformed(decoder().decode(&bytes));
    assert!(matches!(err, InvalidFlatbuffer::Utf8Error { .. }), "{err:?}");
}

/// xorshift64*: deterministic, dependency-free randomness; the seed is in every message.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn ten_thousand_random_byte_strings_are_rejected_with_typed_errors() {
    const SEED: u64 = 0x4854_4C4E_2026_1125;
    let mut rng = Rng(SEED);
    let dec = decoder();
    let mut by_outcome = std::collections::BTreeMap::<&str, usize>::new();
    for i in 0..10_000 {
        let len = (rng.next() % 300) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Half get a length prefix that fits the buffer, so the verifier sees random bodies;
        // the rest keep a random (usually huge) prefix.
        if i % 2 == 0 && len > 4 {
            bytes[..4].copy_from_slice(&((len - 4) as u32).to_le_bytes());
        }
        let claimed = bytes.first_chunk::<4>().map_or(0, |h| u32::from_le_bytes(*h) as usize);
        let (result, largest, _) = measured(|| dec.decode(&bytes));
        assert!(
            largest < 4096 && (largest < claimed || claimed < 4096),
            "seed {SEED:#x} #{i}: allocated {largest}"
        );
        let outcome = match result {
            Ok(Decoded::NeedMore { .. }) => "need more",
            Ok(Decoded::Frame { frame, .. }) => panic!("seed {SEED:#x} #{i}: random bytes decoded as {frame:?}"),
            Err(FrameError::TooLarge { .. }) => "too large",
            Err(FrameError::Empty) => "empty",
            Err(FrameError::Malformed(_)) => "malformed",
            Err(FrameError::MissingBody { .. }) => "missing body",
            Err(FrameError::UnknownBody { .. }) => "unknown body",
            Err(FrameError::MissingField { .. } | FrameError::InvalidField { .. }) => "bad field",
        };
        *by_outcome.entry(outcome).or_default() += 1;
    }
    // The prefixed half really exercised the verifier.
    assert!(
        by_outcome.get("malformed").copied().unwrap_or(0) >= 4_000,
        "{by_outcome:?}"
    );
    assert!(
        by_outcome.get("too large").copied().unwrap_or(0) >= 4_000,
        "{by_outcome:?}"
    );
}
