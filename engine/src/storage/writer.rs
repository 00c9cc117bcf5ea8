//! The log writer: the one sequencer of the database. It sequences and group-commits.
//!
//! Cores (and helpers) submit [`WriteRequest`]s to one bounded queue. Whoever runs the next
//! group commit drains up to [`BATCH_REQUESTS_MAX`] of them, applies them to a single
//! RocksDB `WriteBatch`, and commits it with one write (and, under `sync` durability, one
//! fsync): everything that queued while the previous fsync ran shares the next one. Only
//! then does it tell the cores, in commit order.
//!
//! Who runs a commit (inline commits, the default): one token ([`LogWriter`]'s `busy`)
//! says who may touch the writer's state, and its holder runs commits until the queue is
//! empty. A core queues its connections' writes without waking anyone and, at the end of
//! its event-loop turn, takes the token if it is free and runs the commit itself
//! ([`LogWriter::commit_inline`]): a message costs no wake-up of a writer thread, and a
//! delivery to a user of the same core no wake-up at all. Under `sync` the core only
//! writes (RocksDB makes the write visible before its fsync) and pushes the deliveries;
//! it hands the fsync, and the token, to the writer thread, which answers and then runs the
//! commits of whatever queued meanwhile, so under load the thread keeps the token and the
//! cores just queue. The writer thread also runs the writes of other threads (helpers,
//! the admin socket, the integration API) and whatever a core leaves over. A core never
//! fsyncs, and never waits for a mailbox: an inline commit is sized to fit in every
//! mailbox ([`inline_requests_max`]). What a core does block on is RocksDB's write itself
//! (the WAL `write` into the page cache and the memtable inserts, microseconds), the
//! writer's reads (a bloom-filtered dedup lookup per message, first-use reads of counters
//! and conversation state), and a write stall; the
//! other cores go on meanwhile (they find the token taken and leave their writes to its
//! holder). `--inline-commits off` keeps every commit on the writer thread.
//!
//! Why the writer, not each user's home core (which owns the rest of its users' state),
//! assigns inbox seqs: a direct message touches two inboxes that usually live on two cores.
//! Assigning both seqs here puts the recipient's copy, the sender's copy and the dedup
//! entry in one atomic batch, so a crash or a failed write can never leave a half-sent
//! message, a seq gap, or a dedup entry without its message; commits per user are in seq
//! order by construction; and a retried send is detected exactly, across restarts, by one
//! bloom-filtered lookup. Delivery still crosses at most one core boundary: the sender's core
//! commits and pushes to the recipient's home core.
//!
//! Groups and conversations (see [`conversations`]) are sequenced here too: the writer owns
//! group membership (a cache over the `groups`/`members` families), so the membership check
//! of a group send and its fan-out into every member's inbox happen in one step, with no
//! membership change in between: a member removed by an earlier request never gets a later
//! message. Group messages are written *on write* into each member's inbox (see
//! docs/architecture.md, "Groups: fan-out on write").
//!
//! Invariants:
//! - Counters (inbox heads, last device ids, next user id, next message id, next group id)
//!   and cached state (membership, conversation states, settings) change only when the batch
//!   that used them committed; a failed batch leaves them as they were, so seqs stay dense
//!   and the failed requests can be retried.
//! - Completions for one user are pushed in seq order, so each home core sees its users'
//!   inboxes grow one seq at a time. A group message reaches each core as one completion
//!   listing that core's members, not one per member.
//!
//! Early delivery (under `sync` durability, unless `--early-delivery off`): a group commit
//! is written without its fsync, its deliveries (`Committed`, `Fanout`) are pushed at once,
//! tagged with the commit's number, then the WAL is fsynced and only then go the replies
//! (`SendAck` and every other `Written`), the notices, and the sender's own copy (for its
//! other devices; it rides with the `SendAck`, so the sender's core wakes once). A core knows a delivery is durable
//! once [`Watermark::synced`] reaches its tag, and says so to the device
//! (`Deliver.durable_seq`, `Durable`). The next commit starts only after this one synced
//! (whoever wrote it, the token passes on only after its fsync and replies),
//! so every commit before the one being applied is durable (a dedup hit answers a durable
//! message). A failed fsync leaves entries visible that may not be durable: the writer
//! refuses every later request (`StorageUnavailable`) until a restart recovers the log.

mod accounts;
mod conversations;
mod messages;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use crossbeam_queue::ArrayQueue;
use hotline_wire::{Conversation, ErrorCode, GroupRole, MessageKind, Persistence, ReadPosition, SendAck, SendFlags};
use rocksdb::{WriteBatch, WriteOptions};

use super::watermark::Watermark;
use super::{
    Cf, ConvState, Durability, IdMap, IdSet, MessageOrigin, Refusal, Storage, StorageError, META_MESSAGE_ID_HWM,
};
use crate::limits::GROUP_MEMBERS_MAX_DEFAULT;
use crate::mailbox::{Completion, Mailbox, Notice, ReplyTo, COMPLETION_QUEUE_ITEMS_MAX};
use conversations::{GroupState, ScanState};

/// Most group commits a core runs in one [`LogWriter::commit_inline`] call before it
/// leaves the rest of the queue to the writer thread (a core has connections to serve).
pub const INLINE_COMMITS_MAX: usize = 2;
/// Most requests in one inline commit, whatever the core count.
pub const INLINE_BATCH_REQUESTS_MAX: usize = 1_024;

/// Most requests in one inline commit with `cores` cores: a request pushes at most
/// `cores + 2` completions (a group message one per core and its reply; a direct one two
/// copies and a reply) and a commit one notice list per core, and an inline commit only
/// starts while every mailbox has room for that ([`WriterState::mailboxes_have_room`]), so
/// a core never waits on a full mailbox, its own included.
fn inline_requests_max(cores: usize) -> usize {
    let room = COMPLETION_QUEUE_ITEMS_MAX / 2 - cores;
    (room / (cores + 2)).clamp(1, INLINE_BATCH_REQUESTS_MAX)
}

/// Most requests queued for the writer; a full queue makes submitters shed (`Overloaded`).
pub const WRITE_QUEUE_REQUESTS_MAX: usize = 65_536;
/// Most of the queue that client writes (`Send`s and conversation requests) may fill
/// ([`LogWriter::submit_client`]); the rest stays for logins, cursors and the server's own
/// writes, so an overloaded server still lets users in and drains.
pub const WRITE_QUEUE_CLIENT_REQUESTS_MAX: usize = WRITE_QUEUE_REQUESTS_MAX / 4 * 3;
/// Most requests in one group commit.
pub const BATCH_REQUESTS_MAX: usize = 4_096;
/// Most payload bytes in one group commit (a batch stops growing past this).
pub const BATCH_PAYLOAD_BYTES_MAX: usize = 8 << 20;
/// The least a message counts against [`BATCH_PAYLOAD_BYTES_MAX`] per inbox copy (its
/// record header and conversation state), so a huge group's fan-out ends a batch.
const RECORD_COST_BYTES_MIN: usize = 128;
/// Under `async` durability, how often the WAL is fsynced in the background.
pub const ASYNC_WAL_SYNC_INTERVAL_MS: u64 = 10;
/// Fault injection for the power-loss test (`tests/tests/power_loss.rs`): the path of a
/// file that, while it exists, holds each early-delivery fsync (deliveries go out, the
/// fsync waits), so the test can cut the power between them. Read once at start; unset in
/// production, where it costs one branch per group commit.
pub const FAULT_HOLD_FSYNC_ENV: &str = "HOTLINE_FAULT_HOLD_FSYNC";
/// Longest an injected hold lasts, so a test that forgets its file cannot wedge a server.
const FAULT_HOLD_FSYNC_MS_MAX: u64 = 60_000;
/// While writes keep failing, at most one error line per this interval (with the count of
/// failures since the last one), so a read-only disk under load does not flood the log.
pub const STORAGE_ERROR_LOG_INTERVAL_MS: u64 = 10_000;

/// Most inbox entries one receipt or expiry scan reads (the rest waits for the next
/// cursor move); bounds the writer's work per request.
pub const SCAN_ENTRIES_MAX: usize = 4_096;
/// Most entries in each of the writer's caches (conversation states, settings, groups,
/// scan positions); a full cache is emptied between batches and reloads from storage.
pub const CACHE_ENTRIES_MAX: usize = 1 << 20;

/// How long after a user's first conversation change not yet stored the writer stores its
/// changed states (the storage module docs say why they wait): a user that keeps chatting
/// has them stored about this often, not once per message.
pub const CONV_STATES_STORE_DELAY_MS: u64 = 10_000;
/// Most users whose conversation states one group commit stores because they came due.
pub const CONV_STATES_STORES_PER_COMMIT_MAX: usize = 256;

const _: () = assert!(BATCH_REQUESTS_MAX <= WRITE_QUEUE_REQUESTS_MAX);
/// The reserved share must hold at least one batch of cursor writes and logins.
const _: () = assert!(WRITE_QUEUE_REQUESTS_MAX - WRITE_QUEUE_CLIENT_REQUESTS_MAX >= BATCH_REQUESTS_MAX);

/// A mutation.
#[derive(Debug)]
pub enum WriteOp {
    /// Append a message to the recipient's and the sender's inbox, or (`group` non-zero) to
    /// every member's. Ephemeral conversations are only pushed, never written.
    Append {
        sender: u64,
        sender_device: u64,
        to: u64,
        group: u64,
        client_msg_id: u64,
        flags: SendFlags,
        kind: MessageKind,
        refers_to: u64,
        payload: Bytes,
    },
    CreateGroup {
        owner: u64,
        name: String,
        persistence: Persistence,
    },
    /// Add `user` to `group` with `role` (or change its role), as `actor`.
    AddMember {
        actor: u64,
        group: u64,
        user: u64,
        role: GroupRole,
    },
    /// Remove `user` from `group` as `actor` (`user == actor`: leave).
    RemoveMember {
        actor: u64,
        group: u64,
        user: u64,
    },
    SetPersistence {
        actor: u64,
        conversation: Conversation,
        persistence: Persistence,
    },
    /// Move `user`'s read position in `conversation` to the entry at `seq`.
    MarkRead {
        user: u64,
        conversation: Conversation,
        seq: u64,
    },
    /// Tell the conversation's other party or members that `user` is typing (nothing stored).
    Typing {
        user: u64,
        conversation: Conversation,
    },
    /// `user`'s last device went offline at `at_us`.
    LastSeen {
        user: u64,
        at_us: u64,
    },
    CreateUser {
        username: String,
        password_phc: String,
    },
    /// A new device for `user_id`, reachable with `token` (only its hash is stored).
    CreateDevice {
        user_id: u64,
        device_name: String,
        token: [u8; 32],
    },
    RevokeToken {
        token_hash: [u8; 32],
    },
    /// Replace `user_id`'s password (admin).
    SetPassword {
        user_id: u64,
        password_phc: String,
    },
    /// Store a device's delivered cursor. The device's home core submits only increasing
    /// values, one at a time, so the stored cursor never moves backwards.
    SetCursor {
        user_id: u64,
        device_id: u64,
        seq: u64,
    },
}

