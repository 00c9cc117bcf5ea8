//! A sans-IO client session: intents in, frames out; bytes in, events out. No sockets, no
//! clocks, no threads, so the load generator, the end-to-end tests and any future CLI drive
//! the very same client over whatever transport they own.
//!
//! Use:
//! 1. Call intents ([`ClientSession::hello`], [`ClientSession::login_password`], ...). Each
//!    appends one frame to the outbound buffer and returns the frame's request id.
//! 2. Write [`ClientSession::outbound`] to the transport, then [`ClientSession::consume_outbound`]
//!    the bytes written.
//! 3. Feed bytes read from the transport to [`ClientSession::receive`] (or read straight into
//!    [`ClientSession::inbound_spare`] and [`ClientSession::commit_inbound`]), then drain
//!    [`ClientSession::next_event`] until it returns `Ok(None)`.
//!
//! State: the session owns its inbound and outbound buffers and a [`SessionState`]. Events
//! borrow the inbound buffer until the next call. A server `Ping` is answered with a `Pong`
//! automatically.
//!
//! Delivered position: the session tracks `delivered_seq`, the inbox seq up to which it has
//! handed out *every* entry (starting from the device cursor in `LoginOk`). It advances only
//! contiguously: a `Deliver`, a `SyncPage` entry or a `SendAck` (the sending device's own
//! copy, which the server acknowledges instead of echoing) moves it only when its seq is
//! exactly the next one. So [`ClientSession::ack_delivered`] never acknowledges past a gap,
//! whatever order history pages and live pushes arrive in.
//!
//! Durable watermark (early delivery): under `sync` durability the server pushes a message
//! to online recipients before its fsync and acknowledges the sender after it. The session
//! tracks `durable_seq`, the inbox seq up to which the server has said every entry is
//! durable (`LoginOk.inbox_seq`, `Deliver.durable_seq`, `Durable`, a `SendAck`'s own copy,
//! a `SyncPage`'s head: reads are durable); entries above it are *tentative*.
//! [`ClientSession::ack_delivered`] acknowledges only up to `min(delivered_seq, durable_seq)`
//! ([`ClientSession::ackable_seq`]), so the stored cursor never covers a tentative entry.
//! An application that keeps messages stores tentative ones as such and, when a later
//! login answers another [`Event::LoggedIn`] `epoch` than the one they arrived under, drops
//! them: the server restarted and sends again, from the cursor, whatever survived.

use crate::frame::{Decoded, Encoder, FrameDecoder, FrameError};
use crate::limits::{Limits, PROTOCOL_VERSION, PROTOCOL_VERSION_MIN, REQUEST_ID_NONE};
use crate::message::{
    Ack, Conversation, ConversationList, Conversations, Credentials, Deliver, ErrorBody, ErrorCode, GroupAddMember,
    GroupCreate, GroupLeave, GroupList, GroupMemberList, GroupMembers, GroupRemoveMember, GroupRole, Hello, HelloOk,
    Login, LoginOk, MarkRead, Message, MyGroups, Persistence, Ping, Pong, Presence, PresenceSubscribe, ReadPosition,
    Receipt, Register, Send, SendAck, SendFlags, SetPersistence, Sync, SyncPage, Typing, TypingNotice,
};

/// Where the session is in the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Nothing sent yet. Valid: nothing but the buffers.
    Connected,
    /// `Hello` sent, `HelloOk` not yet seen. `Login` and `Register` may be pipelined.
    Handshaking,
    /// `HelloOk` seen, not logged in. `limits` holds the server's limits.
    Ready,
    /// `Login` sent (request `request_id`), reply not yet seen.
    Authenticating { request_id: u64 },
    /// Logged in as `user_id` on `device_id`.
    LoggedIn { user_id: u64, device_id: u64 },
    /// Logged out, or the server sent something that ends the session.
    Closed,
}

