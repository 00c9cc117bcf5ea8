//! [`Client`]: one connection to a server, a blocking [`TcpStream`] driving a
//! [`ClientSession`] over plain TCP, TLS (rustls) or WebSocket through a
//! `hotline-transport` [`Layer`] ([`Transport`]). One helper per request (messages,
//! groups, read positions, typing, presence, persistence), each waiting for its reply, and
//! raw writes for the tests that are about bytes.
//!
//! # Invariants
//! - Nothing waits forever. Every read has a deadline ([`REPLY_WAIT_DEFAULT`] unless a test
//!   says otherwise), and a missed deadline panics naming what was awaited and what arrived
//!   instead.
//! - Nothing that arrives is lost. Whatever comes in while a helper waits for something
//!   else (a `Deliver` during a `send`, say) stays queued, in arrival order, for later helpers.
//! - Frames go out through the session only, except through [`Client::raw_write`] and
//!   [`Client::raw_request`], which exist for the tests whose point is the bytes.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use hotline_transport::{tls, Layer, WsClientOptions};
use hotline_wire::{
    ClientSession, Conversation, Encoder, ErrorCode, Event, GroupMember, GroupRole, Message, Persistence, Presence,
    ReadPosition, Receipt, Send, SendAck, SendFlags, SessionState, TypingNotice,
};

use crate::owned::{HelloInfo, LoggedIn, OwnedDeliver, OwnedEvent, OwnedGroupInfo, OwnedSyncPage};
use crate::server::test_certificate;

/// How long a helper waits for a reply or an event before it fails the test.
pub const REPLY_WAIT_DEFAULT: Duration = Duration::from_secs(10);

/// First request id of the frames the harness encodes itself ([`Client::raw_request`]):
/// far above any id a session hands out, so the replies never collide with the session's.
pub const RAW_REQUEST_ID_FIRST: u64 = 1 << 48;

/// Bytes read from the socket per `read` call.
const READ_CHUNK_BYTES: usize = 64 << 10;

/// A TLS client configuration trusting [`test_certificate`], verifying `localhost`.
fn test_tls_client() -> tls::ClientTls {
    let (cert, _) = test_certificate();
    tls::client_trusting(&cert, "localhost").expect("a client config trusting the test certificate")
}

fn ws_options(addr: SocketAddr, origin: Option<String>) -> WsClientOptions {
    WsClientOptions {
        host: addr.to_string(),
        path: "/".to_owned(),
        origin,
        frame_bytes_max: hotline_wire::FRAME_BYTES_MAX_DEFAULT,
    }
}

/// How a [`Client`] reaches the server.
#[derive(Debug, Clone)]
pub enum Transport {
    /// Length-prefixed frames on TCP.
    Tcp,
    /// The same inside TLS (rustls), trusting [`test_certificate`], server name `localhost`.
    Tls,
    /// One frame per binary WebSocket message, optionally with an `Origin` header.
    Ws { origin: Option<String> },
    /// WebSocket inside TLS (wss), trusting [`test_certificate`].
    Wss,
}

/// What [`Client::send_pipelined`] got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pipelined {
    /// `(client_msg_id, reply)` for every message that got a reply, in the order sent.
    pub replies: Vec<(u64, Result<SendAck, ErrorCode>)>,
    /// The connection closed before every message got a reply.
    pub closed: bool,
}

impl Pipelined {
    /// Appends each reply to `acked` or, refused, its code to `refused`.
    pub fn sort_into(self, acked: &mut Vec<SendAck>, refused: &mut Vec<ErrorCode>) {
        for (_, reply) in self.replies {
            match reply {
                Ok(ack) => acked.push(ack),
                Err(code) => refused.push(code),
            }
        }
    }

    /// The acks, in the order sent.
    pub fn acks(&self) -> Vec<(u64, SendAck)> {
        self.replies
            .iter()
            .filter_map(|(id, reply)| reply.as_ref().ok().map(|ack| (*id, *ack)))
            .collect()
    }
}

/// One connection to a server: a blocking socket and a [`ClientSession`].
///
/// Reads happen only inside helpers, each bounded by a deadline; every frame decoded is
/// queued as an [`OwnedEvent`] and handed to the first helper that asks for it. Pending
/// session output (requests, automatic `Pong`s) is written before every read.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    /// TLS / WebSocket between the session and the socket (`None`: plain TCP).
    layer: Option<Layer>,
    /// Wire bytes read, before the layer decodes them.
    wire_in: Vec<u8>,
    session: ClientSession,
    /// Decoded events nobody has taken yet, in arrival order.
    events: VecDeque<OwnedEvent>,
    hello: Option<HelloInfo>,
    /// Why the read side ended (EOF or a reset); nothing more will arrive.
    closed: Option<String>,
    /// Why writing failed; pending and later output is dropped.
    write_failed: Option<String>,
    /// Set by [`Client::pause_writes`]: the session's output stays unwritten.
    writes_paused: bool,
    wait: Duration,
    raw_request_id_next: u64,
    ping_nonce_next: u64,
    encoder: Encoder,
}

impl Client {
    /// Connects (no frame sent yet).
    pub fn connect(addr: SocketAddr) -> Client {
        Client::connect_with(addr, &Transport::Tcp)
    }

