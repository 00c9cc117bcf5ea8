//! The harness of the `engine_frames` fuzz target (`fuzz/fuzz_targets/engine_frames.rs`):
//! one [`Core`] with its real [`Shared`] state, the real log writer and helper threads on
//! a RocksDB in a temporary directory, and a few connections, driven by a fuzz input read
//! as a sequence of operations. Compiled for the engine's tests (regressions replay
//! through it) and under the `fuzzing` feature; never in a server build.
//!
//! Ownership: the RocksDB, writer, helpers and mailboxes are opened once per process (a
//! fuzz run reuses them across inputs; every input registers fresh users, so inputs do not
//! see each other's accounts). Each input gets its own `Shared` (metrics, abuse limiter)
//! and `Core`, and plays the part of the event loop of [`crate::conn`]: each
//! connection is one end of a non-blocking Unix socket pair (the core `send`s to it), the
//! harness reads the other end as the client would, removes a connection once it is
//! closing and flushed, and reports writability after it read.
//!
//! The input, byte by byte: an operation code, then its arguments; a missing byte reads as
//! zero, so every input is a valid sequence. Operations are raw bytes into
//! [`crate::conn::process_bytes`] and well-formed frames of every client request (built
//! with `hotline-wire`'s encoder, naming the users, tokens, groups and sequence numbers
//! the server handed out, so inputs get past login), plus opening and closing connections
//! (plain TCP, or WebSocket: the server's layer, and a client layer that upgrades and seals
//! the frames), a client that stops reading, frames cut in pieces, floods, and the core's
//! sweep. After
//! each operation the harness waits until every request the core sent to the writer or
//! the helpers has come back ([`Core::outstanding`] is zero), asleep until the writer or a
//! helper wakes it through the core's mailbox.
//!
//! Bounds per input, so that no input costs more than tens of milliseconds instrumented
//! (floods of thousands of frames cost seconds, and a corpus full of them ran at 23
//! inputs a second): [`OPS_PER_INPUT_MAX`] operations (the rest of a longer input is not
//! read), [`FRAMES_PER_INPUT_MAX`] frames sent, flood copies included (past it, requests
//! and floods send nothing), and [`READS_PER_INPUT_MAX`] reads (past it, the rest of what
//! an operation sends goes in one read). Whole frames reach the core in reads of at most
//! [`READ_BYTES_MAX`], as a socket with a small buffer delivers a flood. A flood still
//! takes a connection over its outbound limit (the slow-reader paths); the sends-in-flight
//! pause (`limits::SENDS_IN_FLIGHT_MAX`, 1,024 sends) is out of reach of one input.
//!
//! Invariants checked (a panic is a finding): nothing panics; every byte a connection
//! receives decodes as whole, valid frames; once a connection is closing no frame from it
//! is handled; no frame is handled from a connection whose unsent output is over its
//! outbound limit (a slow reader is read no further); a connection's unsent output stays
//! within [`UNSENT_BYTES_MAX`]; every request is answered, with some completion at least
//! every [`SETTLE_MS_MAX`].

use std::future::Future;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

use hotline_wire::{
    Ack, Conversation, Conversations, Credentials, Decoded, Encoder, FrameDecoder, GroupAddMember, GroupCreate,
    GroupLeave, GroupMembers, GroupRemoveMember, GroupRole, Hello, Login, MarkRead, Message, MessageKind, MyGroups,
    Persistence, Ping, PresenceSubscribe, Register, Send, SendFlags, SetPersistence, Sync, Typing,
};

use hotline_transport::{Layer, WsClientOptions};

use crate::config::ServeConfig;
use crate::core::{ConnState, Core};
use crate::helper::{self, HelperPool};
use crate::mailbox::Mailbox;
use crate::shared::Shared;
use crate::storage::writer::{self, LogWriter};
use crate::storage::{Durability, Storage};
use crate::transport::Transports;

/// The operation byte that opens a WebSocket connection (every other byte `b` is
/// operation `b % 28`; 255 would be 3).
const OP_CONNECT_WEBSOCKET: u8 = 255;
/// Connections open at once in one input.
pub const CONNS_MAX: usize = 3;
/// Connections one input may open in all.
pub const PEERS_PER_INPUT_MAX: usize = 8;
/// Accounts each input may register (fresh names per input).
pub const USERS_PER_INPUT: usize = 3;
/// Operations one input performs; the rest of a longer input is not read (enough to
/// register, log in and exercise every request for all [`USERS_PER_INPUT`] accounts).
pub const OPS_PER_INPUT_MAX: usize = 64;
/// Frames the clients send in one input, flood copies included; past it, requests and
/// floods send nothing. A flood of error replies takes a connection over
/// [`OUTBOUND_BYTES_MAX`] well within it (`unread-replies-pile-up` is caught within it).
pub const FRAMES_PER_INPUT_MAX: usize = 256;
/// Reads the core is handed in one input; past it, the rest of what an operation sends
/// goes in one read (a frame cut in 1-byte pieces costs a read per byte).
pub const READS_PER_INPUT_MAX: usize = 512;
/// Small, so that inputs reach the frame limit.
pub const FRAME_BYTES_MAX: u32 = 16 << 10;
/// Fits [`OUTBOUND_BYTES_MAX`] with a Deliver's overhead, as the configuration requires.
pub const PAYLOAD_BYTES_MAX: u32 = 2 << 10;
/// Small, so that inputs reach the slow-reader paths with few frames.
pub const OUTBOUND_BYTES_MAX: usize = 4 << 10;
/// Bytes of any reply but a page (`Error`, `SendAck`, `AckOk`, `Done`...; error texts are short).
const SMALL_REPLY_BYTES_MAX: usize = 512;
/// The most a connection may have queued and unsent: past its outbound limit the core
/// handles no more of its frames, so on top of the limit come the reply to the frame that
/// crossed it (at most a frame) and the replies to requests already out: Sync pages,
/// and the small answers to sends and confirmed acks.
pub const UNSENT_BYTES_MAX: usize = OUTBOUND_BYTES_MAX
    + (1 + crate::limits::SYNCS_IN_FLIGHT_MAX as usize) * FRAME_BYTES_MAX as usize
    + (crate::limits::SENDS_IN_FLIGHT_MAX as usize + crate::limits::ACK_WAITERS_MAX) * SMALL_REPLY_BYTES_MAX;
