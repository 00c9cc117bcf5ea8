//! Framing: the length prefix, the decoder over partial input, and the reusable encoder.
//!
//! The contract (also in the header of `wire/schema/hotline.fbs`):
//! - On a byte stream (TCP, TLS) a frame is one FlatBuffers *size-prefixed* buffer with a
//!   `Frame` root: `u32` little-endian length `n`, then `n` bytes, every field aligned
//!   counting from the first byte of the length. Any FlatBuffers library builds it with
//!   `finish_size_prefixed` / `FinishSizePrefixed` and reads it with `size_prefixed_root` /
//!   `GetSizePrefixedRoot`; [`Encoder::encode`] builds exactly that and
//!   [`FrameDecoder::decode`] verifies exactly that. The `n` bytes alone are not a standard
//!   buffer (8-byte fields at 4 mod 8 from their first byte), and a standard buffer behind
//!   a hand-written length fails verification as [`FrameError::Malformed`].
//! - On WebSocket one binary message is one standard finished buffer (`finish` / `Finish`,
//!   read with `root` / `GetRoot`), aligned from its own first byte, no length prefix:
//!   [`Encoder::encode_body`] and [`FrameDecoder::decode_body`]. The transport crate turns
//!   one form into the other by moving the root (`hotline_transport`'s `push_realigned`),
//!   so the engine only ever sees stream frames.
//!
//! Invariants the decoder keeps:
//! - The length is checked against `frame_bytes_max` before a single body byte is looked
//!   at, and the decoder never allocates: it reads the caller's buffer in place, so a
//!   claimed length of 4 GiB costs nothing but its typed error.
//! - A body is handed to typed readers only after the FlatBuffers verifier accepted it
//!   under explicit [`VerifierOptions`] (depth, tables, apparent size).
//! - Decoding never panics, whatever the input (fuzzed and property-tested).

use flatbuffers::{FlatBufferBuilder, InvalidFlatbuffer, VerifierOptions, WIPOffset};

use crate::fb;
use crate::limits::{FRAME_HEADER_BYTES, VERIFY_DEPTH_MAX, VERIFY_TABLES_BASE_MAX};
use crate::message::{Frame, Message};

/// Why a frame could not be decoded.
///
/// Only [`FrameError::TooLarge`] leaves the byte stream untrusted; after any other error
/// the length prefix was honoured, the next frame starts where it says, and a server may
/// answer with an `Error` frame echoing [`FrameError::request_id`] and carry on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix claims more than the limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: u64, max: u32 },
    /// The length prefix is zero.
    #[error("empty frame (length prefix 0)")]
    Empty,
    /// The FlatBuffers verifier rejected the body.
    #[error("malformed frame: {0}")]
    Malformed(InvalidFlatbuffer),
    /// The frame's body union is empty.
    #[error("frame {request_id} has no body")]
    MissingBody { request_id: u64 },
    /// The body is a union member this version does not know (a newer peer, or garbage).
    #[error("frame {request_id} has unknown body type {tag}")]
    UnknownBody { request_id: u64, tag: u8 },
    /// A field the body needs is absent.
    #[error("frame {request_id}: {field} is missing")]
    MissingField { request_id: u64, field: &'static str },
    /// A field is present but not acceptable.
    #[error("frame {request_id}: {field}: {reason}")]
    InvalidField {
        request_id: u64,
        field: &'static str,
        reason: &'static str,
    },
}

impl FrameError {
    /// Whether the byte stream can no longer be trusted, so the connection must close.
    pub fn is_fatal(&self) -> bool {
        matches!(self, FrameError::TooLarge { .. })
    }

    /// The request id to echo in an `Error` reply, when the frame got far enough to have one.
    pub fn request_id(&self) -> u64 {
        match self {
            FrameError::TooLarge { .. } | FrameError::Empty | FrameError::Malformed(_) => 0,
            FrameError::MissingBody { request_id }
            | FrameError::UnknownBody { request_id, .. }
            | FrameError::MissingField { request_id, .. }
            | FrameError::InvalidField { request_id, .. } => *request_id,
        }
    }

    /// The protocol error code that reports this failure to the peer.
    pub fn code(&self) -> crate::ErrorCode {
        use crate::ErrorCode;
        match self {
            FrameError::TooLarge { .. } => ErrorCode::FrameTooLarge,
            FrameError::Empty | FrameError::Malformed(_) => ErrorCode::MalformedFrame,
            FrameError::UnknownBody { .. } => ErrorCode::UnknownBody,
            FrameError::MissingBody { .. } | FrameError::MissingField { .. } | FrameError::InvalidField { .. } => {
                ErrorCode::InvalidRequest
            }
        }
    }
}

