//! One core: a monoio runtime pinned to a CPU, owning its connections and the online state
//! of the users homed on it. Nothing here is shared with another thread; other threads
//! reach a core only through its [`Mailbox`].
//!
//! Ownership:
//! - `conns`: every connection accepted on, or handed to, this core: its descriptor,
//!   buffers and state. The core's event loop (in [`crate::conn`]) reads the sockets and
//!   closes them; anything on the core may write to them (`flush`).
//! - `users`: for each user homed here with a device online, the inbox head this core has
//!   seen committed and the connections of that user's devices.
//! - `presence`: those users' presence and subscribers (see [`crate::presence`]).
//!
//! Live notices (receipts, read positions, typing, presence, ephemeral messages) are pushed
//! only to connections with room in their outbound buffer and never stored: they do not
//! touch `sent_seq`, so they cannot disturb the invariant below.
//!
//! Delivery invariant (no gap, no duplicate, in order): each logged-in device has a
//! `sent_seq`, the inbox seq up to which every entry has been queued to it (or, for its
//! own sends, acknowledged). A device is either `Live`, taking each committed entry
//! `sent_seq + 1` as it arrives, or `CatchingUp`, reading pages after `sent_seq` from the
//! log until it reaches the head this core knows, then turning `Live` again. All of this
//! runs on this one thread, so the switch cannot race a commit.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

use hotline_transport::Layer;
use hotline_wire::{
    AckOk, Deliver, Durable, Encoder, ErrorBody, ErrorCode, FrameDecoder, Limits, LoginOk, Message, Ping, SyncPage,
};
use slab::Slab;

use crate::helper::{HelperJob, HelperOutcome, ReadPurpose};
use crate::limits::{
    ACK_WAITERS_MAX, CATCH_UP_PAGE_MESSAGES_MAX, CLOSE_LINGER_MS, CURSOR_STORE_DELAY_MS, CURSOR_WRITES_PER_TICK_MAX,
    DEVICE_SESSION_BYTES_MAX, DURABLE_ANNOUNCE_DELAY_MS, OUTBOUND_RETAIN_BYTES, OVERLOADED_RETRY_AFTER_MS,
    READ_SCRATCH_BYTES, SENDS_IN_FLIGHT_MAX,
};
use crate::mailbox::{Adopt, Completion, ConnRef, LoginResult, Notice, ReplyTo, Requester};
use crate::presence::PresenceBook;
use crate::shared::Shared;
use crate::storage::record::{decode_record, StoredMessage};
use crate::storage::writer::{WriteOp, WriteOutcome, WriteRequest};

/// A connection's protocol state.
#[derive(Debug)]
pub(crate) enum ConnState {
    /// Nothing valid yet: only `Hello` (and `Ping`) are accepted.
    Handshaking,
    /// `HelloOk` sent: `Register` and `Login` are accepted.
    Ready,
    /// A `Register` or `Login` is being processed off-core; reading is paused so frames
    /// pipelined behind it are handled after it (possibly on another core).
    Authenticating { request_id: u64 },
    /// Authenticated, on the user's home core. `device` is valid.
    LoggedIn(Box<DeviceSession>),
}

/// How a logged-in device receives its inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeliveryMode {
    Live,
    CatchingUp,
}

/// A logged-in device's delivery and cursor state (see the module docs).
#[derive(Debug)]
pub(crate) struct DeviceSession {
    pub user_id: u64,
    pub device_id: u64,
    pub token_hash: [u8; 32],
    pub sent_seq: u64,
    pub mode: DeliveryMode,
    /// A catch-up read is out on the helper pool.
    pub read_in_flight: bool,
    /// The device's acknowledged cursor as this core knows it (may be ahead of storage).
    pub cursor: u64,
    /// The cursor known durable in storage.
    pub cursor_stored: u64,
    /// The cursor value last submitted to the writer, if its write is still out.
    pub cursor_writing: Option<u64>,
    /// `Ack`s waiting for their cursor to be durable: `(request_id, cursor)`.
    pub ack_waiters: Vec<(u64, u64)>,
    /// Client writes (Sends and conversation requests) not answered yet. This and
    /// `syncs_in_flight` are `u16` (their limits fit) so that a `DeviceSession`, one per
    /// connection, fits [`DEVICE_SESSION_BYTES_MAX`] (asserted below).
    pub sends_in_flight: u16,
    pub syncs_in_flight: u16,
    /// When this device last sent a `Typing` that was passed on (core ms; 0: never).
    pub typing_last_ms: u64,
    /// The device is in the core's `cursor_due` queue (a plain `Ack` moved its cursor).
    pub cursor_queued: bool,
}

/// One `DeviceSession` per logged-in connection: its size is part of the memory budget of
/// an idle connection.
const _: () = assert!(std::mem::size_of::<DeviceSession>() <= DEVICE_SESSION_BYTES_MAX);

/// One connection's buffers and state, and its socket (closed by the event loop when the
/// connection ends, see [`crate::conn`]).
#[derive(Debug)]
pub(crate) struct Conn {
    pub generation: u32,
    pub fd: RawFd,
    pub state: ConnState,
    /// An incomplete frame carried between reads (empty, holding no memory, when idle).
    pub inbound: Vec<u8>,
    /// Frames queued to send; `outbound[outbound_sent..]` is still unsent.
    pub outbound: Vec<u8>,
    pub outbound_sent: usize,
    /// The last send hit EAGAIN: the event loop waits for writability.
    pub write_blocked: bool,
    /// A write wait is armed in the core's poller for this connection.
    pub write_armed: bool,
    /// The socket may hold unread bytes: readiness was reported and `recv` has not run
    /// dry since (kept while the connection takes no frames, so it is read when it does).
    pub readable: bool,
    /// Queued on the core's dirty list for a flush.
    pub dirty: bool,
    /// Close once the outbound buffer is flushed.
    pub closing: bool,
    /// On the core's list of connections its event loop looks at again ([`Core::wake`]).
    pub woken: bool,
    /// A finished login for a user homed on another core: the event loop hands the socket over.
    pub handoff: Option<Box<Adopt>>,
    pub accepted_ms: u64,
    /// When `closing` was set (a peer that never reads cannot hold a close open forever).
    pub closing_since_ms: u64,
    pub last_rx_ms: u64,
    pub ping_sent: bool,
    pub malformed_frames: u32,
    /// TLS/WebSocket state (`None` on plain TCP). With a layer, `outbound` holds frames
    /// only until the next flush seals them into the layer's wire buffer.
    pub layer: Option<Box<Layer>>,
    /// The peer's address (abuse limits); `None` where unknown.
    pub peer_ip: Option<std::net::IpAddr>,
    /// This connection's place in its IP's connection count; freed when the conn drops.
    pub ip_slot: Option<crate::abuse::IpSlot>,
}

impl Conn {
    pub(crate) fn new(generation: u32, fd: RawFd, state: ConnState, now_ms: u64) -> Conn {
        Conn {
            generation,
            fd,
            state,
            inbound: Vec::new(),
            outbound: Vec::new(),
            outbound_sent: 0,
            write_blocked: false,
            write_armed: false,
            readable: false,
            dirty: false,
            closing: false,
            woken: false,
            handoff: None,
            accepted_ms: now_ms,
            closing_since_ms: 0,
            last_rx_ms: now_ms,
            ping_sent: false,
            malformed_frames: 0,
            layer: None,
            peer_ip: None,
            ip_slot: None,
        }
    }

    /// Bytes queued and not yet written (frames, and a layer's sealed bytes).
    pub(crate) fn unsent(&self) -> usize {
        self.outbound.len() - self.outbound_sent + self.layer.as_ref().map_or(0, |l| l.pending_bytes())
    }

