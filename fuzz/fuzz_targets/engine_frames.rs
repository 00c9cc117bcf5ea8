//! The engine's request handling, fed a sequence of operations: one `Core` with its real
//! shared state, log writer and helpers on a RocksDB in a temporary directory, and a few
//! connections (plain TCP or WebSocket) over Unix socket pairs. The input is read as operations (raw bytes into the
//! connection's read path, well-formed frames of every client request naming the users,
//! tokens and groups the server handed out, closes, a client that stops reading, floods);
//! see `hotline_engine::fuzzing` for the operations and the invariants it asserts: no
//! panic, every byte a client receives is whole valid frames, nothing handled once a
//! connection is closing, unsent output bounded, every request answered.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hotline_engine::fuzzing::run(data);
});