/// What [`FrameDecoder::decode`] found at the front of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// The buffer holds less than one whole frame; at least `bytes_needed` more are needed.
    NeedMore { bytes_needed: usize },
    /// One frame, which occupied the first `consumed` bytes (prefix included).
    Frame { frame: Frame<'a>, consumed: usize },
}

/// Reads the length prefix at the front of `buf`: `Ok(None)` if fewer than 4 bytes are
/// there, the body length otherwise, checked against `frame_bytes_max`.
pub fn frame_body_len(buf: &[u8], frame_bytes_max: u32) -> Result<Option<usize>, FrameError> {
    let Some(header) = buf.first_chunk::<FRAME_HEADER_BYTES>() else {
        return Ok(None);
    };
    let len = u32::from_le_bytes(*header);
    if len > frame_bytes_max {
        return Err(FrameError::TooLarge {
            len: u64::from(len),
            max: frame_bytes_max,
        });
    }
    if len == 0 {
        return Err(FrameError::Empty);
    }
    Ok(Some(len as usize))
}

/// Splits and verifies frames. Holds no buffer: it reads whatever the caller passes.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    frame_bytes_max: u32,
    options: VerifierOptions,
}

impl FrameDecoder {
    /// A decoder for frames of at most `frame_bytes_max` body bytes whose bodies hold at
    /// most `messages_per_frame_max` messages (`SyncPage` entries; 0 for a server, which
    /// never receives a page).
    pub fn new(frame_bytes_max: u32, messages_per_frame_max: u32) -> Self {
        Self {
            frame_bytes_max,
            options: VerifierOptions {
                max_depth: VERIFY_DEPTH_MAX,
                max_tables: VERIFY_TABLES_BASE_MAX + messages_per_frame_max as usize,
                // Nothing in a Hotline frame is shared, so the verified bytes can never
                // legitimately exceed the frame itself.
                max_apparent_size: frame_bytes_max as usize,
                ignore_missing_null_terminator: false,
            },
        }
    }

    /// Overrides the verifier's limits (tests use this to provoke each limit).
    pub fn with_verifier_options(mut self, options: VerifierOptions) -> Self {
        self.options = options;
        self
    }

    /// The largest frame body this decoder accepts.
    pub fn frame_bytes_max(&self) -> u32 {
        self.frame_bytes_max
    }

    /// Decodes the frame at the front of `buf`, if it is all there.
    pub fn decode<'a>(&self, buf: &'a [u8]) -> Result<Decoded<'a>, FrameError> {
        let Some(len) = frame_body_len(buf, self.frame_bytes_max)? else {
            return Ok(Decoded::NeedMore {
                bytes_needed: FRAME_HEADER_BYTES - buf.len(),
            });
        };
        let end = FRAME_HEADER_BYTES + len;
        let Some(whole) = buf.get(..end) else {
            return Ok(Decoded::NeedMore {
                bytes_needed: end - buf.len(),
            });
        };
        // The sender aligned the buffer as a whole, prefix included, so verify it whole:
        // alignment is checked relative to the start of the slice the verifier is given.
        let root = fb::size_prefixed_root_as_frame_with_opts(&self.options, whole).map_err(FrameError::Malformed)?;
        Ok(Decoded::Frame {
            frame: Message::from_fb(root)?,
            consumed: end,
        })
    }

    /// Verifies and reads one frame body without a length prefix (a WebSocket message).
    pub fn decode_body<'a>(&self, body: &'a [u8]) -> Result<Frame<'a>, FrameError> {
        if body.len() > self.frame_bytes_max as usize {
            return Err(FrameError::TooLarge {
                len: body.len() as u64,
                max: self.frame_bytes_max,
            });
        }
        if body.is_empty() {
            return Err(FrameError::Empty);
        }
        let root = fb::root_as_frame_with_opts(&self.options, body).map_err(FrameError::Malformed)?;
        Message::from_fb(root)
    }
}

