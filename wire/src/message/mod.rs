//! Typed messages: plain Rust values for every `Body` member, borrowed from the frame bytes
//! when read and written through [`crate::Encoder`], so no caller handles FlatBuffers offsets.
//!
//! # Layout
//! - This file: the one table of bodies (`messages!`), from which [`Message`],
//!   [`MessageType`], [`MESSAGE_NAMES`], each body's [`Sender`] and the read and write
//!   dispatch are generated; and the `Body` trait each body type implements.
//! - `session`: handshake, accounts, login, liveness and errors ([`ErrorCode`]).
//! - `messaging`: sending, delivery, acknowledgement, sync and receipts.
//! - `groups`: group membership and listings.
//! - `conversations`: conversation references, read positions, typing, presence and
//!   persistence.
//!
//! The families mirror the engine's `handlers/`; each body type's read and write sit together,
//! beside the type.
//!
//! Invariants:
//! - Reading ([`Message::from_fb`]) only ever sees frames the verifier accepted; it never
//!   panics and turns a missing required field into [`FrameError::MissingField`].
//! - Every type here round-trips: `decode(encode(m)) == m` (tested for each member).
//! - A message holds no allocation except its list, if it has one (`SyncPage::messages`,
//!   `GroupMemberList::members`, ...: one `Vec` per frame).
//! - The table names every `Body` union member once (tested against the generated code).
//!   Its order, the dense [`MessageType::index`], is this crate's own (`AckOk` sits beside
//!   `Ack`) and never goes on the wire: the union tag comes from the schema by name.

mod conversations;
mod groups;
mod messaging;
mod session;

pub use conversations::{
    Conversation, ConversationList, Conversations, MarkRead, Persistence, Presence, PresenceSubscribe, ReadPosition,
    SetPersistence, Typing, TypingNotice,
};
pub use groups::{
    GroupAddMember, GroupCreate, GroupCreated, GroupInfo, GroupLeave, GroupList, GroupMember, GroupMemberList,
    GroupMembers, GroupRemoveMember, GroupRole, MyGroups,
};
pub use messaging::{
    Ack, AckOk, Deliver, Durable, MessageKind, Receipt, ReceiptKind, Send, SendAck, SendFlags, Sync, SyncPage,
};
pub use session::{
    Credentials, ErrorBody, ErrorCode, Hello, HelloOk, Login, LoginOk, Ping, Pong, Register, RegisterOk,
};

use flatbuffers::{UnionWIPOffset, WIPOffset};

use crate::fb;
use crate::frame::FrameError;

/// One decoded frame: the request id and the typed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Echoed by the reply; [`crate::REQUEST_ID_NONE`] for pushes and fire-and-forget requests.
    pub request_id: u64,
    /// The body.
    pub message: Message<'a>,
}

/// Who sends a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sender {
    /// Client → server: a request the server handles.
    Client,
    /// Server → client: a reply or a push; a server refuses it from a client.
    Server,
    /// Either direction.
    Either,
}

/// The builder every body is written into (reused by [`crate::Encoder`]).
pub(crate) type Builder = flatbuffers::FlatBufferBuilder<'static>;
/// Offsets of a page's entries, reused between frames so that writing a `SyncPage`
/// allocates nothing once the encoder has seen a page that large.
pub(crate) type DeliverOffsets = Vec<WIPOffset<fb::Deliver<'static>>>;

/// One body type's read and write, implemented beside the type.
pub(crate) trait Body<'a>: Sized {
    /// Reads the body of `frame`, whose union tag is this type's.
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError>;
    /// Writes this body into `fbb`; `scratch` is the encoder's reused offset list.
    fn write(&self, fbb: &mut Builder, scratch: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset>;
}

/// The body table, present when the tag matched: the generated `body_as_*` accessors return
/// `None` only for another tag, which the dispatch rules out, or for an absent body offset,
/// which the verifier allows for unions.
pub(crate) fn present<T>(body: Option<T>, request_id: u64) -> Result<T, FrameError> {
    body.ok_or(FrameError::MissingBody { request_id })
}

/// A required field of a body, or [`FrameError::MissingField`] naming it.
pub(crate) fn required<T>(value: Option<T>, request_id: u64, field: &'static str) -> Result<T, FrameError> {
    value.ok_or(FrameError::MissingField { request_id, field })
}

/// The one table of bodies. Each line is `Name` (a body without fields) or `Name(Type)`, and
/// who sends it; `Name` is the schema's `Body` member. From it come the
/// [`Message`] enum, [`MessageType`] and its names and indices, and the read and write
/// dispatch to each type's [`Body`] impl.
macro_rules! messages {
    ($($name:ident $(($body:ty))? => $sender:ident,)*) => {
        /// Every body this protocol version knows, one variant per `Body` union member.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Message<'a> {
            $($name $(($body))?,)*
        }

        /// A body's type without its contents: a dense index `0..MESSAGE_TYPES` for per-type
        /// counters, and the schema's name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum MessageType {
            $($name,)*
        }

        impl MessageType {
            /// Every body type, by [`MessageType::index`].
            pub const ALL: [MessageType; MESSAGE_TYPES] = [$(MessageType::$name,)*];

            /// Who sends this body.
            pub const fn sender(self) -> Sender {
                match self {
                    $(MessageType::$name => Sender::$sender,)*
                }
            }
        }

        /// Number of frame body types ([`MessageType::index`] is below it).
        pub const MESSAGE_TYPES: usize = [$(stringify!($name),)*].len();

        /// The schema's name of each body type, by [`MessageType::index`].
        pub const MESSAGE_NAMES: [&str; MESSAGE_TYPES] = [$(stringify!($name),)*];

        impl Message<'_> {
            /// This body's type.
            pub fn message_type(&self) -> MessageType {
                match self {
                    $(Message::$name { .. } => MessageType::$name,)*
                }
            }
        }

        impl<'a> Message<'a> {
            /// Reads the body of a verified frame into typed form.
            fn read_body(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
                Ok(match frame.body_type() {
                    $(fb::Body::$name => read_body!(frame, request_id, $name $(, $body)?),)*
                    fb::Body::NONE => return Err(FrameError::MissingBody { request_id }),
                    other => return Err(FrameError::UnknownBody { request_id, tag: other.0 }),
                })
            }

            /// Writes this body into `fbb` and returns the union tag and offset.
            pub(crate) fn write(
                &self,
                fbb: &mut Builder,
                scratch: &mut DeliverOffsets,
            ) -> (fb::Body, WIPOffset<UnionWIPOffset>) {
                match self {
                    $(variant!($name $(, m, $body)?) => {
                        (fb::Body::$name, write_body!(fbb, scratch, $name $(, m, $body)?))
                    })*
                }
            }
        }
    };
}

