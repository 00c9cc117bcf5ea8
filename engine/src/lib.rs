//! `hotline-engine`: the Hotline server.
//!
//! # Layout
//! - [`server`]: start-up checks, listeners, the thread layout, graceful shutdown.
//! - [`core`]: one pinned monoio runtime per core: connections, online users, delivery,
//!   catch-up from the log, backpressure. [`shared`]: what every thread shares.
//! - [`conn`]: each core's event loop over its connections: accept, readiness-driven reads
//!   into a per-core buffer, framing, closing, handing a logged-in connection to its
//!   user's home core. [`poller`]: the one readiness source per core (a ring of its own
//!   with a multishot poll per connection, or epoll) that loop waits on.
//! - [`handlers`]: one file per family of protocol operations, one `match` dispatching.
//! - [`mailbox`]: the bounded lock-free queues (and wake-up) through which other threads
//!   reach a core, the envelopes they carry, [`mailbox::ReplyTo`] (where an outcome goes);
//!   `home_core`, the stable user → core hash.
//! - [`storage`]: RocksDB column families and reads; [`storage::writer`], the single log
//!   writer that sequences inbox seqs and group-commits every mutation, and owns group
//!   membership, conversation states, receipts and persistence levels. Its requests
//!   (`WriteOp`) and outcomes (`WriteOutcome`) are declared there, one file per family of
//!   operations (`writer/{messages,accounts,conversations}.rs`).
//! - [`helper`]: the bounded pool for argon2 and log reads (never on a core thread); its
//!   jobs (`HelperJob`) and outcomes (`HelperOutcome`) beside it.
//! - [`presence`]: who is online, who watches whom, coalesced publication across cores.
//! - [`transport`]: TLS and WebSocket connections: a sans-IO layer per connection that
//!   moves with it between cores. [`web`]: the web chat page's files.
//! - [`auth`]: password hashing, tokens, name rules. [`config`]: settings and how they
//!   relate. [`limits`]: every limit more than one module uses, with its unit and why.
//! - [`retention`]: the background thread that expires old payloads. [`control`]: the
//!   admin-only Unix socket (backup, export, stats).
//! - [`integration`]: the HTTP API for services and bots, and outgoing webhooks (own threads).
//! - [`admin`]: offline commands (`hotline user add`, backup, restore, export).
//!   [`metrics`]: counters and the Prometheus endpoint (its own thread), over
//!   [`histogram`]. [`logging`]: JSON log lines.
//! - [`abuse`]: abuse limits (login attempts, message rates, connections and registrations
//!   per IP), shared by every core. [`admission`]: each core's admission gate, which sheds
//!   sends once requests queue longer than `--shed-queue-delay-ms`.
//!
//! # Errors
//! Operating errors are values: [`storage::StorageError`] (RocksDB, a locked or read-only
//! data directory, a corrupt record, a thread that could not start), [`config::ConfigError`]
//! (key, value and why), [`storage::record::RecordError`]. A request that gets no result is
//! refused with a [`storage::Refusal`]: the client's mistake (answered with its
//! `ErrorCode`), or a storage failure (logged, answered `StorageUnavailable`), the same for
//! the writer and the helper pool. A peer's mistake closes at most that peer's connection,
//! with an `Error` frame first. A broken invariant is a bug: it is asserted
//! (`debug_assert!` where a release build can recover, and the fuzz harness builds with
//! debug assertions), never limped past silently.
//!
//! # One message
//! A `Send` read on the sender's home core goes to the log writer, which appends it to the
//! recipient's and the sender's inbox (and the dedup family) in one batch, fsyncs the
//! group commit, then notifies the recipient's home core (live `Deliver` to each device)
//! and the sender's (`SendAck`, and `Deliver` to the sender's other devices).

pub mod abuse;
pub mod admin;
pub(crate) mod admission;
pub(crate) mod auth;
pub mod config;
pub(crate) mod conn;
pub mod control;
pub(crate) mod core;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod handlers;
pub(crate) mod helper;
pub(crate) mod histogram;
pub mod integration;
pub mod limits;
pub mod logging;
pub mod mailbox;
pub(crate) mod metrics;
pub mod poller;
pub(crate) mod presence;
pub(crate) mod retention;
pub mod server;
pub(crate) mod shared;
pub mod storage;
pub(crate) mod transport;
pub(crate) mod web;