/// What a write request produced (its refusal is an `ErrorCode` beside it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// A message is durable (or was already: a deduplicated retry).
    Sent(SendAck),
    UserCreated {
        user_id: u64,
    },
    DeviceCreated {
        user_id: u64,
        device_id: u64,
        token: [u8; 32],
        token_hash: [u8; 32],
        inbox_head: u64,
    },
    TokenRevoked,
    CursorStored {
        user_id: u64,
        device_id: u64,
        seq: u64,
    },
    GroupCreated {
        group_id: u64,
    },
    /// A request with nothing to return succeeded.
    Done,
    /// A `MarkRead` moved (or kept) the read position.
    ReadPosition(ReadPosition),
}

/// A mutation and where its outcome goes (`None`: nobody waits, e.g. admin commands).
#[derive(Debug)]
pub struct WriteRequest {
    pub reply: Option<ReplyTo>,
    pub op: WriteOp,
}

/// Counters the writer keeps (read by metrics and benchmarks).
#[derive(Debug, Default)]
pub struct WriterStats {
    pub batches: AtomicU64,
    pub requests: AtomicU64,
    pub messages: AtomicU64,
    pub commit_micros_total: AtomicU64,
    pub failed_batches: AtomicU64,
    /// Failed group commits in a row, 0 once one succeeds: non-zero means the log is
    /// refusing writes now (full disk, read-only file system, I/O errors).
    pub failing_batches: AtomicU64,
    /// Microseconds per group commit (write, plus fsync under sync durability).
    pub commit_us: crate::histogram::Histogram,
    /// Requests per group commit.
    pub batch_requests: crate::histogram::Histogram,
}

impl WriterStats {
    /// Counts a finished group commit that started at `started`.
    fn record(&self, started: Instant, requests: u64, messages: u64) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(requests, Ordering::Relaxed);
        self.messages.fetch_add(messages, Ordering::Relaxed);
        let commit_us = started.elapsed().as_micros() as u64;
        self.commit_micros_total.fetch_add(commit_us, Ordering::Relaxed);
        self.commit_us.observe(commit_us);
        self.batch_requests.observe(requests);
    }
}

/// A group commit written under early delivery whose fsync is still to come.
#[derive(Debug)]
struct PendingSync {
    commit: u64,
    started: Instant,
    count: u64,
    messages: u64,
}

/// The submitting side of the writer, and the writer's state. Cheap to share (`Arc`).
///
/// Whoever holds the *token* (`busy`) runs group commits: the writer thread, or, with
/// inline commits, a core at the end of its event-loop turn ([`LogWriter::commit_inline`]).
/// A submitter that finds the token taken leaves its request queued: the holder looks at
/// the queue again after it lets the token go, so nothing is stranded.
pub struct LogWriter {
    /// Each request with when it was queued.
    queue: ArrayQueue<(Instant, WriteRequest)>,
    /// How long (µs) the oldest request of the latest batch taken had waited in `queue`; 0
    /// when the latest take found the queue empty. With `waiting_since_us`, what the
    /// cores' admission gates read ([`LogWriter::queue_delay_us`]).
    queue_delay_us: AtomicU64,
    /// Since when (µs after `clock_origin`) requests have waited in `queue` untaken; 0: none
    /// known to. Set by a submitter that finds it 0, reset by each take: so a writer stuck
    /// in a commit (a disk stall) shows as a growing delay before its next take.
    waiting_since_us: AtomicU64,
    clock_origin: Instant,
    /// The token: set while someone runs group commits.
    busy: AtomicBool,
    /// A core wrote a commit inline and handed its fsync (and the token) to the thread.
    handed: AtomicBool,
    /// Taken only by the token's holder, so never contended.
    state: Mutex<WriterState>,
    sleeping: AtomicBool,
    stop: AtomicBool,
    thread: std::sync::OnceLock<Thread>,
    pub stats: WriterStats,
    /// Which group commits are written and which synced.
    pub watermark: Watermark,
    /// This run's epoch ([`Storage::bump_epoch`]), told to every device at login.
    pub epoch: u64,
    /// Deliveries go out before their fsync (see the module docs).
    pub early_delivery: bool,
    /// Cores run group commits themselves (see the module docs).
    pub inline: bool,
    /// Most requests in one inline commit, so that its completions always fit in the
    /// cores' mailboxes (a core never waits on its own mailbox).
    inline_requests_max: usize,
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter")
            .field("depth", &self.queue.len())
            .field("busy", &self.busy.load(Ordering::Relaxed))
            .field("epoch", &self.epoch)
            .field("early_delivery", &self.early_delivery)
            .field("inline", &self.inline)
            .finish_non_exhaustive()
    }
}

impl LogWriter {
    /// Queues a request and wakes the writer thread, or gives the request back if the
    /// queue is full (the caller sheds). For threads other than the cores.
    pub fn submit(&self, request: WriteRequest) -> Result<(), WriteRequest> {
        self.enqueue(request)?;
        self.wake_thread();
        Ok(())
    }