    /// Whether frames from this connection may be processed now. Not while more than
    /// `outbound_bytes_max` of output is unsent: a client that keeps sending requests
    /// without reading the replies is read no further until it does (TCP pushes back on
    /// it), so replies cannot pile up without bound.
    pub(crate) fn accepts_frames(&self, outbound_bytes_max: usize) -> bool {
        if self.closing || self.handoff.is_some() || self.unsent() > outbound_bytes_max {
            return false;
        }
        match &self.state {
            ConnState::Authenticating { .. } => false,
            ConnState::LoggedIn(d) => d.sends_in_flight < SENDS_IN_FLIGHT_MAX,
            _ => true,
        }
    }

    /// Puts this connection (slab index `idx`) once on `dirty`, the core's list of
    /// connections flushed at the end of each unit of work.
    pub(crate) fn mark_dirty(&mut self, idx: usize, dirty: &mut Vec<usize>) {
        if !self.dirty {
            self.dirty = true;
            dirty.push(idx);
        }
    }

    /// The reference a request for this connection (slab index `idx`) carries.
    pub(crate) fn conn_ref(&self, idx: usize) -> ConnRef {
        ConnRef {
            index: idx as u32,
            generation: self.generation,
        }
    }

    pub(crate) fn device(&mut self) -> Option<&mut DeviceSession> {
        match &mut self.state {
            ConnState::LoggedIn(d) => Some(d),
            _ => None,
        }
    }
}

/// A user homed on this core with at least one device online here.
#[derive(Debug, Default)]
pub(crate) struct UserLocal {
    /// The highest inbox seq this core knows to be committed (written; under early
    /// delivery perhaps not yet fsynced).
    pub committed_head: u64,
    /// The highest inbox seq this core knows to be durable (`<= committed_head`).
    pub durable_head: u64,
    /// The highest `durable_head` this core has told the user's live devices (in a
    /// `Deliver` or a `Durable` push).
    pub durable_announced: u64,
    /// The user is in the core's `announce` queue.
    pub announce_queued: bool,
    /// A `Deliver` went to the user's devices since its `announce` entry was (re)queued:
    /// traffic flows, and the next `Deliver` will carry the watermark.
    pub delivered_since_queued: bool,
    /// `committed_head` is exact: a read of the log requested after this entry was made has
    /// answered. Until then it is the login's read, and a commit whose completion reached
    /// this core while the user had no device here (so was dropped) may lie above it: no
    /// device of the user turns `Live` on it alone.
    pub head_confirmed: bool,
    /// Slab indices of this user's connections.
    pub conns: Vec<usize>,
    /// Users whose presence this user subscribed to (dropped when its last device leaves).
    pub presence_targets: Vec<u64>,
}

/// The state of one core. Lives in an `Rc<RefCell<_>>` shared by the core's tasks; no
/// borrow is ever held across an `.await`.
pub(crate) struct Core {
    pub id: usize,
    pub shared: Arc<Shared>,
    pub conns: Slab<Conn>,
    pub users: crate::storage::IdMap<u64, UserLocal>,
    pub encoder: Encoder,
    pub decoder: FrameDecoder,
    pub limits: Limits,
    /// Connections with queued output, flushed at the end of each unit of work.
    pub dirty: Vec<usize>,
    generation_next: u32,
    started: Instant,
    /// Requests out to the writer or helpers whose completion has not come back.
    pub outstanding: u64,
    /// The one read buffer all of this core's connections read into.
    pub scratch: Rc<RefCell<Box<[u8]>>>,
    /// Tokens of token logins in flight, echoed back in `LoginOk` (by slab index).
    pub pending_tokens: HashMap<usize, [u8; 32]>,
    /// Username of each password login in flight, for the abuse limiter's outcome.
    pub pending_usernames: HashMap<usize, Box<str>>,
    /// Shutting down: no new frames are processed.
    pub draining: bool,
    /// Presence of this core's users, their subscribers, and notices bound for other cores.
    pub presence: PresenceBook,
    /// Scratch for the frames a TLS/WebSocket layer decoded from one read.
    pub layer_frames: Vec<u8>,
    /// Entries delivered before their fsync, `(commit, user, seq)` in commit order: each
    /// becomes its user's `durable_head` once the writer's watermark has synced `commit`
    /// (early delivery; see [`Core::advance_durable`]). Holds at most what the writer's
    /// unsynced commits delivered to this core's online users.
    pub tentative: VecDeque<(u64, u64, u64)>,
    /// Users whose devices got a tentative entry, `(due ms, user)` in due order, at most one
    /// entry per user: when due and no later `Deliver` has told them the watermark yet,
    /// they get a `Durable` push ([`Core::announce_durable`]).
    pub announce: VecDeque<(u64, u64)>,
    /// Wakes the core's committer task when this turn queued writes (inline commits).
    pub committer: CommitTrigger,
    /// The `client_msg_id`s a connection sent while it was still catching up, by slab
    /// index (at most [`OWN_SENDS_TRACKED_MAX`] each; dropped once it is live or gone):
    /// its catch-up skips those entries, since the sending connection gets no echo (its
    /// `SendAck` stands for its own copy), whichever of the two reaches it first.
    pub own_sends: HashMap<usize, Vec<u64>>,
    /// The readiness source and wake list of the core's event loop.
    pub io: ConnIo,
    /// Devices whose cursor a plain `Ack` moved, `(due ms, slab index, generation)` in due
    /// order, at most one entry per device (`DeviceSession::cursor_queued`): stored by
    /// [`Core::write_due_cursors`].
    pub cursor_due: VecDeque<(u64, usize, u32)>,
    /// Whether new sends go ahead or are shed for queueing delay (see [`crate::admission`]).
    pub admission: crate::admission::Admission,
    /// How long the completions this core last took from its mailbox had waited there (µs;
    /// 0 when it found none): deliveries and replies queue there when the core cannot keep
    /// up, invisible to its reads, so the admission gate counts it.
    mailbox_delay_us: u64,
    /// Sends shed for delay since the log last said so, and when it did (ms).
    shed_for_delay: u64,
    shed_logged_ms: u64,
}

/// Shortest interval (ms) between two log lines about sends shed for queueing delay.
pub(crate) const SHED_LOG_INTERVAL_MS: u64 = 10_000;

/// The core's connection I/O: its readiness source and the connections its event loop
/// must look at again (see [`crate::conn`]).
#[derive(Debug, Default)]
pub(crate) struct ConnIo {
    /// `None` where no event loop runs (the fuzz harness drives the core itself).
    pub poller: Option<crate::poller::Poller>,
    /// Connections woken since the loop last looked, each once (`Conn::woken`).
    pub woken: Vec<usize>,
    /// The event loop's task while it waits.
    pub waker: Option<Waker>,
    /// Scratch for the events of one pass.
    pub events: Vec<crate::poller::Event>,
}

/// Most sends of one catching-up connection whose echo its catch-up suppresses; past
/// that a send's own copy may come back in the catch-up as a `Deliver` (harmless: it is
/// in the inbox, and a client keys messages by id).
pub(crate) const OWN_SENDS_TRACKED_MAX: usize = 256;

/// The core's side of inline commits: a turn that queues writes wants one group commit
/// once its other work is done. The committer task (`server::committer`) runs after the
/// tasks already woken in the same turn, so one commit carries every write they queued.
#[derive(Debug, Default)]
pub(crate) struct CommitTrigger {
    wanted: bool,
    pub waker: Option<std::task::Waker>,
}

impl CommitTrigger {
    /// Asks for a commit at the end of this turn (waking the committer task, if parked).
    pub(crate) fn want(&mut self) {
        if !self.wanted {
            self.wanted = true;
            if let Some(waker) = self.waker.take() {
                waker.wake();
            }
        }
    }

    /// Whether a commit was asked for since the last call (and clears the request).
    pub(crate) fn take(&mut self) -> bool {
        std::mem::take(&mut self.wanted)
    }
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("id", &self.id)
            .field("conns", &self.conns.len())
            .field("users", &self.users.len())
            .finish()
    }
}