/// The pattern of one [`Message`] variant, binding its body (if it has one) to `$m`.
macro_rules! variant {
    ($name:ident) => {
        Message::$name
    };
    ($name:ident, $m:ident, $body:ty) => {
        Message::$name($m)
    };
}

/// Reads one body: through its type's [`Body::read`], or, for a body without fields, by
/// checking that it is present.
macro_rules! read_body {
    ($frame:ident, $request_id:ident, $name:ident) => {{
        present($frame.body(), $request_id)?;
        Message::$name
    }};
    ($frame:ident, $request_id:ident, $name:ident, $body:ty) => {
        Message::$name(<$body as Body<'a>>::read($frame, $request_id)?)
    };
}

/// Writes one body: through its type's [`Body::write`], or as an empty table.
macro_rules! write_body {
    ($fbb:ident, $scratch:ident, $name:ident) => {
        fb::$name::create($fbb, &Default::default()).as_union_value()
    };
    ($fbb:ident, $scratch:ident, $name:ident, $m:ident, $body:ty) => {
        $m.write($fbb, $scratch)
    };
}

messages! {
    Hello(Hello<'a>) => Client,
    HelloOk(HelloOk<'a>) => Server,
    Register(Register<'a>) => Client,
    RegisterOk(RegisterOk) => Server,
    Login(Login<'a>) => Client,
    LoginOk(LoginOk<'a>) => Server,
    Logout => Client,
    LogoutOk => Server,
    Send(Send<'a>) => Client,
    SendAck(SendAck) => Server,
    Deliver(Deliver<'a>) => Server,
    Ack(Ack) => Client,
    AckOk(AckOk) => Server,
    Durable(Durable) => Server,
    Sync(Sync) => Client,
    SyncPage(SyncPage<'a>) => Server,
    Ping(Ping) => Either,
    Pong(Pong) => Either,
    Error(ErrorBody<'a>) => Server,
    GroupCreate(GroupCreate<'a>) => Client,
    GroupCreated(GroupCreated) => Server,
    GroupAddMember(GroupAddMember) => Client,
    GroupRemoveMember(GroupRemoveMember) => Client,
    GroupLeave(GroupLeave) => Client,
    GroupMembers(GroupMembers) => Client,
    GroupMemberList(GroupMemberList) => Server,
    MyGroups(MyGroups) => Client,
    GroupList(GroupList<'a>) => Server,
    Done => Server,
    Receipt(Receipt) => Server,
    MarkRead(MarkRead) => Client,
    ReadPosition(ReadPosition) => Server,
    Conversations(Conversations) => Client,
    ConversationList(ConversationList) => Server,
    Typing(Typing) => Client,
    TypingNotice(TypingNotice) => Server,
    PresenceSubscribe(PresenceSubscribe) => Client,
    Presence(Presence) => Server,
    SetPersistence(SetPersistence) => Client,
}

impl MessageType {
    /// A dense index of this body type, `0..MESSAGE_TYPES`, for per-type counters.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The schema's name of this body type, for logs and metrics.
    pub const fn name(self) -> &'static str {
        MESSAGE_NAMES[self.index()]
    }
}

impl<'a> Message<'a> {
    /// The schema's name of this body, for logs and metrics.
    pub fn name(&self) -> &'static str {
        self.message_type().name()
    }

    /// A dense index of this body's type, `0..MESSAGE_TYPES`, for per-type counters;
    /// `MESSAGE_NAMES[m.index()] == m.name()`.
    pub fn index(&self) -> usize {
        self.message_type().index()
    }

    /// Reads a verified frame into typed form.
    pub(crate) fn from_fb(frame: fb::Frame<'a>) -> Result<Frame<'a>, FrameError> {
        let request_id = frame.request_id();
        let message = Message::read_body(frame, request_id)?;
        Ok(Frame { request_id, message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_every_union_member_once() {
        let schema: Vec<&str> = fb::Body::ENUM_VALUES
            .iter()
            .filter_map(|b| b.variant_name())
            .filter(|n| *n != "NONE")
            .collect();
        assert_eq!(schema.len(), MESSAGE_TYPES, "one table line per union member");
        for name in schema {
            assert_eq!(MESSAGE_NAMES.iter().filter(|n| **n == name).count(), 1, "{name}");
        }
        for (i, ty) in MessageType::ALL.into_iter().enumerate() {
            assert_eq!(ty.index(), i);
            assert_eq!(ty.name(), MESSAGE_NAMES[i]);
        }
    }
}
