//! Protocol constants and the default limits a server announces in `HelloOk`.
//!
//! Every limit carries its unit last in its name. The server may be configured with other
//! values; the defaults here are what `hotline serve` uses when not told otherwise, and what
//! a client assumes before it has seen `HelloOk`.

/// The protocol version this crate speaks. Bumped when behaviour changes; the schema itself
/// only ever grows by appending.
pub const PROTOCOL_VERSION: u16 = 1;

/// The oldest protocol version this crate still speaks.
pub const PROTOCOL_VERSION_MIN: u16 = 1;

/// Bytes of the little-endian length prefix in front of every frame on a byte stream.
pub const FRAME_HEADER_BYTES: usize = 4;

/// `Frame.request_id` of a server push, and of a request that wants no reply (`Ack`).
pub const REQUEST_ID_NONE: u64 = 0;

/// Default largest frame body (after the length prefix) a peer accepts: 1 MiB.
pub const FRAME_BYTES_MAX_DEFAULT: u32 = 1 << 20;

/// Default largest message payload: 64 KiB.
pub const PAYLOAD_BYTES_MAX_DEFAULT: u32 = 64 << 10;

/// Upper bound on everything a `Deliver` frame carries besides its payload (the frame and
/// Deliver tables, vtables, fixed fields, alignment padding).
pub const DELIVER_OVERHEAD_BYTES_MAX: u32 = 256;

// A single message must always fit in one frame, so a Deliver can never be unsendable.
const _: () = assert!(PAYLOAD_BYTES_MAX_DEFAULT + DELIVER_OVERHEAD_BYTES_MAX <= FRAME_BYTES_MAX_DEFAULT);

/// Default most messages in one `SyncPage` (the server also bounds a page by bytes).
pub const SYNC_PAGE_MESSAGES_MAX_DEFAULT: u32 = 256;

/// Default idle time after which the server pings, then closes, a silent connection.
pub const IDLE_TIMEOUT_MS_DEFAULT: u32 = 60_000;

/// Default longest username, in UTF-8 bytes.
pub const USERNAME_BYTES_MAX_DEFAULT: u32 = 64;

/// Default longest password, in UTF-8 bytes (argon2 input; longer buys nothing).
pub const PASSWORD_BYTES_MAX_DEFAULT: u32 = 256;

/// Default longest device name, in UTF-8 bytes.
pub const DEVICE_NAME_BYTES_MAX_DEFAULT: u32 = 64;

/// Bytes in a session token (256 random bits).
pub const TOKEN_BYTES: usize = 32;

/// Deepest table nesting the verifier walks. The schema's deepest path is
/// Frame → SyncPage → [Deliver] → Deliver, so a legal frame never comes near this.
pub const VERIFY_DEPTH_MAX: usize = 8;

/// Tables the verifier accepts in a frame that is not a `SyncPage` (Frame, body, Limits...).
pub const VERIFY_TABLES_BASE_MAX: usize = 16;

/// The limits a server announces in `HelloOk`, and a client checks its requests against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame body either side accepts, in bytes.
    pub frame_bytes_max: u32,
    /// Largest `Send.payload`, in bytes.
    pub payload_bytes_max: u32,
    /// Most messages in one `SyncPage`.
    pub sync_page_messages_max: u32,
    /// Silence after which the server pings, then closes, a connection.
    pub idle_timeout_ms: u32,
    /// Longest username, in bytes.
    pub username_bytes_max: u32,
    /// Longest password, in bytes.
    pub password_bytes_max: u32,
    /// Longest device name, in bytes.
    pub device_name_bytes_max: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            payload_bytes_max: PAYLOAD_BYTES_MAX_DEFAULT,
            sync_page_messages_max: SYNC_PAGE_MESSAGES_MAX_DEFAULT,
            idle_timeout_ms: IDLE_TIMEOUT_MS_DEFAULT,
            username_bytes_max: USERNAME_BYTES_MAX_DEFAULT,
            password_bytes_max: PASSWORD_BYTES_MAX_DEFAULT,
            device_name_bytes_max: DEVICE_NAME_BYTES_MAX_DEFAULT,
        }
    }
}