    /// Queues a request stamped with the time, noting when the queue stopped being empty.
    fn enqueue(&self, request: WriteRequest) -> Result<(), WriteRequest> {
        let now = Instant::now();
        self.queue.push((now, request)).map_err(|(_, r)| r)?;
        if self.waiting_since_us.load(Ordering::Relaxed) == 0 {
            let since = (now.duration_since(self.clock_origin).as_micros() as u64).max(1);
            self.waiting_since_us.store(since, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Queues a request from a core. With inline commits nobody is woken: the core calls
    /// [`LogWriter::commit_inline`] once its turn's work is done, so one commit carries
    /// everything its connections asked for. Without, the same as [`LogWriter::submit`].
    pub fn submit_local(&self, request: WriteRequest) -> Result<(), WriteRequest> {
        if !self.inline {
            return self.submit(request);
        }
        self.enqueue(request)
    }

    /// [`LogWriter::submit_local`] for a client's write: refused (given back) once client
    /// writes fill [`WRITE_QUEUE_CLIENT_REQUESTS_MAX`] of the queue.
    pub fn submit_client(&self, request: WriteRequest) -> Result<(), WriteRequest> {
        if self.queue.len() >= WRITE_QUEUE_CLIENT_REQUESTS_MAX {
            return Err(request);
        }
        self.submit_local(request)
    }

    /// How long (µs) requests wait in the queue: the oldest of the latest batch taken had
    /// waited so long, and requests still queued have waited at least since the queue
    /// stopped being empty (an estimate: a take racing a submit may hide the second until
    /// the next take).
    pub fn queue_delay_us(&self) -> u64 {
        let taken = self.queue_delay_us.load(Ordering::Relaxed);
        let since = self.waiting_since_us.load(Ordering::Relaxed);
        if since == 0 {
            return taken;
        }
        let now = self.clock_origin.elapsed().as_micros() as u64;
        taken.max(now.saturating_sub(since))
    }

    /// Runs what is queued as group commits on the calling core, unless someone else holds
    /// the token (then the holder runs them). Bounded: at most [`INLINE_COMMITS_MAX`]
    /// commits per call, then the writer thread takes over what is left. Under early
    /// delivery the core writes the commit and pushes its deliveries, and the writer thread
    /// does the fsync (a core never blocks on one) and answers, keeping the token until
    /// the queue is empty, so commits stay in order: each one's fsync before the next.
    pub fn commit_inline(&self) {
        if !self.inline {
            return;
        }
        let mut commits = 0;
        while !self.queue.is_empty() && self.acquire() {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if commits == INLINE_COMMITS_MAX || !state.mailboxes_have_room(self.inline_requests_max) {
                drop(state);
                self.release_to_thread();
                return;
            }
            let mut requests = std::mem::take(&mut state.requests);
            self.take_batch(&mut state, &mut requests, self.inline_requests_max);
            let pending = state.commit(&mut requests, self);
            state.requests = requests;
            commits += 1;
            if let Some(pending) = pending {
                state.pending = Some(pending);
                drop(state);
                self.release_to_thread();
                return;
            }
            drop(state);
            self.release();
        }
        if self.queue.is_empty() {
            // Committed and nothing waits: no delay to report until the next request.
            self.queue_delay_us.store(0, Ordering::Relaxed);
        }
    }

    /// [`WriterState::take_batch`], publishing how long its oldest request waited.
    fn take_batch(&self, state: &mut WriterState, requests: &mut Vec<WriteRequest>, max: usize) {
        let waited_us = state
            .take_batch(&self.queue, requests, max)
            .map_or(0, |queued| queued.elapsed().as_micros() as u64);
        self.queue_delay_us.store(waited_us, Ordering::Relaxed);
        // What is left (a batch at its bound) waits from now on, as far as anyone knows.
        let since = if self.queue.is_empty() {
            0
        } else {
            (self.clock_origin.elapsed().as_micros() as u64).max(1)
        };
        self.waiting_since_us.store(since, Ordering::Relaxed);
    }

    /// Requests queued (a gauge).
    pub fn depth(&self) -> usize {
        self.queue.len()
    }

    /// Asks the writer to finish what is queued and exit.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }

    /// Takes the token if it is free.
    fn acquire(&self) -> bool {
        !self.busy.swap(true, Ordering::SeqCst)
    }

    /// Lets the token go. The caller then looks at the queue again: a request queued while
    /// it held the token found the token taken and left the work to it.
    fn release(&self) {
        self.busy.store(false, Ordering::SeqCst);
    }

    /// Hands the token (and any pending fsync) to the writer thread.
    fn release_to_thread(&self) {
        self.handed.store(true, Ordering::SeqCst);
        self.wake_thread();
    }

    fn wake_thread(&self) {
        if self.sleeping.swap(false, Ordering::SeqCst) {
            if let Some(t) = self.thread.get() {
                t.unpark();
            }
        }
    }

    /// The writer thread: finishes what a core handed over, and runs the commits of
    /// requests submitted by other threads (helpers, the admin socket, the integration API)
    /// or left over by a core.
    fn run(&self) {
        loop {
            if self.handed.swap(false, Ordering::SeqCst) {
                // The token is ours.
                self.drain_owned();
                self.release();
                continue;
            }
            if !self.queue.is_empty() && self.acquire() {
                self.drain_owned();
                self.release();
                continue;
            }
            if self.stop.load(Ordering::SeqCst) && self.queue.is_empty() && self.acquire() {
                // A clean stop leaves nothing for the next start to replay.
                let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                if let Err(e) = state.store_all_convs() {
                    tracing::warn!("storing conversation states at stop failed (the next start rebuilds them): {e}");
                }
                drop(state);
                self.release();
                return;
            }
            self.sleeping.store(true, Ordering::SeqCst);
            if self.queue.is_empty() && !self.handed.load(Ordering::SeqCst) && !self.stop.load(Ordering::SeqCst) {
                thread::park_timeout(Duration::from_millis(100));
            }
            self.sleeping.store(false, Ordering::SeqCst);
        }
    }

    /// With the token held on the writer thread: finishes a handed-over commit, then runs
    /// commits (fsync included) until the queue is empty.
    fn drain_owned(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(pending) = state.pending.take() {
            state.finish(pending, self);
        }
        let mut requests = std::mem::take(&mut state.requests);
        loop {
            self.take_batch(&mut state, &mut requests, BATCH_REQUESTS_MAX);
            if requests.is_empty() {
                break;
            }
            if let Some(pending) = state.commit(&mut requests, self) {
                state.finish(pending, self);
            }
        }
        state.requests = requests;
    }
}

/// Per-user counters the writer owns.
#[derive(Debug, Clone, Copy, Default)]
struct UserCounters {
    inbox_head: u64,
    /// Last device id, loaded on first need.
    device_last: Option<u64>,
    /// The inbox seq through which the user's stored conversation states are complete.
    convs_through: u64,
    /// Whether `convs_through` is stored (the user's first append stores it).
    convs_marked: bool,
}

/// How the writer runs.
#[derive(Debug, Clone, Copy)]
pub struct WriterSettings {
    pub durability: Durability,
    /// Under `sync`: push deliveries before the fsync (see the module docs).
    pub early_delivery: bool,
    /// Cores run group commits themselves (`async`, or `sync` with early delivery; see the
    /// module docs).
    pub inline_commits: bool,
    pub group_members_max: usize,
    /// [`CONV_STATES_STORE_DELAY_MS`] (tests shorten it).
    pub conv_states_store_delay_ms: u64,
}

impl WriterSettings {
    /// The defaults for `durability`: early delivery on, the default group size limit.
    pub fn new(durability: Durability) -> Self {
        Self {
            durability,
            early_delivery: true,
            inline_commits: true,
            group_members_max: GROUP_MEMBERS_MAX_DEFAULT,
            conv_states_store_delay_ms: CONV_STATES_STORE_DELAY_MS,
        }
    }
}

/// Starts the writer thread (and, under `async` durability, its WAL syncer).
pub fn spawn(
    storage: Arc<Storage>,
    mailboxes: Arc<[Mailbox]>,
    durability: Durability,
) -> Result<(Arc<LogWriter>, Vec<JoinHandle<()>>), StorageError> {
    spawn_with(storage, mailboxes, WriterSettings::new(durability))
}

/// [`spawn`] with settings other than the defaults. Bumps the stored epoch first.
pub fn spawn_with(
    storage: Arc<Storage>,
    mailboxes: Arc<[Mailbox]>,
    settings: WriterSettings,
) -> Result<(Arc<LogWriter>, Vec<JoinHandle<()>>), StorageError> {
    let durability = settings.durability;
    let early_delivery = settings.early_delivery && durability == Durability::Sync;
    // Without early delivery a `sync` commit fsyncs inside its write: never on a core.
    let inline = settings.inline_commits && (durability == Durability::Async || early_delivery);
    let epoch = storage.bump_epoch()?;
    let cores = mailboxes.len();
    let mut state = WriterState::load(storage.clone(), mailboxes, durability)?;
    state.group_members_max = settings.group_members_max;
    state.conv_states_store_delay_us = settings.conv_states_store_delay_ms * 1_000;
    state.early_delivery = early_delivery;
    let writer = Arc::new(LogWriter {
        queue: ArrayQueue::new(WRITE_QUEUE_REQUESTS_MAX),
        queue_delay_us: AtomicU64::new(0),
        waiting_since_us: AtomicU64::new(0),
        clock_origin: Instant::now(),
        busy: AtomicBool::new(false),
        handed: AtomicBool::new(false),
        state: Mutex::new(state),
        sleeping: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        thread: std::sync::OnceLock::new(),
        stats: WriterStats::default(),
        watermark: Watermark::default(),
        epoch,
        early_delivery,
        inline,
        inline_requests_max: inline_requests_max(cores),
    });
    let w = writer.clone();
    let handle = thread::Builder::new()
        .name("hotline-writer".into())
        .spawn(move || w.run())
        .map_err(|cause| StorageError::Spawn {
            thread: "log writer",
            cause,
        })?;
    let _ = writer.thread.set(handle.thread().clone());
    let mut handles = vec![handle];
    if durability == Durability::Async {
        let w = writer.clone();
        let syncer = thread::Builder::new()
            .name("hotline-walsync".into())
            .spawn(move || wal_syncer(&storage, &w))
            .map_err(|cause| StorageError::Spawn {
                thread: "WAL syncer",
                cause,
            })?;
        handles.push(syncer);
    }
    Ok((writer, handles))
}

fn wal_syncer(storage: &Storage, writer: &LogWriter) {
    let mut synced_batches = 0;
    let mut errors = ErrorLog::default();
    while !writer.stop.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(ASYNC_WAL_SYNC_INTERVAL_MS));
        let batches = writer.stats.batches.load(Ordering::Relaxed);
        if batches != synced_batches {
            match storage.db().flush_wal(true) {
                Ok(()) => errors.succeeded("background WAL fsyncs"),
                Err(e) => errors.failed(|repeats| tracing::warn!("background WAL fsync failed{repeats}: {e}")),
            }
            synced_batches = batches;
        }
    }
    let _ = storage.db().flush_wal(true);
}

/// Rate-limits the log lines of a failure that repeats (a disk that refuses every write):
/// the first failure logs at once, later ones at most every
/// [`STORAGE_ERROR_LOG_INTERVAL_MS`] with how many failed in between, and the first
/// success after failures says so.
#[derive(Debug, Default)]
struct ErrorLog {
    /// Failures since the last success.
    failing: u64,
    /// Failures not logged yet.
    unlogged: u64,
    last_logged: Option<Instant>,
}

impl ErrorLog {
    /// Counts a failure; calls `log` (with a ", N more since ..." note) when one is due.
    fn failed(&mut self, log: impl FnOnce(&str)) {
        self.failing += 1;
        self.unlogged += 1;
        let interval = Duration::from_millis(STORAGE_ERROR_LOG_INTERVAL_MS);
        if self.last_logged.is_some_and(|at| at.elapsed() < interval) {
            return;
        }
        let repeats = match self.unlogged {
            1 => String::new(),
            n => format!(" ({} more since the last report, {} in a row)", n - 1, self.failing),
        };
        log(&repeats);
        self.unlogged = 0;
        self.last_logged = Some(Instant::now());
    }