    /// Connects over `transport` (no frame sent yet; the TLS and WebSocket handshakes run
    /// with the first requests).
    pub fn connect_with(addr: SocketAddr, transport: &Transport) -> Client {
        let layer = match transport {
            Transport::Tcp => None,
            Transport::Tls => Some(Layer::client(Some(test_tls_client()), None).expect("a TLS client layer")),
            Transport::Ws { origin } => {
                let options = ws_options(addr, origin.clone());
                Some(Layer::client(None, Some(options)).expect("a WebSocket client layer"))
            }
            Transport::Wss => {
                let options = ws_options(addr, None);
                Some(Layer::client(Some(test_tls_client()), Some(options)).expect("a wss client layer"))
            }
        };
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to the server at {addr}: {e}"));
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        stream
            .set_write_timeout(Some(REPLY_WAIT_DEFAULT))
            .expect("set a write timeout");
        Client {
            stream,
            layer,
            wire_in: Vec::new(),
            session: ClientSession::new("hotline-tests"),
            events: VecDeque::new(),
            hello: None,
            closed: None,
            write_failed: None,
            writes_paused: false,
            wait: REPLY_WAIT_DEFAULT,
            raw_request_id_next: RAW_REQUEST_ID_FIRST,
            ping_nonce_next: 1,
            encoder: Encoder::new(),
        }
    }

    /// The password [`Client::new_user`] registers `username` with.
    pub fn password_for(username: &str) -> String {
        format!("{username}-secret")
    }

    /// Connects, registers `username` (password [`Client::password_for`]) and logs in a
    /// first device named `"{username}-1"`.
    pub fn new_user(addr: SocketAddr, username: &str) -> (Client, LoggedIn) {
        Client::new_user_with(addr, &Transport::Tcp, username)
    }

    /// [`Client::new_user`] over `transport`.
    pub fn new_user_with(addr: SocketAddr, transport: &Transport, username: &str) -> (Client, LoggedIn) {
        let mut client = Client::connect_with(addr, transport);
        let password = Client::password_for(username);
        client
            .register(username, &password)
            .unwrap_or_else(|code| panic!("register {username}: {code:?}"));
        let login = client
            .login_password(username, &password, &format!("{username}-1"))
            .unwrap_or_else(|code| panic!("log {username} in after registering: {code:?}"));
        (client, login)
    }

    /// Connects, registers `username` (password [`Client::password_for`]), disconnects, and
    /// returns the user id: a user who exists but has never logged in.
    pub fn register_user(addr: SocketAddr, username: &str) -> u64 {
        Client::connect(addr)
            .register(username, &Client::password_for(username))
            .unwrap_or_else(|code| panic!("register {username}: {code:?}"))
    }

    /// Connects and logs a user made by [`Client::new_user`] in on a new device.
    pub fn login_new_device(addr: SocketAddr, username: &str, device_name: &str) -> (Client, LoggedIn) {
        let mut client = Client::connect(addr);
        let login = client
            .login_password(username, &Client::password_for(username), device_name)
            .unwrap_or_else(|code| panic!("log {username} in on device {device_name}: {code:?}"));
        (client, login)
    }

    /// Connects and resumes the device `token` was issued to.
    pub fn resume(addr: SocketAddr, token: &[u8]) -> (Client, LoggedIn) {
        let mut client = Client::connect(addr);
        let login = client
            .login_token(token, "resumed")
            .unwrap_or_else(|code| panic!("log in by token: {code:?}"));
        (client, login)
    }

    /// Changes how long helpers wait (default [`REPLY_WAIT_DEFAULT`]).
    pub fn set_wait(&mut self, wait: Duration) {
        self.wait = wait;
    }

    /// The session, for its state, limits and delivered position.
    pub fn session(&self) -> &ClientSession {
        &self.session
    }

    /// The session's delivered position (see `hotline_wire::session`).
    pub fn delivered_seq(&self) -> u64 {
        self.session.delivered_seq()
    }

    /// `(user_id, device_id)` once logged in.
    pub fn identity(&self) -> Option<(u64, u64)> {
        match self.session.state() {
            SessionState::LoggedIn { user_id, device_id } => Some((user_id, device_id)),
            _ => None,
        }
    }

    /// Events received and not yet taken by a helper, oldest first.
    pub fn queued(&self) -> &VecDeque<OwnedEvent> {
        &self.events
    }

    /// Sends `Hello` (unless already sent) and waits for `HelloOk`.
    pub fn hello(&mut self) -> HelloInfo {
        let request_id = self.ensure_hello();
        let deadline = Instant::now() + self.wait;
        loop {
            if let Some(info) = &self.hello {
                return info.clone();
            }
            if let Some(OwnedEvent::Error { code, message, .. }) =
                self.take_first(|e| matches!(e, OwnedEvent::Error { request_id: r, .. } if Some(*r) == request_id))
            {
                panic!("Hello refused: {code:?} {message:?}");
            }
            if !self.pump(deadline) {
                if self.hello.is_some() {
                    continue;
                }
                self.fail(
                    &format!("waiting for HelloOk (hello request {request_id:?})"),
                    self.wait,
                );
            }
        }
    }

    /// Queues `Hello` if nothing was sent yet, so a request can be pipelined behind it.
    /// Returns the Hello's request id if this call queued it.
    fn ensure_hello(&mut self) -> Option<u64> {
        if self.session.state() == SessionState::Connected {
            Some(self.session.hello().expect("Hello is valid on a fresh session"))
        } else {
            None
        }
    }