pub(crate) type CoreRef = Rc<RefCell<Core>>;

impl Core {
    pub(crate) fn new(id: usize, shared: Arc<Shared>) -> Core {
        let limits = shared.config.limits();
        Core {
            id,
            decoder: FrameDecoder::new(limits.frame_bytes_max, 0),
            limits,
            shared: shared.clone(),
            conns: Slab::new(),
            users: crate::storage::IdMap::default(),
            encoder: Encoder::new(),
            dirty: Vec::new(),
            generation_next: 1,
            started: Instant::now(),
            outstanding: 0,
            scratch: Rc::new(RefCell::new(vec![0u8; READ_SCRATCH_BYTES].into_boxed_slice())),
            pending_tokens: HashMap::new(),
            pending_usernames: HashMap::new(),
            draining: false,
            presence: PresenceBook::new(shared.config.cores),
            layer_frames: Vec::new(),
            tentative: VecDeque::new(),
            announce: VecDeque::new(),
            committer: CommitTrigger::default(),
            own_sends: HashMap::new(),
            io: ConnIo::default(),
            cursor_due: VecDeque::new(),
            admission: crate::admission::Admission::new(shared.config.shed_queue_delay_ms),
            mailbox_delay_us: 0,
            shed_for_delay: 0,
            shed_logged_ms: 0,
        }
    }

    /// Feeds the admission gate at `now`: this core's event loop has let ready sockets wait
    /// `pass_lag_us` (0 after an idle wait); its mailbox and the writer's queue, what they
    /// last showed.
    pub(crate) fn observe_delay(&mut self, now: Instant, pass_lag_us: u64) {
        let delay_us = pass_lag_us
            .max(self.mailbox_delay_us)
            .max(self.shared.writer.queue_delay_us());
        let now_us = now.saturating_duration_since(self.started).as_micros() as u64;
        if let Some(on) = self.admission.observe(now_us, delay_us) {
            self.shared.metrics.shedding_by_core[self.id].store(u64::from(on), Ordering::Relaxed);
            tracing::debug!("core {}: shedding {on} at a queueing delay of {delay_us} µs", self.id);
        }
    }

    /// Sheds a send for queueing delay if the admission gate says so; returns whether it did.
    /// While the log refuses writes (a full disk, a failed fsync) nothing is shed: its
    /// commits fail slowly and queue like an overload, but the truthful answer is the
    /// writer's `StorageUnavailable`, which comes at once.
    pub(crate) fn shed_for_delay(&mut self, idx: usize, request_id: u64) -> bool {
        if self.admission.admits() || self.shared.writer.stats.failing_batches.load(Ordering::Relaxed) > 0 {
            return false;
        }
        self.shed_for_delay += 1;
        self.shared.metrics.shed_queue_delay.fetch_add(1, Ordering::Relaxed);
        let text = "the server is overloaded (requests queue longer than --shed-queue-delay-ms); retry";
        self.push_error(idx, request_id, ErrorCode::Overloaded, text);
        true
    }

    /// The sweep's part of admission: publishes the gate's delay, and says in the log (at
    /// most every [`SHED_LOG_INTERVAL_MS`]) how many sends it shed since it last did.
    fn sweep_admission(&mut self, now_ms: u64) {
        self.shared.metrics.queue_delay_us_by_core[self.id].store(self.admission.delay_us(), Ordering::Relaxed);
        if self.shed_for_delay > 0 && now_ms.saturating_sub(self.shed_logged_ms) >= SHED_LOG_INTERVAL_MS {
            tracing::warn!(
                "core {}: shed {} sends for queueing delay over --shed-queue-delay-ms ({} µs now; hotline_shed_total{{reason=\"queue_delay\"}})",
                self.id,
                self.shed_for_delay,
                self.admission.delay_us()
            );
            self.shed_for_delay = 0;
            self.shed_logged_ms = now_ms;
        }
    }

    /// Asks the event loop to look at connection `idx` again: a hand-off, a close, a write
    /// wait to arm, or reading resumed after a pause.
    pub(crate) fn wake(&mut self, idx: usize) {
        let Some(conn) = self.conns.get_mut(idx) else { return };
        if !conn.woken {
            conn.woken = true;
            self.io.woken.push(idx);
        }
        if let Some(waker) = self.io.waker.take() {
            waker.wake();
        }
    }

    /// Queues a write for the log (committed at the end of this turn under inline commits),
    /// or gives it back if the writer's queue is full.
    pub(crate) fn submit_write(&mut self, request: WriteRequest) -> Result<(), WriteRequest> {
        self.shared.writer.submit_local(request)?;
        self.committer.want();
        Ok(())
    }

    /// [`Core::submit_write`] for a client's request: the writer's reserved share (logins,
    /// cursors) stays free ([`crate::storage::writer::LogWriter::submit_client`]).
    pub(crate) fn submit_client_write(&mut self, request: WriteRequest) -> Result<(), WriteRequest> {
        self.shared.writer.submit_client(request)?;
        self.committer.want();
        Ok(())
    }

    /// Milliseconds since this core started (monotonic).
    pub(crate) fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Registers a connection and returns its slab index.
    pub(crate) fn insert_conn(&mut self, fd: RawFd, state: ConnState) -> usize {
        let generation = self.generation_next;
        self.generation_next = self.generation_next.wrapping_add(1).max(1);
        let now = self.now_ms();
        self.shared.connections.fetch_add(1, Ordering::Relaxed);
        self.shared.metrics.connections_by_core[self.id].fetch_add(1, Ordering::Relaxed);
        self.conns.insert(Conn::new(generation, fd, state, now))
    }

    /// The reference a request made for connection `idx` carries.
    pub(crate) fn conn_ref(&self, idx: usize) -> ConnRef {
        self.conns[idx].conn_ref(idx)
    }

    /// Where the outcome of a client's request on connection `idx` goes.
    pub(crate) fn reply_to(&self, idx: usize, request_id: u64) -> ReplyTo {
        ReplyTo {
            core: self.id,
            conn: self.conn_ref(idx),
            request_id,
            requester: Requester::Client,
        }
    }

    /// Where the outcome of a client's write on connection `idx` goes: it counts in the
    /// device's `sends_in_flight` until answered.
    pub(crate) fn counted_reply(&self, idx: usize, request_id: u64) -> ReplyTo {
        ReplyTo {
            requester: Requester::ClientCounted,
            ..self.reply_to(idx, request_id)
        }
    }

    /// Where the outcome of the engine's own request for connection `idx` goes.
    pub(crate) fn internal_reply(&self, idx: usize) -> ReplyTo {
        ReplyTo {
            requester: Requester::Engine,
            ..self.reply_to(idx, hotline_wire::REQUEST_ID_NONE)
        }
    }

    /// The live connection a reply is for, if it still exists.
    fn resolve(&self, conn: ConnRef) -> Option<usize> {
        let idx = conn.index as usize;
        self.conns
            .get(idx)
            .filter(|c| c.generation == conn.generation)
            .map(|_| idx)
    }

    /// Forgets a connection that has ended (its socket is closed by the caller).
    pub(crate) fn remove_conn(&mut self, idx: usize) {
        if !self.conns.contains(idx) {
            return;
        }
        let conn = self.conns.remove(idx);
        self.own_sends.remove(&idx);
        self.pending_tokens.remove(&idx);
        self.pending_usernames.remove(&idx);
        self.shared.connections.fetch_sub(1, Ordering::Relaxed);
        self.shared.metrics.connections_by_core[self.id].fetch_sub(1, Ordering::Relaxed);
        if let ConnState::LoggedIn(dev) = conn.state {
            // A cursor acked but not yet submitted still gets stored.
            if dev.cursor_writing.is_none() && dev.cursor > 0 {
                let _ = self.submit_write(WriteRequest {
                    reply: None,
                    op: WriteOp::SetCursor {
                        user_id: dev.user_id,
                        device_id: dev.device_id,
                        seq: dev.cursor,
                    },
                });
            }
            if let Some(user) = self.users.get_mut(&dev.user_id) {
                user.conns.retain(|c| *c != idx);
                if user.conns.is_empty() {
                    let targets = self
                        .users
                        .remove(&dev.user_id)
                        .map(|u| u.presence_targets)
                        .unwrap_or_default();
                    self.user_offline(dev.user_id, targets);
                }
            }
        }
    }

