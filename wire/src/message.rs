//! Typed messages: plain Rust values for every `Body` member, borrowed from the frame bytes
//! when read and written through [`crate::Encoder`], so no caller handles FlatBuffers offsets.
//!
//! Invariants:
//! - Reading ([`Message::from_fb`]) only ever sees frames the verifier accepted; it never
//!   panics and turns a missing required field into [`FrameError::MissingField`].
//! - Every type here round-trips: `decode(encode(m)) == m` (tested for each member).
//! - A message holds no allocation except its list, if it has one (`SyncPage::messages`,
//!   `GroupMemberList::members`, ...: one `Vec` per frame).

use crate::fb;
use crate::frame::FrameError;
use crate::limits::Limits;

/// One decoded frame: the request id and the typed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Echoed by the reply; [`crate::REQUEST_ID_NONE`] for pushes and fire-and-forget requests.
    pub request_id: u64,
    /// The body.
    pub message: Message<'a>,
}

/// Every body this protocol version knows, one variant per `Body` union member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    Hello(Hello<'a>),
    HelloOk(HelloOk<'a>),
    Register(Register<'a>),
    RegisterOk(RegisterOk),
    Login(Login<'a>),
    LoginOk(LoginOk<'a>),
    Logout,
    LogoutOk,
    Send(Send<'a>),
    SendAck(SendAck),
    Deliver(Deliver<'a>),
    Ack(Ack),
    AckOk(AckOk),
    Sync(Sync),
    SyncPage(SyncPage<'a>),
    Ping(Ping),
    Pong(Pong),
    Error(ErrorBody<'a>),
    GroupCreate(GroupCreate<'a>),
    GroupCreated(GroupCreated),
    GroupAddMember(GroupAddMember),
    GroupRemoveMember(GroupRemoveMember),
    GroupLeave(GroupLeave),
    GroupMembers(GroupMembers),
    GroupMemberList(GroupMemberList),
    MyGroups(MyGroups),
    GroupList(GroupList<'a>),
    Done,
    Receipt(Receipt),
    MarkRead(MarkRead),
    ReadPosition(ReadPosition),
    Conversations(Conversations),
    ConversationList(ConversationList),
    Typing(Typing),
    TypingNotice(TypingNotice),
    PresenceSubscribe(PresenceSubscribe),
    Presence(Presence),
    SetPersistence(SetPersistence),
}

/// Client → server, first frame: the protocol versions the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello<'a> {
    pub version_min: u16,
    pub version_max: u16,
    /// Free-form client identification for logs; may be empty.
    pub client_name: &'a str,
}

/// Server → client: the negotiated version and the server's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelloOk<'a> {
    pub version: u16,
    pub server_name: &'a str,
    pub limits: Limits,
}

/// Client → server: create an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Register<'a> {
    pub username: &'a str,
    pub password: &'a str,
}

/// Server → client: the account was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegisterOk {
    pub user_id: u64,
}

/// How a `Login` authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials<'a> {
    /// Username and password: opens a new device.
    Password { username: &'a str, password: &'a str },
    /// A token from an earlier `LoginOk`: resumes that device.
    Token(&'a [u8]),
}

/// Client → server: authenticate this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Login<'a> {
    pub credentials: Credentials<'a>,
    /// Shown in device lists; may be empty.
    pub device_name: &'a str,
}

/// Server → client: authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginOk<'a> {
    pub user_id: u64,
    pub device_id: u64,
    pub token: &'a [u8],
    pub inbox_seq: u64,
    pub device_cursor: u64,
}

/// Per-message flags chosen by the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct SendFlags(pub u8);

impl SendFlags {
    /// No receipts requested.
    pub const NONE: SendFlags = SendFlags(0);
    /// Tell the sender when a recipient device has stored the message.
    pub const DELIVERY_RECEIPT: SendFlags = SendFlags(1 << 0);
    /// Tell the sender when a recipient has read the message.
    pub const READ_RECEIPT: SendFlags = SendFlags(1 << 1);

    /// Whether every flag in `other` is set.
    pub fn contains(self, other: SendFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for SendFlags {
    type Output = SendFlags;
    fn bitor(self, rhs: SendFlags) -> SendFlags {
        SendFlags(self.0 | rhs.0)
    }
}

/// What an inbox entry is (mirrors the schema's `MessageKind`; unknown values pass through).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct MessageKind(pub u8);

impl MessageKind {
    /// An ordinary message.
    pub const NORMAL: MessageKind = MessageKind(0);
    /// Replaces the payload of the sender's own message `refers_to`.
    pub const EDIT: MessageKind = MessageKind(1);
    /// Withdraws the sender's own message `refers_to`.
    pub const DELETE: MessageKind = MessageKind(2);
    /// A store-until-delivered entry whose payload is gone (never pushed live).
    pub const EXPIRED: MessageKind = MessageKind(3);
}

/// A member's role in a group (mirrors the schema's `GroupRole`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, PartialOrd, Ord)]
pub struct GroupRole(pub u8);

impl GroupRole {
    pub const MEMBER: GroupRole = GroupRole(0);
    pub const ADMIN: GroupRole = GroupRole(1);
    pub const OWNER: GroupRole = GroupRole(2);

    /// Whether this is a role this protocol version knows.
    pub fn is_known(self) -> bool {
        self.0 <= GroupRole::OWNER.0
    }
}

/// How long a conversation's messages are kept (mirrors the schema's `Persistence`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Persistence(pub u8);

impl Persistence {
    /// Kept in every inbox.
    pub const ARCHIVE: Persistence = Persistence(0);
    /// Kept until every device of the inbox's owner acknowledged it.
    pub const UNTIL_DELIVERED: Persistence = Persistence(1);
    /// Live only, never written.
    pub const EPHEMERAL: Persistence = Persistence(2);

    /// Whether this is a level this protocol version knows.
    pub fn is_known(self) -> bool {
        self.0 <= Persistence::EPHEMERAL.0
    }
}

/// Delivered or read (mirrors the schema's `ReceiptKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct ReceiptKind(pub u8);

impl ReceiptKind {
    pub const DELIVERED: ReceiptKind = ReceiptKind(0);
    pub const READ: ReceiptKind = ReceiptKind(1);
}

/// Client → server: send a message to a user (`to`) or a group (`group`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Send<'a> {
    pub client_msg_id: u64,
    pub to: u64,
    pub payload: &'a [u8],
    pub flags: SendFlags,
    /// Non-zero: the group to send to (`to` must be 0).
    pub group: u64,
    pub kind: MessageKind,
    /// Edit and Delete: the original message id.
    pub refers_to: u64,
}

impl<'a> Send<'a> {
    /// A plain message to user `to`.
    pub fn direct(to: u64, client_msg_id: u64, payload: &'a [u8], flags: SendFlags) -> Self {
        Send {
            client_msg_id,
            to,
            payload,
            flags,
            group: 0,
            kind: MessageKind::NORMAL,
            refers_to: 0,
        }
    }
}

/// Server → client: the message is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SendAck {
    pub client_msg_id: u64,
    pub message_id: u64,
    pub inbox_seq: u64,
    pub timestamp_us: u64,
}

/// Which conversation a message belongs to, seen from the inbox that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Conversation {
    /// One-to-one with this user.
    Direct(u64),
    /// A group.
    Group(u64),
    /// A kind a newer peer added; carried through unchanged.
    Other { kind: u8, id: u64 },
}

impl Conversation {
    fn from_fb(c: &fb::ConversationRef) -> Self {
        match c.kind() {
            fb::ConversationKind::Direct => Conversation::Direct(c.id()),
            fb::ConversationKind::Group => Conversation::Group(c.id()),
            other => Conversation::Other {
                kind: other.0,
                id: c.id(),
            },
        }
    }

    /// The conversation's (kind, id) as stored and ordered.
    pub fn kind_and_id(self) -> (u8, u64) {
        match self {
            Conversation::Direct(id) => (0, id),
            Conversation::Group(id) => (1, id),
            Conversation::Other { kind, id } => (kind, id),
        }
    }

    /// The conversation for a stored (kind, id).
    pub fn from_kind_and_id(kind: u8, id: u64) -> Self {
        match kind {
            0 => Conversation::Direct(id),
            1 => Conversation::Group(id),
            kind => Conversation::Other { kind, id },
        }
    }

    fn to_fb(self) -> fb::ConversationRef {
        let (kind, id) = match self {
            Conversation::Direct(id) => (fb::ConversationKind::Direct, id),
            Conversation::Group(id) => (fb::ConversationKind::Group, id),
            Conversation::Other { kind, id } => (fb::ConversationKind(kind), id),
        };
        fb::ConversationRef::new(kind, id)
    }
}

/// One inbox message: a live push, or an entry of a `SyncPage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deliver<'a> {
    pub message_id: u64,
    pub conversation: Conversation,
    pub sender: u64,
    pub sender_device: u64,
    pub inbox_seq: u64,
    pub timestamp_us: u64,
    pub payload: &'a [u8],
    pub flags: SendFlags,
    pub client_msg_id: u64,
    pub kind: MessageKind,
    pub refers_to: u64,
}

/// Client → server: this device has stored everything up to `up_to_seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ack {
    pub up_to_seq: u64,
}