    /// `Register` (pipelined behind `Hello` if needed); the new user id or the error code.
    pub fn register(&mut self, username: &str, password: &str) -> Result<u64, ErrorCode> {
        self.ensure_hello();
        let request_id = self
            .session
            .register(username, password)
            .unwrap_or_else(|e| panic!("Register: {e}"));
        match self.wait_reply(request_id, "Register") {
            OwnedEvent::Registered { user_id, .. } => Ok(user_id),
            OwnedEvent::Error { code, .. } => Err(code),
            other => panic!("Register: unexpected reply {other:?}"),
        }
    }

    /// Password `Login` (pipelined behind `Hello` if needed): opens a new device.
    pub fn login_password(&mut self, username: &str, password: &str, device_name: &str) -> Result<LoggedIn, ErrorCode> {
        self.ensure_hello();
        let request_id = self
            .session
            .login_password(username, password, device_name)
            .unwrap_or_else(|e| panic!("Login: {e}"));
        self.login_reply(request_id)
    }

    /// Token `Login` (pipelined behind `Hello` if needed): resumes the token's device.
    pub fn login_token(&mut self, token: &[u8], device_name: &str) -> Result<LoggedIn, ErrorCode> {
        self.ensure_hello();
        let request_id = self
            .session
            .login_token(token, device_name)
            .unwrap_or_else(|e| panic!("Login: {e}"));
        self.login_reply(request_id)
    }

    fn login_reply(&mut self, request_id: u64) -> Result<LoggedIn, ErrorCode> {
        match self.wait_reply(request_id, "Login") {
            OwnedEvent::LoggedIn { logged_in, .. } => Ok(logged_in),
            OwnedEvent::Error { code, .. } => Err(code),
            other => panic!("Login: unexpected reply {other:?}"),
        }
    }

    /// `Send` with no flags; waits for its `SendAck` (or error). Deliveries that arrive
    /// meanwhile stay queued.
    pub fn send(&mut self, to: u64, client_msg_id: u64, payload: &[u8]) -> Result<SendAck, ErrorCode> {
        let request_id = self.send_request(to, client_msg_id, payload);
        match self.try_send_reply(request_id, client_msg_id) {
            Some(reply) => reply,
            None => self.fail(
                &format!("waiting for the SendAck of client_msg_id {client_msg_id}"),
                self.wait,
            ),
        }
    }

    /// Any `Send` (group, edit, delete, flags); waits for its `SendAck` (or error).
    pub fn send_message(&mut self, send: &Send<'_>) -> Result<SendAck, ErrorCode> {
        let request_id = self.session.send_message(send).unwrap_or_else(|e| panic!("Send: {e}"));
        self.flush();
        match self.try_send_reply(request_id, send.client_msg_id) {
            Some(reply) => reply,
            None => self.fail(
                &format!("waiting for the SendAck of client_msg_id {}", send.client_msg_id),
                self.wait,
            ),
        }
    }

    /// `Send` to a group with `flags`; waits for its `SendAck` (or error).
    pub fn send_group(
        &mut self,
        group_id: u64,
        client_msg_id: u64,
        payload: &[u8],
        flags: SendFlags,
    ) -> Result<SendAck, ErrorCode> {
        self.send_message(&Send {
            group: group_id,
            ..Send::direct(0, client_msg_id, payload, flags)
        })
    }

    /// Waits for the reply to a request answered by `Done`.
    fn done_reply(&mut self, request_id: u64, what: &str) -> Result<(), ErrorCode> {
        match self.wait_reply(request_id, what) {
            OwnedEvent::Done { .. } => Ok(()),
            OwnedEvent::Error { code, .. } => Err(code),
            other => panic!("{what}: unexpected reply {other:?}"),
        }
    }

    /// `GroupCreate`; the new group's id.
    pub fn create_group(&mut self, name: &str, persistence: Persistence) -> Result<u64, ErrorCode> {
        let request_id = self
            .session
            .group_create(name, persistence)
            .unwrap_or_else(|e| panic!("GroupCreate: {e}"));
        match self.wait_reply(request_id, "GroupCreate") {
            OwnedEvent::GroupCreated { group_id, .. } => Ok(group_id),
            OwnedEvent::Error { code, .. } => Err(code),
            other => panic!("GroupCreate: unexpected reply {other:?}"),
        }
    }

    /// `GroupAddMember`.
    pub fn add_member(&mut self, group_id: u64, user_id: u64, role: GroupRole) -> Result<(), ErrorCode> {
        let request_id = self
            .session
            .group_add_member(group_id, user_id, role)
            .unwrap_or_else(|e| panic!("GroupAddMember: {e}"));
        self.done_reply(request_id, "GroupAddMember")
    }

    /// Queues `GroupAddMember` without waiting; returns its request id (for bulk adds,
    /// answered by [`Client::wait_done`]).
    pub fn add_member_request(&mut self, group_id: u64, user_id: u64, role: GroupRole) -> u64 {
        let request_id = self
            .session
            .group_add_member(group_id, user_id, role)
            .unwrap_or_else(|e| panic!("GroupAddMember: {e}"));
        self.flush();
        request_id
    }

    /// Waits for `Done` (or an error) in reply to `request_id`.
    pub fn wait_done(&mut self, request_id: u64) -> Result<(), ErrorCode> {
        self.done_reply(request_id, "request")
    }

    /// `GroupRemoveMember`.
    pub fn remove_member(&mut self, group_id: u64, user_id: u64) -> Result<(), ErrorCode> {
        let request_id = self
            .session
            .group_remove_member(group_id, user_id)
            .unwrap_or_else(|e| panic!("GroupRemoveMember: {e}"));
        self.done_reply(request_id, "GroupRemoveMember")
    }

