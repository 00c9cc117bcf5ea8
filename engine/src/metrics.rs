//! Process-wide counters, updated with relaxed atomics from every thread. (The Prometheus
//! endpoint that exports them arrives with the operations work; the load generator and
//! logs read them meanwhile.)

use std::sync::atomic::AtomicU64;

/// Counters; every field counts events since start.
#[derive(Debug, Default)]
pub struct Metrics {
    pub bytes_in: AtomicU64,
    pub frames_in: AtomicU64,
    pub frames_malformed: AtomicU64,
    pub errors_sent: AtomicU64,
    pub logins_ok: AtomicU64,
    pub logins_failed: AtomicU64,
    pub messages_acked: AtomicU64,
    pub delivered_catch_up: AtomicU64,
    /// Devices switched from live pushes to catch-up (slow readers).
    pub lagging_switches: AtomicU64,
    /// Requests refused with `Overloaded` because a bounded queue was full.
    pub shed_overloaded: AtomicU64,
    /// Connections refused at accept because the core was full.
    pub connections_refused: AtomicU64,
    /// Presence states published to subscribers (after coalescing).
    pub presence_published: AtomicU64,
    /// Presence notices or subscriptions dropped at a bound (full queue, full list).
    pub presence_shed: AtomicU64,
    /// `Typing` frames dropped by the per-device rate limit.
    pub typing_rate_limited: AtomicU64,
}