    /// Puts connection `idx` on the list flushed at the end of this unit of work.
    pub(crate) fn mark_dirty(&mut self, idx: usize) {
        if let Some(conn) = self.conns.get_mut(idx) {
            conn.mark_dirty(idx, &mut self.dirty);
        }
    }

    /// Queues one frame to connection `idx`.
    pub(crate) fn push(&mut self, idx: usize, request_id: u64, message: &Message<'_>) {
        let Some(conn) = self.conns.get_mut(idx) else { return };
        self.encoder.encode_into(request_id, message, &mut conn.outbound);
        self.shared.metrics.frames_out_by_type[message.index()].fetch_add(1, Ordering::Relaxed);
        conn.mark_dirty(idx, &mut self.dirty);
    }

    /// Queues a typed error.
    pub(crate) fn push_error(&mut self, idx: usize, request_id: u64, code: ErrorCode, message: &str) {
        let retry_after_ms = if matches!(code, ErrorCode::Overloaded) {
            OVERLOADED_RETRY_AFTER_MS
        } else {
            0
        };
        self.push_error_retry(idx, request_id, code, message, retry_after_ms);
    }

    /// Answers an abuse limit's refusal: `Error{RateLimited}` with its `retry_after_ms`,
    /// counted in that limit's metric.
    pub(crate) fn refuse(&mut self, idx: usize, request_id: u64, refused: crate::abuse::Refused) {
        self.shared
            .metrics
            .abuse
            .counter(refused.limit)
            .fetch_add(1, Ordering::Relaxed);
        let text = refused.limit.describe();
        self.push_error_retry(idx, request_id, ErrorCode::RateLimited, text, refused.retry_after_ms);
    }

    /// [`Core::push_error`] with an explicit `retry_after_ms`.
    pub(crate) fn push_error_retry(
        &mut self,
        idx: usize,
        request_id: u64,
        code: ErrorCode,
        message: &str,
        retry_after_ms: u32,
    ) {
        self.shared.metrics.errors_sent.fetch_add(1, Ordering::Relaxed);
        self.push(
            idx,
            request_id,
            &Message::Error(ErrorBody {
                code,
                message,
                retry_after_ms,
            }),
        );
    }

    /// A login (or registration) on connection `idx` failed with `code`: wrong credentials
    /// count towards the abuse limiter's backoff.
    fn login_failed(&mut self, idx: usize, code: ErrorCode) {
        let username = self.pending_usernames.remove(&idx);
        if code == ErrorCode::InvalidCredentials {
            let ip = self.conns[idx].peer_ip;
            self.shared.limiter.login_finished(ip, username.as_deref(), false);
        }
    }

    /// Sends an error, then closes the connection once it is flushed.
    pub(crate) fn close_with_error(&mut self, idx: usize, code: ErrorCode, message: &str) {
        self.push_error(idx, 0, code, message);
        self.close(idx);
    }

    /// Closes connection `idx` once its queued frames are written (or after a grace period).
    pub(crate) fn close(&mut self, idx: usize) {
        let now = self.now_ms();
        if let Some(conn) = self.conns.get_mut(idx) {
            if !conn.closing {
                conn.closing = true;
                conn.closing_since_ms = now;
            }
        }
        self.wake(idx);
    }

    /// Writes every dirty connection's queued frames (one `send` each), after handing
    /// presence notices to their cores.
    pub(crate) fn flush_dirty(&mut self) {
        self.flush_presence();
        while let Some(idx) = self.dirty.pop() {
            self.flush(idx);
        }
    }