    /// `GroupLeave`.
    pub fn leave_group(&mut self, group_id: u64) -> Result<(), ErrorCode> {
        let request_id = self
            .session
            .group_leave(group_id)
            .unwrap_or_else(|e| panic!("GroupLeave: {e}"));
        self.done_reply(request_id, "GroupLeave")
    }

    /// One page of `GroupMembers`: the members and whether more follow.
    pub fn group_members(&mut self, group_id: u64, after_user_id: u64) -> Result<(Vec<GroupMember>, bool), ErrorCode> {
        let request_id = self
            .session
            .group_members(group_id, after_user_id)
            .unwrap_or_else(|e| panic!("GroupMembers: {e}"));
        match self.wait_reply(request_id, "GroupMembers") {
            OwnedEvent::GroupMemberList { list, .. } => Ok((list.members, list.more)),
            OwnedEvent::Error { code, .. } => Err(code),
            other => panic!("GroupMembers: unexpected reply {other:?}"),
        }
    }

    /// Every member of a group, paging until `more` is false.
    pub fn all_group_members(&mut self, group_id: u64) -> Result<Vec<GroupMember>, ErrorCode> {
        let mut all: Vec<GroupMember> = Vec::new();
        loop {
            let after = all.last().map_or(0, |m| m.user_id);
            let (page, more) = self.group_members(group_id, after)?;
            assert!(!more || !page.is_empty(), "GroupMembers said more but returned none");
            all.extend(page);
            if !more {
                return Ok(all);
            }
        }
    }

    /// One page of `MyGroups`.
    pub fn my_groups(&mut self, after_group_id: u64) -> (Vec<OwnedGroupInfo>, bool) {
        let request_id = self
            .session
            .my_groups(after_group_id)
            .unwrap_or_else(|e| panic!("MyGroups: {e}"));
        match self.wait_reply(request_id, "MyGroups") {
            OwnedEvent::GroupList { groups, more, .. } => (groups, more),
            other => panic!("MyGroups: unexpected reply {other:?}"),
        }
    }

    /// `MarkRead`; the read position it replies with.
    pub fn mark_read(&mut self, conversation: Conversation, up_to_seq: u64) -> Result<ReadPosition, ErrorCode> {
        let request_id = self
            .session
            .mark_read(conversation, up_to_seq)
            .unwrap_or_else(|e| panic!("MarkRead: {e}"));
        match self.wait_reply(request_id, "MarkRead") {
            OwnedEvent::ReadPosition { position, .. } => Ok(position),
            OwnedEvent::Error { code, .. } => Err(code),
            other => panic!("MarkRead: unexpected reply {other:?}"),
        }
    }

    /// One page of `Conversations` from the start.
    pub fn conversations(&mut self) -> (Vec<ReadPosition>, bool) {
        let request_id = self
            .session
            .conversations(None)
            .unwrap_or_else(|e| panic!("Conversations: {e}"));
        match self.wait_reply(request_id, "Conversations") {
            OwnedEvent::ConversationList {
                conversations, more, ..
            } => (conversations, more),
            other => panic!("Conversations: unexpected reply {other:?}"),
        }
    }

    /// Fire-and-forget `Typing`.
    pub fn typing(&mut self, conversation: Conversation) {
        self.session
            .typing(conversation)
            .unwrap_or_else(|e| panic!("Typing: {e}"));
        self.flush();
    }

    /// `PresenceSubscribe`.
    pub fn presence_subscribe(&mut self, user_ids: &[u64]) -> Result<(), ErrorCode> {
        let request_id = self
            .session
            .presence_subscribe(user_ids)
            .unwrap_or_else(|e| panic!("PresenceSubscribe: {e}"));
        self.done_reply(request_id, "PresenceSubscribe")
    }

    /// `SetPersistence`.
    pub fn set_persistence(&mut self, conversation: Conversation, persistence: Persistence) -> Result<(), ErrorCode> {
        let request_id = self
            .session
            .set_persistence(conversation, persistence)
            .unwrap_or_else(|e| panic!("SetPersistence: {e}"));
        self.done_reply(request_id, "SetPersistence")
    }

    /// Reads until the session's durable watermark reaches `seq` (from a `Deliver`, a
    /// `Durable` push or a `SendAck`), at most `timeout`; returns the watermark.
    pub fn wait_durable(&mut self, seq: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        while self.session.durable_seq() < seq && self.pump(deadline) {}
        self.session.durable_seq()
    }

    /// The next `Receipt` within `timeout`.
    pub fn next_receipt(&mut self, timeout: Duration) -> Option<Receipt> {
        match self.try_take(timeout, |e| matches!(e, OwnedEvent::Receipt(_))) {
            Some(OwnedEvent::Receipt(r)) => Some(r),
            _ => None,
        }
    }

    /// The next `TypingNotice` within `timeout`.
    pub fn next_typing(&mut self, timeout: Duration) -> Option<TypingNotice> {
        match self.try_take(timeout, |e| matches!(e, OwnedEvent::TypingNotice(_))) {
            Some(OwnedEvent::TypingNotice(t)) => Some(t),
            _ => None,
        }
    }

    /// The next `Presence` within `timeout`.
    pub fn next_presence(&mut self, timeout: Duration) -> Option<Presence> {
        match self.try_take(timeout, |e| matches!(e, OwnedEvent::Presence(_))) {
            Some(OwnedEvent::Presence(p)) => Some(p),
            _ => None,
        }
    }

