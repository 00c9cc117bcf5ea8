//! Typed messages: plain Rust values for every `Body` member, borrowed from the frame bytes
//! when read and written through [`crate::Encoder`], so no caller handles FlatBuffers offsets.
//!
//! Invariants:
//! - Reading ([`Message::from_fb`]) only ever sees frames the verifier accepted; it never
//!   panics and turns a missing required field into [`FrameError::MissingField`].
//! - Every type here round-trips: `decode(encode(m)) == m` (tested for each member).
//! - A message holds no allocation except `SyncPage::messages` (one `Vec` per page).

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

/// Client → server: send a message to a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Send<'a> {
    pub client_msg_id: u64,
    pub to: u64,
    pub payload: &'a [u8],
    pub flags: SendFlags,
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
}

impl ErrorCode {
    /// Every code, in wire order (tests check this mirrors the schema).
    pub const ALL: [ErrorCode; 19] = [
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
        }
    }
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
