//! `hotline-wire`: Hotline's wire protocol, with no I/O.
//!
//! A frame is one FlatBuffers `Frame` (schema: `wire/schema/hotline.fbs`): on a byte
//! stream a size-prefixed buffer (a 4-byte little-endian length, fields aligned counting
//! it), on WebSocket a standard buffer per binary message (see [`frame`]). This crate owns everything between bytes and typed values,
//! so the engine, the load generator and the tests never touch FlatBuffers offsets.
//!
//! # Layout
//! - [`limits`]: the protocol version, reserved values and default limits (units in names).
//! - [`frame`]: the length prefix, [`FrameDecoder`] (partial input, limits, verification,
//!   typed [`FrameError`]s) and [`Encoder`] (a reused builder: no allocation per frame).
//! - [`message`]: one plain Rust type per `Body` member, read from and written to frames,
//!   generated from one table of bodies; one file per family (session, messaging, groups,
//!   conversations), each type's read and write beside it.
//! - [`session`]: [`ClientSession`], the sans-IO client state machine every client shares.
//! - [`fb`]: the code `flatc` generates from the schema (committed; `scripts/gen-wire`
//!   regenerates it and `scripts/gen-wire --check` fails when it is stale).

pub mod frame;
pub mod limits;
pub mod message;
pub mod session;

#[allow(
    clippy::all,
    clippy::unwrap_used,
    clippy::too_many_lines,
    missing_debug_implementations,
    unsafe_op_in_unsafe_fn,
    unreachable_pub
)]
#[allow(mismatched_lifetime_syntaxes, unused_imports, non_camel_case_types, non_snake_case)]
mod generated {
    include!("generated/hotline_generated.rs");
}

/// The FlatBuffers types generated from `wire/schema/hotline.fbs`.
pub use generated::hotline::wire::fb;

pub use frame::{frame_body_len, Decoded, Encoder, FrameDecoder, FrameError};
pub use limits::*;
pub use message::{
    Ack, AckOk, Conversation, ConversationList, Conversations, Credentials, Deliver, Durable, ErrorBody, ErrorCode,
    Frame, GroupAddMember, GroupCreate, GroupCreated, GroupInfo, GroupLeave, GroupList, GroupMember, GroupMemberList,
    GroupMembers, GroupRemoveMember, GroupRole, Hello, HelloOk, Login, LoginOk, MarkRead, Message, MessageKind,
    MessageType, MyGroups, Persistence, Ping, Pong, Presence, PresenceSubscribe, ReadPosition, Receipt, ReceiptKind,
    Register, RegisterOk, Send, SendAck, SendFlags, Sender, SetPersistence, Sync, SyncPage, Typing, TypingNotice,
    MESSAGE_NAMES, MESSAGE_TYPES,
};
pub use session::{ClientSession, Event, SessionError, SessionState};