    /// The next pushed `ReadPosition` (another device marked read) within `timeout`.
    pub fn next_read_position(&mut self, timeout: Duration) -> Option<ReadPosition> {
        let pushed = |e: &OwnedEvent| matches!(e, OwnedEvent::ReadPosition { request_id: 0, .. });
        match self.try_take(timeout, pushed) {
            Some(OwnedEvent::ReadPosition { position, .. }) => Some(position),
            _ => None,
        }
    }

    /// Queues a `Send` and writes it without waiting; returns its request id.
    pub fn send_request(&mut self, to: u64, client_msg_id: u64, payload: &[u8]) -> u64 {
        let request_id = self
            .session
            .send(to, client_msg_id, payload, SendFlags::NONE)
            .unwrap_or_else(|e| panic!("Send: {e}"));
        self.flush();
        request_id
    }

    /// Waits for the reply to the `Send` with `request_id`; `None` if the connection closed
    /// first. Panics if nothing arrives in time, or if the ack names another message.
    pub fn try_send_reply(&mut self, request_id: u64, client_msg_id: u64) -> Option<Result<SendAck, ErrorCode>> {
        let wait = self.wait;
        let reply = self.try_take(wait, |e| {
            e.request_id() == request_id && !matches!(e, OwnedEvent::Deliver(_))
        });
        match reply {
            Some(OwnedEvent::SendAck { ack, .. }) => {
                assert_eq!(
                    ack.client_msg_id, client_msg_id,
                    "the SendAck for request {request_id} names another client_msg_id: {ack:?}"
                );
                Some(Ok(ack))
            }
            Some(OwnedEvent::Error { code, .. }) => Some(Err(code)),
            Some(other) => panic!("Send: unexpected reply {other:?}"),
            None if self.closed.is_some() => None,
            None => self.fail(
                &format!("waiting for the reply to Send request {request_id} (client_msg_id {client_msg_id})"),
                wait,
            ),
        }
    }

    /// Sends `messages` (`(client_msg_id, payload)`) to `to` in order, with at most `window`
    /// unanswered, calling `on_reply` for each reply as it arrives. Stops early, without
    /// panicking, if the connection closes (the tests that kill the server need that).
    pub fn send_pipelined(
        &mut self,
        to: u64,
        messages: &[(u64, Vec<u8>)],
        window: usize,
        mut on_reply: impl FnMut(u64, &Result<SendAck, ErrorCode>),
    ) -> Pipelined {
        assert!(window >= 1, "send_pipelined: the window holds at least one message");
        let mut in_flight: VecDeque<(u64, u64)> = VecDeque::with_capacity(window);
        let mut replies = Vec::with_capacity(messages.len());
        let mut next = messages.iter();
        loop {
            while in_flight.len() < window && self.write_failed.is_none() {
                let Some((client_msg_id, payload)) = next.next() else {
                    break;
                };
                let request_id = self.send_request(to, *client_msg_id, payload);
                in_flight.push_back((request_id, *client_msg_id));
            }
            let Some((request_id, client_msg_id)) = in_flight.pop_front() else {
                // Everything sent was answered; fewer replies than messages means writing failed.
                let closed = replies.len() < messages.len();
                return Pipelined { replies, closed };
            };
            match self.try_send_reply(request_id, client_msg_id) {
                Some(reply) => {
                    on_reply(client_msg_id, &reply);
                    replies.push((client_msg_id, reply));
                }
                None => return Pipelined { replies, closed: true },
            }
        }
    }

    /// [`Client::send_pipelined`] where every message must be acknowledged; the acks in the
    /// order sent.
    pub fn send_all(&mut self, to: u64, messages: &[(u64, Vec<u8>)], window: usize) -> Vec<SendAck> {
        let outcome = self.send_pipelined(to, messages, window, |_, _| {});
        assert!(
            !outcome.closed,
            "the connection closed after {} of {} sends; queued: {}",
            outcome.replies.len(),
            messages.len(),
            self.queued_summary()
        );
        outcome
            .replies
            .into_iter()
            .map(|(client_msg_id, reply)| {
                reply.unwrap_or_else(|code| panic!("Send of client_msg_id {client_msg_id} failed: {code:?}"))
            })
            .collect()
    }

    /// The next `Deliver`, queued or arriving within `timeout`; `None` if none arrives or the
    /// connection closed.
    pub fn next_deliver(&mut self, timeout: Duration) -> Option<OwnedDeliver> {
        match self.try_take(timeout, |e| matches!(e, OwnedEvent::Deliver(_))) {
            Some(OwnedEvent::Deliver(d)) => Some(d),
            Some(other) => unreachable!("try_take matched only Delivers, got {other:?}"),
            None => None,
        }
    }

    /// The next `Deliver`; panics if none arrives within the wait.
    pub fn expect_deliver(&mut self) -> OwnedDeliver {
        match self.next_deliver(self.wait) {
            Some(d) => d,
            None => self.fail("waiting for a Deliver", self.wait),
        }
    }

    /// The next `n` `Deliver`s, in arrival order; panics if they do not all arrive within the
    /// wait each.
    pub fn expect_delivers(&mut self, n: usize) -> Vec<OwnedDeliver> {
        (0..n)
            .map(|i| match self.next_deliver(self.wait) {
                Some(d) => d,
                None => self.fail(&format!("waiting for Deliver {} of {n}", i + 1), self.wait),
            })
            .collect()
    }

