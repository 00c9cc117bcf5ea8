//! `hotline-transport`: the layers that carry Hotline frames over TLS and WebSocket, with no
//! I/O of their own (sans-IO), so the server's cores, the load generator and the tests drive
//! the very same code over whatever sockets they own.
//!
//! # Layout
//! - [`layer`]: [`Layer`], one connection's stack: optional TLS (rustls) under an optional
//!   WebSocket (tungstenite's frame codec), turning wire bytes into the length-prefixed
//!   frame stream every Hotline peer already speaks, and back. Server and client roles.
//! - [`http`]: the server's HTTP/1.1 phase on a WebSocket listener: the upgrade (checked
//!   with tungstenite's handshake code, Origin against an allow-list) or a static file.
//! - [`tls`]: loading a PEM certificate and key into a rustls server configuration, and a
//!   client configuration that trusts one certificate (tests, load generation).
//!
//! # The one rule
//! Above a layer, a connection is a byte stream of frames, each a 4-byte little-endian
//! length and a FlatBuffers `Frame`, exactly as on plain TCP. On WebSocket, one binary
//! message carries exactly one `Frame` without the length prefix: [`Layer::ingest`] adds
//! the prefix to each message it receives, [`Layer::seal`] strips it from each frame it
//! sends. So framing limits, verification and error frames stay in one place (the peer's
//! frame decoder), whatever the transport.
//!
//! # Memory
//! Every buffer here is bounded by the caller's frame limit or by what the caller queued:
//! a WebSocket message over `frame_bytes_max` is refused before it is buffered whole
//! ([`TransportError::FrameTooLarge`]), an HTTP request head over [`HTTP_HEAD_BYTES_MAX`] is
//! refused, and [`Layer::release_idle`] returns scratch capacity when a connection goes idle.

pub mod http;
pub mod layer;
pub mod tls;

pub use layer::{Layer, LayerKind, ServerSettings, WsClientOptions, WsServerSettings};

/// Longest HTTP request head (request line and headers) a WebSocket listener reads.
pub const HTTP_HEAD_BYTES_MAX: usize = 8 << 10;
/// Capacity of a WebSocket connection's read buffer when it is created (it grows to the
/// largest message received, at most the frame limit).
pub const WS_READ_BUFFER_BYTES: usize = 4 << 10;
/// Scratch capacity a layer keeps between reads; larger buffers are released.
pub const SCRATCH_RETAIN_BYTES: usize = 16 << 10;

/// Why a transport layer cannot go on. After any of these the connection is finished:
/// flush what [`Layer::wire`] holds (a TLS alert, an HTTP error, a WebSocket close) and close.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A WebSocket message longer than the frame limit.
    #[error("WebSocket message too large (limit {max} bytes)")]
    FrameTooLarge { max: u32 },
    /// The TLS peer broke the protocol (bad record, failed handshake, bad certificate...).
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// The WebSocket peer broke the protocol.
    #[error("WebSocket: {0}")]
    WebSocket(String),
    /// The HTTP request (or, for a client, the upgrade response) was refused.
    #[error("HTTP: {0}")]
    Http(String),
    /// A frame handed to [`Layer::seal`] is not a whole length-prefixed frame: a bug in the
    /// caller.
    #[error("sealing a partial frame ({len} bytes left over)")]
    PartialFrame { len: usize },
}

impl From<tungstenite::Error> for TransportError {
    fn from(e: tungstenite::Error) -> Self {
        match e {
            tungstenite::Error::Capacity(tungstenite::error::CapacityError::MessageTooLong { max_size, .. }) => {
                TransportError::FrameTooLarge {
                    max: u32::try_from(max_size).unwrap_or(u32::MAX),
                }
            }
            other => TransportError::WebSocket(other.to_string()),
        }
    }
}
