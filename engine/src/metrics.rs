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
    /// Abuse limits hit (each answered `Error{RateLimited}`), one counter per limit.
    pub abuse: AbuseCounters,
}

/// Requests refused by an abuse limit ([`crate::abuse`]), per limit.
#[derive(Debug, Default)]
pub struct AbuseCounters {
    pub login_per_ip: AtomicU64,
    pub login_per_username: AtomicU64,
    pub messages_per_user: AtomicU64,
    pub messages_per_conversation: AtomicU64,
    pub connections_per_ip: AtomicU64,
    pub registrations_per_ip: AtomicU64,
}

impl AbuseCounters {
    pub fn counter(&self, limit: crate::abuse::Limit) -> &AtomicU64 {
        use crate::abuse::Limit;
        match limit {
            Limit::LoginPerIp => &self.login_per_ip,
            Limit::LoginPerUsername => &self.login_per_username,
            Limit::MessagesPerUser => &self.messages_per_user,
            Limit::MessagesPerConversation => &self.messages_per_conversation,
            Limit::ConnectionsPerIp => &self.connections_per_ip,
            Limit::RegistrationsPerIp => &self.registrations_per_ip,
        }
    }

    /// One log line: `name=count` for each limit.
    pub fn summary(&self) -> String {
        let get = |c: &AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        format!(
            "rate_limited login_per_ip={} login_per_username={} messages_per_user={} \
             messages_per_conversation={} connections_per_ip={} registrations_per_ip={}",
            get(&self.login_per_ip),
            get(&self.login_per_username),
            get(&self.messages_per_user),
            get(&self.messages_per_conversation),
            get(&self.connections_per_ip),
            get(&self.registrations_per_ip),
        )
    }
}