    /// A success: ends a run of failures (and says so if there was one).
    fn succeeded(&mut self, what: &str) {
        if self.failing > 0 {
            tracing::info!("{what} succeed again after {} failures", self.failing);
        }
        *self = ErrorLog::default();
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Message ids: microsecond timestamp in the high bits, so they sort by time, made strictly
/// increasing across the process and across restarts by the stored high-water mark.
fn message_id_floor(now_us: u64) -> u64 {
    now_us << 8
}

struct WriterState {
    storage: Arc<Storage>,
    mailboxes: Arc<[Mailbox]>,
    cores: usize,
    sync: bool,
    /// Deliveries are pushed before the fsync (sync durability only).
    early_delivery: bool,
    /// The number of the last group commit (see [`Watermark`]).
    commits: u64,
    /// What this batch's deliveries are tagged with: its commit number under early
    /// delivery (durable once synced), 0 otherwise (durable when pushed).
    batch_tag: u64,
    /// An fsync failed after its batch was visible: every later request is refused.
    sync_failed: bool,
    /// [`FAULT_HOLD_FSYNC_ENV`]'s file, if set.
    hold_fsync: Option<std::path::PathBuf>,
    /// Rate-limits the log lines of failing commits.
    commit_errors: ErrorLog,
    users: IdMap<u64, UserCounters>,
    next_user_id: u64,
    next_message_id: u64,
    // Per-batch overlays: applied on commit, dropped on failure.
    batch_users: IdMap<u64, UserCounters>,
    batch_usernames: HashSet<String>,
    batch_dedup: HashMap<(u64, u64), SendAck>,
    batch_next_user_id: u64,
    batch_next_message_id: u64,
    out: Vec<(usize, Completion)>,
    /// This batch's replies (`Written`) and notices, and the deliveries that wait with
    /// them, held by [`Self::committed`] until [`Self::answer`].
    replies: Vec<(usize, Completion)>,
    /// Users with a delivery among `replies` in this batch (reused between batches).
    deferred_users: IdSet<u64>,
    record: Vec<u8>,
    group_members_max: usize,
    conv_states_store_delay_us: u64,
    next_group_id: u64,
    batch_next_group_id: u64,
    /// Group membership, loaded on first use; `batch_groups` holds this batch's changes.
    groups: IdMap<u64, Arc<GroupState>>,
    batch_groups: IdMap<u64, Arc<GroupState>>,
    /// Per (user, conversation) state; `batch_convs` holds this batch's changes.
    convs: IdMap<(u64, Conversation), ConvState>,
    batch_convs: IdMap<(u64, Conversation), ConvState>,
    /// Conversation states changed past each user's stored mark and not yet stored (all
    /// of them held in `convs`), with when each user comes due; this batch's additions,
    /// the states it must store at once (read positions) and the users it stores.
    unstored: IdMap<u64, IdSet<Conversation>>,
    unstored_due: VecDeque<(u64, u64)>,
    batch_unstored: Vec<(u64, Conversation)>,
    batch_conv_puts: IdSet<(u64, Conversation)>,
    batch_convs_stored: Vec<u64>,
    /// Direct conversations' persistence by (lower, higher) user id.
    settings: IdMap<(u64, u64), Persistence>,
    batch_settings: IdMap<(u64, u64), Persistence>,
    /// Messages written in this batch, for Edits and Deletes of them in the same batch.
    batch_messages: IdMap<u64, MessageOrigin>,
    /// Device cursors and scan positions per user (cleared when a batch fails).
    scans: IdMap<u64, ScanState>,
    /// Notices for each core, pushed after the commit (one completion per core).
    notices: Vec<Vec<Notice>>,
    /// The batch being taken from the queue (reused between batches).
    requests: Vec<WriteRequest>,
    /// A commit a core wrote inline whose fsync the writer thread is to do.
    pending: Option<PendingSync>,
}

impl WriterState {
    fn load(storage: Arc<Storage>, mailboxes: Arc<[Mailbox]>, durability: Durability) -> Result<Self, StorageError> {
        let next_user_id = storage.max_user_id()? + 1;
        let next_group_id = storage.max_group_id()? + 1;
        let hwm = storage.meta_u64(META_MESSAGE_ID_HWM)?.unwrap_or(0);
        let next_message_id = (hwm + 1).max(message_id_floor(now_us()));
        let cores = mailboxes.len();
        Ok(Self {
            storage,
            mailboxes,
            cores,
            sync: durability == Durability::Sync,
            early_delivery: false,
            commits: 0,
            batch_tag: 0,
            sync_failed: false,
            hold_fsync: std::env::var_os(FAULT_HOLD_FSYNC_ENV).map(Into::into),
            commit_errors: ErrorLog::default(),
            users: IdMap::default(),
            next_user_id,
            next_message_id,
            batch_users: IdMap::default(),
            batch_usernames: HashSet::new(),
            batch_dedup: HashMap::new(),
            batch_next_user_id: next_user_id,
            batch_next_message_id: next_message_id,
            out: Vec::new(),
            replies: Vec::new(),
            deferred_users: IdSet::default(),
            record: Vec::with_capacity(1024),
            group_members_max: GROUP_MEMBERS_MAX_DEFAULT,
            conv_states_store_delay_us: CONV_STATES_STORE_DELAY_MS * 1_000,
            next_group_id,
            batch_next_group_id: next_group_id,
            groups: IdMap::default(),
            batch_groups: IdMap::default(),
            convs: IdMap::default(),
            batch_convs: IdMap::default(),
            unstored: IdMap::default(),
            unstored_due: VecDeque::new(),
            batch_unstored: Vec::new(),
            batch_conv_puts: IdSet::default(),
            batch_convs_stored: Vec::new(),
            settings: IdMap::default(),
            batch_settings: IdMap::default(),
            batch_messages: IdMap::default(),
            scans: IdMap::default(),
            notices: (0..cores).map(|_| Vec::new()).collect(),
            requests: Vec::with_capacity(BATCH_REQUESTS_MAX),
            pending: None,
        })
    }

    /// Moves queued requests into `requests` (empty on entry), at most `max` of them and
    /// about [`BATCH_PAYLOAD_BYTES_MAX`] of payload.
    /// Moves up to `max` requests (and [`BATCH_PAYLOAD_BYTES_MAX`]) from `queue` into
    /// `requests`; returns when the first of them was queued, if any.
    fn take_batch(
        &mut self,
        queue: &ArrayQueue<(Instant, WriteRequest)>,
        requests: &mut Vec<WriteRequest>,
        max: usize,
    ) -> Option<Instant> {
        let mut payload_bytes = 0usize;
        let mut oldest = None;
        while requests.len() < max && payload_bytes < BATCH_PAYLOAD_BYTES_MAX {
            let Some((queued, r)) = queue.pop() else { break };
            oldest.get_or_insert(queued);
            if let WriteOp::Append { payload, group, .. } = &r.op {
                // A group message is written once per member (its payload once, but a
                // record per member): count it as that many so the batch stays bounded.
                let copies = self.groups.get(group).map_or(1, |g| g.members.len().max(1));
                payload_bytes += payload.len().max(RECORD_COST_BYTES_MIN) * copies;
            }
            requests.push(r);
        }
        oldest
    }

    /// Whether every core's mailbox has room for all an inline commit of `requests`
    /// requests can push (see [`inline_requests_max`]).
    fn mailboxes_have_room(&self, requests: usize) -> bool {
        let needed = requests * (self.cores + 2) + self.cores;
        self.mailboxes
            .iter()
            .all(|m| m.completions_len() + needed <= COMPLETION_QUEUE_ITEMS_MAX)
    }

    /// Applies `requests` as one batch and writes it. Its deliveries go to the cores at
    /// once; its replies and notices too unless its fsync is still to come (early
    /// delivery): then the returned [`PendingSync`] goes to [`Self::finish`], before the
    /// next commit.
    fn commit(&mut self, requests: &mut Vec<WriteRequest>, handle: &LogWriter) -> Option<PendingSync> {
        let started = Instant::now();
        let count = requests.len() as u64;
        if self.sync_failed {
            for request in requests.drain(..) {
                self.refuse(request.reply, ErrorCode::StorageUnavailable);
            }
            handle.stats.failed_batches.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.commits += 1;
        let commit = self.commits;
        self.batch_tag = if self.early_delivery { commit } else { 0 };
        let mut batch = WriteBatch::default();
        let mut messages = self.apply_all(requests, &mut batch);
        self.put_convs(&mut batch, now_us());
        self.debug_assert_seqs_dense();
        let batch_was_empty = batch.is_empty();
        handle.watermark.writing(commit);
        let mut pending = None;
        match self.write(batch) {
            Ok(()) => {
                if !batch_was_empty {
                    self.commit_errors.succeeded("group commits");
                    handle.stats.failing_batches.store(0, Ordering::Relaxed);
                }
                self.committed();
                if self.early_delivery && !batch_was_empty {
                    pending = Some(PendingSync {
                        commit,
                        started,
                        count,
                        messages,
                    });
                } else {
                    handle.watermark.synced_through(commit);
                    self.answer(true);
                }
            }
            Err(e) => {
                // Nothing of it is visible: no reader waits for it.
                handle.watermark.synced_through(commit);
                self.commit_errors.failed(|repeats| {
                    tracing::error!("group commit of {count} requests failed, none acknowledged{repeats}: {e}")
                });
                handle.stats.failed_batches.fetch_add(1, Ordering::Relaxed);
                handle.stats.failing_batches.fetch_add(1, Ordering::Relaxed);
                self.discarded();
                messages = 0;
            }
        }
        self.batch_usernames.clear();
        self.batch_dedup.clear();
        self.batch_messages.clear();
        self.bound_caches();
        if pending.is_none() {
            handle.stats.record(started, count, messages);
        }
        pending
    }

    /// Fsyncs a commit written under early delivery and answers its requesters.
    fn finish(&mut self, pending: PendingSync, handle: &LogWriter) {
        let synced = self.sync_wal(handle);
        if synced {
            handle.watermark.synced_through(pending.commit);
        }
        self.answer(synced);
        handle.stats.record(pending.started, pending.count, pending.messages);
    }

    /// Under early delivery, fsyncs the WAL the batch was written to (and with it every
    /// earlier batch). A failure leaves the batch visible but perhaps not durable: from
    /// then on the writer refuses everything (see the module docs).
    fn sync_wal(&mut self, handle: &LogWriter) -> bool {
        if let Some(hold) = &self.hold_fsync {
            let until = Instant::now() + Duration::from_millis(FAULT_HOLD_FSYNC_MS_MAX);
            while hold.exists() && Instant::now() < until {
                thread::sleep(Duration::from_millis(1));
            }
        }
        match self.storage.db().flush_wal(true) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(
                    "the log's fsync failed after a group commit was written: {e}; every write is refused \
                     until hotline restarts and recovers the log (nothing acknowledged is lost: that \
                     commit's requests were refused)"
                );
                self.sync_failed = true;
                handle.watermark.fail();
                handle.stats.failed_batches.fetch_add(1, Ordering::Relaxed);
                handle.stats.failing_batches.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Applies each request to `batch` (a refused one leaves no trace in it and is answered
    /// at once; the rest of the batch goes on). Returns how many messages it holds.
    fn apply_all(&mut self, requests: &mut Vec<WriteRequest>, batch: &mut WriteBatch) -> u64 {
        let timestamp_us = now_us();
        self.batch_next_message_id = self.next_message_id.max(message_id_floor(timestamp_us));
        self.batch_next_user_id = self.next_user_id;
        self.batch_next_group_id = self.next_group_id;
        let mut messages = 0u64;
        for request in requests.drain(..) {
            let reply = request.reply;
            let is_message = matches!(request.op, WriteOp::Append { .. });
            match self.apply(request, batch, timestamp_us) {
                Ok(()) => messages += u64::from(is_message),
                Err(refusal) => {
                    let code = refusal.into_code("a storage read while applying a write");
                    self.refuse(reply, code);
                }
            }
        }
        messages
    }

    /// Writes the batch (with the message id high-water mark) in one RocksDB write, fsynced
    /// under `sync` durability unless deliveries go first (then [`Self::sync_wal`] follows);
    /// an empty batch writes nothing.
    fn write(&self, mut batch: WriteBatch) -> Result<(), rocksdb::Error> {
        if batch.is_empty() {
            return Ok(());
        }
        batch.put_cf(
            self.storage.cf(Cf::Meta),
            META_MESSAGE_ID_HWM,
            (self.batch_next_message_id - 1).to_le_bytes(),
        );
        let mut opts = WriteOptions::default();
        opts.set_sync(self.sync && !self.early_delivery);
        self.storage.db().write_opt(batch, &opts)
    }

    /// The batch is written (visible to readers): its overlays become the writer's state,
    /// and its deliveries go to the cores, in commit order. Replies and notices wait in
    /// `out` for [`Self::answer`].
    fn committed(&mut self) {
        for (user, counters) in self.batch_users.drain() {
            self.users.insert(user, counters);
        }
        self.next_user_id = self.batch_next_user_id;
        self.next_message_id = self.batch_next_message_id;
        self.next_group_id = self.batch_next_group_id;
        self.groups.extend(self.batch_groups.drain());
        self.convs.extend(self.batch_convs.drain());
        self.convs_committed();
        self.settings.extend(self.batch_settings.drain());
        // A sender's own copy waits for its SendAck (it is for the sender's other devices,
        // which need no head start), so the sender's core wakes once per commit, not twice;
        // every later completion of a user so deferred waits too, keeping each user's
        // completions in seq order.
        let mut out = std::mem::take(&mut self.out);
        self.deferred_users.clear();
        for (core, completion) in out.drain(..) {
            let defer = match &completion {
                Completion::Committed { user_id, origin, .. } => {
                    origin.is_some() || self.deferred_users.contains(user_id)
                }
                Completion::Fanout { entries, .. } => {
                    entries.iter().any(|(user_id, _)| self.deferred_users.contains(user_id))
                }
                _ => true,
            };
            match (&completion, defer) {
                (Completion::Committed { user_id, .. }, true) => {
                    self.deferred_users.insert(*user_id);
                }
                (Completion::Fanout { entries, .. }, true) => {
                    self.deferred_users.extend(entries.iter().map(|&(user_id, _)| user_id));
                }
                _ => {}
            }
            if defer {
                self.replies.push((core, completion));
            } else {
                self.mailboxes[core].push_completion(completion);
            }
        }
        self.out = out;
    }

    /// The batch is durable (`durable`), or its fsync failed: the replies go out, as
    /// written or as `StorageUnavailable`, and the notices with them (or not at all). The
    /// deliveries held back with the replies go out either way: their entries are written
    /// (visible) and their commit tag keeps them tentative; dropping them would leave a gap
    /// in their users' live streams.
    fn answer(&mut self, durable: bool) {
        if !durable {
            self.notices.iter_mut().for_each(Vec::clear);
        }
        for (core, completion) in self.replies.drain(..) {
            let completion = match completion {
                Completion::Written { reply, .. } if !durable => Completion::Written {
                    reply,
                    outcome: Err(ErrorCode::StorageUnavailable),
                },
                completion => completion,
            };
            self.mailboxes[core].push_completion(completion);
        }
        for (core, notices) in self.notices.iter_mut().enumerate() {
            if !notices.is_empty() {
                let notices = std::mem::take(notices);
                self.mailboxes[core].push_completion(Completion::Notices(notices));
            }
        }
    }

    /// The batch failed: its overlays are dropped (so seqs stay dense) and only the
    /// requesters hear, with `StorageUnavailable`; nothing reached an inbox, so they may retry.
    fn discarded(&mut self) {
        self.batch_users.clear();
        self.batch_groups.clear();
        self.batch_convs.clear();
        self.convs_discarded();
        self.batch_settings.clear();
        self.scans.clear();
        self.notices.iter_mut().for_each(Vec::clear);
        let out = std::mem::take(&mut self.out);
        self.refuse_requesters(out);
    }

    /// Answers every requester among `completions` with `StorageUnavailable` (nothing of
    /// theirs is acknowledged); the rest (deliveries not pushed, notices) is dropped.
    fn refuse_requesters(&mut self, completions: Vec<(usize, Completion)>) {
        for (_, completion) in completions {
            if let Completion::Written { reply, .. } = completion {
                self.refuse(Some(reply), ErrorCode::StorageUnavailable);
            }
        }
    }

    /// Before a batch goes in: each user's seqs taken in it are dense, continuing the
    /// committed head and ending at the batch's head, and each is announced once, in order
    /// (paired with the core's check that a live device gets `sent_seq + 1`).
    fn debug_assert_seqs_dense(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        let mut taken: HashMap<u64, Vec<u64>> = HashMap::new();
        for (_, completion) in &self.out {
            match completion {
                Completion::Committed { user_id, seq, .. } => taken.entry(*user_id).or_default().push(*seq),
                Completion::Fanout { entries, .. } => {
                    for &(user_id, seq) in entries.iter().filter(|(_, seq)| *seq != 0) {
                        taken.entry(user_id).or_default().push(seq);
                    }
                }
                _ => {}
            }
        }
        for (user, counters) in &self.batch_users {
            if let Some(committed) = self.users.get(user) {
                let announced = taken.get(user).map_or(0, Vec::len) as u64;
                debug_assert_eq!(
                    counters.inbox_head,
                    committed.inbox_head + announced,
                    "user {user}: every seq the batch took is announced"
                );
            }
        }
        for (user, seqs) in &taken {
            debug_assert!(
                seqs.windows(2).all(|w| w[1] == w[0] + 1),
                "user {user}: seqs {seqs:?} in one batch are not dense"
            );
            let head = self.batch_users.get(user).map(|c| c.inbox_head);
            debug_assert_eq!(
                head,
                seqs.last().copied(),
                "user {user}: the batch's head is its last seq"
            );
            if let Some(committed) = self.users.get(user) {
                debug_assert_eq!(
                    seqs.first().copied(),
                    Some(committed.inbox_head + 1),
                    "user {user}: the batch continues the committed head"
                );
            }
        }
    }

    fn refuse(&mut self, reply: Option<ReplyTo>, code: ErrorCode) {
        if let Some(reply) = reply {
            self.mailboxes[reply.core].push_completion(Completion::Written {
                reply,
                outcome: Err(code),
            });
        }
    }

    fn emit_written(&mut self, reply: Option<ReplyTo>, outcome: WriteOutcome) {
        if let Some(reply) = reply {
            self.out.push((
                reply.core,
                Completion::Written {
                    reply,
                    outcome: Ok(outcome),
                },
            ));
        }
    }

    /// The counters of an existing user, loading them on first use; `None` if no such user.
    fn counters(&mut self, user_id: u64) -> Result<Option<&mut UserCounters>, StorageError> {
        if user_id == 0 {
            return Ok(None);
        }
        if !self.batch_users.contains_key(&user_id) {
            let loaded = match self.users.get(&user_id) {
                Some(c) => *c,
                None => {
                    if !self.storage.user_exists(user_id)? {
                        return Ok(None);
                    }
                    let inbox_head = self.storage.inbox_head(user_id)?;
                    let through = self.storage.convs_through(user_id)?;
                    if let Some(through) = through {
                        self.replay_convs(user_id, through)?;
                    }
                    UserCounters {
                        inbox_head,
                        device_last: None,
                        convs_through: through.unwrap_or(inbox_head),
                        convs_marked: through.is_some(),
                    }
                }
            };
            self.batch_users.insert(user_id, loaded);
        }
        Ok(self.batch_users.get_mut(&user_id))
    }

    fn next_seq(&mut self, user_id: u64) -> Result<u64, Refusal> {
        let c = self.counters(user_id)?.ok_or(Refusal::Client(ErrorCode::NoSuchUser))?;
        c.inbox_head += 1;
        Ok(c.inbox_head)
    }

    /// Applies one request to the batch: one function per operation, each answering its
    /// requester through [`WriterState::emit_written`] or refusing with a [`Refusal`].
    fn apply(&mut self, request: WriteRequest, batch: &mut WriteBatch, timestamp_us: u64) -> Result<(), Refusal> {
        let reply = request.reply;
        let outcome = match request.op {
            WriteOp::Append {
                sender,
                sender_device,
                to,
                group,
                client_msg_id,
                flags,
                kind,
                refers_to,
                payload,
            } => {
                let append = messages::Append {
                    sender,
                    sender_device,
                    to,
                    group,
                    client_msg_id,
                    flags,
                    kind,
                    refers_to,
                    payload,
                };
                self.append(append, reply, batch, timestamp_us)?
            }
            WriteOp::CreateUser { username, password_phc } => {
                self.create_user(username, &password_phc, batch, timestamp_us)?
            }
            WriteOp::CreateDevice {
                user_id,
                device_name,
                token,
            } => self.create_device(user_id, &device_name, token, batch, timestamp_us)?,
            WriteOp::RevokeToken { token_hash } => self.revoke_token(token_hash, batch)?,
            WriteOp::SetPassword { user_id, password_phc } => self.set_password(user_id, &password_phc, batch),
            WriteOp::SetCursor {
                user_id,
                device_id,
                seq,
            } => self.set_cursor(user_id, device_id, seq, batch)?,
            WriteOp::CreateGroup {
                owner,
                name,
                persistence,
            } => WriteOutcome::GroupCreated {
                group_id: self.create_group(owner, name, persistence, timestamp_us, batch)?,
            },
            WriteOp::AddMember {
                actor,
                group,
                user,
                role,
            } => {
                self.add_member(actor, group, user, role, batch)?;
                WriteOutcome::Done
            }
            WriteOp::RemoveMember { actor, group, user } => {
                self.remove_member(actor, group, user, batch)?;
                WriteOutcome::Done
            }
            WriteOp::SetPersistence {
                actor,
                conversation,
                persistence,
            } => {
                self.set_persistence(actor, conversation, persistence, batch)?;
                WriteOutcome::Done
            }
            WriteOp::MarkRead {
                user,
                conversation,
                seq,
            } => WriteOutcome::ReadPosition(self.mark_read(user, conversation, seq, reply, timestamp_us)?),
            WriteOp::LastSeen { user, at_us } => self.last_seen(user, at_us, batch),
            WriteOp::Typing { user, conversation } => {
                self.typing(user, conversation)?;
                WriteOutcome::Done
            }
        };
        self.emit_written(reply, outcome);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::{home_core, ConnRef};
    use crate::storage::CONV_STATES_UNSTORED_MAX;

    struct Harness {
        storage: Arc<Storage>,
        mailboxes: Arc<[Mailbox]>,
        writer: Arc<LogWriter>,
        threads: Vec<JoinHandle<()>>,
    }

    fn reply(request_id: u64) -> Option<ReplyTo> {
        Some(ReplyTo {
            core: 0,
            conn: ConnRef {
                index: 0,
                generation: 0,
            },
            request_id,
            requester: crate::mailbox::Requester::Client,
        })
    }

    impl Harness {
        fn open(dir: &std::path::Path) -> Harness {
            Harness::open_cores(dir, 1)
        }

        fn open_cores(dir: &std::path::Path, cores: usize) -> Harness {
            Harness::open_with(dir, cores, WriterSettings::new(Durability::Sync))
        }

        fn open_with(dir: &std::path::Path, cores: usize, settings: WriterSettings) -> Harness {
            let storage = Arc::new(Storage::open(dir).unwrap());
            let mailboxes: Arc<[Mailbox]> = (0..cores).map(|_| Mailbox::default()).collect();
            let (writer, threads) = spawn_with(storage.clone(), mailboxes.clone(), settings).unwrap();
            Harness {
                storage,
                mailboxes,
                writer,
                threads,
            }
        }

        fn close(self) {
            self.writer.stop();
            for t in self.threads {
                t.join().unwrap();
            }
        }

        /// Submits `op` and returns its outcome plus the notifications pushed before it.
        fn write(&self, op: WriteOp) -> (Result<WriteOutcome, ErrorCode>, Vec<(u64, u64)>) {
            self.writer.submit(WriteRequest { reply: reply(1), op }).unwrap();
            let mut committed = Vec::new();
            let outcome = self.next_answer(&mut committed);
            (outcome, committed)
        }

        /// The outcomes of the next `n` answered requests (submitted earlier), in order.
        fn answers(&self, n: usize) -> Vec<Result<WriteOutcome, ErrorCode>> {
            (0..n).map(|_| self.next_answer(&mut Vec::new())).collect()
        }

        /// Waits for the next request's outcome, collecting the notifications before it.
        fn next_answer(&self, committed: &mut Vec<(u64, u64)>) -> Result<WriteOutcome, ErrorCode> {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match self.mailboxes[0].pop_completion() {
                    Some(Completion::Written { outcome, .. }) => return outcome,
                    Some(Completion::Committed { user_id, seq, .. }) => committed.push((user_id, seq)),
                    Some(Completion::Fanout { entries, .. }) => committed.extend(entries),
                    Some(Completion::Notices(_)) => {}
                    Some(other) => panic!("unexpected {other:?}"),
                    None if Instant::now() > deadline => panic!("no outcome in time"),
                    None => thread::sleep(Duration::from_micros(100)),
                }
            }
        }

        fn user(&self, name: &str) -> u64 {
            let op = WriteOp::CreateUser {
                username: name.into(),
                password_phc: String::new(),
            };
            match self.write(op).0 {
                Ok(WriteOutcome::UserCreated { user_id }) => user_id,
                other => panic!("{other:?}"),
            }
        }

        fn send(&self, from: u64, to: u64, client_msg_id: u64) -> (Result<WriteOutcome, ErrorCode>, Vec<(u64, u64)>) {
            self.write(direct_message(from, to, client_msg_id))
        }

        fn seqs(&self, user: u64) -> Vec<u64> {
            let page = self.storage.read_inbox(user, 0, 1_000, usize::MAX).unwrap();
            page.entries.iter().map(|(seq, _)| *seq).collect()
        }
    }

    #[test]
    fn seqs_stay_dense_across_a_refused_send_and_notifications_come_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let h = Harness::open(dir.path());
        let (a, b) = (h.user("a"), h.user("b"));
        let (_, first) = h.send(a, b, 1);
        assert_eq!(first, [(b, 1), (a, 1)], "recipient's copy first, then the sender's");
        assert_eq!(h.send(a, 999_999, 2).0, Err(ErrorCode::NoSuchUser));
        let (ok, committed) = h.send(a, b, 3);
        let Ok(WriteOutcome::Sent(ack)) = ok else {
            panic!("{ok:?}")
        };
        assert_eq!(
            (ack.inbox_seq, committed),
            (2, vec![(b, 2), (a, 2)]),
            "the refusal took no seq"
        );
        assert_eq!(h.seqs(a), [1, 2]);
        assert_eq!(h.seqs(b), [1, 2]);
        h.close();
    }

    /// A 1:1 message "hi" from device 1 of `from`.
    fn direct_message(from: u64, to: u64, client_msg_id: u64) -> WriteOp {
        WriteOp::Append {
            sender: from,
            sender_device: 1,
            to,
            group: 0,
            client_msg_id,
            flags: SendFlags::NONE,
            kind: MessageKind::NORMAL,
            refers_to: 0,
            payload: Bytes::from_static(b"hi"),
        }
    }

    /// Submits a send and returns every completion up to its reply, in the order pushed.
    fn completions_of_send(h: &Harness, from: u64, to: u64, client_msg_id: u64) -> Vec<Completion> {
        let op = direct_message(from, to, client_msg_id);
        h.writer.submit(WriteRequest { reply: reply(1), op }).unwrap();
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match h.mailboxes[0].pop_completion() {
                Some(c @ Completion::Written { .. }) => {
                    seen.push(c);
                    return seen;
                }
                Some(c) => seen.push(c),
                None if Instant::now() > deadline => panic!("no reply in time"),
                None => thread::sleep(Duration::from_micros(100)),
            }
        }
    }

    #[test]
    fn early_delivery_tags_deliveries_with_their_commit_and_replies_only_once_it_synced() {
        let dir = tempfile::tempdir().unwrap();
        let h = Harness::open(dir.path());
        assert!(h.writer.early_delivery, "on by default under sync");
        let (a, b) = (h.user("a"), h.user("b"));
        let seen = completions_of_send(&h, a, b, 1);
        let commits: Vec<u64> = seen
            .iter()
            .filter_map(|c| match c {
                Completion::Committed { commit, .. } => Some(*commit),
                _ => None,
            })
            .collect();
        assert_eq!(commits.len(), 2, "both copies, before the reply: {seen:?}");
        assert!(
            commits[0] > 0 && commits[0] == commits[1],
            "tagged with one commit: {commits:?}"
        );
        assert!(matches!(
            seen.last(),
            Some(Completion::Written {
                outcome: Ok(WriteOutcome::Sent(_)),
                ..
            })
        ));
        // The reply went out after the fsync: the commit is synced by the time it is seen.
        assert!(h.writer.watermark.synced() >= commits[0]);
        assert_eq!(h.writer.watermark.synced(), h.writer.watermark.written());
        h.close();
    }

    #[test]
    fn without_early_delivery_deliveries_are_durable_when_pushed() {
        for (durability, early_delivery) in [(Durability::Sync, false), (Durability::Async, true)] {
            let dir = tempfile::tempdir().unwrap();
            let settings = WriterSettings {
                early_delivery,
                ..WriterSettings::new(durability)
            };
            let h = Harness::open_with(dir.path(), 1, settings);
            assert!(!h.writer.early_delivery, "{durability:?}");
            let (a, b) = (h.user("a"), h.user("b"));
            for c in completions_of_send(&h, a, b, 1) {
                if let Completion::Committed { commit, .. } = c {
                    assert_eq!(commit, 0, "{durability:?}: durable when pushed");
                }
            }
            h.close();
        }
    }

    /// Stops the writer thread, so whatever commits next runs on the calling thread.
    fn stop_thread(h: &mut Harness) {
        h.writer.stop();
        for t in h.threads.drain(..) {
            t.join().unwrap();
        }
    }

    /// Queues a send the way a core does (no wake-up) and runs the commit inline.
    fn send_inline(h: &Harness, from: u64, to: u64, client_msg_id: u64) {
        let op = direct_message(from, to, client_msg_id);
        h.writer.submit_local(WriteRequest { reply: reply(1), op }).unwrap();
        h.writer.commit_inline();
    }

    fn drain(h: &Harness) -> Vec<Completion> {
        std::iter::from_fn(|| h.mailboxes[0].pop_completion()).collect()
    }

    #[test]
    fn an_inline_commit_runs_on_the_calling_thread_without_the_writer_thread() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = Harness::open_with(dir.path(), 1, WriterSettings::new(Durability::Async));
        assert!(h.writer.inline);
        let (a, b) = (h.user("a"), h.user("b"));
        stop_thread(&mut h);
        send_inline(&h, a, b, 1);
        // Done by the time commit_inline returned: no other thread ran it.
        let seen = drain(&h);
        let committed: Vec<(u64, u64, u64)> = seen
            .iter()
            .filter_map(|c| match c {
                Completion::Committed {
                    user_id, seq, commit, ..
                } => Some((*user_id, *seq, *commit)),
                _ => None,
            })
            .collect();
        assert_eq!(committed, [(b, 1, 0), (a, 1, 0)], "async: durable when pushed");
        assert!(matches!(
            seen.last(),
            Some(Completion::Written {
                outcome: Ok(WriteOutcome::Sent(SendAck { inbox_seq: 1, .. })),
                ..
            })
        ));
        assert_eq!(h.seqs(b), [1]);
        assert_eq!(h.writer.depth(), 0);
    }

    #[test]
    fn under_sync_an_inline_commit_delivers_at_once_and_the_writer_thread_fsyncs_and_answers() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = Harness::open(dir.path());
        assert!(h.writer.inline && h.writer.early_delivery);
        let (a, b) = (h.user("a"), h.user("b"));
        stop_thread(&mut h);
        send_inline(&h, a, b, 1);
        // The core wrote the commit and pushed the recipient's copy, tentative; the fsync
        // and the reply (with the sender's own copy) wait for the writer thread.
        let seen = drain(&h);
        let [Completion::Committed {
            user_id,
            seq: 1,
            commit,
            ..
        }] = seen.as_slice()
        else {
            panic!("only the recipient's copy before the fsync: {seen:?}")
        };
        let commit = *commit;
        assert_eq!(*user_id, b);
        assert!(commit > h.writer.watermark.synced(), "tentative until the fsync");
        // A later send queued meanwhile finds the token held: it waits for the thread too.
        send_inline(&h, b, a, 2);
        assert!(
            drain(&h).is_empty(),
            "commits stay in order: the next one after the fsync"
        );
        let w = h.writer.clone();
        let thread = thread::spawn(move || w.run());
        let mut replies = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while replies.len() < 2 && Instant::now() < deadline {
            match h.mailboxes[0].pop_completion() {
                Some(Completion::Written { outcome, .. }) => replies.push(outcome),
                Some(_) => {}
                None => thread::sleep(Duration::from_micros(100)),
            }
        }
        thread.join().unwrap();
        assert_eq!(replies.len(), 2, "both sends answered: {replies:?}");
        assert!(replies.iter().all(Result::is_ok), "{replies:?}");
        assert!(h.writer.watermark.synced() > commit);
        assert_eq!(h.seqs(a), [1, 2]);
    }

    #[test]
    fn without_inline_commits_a_core_submit_wakes_the_writer_thread() {
        let dir = tempfile::tempdir().unwrap();
        let settings = WriterSettings {
            inline_commits: false,
            ..WriterSettings::new(Durability::Async)
        };
        let h = Harness::open_with(dir.path(), 1, settings);
        assert!(!h.writer.inline);
        let (a, b) = (h.user("a"), h.user("b"));
        let op = direct_message(a, b, 1);
        h.writer.submit_local(WriteRequest { reply: reply(1), op }).unwrap();
        h.writer.commit_inline();
        let deadline = Instant::now() + Duration::from_secs(10);
        while h.seqs(b).is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(h.seqs(b), [1], "the writer thread committed it");
        h.close();
    }

    #[test]
    fn an_inline_commit_is_sized_to_fit_every_mailbox() {
        for cores in [1, 2, 16, 256] {
            let max = inline_requests_max(cores);
            assert!((1..=INLINE_BATCH_REQUESTS_MAX).contains(&max));
            assert!(
                max * (cores + 2) + cores <= COMPLETION_QUEUE_ITEMS_MAX / 2,
                "{cores} cores"
            );
        }
    }

    #[test]
    fn every_start_bumps_the_stored_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let h = Harness::open(dir.path());
        let first = h.writer.epoch;
        assert!(first >= 1, "an epoch is never 0 (0 means a server without one)");
        h.close();
        let h = Harness::open(dir.path());
        assert_eq!(h.writer.epoch, first + 1);
        h.close();
    }