    /// Reads for `duration` and panics if any `Deliver` is (or was already) queued.
    pub fn expect_no_deliver(&mut self, duration: Duration) {
        let deadline = Instant::now() + duration;
        loop {
            if let Some(d) = self.events.iter().find_map(|e| match e {
                OwnedEvent::Deliver(d) => Some(d),
                _ => None,
            }) {
                panic!("expected no Deliver, got {d:?}; queued: {}", self.queued_summary());
            }
            if !self.pump(deadline) {
                return;
            }
        }
    }

    /// One `Sync` page; panics on an error reply.
    pub fn sync(&mut self, after_seq: u64, limit: u32) -> OwnedSyncPage {
        self.try_sync(after_seq, limit)
            .unwrap_or_else(|code| panic!("Sync after {after_seq} limit {limit}: {code:?}"))
    }

    /// One `Sync` page, or the error code.
    pub fn try_sync(&mut self, after_seq: u64, limit: u32) -> Result<OwnedSyncPage, ErrorCode> {
        let request_id = self
            .session
            .sync(after_seq, limit)
            .unwrap_or_else(|e| panic!("Sync: {e}"));
        match self.wait_reply(request_id, "Sync") {
            OwnedEvent::SyncPage { page, .. } => Ok(page),
            OwnedEvent::Error { code, .. } => Err(code),
            other => panic!("Sync: unexpected reply {other:?}"),
        }
    }

    /// Every inbox message after `after_seq`, paging with the server's maximum page size
    /// until `more` is false. Panics if a page goes backwards or a `more` page is empty.
    pub fn sync_all(&mut self, after_seq: u64) -> Vec<OwnedDeliver> {
        let mut all = Vec::new();
        let mut after = after_seq;
        loop {
            let page = self.sync(after, 0);
            for m in &page.messages {
                assert!(
                    m.inbox_seq > after,
                    "Sync after {after} returned seq {} (not ascending past after_seq)",
                    m.inbox_seq
                );
                after = m.inbox_seq;
            }
            if !page.more {
                all.extend(page.messages);
                return all;
            }
            assert!(
                !page.messages.is_empty(),
                "Sync after {after} said more messages follow but returned none"
            );
            all.extend(page.messages);
        }
    }

    /// Fire-and-forget `Ack` (written now; no reply unless it fails).
    pub fn ack(&mut self, up_to_seq: u64) {
        self.session.ack(up_to_seq).unwrap_or_else(|e| panic!("Ack: {e}"));
        self.flush();
    }

    /// `Ack` with a request id; the stored device cursor from `AckOk`. Panics on an error.
    pub fn ack_confirmed(&mut self, up_to_seq: u64) -> u64 {
        self.try_ack_confirmed(up_to_seq)
            .unwrap_or_else(|code| panic!("Ack up to {up_to_seq}: {code:?}"))
    }

    /// `Ack` with a request id; the stored device cursor, or the error code.
    pub fn try_ack_confirmed(&mut self, up_to_seq: u64) -> Result<u64, ErrorCode> {
        let request_id = self
            .session
            .ack_confirmed(up_to_seq)
            .unwrap_or_else(|e| panic!("Ack: {e}"));
        match self.wait_reply(request_id, "Ack") {
            OwnedEvent::AckOk { device_cursor, .. } => Ok(device_cursor),
            OwnedEvent::Error { code, .. } => Err(code),
            other => panic!("Ack: unexpected reply {other:?}"),
        }
    }

    /// `Logout`; waits for `LogoutOk`.
    pub fn logout(&mut self) -> Result<(), ErrorCode> {
        let request_id = self.session.logout().unwrap_or_else(|e| panic!("Logout: {e}"));
        match self.wait_reply(request_id, "Logout") {
            OwnedEvent::LoggedOut { .. } => Ok(()),
            OwnedEvent::Error { code, .. } => Err(code),
            other => panic!("Logout: unexpected reply {other:?}"),
        }
    }

    /// `Ping` with a fresh nonce; panics unless the matching `Pong` arrives in time.
    pub fn ping(&mut self) {
        let nonce = self.ping_nonce_next;
        self.ping_nonce_next += 1;
        let request_id = self.session.ping(nonce).unwrap_or_else(|e| panic!("Ping: {e}"));
        match self.wait_reply(request_id, "Ping") {
            OwnedEvent::Pong { nonce: echoed, .. } => {
                assert_eq!(echoed, nonce, "Pong for request {request_id} echoes another nonce")
            }
            other => panic!("Ping: expected a Pong, got {}", other.summary()),
        }
    }

    /// The next `Error` (queued or arriving within `timeout`), as `(request_id, code)`.
    /// Other events stay queued. Panics if none arrives.
    pub fn expect_error(&mut self, timeout: Duration) -> (u64, ErrorCode) {
        match self.try_take(timeout, |e| matches!(e, OwnedEvent::Error { .. })) {
            Some(OwnedEvent::Error { request_id, code, .. }) => (request_id, code),
            Some(other) => unreachable!("try_take matched only Errors, got {other:?}"),
            None => self.fail("waiting for an Error frame", timeout),
        }
    }

    /// Writes `bytes` as they are (after any pending session output). A failed write is
    /// recorded, not fatal: the server may already have closed on purpose.
    pub fn raw_write(&mut self, bytes: &[u8]) {
        self.flush();
        if self.write_failed.is_some() {
            return;
        }
        if let Some(layer) = &mut self.layer {
            if let Err(e) = layer.seal(bytes) {
                self.write_failed = Some(format!("raw write: {e}"));
                return;
            }
            self.write_wire();
            return;
        }
        if let Err(e) = self.stream.write_all(bytes) {
            self.write_failed = Some(format!("raw write: {e}"));
        }
    }

