//! Every engine limit that more than one module uses, each with its unit and why, and the
//! relations between them checked at compile time. A limit used by one module only stays
//! beside its code (a queue's bound in its queue's module). This module imports nothing
//! from the crate, so every module may use it.
//!
//! Limits an operator can change are the `*_DEFAULT`s of [`crate::config::ServeConfig`];
//! `ServeConfig::validate` checks how the configured values relate.

// Cores and connections.

/// Most cores a server runs: the metrics keep one slot per core, and
/// `ServeConfig::validate` refuses more.
pub const CORES_MAX: usize = 256;
/// Default most connections one core holds (the process's open-file limit binds first here).
pub const CONNECTIONS_PER_CORE_MAX_DEFAULT: usize = 1 << 20;
/// Default helper threads (argon2, reads).
pub const HELPER_THREADS_DEFAULT: usize = 2;
/// Most bytes of one `DeviceSession` (one per logged-in connection): memory per idle
/// connection is a budget (2 KiB), and the session takes a 128-byte allocation of it.
/// `core.rs` asserts the type's size against it.
pub const DEVICE_SESSION_BYTES_MAX: usize = 128;

// Reading and writing one connection.

/// Most bytes read from one connection per readiness, so one busy peer cannot starve the core.
pub const READ_BYTES_PER_WAKE_MAX: usize = 256 << 10;
/// Readiness events one pass of a core's event loop handles before its other tasks run.
pub const IO_EVENTS_PER_PASS_MAX: usize = 1_024;
/// The per-core read buffer every connection reads into (an idle connection holds none).
pub const READ_SCRATCH_BYTES: usize = 64 << 10;
/// Default most bytes queued for one connection before its device stops getting live
/// pushes and catches up from the log instead.
pub const OUTBOUND_BYTES_MAX_DEFAULT: usize = 256 << 10;
/// Output buffer capacity (bytes) a connection keeps after a flush; larger buffers are freed.
pub const OUTBOUND_RETAIN_BYTES: usize = 16 << 10;
/// Most malformed frames a connection may send before it is closed.
pub const MALFORMED_FRAMES_MAX: u32 = 16;
/// How long (ms) a closing connection may take to flush before it is cut.
pub const CLOSE_LINGER_MS: u64 = 1_000;
/// How long (ms) a user's traffic must pause after a tentative delivery before its devices
/// get a `Durable` push (early delivery); while traffic flows each `Deliver` carries the
/// watermark. Bounds how stale a device's acknowledgeable position gets.
pub const DURABLE_ANNOUNCE_DELAY_MS: u64 = 1_000;
/// How long a plain (fire-and-forget) `Ack` waits before the device's cursor is stored, so
/// a device acking every read costs one cursor write per second at most. Counted from the
/// first unstored `Ack`, so devices' writes are spread over time as their acks are, not
/// all issued at one sweep (a burst of a thousand cursor writes held a core for 2-3 ms).
pub const CURSOR_STORE_DELAY_MS: u64 = 1_000;
/// How often a core stores the cursors that came due.
pub const CURSOR_TICK_MS: u64 = 20;
/// Most cursors one tick stores (the rest wait for the next tick), so that a burst of
/// due cursors holds a core for a bounded time (~1 ms of writes).
pub const CURSOR_WRITES_PER_TICK_MAX: usize = 512;
/// Default time (ms) a connection has to log in.
pub const LOGIN_TIMEOUT_MS_DEFAULT: u32 = 10_000;

/// One `recv` fills at most the scratch buffer, so a single read stays within the
/// per-wake fairness bound (a wake may read the buffer several times).
const _: () = assert!(READ_SCRATCH_BYTES <= READ_BYTES_PER_WAKE_MAX);
/// A buffer kept warm after a flush is smaller than the most a connection may queue, or
/// an idle connection would hold as much as a busy one.
const _: () = assert!(OUTBOUND_RETAIN_BYTES < OUTBOUND_BYTES_MAX_DEFAULT);

// Requests in flight per connection.

/// Most unacknowledged client writes (Sends and conversation requests) per connection;
/// beyond it the server stops reading that connection until answers go out (TCP pushes
/// back on the client). A `u16`, so `DeviceSession` stays within its budget.
pub const SENDS_IN_FLIGHT_MAX: u16 = 1_024;
/// Most `Sync`s and list reads one connection may have in flight.
pub const SYNCS_IN_FLIGHT_MAX: u16 = 4;
/// Most `Ack`s with a request id waiting for their `AckOk` on one connection.
pub const ACK_WAITERS_MAX: usize = 64;
/// Most messages a device catches up per log read.
pub const CATCH_UP_PAGE_MESSAGES_MAX: usize = 256;
/// Default queueing delay (ms) past which a core sheds new sends
/// (`--shed-queue-delay-ms`; see [`crate::admission`]): well above one fsync of a local
/// SSD (0.2-0.4 ms here), so group commit alone never trips it.
pub const SHED_QUEUE_DELAY_MS_DEFAULT: u32 = 5;
/// Most requests one core may have out to the writer and helpers at once (all its
/// connections together); past it, new client writes and reads answer `Overloaded`.
pub const CORE_REQUESTS_IN_FLIGHT_MAX: u64 = 16_384;
/// What an `Overloaded` error tells the client to wait (ms) before retrying: about one
/// group commit under load, so a retry meets a queue that has moved on.
pub const OVERLOADED_RETRY_AFTER_MS: u32 = 100;

// Groups, conversations, presence.

/// Default most members of one group (`--group-members-max`).
pub const GROUP_MEMBERS_MAX_DEFAULT: usize = 10_000;
/// Longest group name, in UTF-8 bytes.
pub const GROUP_NAME_BYTES_MAX: usize = 128;
/// Shortest time (ms) between two `Typing` frames of one device that are passed on.
pub const TYPING_INTERVAL_MS_MIN: u64 = 1_000;
/// Most users one `PresenceSubscribe` names.
pub const PRESENCE_SUBSCRIBE_USERS_MAX: usize = 256;
/// Most "came online" events (`--webhook-online`) the cores queue for the webhook thread;
/// a full queue drops the event and counts it as a failed webhook.
pub const ONLINE_EVENTS_MAX: usize = 4_096;

// Retention.

/// Default time (ms) between two retention sweeps.
pub const RETENTION_SWEEP_INTERVAL_MS_DEFAULT: u64 = 3_600_000;