    #[test]
    fn scan_positions_follow_cursors_past_unflagged_entries_and_survive_a_restart() {
        // A restart rescans each user's inbox from its stored scan positions (flags are
        // not stored). Left behind while cursors passed entries that asked for nothing,
        // every user's first cursor move after a restart read its history since then
        // inside the writer's commit (`results/hotpath.md`, the cold start after a restart).
        let dir = tempfile::tempdir().unwrap();
        let h = Harness::open(dir.path());
        let (a, b) = (h.user("a"), h.user("b"));
        let cursor = |seq| WriteOp::SetCursor {
            user_id: b,
            device_id: 1,
            seq,
        };
        // The first cursor move loads b's scan state; the later ones pass entries sent
        // after it, which asked for nothing, so they take the path that reads nothing.
        assert!(h.send(a, b, 1).0.is_ok());
        assert!(h.write(cursor(1)).0.is_ok());
        for id in 2..=10 {
            assert!(h.send(a, b, id).0.is_ok());
            let seq = *h.seqs(b).last().unwrap();
            assert!(h.write(cursor(seq)).0.is_ok());
        }
        let head = *h.seqs(b).last().unwrap();
        let moved = crate::storage::UserScan {
            receipts_seq: head,
            expired_seq: head,
        };
        assert_eq!(h.storage.user_scan(b).unwrap(), moved);
        h.close();
        let h = Harness::open(dir.path());
        assert_eq!(h.storage.user_scan(b).unwrap(), moved, "the positions are durable");
        h.close();
    }