    /// Encodes `message` with a request id of the harness's own (from
    /// [`RAW_REQUEST_ID_FIRST`]), writes it raw, and returns the id. For requests the session
    /// would refuse locally (a Send before login, an oversized payload).
    pub fn raw_request(&mut self, message: &Message<'_>) -> u64 {
        let request_id = self.raw_request_id_next;
        self.raw_request_id_next += 1;
        let bytes = self.encoder.encode(request_id, message).to_vec();
        self.raw_write(&bytes);
        request_id
    }

    /// Reads until the server closes the connection (true) or `timeout` passes (false).
    /// Whatever arrives meanwhile is queued.
    pub fn is_closed_by_server(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.pump(deadline) {}
        self.closed.is_some()
    }

    /// Keeps reading (and answering the server's pings) for `duration`; everything that
    /// arrives is queued.
    pub fn drain_for(&mut self, duration: Duration) {
        let deadline = Instant::now() + duration;
        while self.pump(deadline) {}
    }

    /// From now on nothing is written: not requests, not the session's automatic `Pong`s.
    /// Models a client that has stopped talking (reads still work).
    pub fn pause_writes(&mut self) {
        self.writes_paused = true;
    }

    /// Undoes [`Client::pause_writes`]: what the session queued meanwhile (its `Pong`s, say)
    /// goes out with the next read or request.
    pub fn resume_writes(&mut self) {
        self.writes_paused = false;
    }

    /// Bytes the session wants written and the harness has not written (see
    /// [`Client::pause_writes`]).
    pub fn unwritten_bytes(&self) -> usize {
        self.session.outbound().len()
    }

    /// Why the read side ended, if it has.
    pub fn closed_reason(&self) -> Option<&str> {
        self.closed.as_deref()
    }

    /// Waits for the reply to `request_id`; panics if none arrives in time or the
    /// connection closes first.
    fn wait_reply(&mut self, request_id: u64, what: &str) -> OwnedEvent {
        let wait = self.wait;
        match self.try_take(wait, |e| {
            e.request_id() == request_id && !matches!(e, OwnedEvent::Deliver(_))
        }) {
            Some(event) => event,
            None => self.fail(&format!("waiting for the reply to {what} (request {request_id})"), wait),
        }
    }