/// Longest the harness waits for any answer from the writer and helpers while an
/// operation's requests are out.
pub const SETTLE_MS_MAX: u64 = 10_000;
/// Longest the harness sleeps at once while waiting for the writer and helpers: they wake
/// it through the core's mailbox, as they wake a core's mailbox task; this bounds the cost
/// of a missed wake-up.
const WAIT_SLICE_MS: u64 = 1;
/// Bytes a client reads from its socket at once.
const RECEIVE_BYTES: usize = 16 << 10;
/// Most bytes the core is handed in one read of a client's frames: a flood reaches it
/// the way a socket with a small buffer delivers one, so a connection that goes over its
/// outbound limit in the middle of a flood sees the rest of it arrive.
pub const READ_BYTES_MAX: usize = 1 << 10;
/// Socket buffer bytes asked for per connection (the kernel rounds up), small so that a
/// client that stops reading soon blocks the core's sends.
const SOCKET_BUFFER_BYTES: libc::c_int = 4 << 10;

/// What lives for the whole process: storage and the threads that own it.
struct Engine {
    config: ServeConfig,
    mailboxes: Arc<[Mailbox]>,
    writer: Arc<LogWriter>,
    helpers: Arc<HelperPool>,
    /// Inputs run so far (names this input's users).
    inputs: AtomicU64,
    /// Held while an input runs: inputs must not overlap, they share the core's mailbox.
    running: std::sync::Mutex<()>,
}

static ENGINE: OnceLock<Engine> = OnceLock::new();

/// The configuration the harness runs: [`crate::config::test_config`] with small limits
/// (so inputs reach them) and no fsync.
pub fn config(data_dir: std::path::PathBuf) -> ServeConfig {
    ServeConfig {
        data_dir,
        durability: Durability::Async,
        frame_bytes_max: FRAME_BYTES_MAX,
        payload_bytes_max: PAYLOAD_BYTES_MAX,
        sync_page_messages_max: 64,
        outbound_bytes_max: OUTBOUND_BYTES_MAX,
        connections_per_core_max: 16,
        helper_threads: 2,
        group_members_max: 8,
        // A WebSocket listener's settings (nothing binds it): connections opened with
        // OP_CONNECT_WEBSOCKET get its layer.
        transport: crate::config::TransportConfig {
            ws_listen: Some("127.0.0.1:0".parse().expect("literal address")),
            ..Default::default()
        },
        ..crate::config::test_config()
    }
}

fn engine() -> &'static Engine {
    ENGINE.get_or_init(|| {
        // One directory per process, emptied first; HOTLINE_FUZZ_DIR picks where.
        let base = std::env::var_os("HOTLINE_FUZZ_DIR").map_or_else(std::env::temp_dir, Into::into);
        remove_stale_dirs(&base);
        let dir = base.join(format!("{DATA_DIR_PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cannot create the fuzz data directory (HOTLINE_FUZZ_DIR)");
        let config = config(dir);
        config.validate().expect("the harness configuration is valid");
        let storage = Arc::new(Storage::open(&config.data_dir).expect("cannot open RocksDB for fuzzing"));
        let mailboxes: Arc<[Mailbox]> = (0..config.cores).map(|_| Mailbox::default()).collect();
        let (writer, _) = writer::spawn_with(
            storage.clone(),
            mailboxes.clone(),
            writer::WriterSettings {
                durability: config.durability,
                early_delivery: config.early_delivery,
                inline_commits: config.inline_commits,
                group_members_max: config.group_members_max,
                ..writer::WriterSettings::new(config.durability)
            },
        )
        .expect("cannot start the log writer");
        let (helpers, _) = helper::spawn(config.helper_threads, storage, writer.clone(), mailboxes.clone())
            .expect("cannot start the helpers");
        Engine {
            config,
            mailboxes,
            writer,
            helpers,
            inputs: AtomicU64::new(0),
            running: std::sync::Mutex::new(()),
        }
    })
}

/// What one input did, from the core's metrics (for tests of the harness).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub frames_in: u64,
    pub logins_ok: u64,
    pub messages_acked: u64,
    pub errors_sent: u64,
    /// Write-buffer bytes held by open connections with nothing left to send, after the
    /// input was settled and one sweep ran (before the peers close).
    pub idle_write_buffer_bytes: usize,
}

/// The data directory of fuzzing process `<pid>` is `<prefix><pid>`.
const DATA_DIR_PREFIX: &str = "hotline-engine-fuzz-";

/// Removes the data directories of fuzzing processes that are gone (a fuzzer exits
/// without running destructors, so each process cleans up after its predecessors).
fn remove_stale_dirs(base: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(base) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(DATA_DIR_PREFIX)) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !std::path::Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Runs one fuzz input (see the module docs); panics on a broken invariant.
pub fn run(data: &[u8]) -> Summary {
    let engine = engine();
    let _running = engine.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let input_no = engine.inputs.fetch_add(1, Ordering::Relaxed);
    let mut h = Harness::new(engine, input_no);
    let mut input = Input { data };
    for _ in 0..OPS_PER_INPUT_MAX {
        if input.data.is_empty() {
            break;
        }
        h.step(&mut input);
    }
    let idle_write_buffer_bytes = h.finish();
    let m = &h.core.shared.metrics;
    Summary {
        frames_in: m.frames_in.load(Ordering::Relaxed),
        logins_ok: m.logins_ok.load(Ordering::Relaxed),
        messages_acked: m.messages_acked.load(Ordering::Relaxed),
        errors_sent: m.errors_sent.load(Ordering::Relaxed),
        idle_write_buffer_bytes,
    }
}

/// The input, read front to back; past its end every byte reads as 0.
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.byte();
        }
        u64::from_le_bytes(b)
    }

    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }
}

