//! What the coordinator and its workers say to each other: one JSON object per line, the
//! coordinator writing [`WorkerConfig`] then [`Command`]s to a worker's stdin, the worker
//! writing [`WorkerMsg`]s to its stdout. Histograms travel as base64 V2 serializations.
//!
//! Timing is absolute `CLOCK_MONOTONIC` nanoseconds, the same clock in every process, so a
//! step starts at the same instant in every worker.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::accounting::Tally;
use crate::peers::TargetKind;
use crate::plan::Pattern;

/// Everything a worker needs before it connects (its first stdin line).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WorkerConfig {
    /// This worker's number, from 0.
    pub worker: usize,
    pub workers: usize,
    pub target: SocketAddr,
    /// What `target` is: Hotline or a peer (see `peers`).
    pub target_kind: TargetKind,
    /// Hotline's accounts file (`None` for a peer: connection `i` is user `i`).
    pub accounts_file: Option<PathBuf>,
    /// The accounts-file lines (= connections) this worker holds: whole units.
    pub accounts: Range<usize>,
    pub pattern: Pattern,
    pub payload_bytes: usize,
    /// Identifies this run in payloads and client message ids.
    pub run_nonce: u32,
    /// How long after receiving something a connection acknowledges it.
    pub ack_interval_ms: u64,
    /// This worker's share of `--connect-rate`.
    pub connect_rate_per_s: f64,
    /// Local addresses to bind client sockets to, round-robin (empty: the kernel picks).
    pub source_addrs: Vec<IpAddr>,
    /// Senders in the whole run (all workers), to derive this worker's share of the rate.
    pub senders_total: usize,
    /// What the connections speak to `target`.
    pub transport: TransportKind,
    /// For `tls`: the PEM certificate(s) to trust, and the server name to verify.
    pub tls_ca: Option<PathBuf>,
    pub tls_server_name: String,
    /// `group:K`: users outside the run added to every group (`--group-extra-member`).
    #[serde(default)]
    pub group_extra_members: Vec<u64>,
}

/// How a load-generator connection reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TransportKind {
    /// Length-prefixed frames on TCP (`--listen`).
    Tcp,
    /// The same inside TLS (`--tls-listen`).
    Tls,
    /// One frame per binary WebSocket message (`--ws-listen`).
    Ws,
}

impl std::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TransportKind::Tcp => "tcp",
            TransportKind::Tls => "tls",
            TransportKind::Ws => "ws",
        })
    }
}

/// One measured step: send from `t0_ns` to `t0_ns + warmup_ns + duration_ns`, measure the
/// last `duration_ns` of it, then wait up to `drain_ns` for the books to settle.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct StepPlan {
    /// `Send` requests per second over the whole run (all workers).
    pub rate: f64,
    pub t0_ns: u64,
    pub warmup_ns: u64,
    pub duration_ns: u64,
    pub drain_ns: u64,
    /// `--split-s`: sends scheduled in the first `split_ns` of the window are also measured
    /// apart from the rest.
    #[serde(default)]
    pub split_ns: Option<u64>,
}

/// Coordinator → worker, after the config line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Command {
    Step(StepPlan),
    /// Acknowledge everything delivered (confirmed), disconnect, exit.
    Quit,
}

/// A worker's connect phase, once every connection is logged in (or failed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReadyReport {
    pub connected: u64,
    pub failed: u64,
    /// Messages from earlier runs delivered after login, and ignored.
    pub backlog: u64,
    /// Connect + Hello + Login → LoginOk, µs.
    pub connect_latency: String,
    pub error_codes: Vec<(String, u64)>,
}

/// Running counts (this step), for the progress line.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct Progress {
    pub connected: u64,
    pub failed: u64,
    pub sent: u64,
    pub acked: u64,
    pub delivered: u64,
    pub errors: u64,
}

/// What one worker measured in one step.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct StepReport {
    pub tally: Tally,
    /// First deliveries that arrived inside the measured window.
    pub window_delivered: u64,
    /// Sends scheduled inside the measured window.
    pub window_sent: u64,
    /// Sends not made because the connection was gone or its outbound buffer was full.
    pub skipped: u64,
    /// Error frames and connection failures.
    pub errors: u64,
    pub error_codes: Vec<(String, u64)>,
    /// Connections lost during the step.
    pub disconnected: u64,
    /// Acknowledged but undelivered messages whose recipient had disconnected (not counted
    /// as lost: the server still holds them).
    pub unverified: u64,
    /// Deliveries from earlier runs, or from senders this worker did not expect.
    pub stale: u64,
    pub unexpected: u64,
    /// Whether the books settled before the drain deadline.
    pub settled: bool,
    /// Worker CPU time during the measured window, ns.
    pub cpu_window_ns: u64,
    /// Largest lag of a send behind its schedule, ns.
    pub send_lag_max_ns: u64,
    /// Delivery latency (scheduled send → delivery), µs, for sends scheduled in the window.
    pub latency: String,
    /// SendAck latency (scheduled send → SendAck), µs, for sends scheduled in the window.
    pub ack_latency: String,
    /// How late sends went out behind their schedule (the load generator's own lateness,
    /// included in both latencies above), µs, for sends scheduled in the window.
    pub send_lag: String,
    /// With a split (`--split-s`): the delivery latency of sends scheduled before the split
    /// point of the window, and of those after it.
    #[serde(default)]
    pub latency_split: Option<(String, String)>,
}

/// Worker → coordinator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum WorkerMsg {
    Progress(Progress),
    Ready(ReadyReport),
    StepDone(Box<StepReport>),
    /// Quit finished: this many cursors were confirmed durable.
    Bye {
        acks_confirmed: u64,
    },
    /// The worker cannot go on.
    Fatal(String),
}

/// Writes one message as a line on stdout (the pipe to the coordinator).
pub(crate) fn emit(msg: &WorkerMsg) {
    let mut line = serde_json::to_string(msg).expect("worker messages always serialize");
    line.push('\n');
    let mut out = std::io::stdout().lock();
    // The coordinator is gone if this fails; the worker notices when stdin closes.
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}