    /// Writes as much of connection `idx`'s queue as the socket takes right now.
    pub(crate) fn flush(&mut self, idx: usize) {
        let Some(conn) = self.conns.get_mut(idx) else { return };
        conn.dirty = false;
        let mut failed = false;
        // The event loop must look at it (a write wait to arm, a close to finish).
        let mut wake = false;
        if let Some(layer) = conn.layer.as_mut() {
            // Seal every queued frame into TLS records / WebSocket messages.
            if let Err(e) = layer.seal(&conn.outbound[conn.outbound_sent..]) {
                tracing::error!("core {}: connection {idx}: sealing frames: {e}", self.id);
                failed = true;
            }
            conn.outbound.clear();
            conn.outbound_sent = 0;
        }
        if conn.write_blocked && !failed {
            return;
        }
        while conn.unsent() > 0 && !failed {
            let rest = match conn.layer.as_ref() {
                Some(layer) => layer.wire(),
                None => &conn.outbound[conn.outbound_sent..],
            };
            // SAFETY: `rest` is a live, initialised buffer of `rest.len()` bytes and `fd`
            // is this connection's open socket (the event loop closes it only after
            // removing the entry, which cannot happen while we hold the core borrow).
            let n = unsafe {
                libc::send(
                    conn.fd,
                    rest.as_ptr().cast(),
                    rest.len(),
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
            if n >= 0 {
                match conn.layer.as_mut() {
                    Some(layer) => layer.consume_wire(n as usize),
                    None => conn.outbound_sent += n as usize,
                }
                continue;
            }
            match std::io::Error::last_os_error().kind() {
                std::io::ErrorKind::WouldBlock => {
                    conn.write_blocked = true;
                    wake = true;
                }
                std::io::ErrorKind::Interrupted => continue,
                _ => failed = true,
            }
            break;
        }
        if failed {
            // The peer is gone: drop what it will never read and let the event loop close.
            conn.outbound.clear();
            conn.outbound_sent = 0;
            if let Some(layer) = conn.layer.as_mut() {
                layer.discard_pending();
            }
            conn.closing = true;
            self.wake(idx);
            return;
        }
        if conn.unsent() == 0 {
            conn.outbound.clear();
            conn.outbound_sent = 0;
            // Keep a warm buffer for busy connections, not for idle ones.
            if conn.outbound.capacity() > OUTBOUND_RETAIN_BYTES {
                conn.outbound = Vec::new();
            }
            if let Some(layer) = conn.layer.as_mut() {
                layer.release_idle();
            }
            wake |= conn.closing;
        } else if conn.outbound_sent > conn.outbound.len() / 2 {
            conn.outbound.drain(..conn.outbound_sent);
            conn.outbound_sent = 0;
        }
        // A socket left unread while the output was over its limit is read again.
        wake |= conn.readable && conn.accepts_frames(self.shared.config.outbound_bytes_max);
        if wake {
            self.wake(idx);
        }
        // Frames kept while the output was over its limit run once it drained.
        let Some(conn) = self.conns.get(idx) else { return };
        let kept_frames = !conn.inbound.is_empty();
        self.pump_catch_up(idx);
        if kept_frames {
            crate::conn::resume(self, idx);
        }
    }

    /// Says goodbye on connection `idx`'s layer (WebSocket `Close`, TLS `close_notify`),
    /// for the last flush before its socket closes.
    pub(crate) fn close_layer(&mut self, idx: usize) {
        if let Some(layer) = self.conns.get_mut(idx).and_then(|conn| conn.layer.as_mut()) {
            layer.close();
        }
    }

    /// The socket was reported writable again.
    pub(crate) fn on_writable(&mut self, idx: usize) {
        if let Some(conn) = self.conns.get_mut(idx) {
            conn.write_blocked = false;
            conn.write_armed = false;
        }
        self.flush(idx);
    }

    /// Handles everything queued in this core's mailbox, at most `budget` items.
    /// Returns how many it handled.
    pub(crate) fn drain_mailbox(&mut self, budget: usize) -> usize {
        let shared = self.shared.clone();
        let mailbox = &shared.mailboxes[self.id];
        self.advance_durable();
        self.announce_durable();
        let mut handled = 0;
        let mut oldest = None;
        while handled < budget {
            if let Some((queued, c)) = mailbox.pop_completion_queued() {
                oldest.get_or_insert(queued);
                self.on_completion(c);
            } else if let Some(r) = mailbox.pop_routed() {
                match r {
                    crate::mailbox::Routed::Adopt(adopt) => crate::conn::adopt(self, *adopt),
                    crate::mailbox::Routed::Notices(notices) => self.on_notices(notices),
                }
            } else {
                break;
            }
            handled += 1;
        }
        // How long completions wait for this core: what it delivers late, past what it reads.
        self.mailbox_delay_us = oldest.map_or(0, |queued| queued.elapsed().as_micros() as u64);
        self.flush_dirty();
        handled
    }

    /// Moves each user's `durable_head` past the entries whose commit the writer has synced
    /// since. Runs whenever the core handles its mailbox (the replies of a synced commit
    /// wake it) and at each sweep; the devices hear of it in their next `Deliver`, or from
    /// a `Durable` push once their traffic pauses ([`Core::announce_durable`]).
    pub(crate) fn advance_durable(&mut self) {
        let synced = self.shared.writer.watermark.synced();
        while let Some(&(commit, user_id, seq)) = self.tentative.front() {
            if commit > synced {
                break;
            }
            self.tentative.pop_front();
            if let Some(user) = self.users.get_mut(&user_id) {
                user.durable_head = user.durable_head.max(seq);
            }
        }
    }

    /// Tells the devices of a user that got a tentative entry, once its traffic has paused
    /// for [`DURABLE_ANNOUNCE_DELAY_MS`], how far its inbox is durable, with one `Durable`
    /// push. While `Deliver`s keep coming each carries the watermark (one entry behind), so
    /// a busy user costs no extra frame; the delay also spreads the pushes of a busy core
    /// over time instead of bursting them. Bounded: one queue entry per online user.
    pub(crate) fn announce_durable(&mut self) {
        let now = self.now_ms();
        while let Some(&(due, user_id)) = self.announce.front() {
            if due > now {
                break;
            }
            self.announce.pop_front();
            let Some(user) = self.users.get_mut(&user_id) else {
                continue;
            };
            let paused = !std::mem::take(&mut user.delivered_since_queued);
            if paused && user.durable_head > user.durable_announced {
                user.durable_announced = user.durable_head;
                let inbox_seq = user.durable_head;
                self.push_to_user(user_id, &Message::Durable(Durable { inbox_seq }), None);
            }
            let Some(user) = self.users.get_mut(&user_id) else {
                continue;
            };
            if user.durable_announced < user.committed_head {
                // Traffic goes on, or an fsync is still out: look again later.
                self.announce.push_back((now + DURABLE_ANNOUNCE_DELAY_MS, user_id));
            } else {
                user.announce_queued = false;
            }
        }
    }

    fn on_completion(&mut self, completion: Completion) {
        match completion {
            Completion::Committed {
                user_id,
                seq,
                message,
                origin,
                commit,
            } => self.on_committed(user_id, seq, &message, origin, commit),
            Completion::Fanout {
                message,
                entries,
                origin,
                commit,
            } => {
                for (user_id, seq) in entries {
                    if seq == 0 {
                        self.on_ephemeral(user_id, &message, origin);
                    } else {
                        self.on_committed(user_id, seq, &message, origin, commit);
                    }
                }
            }
            Completion::Notices(notices) => self.on_notices(notices),
            Completion::Written { reply, outcome } => {
                self.outstanding = self.outstanding.saturating_sub(1);
                if let Some(idx) = self.resolve(reply.conn) {
                    self.on_written(idx, reply, outcome);
                }
            }
            Completion::Helped { reply, outcome } => {
                self.outstanding = self.outstanding.saturating_sub(1);
                if let Some(idx) = self.resolve(reply.conn) {
                    self.on_helped(idx, reply, outcome);
                }
            }
        }
    }

    /// A message reached `user_id`'s inbox at `seq`: push it to that user's live devices.
    /// `commit`: the group commit that wrote it (see `Completion::Committed`).
    fn on_committed(&mut self, user_id: u64, seq: u64, message: &StoredMessage, origin: Option<ReplyTo>, commit: u64) {
        let Some(user) = self.users.get_mut(&user_id) else {
            return;
        };
        user.committed_head = user.committed_head.max(seq);
        if commit == 0 || commit <= self.shared.writer.watermark.synced() {
            user.durable_head = user.durable_head.max(seq);
        } else {
            self.tentative.push_back((commit, user_id, seq));
        }
        let durable_seq = user.durable_head;
        let origin = origin.filter(|o| o.core == self.id).map(|o| o.conn);
        let deliver = Deliver {
            durable_seq,
            ..message.deliver(user_id, seq)
        };
        let frame = self.encoder.encode(0, &Message::Deliver(deliver));
        let outbound_max = self.shared.config.outbound_bytes_max;
        let mut lagging = 0;
        let mut delivered = 0;
        for &idx in &user.conns {
            let conn = &mut self.conns[idx];
            let this = conn.conn_ref(idx);
            let unsent = conn.unsent();
            let ConnState::LoggedIn(dev) = &mut conn.state else {
                continue;
            };
            if dev.mode != DeliveryMode::Live || seq <= dev.sent_seq {
                continue;
            }
            if seq != dev.sent_seq + 1 {
                // Cannot happen while live: the writer pushes each user's commits in seq
                // order and the mailbox never drops one. Recover in a release build.
                debug_assert!(
                    false,
                    "user {user_id}: a live device at seq {} was given seq {seq}",
                    dev.sent_seq
                );
                dev.mode = DeliveryMode::CatchingUp;
                lagging += 1;
                continue;
            }
            if origin == Some(this) {
                // The sending device's SendAck stands for its own copy.
                dev.sent_seq = seq;
                continue;
            }
            if unsent + frame.len() > outbound_max {
                // Slow reader: stop pushing; it catches up from the log once it drains.
                dev.mode = DeliveryMode::CatchingUp;
                lagging += 1;
                continue;
            }
            conn.outbound.extend_from_slice(frame);
            dev.sent_seq = seq;
            delivered += 1;
            conn.mark_dirty(idx, &mut self.dirty);
        }
        if delivered > 0 {
            user.durable_announced = user.durable_announced.max(durable_seq);
            user.delivered_since_queued = true;
            if durable_seq < seq && !user.announce_queued {
                user.announce_queued = true;
                user.delivered_since_queued = false;
                let due = self.started.elapsed().as_millis() as u64 + DURABLE_ANNOUNCE_DELAY_MS;
                self.announce.push_back((due, user_id));
            }
        }
        let metrics = &self.shared.metrics;
        metrics.lagging_switches.fetch_add(lagging, Ordering::Relaxed);
        if delivered > 0 {
            metrics.delivered_live.fetch_add(delivered, Ordering::Relaxed);
            metrics.frames_out_by_type[crate::metrics::DELIVER_INDEX].fetch_add(delivered, Ordering::Relaxed);
            let now_us = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64);
            metrics
                .delivery_latency_us
                .observe(now_us.saturating_sub(message.timestamp_us));
        }
    }

    /// An ephemeral message for `user_id`: pushed (inbox seq 0) to every connection of the
    /// user but the sending one, skipped where the outbound buffer is full. Never stored.
    fn on_ephemeral(&mut self, user_id: u64, message: &StoredMessage, origin: Option<ReplyTo>) {
        let origin = origin.filter(|o| o.core == self.id).map(|o| o.conn);
        self.push_to_user(user_id, &Message::Deliver(message.deliver(user_id, 0)), origin);
    }

    /// Pushes `message` to every connection of `user` (if online here) but `except`.
    pub(crate) fn push_to_user(&mut self, user: u64, message: &Message<'_>, except: Option<ConnRef>) {
        let Some(u) = self.users.get(&user) else { return };
        let frame = self.encoder.encode(0, message);
        let outbound_max = self.shared.config.outbound_bytes_max;
        let mut pushed = 0;
        for &idx in &u.conns {
            let conn = &mut self.conns[idx];
            let this = conn.conn_ref(idx);
            // A live notice to a connection that is far behind is dropped: it is not stored.
            if Some(this) == except || conn.unsent() + frame.len() > outbound_max {
                continue;
            }
            conn.outbound.extend_from_slice(frame);
            pushed += 1;
            conn.mark_dirty(idx, &mut self.dirty);
        }
        self.shared.metrics.frames_out_by_type[message.index()].fetch_add(pushed, Ordering::Relaxed);
    }

    /// Live notifications from the writer or another core.
    pub(crate) fn on_notices(&mut self, notices: Vec<Notice>) {
        for notice in notices {
            match notice {
                Notice::Receipt { user, receipt } => self.push_to_user(user, &Message::Receipt(receipt), None),
                Notice::ReadPosition { user, position, except } => {
                    self.push_to_user(user, &Message::ReadPosition(position), except)
                }
                Notice::Typing { users, notice } => {
                    for user in users {
                        self.push_to_user(user, &Message::TypingNotice(notice), None);
                    }
                }
                Notice::Presence { subscribers, presence } => {
                    for user in subscribers {
                        self.push_to_user(user, &Message::Presence(presence), None);
                    }
                }
                Notice::Subscribe { subscriber, targets } => self.on_subscribe(subscriber, targets),
                Notice::Unsubscribe { subscriber, targets } => {
                    self.presence.unsubscribe(subscriber, &targets);
                }
                Notice::DeviceRevoked { user, device } => self.close_revoked(user, device),
            }
        }
    }

    /// Closes `user`'s connections on `device`, whose token was just revoked. A connection
    /// already closing (the one that logged out, answered `LogoutOk`) is left to finish.
    fn close_revoked(&mut self, user: u64, device: u64) {
        let Some(local) = self.users.get(&user) else { return };
        let revoked: Vec<usize> = local
            .conns
            .iter()
            .copied()
            .filter(|&idx| {
                let conn = &self.conns[idx];
                !conn.closing && matches!(&conn.state, ConnState::LoggedIn(d) if d.device_id == device)
            })
            .collect();
        for idx in revoked {
            self.close_with_error(idx, ErrorCode::InvalidCredentials, "this device's token was revoked");
        }
    }

    fn on_written(&mut self, idx: usize, reply: ReplyTo, outcome: Result<WriteOutcome, ErrorCode>) {
        let request_id = reply.request_id;
        match outcome {
            Ok(WriteOutcome::Sent(ack)) => {
                self.shared.metrics.messages_acked.fetch_add(1, Ordering::Relaxed);
                self.push(idx, request_id, &Message::SendAck(ack));
            }
            Ok(WriteOutcome::UserCreated { user_id }) => {
                let ok = hotline_wire::RegisterOk { user_id };
                self.push(idx, request_id, &Message::RegisterOk(ok));
                self.unpause(idx, ConnState::Ready);
            }
            Ok(WriteOutcome::DeviceCreated {
                user_id,
                device_id,
                token,
                token_hash,
                inbox_head,
            }) => {
                let adopt = Adopt::local(LoginResult {
                    request_id,
                    user_id,
                    device_id,
                    token,
                    token_hash,
                    cursor: 0,
                    inbox_head,
                });
                crate::conn::login_succeeded(self, idx, adopt);
            }
            Ok(WriteOutcome::TokenRevoked) => {
                self.push(idx, request_id, &Message::LogoutOk);
                self.close(idx);
            }
            Ok(WriteOutcome::CursorStored { seq, .. }) => self.on_cursor_stored(idx, seq),
            Ok(WriteOutcome::GroupCreated { group_id }) => {
                let ok = hotline_wire::GroupCreated { group_id };
                self.push(idx, request_id, &Message::GroupCreated(ok));
            }
            Ok(WriteOutcome::Done) => {
                if request_id != hotline_wire::REQUEST_ID_NONE {
                    self.push(idx, request_id, &Message::Done);
                }
            }
            Ok(WriteOutcome::ReadPosition(position)) => {
                self.push(idx, request_id, &Message::ReadPosition(position));
            }
            Err(code) => {
                match &mut self.conns[idx].state {
                    ConnState::Authenticating { request_id: pending } => {
                        // Reading is paused while authenticating: only its own reply comes.
                        debug_assert_eq!(*pending, request_id, "a login's reply answers that login");
                        self.shared.metrics.logins_failed.fetch_add(1, Ordering::Relaxed);
                        self.login_failed(idx, code);
                        self.unpause(idx, ConnState::Ready);
                    }
                    // A failed cursor write is retried by the sweeper, quietly.
                    ConnState::LoggedIn(dev) if reply.is_internal() => dev.cursor_writing = None,
                    _ => {}
                }
                if reply.is_internal() {
                    return;
                }
                self.push_error(idx, request_id, code, code.text());
            }
        }
        // Answered, either way (a failed write is the client's to retry).
        if reply.requester == Requester::ClientCounted {
            self.send_finished(idx);
        }
    }

    fn on_helped(&mut self, idx: usize, reply: ReplyTo, outcome: Result<HelperOutcome, ErrorCode>) {
        let request_id = reply.request_id;
        match outcome {
            Ok(HelperOutcome::TokenLogin {
                user_id,
                device_id,
                cursor,
                inbox_head,
                token_hash,
            }) => {
                let adopt = Adopt::local(LoginResult {
                    request_id,
                    user_id,
                    device_id,
                    token: self.pending_tokens.remove(&idx).unwrap_or([0; 32]),
                    token_hash,
                    cursor,
                    inbox_head,
                });
                crate::conn::login_succeeded(self, idx, adopt);
            }
            Ok(HelperOutcome::InboxPage {
                user_id,
                purpose,
                page,
                inbox_head,
            }) => {
                if let Some(user) = self.users.get_mut(&user_id) {
                    // A helper's read is durable (it waited for the fsync).
                    user.committed_head = user.committed_head.max(inbox_head);
                    user.durable_head = user.durable_head.max(inbox_head);
                    user.head_confirmed = true;
                }
                match purpose {
                    ReadPurpose::Sync => {
                        if let Some(dev) = self.conns[idx].device() {
                            dev.syncs_in_flight = dev.syncs_in_flight.saturating_sub(1);
                        }
                        let mut messages = Vec::with_capacity(page.entries.len());
                        for (seq, record) in &page.entries {
                            match decode_record(*seq, record) {
                                Ok(d) => messages.push(Deliver {
                                    durable_seq: inbox_head,
                                    ..d
                                }),
                                Err(e) => tracing::error!("user {user_id} inbox seq {seq}: {e}"),
                            }
                        }
                        let reply = Message::SyncPage(SyncPage {
                            messages,
                            inbox_seq: inbox_head,
                            more: page.more,
                        });
                        self.push(idx, request_id, &reply);
                    }
                    ReadPurpose::CatchUp => self.on_catch_up_page(idx, page, inbox_head),
                }
            }
            Ok(other) => {
                if let Some(dev) = self.conns[idx].device() {
                    dev.syncs_in_flight = dev.syncs_in_flight.saturating_sub(1);
                }
                self.on_read(idx, request_id, other);
            }
            Err(code) => {
                match &mut self.conns[idx].state {
                    ConnState::Authenticating { request_id: pending } => {
                        debug_assert_eq!(*pending, request_id, "a login's reply answers that login");
                        self.pending_tokens.remove(&idx);
                        self.shared.metrics.logins_failed.fetch_add(1, Ordering::Relaxed);
                        self.login_failed(idx, code);
                        self.unpause(idx, ConnState::Ready);
                    }
                    ConnState::LoggedIn(dev) if reply.is_internal() => dev.read_in_flight = false,
                    ConnState::LoggedIn(dev) => dev.syncs_in_flight = dev.syncs_in_flight.saturating_sub(1),
                    _ => {}
                }
                if !reply.is_internal() {
                    // The helpers' one `Forbidden` is a group read by a non-member.
                    let text = match code {
                        ErrorCode::Forbidden => "not a member of this group",
                        code => code.text(),
                    };
                    self.push_error(idx, request_id, code, text);
                }
            }
        }
    }

    /// A list read for a client's request came back.
    fn on_read(&mut self, idx: usize, request_id: u64, outcome: HelperOutcome) {
        match outcome {
            HelperOutcome::GroupMembers(list) => {
                self.push(idx, request_id, &Message::GroupMemberList(list));
            }
            HelperOutcome::Groups { groups, more } => {
                let groups = groups
                    .iter()
                    .map(|(group_id, name, role, persistence)| hotline_wire::GroupInfo {
                        group_id: *group_id,
                        name,
                        role: *role,
                        persistence: *persistence,
                    })
                    .collect();
                let list = hotline_wire::GroupList { groups, more };
                self.push(idx, request_id, &Message::GroupList(list));
            }
            HelperOutcome::Conversations(list) => {
                self.push(idx, request_id, &Message::ConversationList(list));
            }
            HelperOutcome::PresenceAllowed { targets } => self.on_presence_allowed(idx, request_id, targets),
            HelperOutcome::TokenLogin { .. } | HelperOutcome::InboxPage { .. } => {
                unreachable!("logins and inbox pages are handled by on_helped")
            }
        }
    }

    /// Ends a pause (a finished Register or a failed Login): the connection takes `state`,
    /// its socket is read again, and frames that queued behind the pause run now.
    fn unpause(&mut self, idx: usize, state: ConnState) {
        self.conns[idx].state = state;
        self.wake(idx);
        crate::conn::resume(self, idx);
    }

    /// One of the device's counted writes was answered; a connection paused at
    /// `SENDS_IN_FLIGHT_MAX` starts reading again.
    fn send_finished(&mut self, idx: usize) {
        let Some(dev) = self.conns[idx].device() else { return };
        let was_paused = dev.sends_in_flight >= SENDS_IN_FLIGHT_MAX;
        dev.sends_in_flight = dev.sends_in_flight.saturating_sub(1);
        if was_paused {
            self.wake(idx);
            crate::conn::resume(self, idx);
        }
    }

    /// Completes a login on this (the user's home) core: the device is registered, gets
    /// `LoginOk`, and starts catching up from its cursor.
    pub(crate) fn activate_device(&mut self, idx: usize, adopt: &Adopt) {
        let user = self.users.entry(adopt.user_id).or_default();
        // A login's head was read durable (a helper waited for the fsync, or the writer
        // answered after it).
        user.committed_head = user.committed_head.max(adopt.inbox_head);
        user.durable_head = user.durable_head.max(adopt.inbox_head);
        user.conns.push(idx);
        let first_device = user.conns.len() == 1;
        let inbox_seq = user.committed_head;
        if first_device {
            self.user_online(adopt.user_id);
        }
        let now = self.now_ms();
        let conn = &mut self.conns[idx];
        conn.last_rx_ms = now;
        conn.state = ConnState::LoggedIn(Box::new(DeviceSession {
            user_id: adopt.user_id,
            device_id: adopt.device_id,
            token_hash: adopt.token_hash,
            sent_seq: adopt.cursor,
            mode: DeliveryMode::CatchingUp,
            read_in_flight: false,
            cursor: adopt.cursor,
            cursor_stored: adopt.cursor,
            cursor_writing: None,
            ack_waiters: Vec::new(),
            sends_in_flight: 0,
            syncs_in_flight: 0,
            typing_last_ms: 0,
            cursor_queued: false,
        }));
        self.wake(idx);
        self.shared.metrics.logins_ok.fetch_add(1, Ordering::Relaxed);
        self.push(
            idx,
            adopt.request_id,
            &Message::LoginOk(LoginOk {
                user_id: adopt.user_id,
                device_id: adopt.device_id,
                token: &adopt.token,
                inbox_seq,
                device_cursor: adopt.cursor,
                epoch: self.shared.writer.epoch,
            }),
        );
        self.pump_catch_up(idx);
    }

    /// Starts the next log read for a device that is catching up, if it has room.
    pub(crate) fn pump_catch_up(&mut self, idx: usize) {
        let outbound_max = self.shared.config.outbound_bytes_max;
        if !self.conns.contains(idx) {
            return;
        }
        let reply = self.internal_reply(idx);
        let conn = &mut self.conns[idx];
        let unsent = conn.unsent();
        let ConnState::LoggedIn(dev) = &mut conn.state else {
            return;
        };
        if dev.mode != DeliveryMode::CatchingUp || dev.read_in_flight || conn.closing {
            return;
        }
        let (head, head_confirmed) = self
            .users
            .get(&dev.user_id)
            .map_or((0, false), |u| (u.committed_head, u.head_confirmed));
        if head_confirmed && dev.sent_seq >= head {
            dev.mode = DeliveryMode::Live;
            self.own_sends.remove(&idx);
            return;
        }
        // Resume only once the backlog has drained well below the limit.
        if unsent > outbound_max / 2 {
            return;
        }
        let job = HelperJob::ReadInbox {
            reply,
            user_id: dev.user_id,
            after_seq: dev.sent_seq,
            limit: CATCH_UP_PAGE_MESSAGES_MAX,
            bytes_max: outbound_max - unsent,
            purpose: ReadPurpose::CatchUp,
        };
        if self.shared.helpers.submit(job).is_ok() {
            dev.read_in_flight = true;
            self.outstanding += 1;
        }
        // Otherwise the helpers are saturated; the sweeper tries again.
    }

    fn on_catch_up_page(&mut self, idx: usize, page: crate::storage::InboxPage, inbox_head: u64) {
        let conn = &mut self.conns[idx];
        let ConnState::LoggedIn(dev) = &mut conn.state else {
            return;
        };
        dev.read_in_flight = false;
        let (user_id, device_id) = (dev.user_id, dev.device_id);
        let own_sends = self.own_sends.get(&idx).map_or(&[][..], Vec::as_slice);
        let durable_seq = self
            .users
            .get(&user_id)
            .map_or(inbox_head, |u| u.durable_head.max(inbox_head));
        let mut queued = 0u64;
        for (seq, record) in &page.entries {
            if *seq <= dev.sent_seq {
                continue;
            }
            if *seq != dev.sent_seq + 1 {
                // Inbox seqs are dense from 1 (the writer asserts it before each batch):
                // only a damaged database has a gap. Log it and stop this page.
                debug_assert!(
                    false,
                    "user {user_id}: inbox gap after seq {} (found {seq})",
                    dev.sent_seq
                );
                tracing::error!("user {user_id}: inbox gap after seq {} (found {seq})", dev.sent_seq);
                break;
            }
            match decode_record(*seq, record) {
                Ok(d)
                    if d.sender == user_id && d.sender_device == device_id && own_sends.contains(&d.client_msg_id) =>
                {
                    // Sent on this connection: its SendAck stands for it.
                }
                Ok(d) => {
                    let d = Deliver { durable_seq, ..d };
                    self.encoder.encode_into(0, &Message::Deliver(d), &mut conn.outbound);
                }
                Err(e) => {
                    tracing::error!("user {user_id} inbox seq {seq}: {e}; skipping it");
                }
            }
            dev.sent_seq = *seq;
            queued += 1;
        }
        let head = self
            .users
            .get(&user_id)
            .map_or(inbox_head, |u| u.committed_head.max(inbox_head));
        if !page.more && dev.sent_seq >= head {
            dev.mode = DeliveryMode::Live;
            self.own_sends.remove(&idx);
        }
        let metrics = &self.shared.metrics;
        metrics.delivered_catch_up.fetch_add(queued, Ordering::Relaxed);
        metrics.frames_out_by_type[crate::metrics::DELIVER_INDEX].fetch_add(queued, Ordering::Relaxed);
        conn.mark_dirty(idx, &mut self.dirty);
        // The flush pumps the next page once there is room.
    }

    /// Records a device's ack. A confirmed ack (with a request id) is stored right away and
    /// answered with `AckOk` once durable; a plain one is stored by the next sweep.
    pub(crate) fn ack(&mut self, idx: usize, request_id: u64, up_to_seq: u64) {
        let conn = &mut self.conns[idx];
        let ConnState::LoggedIn(dev) = &mut conn.state else {
            return;
        };
        let head = self.users.get(&dev.user_id).map_or(0, |u| u.committed_head);
        if up_to_seq > head {
            let text = "Ack beyond the inbox head";
            return self.push_error(idx, request_id, ErrorCode::InvalidRequest, text);
        }
        if up_to_seq > dev.cursor {
            dev.cursor = up_to_seq;
        }
        if request_id == 0 {
            // Fire and forget: stored once it is due (or at the disconnect), so a device
            // acking every read costs one write per `CURSOR_STORE_DELAY_MS`, not one per Ack.
            if !dev.cursor_queued && dev.cursor > dev.cursor_stored {
                dev.cursor_queued = true;
                let generation = conn.generation;
                let due = self.now_ms() + CURSOR_STORE_DELAY_MS;
                self.cursor_due.push_back((due, idx, generation));
            }
            return;
        }
        if dev.cursor_writing.is_none() && storage_has(dev) {
            let cursor = dev.cursor;
            return self.push(idx, request_id, &Message::AckOk(AckOk { device_cursor: cursor }));
        }
        if dev.ack_waiters.len() >= ACK_WAITERS_MAX {
            return self.push_error(idx, request_id, ErrorCode::Overloaded, "too many Acks waiting");
        }
        dev.ack_waiters.push((request_id, dev.cursor));
        self.write_cursor(idx);
    }

    /// Stores the cursors whose plain `Ack`s came due (at most
    /// [`CURSOR_WRITES_PER_TICK_MAX`] per call). Returns how many it looked at.
    pub(crate) fn write_due_cursors(&mut self) -> usize {
        let now = self.now_ms();
        let mut handled = 0;
        while handled < CURSOR_WRITES_PER_TICK_MAX {
            match self.cursor_due.front() {
                Some(&(due, _, _)) if due <= now => {}
                _ => break,
            }
            let Some((_, idx, generation)) = self.cursor_due.pop_front() else {
                break;
            };
            handled += 1;
            let Some(conn) = self.conns.get_mut(idx).filter(|c| c.generation == generation) else {
                continue; // Gone: its disconnect stored the cursor.
            };
            if let Some(dev) = conn.device() {
                dev.cursor_queued = false;
                self.write_cursor(idx);
            }
        }
        handled
    }

    /// Submits the device's cursor if it moved past what is stored and no write is out.
    pub(crate) fn write_cursor(&mut self, idx: usize) {
        let reply = self.internal_reply(idx);
        let conn = &mut self.conns[idx];
        let ConnState::LoggedIn(dev) = &mut conn.state else {
            return;
        };
        if dev.cursor_writing.is_some() || storage_has(dev) {
            return;
        }
        let request = WriteRequest {
            reply: Some(reply),
            op: WriteOp::SetCursor {
                user_id: dev.user_id,
                device_id: dev.device_id,
                seq: dev.cursor,
            },
        };
        if self.shared.writer.submit_local(request).is_ok() {
            self.committer.want();
            dev.cursor_writing = Some(dev.cursor);
            self.outstanding += 1;
        }
        // A full writer queue: the sweeper retries.
    }

    fn on_cursor_stored(&mut self, idx: usize, seq: u64) {
        let conn = &mut self.conns[idx];
        let ConnState::LoggedIn(dev) = &mut conn.state else {
            return;
        };
        dev.cursor_writing = None;
        dev.cursor_stored = dev.cursor_stored.max(seq);
        let mut ready = Vec::new();
        dev.ack_waiters.retain(|&(rid, target)| {
            if target <= seq {
                ready.push(rid);
                false
            } else {
                true
            }
        });
        for rid in ready {
            self.push(idx, rid, &Message::AckOk(AckOk { device_cursor: seq }));
        }
        self.write_cursor(idx);
    }

    /// Periodic duties: idle and login timeouts, pings, stalled catch-ups and cursor writes.
    pub(crate) fn sweep(&mut self) {
        let now = self.now_ms();
        self.sweep_admission(now);
        let idle_ms = u64::from(self.shared.config.idle_timeout_ms);
        let login_ms = u64::from(self.shared.config.login_timeout_ms);
        let indices: Vec<usize> = self.conns.iter().map(|(i, _)| i).collect();
        let (mut queued_bytes, mut queued_bytes_max) = (0, 0);
        for idx in indices {
            let conn = &mut self.conns[idx];
            let unsent = conn.unsent() as u64;
            queued_bytes += unsent;
            queued_bytes_max = unsent.max(queued_bytes_max);
            if conn.closing {
                if now.saturating_sub(conn.closing_since_ms) > CLOSE_LINGER_MS {
                    // The peer is not reading: give up on the rest.
                    conn.outbound.clear();
                    conn.outbound_sent = 0;
                    if let Some(layer) = conn.layer.as_mut() {
                        layer.discard_pending();
                    }
                    conn.write_blocked = false;
                    self.wake(idx);
                }
                continue;
            }
            if unsent == 0 && conn.outbound.capacity() > 0 {
                // The buffer a flush kept warm goes back once a sweep finds it empty: an
                // idle connection holds no write memory (a busy one allocates it again, at
                // most once per sweep).
                conn.outbound = Vec::new();
                conn.outbound_sent = 0;
            }
            let logged_in = matches!(conn.state, ConnState::LoggedIn(_));
            if !logged_in && now.saturating_sub(conn.accepted_ms) > login_ms {
                self.close_with_error(idx, ErrorCode::IdleTimeout, "login timeout");
                continue;
            }
            let idle = now.saturating_sub(conn.last_rx_ms);
            if idle >= idle_ms {
                self.close_with_error(idx, ErrorCode::IdleTimeout, "idle timeout");
                continue;
            }
            if idle >= idle_ms / 2 && !conn.ping_sent {
                conn.ping_sent = true;
                self.push(idx, 0, &Message::Ping(Ping { nonce: now }));
            }
            if logged_in {
                self.pump_catch_up(idx);
                // A cursor whose write could not be queued before (a full writer queue); a
                // queued one is stored when due, not here, so a sweep issues no burst.
                if !self.conns[idx].device().is_some_and(|d| d.cursor_queued) {
                    self.write_cursor(idx);
                }
            }
        }
        let metrics = &self.shared.metrics;
        metrics.outbound_queued_bytes_by_core[self.id].store(queued_bytes, Ordering::Relaxed);
        metrics.outbound_queued_bytes_max_by_core[self.id].store(queued_bytes_max, Ordering::Relaxed);
        self.publish_pending_presence();
        self.advance_durable();
        self.announce_durable();
        self.flush_dirty();
    }
}

/// Whether storage already holds the device's cursor (nothing to write).
fn storage_has(dev: &DeviceSession) -> bool {
    dev.cursor <= dev.cursor_stored
}