    /// `user`'s conversations as a reader sees them: (conversation, last seq, unread, read seq).
    fn conversations(h: &Harness, user: u64) -> Vec<(Conversation, u64, u64, u64)> {
        let (page, more) = h.storage.conv_states(user, None, 1_000).unwrap();
        assert!(!more);
        page.iter()
            .map(|p| (p.conversation, p.last_seq, p.unread, p.read_seq))
            .collect()
    }

    fn sent(h: &Harness, op: WriteOp) -> SendAck {
        match h.write(op).0 {
            Ok(WriteOutcome::Sent(ack)) => ack,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn conversation_states_are_stored_per_user_in_bulk_at_a_bound_and_a_clean_stop_and_read_exactly_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let h = Harness::open(dir.path());
        let (a, b, c) = (h.user("a"), h.user("b"), h.user("c"));
        for id in 1..=3 {
            sent(&h, direct_message(a, b, id));
        }
        for id in 1..=2 {
            sent(&h, direct_message(b, a, id));
        }
        sent(&h, direct_message(a, c, 4));
        let expected = vec![(Conversation::Direct(b), 5, 2, 0), (Conversation::Direct(c), 6, 0, 0)];
        assert_eq!(conversations(&h, a), expected);
        assert_eq!(
            h.storage
                .conv_state(a, Conversation::Direct(c))
                .unwrap()
                .map(|s| s.last_seq),
            Some(6)
        );
        assert_eq!(
            h.storage.stored_conv_state(a, Conversation::Direct(b)).unwrap(),
            None,
            "an append stores no conversation state"
        );
        assert_eq!(
            h.storage.convs_through(a).unwrap(),
            Some(0),
            "the first append stores the mark"
        );
        h.close();

        let h = Harness::open(dir.path());
        assert_eq!(conversations(&h, a), expected);
        assert_eq!(h.storage.convs_through(a).unwrap(), Some(6), "a clean stop stored them");
        let read = WriteOp::MarkRead {
            user: a,
            conversation: Conversation::Direct(b),
            seq: 5,
        };
        assert!(h.write(read).0.is_ok());
        let stored = h
            .storage
            .stored_conv_state(a, Conversation::Direct(b))
            .unwrap()
            .unwrap();
        assert_eq!(
            (stored.read_seq, stored.unread(), stored.last_seq),
            (5, 0, 5),
            "a read position is stored at once"
        );
        sent(&h, direct_message(a, c, 5));
        for id in 0..CONV_STATES_UNSTORED_MAX - 2 {
            sent(&h, direct_message(b, a, 100 + id));
        }
        assert_eq!(h.storage.convs_through(a).unwrap(), Some(6));
        assert_eq!(
            conversations(&h, a)[1],
            (Conversation::Direct(c), 7, 0, 0),
            "read from the inbox"
        );
        sent(&h, direct_message(b, a, 99));
        let head = *h.seqs(a).last().unwrap();
        assert_eq!(head, 6 + CONV_STATES_UNSTORED_MAX);
        assert_eq!(
            h.storage.convs_through(a).unwrap(),
            Some(head),
            "at the bound the states are stored"
        );
        let stored = h
            .storage
            .stored_conv_state(a, Conversation::Direct(b))
            .unwrap()
            .unwrap();
        assert_eq!((stored.last_seq, stored.unread()), (head, CONV_STATES_UNSTORED_MAX - 1));
        let stored = h.storage.stored_conv_state(a, Conversation::Direct(c)).unwrap();
        assert_eq!(
            stored.map(|s| s.last_seq),
            Some(7),
            "with every other changed state of the user"
        );
        h.close();
    }

    #[test]
    fn a_users_changed_conversation_states_are_stored_once_they_come_due() {
        let dir = tempfile::tempdir().unwrap();
        let settings = WriterSettings {
            conv_states_store_delay_ms: 50,
            ..WriterSettings::new(Durability::Sync)
        };
        let h = Harness::open_with(dir.path(), 1, settings);
        let (a, b) = (h.user("a"), h.user("b"));
        sent(&h, direct_message(a, b, 1));
        sent(&h, direct_message(b, a, 1));
        assert_eq!(h.storage.convs_through(a).unwrap(), Some(0), "not due yet");
        thread::sleep(Duration::from_millis(60));
        // Due users are stored by the next group commit, whatever it holds.
        h.user("c");
        for user in [a, b] {
            assert_eq!(h.storage.convs_through(user).unwrap(), Some(2), "user {user}");
            let stored = h.storage.stored_conv_state(user, Conversation::Direct(a + b - user));
            assert_eq!(stored.unwrap().map(|s| s.last_seq), Some(2));
        }
        h.close();
    }

    #[test]
    fn a_user_in_hundreds_of_conversations_has_each_state_exact_stored_or_not() {
        let dir = tempfile::tempdir().unwrap();
        let h = Harness::open(dir.path());
        let bot = h.user("bot");
        let others: Vec<u64> = (0..300).map(|i| h.user(&format!("u{i}"))).collect();
        // Submitted together, so the writer takes them in few, large batches.
        for (i, &o) in others.iter().enumerate() {
            let op = direct_message(bot, o, i as u64 + 1);
            h.writer.submit(WriteRequest { reply: reply(1), op }).unwrap();
        }
        for outcome in h.answers(others.len()) {
            assert!(outcome.is_ok(), "{outcome:?}");
        }
        sent(&h, direct_message(others[0], bot, 1));
        let head = *h.seqs(bot).last().unwrap();
        assert_eq!(head, 301);
        assert!(
            h.storage.convs_through(bot).unwrap().unwrap() >= 256,
            "past the bound, stored"
        );
        let expected: Vec<_> = others
            .iter()
            .enumerate()
            .map(|(i, &o)| {
                let last = if i == 0 { 301 } else { i as u64 + 1 };
                (Conversation::Direct(o), last, u64::from(i == 0), 0)
            })
            .collect();
        assert_eq!(conversations(&h, bot), expected);
        h.close();
        let h = Harness::open(dir.path());
        assert_eq!(conversations(&h, bot), expected, "after a restart");
        h.close();
    }

    #[test]
    fn a_page_of_conversations_holds_stored_and_unstored_ones_in_order_once() {
        let dir = tempfile::tempdir().unwrap();
        let h = Harness::open(dir.path());
        let a = h.user("a");
        let others: Vec<u64> = ["b", "c", "d", "e", "f"].iter().map(|n| h.user(n)).collect();
        for (i, &o) in others.iter().enumerate() {
            sent(&h, direct_message(o, a, 1));
            if i % 2 == 0 {
                // Stored at once with its read position; the others stay unstored.
                let read = WriteOp::MarkRead {
                    user: a,
                    conversation: Conversation::Direct(o),
                    seq: i as u64 + 1,
                };
                assert!(h.write(read).0.is_ok());
            }
        }
        for limit in 1..=6 {
            let mut seen = Vec::new();
            let mut after = None;
            loop {
                let (page, more) = h.storage.conv_states(a, after, limit).unwrap();
                assert!(page.len() <= limit);
                seen.extend(page.iter().map(|p| (p.conversation, p.last_seq, p.unread)));
                after = page.last().map(|p| p.conversation);
                if !more {
                    break;
                }
            }
            let expected: Vec<_> = others
                .iter()
                .enumerate()
                .map(|(i, &o)| (Conversation::Direct(o), i as u64 + 1, u64::from(i % 2 == 1)))
                .collect();
            assert_eq!(seen, expected, "pages of {limit}");
        }
        h.close();
    }

    #[test]
    fn edits_are_checked_against_the_senders_own_copy_also_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let h = Harness::open(dir.path());
        let (a, b, c) = (h.user("a"), h.user("b"), h.user("c"));
        let mut ids = Vec::new();
        for id in 1..=40 {
            ids.push(sent(&h, direct_message(a, b, id)).message_id);
            if id % 3 == 0 {
                sent(&h, direct_message(b, a, id));
            }
        }
        let elsewhere = sent(&h, direct_message(b, c, 99)).message_id;
        h.close();
        let h = Harness::open(dir.path());
        let edit = |from: u64, to: u64, client_msg_id: u64, refers_to: u64| WriteOp::Append {
            sender: from,
            sender_device: 1,
            to,
            group: 0,
            client_msg_id,
            flags: SendFlags::NONE,
            kind: MessageKind::EDIT,
            refers_to,
            payload: Bytes::from_static(b"edited"),
        };
        for (n, &original) in ids.iter().enumerate() {
            let n = n as u64;
            assert!(
                h.write(edit(a, b, 1_000 + n, original)).0.is_ok(),
                "a edits its message {n}"
            );
            assert_eq!(
                h.write(edit(b, a, 1_000 + n, original)).0,
                Err(ErrorCode::Forbidden),
                "b only received it"
            );
            assert_eq!(
                h.write(edit(c, b, 1_000 + n, original)).0,
                Err(ErrorCode::NoSuchMessage),
                "c never had it"
            );
            assert_eq!(
                h.write(edit(a, c, 2_000 + n, original)).0,
                Err(ErrorCode::NoSuchMessage),
                "another conversation"
            );
        }
        assert_eq!(h.write(edit(a, b, 3_000, elsewhere)).0, Err(ErrorCode::NoSuchMessage));
        assert_eq!(h.write(edit(a, b, 3_001, u64::MAX)).0, Err(ErrorCode::NoSuchMessage));
        let an_edit = sent(&h, edit(a, b, 3_002, ids[0])).message_id;
        assert_eq!(
            h.write(edit(a, b, 3_003, an_edit)).0,
            Err(ErrorCode::NoSuchMessage),
            "an edit is not edited"
        );
        h.close();
    }