/// The client end of one connection.
struct Peer {
    /// The connection's slab index in the core.
    idx: usize,
    /// The core's end, which `Conn::fd` names; closed once the core removed the connection.
    server: Option<OwnedFd>,
    client: OwnedFd,
    /// Received bytes not yet decoded (the tail of an incomplete frame).
    received: Vec<u8>,
    /// The client reads what it receives (off: a client that stopped reading).
    reading: bool,
    /// The user this connection logged in as.
    user_id: Option<u64>,
    /// The highest inbox seq delivered or acknowledged to this connection.
    seq_seen: u64,
    /// The client closed while output was queued: what it received may end mid-frame.
    cut: bool,
    /// The client's WebSocket layer (`None` on plain TCP).
    client_layer: Option<Box<Layer>>,
    /// Raw bytes went below the WebSocket layer: the server may refuse the connection.
    raw_sent: bool,
    /// The client layer refused what the server sent (only after raw bytes).
    layer_failed: bool,
}

#[derive(Default, Clone)]
struct Account {
    user_id: Option<u64>,
    token: Option<[u8; crate::auth::TOKEN_BYTES]>,
}

/// Wakes the harness's thread: the waker it registers with the core's mailbox.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// A connected, non-blocking Unix stream pair: a connection's server end and its client
/// end, for the harness and the engine's unit tests.
pub(crate) fn socket_pair() -> (OwnedFd, OwnedFd) {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: socketpair writes two descriptors into the array we pass.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    assert_eq!(rc, 0, "socketpair: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just created and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

struct Harness {
    core: Core,
    peers: Vec<Peer>,
    encoder: Encoder,
    decoder: FrameDecoder,
    input_no: u64,
    accounts: [Account; USERS_PER_INPUT],
    /// Which account each Register or password Login is for, by request id.
    pending: Vec<(u64, usize)>,
    groups: Vec<u64>,
    message_ids: Vec<u64>,
    request_id_next: u64,
    /// The last structured frame sent (what a flood repeats).
    last_frame: Vec<u8>,
    /// Structured frames go in pieces of this many bytes (0: whole).
    chunk_bytes: usize,
    /// Wait for the writer and helpers after each operation (off: requests pile up).
    settle_each: bool,
    /// Frames the clients may still send in this input ([`FRAMES_PER_INPUT_MAX`]).
    frames_left: usize,
    /// Reads the core may still be handed in this input ([`READS_PER_INPUT_MAX`]).
    reads_left: usize,
    /// What the clients read their sockets into (one buffer for all of them).
    receive_buf: Box<[u8]>,
    /// Unparks this thread when the core's mailbox gets something.
    waker: Waker,
}

impl Harness {
    fn new(engine: &'static Engine, input_no: u64) -> Harness {
        let config = engine.config.clone();
        let transports = Transports::from_config(&config).expect("no TLS or WebSocket to load");
        let shared = Arc::new(Shared::new(
            config,
            engine.mailboxes.clone(),
            engine.writer.clone(),
            engine.helpers.clone(),
            transports,
        ));
        let decoder = FrameDecoder::new(FRAME_BYTES_MAX, shared.config.sync_page_messages_max);
        let mut core = Core::new(0, shared);
        // What an earlier input left in the mailbox (live notices) goes to that input's
        // users, none of whom is online here.
        core.drain_mailbox(usize::MAX);
        Harness {
            core,
            peers: Vec::new(),
            encoder: Encoder::new(),
            decoder,
            input_no,
            accounts: Default::default(),
            pending: Vec::new(),
            groups: Vec::new(),
            message_ids: Vec::new(),
            request_id_next: 1,
            last_frame: Vec::new(),
            chunk_bytes: 0,
            settle_each: true,
            frames_left: FRAMES_PER_INPUT_MAX,
            reads_left: READS_PER_INPUT_MAX,
            receive_buf: vec![0u8; RECEIVE_BYTES].into_boxed_slice(),
            waker: Waker::from(Arc::new(Unpark(std::thread::current()))),
        }
    }

    /// Reads and performs one operation.
    fn step(&mut self, input: &mut Input<'_>) {
        let op = input.byte();
        if op == OP_CONNECT_WEBSOCKET {
            self.connect(true);
            return self.after_step();
        }
        match op % 28 {
            0 => self.connect(false),
            1 => self.op_raw_bytes(input),
            2 => self.op_hello(input),
            3 => self.op_register(input),
            4 => self.op_password_login(input),
            5 => self.op_token_login(input),
            6 => self.op_send_message(input),
            7 => self.op_ack(input),
            8 => self.op_sync(input),
            9 => self.op_group_create(input),
            10 => self.op_group_add_member(input),
            11 => self.op_group_remove_member(input),
            12 => self.op_group_leave(input),
            13 => self.op_group_members(input),
            14 => self.op_my_groups(input),
            15 => self.op_mark_read(input),
            16 => self.op_conversations(input),
            17 => self.op_set_persistence(input),
            18 => self.op_typing(input),
            19 => self.op_presence_subscribe(input),
            20 => self.op_logout(input),
            21 => self.op_server_frame(input),
            22 => self.op_close(input),
            23 => self.op_toggle_reading(input),
            24 => self.chunk_bytes = usize::from(input.byte() % 16),
            25 => self.op_flood(input),
            26 => self.core.sweep(),
            _ => self.settle_each = !self.settle_each,
        }
        self.after_step();
    }

    /// Operation 1: raw bytes (any length) into a connection, as if read from its socket.
    fn op_raw_bytes(&mut self, input: &mut Input<'_>) {
        let peer = self.peer(input);
        let len = usize::from(input.byte());
        let bytes = input.bytes(len);
        self.feed_raw(peer, bytes);
    }

    /// Operation 2: `Hello`, mostly with the supported versions.
    fn op_hello(&mut self, input: &mut Input<'_>) {
        let peer = self.peer(input);
        let (version_min, version_max) = match input.byte() {
            0..=223 => (hotline_wire::PROTOCOL_VERSION_MIN, hotline_wire::PROTOCOL_VERSION),
            _ => (u16::from(input.byte()), u16::from(input.byte())),
        };
        let m = Hello {
            version_min,
            version_max,
            client_name: "fuzz",
        };
        self.send(input, peer, &Message::Hello(m));
    }

    /// Operation 3: `Register` of one of the input's accounts.
    fn op_register(&mut self, input: &mut Input<'_>) {
        let peer = self.peer(input);
        let slot = usize::from(input.byte()) % USERS_PER_INPUT;
        let username = self.username(slot);
        let password = if input.byte() < 240 { "password" } else { "" };
        let rid = self.send(
            input,
            peer,
            &Message::Register(Register {
                username: &username,
                password,
            }),
        );
        self.pending.push((rid, slot));
    }

    /// Operation 4: `Login` with a password (mostly the right one).
    fn op_password_login(&mut self, input: &mut Input<'_>) {
        let peer = self.peer(input);
        let slot = usize::from(input.byte()) % USERS_PER_INPUT;
        let username = self.username(slot);
        let password = if input.byte() < 224 { "password" } else { "wrong" };
        let m = Login {
            credentials: Credentials::Password {
                username: &username,
                password,
            },
            device_name: "fuzz",
        };
        let rid = self.send(input, peer, &Message::Login(m));
        self.pending.push((rid, slot));
    }

    /// Operation 5: `Login` with a token the server handed out (or a bad one).
    fn op_token_login(&mut self, input: &mut Input<'_>) {
        let peer = self.peer(input);
        let slot = usize::from(input.byte()) % USERS_PER_INPUT;
        let token = self.accounts[slot].token.unwrap_or([7; crate::auth::TOKEN_BYTES]);
        let token: &[u8] = if input.byte() < 240 { &token } else { &token[..16] };
        let m = Login {
            credentials: Credentials::Token(token),
            device_name: "",
        };
        self.send(input, peer, &Message::Login(m));
    }

    /// Operation 6: `Send` to a user or a group, of any kind, flags and payload size.
    fn op_send_message(&mut self, input: &mut Input<'_>) {
        let peer = self.peer(input);
        let client_msg_id = u64::from(input.byte());
        let (to, group) = match input.byte() % 4 {
            0 => (0, self.group(input)),
            1 => (self.user(input), self.group(input)),
            _ => (self.user(input), 0),
        };
        let payload_len = usize::from(input.byte()) * usize::from(input.byte() % 8 + 1);
        let payload = vec![b'x'; payload_len];
        let kind = MessageKind(input.byte() % 5);
        let refers_to = match input.byte() {
            0..=127 => 0,
            b => self
                .message_ids
                .get(usize::from(b) % 8)
                .copied()
                .unwrap_or(u64::from(b)),
        };
        let m = Send {
            client_msg_id,
            to,
            payload: &payload,
            flags: SendFlags(input.byte()),
            group,
            kind,
            refers_to,
        };
        self.send(input, peer, &Message::Send(m));
    }

    /// Operation 7: `Ack` up to a seq near what the peer was sent.
    fn op_ack(&mut self, input: &mut Input<'_>) {
        let peer = self.peer(input);
        let up_to_seq = self.seq(input, peer);
        self.send(input, peer, &Message::Ack(Ack { up_to_seq }));
    }

    /// Operation 8: `Sync` after a seq near what the peer was sent.
    fn op_sync(&mut self, input: &mut Input<'_>) {
        let peer = self.peer(input);
        let after_seq = self.seq(input, peer);
        let limit = u32::from(input.byte());
        self.send(input, peer, &Message::Sync(Sync { after_seq, limit }));
    }

    /// Operation 9: `GroupCreate`.
    fn op_group_create(&mut self, input: &mut Input<'_>) {
        let peer = self.peer(input);
        let name = ["team", "", "a-much-longer-group-name"][usize::from(input.byte()) % 3];
        let persistence = Persistence(input.byte() % 4);
        self.send(input, peer, &Message::GroupCreate(GroupCreate { name, persistence }));
    }

    /// Operation 10: `GroupAddMember`.
    fn op_group_add_member(&mut self, input: &mut Input<'_>) {
        let peer = self.peer(input);
        let m = GroupAddMember {
            group_id: self.group(input),
            user_id: self.user(input),
            role: GroupRole(input.byte() % 4),
        };
        self.send(input, peer, &Message::GroupAddMember(m));
    }

    /// Operation 11: `GroupRemoveMember`.
    fn op_group_remove_member(&mut self, input: &mut Input<'_>) {
        let peer = self.peer(input);
        let m = GroupRemoveMember {
            group_id: self.group(input),
            user_id: self.user(input),
        };
        self.send(input, peer, &Message::GroupRemoveMember(m));
    }

    /// Operation 12: `GroupLeave`.
    fn op_group_leave(&mut self, input: &mut Input<'_>) {
        let peer = self.peer(input);
        let group_id = self.group(input);
        self.send(input, peer, &Message::GroupLeave(GroupLeave { group_id }));
    }

    /// Operation 13: `GroupMembers`.
    fn op_group_members(&mut self, input: &mut Input<'_>) {
        let peer = self.peer(input);
        let m = GroupMembers {
            group_id: self.group(input),
            after_user_id: u64::from(input.byte()),
        };
        self.send(input, peer, &Message::GroupMembers(m));
    }

    /// Operation 14: `MyGroups`.
    fn op_my_groups(&mut self, input: &mut Input<'_>) {
        let peer = self.peer(input);
        let after_group_id = u64::from(input.byte());
        self.send(input, peer, &Message::MyGroups(MyGroups { after_group_id }));
    }

    /// Operation 15: `MarkRead`.
    fn op_mark_read(&mut self, input: &mut Input<'_>) {
        let peer = self.peer(input);
        let conversation = self.conversation(input);
        let up_to_seq = self.seq(input, peer);
        self.send(
            input,
            peer,
            &Message::MarkRead(MarkRead {
                conversation,
                up_to_seq,
            }),
        );
    }

    /// Operation 16: `Conversations`.
    fn op_conversations(&mut self, input: &mut Input<'_>) {
        let peer = self.peer(input);
        let after = match input.byte() % 2 {
            0 => None,
            _ => Some(self.conversation(input)),
        };
        self.send(input, peer, &Message::Conversations(Conversations { after }));
    }

    /// Operation 17: `SetPersistence`.
    fn op_set_persistence(&mut self, input: &mut Input<'_>) {
        let peer = self.peer(input);
        let m = SetPersistence {
            conversation: self.conversation(input),
            persistence: Persistence(input.byte() % 4),
        };
        self.send(input, peer, &Message::SetPersistence(m));
    }

    /// Operation 18: `Typing`.
    fn op_typing(&mut self, input: &mut Input<'_>) {
        let peer = self.peer(input);
        let conversation = self.conversation(input);
        self.send(input, peer, &Message::Typing(Typing { conversation }));
    }

    /// Operation 19: `PresenceSubscribe` for up to 5 users.
    fn op_presence_subscribe(&mut self, input: &mut Input<'_>) {
        let peer = self.peer(input);
        let n = usize::from(input.byte() % 6);
        let user_ids = (0..n).map(|_| self.user(input)).collect();
        self.send(input, peer, &Message::PresenceSubscribe(PresenceSubscribe { user_ids }));
    }

    /// Operation 20: `Logout`.
    fn op_logout(&mut self, input: &mut Input<'_>) {
        let peer = self.peer(input);
        self.send(input, peer, &Message::Logout);
    }

    /// Operation 21: a frame only servers send (or `Ping`).
    fn op_server_frame(&mut self, input: &mut Input<'_>) {
        let peer = self.peer(input);
        let m = match input.byte() % 4 {
            0 => Message::Ping(Ping { nonce: input.u64() }),
            1 => Message::Pong(hotline_wire::Pong { nonce: 1 }),
            2 => Message::Done,
            _ => Message::AckOk(hotline_wire::AckOk { device_cursor: 1 }),
        };
        self.send(input, peer, &m);
    }

    /// Operation 22: the peer closes its end.
    fn op_close(&mut self, input: &mut Input<'_>) {
        let peer = self.peer(input);
        self.peer_closes(peer);
    }

    /// Operation 23: the peer stops (or starts again) reading.
    fn op_toggle_reading(&mut self, input: &mut Input<'_>) {
        let peer = self.peer(input);
        if let Some(p) = self.peers.get_mut(peer) {
            p.reading = !p.reading;
        }
    }

    /// Operation 25: the last structured frame, many times at once (within the input's
    /// [`FRAMES_PER_INPUT_MAX`]).
    fn op_flood(&mut self, input: &mut Input<'_>) {
        let peer = self.peer(input);
        let copies = (usize::from(input.byte()) * 8).min(self.frames_left);
        self.frames_left -= copies;
        let flood = self.last_frame.repeat(copies);
        self.send_frames(peer, &flood);
    }

    fn after_step(&mut self) {
        if self.settle_each {
            self.settle();
        } else {
            self.pump();
        }
    }

    /// Opens a connection (if fewer than [`CONNS_MAX`] are open): plain TCP, or with
    /// `websocket` the server's WebSocket layer and a client layer that upgrades.
    fn connect(&mut self, websocket: bool) {
        let open = self.peers.iter().filter(|p| p.server.is_some()).count();
        if open >= CONNS_MAX || self.peers.len() >= PEERS_PER_INPUT_MAX {
            return;
        }
        let (server, client) = socket_pair();
        for (fd, opt) in [(&server, libc::SO_SNDBUF), (&client, libc::SO_RCVBUF)] {
            // SAFETY: setsockopt reads one c_int from the pointer we pass.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&SOCKET_BUFFER_BYTES as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
        let idx = self.core.insert_conn(server.as_raw_fd(), ConnState::Handshaking);
        self.core.conns[idx].peer_ip = Some(std::net::Ipv4Addr::LOCALHOST.into());
        let client_layer = websocket.then(|| {
            let settings = self.core.shared.transports.ws.as_ref();
            self.core.conns[idx].layer = crate::transport::accept(settings).expect("a server WebSocket layer");
            let options = WsClientOptions {
                host: "fuzz".into(),
                path: "/".into(),
                origin: None,
                frame_bytes_max: FRAME_BYTES_MAX,
            };
            Box::new(Layer::client(None, Some(options)).expect("a client WebSocket layer"))
        });
        self.peers.push(Peer {
            client_layer,
            raw_sent: false,
            idx,
            server: Some(server),
            client,
            received: Vec::new(),
            reading: true,
            user_id: None,
            seq_seen: 0,
            cut: false,
            layer_failed: false,
        });
    }

    /// The connection an operation is for (opening the first one if none is).
    fn peer(&mut self, input: &mut Input<'_>) -> usize {
        if self.peers.is_empty() {
            self.connect(false);
        }
        usize::from(input.byte()) % self.peers.len()
    }

    fn username(&self, slot: usize) -> String {
        format!("f{}u{slot}", self.input_no)
    }

    /// A user id: mostly one this input's accounts have, sometimes any number.
    fn user(&mut self, input: &mut Input<'_>) -> u64 {
        match input.byte() {
            b @ 0..=191 => self.accounts[usize::from(b) % USERS_PER_INPUT]
                .user_id
                .unwrap_or(u64::from(b)),
            255 => u64::MAX,
            b => u64::from(b - 192),
        }
    }

    /// A group id: mostly one created in this input, sometimes any number.
    fn group(&mut self, input: &mut Input<'_>) -> u64 {
        match input.byte() {
            b @ 0..=191 if !self.groups.is_empty() => self.groups[usize::from(b) % self.groups.len()],
            255 => u64::MAX,
            b => u64::from(b % 64),
        }
    }

    fn conversation(&mut self, input: &mut Input<'_>) -> Conversation {
        match input.byte() % 5 {
            0 | 1 => Conversation::Direct(self.user(input)),
            2 | 3 => Conversation::Group(self.group(input)),
            _ => Conversation::Other {
                kind: input.byte(),
                id: u64::from(input.byte()),
            },
        }
    }

    /// An inbox seq: near what the connection has seen, or beyond it.
    fn seq(&mut self, input: &mut Input<'_>, peer: usize) -> u64 {
        let seen = self.peers.get(peer).map_or(0, |p| p.seq_seen);
        match input.byte() {
            b @ 0..=127 => seen.saturating_sub(u64::from(b % 4)),
            b @ 128..=253 => seen + u64::from(b - 128),
            254 => u64::MAX,
            _ => input.u64(),
        }
    }

    /// Encodes `message` and feeds it to connection `peer` (in pieces of `chunk_bytes`).
    /// Returns the request id used (0 for some, as fire-and-forget requests use).
    fn send(&mut self, input: &mut Input<'_>, peer: usize, message: &Message<'_>) -> u64 {
        let request_id = match input.byte() {
            0 => hotline_wire::REQUEST_ID_NONE,
            _ => {
                self.request_id_next += 1;
                self.request_id_next
            }
        };
        self.last_frame = self.encoder.encode(request_id, message).to_vec();
        if self.frames_left > 0 {
            self.frames_left -= 1;
            let frame = std::mem::take(&mut self.last_frame);
            self.send_frames(peer, &frame);
            self.last_frame = frame;
        }
        request_id
    }

    /// The client sends whole frames: straight onto the socket, or sealed by its WebSocket
    /// layer; the server reads them in reads of at most [`READ_BYTES_MAX`], or in pieces of
    /// `chunk_bytes` (while [`READS_PER_INPUT_MAX`] lasts; then the rest in one read).
    fn send_frames(&mut self, peer: usize, frames: &[u8]) {
        let Some(p) = self.peers.get_mut(peer) else { return };
        let bytes = match p.client_layer.as_mut() {
            None => frames.to_vec(),
            Some(layer) => {
                if layer.seal(frames).is_err() {
                    return;
                }
                let wire = layer.wire().to_vec();
                layer.consume_wire(wire.len());
                wire
            }
        };
        if bytes.is_empty() {
            if self.chunk_bytes == 0 {
                self.feed(peer, &bytes);
            }
            return;
        }
        let piece = match self.chunk_bytes {
            0 => READ_BYTES_MAX,
            n => n,
        };
        let mut rest = &bytes[..];
        while rest.len() > piece && self.reads_left > 1 {
            let (read, tail) = rest.split_at(piece);
            self.feed(peer, read);
            rest = tail;
        }
        self.feed(peer, rest);
    }

    /// Raw bytes from the client (below its WebSocket layer, if it has one).
    fn feed_raw(&mut self, peer: usize, bytes: &[u8]) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.raw_sent |= p.client_layer.is_some();
        }
        self.feed(peer, bytes);
    }

    /// Hands `bytes` to the core as a read on connection `peer`, as the event loop
    /// does (through the connection's layer, if it has one), and checks that a connection
    /// that is closing, or over its outbound limit, handles no frame.
    fn feed(&mut self, peer: usize, bytes: &[u8]) {
        self.reads_left = self.reads_left.saturating_sub(1);
        let Some(p) = self.peers.get(peer) else { return };
        let idx = p.idx;
        if p.server.is_none() {
            return; // The core removed it; the event loop would read no more.
        }
        let Some(conn) = self.core.conns.get(idx) else { return };
        // The event loop stops reading a closing connection; this read stands for one that raced
        // the close. A paused connection (a login, sends in flight, output over its limit)
        // keeps the bytes for later, as its socket would.
        let closing = conn.closing;
        let over_limit = conn.unsent() > OUTBOUND_BYTES_MAX;
        let frames_before = self.core.shared.metrics.frames_in.load(Ordering::Relaxed);
        if conn.layer.is_some() {
            crate::conn::ingest_layer(&mut self.core, idx, bytes);
        } else {
            crate::conn::process_bytes(&mut self.core, idx, bytes);
        }
        let frames_after = self.core.shared.metrics.frames_in.load(Ordering::Relaxed);
        if closing {
            assert_eq!(
                frames_before, frames_after,
                "connection {idx} handled frames while closing"
            );
        }
        if over_limit {
            assert_eq!(
                frames_before, frames_after,
                "connection {idx} handled frames while over its outbound limit"
            );
        }
        self.core.flush_dirty();
        self.check_unsent();
    }

    /// The client closes connection `peer`: the core sees end of file and the connection ends.
    fn peer_closes(&mut self, peer: usize) {
        let Some(p) = self.peers.get_mut(peer) else { return };
        if let Some(server) = p.server.take() {
            p.cut = self.core.conns.get(p.idx).is_some_and(|c| c.unsent() > 0);
            self.core.close_layer(p.idx);
            self.core.flush(p.idx);
            self.core.remove_conn(p.idx);
            drop(server);
        }
    }

    /// One round of what the core's tasks do: mailbox, flushes, reads by the clients,
    /// writability, removal of closed connections.
    fn pump(&mut self) -> usize {
        // What the core's committer task does at the end of a turn (inline commits).
        if self.core.committer.take() {
            self.core.shared.writer.commit_inline();
        }
        let handled = self.core.drain_mailbox(usize::MAX);
        self.core.flush_dirty();
        // The event loop's wake list: this loop looks at every connection anyway.
        for idx in std::mem::take(&mut self.core.io.woken) {
            if let Some(conn) = self.core.conns.get_mut(idx) {
                conn.woken = false;
            }
        }
        for peer in 0..self.peers.len() {
            self.receive(peer);
            let p = &mut self.peers[peer];
            let Some(conn) = self.core.conns.get(p.idx).filter(|_| p.server.is_some()) else {
                continue;
            };
            if conn.write_blocked && p.reading {
                self.core.on_writable(p.idx);
                self.receive(peer);
            }
            let p = &mut self.peers[peer];
            let conn = &self.core.conns[p.idx];
            if conn.closing && conn.unsent() == 0 {
                let server = p.server.take();
                self.core.close_layer(p.idx);
                self.core.flush(p.idx);
                self.core.remove_conn(p.idx);
                drop(server);
                self.receive(peer);
            } else if conn.accepts_frames(OUTBOUND_BYTES_MAX) && !conn.inbound.is_empty() {
                // A pause ended: the event loop reads again (bytes held back above included).
                crate::conn::resume(&mut self.core, p.idx);
            }
        }
        self.core.flush_dirty();
        self.check_unsent();
        handled
    }

    /// Pumps until every request the core sent out has come back. A flood of thousands of
    /// durable writes may take longer than any fixed bound, so the invariant is progress:
    /// some completion arrives at least every [`SETTLE_MS_MAX`] (a lost reply or a stuck
    /// writer stops them; a request reissued forever is libFuzzer's per-input timeout).
    fn settle(&mut self) {
        let writer = self.core.shared.writer.clone();
        let mut progress = Instant::now();
        let mut batches_before = writer.stats.batches.load(Ordering::Relaxed);
        loop {
            let handled = self.pump();
            if self.core.outstanding == 0 && handled == 0 {
                return;
            }
            if handled > 0 {
                progress = Instant::now();
                batches_before = writer.stats.batches.load(Ordering::Relaxed);
            }
            // Whether the writer committed meanwhile tells a stuck log (a stalled fsync or
            // RocksDB write stall) from a lost reply.
            assert!(
                progress.elapsed() < Duration::from_millis(SETTLE_MS_MAX),
                "{} requests unanswered and no completion for {SETTLE_MS_MAX} ms (writer: {} \
                 queued, {} commits meanwhile, {} failing; helpers: {} queued; mailbox: {} queued)",
                self.core.outstanding,
                writer.depth(),
                writer.stats.batches.load(Ordering::Relaxed) - batches_before,
                writer.stats.failing_batches.load(Ordering::Relaxed),
                self.core.shared.helpers.depth(),
                self.core.shared.mailboxes[0].depth(),
            );
            if handled == 0 {
                self.wait_for_mailbox();
            }
        }
    }

    /// Sleeps until the core's mailbox has something (what the core's mailbox task waits
    /// for in the server), at most [`WAIT_SLICE_MS`].
    fn wait_for_mailbox(&self) {
        let mailbox = &self.core.shared.mailboxes[self.core.id];
        let mut wait = std::pin::pin!(mailbox.wait());
        if wait.as_mut().poll(&mut Context::from_waker(&self.waker)).is_pending() {
            std::thread::park_timeout(Duration::from_millis(WAIT_SLICE_MS));
        }
    }

    fn check_unsent(&self) {
        for (idx, conn) in self.core.conns.iter() {
            assert!(
                conn.unsent() <= UNSENT_BYTES_MAX,
                "connection {idx} holds {} unsent bytes (bound {UNSENT_BYTES_MAX})",
                conn.unsent()
            );
        }
    }

    /// Reads what connection `peer`'s client end has (if the client reads) and checks
    /// that it is whole, valid frames; learns ids, tokens and seqs from them.
    fn receive(&mut self, peer: usize) {
        let p = &mut self.peers[peer];
        if !p.reading {
            return;
        }
        let buf = &mut self.receive_buf;
        loop {
            // SAFETY: `buf` is a live buffer of `buf.len()` writable bytes and `client` an
            // open socket we own.
            let n = unsafe { libc::recv(p.client.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n <= 0 {
                break;
            }
            let data = &buf[..n as usize];
            match p.client_layer.as_mut() {
                None => p.received.extend_from_slice(data),
                Some(layer) if !p.layer_failed => {
                    if let Err(e) = layer.ingest(data, &mut p.received) {
                        // Only raw bytes below the layer may make the server refuse it.
                        assert!(
                            p.raw_sent,
                            "connection {}: the server's WebSocket is broken: {e}",
                            p.idx
                        );
                        p.layer_failed = true;
                    }
                }
                Some(_) => {}
            }
        }
        // What the client layer answers (frames held until the upgrade, pongs, a close).
        if let Some(layer) = p.client_layer.as_mut() {
            let wire = layer.wire().to_vec();
            layer.consume_wire(wire.len());
            if !wire.is_empty() && p.server.is_some() {
                self.feed(peer, &wire);
            }
        }
        let received = std::mem::take(&mut self.peers[peer].received);
        let mut at = 0;
        while at < received.len() {
            match self.decoder.decode(&received[at..]) {
                Ok(Decoded::NeedMore { .. }) => break,
                Ok(Decoded::Frame { frame, consumed }) => {
                    at += consumed;
                    self.learn(peer, frame.request_id, &frame.message);
                }
                Err(e) => panic!(
                    "connection {} sent bytes that do not decode: {e} (at byte {at} of {})",
                    self.peers[peer].idx,
                    received.len()
                ),
            }
        }
        self.peers[peer].received = received[at..].to_vec();
    }

    /// Remembers what later operations can name.
    fn learn(&mut self, peer: usize, request_id: u64, message: &Message<'_>) {
        let slot = self
            .pending
            .iter()
            .find(|(rid, _)| *rid == request_id && request_id != 0)
            .map(|(_, s)| *s);
        let p = &mut self.peers[peer];
        match message {
            Message::RegisterOk(ok) => {
                if let Some(slot) = slot {
                    self.accounts[slot].user_id = Some(ok.user_id);
                }
            }
            Message::LoginOk(ok) => {
                p.user_id = Some(ok.user_id);
                p.seq_seen = p.seq_seen.max(ok.device_cursor);
                if let Some(slot) = slot {
                    self.accounts[slot].user_id = Some(ok.user_id);
                    self.accounts[slot].token = ok.token.try_into().ok();
                }
            }
            Message::Deliver(d) => {
                p.seq_seen = p.seq_seen.max(d.inbox_seq);
                if self.message_ids.len() < 64 {
                    self.message_ids.push(d.message_id);
                }
            }
            Message::SendAck(ack) => {
                p.seq_seen = p.seq_seen.max(ack.inbox_seq);
                if self.message_ids.len() < 64 {
                    self.message_ids.push(ack.message_id);
                }
            }
            Message::GroupCreated(g) if self.groups.len() < 16 => self.groups.push(g.group_id),
            _ => {}
        }
    }

    /// Closes every connection, waits for what is still out, and checks that each client
    /// received whole frames only.
    /// Lets every peer read, settles, sweeps, then closes every connection; returns the
    /// write-buffer bytes idle connections held after the sweep.
    fn finish(&mut self) -> usize {
        for peer in 0..self.peers.len() {
            self.peers[peer].reading = true;
        }
        self.settle();
        self.core.sweep();
        let idle_write_buffer_bytes = self
            .core
            .conns
            .iter()
            .filter(|(_, c)| c.unsent() == 0)
            .map(|(_, c)| c.outbound.capacity())
            .sum();
        self.settle();
        for peer in 0..self.peers.len() {
            self.peer_closes(peer);
        }
        self.settle();
        for peer in 0..self.peers.len() {
            self.receive(peer);
            let p = &self.peers[peer];
            assert!(
                p.cut || p.received.is_empty(),
                "connection {} ended inside a frame ({} bytes of it received)",
                p.idx,
                p.received.len()
            );
        }
        idle_write_buffer_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::run;

    // Tests share one engine and run inputs one at a time.

    /// Hello, Register slot 0, Login slot 0, Send to slot 0, Ack what was seen: connection 0
    /// stays logged in.
    const LOGGED_IN_AND_SENT: [u8; 29] = [
        2, 0, 0, 1, // Hello on connection 0, request id 1
        3, 0, 0, 0, 1, // Register slot 0
        4, 0, 0, 0, 1, // Login slot 0 with the right password
        6, 0, 1, 2, 0, 10, 0, 0, 0, 0, 1, // Send to user slot 0
        7, 0, 0, 1, // Ack what was seen
    ];

    #[test]
    fn the_harness_logs_in_and_sends() {
        // Then Sync and Logout.
        let input = [&LOGGED_IN_AND_SENT[..], &[8, 0, 0, 5, 1, 20, 0, 1]].concat();
        let summary = run(&input);
        assert_eq!(summary.frames_in, 7, "{summary:?}");
        assert_eq!(summary.logins_ok, 1, "{summary:?}");
        assert_eq!(summary.messages_acked, 1, "{summary:?}");
        assert_eq!(summary.errors_sent, 0, "{summary:?}");
    }

    /// A flush kept a small write buffer warm for good, so every idle connection held the
    /// buffer of its last frames (100-300 B each, a sixth of an idle connection's memory).
    #[test]
    fn an_idle_connection_holds_no_write_buffer_after_a_sweep() {
        let summary = run(&LOGGED_IN_AND_SENT);
        assert_eq!(summary.logins_ok, 1, "{summary:?}");
        assert_eq!(summary.idle_write_buffer_bytes, 0, "{summary:?}");
    }

    /// One tick stores at most `CURSOR_WRITES_PER_TICK_MAX` cursors, so a burst of due
    /// cursors holds a core for a bounded time; entries not yet due stay queued.
    #[test]
    fn a_cursor_tick_stores_at_most_its_bound_and_nothing_early() {
        use crate::limits::CURSOR_WRITES_PER_TICK_MAX;
        let engine = super::engine();
        let _running = engine.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let input_no = engine.inputs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut h = super::Harness::new(engine, input_no);
        // Due entries of connections that are gone: looked at, skipped, counted.
        for idx in 0..CURSOR_WRITES_PER_TICK_MAX + 10 {
            h.core.cursor_due.push_back((0, idx, 0));
        }
        h.core.cursor_due.push_back((u64::MAX, 0, 0));
        assert_eq!(h.core.write_due_cursors(), CURSOR_WRITES_PER_TICK_MAX);
        assert_eq!(h.core.write_due_cursors(), 10);
        assert_eq!(h.core.write_due_cursors(), 0, "an entry not yet due waits");
        assert_eq!(h.core.cursor_due.len(), 1);
    }

    #[test]
    fn the_fuzz_seeds_get_past_login() {
        // fuzz/seeds/engine_frames: the starting corpus scripts/fuzz hands the fuzzer.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/engine_frames");
        let mut seeds = 0;
        for entry in std::fs::read_dir(&dir).expect("the seed directory") {
            let path = entry.expect("a seed").path();
            let summary = run(&std::fs::read(&path).expect("a readable seed"));
            assert!(summary.logins_ok >= 1, "{}: {summary:?}", path.display());
            assert!(summary.messages_acked >= 1, "{}: {summary:?}", path.display());
            seeds += 1;
        }
        assert!(seeds >= 3);
    }

    /// Every input the fuzzer found breaking an invariant, kept in
    /// fuzz/regressions/engine_frames/ under a name that says what broke:
    /// - `unread-replies-pile-up`: a client that floods requests (here `Logout` before
    ///   `Hello`) while reading slowly made the core queue every reply: unsent output grew
    ///   without bound. Now a connection over its outbound limit is read no further.
    /// - `ws-read-after-refused-message`: a read that reached a WebSocket connection after
    ///   its layer refused a message ran tungstenite's reader on from the half-read frame,
    ///   which fails a debug assertion. Now the layer reads nothing more from that peer.
    #[test]
    fn fuzz_regressions_keep_the_invariants() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/engine_frames");
        let mut inputs = 0;
        for entry in std::fs::read_dir(&dir).expect("the regression directory") {
            let path = entry.expect("an input").path();
            let data = std::fs::read(&path).expect("a readable input");
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{} broke an invariant again", path.display());
            inputs += 1;
        }
        assert!(inputs >= 1);
    }

    /// A flood stops at the input's frame budget: eight floods of 2,040 copies each after
    /// a Hello send at most `FRAMES_PER_INPUT_MAX` frames in all.
    #[test]
    fn floods_stop_at_the_frame_budget() {
        let input = [&[2u8, 0, 0, 1][..], &[25, 0, 255].repeat(8)].concat();
        let summary = run(&input);
        assert!(summary.frames_in <= super::FRAMES_PER_INPUT_MAX as u64, "{summary:?}");
        assert!(summary.errors_sent >= 100, "the flood got there: {summary:?}");
    }

    /// An input is read for `OPS_PER_INPUT_MAX` operations: a Hello after that many sweeps
    /// is never sent.
    #[test]
    fn operations_past_the_budget_are_not_read() {
        let input = [vec![26u8; super::OPS_PER_INPUT_MAX], vec![2, 0, 0, 1]].concat();
        assert_eq!(run(&input).frames_in, 0);
        assert_eq!(
            run(&input[1..]).frames_in,
            1,
            "one operation fewer and the Hello is sent"
        );
    }

    #[test]
    fn seeded_random_inputs_keep_the_invariants() {
        // A quick stand-in for the fuzzer in `cargo test`: seeded, the seed in the message.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for input_no in 0..40 {
            let mut data = Vec::with_capacity(256);
            for _ in 0..256 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                data.push(state as u8);
            }
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(
                outcome.is_ok(),
                "input {input_no} (xorshift seed 0x9e3779b97f4a7c15) broke an invariant: {data:?}"
            );
        }
    }
}
