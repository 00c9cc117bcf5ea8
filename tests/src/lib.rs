//! `hotline-tests`: the harness behind the end-to-end tests in `tests/tests/`. Each test
//! starts the real `hotline` binary on port 0 with a fresh data directory and talks to it
//! over real sockets through `hotline-wire`'s [`ClientSession`](hotline_wire::ClientSession),
//! the one client there is.
//!
//! # Layout
//! - `server`: [`Server`] and [`ServerOptions`], one `hotline serve` process on a temporary
//!   data directory: start, `kill -9`, SIGTERM, restart on the same directory, `hotline user
//!   add`, and [`Server::provision`] for token-only accounts in bulk (the 1,000-member group).
//! - `client`: [`Client`], a blocking socket driving a `ClientSession` over plain TCP, TLS
//!   or WebSocket ([`Transport`]), with one helper per request and raw writes for the tests
//!   that are about bytes.
//! - `owned`: owned copies of what the server sends ([`OwnedEvent`], [`OwnedDeliver`],
//!   [`OwnedSyncPage`]) and the checks on a list of deliveries ([`assert_dense`],
//!   [`assert_each_acked_once`]).
//! - `payload`: [`payload()`] and [`payload_number`], numbered payloads a test can recognise
//!   again.
//! - `loadgen`: [`loadgen_bin`], [`run_loadgen`] and [`wait_with_deadline`], the load
//!   generator beside the server under test and a bounded wait for a child process.
//! - `system`: [`run_tool`], [`is_root`] and [`ext4_loop_device`], for the tests that mount a file system of
//!   their own under the server (a read-only disk, a power loss).
//! - `fault_fs`: [`FsyncFaultFs`], a pass-through FUSE file system over the data directory
//!   whose next fsync of a chosen file fails with `EIO`, once (a failed fsync).
//!
//! Each module's doc states its invariants; the one they share is that nothing waits
//! forever: every wait has a deadline, and a missed one panics saying what was awaited.
//! The modules are private: tests name everything through the re-exports below.

mod client;
mod fault_fs;
mod loadgen;
mod owned;
mod payload;
mod server;
mod system;

pub use client::{Client, Pipelined, Transport, RAW_REQUEST_ID_FIRST, REPLY_WAIT_DEFAULT};
pub use fault_fs::FsyncFaultFs;
pub use loadgen::{loadgen_bin, run_loadgen, wait_with_deadline, LoadgenReport};
pub use owned::{
    assert_dense, assert_each_acked_once, HelloInfo, LoggedIn, OwnedDeliver, OwnedEvent, OwnedGroupInfo, OwnedSyncPage,
};
pub use payload::{numbered, payload, payload_number};
pub use server::{
    api_request, hotline_bin, http_get, test_certificate, ApiResponse, Durability, Registration, Server, ServerOptions,
    ABUSE_LIMIT_FLAGS, API_LINE_PREFIX, LISTENING_LINE_PREFIX, METRICS_LINE_PREFIX, SERVER_EXIT_WAIT,
    SERVER_START_WAIT, TLS_LINE_PREFIX, WS_LINE_PREFIXES,
};
pub use system::{ext4_loop_device, is_root, run_tool};