/// Server → client: reply to an `Ack` that carried a request id; the cursor is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AckOk {
    pub device_cursor: u64,
}

/// Client → server: read a page of the caller's inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sync {
    pub after_seq: u64,
    /// 0 means the server's maximum.
    pub limit: u32,
}

/// Server → client: a page of inbox messages in seq order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncPage<'a> {
    pub messages: Vec<Deliver<'a>>,
    pub inbox_seq: u64,
    pub more: bool,
}

/// Either direction: liveness probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ping {
    pub nonce: u64,
}

/// Reply to `Ping`, echoing its nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pong {
    pub nonce: u64,
}

/// Client → server: create a group owned by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCreate<'a> {
    pub name: &'a str,
    pub persistence: Persistence,
}

/// Server → client: the new group's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupCreated {
    pub group_id: u64,
}

/// Client → server: add a member or change a member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupAddMember {
    pub group_id: u64,
    pub user_id: u64,
    pub role: GroupRole,
}

/// Client → server: remove a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupRemoveMember {
    pub group_id: u64,
    pub user_id: u64,
}

/// Client → server: leave a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupLeave {
    pub group_id: u64,
}

/// Client → server: a page of a group's members after `after_user_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupMembers {
    pub group_id: u64,
    pub after_user_id: u64,
}

/// One member and its role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupMember {
    pub user_id: u64,
    pub role: GroupRole,
}

/// Server → client: a page of members in user id order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupMemberList {
    pub group_id: u64,
    pub members: Vec<GroupMember>,
    pub more: bool,
}

/// Client → server: a page of the caller's groups after `after_group_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MyGroups {
    pub after_group_id: u64,
}

/// One of the caller's groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupInfo<'a> {
    pub group_id: u64,
    pub name: &'a str,
    pub role: GroupRole,
    pub persistence: Persistence,
}

/// Server → client: a page of the caller's groups in id order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupList<'a> {
    pub groups: Vec<GroupInfo<'a>>,
    pub more: bool,
}

/// Server → sender's devices: a message was delivered to or read by `user_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    pub kind: ReceiptKind,
    pub message_id: u64,
    /// As the sender sees it.
    pub conversation: Conversation,
    pub user_id: u64,
    pub timestamp_us: u64,
}

/// Client → server: read up to the inbox entry `up_to_seq` of `conversation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkRead {
    pub conversation: Conversation,
    pub up_to_seq: u64,
}

/// A conversation's read position and unread count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadPosition {
    pub conversation: Conversation,
    pub read_seq: u64,
    pub unread: u64,
    pub last_seq: u64,
}

/// Client → server: a page of conversations after `after` (`None`: from the start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Conversations {
    pub after: Option<Conversation>,
}

/// Server → client: a page of conversations in (kind, id) order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConversationList {
    pub conversations: Vec<ReadPosition>,
    pub more: bool,
}

/// Client → server: typing in a conversation (ephemeral).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Typing {
    pub conversation: Conversation,
}

/// Server → client: `user_id` is typing in `conversation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypingNotice {
    pub conversation: Conversation,
    pub user_id: u64,
}