    #[test]
    fn a_retry_is_deduplicated_even_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let h = Harness::open(dir.path());
        let (a, b) = (h.user("a"), h.user("b"));
        let (Ok(WriteOutcome::Sent(original)), _) = h.send(a, b, 42) else {
            panic!()
        };
        let (retry, committed) = h.send(a, b, 42);
        assert_eq!(retry, Ok(WriteOutcome::Sent(original)));
        assert!(committed.is_empty(), "a duplicate notifies nobody");
        h.close();
        let h = Harness::open(dir.path());
        assert_eq!(h.send(a, b, 42).0, Ok(WriteOutcome::Sent(original)));
        let (Ok(WriteOutcome::Sent(next)), _) = h.send(a, b, 43) else {
            panic!()
        };
        assert_eq!(next.inbox_seq, 2, "the recovered head continues densely");
        assert!(
            next.message_id > original.message_id,
            "message ids keep increasing across restarts"
        );
        assert_eq!(h.seqs(b), [1, 2]);
        h.close();
    }

    fn group_send(from: u64, group: u64, client_msg_id: u64) -> WriteOp {
        WriteOp::Append {
            sender: from,
            sender_device: 1,
            to: 0,
            group,
            client_msg_id,
            flags: SendFlags::NONE,
            kind: MessageKind::NORMAL,
            refers_to: 0,
            payload: Bytes::from_static(b"to all"),
        }
    }