    /// Takes the first queued event matching `pick`, reading for up to `timeout` until one
    /// arrives; `None` on timeout or once the connection has closed with no match.
    fn try_take(&mut self, timeout: Duration, mut pick: impl FnMut(&OwnedEvent) -> bool) -> Option<OwnedEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(event) = self.take_first(&mut pick) {
                return Some(event);
            }
            if !self.pump(deadline) {
                return self.take_first(&mut pick);
            }
        }
    }

    fn take_first(&mut self, pick: impl FnMut(&OwnedEvent) -> bool) -> Option<OwnedEvent> {
        let at = self.events.iter().position(pick)?;
        self.events.remove(at)
    }

    /// Writes pending output, then reads once (waiting until `deadline` at most) and queues
    /// every complete frame. Returns false when the deadline has passed or nothing more can
    /// arrive (the read side ended).
    fn pump(&mut self, deadline: Instant) -> bool {
        self.flush();
        if self.closed.is_some() {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        // A zero read timeout is an error, so wait at least a millisecond.
        let wait = (deadline - now).max(Duration::from_millis(1));
        self.stream
            .set_read_timeout(Some(wait))
            .expect("set the socket's read timeout");
        let read = if let Some(layer) = &mut self.layer {
            self.wire_in.resize(READ_CHUNK_BYTES, 0);
            let read = self.stream.read(&mut self.wire_in);
            let n = *read.as_ref().unwrap_or(&0);
            let mut frames = Vec::new();
            if let Err(e) = layer.ingest(&self.wire_in[..n], &mut frames) {
                self.closed = Some(format!("transport failed: {e}"));
            }
            self.session.receive(&frames);
            read
        } else {
            let spare = self.session.inbound_spare(READ_CHUNK_BYTES);
            let read = self.stream.read(spare);
            let n = *read.as_ref().unwrap_or(&0);
            self.session.commit_inbound(READ_CHUNK_BYTES, n);
            read
        };
        match read {
            Ok(0) => self.closed = Some("the server closed the connection (EOF)".to_owned()),
            Ok(_) => self.drain_session(),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => self.closed = Some(format!("read failed: {e}")),
        }
        // Answer any server Ping promptly rather than at the next pump.
        self.flush();
        true
    }

    /// Moves every complete frame from the session into the queue.
    fn drain_session(&mut self) {
        loop {
            let event = match self.session.next_event() {
                Ok(Some(event)) => event,
                Ok(None) => return,
                Err(e) => panic!(
                    "the server broke the protocol: {e}; queued before it: {}",
                    self.queued_summary()
                ),
            };
            let owned = match event {
                Event::HelloOk {
                    version,
                    server_name,
                    limits,
                } => {
                    self.hello = Some(HelloInfo {
                        version,
                        server_name: server_name.to_owned(),
                        limits,
                    });
                    continue;
                }
                Event::Registered { request_id, user_id } => OwnedEvent::Registered { request_id, user_id },
                Event::LoggedIn {
                    request_id,
                    user_id,
                    device_id,
                    token,
                    inbox_seq,
                    device_cursor,
                    epoch,
                } => OwnedEvent::LoggedIn {
                    request_id,
                    logged_in: LoggedIn {
                        user_id,
                        device_id,
                        token: token.to_vec(),
                        inbox_seq,
                        device_cursor,
                        epoch,
                    },
                },
                // The session keeps the durable watermark (`Client::wait_durable`); the
                // push itself is bookkeeping no test expects in the queue.
                Event::Durable { .. } => continue,
                Event::LoggedOut { request_id } => OwnedEvent::LoggedOut { request_id },
                Event::SendAck { request_id, ack } => OwnedEvent::SendAck { request_id, ack },
                Event::Deliver(d) => OwnedEvent::Deliver(OwnedDeliver::from(&d)),
                Event::AckOk {
                    request_id,
                    device_cursor,
                } => OwnedEvent::AckOk {
                    request_id,
                    device_cursor,
                },
                Event::SyncPage { request_id, page } => OwnedEvent::SyncPage {
                    request_id,
                    page: OwnedSyncPage {
                        messages: page.messages.iter().map(OwnedDeliver::from).collect(),
                        inbox_seq: page.inbox_seq,
                        more: page.more,
                    },
                },
                Event::Pong { request_id, nonce } => OwnedEvent::Pong { request_id, nonce },
                Event::Error { request_id, error } => OwnedEvent::Error {
                    request_id,
                    code: error.code,
                    message: error.message.to_owned(),
                    retry_after_ms: error.retry_after_ms,
                },
                Event::GroupCreated { request_id, group_id } => OwnedEvent::GroupCreated { request_id, group_id },
                Event::Done { request_id } => OwnedEvent::Done { request_id },
                Event::GroupMemberList { request_id, list } => OwnedEvent::GroupMemberList { request_id, list },
                Event::GroupList { request_id, list } => OwnedEvent::GroupList {
                    request_id,
                    groups: list
                        .groups
                        .iter()
                        .map(|g| OwnedGroupInfo {
                            group_id: g.group_id,
                            name: g.name.to_owned(),
                            role: g.role,
                            persistence: g.persistence,
                        })
                        .collect(),
                    more: list.more,
                },
                Event::Receipt(r) => OwnedEvent::Receipt(r),
                Event::ReadPosition { request_id, position } => OwnedEvent::ReadPosition { request_id, position },
                Event::ConversationList { request_id, list } => OwnedEvent::ConversationList {
                    request_id,
                    conversations: list.conversations,
                    more: list.more,
                },
                Event::TypingNotice(t) => OwnedEvent::TypingNotice(t),
                Event::Presence(p) => OwnedEvent::Presence(p),
            };
            self.events.push_back(owned);
        }
    }

    /// Writes the session's pending output, unless writes are paused or have failed.
    /// Panics if the server stops reading for the whole write timeout.
    fn flush(&mut self) {
        if self.writes_paused || self.write_failed.is_some() {
            return;
        }
        if let Some(layer) = &mut self.layer {
            let frames = self.session.take_outbound();
            if let Err(e) = layer.seal(&frames) {
                self.write_failed = Some(format!("sealing frames: {e}"));
            }
            self.write_wire();
            return;
        }
        while !self.session.outbound().is_empty() {
            match self.stream.write(self.session.outbound()) {
                Ok(0) => {
                    self.write_failed = Some("write returned 0 bytes".to_owned());
                    break;
                }
                Ok(n) => self.session.consume_outbound(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    panic!("the server read nothing from this connection for {REPLY_WAIT_DEFAULT:?} (write timed out)")
                }
                Err(e) => {
                    self.write_failed = Some(format!("write failed: {e}"));
                    break;
                }
            }
        }
        if self.write_failed.is_some() {
            // Nothing more can go out; keep the session's buffer from growing.
            drop(self.session.take_outbound());
        }
    }

    /// Writes what the layer has for the wire (handshakes, records, messages).
    fn write_wire(&mut self) {
        let Some(layer) = &mut self.layer else { return };
        while !layer.wire().is_empty() && self.write_failed.is_none() {
            match self.stream.write(layer.wire()) {
                Ok(0) => self.write_failed = Some("write returned 0 bytes".to_owned()),
                Ok(n) => layer.consume_wire(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    panic!("the server read nothing from this connection for {REPLY_WAIT_DEFAULT:?} (write timed out)")
                }
                Err(e) => self.write_failed = Some(format!("write failed: {e}")),
            }
        }
    }

    fn queued_summary(&self) -> String {
        if self.events.is_empty() {
            return "nothing".to_owned();
        }
        let shown: Vec<String> = self.events.iter().take(16).map(OwnedEvent::summary).collect();
        let more = self.events.len().saturating_sub(shown.len());
        if more > 0 {
            format!("[{}, and {more} more]", shown.join(", "))
        } else {
            format!("[{}]", shown.join(", "))
        }
    }

    /// Fails the test: what was awaited and for how long, the connection's state, and what
    /// is queued.
    fn fail(&self, what: &str, waited: Duration) -> ! {
        panic!(
            "{what}: gave up after {waited:?}; session {:?}; read side: {}; write side: {}; queued: {}",
            self.session.state(),
            self.closed.as_deref().unwrap_or("open"),
            self.write_failed.as_deref().unwrap_or("ok"),
            self.queued_summary()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelined_acks_skip_errors() {
        let ack = SendAck {
            client_msg_id: 1,
            message_id: 9,
            inbox_seq: 1,
            timestamp_us: 0,
        };
        let outcome = Pipelined {
            replies: vec![(1, Ok(ack)), (2, Err(ErrorCode::NoSuchUser))],
            closed: false,
        };
        assert_eq!(outcome.acks(), [(1, ack)]);
    }
}