/// Something the server told this session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// The handshake finished.
    HelloOk {
        version: u16,
        server_name: &'a str,
        limits: Limits,
    },
    /// A `Register` succeeded.
    Registered { request_id: u64, user_id: u64 },
    /// A `Login` succeeded; the session is now `LoggedIn`.
    LoggedIn {
        request_id: u64,
        user_id: u64,
        device_id: u64,
        token: &'a [u8],
        inbox_seq: u64,
        device_cursor: u64,
        /// The server's epoch (see the module docs).
        epoch: u64,
    },
    /// A `Logout` succeeded; the session is now `Closed`.
    LoggedOut { request_id: u64 },
    /// A sent message is durable.
    SendAck { request_id: u64, ack: SendAck },
    /// A message arrived (live push, or catch-up after login).
    Deliver(Deliver<'a>),
    /// An `Ack` with a request id is durable.
    AckOk { request_id: u64, device_cursor: u64 },
    /// The durable watermark moved: every inbox entry up to `inbox_seq` is durable (pushed
    /// by the server, or implied by a `Deliver`, `SendAck` or `SyncPage`; reported only by
    /// the push, the others carry it themselves).
    Durable { inbox_seq: u64 },
    /// A page of history.
    SyncPage { request_id: u64, page: SyncPage<'a> },
    /// Reply to [`ClientSession::ping`].
    Pong { request_id: u64, nonce: u64 },
    /// A request failed, or (request id 0) the server reports a connection-level error.
    Error { request_id: u64, error: ErrorBody<'a> },
    /// A `GroupCreate` succeeded.
    GroupCreated { request_id: u64, group_id: u64 },
    /// A request with nothing to return succeeded (group membership, persistence).
    Done { request_id: u64 },
    /// A page of a group's members.
    GroupMemberList { request_id: u64, list: GroupMemberList },
    /// A page of this user's groups.
    GroupList { request_id: u64, list: GroupList<'a> },
    /// A recipient stored or read a message this user sent with receipts requested.
    Receipt(Receipt),
    /// A conversation's read position: the reply to `MarkRead` (request id), or a push
    /// (request id 0) when another device of this user marked it read.
    ReadPosition { request_id: u64, position: ReadPosition },
    /// A page of this user's conversations.
    ConversationList { request_id: u64, list: ConversationList },
    /// Someone is typing.
    TypingNotice(TypingNotice),
    /// A subscribed user's presence changed.
    Presence(Presence),
}

/// A mistake by the caller or a protocol violation by the server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The intent is not valid in the session's current state.
    #[error("{intent} is not valid while the session is {state:?}")]
    InvalidState { intent: &'static str, state: SessionState },
    /// The payload is over the server's announced limit.
    #[error("payload of {len} bytes exceeds the server's limit of {max} bytes")]
    PayloadTooLarge { len: usize, max: u32 },
    /// The server's bytes did not decode.
    #[error("server sent a bad frame: {0}")]
    Frame(#[from] FrameError),
    /// The server sent a body a server never sends, or one at the wrong time.
    #[error("server sent an unexpected {body} frame while the session was {state:?}")]
    Unexpected { body: &'static str, state: SessionState },
}

/// The client side of one connection. See the module docs for the calling pattern.
#[derive(Debug)]
pub struct ClientSession {
    state: SessionState,
    client_name: String,
    limits: Limits,
    decoder: FrameDecoder,
    encoder: Encoder,
    outbound: Vec<u8>,
    inbound: Vec<u8>,
    /// Bytes of `inbound` before this index have been decoded and handed out.
    inbound_read: usize,
    request_id_next: u64,
    delivered_seq: u64,
    acked_seq: u64,
    durable_seq: u64,
    /// The server delivers early (it announced an epoch): `durable_seq` is what it said;
    /// otherwise (an older server) every delivered entry is durable.
    early_delivery: bool,
}

impl ClientSession {
    /// A session that will introduce itself as `client_name`.
    pub fn new(client_name: &str) -> Self {
        let limits = Limits::default();
        Self {
            state: SessionState::Connected,
            client_name: client_name.to_owned(),
            limits,
            decoder: FrameDecoder::new(limits.frame_bytes_max, limits.sync_page_messages_max),
            encoder: Encoder::new(),
            outbound: Vec::new(),
            inbound: Vec::new(),
            inbound_read: 0,
            request_id_next: 1,
            delivered_seq: 0,
            acked_seq: 0,
            durable_seq: 0,
            early_delivery: false,
        }
    }

    /// The current protocol state.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// The server's limits once `HelloOk` arrived; the defaults before.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The inbox seq up to which every entry has been handed out (see the module docs).
    pub fn delivered_seq(&self) -> u64 {
        self.delivered_seq
    }

    /// The inbox seq up to which the server has said every entry is durable (see the
    /// module docs); entries above it are tentative.
    pub fn durable_seq(&self) -> u64 {
        if self.early_delivery {
            self.durable_seq
        } else {
            self.delivered_seq
        }
    }

    /// How far this device may acknowledge: everything handed out and durable.
    pub fn ackable_seq(&self) -> u64 {
        self.delivered_seq.min(self.durable_seq())
    }

    /// Frames waiting to be written to the transport.
    pub fn outbound(&self) -> &[u8] {
        &self.outbound
    }

    /// Marks the first `n` outbound bytes as written.
    pub fn consume_outbound(&mut self, n: usize) {
        let n = n.min(self.outbound.len());
        self.outbound.drain(..n);
    }

    /// Takes all pending outbound bytes, leaving the buffer empty.
    pub fn take_outbound(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.outbound)
    }

    /// Appends bytes read from the transport.
    pub fn receive(&mut self, bytes: &[u8]) {
        self.compact_inbound();
        self.inbound.extend_from_slice(bytes);
    }

    /// Spare inbound space of at least `min` bytes to read the transport into directly;
    /// follow with [`ClientSession::commit_inbound`].
    pub fn inbound_spare(&mut self, min: usize) -> &mut [u8] {
        self.compact_inbound();
        let len = self.inbound.len();
        self.inbound.resize(len + min, 0);
        &mut self.inbound[len..]
    }

    /// After [`ClientSession::inbound_spare`]`(min)`: `n` of those bytes were filled.
    pub fn commit_inbound(&mut self, min: usize, n: usize) {
        debug_assert!(n <= min);
        let len = self.inbound.len() - min + n.min(min);
        self.inbound.truncate(len);
    }

    fn compact_inbound(&mut self) {
        if self.inbound_read > 0 {
            self.inbound.drain(..self.inbound_read);
            self.inbound_read = 0;
        }
    }

    fn next_request_id(&mut self) -> u64 {
        let id = self.request_id_next;
        self.request_id_next += 1;
        id
    }

    fn push(&mut self, request_id: u64, message: &Message<'_>) {
        self.encoder.encode_into(request_id, message, &mut self.outbound);
    }

    fn request(&mut self, message: &Message<'_>) -> u64 {
        let id = self.next_request_id();
        self.push(id, message);
        id
    }

    fn expect_state(&self, intent: &'static str, ok: bool) -> Result<(), SessionError> {
        if ok {
            Ok(())
        } else {
            Err(SessionError::InvalidState {
                intent,
                state: self.state,
            })
        }
    }

    fn pre_login(&self) -> bool {
        matches!(self.state, SessionState::Handshaking | SessionState::Ready)
    }

    /// Opens the handshake, offering every version this crate speaks.
    pub fn hello(&mut self) -> Result<u64, SessionError> {
        self.expect_state("Hello", self.state == SessionState::Connected)?;
        let id = self.request(&Message::Hello(Hello {
            version_min: PROTOCOL_VERSION_MIN,
            version_max: PROTOCOL_VERSION,
            client_name: &self.client_name.clone(),
        }));
        self.state = SessionState::Handshaking;
        Ok(id)
    }

    /// Creates an account (before logging in).
    pub fn register(&mut self, username: &str, password: &str) -> Result<u64, SessionError> {
        self.expect_state("Register", self.pre_login())?;
        Ok(self.request(&Message::Register(Register { username, password })))
    }

    fn login(&mut self, credentials: Credentials<'_>, device_name: &str) -> Result<u64, SessionError> {
        self.expect_state("Login", self.pre_login())?;
        let request_id = self.request(&Message::Login(Login {
            credentials,
            device_name,
        }));
        self.state = SessionState::Authenticating { request_id };
        Ok(request_id)
    }

    /// Logs in with a password, opening a new device named `device_name`.
    pub fn login_password(&mut self, username: &str, password: &str, device_name: &str) -> Result<u64, SessionError> {
        self.login(Credentials::Password { username, password }, device_name)
    }

    /// Resumes the device a token was issued to.
    pub fn login_token(&mut self, token: &[u8], device_name: &str) -> Result<u64, SessionError> {
        self.login(Credentials::Token(token), device_name)
    }

    fn logged_in(&self) -> bool {
        matches!(self.state, SessionState::LoggedIn { .. })
    }

    /// Sends `payload` to user `to`; `client_msg_id` makes retries idempotent.
    pub fn send(&mut self, to: u64, client_msg_id: u64, payload: &[u8], flags: SendFlags) -> Result<u64, SessionError> {
        self.expect_state("Send", self.logged_in())?;
        if payload.len() > self.limits.payload_bytes_max as usize {
            return Err(SessionError::PayloadTooLarge {
                len: payload.len(),
                max: self.limits.payload_bytes_max,
            });
        }
        self.send_message(&Send::direct(to, client_msg_id, payload, flags))
    }

    /// Sends any `Send` (to a group, an edit, a delete); checks the payload limit.
    pub fn send_message(&mut self, send: &Send<'_>) -> Result<u64, SessionError> {
        self.expect_state("Send", self.logged_in())?;
        if send.payload.len() > self.limits.payload_bytes_max as usize {
            return Err(SessionError::PayloadTooLarge {
                len: send.payload.len(),
                max: self.limits.payload_bytes_max,
            });
        }
        Ok(self.request(&Message::Send(*send)))
    }

    /// Sends `payload` to group `group_id`.
    pub fn send_group(
        &mut self,
        group_id: u64,
        client_msg_id: u64,
        payload: &[u8],
        flags: SendFlags,
    ) -> Result<u64, SessionError> {
        self.send_message(&Send {
            group: group_id,
            ..Send::direct(0, client_msg_id, payload, flags)
        })
    }

    /// Sends a logged-in request that has no special client-side rules.
    fn logged_in_request(&mut self, intent: &'static str, message: &Message<'_>) -> Result<u64, SessionError> {
        self.expect_state(intent, self.logged_in())?;
        Ok(self.request(message))
    }

    /// Creates a group owned by this user.
    pub fn group_create(&mut self, name: &str, persistence: Persistence) -> Result<u64, SessionError> {
        self.logged_in_request("GroupCreate", &Message::GroupCreate(GroupCreate { name, persistence }))
    }

    /// Adds `user_id` to a group with `role` (or changes its role).
    pub fn group_add_member(&mut self, group_id: u64, user_id: u64, role: GroupRole) -> Result<u64, SessionError> {
        let m = GroupAddMember {
            group_id,
            user_id,
            role,
        };
        self.logged_in_request("GroupAddMember", &Message::GroupAddMember(m))
    }

    /// Removes `user_id` from a group.
    pub fn group_remove_member(&mut self, group_id: u64, user_id: u64) -> Result<u64, SessionError> {
        let m = GroupRemoveMember { group_id, user_id };
        self.logged_in_request("GroupRemoveMember", &Message::GroupRemoveMember(m))
    }

    /// Leaves a group.
    pub fn group_leave(&mut self, group_id: u64) -> Result<u64, SessionError> {
        self.logged_in_request("GroupLeave", &Message::GroupLeave(GroupLeave { group_id }))
    }

    /// Asks for a page of a group's members after `after_user_id`.
    pub fn group_members(&mut self, group_id: u64, after_user_id: u64) -> Result<u64, SessionError> {
        let m = GroupMembers {
            group_id,
            after_user_id,
        };
        self.logged_in_request("GroupMembers", &Message::GroupMembers(m))
    }

    /// Asks for a page of this user's groups after `after_group_id`.
    pub fn my_groups(&mut self, after_group_id: u64) -> Result<u64, SessionError> {
        self.logged_in_request("MyGroups", &Message::MyGroups(MyGroups { after_group_id }))
    }

    /// Marks `conversation` read up to its inbox entry `up_to_seq`.
    pub fn mark_read(&mut self, conversation: Conversation, up_to_seq: u64) -> Result<u64, SessionError> {
        let m = MarkRead {
            conversation,
            up_to_seq,
        };
        self.logged_in_request("MarkRead", &Message::MarkRead(m))
    }

    /// Asks for a page of conversations after `after`.
    pub fn conversations(&mut self, after: Option<Conversation>) -> Result<u64, SessionError> {
        self.logged_in_request("Conversations", &Message::Conversations(Conversations { after }))
    }

    /// Tells the conversation this user is typing (fire and forget).
    pub fn typing(&mut self, conversation: Conversation) -> Result<(), SessionError> {
        self.expect_state("Typing", self.logged_in())?;
        self.push(REQUEST_ID_NONE, &Message::Typing(Typing { conversation }));
        Ok(())
    }

    /// Subscribes to these users' presence.
    pub fn presence_subscribe(&mut self, user_ids: &[u64]) -> Result<u64, SessionError> {
        let m = PresenceSubscribe {
            user_ids: user_ids.to_vec(),
        };
        self.logged_in_request("PresenceSubscribe", &Message::PresenceSubscribe(m))
    }

    /// Sets a conversation's persistence for messages sent from now on.
    pub fn set_persistence(
        &mut self,
        conversation: Conversation,
        persistence: Persistence,
    ) -> Result<u64, SessionError> {
        let m = SetPersistence {
            conversation,
            persistence,
        };
        self.logged_in_request("SetPersistence", &Message::SetPersistence(m))
    }

    /// Acknowledges everything up to `up_to_seq` (fire and forget: no reply unless it fails).
    pub fn ack(&mut self, up_to_seq: u64) -> Result<(), SessionError> {
        self.expect_state("Ack", self.logged_in())?;
        self.push(REQUEST_ID_NONE, &Message::Ack(Ack { up_to_seq }));
        self.acked_seq = self.acked_seq.max(up_to_seq);
        Ok(())
    }

    /// Acknowledges everything up to `up_to_seq` and asks for an `AckOk` once it is durable.
    pub fn ack_confirmed(&mut self, up_to_seq: u64) -> Result<u64, SessionError> {
        self.expect_state("Ack", self.logged_in())?;
        let id = self.request(&Message::Ack(Ack { up_to_seq }));
        self.acked_seq = self.acked_seq.max(up_to_seq);
        Ok(id)
    }

    /// Acknowledges everything delivered and durable so far ([`ClientSession::ackable_seq`]),
    /// if anything is new since the last ack. Returns whether a frame was queued.
    pub fn ack_delivered(&mut self) -> Result<bool, SessionError> {
        let ackable = self.ackable_seq();
        if ackable > self.acked_seq {
            self.ack(ackable)?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Asks for up to `limit` inbox messages after `after_seq` (0: the server's maximum).
    pub fn sync(&mut self, after_seq: u64, limit: u32) -> Result<u64, SessionError> {
        self.expect_state("Sync", self.logged_in())?;
        Ok(self.request(&Message::Sync(Sync { after_seq, limit })))
    }

    /// Probes the connection (after `hello`: the server refuses anything before it).
    pub fn ping(&mut self, nonce: u64) -> Result<u64, SessionError> {
        let open = !matches!(self.state, SessionState::Connected | SessionState::Closed);
        self.expect_state("Ping", open)?;
        Ok(self.request(&Message::Ping(Ping { nonce })))
    }

    /// Revokes this session's token and ends the session.
    pub fn logout(&mut self) -> Result<u64, SessionError> {
        self.expect_state("Logout", self.logged_in())?;
        Ok(self.request(&Message::Logout))
    }

    /// Decodes the next complete frame received, if any, into an event.
    pub fn next_event(&mut self) -> Result<Option<Event<'_>>, SessionError> {
        loop {
            let buf = &self.inbound[self.inbound_read..];
            let (frame, consumed) = match self.decoder.decode(buf)? {
                Decoded::NeedMore { .. } => return Ok(None),
                Decoded::Frame { frame, consumed } => (frame, consumed),
            };
            self.inbound_read += consumed;
            // Field-level borrows: the inbound buffer stays borrowed by `frame`.
            let mut protocol = Protocol {
                state: &mut self.state,
                limits: &mut self.limits,
                decoder: &mut self.decoder,
                encoder: &mut self.encoder,
                outbound: &mut self.outbound,
                delivered_seq: &mut self.delivered_seq,
                acked_seq: &mut self.acked_seq,
                durable_seq: &mut self.durable_seq,
                early_delivery: &mut self.early_delivery,
            };
            if let Some(event) = protocol.event(frame.request_id, frame.message)? {
                return Ok(Some(event));
            }
        }
    }
}

/// The session's fields a server frame acts on, borrowed apart from the inbound buffer that
/// the frame (and so the event handed out) borrows: `next_event` cannot call `&mut self`
/// methods while it holds the frame.
struct Protocol<'s> {
    state: &'s mut SessionState,
    limits: &'s mut Limits,
    decoder: &'s mut FrameDecoder,
    encoder: &'s mut Encoder,
    outbound: &'s mut Vec<u8>,
    delivered_seq: &'s mut u64,
    acked_seq: &'s mut u64,
    durable_seq: &'s mut u64,
    early_delivery: &'s mut bool,
}

impl Protocol<'_> {
    /// Applies one server frame; `None` for a frame answered inside the session (`Ping`).
    fn event<'a>(&mut self, request_id: u64, message: Message<'a>) -> Result<Option<Event<'a>>, SessionError> {
        let event = match message {
            Message::HelloOk(ok) => self.hello_ok(ok)?,
            Message::RegisterOk(ok) => Event::Registered {
                request_id,
                user_id: ok.user_id,
            },
            Message::LoginOk(ok) => self.login_ok(request_id, ok)?,
            Message::LogoutOk => {
                *self.state = SessionState::Closed;
                Event::LoggedOut { request_id }
            }
            Message::SendAck(ack) => {
                self.advance_delivered(ack.inbox_seq);
                // Acknowledged after the fsync that made the own copy durable, and every
                // entry before it with it.
                self.advance_durable(ack.inbox_seq);
                Event::SendAck { request_id, ack }
            }
            Message::Deliver(d) => self.deliver(d)?,
            Message::Durable(d) => {
                if !matches!(*self.state, SessionState::LoggedIn { .. }) {
                    return Err(self.unexpected("Durable"));
                }
                self.advance_durable(d.inbox_seq);
                Event::Durable { inbox_seq: d.inbox_seq }
            }
            Message::AckOk(ok) => Event::AckOk {
                request_id,
                device_cursor: ok.device_cursor,
            },
            Message::SyncPage(page) => self.sync_page(request_id, page),
            Message::Ping(p) => {
                self.encoder
                    .encode_into(request_id, &Message::Pong(Pong { nonce: p.nonce }), self.outbound);
                return Ok(None);
            }
            Message::Pong(p) => Event::Pong {
                request_id,
                nonce: p.nonce,
            },
            Message::Error(error) => self.error(request_id, error),
            Message::GroupCreated(ok) => Event::GroupCreated {
                request_id,
                group_id: ok.group_id,
            },
            Message::Done => Event::Done { request_id },
            Message::GroupMemberList(list) => Event::GroupMemberList { request_id, list },
            Message::GroupList(list) => Event::GroupList { request_id, list },
            Message::Receipt(r) => Event::Receipt(r),
            Message::ReadPosition(position) => Event::ReadPosition { request_id, position },
            Message::ConversationList(list) => Event::ConversationList { request_id, list },
            Message::TypingNotice(t) => Event::TypingNotice(t),
            Message::Presence(p) => Event::Presence(p),
            other @ (Message::Hello(_)
            | Message::Register(_)
            | Message::Login(_)
            | Message::Logout
            | Message::Send(_)
            | Message::Ack(_)
            | Message::Sync(_)
            | Message::GroupCreate(_)
            | Message::GroupAddMember(_)
            | Message::GroupRemoveMember(_)
            | Message::GroupLeave(_)
            | Message::GroupMembers(_)
            | Message::MyGroups(_)
            | Message::MarkRead(_)
            | Message::Conversations(_)
            | Message::Typing(_)
            | Message::PresenceSubscribe(_)
            | Message::SetPersistence(_)) => return Err(self.unexpected(other.name())),
        };
        Ok(Some(event))
    }

    /// The server sent `body` where the current state does not allow it.
    fn unexpected(&self, body: &'static str) -> SessionError {
        SessionError::Unexpected {
            body,
            state: *self.state,
        }
    }

    /// The handshake finished: adopt the server's limits, the decoder's included.
    fn hello_ok<'a>(&mut self, ok: HelloOk<'a>) -> Result<Event<'a>, SessionError> {
        match *self.state {
            SessionState::Handshaking => *self.state = SessionState::Ready,
            // A Login pipelined behind the Hello: stay Authenticating.
            SessionState::Authenticating { .. } => {}
            _ => return Err(self.unexpected("HelloOk")),
        }
        *self.limits = ok.limits;
        *self.decoder = FrameDecoder::new(ok.limits.frame_bytes_max, ok.limits.sync_page_messages_max);
        Ok(Event::HelloOk {
            version: ok.version,
            server_name: ok.server_name,
            limits: ok.limits,
        })
    }

    /// The login `request_id` succeeded: the session is logged in from the device cursor on.
    fn login_ok<'a>(&mut self, request_id: u64, ok: LoginOk<'a>) -> Result<Event<'a>, SessionError> {
        if *self.state != (SessionState::Authenticating { request_id }) {
            return Err(self.unexpected("LoginOk"));
        }
        *self.state = SessionState::LoggedIn {
            user_id: ok.user_id,
            device_id: ok.device_id,
        };
        // Everything up to the cursor is already stored on this device.
        *self.delivered_seq = ok.device_cursor;
        *self.acked_seq = ok.device_cursor;
        // A login reads a durable inbox head.
        *self.early_delivery = ok.epoch != 0;
        *self.durable_seq = ok.inbox_seq.max(ok.device_cursor);
        Ok(Event::LoggedIn {
            request_id,
            user_id: ok.user_id,
            device_id: ok.device_id,
            token: ok.token,
            inbox_seq: ok.inbox_seq,
            device_cursor: ok.device_cursor,
            epoch: ok.epoch,
        })
    }

    /// A pushed message; only a logged-in session has an inbox to push from.
    fn deliver<'a>(&mut self, d: Deliver<'a>) -> Result<Event<'a>, SessionError> {
        if !matches!(*self.state, SessionState::LoggedIn { .. }) {
            return Err(self.unexpected("Deliver"));
        }
        self.advance_delivered(d.inbox_seq);
        self.advance_durable(d.durable_seq);
        Ok(Event::Deliver(d))
    }

    /// A page of history; its entries advance the delivered position in order.
    fn sync_page<'a>(&mut self, request_id: u64, page: SyncPage<'a>) -> Event<'a> {
        for m in &page.messages {
            self.advance_delivered(m.inbox_seq);
        }
        // The server reads only durable entries.
        self.advance_durable(page.inbox_seq);
        Event::SyncPage { request_id, page }
    }

    /// A failed login returns the session to `Ready`; a refused version closes it.
    fn error<'a>(&mut self, request_id: u64, error: ErrorBody<'a>) -> Event<'a> {
        match *self.state {
            SessionState::Authenticating { request_id: login } if login == request_id => {
                *self.state = SessionState::Ready;
            }
            SessionState::Handshaking if error.code == ErrorCode::UnsupportedVersion => {
                *self.state = SessionState::Closed;
            }
            _ => {}
        }
        Event::Error { request_id, error }
    }

    /// Raises the durable watermark (it never moves back within a session).
    fn advance_durable(&mut self, seq: u64) {
        *self.durable_seq = (*self.durable_seq).max(seq);
    }

    /// Moves the delivered position to `seq` only if it is exactly the next entry.
    fn advance_delivered(&mut self, seq: u64) {
        if seq == *self.delivered_seq + 1 {
            *self.delivered_seq = seq;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Conversation, HelloOk, LoginOk};
    use crate::TOKEN_BYTES;

    /// Decodes every frame a session wrote, as a server would.
    fn sent_frames(session: &mut ClientSession) -> Vec<(u64, String)> {
        let bytes = session.take_outbound();
        let dec = FrameDecoder::new(1 << 20, 0);
        let mut at = 0;
        let mut out = Vec::new();
        while at < bytes.len() {
            let Ok(Decoded::Frame { frame, consumed }) = dec.decode(&bytes[at..]) else {
                panic!("session wrote a bad frame");
            };
            out.push((frame.request_id, format!("{:?}", frame.message)));
            at += consumed;
        }
        out
    }

    fn server(session: &mut ClientSession, request_id: u64, message: &Message<'_>) {
        let bytes = Encoder::new().encode(request_id, message).to_vec();
        session.receive(&bytes);
    }

    const TOKEN: [u8; TOKEN_BYTES] = [9; TOKEN_BYTES];

    fn logged_in() -> ClientSession {
        logged_in_at(10, 0)
    }

    /// A session logged in as user 5 with cursor 4, the inbox head at `inbox_seq`, under
    /// `epoch` (0: a server that predates early delivery).
    fn logged_in_at(inbox_seq: u64, epoch: u64) -> ClientSession {
        let mut s = ClientSession::new("unit");
        s.hello().expect("hello");
        let login = s.login_password("alice", "pw", "phone").expect("pipelined login");
        server(
            &mut s,
            1,
            &Message::HelloOk(HelloOk {
                version: 1,
                server_name: "srv",
                limits: Limits::default(),
            }),
        );
        assert!(matches!(s.next_event(), Ok(Some(Event::HelloOk { version: 1, .. }))));
        let ok = LoginOk {
            user_id: 5,
            device_id: 2,
            token: &TOKEN,
            inbox_seq,
            device_cursor: 4,
            epoch,
        };
        server(&mut s, login, &Message::LoginOk(ok));
        let event = s.next_event().expect("decodes").expect("event");
        assert!(matches!(
            event,
            Event::LoggedIn {
                user_id: 5,
                device_id: 2,
                device_cursor: 4,
                ..
            }
        ));
        assert_eq!(
            s.state(),
            SessionState::LoggedIn {
                user_id: 5,
                device_id: 2
            }
        );
        let _ = s.take_outbound();
        s
    }

    #[test]
    fn intents_before_login_are_refused_locally() {
        let mut s = ClientSession::new("unit");
        assert!(matches!(
            s.send(1, 1, b"x", SendFlags::NONE),
            Err(SessionError::InvalidState { intent: "Send", .. })
        ));
        assert!(matches!(
            s.login_password("a", "b", ""),
            Err(SessionError::InvalidState { intent: "Login", .. })
        ));
        s.hello().expect("hello");
        assert!(matches!(
            s.hello(),
            Err(SessionError::InvalidState { intent: "Hello", .. })
        ));
        assert!(matches!(
            s.sync(0, 0),
            Err(SessionError::InvalidState { intent: "Sync", .. })
        ));
        assert!(s.outbound().len() > 4, "only the Hello was written");
        assert_eq!(sent_frames(&mut s).len(), 1);
    }

    #[test]
    fn handshake_and_login_produce_the_expected_frames() {
        let mut s = ClientSession::new("unit");
        let hello = s.hello().expect("hello");
        let login = s.login_password("alice", "pw", "phone").expect("login");
        let frames = sent_frames(&mut s);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].0, hello);
        assert!(
            frames[0].1.starts_with("Hello(Hello { version_min: 1, version_max: 1"),
            "{}",
            frames[0].1
        );
        assert_eq!(frames[1].0, login);
        assert!(frames[1].1.contains("username: \"alice\""));
        assert_eq!(s.state(), SessionState::Authenticating { request_id: login });
    }

    #[test]
    fn a_failed_login_returns_to_ready() {
        let mut s = ClientSession::new("unit");
        s.hello().expect("hello");
        server(
            &mut s,
            1,
            &Message::HelloOk(HelloOk {
                version: 1,
                server_name: "",
                limits: Limits::default(),
            }),
        );
        let _ = s.next_event();
        let login = s.login_token(&TOKEN, "").expect("login");
        let error = ErrorBody {
            code: ErrorCode::InvalidCredentials,
            message: "no",
            retry_after_ms: 0,
        };
        server(&mut s, login, &Message::Error(error));
        let event = s.next_event().expect("decodes").expect("event");
        assert_eq!(
            event,
            Event::Error {
                request_id: login,
                error
            }
        );
        assert_eq!(s.state(), SessionState::Ready);
    }

    #[test]
    fn deliveries_advance_the_ack_position() {
        let mut s = logged_in();
        assert_eq!(s.delivered_seq(), 4, "the device cursor counts as delivered");
        assert!(!s.ack_delivered().expect("ack"), "nothing new to ack");
        for seq in 5..=7 {
            let d = Deliver {
                message_id: seq,
                conversation: Conversation::Direct(9),
                sender: 9,
                sender_device: 1,
                inbox_seq: seq,
                timestamp_us: 0,
                payload: b"hi",
                flags: SendFlags::NONE,
                client_msg_id: seq,
                kind: crate::MessageKind::NORMAL,
                refers_to: 0,
                durable_seq: 0,
            };
            server(&mut s, REQUEST_ID_NONE, &Message::Deliver(d));
        }
        let mut seqs = Vec::new();
        while let Some(event) = s.next_event().expect("decodes") {
            let Event::Deliver(d) = event else {
                panic!("unexpected {event:?}")
            };
            seqs.push(d.inbox_seq);
        }
        assert_eq!(seqs, [5, 6, 7]);
        assert!(s.ack_delivered().expect("ack"));
        assert_eq!(sent_frames(&mut s), [(0, "Ack(Ack { up_to_seq: 7 })".to_owned())]);
        assert!(!s.ack_delivered().expect("ack"), "already acked");
    }

    fn push_deliver(s: &mut ClientSession, seq: u64) {
        push_deliver_durable(s, seq, 0);
    }

    fn push_deliver_durable(s: &mut ClientSession, seq: u64, durable_seq: u64) {
        let d = Deliver {
            message_id: seq,
            conversation: Conversation::Direct(9),
            sender: 9,
            sender_device: 1,
            inbox_seq: seq,
            timestamp_us: 0,
            payload: b"",
            flags: SendFlags::NONE,
            client_msg_id: seq,
            kind: crate::MessageKind::NORMAL,
            refers_to: 0,
            durable_seq,
        };
        server(s, REQUEST_ID_NONE, &Message::Deliver(d));
        while s.next_event().expect("decodes").is_some() {}
    }

    /// The `SendAck` of this device's send whose own copy is inbox entry `inbox_seq`.
    fn own_send_ack(inbox_seq: u64) -> SendAck {
        SendAck {
            client_msg_id: 1,
            message_id: 1,
            inbox_seq,
            timestamp_us: 0,
        }
    }

    #[test]
    fn acks_stop_at_the_durable_watermark_under_early_delivery() {
        let mut s = logged_in_at(4, 7);
        assert_eq!(s.durable_seq(), 4, "a login reads a durable head");
        push_deliver_durable(&mut s, 5, 4);
        push_deliver_durable(&mut s, 6, 5);
        push_deliver_durable(&mut s, 7, 5);
        assert_eq!((s.delivered_seq(), s.durable_seq(), s.ackable_seq()), (7, 5, 5));
        assert!(s.ack_delivered().expect("ack"));
        assert_eq!(sent_frames(&mut s), [(0, "Ack(Ack { up_to_seq: 5 })".to_owned())]);
        assert!(!s.ack_delivered().expect("ack"), "6 and 7 are tentative");
        server(
            &mut s,
            REQUEST_ID_NONE,
            &Message::Durable(crate::Durable { inbox_seq: 7 }),
        );
        assert_eq!(s.next_event().expect("decodes"), Some(Event::Durable { inbox_seq: 7 }));
        assert!(s.ack_delivered().expect("ack"));
        assert_eq!(sent_frames(&mut s), [(0, "Ack(Ack { up_to_seq: 7 })".to_owned())]);
        // A SendAck is sent after the fsync of the sender's own copy: it and all before it
        // are durable.
        server(&mut s, 3, &Message::SendAck(own_send_ack(8)));
        while s.next_event().expect("decodes").is_some() {}
        assert_eq!((s.delivered_seq(), s.durable_seq()), (8, 8));
        push_deliver_durable(&mut s, 9, 2);
        assert_eq!(s.durable_seq(), 8, "the watermark never moves back");
    }

    #[test]
    fn a_server_without_an_epoch_has_everything_durable() {
        let mut s = logged_in_at(4, 0);
        push_deliver(&mut s, 5);
        push_deliver(&mut s, 6);
        assert_eq!(s.ackable_seq(), 6);
    }

    #[test]
    fn the_delivered_position_only_advances_without_gaps() {
        let mut s = logged_in();
        push_deliver(&mut s, 5);
        push_deliver(&mut s, 7);
        assert_eq!(s.delivered_seq(), 5, "7 arrived before 6: acking 7 would skip 6");
        server(&mut s, 3, &Message::SendAck(own_send_ack(6)));
        assert!(matches!(s.next_event(), Ok(Some(Event::SendAck { request_id: 3, .. }))));
        assert_eq!(s.delivered_seq(), 6, "our own send's SendAck stands for inbox entry 6");
        push_deliver(&mut s, 7);
        push_deliver(&mut s, 7);
        assert_eq!(s.delivered_seq(), 7);
        let id = s.ack_confirmed(7).expect("ack");
        server(&mut s, id, &Message::AckOk(crate::message::AckOk { device_cursor: 7 }));
        assert_eq!(
            s.next_event(),
            Ok(Some(Event::AckOk {
                request_id: id,
                device_cursor: 7
            }))
        );
    }

    #[test]
    fn conversation_pushes_and_replies_become_events() {
        let mut s = logged_in();
        let _ = s.take_outbound();
        let group_request = s.group_create("ops", Persistence::ARCHIVE).expect("logged in");
        server(
            &mut s,
            group_request,
            &Message::GroupCreated(crate::GroupCreated { group_id: 4 }),
        );
        assert_eq!(
            s.next_event(),
            Ok(Some(Event::GroupCreated {
                request_id: group_request,
                group_id: 4
            }))
        );
        let presence = Presence {
            user_id: 3,
            online: true,
            last_seen_us: 0,
        };
        server(&mut s, 0, &Message::Presence(presence));
        assert_eq!(s.next_event(), Ok(Some(Event::Presence(presence))));
        server(&mut s, 0, &Message::Done);
        assert_eq!(s.next_event(), Ok(Some(Event::Done { request_id: 0 })));
        // An ephemeral Deliver (seq 0) does not move the delivered position.
        let before = s.delivered_seq();
        push_deliver(&mut s, 0);
        assert_eq!(s.delivered_seq(), before);
        assert!(
            ClientSession::new("x").typing(Conversation::Direct(1)).is_err(),
            "typing needs a login"
        );
    }

    #[test]
    fn a_server_ping_is_answered_automatically() {
        let mut s = logged_in();
        server(&mut s, 33, &Message::Ping(Ping { nonce: 8 }));
        assert_eq!(s.next_event(), Ok(None));
        assert_eq!(sent_frames(&mut s), [(33, "Pong(Pong { nonce: 8 })".to_owned())]);
    }

    #[test]
    fn the_payload_limit_comes_from_the_server() {
        let mut s = ClientSession::new("unit");
        s.hello().expect("hello");
        let limits = Limits {
            payload_bytes_max: 3,
            ..Limits::default()
        };
        server(
            &mut s,
            1,
            &Message::HelloOk(HelloOk {
                version: 1,
                server_name: "",
                limits,
            }),
        );
        let _ = s.next_event();
        let login = s.login_token(&TOKEN, "").expect("login");
        let ok = LoginOk {
            user_id: 1,
            device_id: 1,
            token: &TOKEN,
            inbox_seq: 0,
            device_cursor: 0,
            epoch: 0,
        };
        server(&mut s, login, &Message::LoginOk(ok));
        let _ = s.next_event();
        assert!(s.send(2, 1, b"abc", SendFlags::NONE).is_ok());
        assert_eq!(
            s.send(2, 2, b"abcd", SendFlags::NONE),
            Err(SessionError::PayloadTooLarge { len: 4, max: 3 })
        );
    }

    #[test]
    fn frames_a_server_never_sends_are_protocol_violations() {
        let mut s = logged_in();
        server(
            &mut s,
            1,
            &Message::Send(Send {
                client_msg_id: 1,
                to: 1,
                payload: b"",
                flags: SendFlags::NONE,
                group: 0,
                kind: crate::MessageKind::NORMAL,
                refers_to: 0,
            }),
        );
        assert!(matches!(
            s.next_event(),
            Err(SessionError::Unexpected { body: "Send", .. })
        ));
        let mut fresh = ClientSession::new("unit");
        let ok = LoginOk {
            user_id: 1,
            device_id: 1,
            token: &TOKEN,
            inbox_seq: 0,
            device_cursor: 0,
            epoch: 0,
        };
        server(&mut fresh, 1, &Message::LoginOk(ok));
        assert!(matches!(
            fresh.next_event(),
            Err(SessionError::Unexpected { body: "LoginOk", .. })
        ));
    }

    #[test]
    fn reading_straight_into_spare_space_one_byte_at_a_time() {
        let mut s = logged_in();
        let bytes = Encoder::new().encode(4, &Message::Pong(Pong { nonce: 77 })).to_vec();
        let mut events = 0;
        for b in bytes {
            let spare = s.inbound_spare(16);
            spare[0] = b;
            s.commit_inbound(16, 1);
            while let Some(event) = s.next_event().expect("decodes") {
                assert_eq!(
                    event,
                    Event::Pong {
                        request_id: 4,
                        nonce: 77
                    }
                );
                events += 1;
            }
        }
        assert_eq!(events, 1);
    }
}