    #[test]
    fn a_group_message_is_one_completion_per_core_and_sees_membership_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let h = Harness::open_cores(dir.path(), 2);
        let users: Vec<u64> = (0..20).map(|i| h.user(&format!("u{i}"))).collect();
        let owner = users[0];
        let create = WriteOp::CreateGroup {
            owner,
            name: "all".into(),
            persistence: Persistence::ARCHIVE,
        };
        let Ok(WriteOutcome::GroupCreated { group_id }) = h.write(create).0 else {
            panic!("create")
        };
        for &user in &users[1..] {
            let add = WriteOp::AddMember {
                actor: owner,
                group: group_id,
                user,
                role: GroupRole::MEMBER,
            };
            assert_eq!(h.write(add).0, Ok(WriteOutcome::Done));
        }
        let removed = users[19];
        // The removal and the send are queued back to back (usually one batch), removal
        // first: the send must not reach the removed member.
        let remove = WriteOp::RemoveMember {
            actor: owner,
            group: group_id,
            user: removed,
        };
        h.writer
            .submit(WriteRequest {
                reply: None,
                op: remove,
            })
            .unwrap();
        h.writer
            .submit(WriteRequest {
                reply: reply(9),
                op: group_send(owner, group_id, 1),
            })
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut fanouts: Vec<Vec<(usize, u64, u64)>> = vec![Vec::new(), Vec::new()];
        let mut written = None;
        while written.is_none() {
            assert!(Instant::now() < deadline, "no outcome in time");
            for (core, mailbox) in h.mailboxes.iter().enumerate() {
                match mailbox.pop_completion() {
                    Some(Completion::Fanout { entries, .. }) => {
                        fanouts[core].push((entries.len(), entries[0].0, entries[0].1));
                        for (user, seq) in entries {
                            assert_eq!(home_core(user, 2), core, "user {user} delivered on its home core");
                            assert_eq!(seq, 1, "each member's first inbox entry");
                        }
                    }
                    Some(Completion::Written { outcome, .. }) => written = Some(outcome),
                    Some(other) => panic!("unexpected {other:?}"),
                    None => thread::sleep(Duration::from_micros(100)),
                }
            }
        }
        // Fan-outs were pushed before the reply: anything left is already queued.
        while let Some(c) = h.mailboxes[1].pop_completion() {
            if let Completion::Fanout { entries, .. } = c {
                fanouts[1].push((entries.len(), entries[0].0, entries[0].1));
            }
        }
        assert!(matches!(written, Some(Ok(WriteOutcome::Sent(_)))), "{written:?}");
        assert_eq!(fanouts[0].len(), 1, "one completion for core 0: {fanouts:?}");
        assert_eq!(fanouts[1].len(), 1, "one completion for core 1: {fanouts:?}");
        assert_eq!(
            fanouts[0][0].0 + fanouts[1][0].0,
            19,
            "every member but the removed one"
        );
        assert!(h.seqs(removed).is_empty(), "the removed member got nothing");
        assert_eq!(h.seqs(users[1]), [1]);
        let outsider = h.write(group_send(removed, group_id, 2)).0;
        assert_eq!(outsider, Err(ErrorCode::Forbidden), "a non-member cannot send");
        h.close();
    }

    #[test]
    fn a_message_to_oneself_has_one_copy() {
        let dir = tempfile::tempdir().unwrap();
        let h = Harness::open(dir.path());
        let a = h.user("a");
        let (Ok(WriteOutcome::Sent(ack)), committed) = h.send(a, a, 1) else {
            panic!()
        };
        assert_eq!((ack.inbox_seq, committed), (1, vec![(a, 1)]));
        assert_eq!(h.seqs(a), [1]);
        h.close();
    }

    #[test]
    fn usernames_are_unique_even_within_one_batch() {
        let dir = tempfile::tempdir().unwrap();
        let h = Harness::open(dir.path());
        for _ in 0..2 {
            let op = WriteOp::CreateUser {
                username: "twin".into(),
                password_phc: String::new(),
            };
            h.writer.submit(WriteRequest { reply: reply(7), op }).unwrap();
        }
        let mut outcomes = Vec::new();
        while outcomes.len() < 2 {
            if let Some(Completion::Written { outcome, .. }) = h.mailboxes[0].pop_completion() {
                outcomes.push(outcome.map(|_| ()));
            }
        }
        outcomes.sort_by_key(|o| o.is_err());
        assert_eq!(outcomes, [Ok(()), Err(ErrorCode::UserExists)]);
        h.close();
    }

    #[test]
    fn repeated_failures_log_once_per_interval_with_a_count() {
        let mut log = ErrorLog::default();
        let mut lines = Vec::new();
        for _ in 0..1_000 {
            log.failed(|repeats| lines.push(repeats.to_owned()));
        }
        // The first failure logs; the next 999 fall inside the interval.
        assert_eq!(lines, [String::new()]);
        assert_eq!((log.failing, log.unlogged), (1_000, 999));
        // Once the interval has passed, one line carries the count.
        log.last_logged = Instant::now().checked_sub(Duration::from_millis(STORAGE_ERROR_LOG_INTERVAL_MS));
        log.failed(|repeats| lines.push(repeats.to_owned()));
        assert_eq!(lines[1], " (999 more since the last report, 1001 in a row)");
        // A success ends the run: the next failure logs at once again.
        log.succeeded("test commits");
        log.failed(|repeats| lines.push(repeats.to_owned()));
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2], "");
    }
}
