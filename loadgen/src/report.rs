//! The JSON report of a run (and of each capacity step) and its human summary.
//!
//! Every report names the commit, the machine and the exact command, so it can be
//! reproduced. Counts are over the whole step (warmup included), so nothing sent escapes the
//! books; throughput and latencies are over the measured window only.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::coordinator::{Connected, LoadArgs, StepOutcome};
use crate::hist::Percentiles;
use crate::sys::{self, Machine};

/// Percentiles as the report prints them (the histogram's own summary, in µs).
pub(crate) type LatencyUs = Percentiles;

/// One run (or one capacity step), as written to `--json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Report {
    pub label: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub command: String,
    pub commit: String,
    /// The working tree had uncommitted changes to tracked files.
    pub commit_dirty: bool,
    pub machine: Machine,
    pub started_unix_ms: u64,
    pub target: String,
    pub connections: usize,
    pub connected: u64,
    pub connect_failed: u64,
    pub workers: usize,
    pub source_addrs: usize,
    pub pattern: String,
    /// Offered deliveries per second (for fanout:K and group:K, K per message).
    pub rate: f64,
    pub payload: usize,
    pub duration: f64,
    pub warmup: f64,
    pub drain: f64,
    pub connect_rate: f64,
    pub ack_interval_ms: u64,
    pub sent: u64,
    pub acked: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// Error frames, lost connections, failed connects and sends that could not be made.
    pub errors: u64,
    pub error_codes: BTreeMap<String, u64>,
    /// Sends refused with an `Error` (counted in `errors` too).
    pub failed: u64,
    /// Sends neither acknowledged nor refused when the drain ended.
    pub unacked: u64,
    /// Scheduled sends not made: connection gone or 1 MiB unsent (counted in `errors`).
    pub skipped: u64,
    /// Acknowledged, undelivered messages to recipients that had disconnected.
    pub unverified: u64,
    /// Earlier runs' messages received (and ignored) after login.
    pub backlog_ignored: u64,
    /// Every acknowledged message was accounted for before the drain deadline.
    pub settled: bool,
    /// Sends scheduled in the measured window, per second.
    pub offered_msgs_per_s: f64,
    /// First deliveries inside the measured window, per second.
    pub throughput_msgs_per_s: f64,
    /// Largest lag of a send behind its schedule (loadgen could not keep up if large), µs.
    pub send_lag_max_us: u64,
    pub latency_us: LatencyUs,
    /// `--split-s`: the seconds at the front of the window measured apart (else absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_s: Option<f64>,
    /// With `--split-s`: delivery latency of sends scheduled in the window's first
    /// `split_s` seconds, and of the rest of the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_first_us: Option<LatencyUs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_rest_us: Option<LatencyUs>,
    /// `[percentile, µs]` points of the delivery latency distribution.
    pub latency_curve_us: Vec<(f64, u64)>,
    pub ack_latency_us: LatencyUs,
    /// How late the load generator's sends went out behind schedule (part of both
    /// latencies above: what the load generator itself added).
    pub send_lag_us: LatencyUs,
    pub connect_latency_us: LatencyUs,
    pub connect_seconds: f64,
    pub server_pid: Option<u32>,
    pub server_rss_bytes_before: Option<u64>,
    /// Server RSS with every connection logged in and idle.
    pub server_rss_bytes: Option<u64>,
    pub server_rss_bytes_after: Option<u64>,
    /// (RSS idle − RSS before connecting) / connections.
    pub server_rss_bytes_per_connection: Option<f64>,
    /// Kernel TCP memory with every connection idle (sockstat `mem` × page size).
    pub kernel_tcp_mem_bytes: Option<u64>,
    pub kernel_tcp_mem_bytes_before: Option<u64>,
    pub kernel_tcp_mem_bytes_after: Option<u64>,
    /// Server CPU during the measured window, % of one core.
    pub server_cpu_percent: Option<f64>,
    /// Load generator (all workers) CPU during the measured window, % of one core.
    pub loadgen_cpu_percent: f64,
    /// The whole machine during the window, % of all cores: busy, and stolen by the
    /// hypervisor (a noisy neighbour shows here).
    pub machine_busy_percent: Option<f64>,
    pub machine_steal_percent: Option<f64>,
}