/// Builds frames into a reused FlatBuffers builder: after warm-up, encoding a frame
/// allocates nothing. One per thread (it is not `Sync`); cheap to keep per connection or
/// per core.
pub struct Encoder {
    fbb: FlatBufferBuilder<'static>,
    scratch: Vec<WIPOffset<fb::Deliver<'static>>>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("unfinished_bytes", &self.fbb.unfinished_data().len())
            .finish()
    }
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    /// Initial builder capacity: a Send or Deliver with a small payload fits without growing.
    pub const INITIAL_BYTES: usize = 1024;

    /// A new encoder.
    pub fn new() -> Self {
        Self {
            fbb: FlatBufferBuilder::with_capacity(Self::INITIAL_BYTES),
            scratch: Vec::new(),
        }
    }

    fn build(&mut self, request_id: u64, message: &Message<'_>) -> WIPOffset<fb::Frame<'static>> {
        self.fbb.reset();
        let (body_type, body) = message.write(&mut self.fbb, &mut self.scratch);
        let frame = fb::Frame::create(
            &mut self.fbb,
            &fb::FrameArgs {
                request_id,
                body_type,
                body: Some(body),
            },
        );
        frame
    }

    /// Encodes one frame, length prefix included; the bytes live until the next call.
    pub fn encode(&mut self, request_id: u64, message: &Message<'_>) -> &[u8] {
        let frame = self.build(request_id, message);
        // FlatBuffers' own size prefix is a u32 little-endian length of what follows:
        // exactly Hotline's framing, so the finished buffer goes to the wire as it is.
        self.fbb.finish_size_prefixed(frame, None);
        self.fbb.finished_data()
    }

    /// Encodes one frame and appends it to `out`.
    pub fn encode_into(&mut self, request_id: u64, message: &Message<'_>, out: &mut Vec<u8>) {
        out.extend_from_slice(self.encode(request_id, message));
    }

    /// Encodes one frame body without the length prefix (for WebSocket).
    /// (Not a suffix of [`Encoder::encode`]'s output: a bare body is aligned on its own.)
    pub fn encode_body(&mut self, request_id: u64, message: &Message<'_>) -> &[u8] {
        let frame = self.build(request_id, message);
        self.fbb.finish(frame, None);
        self.fbb.finished_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Ack, Ping};

    fn ping_frame() -> Vec<u8> {
        Encoder::new().encode(7, &Message::Ping(Ping { nonce: 42 })).to_vec()
    }

    #[test]
    fn need_more_until_the_whole_frame_is_there() {
        let bytes = ping_frame();
        let decoder = FrameDecoder::new(1024, 0);
        for cut in 0..bytes.len() {
            match decoder.decode(&bytes[..cut]) {
                Ok(Decoded::NeedMore { bytes_needed }) => {
                    assert!(bytes_needed >= 1 && cut + bytes_needed <= bytes.len(), "cut {cut}");
                }
                other => panic!("cut {cut}: {other:?}"),
            }
        }
        let decoded = decoder.decode(&bytes);
        let Ok(Decoded::Frame { frame, consumed }) = decoded else {
            panic!("whole frame did not decode: {decoded:?}");
        };
        assert_eq!(consumed, bytes.len());
        assert_eq!(frame.request_id, 7);
        assert_eq!(frame.message, Message::Ping(Ping { nonce: 42 }));
    }

    #[test]
    fn length_prefix_matches_body() {
        let bytes = ping_frame();
        let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        assert_eq!(len + FRAME_HEADER_BYTES, bytes.len());
    }

    #[test]
    fn oversized_length_is_rejected_from_the_header_alone() {
        let decoder = FrameDecoder::new(1024, 0);
        let err = decoder.decode(&1025u32.to_le_bytes()).unwrap_err();
        assert_eq!(err, FrameError::TooLarge { len: 1025, max: 1024 });
        assert!(err.is_fatal());
        assert_eq!(err.code(), crate::ErrorCode::FrameTooLarge);
    }

    #[test]
    fn zero_length_is_empty() {
        let err = FrameDecoder::new(1024, 0).decode(&[0, 0, 0, 0, 1]).unwrap_err();
        assert_eq!(err, FrameError::Empty);
        assert!(!err.is_fatal());
    }

    #[test]
    fn encoder_reuses_its_buffer() {
        let mut enc = Encoder::new();
        let first = enc.encode(1, &Message::Ack(Ack { up_to_seq: 1 })).to_vec();
        let second = enc.encode(1, &Message::Ack(Ack { up_to_seq: 1 })).to_vec();
        assert_eq!(first, second, "reset must leave no trace of the previous frame");
        let body = enc.encode_body(1, &Message::Ack(Ack { up_to_seq: 1 })).to_vec();
        let decoded = FrameDecoder::new(1024, 0)
            .decode_body(&body)
            .expect("bare body decodes");
        assert_eq!(decoded.message, Message::Ack(Ack { up_to_seq: 1 }));
    }
}