/// Client → server: subscribe to these users' presence.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PresenceSubscribe {
    pub user_ids: Vec<u64>,
}

/// Server → client: a user's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Presence {
    pub user_id: u64,
    pub online: bool,
    pub last_seen_us: u64,
}

/// Client → server: a conversation's persistence for messages sent from now on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetPersistence {
    pub conversation: Conversation,
    pub persistence: Persistence,
}

/// Why a request failed (mirrors the schema's `ErrorCode`; append only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    Unknown = 0,
    MalformedFrame = 1,
    FrameTooLarge = 2,
    UnknownBody = 3,
    UnsupportedVersion = 4,
    InvalidState = 5,
    InvalidRequest = 6,
    InvalidCredentials = 7,
    UserExists = 8,
    RegistrationClosed = 9,
    NoSuchUser = 10,
    PayloadTooLarge = 11,
    RateLimited = 12,
    Overloaded = 13,
    StorageUnavailable = 14,
    Forbidden = 15,
    ShuttingDown = 16,
    IdleTimeout = 17,
    Internal = 18,
    NoSuchGroup = 19,
    NoSuchMessage = 20,
    GroupFull = 21,
}

impl ErrorCode {
    /// Every code, in wire order (tests check this mirrors the schema).
    pub const ALL: [ErrorCode; 22] = [
        ErrorCode::Unknown,
        ErrorCode::MalformedFrame,
        ErrorCode::FrameTooLarge,
        ErrorCode::UnknownBody,
        ErrorCode::UnsupportedVersion,
        ErrorCode::InvalidState,
        ErrorCode::InvalidRequest,
        ErrorCode::InvalidCredentials,
        ErrorCode::UserExists,
        ErrorCode::RegistrationClosed,
        ErrorCode::NoSuchUser,
        ErrorCode::PayloadTooLarge,
        ErrorCode::RateLimited,
        ErrorCode::Overloaded,
        ErrorCode::StorageUnavailable,
        ErrorCode::Forbidden,
        ErrorCode::ShuttingDown,
        ErrorCode::IdleTimeout,
        ErrorCode::Internal,
        ErrorCode::NoSuchGroup,
        ErrorCode::NoSuchMessage,
        ErrorCode::GroupFull,
    ];

    /// The code for a wire value; values from a newer peer read as `Unknown`.
    pub fn from_wire(value: u16) -> ErrorCode {
        ErrorCode::ALL
            .get(usize::from(value))
            .copied()
            .unwrap_or(ErrorCode::Unknown)
    }

    /// The wire value.
    pub fn to_wire(self) -> u16 {
        self as u16
    }
}

/// Either direction: a typed failure, echoing the failed request's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorBody<'a> {
    pub code: ErrorCode,
    pub message: &'a str,
    pub retry_after_ms: u32,
}

/// Number of frame body types ([`Message::index`] is below it).
pub const MESSAGE_TYPES: usize = 38;
/// The schema's name of each body type, by [`Message::index`].
pub const MESSAGE_NAMES: [&str; MESSAGE_TYPES] = [
    "Hello",
    "HelloOk",
    "Register",
    "RegisterOk",
    "Login",
    "LoginOk",
    "Logout",
    "LogoutOk",
    "Send",
    "SendAck",
    "Deliver",
    "Ack",
    "AckOk",
    "Sync",
    "SyncPage",
    "Ping",
    "Pong",
    "Error",
    "GroupCreate",
    "GroupCreated",
    "GroupAddMember",
    "GroupRemoveMember",
    "GroupLeave",
    "GroupMembers",
    "GroupMemberList",
    "MyGroups",
    "GroupList",
    "Done",
    "Receipt",
    "MarkRead",
    "ReadPosition",
    "Conversations",
    "ConversationList",
    "Typing",
    "TypingNotice",
    "PresenceSubscribe",
    "Presence",
    "SetPersistence",
];