impl Report {
    /// Builds the report of one step.
    pub(crate) fn new(
        args: &LoadArgs,
        workers: usize,
        connected: &Connected,
        step: &StepOutcome,
    ) -> anyhow::Result<Report> {
        let (commit, commit_dirty) = sys::commit();
        let per_connection = match (connected.server_rss_before, connected.server_rss_idle) {
            (Some(before), Some(idle)) if connected.connected > 0 => {
                Some(((idle as f64 - before as f64) / connected.connected as f64 * 10.0).round() / 10.0)
            }
            _ => None,
        };
        let mut error_codes: BTreeMap<String, u64> = BTreeMap::new();
        for (code, n) in connected.errors.iter().chain(&step.error_codes) {
            *error_codes.entry(code.clone()).or_default() += n;
        }
        if step.skipped > 0 {
            error_codes.insert("skipped sends".to_owned(), step.skipped);
        }
        let t = &step.tally;
        Ok(Report {
            label: args.label.clone(),
            tags: args.tag_pairs()?.into_iter().collect(),
            command: sys::command_line(),
            commit,
            commit_dirty,
            machine: Machine::this(),
            started_unix_ms: crate::clock::unix_ms(),
            target: args.target.to_string(),
            connections: args.connections,
            connected: connected.connected,
            connect_failed: connected.failed,
            workers,
            source_addrs: args.source_addrs()?.len(),
            pattern: args.pattern.to_string(),
            rate: step.rate,
            payload: args.payload,
            duration: args.duration,
            warmup: args.warmup,
            drain: args.drain,
            connect_rate: args.connect_rate,
            ack_interval_ms: args.ack_interval_ms,
            sent: t.sent,
            acked: t.acked,
            delivered: t.delivered,
            lost: t.lost,
            duplicated: t.duplicated,
            out_of_order: t.out_of_order,
            errors: step.errors_total() + connected.failed,
            error_codes,
            failed: t.failed,
            unacked: t.unacked,
            skipped: step.skipped,
            unverified: step.unverified,
            backlog_ignored: connected.backlog + step.stale,
            settled: step.settled,
            offered_msgs_per_s: round1(step.window_sent as f64 / args.duration),
            throughput_msgs_per_s: round1(step.throughput()),
            send_lag_max_us: step.send_lag_max_ns / 1_000,
            latency_us: step.latency.percentiles(),
            split_s: args.split_s,
            latency_first_us: step.latency_split.as_ref().map(|(first, _)| first.percentiles()),
            latency_rest_us: step.latency_split.as_ref().map(|(_, rest)| rest.percentiles()),
            latency_curve_us: step.latency.curve(),
            ack_latency_us: step.ack_latency.percentiles(),
            send_lag_us: step.send_lag.percentiles(),
            connect_latency_us: connected.connect_latency.percentiles(),
            connect_seconds: round1(connected.connect_s),
            server_pid: args.server_pid,
            server_rss_bytes_before: connected.server_rss_before,
            server_rss_bytes: connected.server_rss_idle,
            server_rss_bytes_after: step.server_rss_after,
            server_rss_bytes_per_connection: per_connection,
            kernel_tcp_mem_bytes: connected.tcp_mem_idle,
            kernel_tcp_mem_bytes_before: connected.tcp_mem_before,
            kernel_tcp_mem_bytes_after: step.tcp_mem_after,
            server_cpu_percent: step.server_cpu_percent.map(round1),
            loadgen_cpu_percent: round1(step.loadgen_cpu_percent),
            machine_busy_percent: step.machine_busy_percent.map(round1),
            machine_steal_percent: step.machine_steal_percent.map(round1),
        })
    }

    /// Whether the books show a correctness failure (the exit status says so).
    pub(crate) fn incorrect(&self) -> bool {
        self.lost > 0 || self.duplicated > 0
    }

    /// A few lines for a person.
    pub(crate) fn summary(&self) -> String {
        let mut s = String::new();
        let lat = |l: &LatencyUs| {
            format!(
                "p50 {} p90 {} p99 {} p99.9 {} max {} µs (n={})",
                l.p50, l.p90, l.p99, l.p999, l.max, l.count
            )
        };
        let _ = writeln!(
            s,
            "hotline-loadgen {} -> {}{}: {} connections ({} failed) in {} worker(s), {} offered {:.0} deliveries/s, payload {} B",
            self.pattern,
            self.target,
            self.tags
                .get("target_kind")
                .map_or_else(String::new, |kind| format!(" ({kind})")),
            self.connected,
            self.connect_failed,
            self.workers,
            self.label.as_deref().unwrap_or("run"),
            self.rate,
            self.payload
        );
        let _ = writeln!(
            s,
            "  books:      sent {} acked {} delivered {} | lost {} duplicated {} out-of-order {} | errors {} unacked {}{}",
            self.sent,
            self.acked,
            self.delivered,
            self.lost,
            self.duplicated,
            self.out_of_order,
            self.errors,
            self.unacked,
            if self.settled { "" } else { " (drain timed out)" }
        );
        if !self.error_codes.is_empty() {
            let codes: Vec<String> = self.error_codes.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            let _ = writeln!(s, "  errors:     {}", codes.join(", "));
        }
        let _ = writeln!(
            s,
            "  throughput: {:.0} delivered/s over {} s (offered {:.0}/s); send lag max {} µs",
            self.throughput_msgs_per_s, self.duration, self.offered_msgs_per_s, self.send_lag_max_us
        );
        let _ = writeln!(s, "  delivery:   {}", lat(&self.latency_us));
        if let (Some(split), Some(first), Some(rest)) = (self.split_s, &self.latency_first_us, &self.latency_rest_us) {
            let _ = writeln!(s, "    first {split} s: {}", lat(first));
            let _ = writeln!(s, "    the rest:  {}", lat(rest));
        }
        let _ = writeln!(s, "  send ack:   {}", lat(&self.ack_latency_us));
        let _ = writeln!(s, "  send lag:   {} (loadgen lateness)", lat(&self.send_lag_us));
        let _ = writeln!(
            s,
            "  connect:    {} ({} s)",
            lat(&self.connect_latency_us),
            self.connect_seconds
        );
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        if let (Some(before), Some(idle)) = (self.server_rss_bytes_before, self.server_rss_bytes) {
            let _ = writeln!(
                s,
                "  server:     RSS {:.1} MiB before, {:.1} MiB idle-connected ({} B/connection), {:.1} MiB after; CPU {}",
                mib(before),
                mib(idle),
                self.server_rss_bytes_per_connection
                    .map_or_else(|| "?".to_owned(), |b| format!("{b:.0}")),
                self.server_rss_bytes_after.map_or(0.0, mib),
                self.server_cpu_percent
                    .map_or_else(|| "?".to_owned(), |c| format!("{c:.0}% of a core"))
            );
        }
        let _ = writeln!(
            s,
            "  loadgen:    CPU {:.0}% of a core; machine {:.0}% busy, {:.1}% stolen; kernel TCP memory {:.1} MiB idle-connected",
            self.loadgen_cpu_percent,
            self.machine_busy_percent.unwrap_or(0.0),
            self.machine_steal_percent.unwrap_or(0.0),
            self.kernel_tcp_mem_bytes.map_or(0.0, mib)
        );
        s
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