impl<'a> Message<'a> {
    /// The schema's name of this body, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Hello(_) => "Hello",
            Message::HelloOk(_) => "HelloOk",
            Message::Register(_) => "Register",
            Message::RegisterOk(_) => "RegisterOk",
            Message::Login(_) => "Login",
            Message::LoginOk(_) => "LoginOk",
            Message::Logout => "Logout",
            Message::LogoutOk => "LogoutOk",
            Message::Send(_) => "Send",
            Message::SendAck(_) => "SendAck",
            Message::Deliver(_) => "Deliver",
            Message::Ack(_) => "Ack",
            Message::AckOk(_) => "AckOk",
            Message::Sync(_) => "Sync",
            Message::SyncPage(_) => "SyncPage",
            Message::Ping(_) => "Ping",
            Message::Pong(_) => "Pong",
            Message::Error(_) => "Error",
            Message::GroupCreate(_) => "GroupCreate",
            Message::GroupCreated(_) => "GroupCreated",
            Message::GroupAddMember(_) => "GroupAddMember",
            Message::GroupRemoveMember(_) => "GroupRemoveMember",
            Message::GroupLeave(_) => "GroupLeave",
            Message::GroupMembers(_) => "GroupMembers",
            Message::GroupMemberList(_) => "GroupMemberList",
            Message::MyGroups(_) => "MyGroups",
            Message::GroupList(_) => "GroupList",
            Message::Done => "Done",
            Message::Receipt(_) => "Receipt",
            Message::MarkRead(_) => "MarkRead",
            Message::ReadPosition(_) => "ReadPosition",
            Message::Conversations(_) => "Conversations",
            Message::ConversationList(_) => "ConversationList",
            Message::Typing(_) => "Typing",
            Message::TypingNotice(_) => "TypingNotice",
            Message::PresenceSubscribe(_) => "PresenceSubscribe",
            Message::Presence(_) => "Presence",
            Message::SetPersistence(_) => "SetPersistence",
        }
    }

    /// A dense index of this body's type, `0..MESSAGE_TYPES`, for per-type counters;
    /// `MESSAGE_NAMES[m.index()] == m.name()`.
    pub fn index(&self) -> usize {
        match self {
            Message::Hello(_) => 0,
            Message::HelloOk(_) => 1,
            Message::Register(_) => 2,
            Message::RegisterOk(_) => 3,
            Message::Login(_) => 4,
            Message::LoginOk(_) => 5,
            Message::Logout => 6,
            Message::LogoutOk => 7,
            Message::Send(_) => 8,
            Message::SendAck(_) => 9,
            Message::Deliver(_) => 10,
            Message::Ack(_) => 11,
            Message::AckOk(_) => 12,
            Message::Sync(_) => 13,
            Message::SyncPage(_) => 14,
            Message::Ping(_) => 15,
            Message::Pong(_) => 16,
            Message::Error(_) => 17,
            Message::GroupCreate(_) => 18,
            Message::GroupCreated(_) => 19,
            Message::GroupAddMember(_) => 20,
            Message::GroupRemoveMember(_) => 21,
            Message::GroupLeave(_) => 22,
            Message::GroupMembers(_) => 23,
            Message::GroupMemberList(_) => 24,
            Message::MyGroups(_) => 25,
            Message::GroupList(_) => 26,
            Message::Done => 27,
            Message::Receipt(_) => 28,
            Message::MarkRead(_) => 29,
            Message::ReadPosition(_) => 30,
            Message::Conversations(_) => 31,
            Message::ConversationList(_) => 32,
            Message::Typing(_) => 33,
            Message::TypingNotice(_) => 34,
            Message::PresenceSubscribe(_) => 35,
            Message::Presence(_) => 36,
            Message::SetPersistence(_) => 37,
        }
    }

    /// Reads a verified frame into typed form.
    pub(crate) fn from_fb(frame: fb::Frame<'a>) -> Result<Frame<'a>, FrameError> {
        let request_id = frame.request_id();
        let missing = |field: &'static str| FrameError::MissingField { request_id, field };
        let tag = frame.body_type();
        // Each accessor below returns None only when the tag differs, which the match rules
        // out, or when the body offset is absent, which the verifier allows for unions.
        let absent = || FrameError::MissingBody { request_id };
        let message = match tag {
            fb::Body::NONE => return Err(absent()),
            fb::Body::Hello => {
                let b = frame.body_as_hello().ok_or_else(absent)?;
                Message::Hello(Hello {
                    version_min: b.version_min(),
                    version_max: b.version_max(),
                    client_name: b.client_name().unwrap_or(""),
                })
            }
            fb::Body::HelloOk => {
                let b = frame.body_as_hello_ok().ok_or_else(absent)?;
                let l = b.limits().ok_or_else(|| missing("HelloOk.limits"))?;
                Message::HelloOk(HelloOk {
                    version: b.version(),
                    server_name: b.server_name().unwrap_or(""),
                    limits: Limits {
                        frame_bytes_max: l.frame_bytes_max(),
                        payload_bytes_max: l.payload_bytes_max(),
                        sync_page_messages_max: l.sync_page_messages_max(),
                        idle_timeout_ms: l.idle_timeout_ms(),
                        username_bytes_max: l.username_bytes_max(),
                        password_bytes_max: l.password_bytes_max(),
                        device_name_bytes_max: l.device_name_bytes_max(),
                    },
                })
            }
            fb::Body::Register => {
                let b = frame.body_as_register().ok_or_else(absent)?;
                Message::Register(Register {
                    username: b.username().ok_or_else(|| missing("Register.username"))?,
                    password: b.password().ok_or_else(|| missing("Register.password"))?,
                })
            }
            fb::Body::RegisterOk => {
                let b = frame.body_as_register_ok().ok_or_else(absent)?;
                Message::RegisterOk(RegisterOk { user_id: b.user_id() })
            }
            fb::Body::Login => {
                let b = frame.body_as_login().ok_or_else(absent)?;
                let credentials = match (b.username(), b.password(), b.token()) {
                    (Some(username), Some(password), None) => Credentials::Password { username, password },
                    (None, None, Some(token)) => Credentials::Token(token.bytes()),
                    (None, None, None) | (Some(_), None, None) | (None, Some(_), None) => {
                        return Err(missing("Login.username+password or Login.token"))
                    }
                    _ => {
                        return Err(FrameError::InvalidField {
                            request_id,
                            field: "Login",
                            reason: "give either username and password or a token, not both",
                        })
                    }
                };
                Message::Login(Login {
                    credentials,
                    device_name: b.device_name().unwrap_or(""),
                })
            }
            fb::Body::LoginOk => {
                let b = frame.body_as_login_ok().ok_or_else(absent)?;
                Message::LoginOk(LoginOk {
                    user_id: b.user_id(),
                    device_id: b.device_id(),
                    token: b.token().ok_or_else(|| missing("LoginOk.token"))?.bytes(),
                    inbox_seq: b.inbox_seq(),
                    device_cursor: b.device_cursor(),
                })
            }
            fb::Body::Logout => {
                frame.body_as_logout().ok_or_else(absent)?;
                Message::Logout
            }
            fb::Body::LogoutOk => {
                frame.body_as_logout_ok().ok_or_else(absent)?;
                Message::LogoutOk
            }
            fb::Body::Send => {
                let b = frame.body_as_send().ok_or_else(absent)?;
                Message::Send(Send {
                    client_msg_id: b.client_msg_id(),
                    to: b.to(),
                    payload: b.payload().map(|p| p.bytes()).unwrap_or(&[]),
                    flags: SendFlags(b.flags().bits()),
                    group: b.group(),
                    kind: MessageKind(b.kind().0),
                    refers_to: b.refers_to(),
                })
            }
            fb::Body::SendAck => {
                let b = frame.body_as_send_ack().ok_or_else(absent)?;
                Message::SendAck(SendAck {
                    client_msg_id: b.client_msg_id(),
                    message_id: b.message_id(),
                    inbox_seq: b.inbox_seq(),
                    timestamp_us: b.timestamp_us(),
                })
            }
            fb::Body::Deliver => {
                let b = frame.body_as_deliver().ok_or_else(absent)?;
                Message::Deliver(read_deliver(b, request_id)?)
            }
            fb::Body::Ack => {
                let b = frame.body_as_ack().ok_or_else(absent)?;
                Message::Ack(Ack {
                    up_to_seq: b.up_to_seq(),
                })
            }
            fb::Body::AckOk => {
                let b = frame.body_as_ack_ok().ok_or_else(absent)?;
                Message::AckOk(AckOk {
                    device_cursor: b.device_cursor(),
                })
            }
            fb::Body::Sync => {
                let b = frame.body_as_sync().ok_or_else(absent)?;
                Message::Sync(Sync {
                    after_seq: b.after_seq(),
                    limit: b.limit(),
                })
            }
            fb::Body::SyncPage => {
                let b = frame.body_as_sync_page().ok_or_else(absent)?;
                let mut messages = Vec::new();
                if let Some(list) = b.messages() {
                    messages.reserve_exact(list.len());
                    for d in list.iter() {
                        messages.push(read_deliver(d, request_id)?);
                    }
                }
                Message::SyncPage(SyncPage {
                    messages,
                    inbox_seq: b.inbox_seq(),
                    more: b.more(),
                })
            }
            fb::Body::Ping => {
                let b = frame.body_as_ping().ok_or_else(absent)?;
                Message::Ping(Ping { nonce: b.nonce() })
            }
            fb::Body::Pong => {
                let b = frame.body_as_pong().ok_or_else(absent)?;
                Message::Pong(Pong { nonce: b.nonce() })
            }
            fb::Body::Error => {
                let b = frame.body_as_error().ok_or_else(absent)?;
                Message::Error(ErrorBody {
                    code: ErrorCode::from_wire(b.code().0),
                    message: b.message().unwrap_or(""),
                    retry_after_ms: b.retry_after_ms(),
                })
            }
            fb::Body::GroupCreate => {
                let b = frame.body_as_group_create().ok_or_else(absent)?;
                Message::GroupCreate(GroupCreate {
                    name: b.name().unwrap_or(""),
                    persistence: Persistence(b.persistence().0),
                })
            }
            fb::Body::GroupCreated => {
                let b = frame.body_as_group_created().ok_or_else(absent)?;
                Message::GroupCreated(GroupCreated { group_id: b.group_id() })
            }
            fb::Body::GroupAddMember => {
                let b = frame.body_as_group_add_member().ok_or_else(absent)?;
                Message::GroupAddMember(GroupAddMember {
                    group_id: b.group_id(),
                    user_id: b.user_id(),
                    role: GroupRole(b.role().0),
                })
            }
            fb::Body::GroupRemoveMember => {
                let b = frame.body_as_group_remove_member().ok_or_else(absent)?;
                Message::GroupRemoveMember(GroupRemoveMember {
                    group_id: b.group_id(),
                    user_id: b.user_id(),
                })
            }
            fb::Body::GroupLeave => {
                let b = frame.body_as_group_leave().ok_or_else(absent)?;
                Message::GroupLeave(GroupLeave { group_id: b.group_id() })
            }
            fb::Body::GroupMembers => {
                let b = frame.body_as_group_members().ok_or_else(absent)?;
                Message::GroupMembers(GroupMembers {
                    group_id: b.group_id(),
                    after_user_id: b.after_user_id(),
                })
            }
            fb::Body::GroupMemberList => {
                let b = frame.body_as_group_member_list().ok_or_else(absent)?;
                let members = b
                    .members()
                    .map(|list| {
                        list.iter()
                            .map(|m| GroupMember {
                                user_id: m.user_id(),
                                role: GroupRole(m.role().0),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Message::GroupMemberList(GroupMemberList {
                    group_id: b.group_id(),
                    members,
                    more: b.more(),
                })
            }
            fb::Body::MyGroups => {
                let b = frame.body_as_my_groups().ok_or_else(absent)?;
                Message::MyGroups(MyGroups {
                    after_group_id: b.after_group_id(),
                })
            }
            fb::Body::GroupList => {
                let b = frame.body_as_group_list().ok_or_else(absent)?;
                let groups = b
                    .groups()
                    .map(|list| {
                        list.iter()
                            .map(|g| GroupInfo {
                                group_id: g.group_id(),
                                name: g.name().unwrap_or(""),
                                role: GroupRole(g.role().0),
                                persistence: Persistence(g.persistence().0),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Message::GroupList(GroupList { groups, more: b.more() })
            }
            fb::Body::Done => {
                frame.body_as_done().ok_or_else(absent)?;
                Message::Done
            }
            fb::Body::Receipt => {
                let b = frame.body_as_receipt().ok_or_else(absent)?;
                let conversation = b.conversation().ok_or_else(|| missing("Receipt.conversation"))?;
                Message::Receipt(Receipt {
                    kind: ReceiptKind(b.kind().0),
                    message_id: b.message_id(),
                    conversation: Conversation::from_fb(conversation),
                    user_id: b.user_id(),
                    timestamp_us: b.timestamp_us(),
                })
            }
            fb::Body::MarkRead => {
                let b = frame.body_as_mark_read().ok_or_else(absent)?;
                let conversation = b.conversation().ok_or_else(|| missing("MarkRead.conversation"))?;
                Message::MarkRead(MarkRead {
                    conversation: Conversation::from_fb(conversation),
                    up_to_seq: b.up_to_seq(),
                })
            }
            fb::Body::ReadPosition => {
                let b = frame.body_as_read_position().ok_or_else(absent)?;
                Message::ReadPosition(read_position(b, request_id)?)
            }
            fb::Body::Conversations => {
                let b = frame.body_as_conversations().ok_or_else(absent)?;
                Message::Conversations(Conversations {
                    after: b.after().map(Conversation::from_fb),
                })
            }
            fb::Body::ConversationList => {
                let b = frame.body_as_conversation_list().ok_or_else(absent)?;
                let mut conversations = Vec::new();
                if let Some(list) = b.conversations() {
                    conversations.reserve_exact(list.len());
                    for p in list.iter() {
                        conversations.push(read_position(p, request_id)?);
                    }
                }
                Message::ConversationList(ConversationList {
                    conversations,
                    more: b.more(),
                })
            }
            fb::Body::Typing => {
                let b = frame.body_as_typing().ok_or_else(absent)?;
                let conversation = b.conversation().ok_or_else(|| missing("Typing.conversation"))?;
                Message::Typing(Typing {
                    conversation: Conversation::from_fb(conversation),
                })
            }
            fb::Body::TypingNotice => {
                let b = frame.body_as_typing_notice().ok_or_else(absent)?;
                let conversation = b.conversation().ok_or_else(|| missing("TypingNotice.conversation"))?;
                Message::TypingNotice(TypingNotice {
                    conversation: Conversation::from_fb(conversation),
                    user_id: b.user_id(),
                })
            }
            fb::Body::PresenceSubscribe => {
                let b = frame.body_as_presence_subscribe().ok_or_else(absent)?;
                Message::PresenceSubscribe(PresenceSubscribe {
                    user_ids: b.user_ids().map(|v| v.iter().collect()).unwrap_or_default(),
                })
            }
            fb::Body::Presence => {
                let b = frame.body_as_presence().ok_or_else(absent)?;
                Message::Presence(Presence {
                    user_id: b.user_id(),
                    online: b.online(),
                    last_seen_us: b.last_seen_us(),
                })
            }
            fb::Body::SetPersistence => {
                let b = frame.body_as_set_persistence().ok_or_else(absent)?;
                let conversation = b.conversation().ok_or_else(|| missing("SetPersistence.conversation"))?;
                Message::SetPersistence(SetPersistence {
                    conversation: Conversation::from_fb(conversation),
                    persistence: Persistence(b.persistence().0),
                })
            }
            other => {
                return Err(FrameError::UnknownBody {
                    request_id,
                    tag: other.0,
                })
            }
        };
        Ok(Frame { request_id, message })
    }

    /// Writes this body into `fbb` and returns the union tag and offset.
    pub(crate) fn write(
        &self,
        fbb: &mut flatbuffers::FlatBufferBuilder<'static>,
        scratch: &mut Vec<flatbuffers::WIPOffset<fb::Deliver<'static>>>,
    ) -> (fb::Body, flatbuffers::WIPOffset<flatbuffers::UnionWIPOffset>) {
        match self {
            Message::Hello(m) => {
                let client_name = Some(fbb.create_string(m.client_name));
                let o = fb::Hello::create(
                    fbb,
                    &fb::HelloArgs {
                        version_min: m.version_min,
                        version_max: m.version_max,
                        client_name,
                    },
                );
                (fb::Body::Hello, o.as_union_value())
            }
            Message::HelloOk(m) => {
                let server_name = Some(fbb.create_string(m.server_name));
                let l = &m.limits;
                let limits = Some(fb::Limits::create(
                    fbb,
                    &fb::LimitsArgs {
                        frame_bytes_max: l.frame_bytes_max,
                        payload_bytes_max: l.payload_bytes_max,
                        sync_page_messages_max: l.sync_page_messages_max,
                        idle_timeout_ms: l.idle_timeout_ms,
                        username_bytes_max: l.username_bytes_max,
                        password_bytes_max: l.password_bytes_max,
                        device_name_bytes_max: l.device_name_bytes_max,
                    },
                ));
                let o = fb::HelloOk::create(
                    fbb,
                    &fb::HelloOkArgs {
                        version: m.version,
                        server_name,
                        limits,
                    },
                );
                (fb::Body::HelloOk, o.as_union_value())
            }
            Message::Register(m) => {
                let username = Some(fbb.create_string(m.username));
                let password = Some(fbb.create_string(m.password));
                let o = fb::Register::create(fbb, &fb::RegisterArgs { username, password });
                (fb::Body::Register, o.as_union_value())
            }
            Message::RegisterOk(m) => {
                let o = fb::RegisterOk::create(fbb, &fb::RegisterOkArgs { user_id: m.user_id });
                (fb::Body::RegisterOk, o.as_union_value())
            }
            Message::Login(m) => {
                let (username, password, token) = match m.credentials {
                    Credentials::Password { username, password } => (
                        Some(fbb.create_string(username)),
                        Some(fbb.create_string(password)),
                        None,
                    ),
                    Credentials::Token(token) => (None, None, Some(fbb.create_vector(token))),
                };
                let device_name = Some(fbb.create_string(m.device_name));
                let o = fb::Login::create(
                    fbb,
                    &fb::LoginArgs {
                        username,
                        password,
                        token,
                        device_name,
                    },
                );
                (fb::Body::Login, o.as_union_value())
            }
            Message::LoginOk(m) => {
                let token = Some(fbb.create_vector(m.token));
                let o = fb::LoginOk::create(
                    fbb,
                    &fb::LoginOkArgs {
                        user_id: m.user_id,
                        device_id: m.device_id,
                        token,
                        inbox_seq: m.inbox_seq,
                        device_cursor: m.device_cursor,
                    },
                );
                (fb::Body::LoginOk, o.as_union_value())
            }
            Message::Logout => {
                let o = fb::Logout::create(fbb, &fb::LogoutArgs {});
                (fb::Body::Logout, o.as_union_value())
            }
            Message::LogoutOk => {
                let o = fb::LogoutOk::create(fbb, &fb::LogoutOkArgs {});
                (fb::Body::LogoutOk, o.as_union_value())
            }
            Message::Send(m) => {
                let payload = Some(fbb.create_vector(m.payload));
                let o = fb::Send::create(
                    fbb,
                    &fb::SendArgs {
                        client_msg_id: m.client_msg_id,
                        to: m.to,
                        payload,
                        flags: fb::SendFlags::from_bits_retain(m.flags.0),
                        group: m.group,
                        kind: fb::MessageKind(m.kind.0),
                        refers_to: m.refers_to,
                    },
                );
                (fb::Body::Send, o.as_union_value())
            }
            Message::SendAck(m) => {
                let o = fb::SendAck::create(
                    fbb,
                    &fb::SendAckArgs {
                        client_msg_id: m.client_msg_id,
                        message_id: m.message_id,
                        inbox_seq: m.inbox_seq,
                        timestamp_us: m.timestamp_us,
                    },
                );
                (fb::Body::SendAck, o.as_union_value())
            }
            Message::Deliver(m) => (fb::Body::Deliver, write_deliver(fbb, m).as_union_value()),
            Message::Ack(m) => {
                let o = fb::Ack::create(fbb, &fb::AckArgs { up_to_seq: m.up_to_seq });
                (fb::Body::Ack, o.as_union_value())
            }
            Message::AckOk(m) => {
                let o = fb::AckOk::create(
                    fbb,
                    &fb::AckOkArgs {
                        device_cursor: m.device_cursor,
                    },
                );
                (fb::Body::AckOk, o.as_union_value())
            }
            Message::Sync(m) => {
                let o = fb::Sync::create(
                    fbb,
                    &fb::SyncArgs {
                        after_seq: m.after_seq,
                        limit: m.limit,
                    },
                );
                (fb::Body::Sync, o.as_union_value())
            }
            Message::SyncPage(m) => {
                // Children first, then the vector: FlatBuffers builds bottom-up. The offsets
                // go in the encoder's reused scratch list, so a page allocates nothing new
                // once the encoder has seen a page that large.
                scratch.clear();
                for d in &m.messages {
                    let o = write_deliver(fbb, d);
                    scratch.push(o);
                }
                let messages = Some(fbb.create_vector(scratch));
                let o = fb::SyncPage::create(
                    fbb,
                    &fb::SyncPageArgs {
                        messages,
                        inbox_seq: m.inbox_seq,
                        more: m.more,
                    },
                );
                (fb::Body::SyncPage, o.as_union_value())
            }
            Message::Ping(m) => {
                let o = fb::Ping::create(fbb, &fb::PingArgs { nonce: m.nonce });
                (fb::Body::Ping, o.as_union_value())
            }
            Message::Pong(m) => {
                let o = fb::Pong::create(fbb, &fb::PongArgs { nonce: m.nonce });
                (fb::Body::Pong, o.as_union_value())
            }
            Message::Error(m) => {
                let message = Some(fbb.create_string(m.message));
                let o = fb::Error::create(
                    fbb,
                    &fb::ErrorArgs {
                        code: fb::ErrorCode(m.code.to_wire()),
                        message,
                        retry_after_ms: m.retry_after_ms,
                    },
                );
                (fb::Body::Error, o.as_union_value())
            }
            Message::GroupCreate(m) => {
                let name = Some(fbb.create_string(m.name));
                let o = fb::GroupCreate::create(
                    fbb,
                    &fb::GroupCreateArgs {
                        name,
                        persistence: fb::Persistence(m.persistence.0),
                    },
                );
                (fb::Body::GroupCreate, o.as_union_value())
            }
            Message::GroupCreated(m) => {
                let o = fb::GroupCreated::create(fbb, &fb::GroupCreatedArgs { group_id: m.group_id });
                (fb::Body::GroupCreated, o.as_union_value())
            }
            Message::GroupAddMember(m) => {
                let o = fb::GroupAddMember::create(
                    fbb,
                    &fb::GroupAddMemberArgs {
                        group_id: m.group_id,
                        user_id: m.user_id,
                        role: fb::GroupRole(m.role.0),
                    },
                );
                (fb::Body::GroupAddMember, o.as_union_value())
            }
            Message::GroupRemoveMember(m) => {
                let o = fb::GroupRemoveMember::create(
                    fbb,
                    &fb::GroupRemoveMemberArgs {
                        group_id: m.group_id,
                        user_id: m.user_id,
                    },
                );
                (fb::Body::GroupRemoveMember, o.as_union_value())
            }
            Message::GroupLeave(m) => {
                let o = fb::GroupLeave::create(fbb, &fb::GroupLeaveArgs { group_id: m.group_id });
                (fb::Body::GroupLeave, o.as_union_value())
            }
            Message::GroupMembers(m) => {
                let o = fb::GroupMembers::create(
                    fbb,
                    &fb::GroupMembersArgs {
                        group_id: m.group_id,
                        after_user_id: m.after_user_id,
                    },
                );
                (fb::Body::GroupMembers, o.as_union_value())
            }
            Message::GroupMemberList(m) => {
                let offsets: Vec<_> = m
                    .members
                    .iter()
                    .map(|g| {
                        fb::GroupMember::create(
                            fbb,
                            &fb::GroupMemberArgs {
                                user_id: g.user_id,
                                role: fb::GroupRole(g.role.0),
                            },
                        )
                    })
                    .collect();
                let members = Some(fbb.create_vector(&offsets));
                let o = fb::GroupMemberList::create(
                    fbb,
                    &fb::GroupMemberListArgs {
                        group_id: m.group_id,
                        members,
                        more: m.more,
                    },
                );
                (fb::Body::GroupMemberList, o.as_union_value())
            }
            Message::MyGroups(m) => {
                let o = fb::MyGroups::create(
                    fbb,
                    &fb::MyGroupsArgs {
                        after_group_id: m.after_group_id,
                    },
                );
                (fb::Body::MyGroups, o.as_union_value())
            }
            Message::GroupList(m) => {
                let offsets: Vec<_> = m
                    .groups
                    .iter()
                    .map(|g| {
                        let name = Some(fbb.create_string(g.name));
                        fb::GroupInfo::create(
                            fbb,
                            &fb::GroupInfoArgs {
                                group_id: g.group_id,
                                name,
                                role: fb::GroupRole(g.role.0),
                                persistence: fb::Persistence(g.persistence.0),
                            },
                        )
                    })
                    .collect();
                let groups = Some(fbb.create_vector(&offsets));
                let o = fb::GroupList::create(fbb, &fb::GroupListArgs { groups, more: m.more });
                (fb::Body::GroupList, o.as_union_value())
            }
            Message::Done => {
                let o = fb::Done::create(fbb, &fb::DoneArgs {});
                (fb::Body::Done, o.as_union_value())
            }
            Message::Receipt(m) => {
                let conversation = m.conversation.to_fb();
                let o = fb::Receipt::create(
                    fbb,
                    &fb::ReceiptArgs {
                        kind: fb::ReceiptKind(m.kind.0),
                        message_id: m.message_id,
                        conversation: Some(&conversation),
                        user_id: m.user_id,
                        timestamp_us: m.timestamp_us,
                    },
                );
                (fb::Body::Receipt, o.as_union_value())
            }
            Message::MarkRead(m) => {
                let conversation = m.conversation.to_fb();
                let o = fb::MarkRead::create(
                    fbb,
                    &fb::MarkReadArgs {
                        conversation: Some(&conversation),
                        up_to_seq: m.up_to_seq,
                    },
                );
                (fb::Body::MarkRead, o.as_union_value())
            }
            Message::ReadPosition(m) => (fb::Body::ReadPosition, write_read_position(fbb, m).as_union_value()),
            Message::Conversations(m) => {
                let after = m.after.map(Conversation::to_fb);
                let o = fb::Conversations::create(fbb, &fb::ConversationsArgs { after: after.as_ref() });
                (fb::Body::Conversations, o.as_union_value())
            }
            Message::ConversationList(m) => {
                let offsets: Vec<_> = m.conversations.iter().map(|p| write_read_position(fbb, p)).collect();
                let conversations = Some(fbb.create_vector(&offsets));
                let o = fb::ConversationList::create(
                    fbb,
                    &fb::ConversationListArgs {
                        conversations,
                        more: m.more,
                    },
                );
                (fb::Body::ConversationList, o.as_union_value())
            }
            Message::Typing(m) => {
                let conversation = m.conversation.to_fb();
                let o = fb::Typing::create(
                    fbb,
                    &fb::TypingArgs {
                        conversation: Some(&conversation),
                    },
                );
                (fb::Body::Typing, o.as_union_value())
            }
            Message::TypingNotice(m) => {
                let conversation = m.conversation.to_fb();
                let o = fb::TypingNotice::create(
                    fbb,
                    &fb::TypingNoticeArgs {
                        conversation: Some(&conversation),
                        user_id: m.user_id,
                    },
                );
                (fb::Body::TypingNotice, o.as_union_value())
            }
            Message::PresenceSubscribe(m) => {
                let user_ids = Some(fbb.create_vector(&m.user_ids));
                let o = fb::PresenceSubscribe::create(fbb, &fb::PresenceSubscribeArgs { user_ids });
                (fb::Body::PresenceSubscribe, o.as_union_value())
            }
            Message::Presence(m) => {
                let o = fb::Presence::create(
                    fbb,
                    &fb::PresenceArgs {
                        user_id: m.user_id,
                        online: m.online,
                        last_seen_us: m.last_seen_us,
                    },
                );
                (fb::Body::Presence, o.as_union_value())
            }
            Message::SetPersistence(m) => {
                let conversation = m.conversation.to_fb();
                let o = fb::SetPersistence::create(
                    fbb,
                    &fb::SetPersistenceArgs {
                        conversation: Some(&conversation),
                        persistence: fb::Persistence(m.persistence.0),
                    },
                );
                (fb::Body::SetPersistence, o.as_union_value())
            }
        }
    }
}

fn read_position(b: fb::ReadPosition<'_>, request_id: u64) -> Result<ReadPosition, FrameError> {
    let conversation = b.conversation().ok_or(FrameError::MissingField {
        request_id,
        field: "ReadPosition.conversation",
    })?;
    Ok(ReadPosition {
        conversation: Conversation::from_fb(conversation),
        read_seq: b.read_seq(),
        unread: b.unread(),
        last_seq: b.last_seq(),
    })
}

fn write_read_position<'b>(
    fbb: &mut flatbuffers::FlatBufferBuilder<'b>,
    m: &ReadPosition,
) -> flatbuffers::WIPOffset<fb::ReadPosition<'b>> {
    let conversation = m.conversation.to_fb();
    fb::ReadPosition::create(
        fbb,
        &fb::ReadPositionArgs {
            conversation: Some(&conversation),
            read_seq: m.read_seq,
            unread: m.unread,
            last_seq: m.last_seq,
        },
    )
}

fn read_deliver<'a>(b: fb::Deliver<'a>, request_id: u64) -> Result<Deliver<'a>, FrameError> {
    let conversation = b.conversation().ok_or(FrameError::MissingField {
        request_id,
        field: "Deliver.conversation",
    })?;
    Ok(Deliver {
        message_id: b.message_id(),
        conversation: Conversation::from_fb(conversation),
        sender: b.sender(),
        sender_device: b.sender_device(),
        inbox_seq: b.inbox_seq(),
        timestamp_us: b.timestamp_us(),
        payload: b.payload().map(|p| p.bytes()).unwrap_or(&[]),
        flags: SendFlags(b.flags().bits()),
        client_msg_id: b.client_msg_id(),
        kind: MessageKind(b.kind().0),
        refers_to: b.refers_to(),
    })
}

fn write_deliver<'b>(
    fbb: &mut flatbuffers::FlatBufferBuilder<'b>,
    m: &Deliver<'_>,
) -> flatbuffers::WIPOffset<fb::Deliver<'b>> {
    let payload = Some(fbb.create_vector(m.payload));
    let conversation = m.conversation.to_fb();
    fb::Deliver::create(
        fbb,
        &fb::DeliverArgs {
            message_id: m.message_id,
            conversation: Some(&conversation),
            sender: m.sender,
            sender_device: m.sender_device,
            inbox_seq: m.inbox_seq,
            timestamp_us: m.timestamp_us,
            payload,
            flags: fb::SendFlags::from_bits_retain(m.flags.0),
            client_msg_id: m.client_msg_id,
            kind: fb::MessageKind(m.kind.0),
            refers_to: m.refers_to,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_mirror_the_schema() {
        for code in ErrorCode::ALL {
            let wire = fb::ErrorCode(code.to_wire());
            assert_eq!(wire.variant_name().map(|n| n.to_owned()), Some(format!("{code:?}")));
            assert_eq!(ErrorCode::from_wire(code.to_wire()), code);
        }
        assert_eq!(fb::ErrorCode::ENUM_MAX, ErrorCode::ALL.len() as u16 - 1);
        assert_eq!(ErrorCode::from_wire(9_999), ErrorCode::Unknown);
    }

    #[test]
    fn send_flags_combine() {
        let f = SendFlags::DELIVERY_RECEIPT | SendFlags::READ_RECEIPT;
        assert!(f.contains(SendFlags::DELIVERY_RECEIPT));
        assert!(f.contains(SendFlags::READ_RECEIPT));
        assert!(!SendFlags::NONE.contains(SendFlags::READ_RECEIPT));
    }
}
