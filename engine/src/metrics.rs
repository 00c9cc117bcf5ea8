//! Process-wide counters and histograms, updated with relaxed atomics from every thread,
//! and the Prometheus text endpoint that exports them.
//!
//! Invariants: the hot path only ever does a relaxed `fetch_add` on a fixed slot (no
//! locks, no allocation, no map look-ups); everything else (gauges such as queue depths,
//! RocksDB properties) is read by the endpoint thread when scraped. The endpoint runs on
//! its own thread with blocking std sockets, never on a core.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use hotline_wire::{MessageType, MESSAGE_TYPES};

use crate::histogram::Histogram;
use crate::shared::Shared;
use crate::storage::writer::WriterStats;
use crate::storage::{Cf, Storage};

/// Most cores a server runs (`ServeConfig::validate` enforces it); per-core slots.
pub(crate) use crate::limits::CORES_MAX;
/// Largest HTTP request head the endpoint reads.
const REQUEST_HEAD_BYTES_MAX: usize = 8 << 10;
/// How long a scrape client may take to send its request.
const SCRAPE_READ_TIMEOUT_MS: u64 = 2_000;
/// How often the endpoint thread checks for shutdown while idle.
const ACCEPT_POLL_MS: u64 = 50;

/// [`MessageType::index`] of `Deliver`, for counting pre-encoded pushes.
pub(crate) const DELIVER_INDEX: usize = MessageType::Deliver.index();

/// Counters; every field counts events since start unless it says otherwise.
#[derive(Debug)]
pub struct Metrics {
    pub bytes_in: AtomicU64,
    pub frames_in: AtomicU64,
    pub frames_malformed: AtomicU64,
    pub errors_sent: AtomicU64,
    pub logins_ok: AtomicU64,
    pub logins_failed: AtomicU64,
    pub messages_acked: AtomicU64,
    pub delivered_catch_up: AtomicU64,
    /// Messages pushed live to a device right after their commit.
    pub delivered_live: AtomicU64,
    /// Devices switched from live pushes to catch-up (slow readers).
    pub lagging_switches: AtomicU64,
    /// Requests refused with `Overloaded` because a bounded queue was full.
    pub shed_overloaded: AtomicU64,
    /// Sends refused with `Overloaded` by a core's admission gate (requests queued longer
    /// than `--shed-queue-delay-ms`; see [`crate::admission`]).
    pub shed_queue_delay: AtomicU64,
    /// 1 while a core's admission gate sheds sends, per core (a gauge).
    pub shedding_by_core: [AtomicU64; CORES_MAX],
    /// The queueing delay (µs) a core's admission gate last saw, per core, as of its last
    /// sweep (a gauge).
    pub queue_delay_us_by_core: [AtomicU64; CORES_MAX],
    /// Connections refused at accept because the core was full.
    pub connections_refused: AtomicU64,
    /// Presence states published to subscribers (after coalescing).
    pub presence_published: AtomicU64,
    /// Presence notices or subscriptions dropped at a bound (full queue, full list).
    pub presence_shed: AtomicU64,
    /// `Typing` frames dropped by the per-device rate limit.
    pub typing_rate_limited: AtomicU64,
    /// Frames received, by body type ([`MessageType::index`]).
    pub frames_in_by_type: [AtomicU64; MESSAGE_TYPES],
    /// Frames queued to a connection, by body type.
    pub frames_out_by_type: [AtomicU64; MESSAGE_TYPES],
    /// Open connections per core (a gauge).
    pub connections_by_core: [AtomicU64; CORES_MAX],
    /// Bytes queued to connections and not yet written, per core, as of its last sweep (a
    /// gauge): what slow readers cost the server.
    pub outbound_queued_bytes_by_core: [AtomicU64; CORES_MAX],
    /// The largest one connection's queued bytes, per core, as of its last sweep (a gauge;
    /// `--outbound-bytes-max` bounds it, give or take one reply).
    pub outbound_queued_bytes_max_by_core: [AtomicU64; CORES_MAX],
    /// Microseconds from a message's commit timestamp to its live push to a device.
    pub delivery_latency_us: Histogram,
    /// Inbox entries whose payload retention removed.
    pub retention_expired: AtomicU64,
    /// Abuse limits hit (each answered `Error{RateLimited}`), one counter per limit.
    pub abuse: AbuseCounters,
}

impl Default for Metrics {
    fn default() -> Self {
        let zero = |_| AtomicU64::new(0);
        Metrics {
            bytes_in: AtomicU64::new(0),
            frames_in: AtomicU64::new(0),
            frames_malformed: AtomicU64::new(0),
            errors_sent: AtomicU64::new(0),
            logins_ok: AtomicU64::new(0),
            logins_failed: AtomicU64::new(0),
            messages_acked: AtomicU64::new(0),
            delivered_catch_up: AtomicU64::new(0),
            delivered_live: AtomicU64::new(0),
            lagging_switches: AtomicU64::new(0),
            shed_overloaded: AtomicU64::new(0),
            shed_queue_delay: AtomicU64::new(0),
            shedding_by_core: std::array::from_fn(zero),
            queue_delay_us_by_core: std::array::from_fn(zero),
            connections_refused: AtomicU64::new(0),
            presence_published: AtomicU64::new(0),
            presence_shed: AtomicU64::new(0),
            typing_rate_limited: AtomicU64::new(0),
            frames_in_by_type: std::array::from_fn(zero),
            frames_out_by_type: std::array::from_fn(zero),
            connections_by_core: std::array::from_fn(zero),
            outbound_queued_bytes_by_core: std::array::from_fn(zero),
            outbound_queued_bytes_max_by_core: std::array::from_fn(zero),
            delivery_latency_us: Histogram::default(),
            retention_expired: AtomicU64::new(0),
            abuse: AbuseCounters::default(),
        }
    }
}

/// The whole exposition, read from the shared counters, the writer and RocksDB: one
/// function per family of metrics, in this order.
pub(crate) fn render(shared: &Shared, storage: &Storage) -> String {
    let mut out = String::with_capacity(16 << 10);
    render_connections(&mut out, shared);
    render_frames(&mut out, &shared.metrics);
    render_messages(&mut out, &shared.metrics);
    render_commits(&mut out, &shared.writer.stats);
    render_shedding(&mut out, &shared.metrics);
    render_admission(&mut out, shared);
    render_integration(&mut out, &shared.integration);
    render_limits(&mut out, &shared.metrics);
    render_queues(&mut out, shared);
    render_helpers(&mut out, shared);
    render_rocksdb(&mut out, storage);
    out
}

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
}

/// The head of a counter whose samples carry labels.
fn counter_head(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
}

fn gauge_head(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
}

/// One gauge with a sample per running core.
fn per_core_gauge(out: &mut String, name: &str, help: &str, slots: &[AtomicU64], cores: usize) {
    gauge_head(out, name, help);
    for (core, c) in slots.iter().take(cores).enumerate() {
        let _ = writeln!(out, "{name}{{core=\"{core}\"}} {}", load(c));
    }
}

/// Connections and what they hold queued, per core; refusals; logins.
fn render_connections(out: &mut String, shared: &Shared) {
    let m = &shared.metrics;
    let cores = shared.config.cores.min(CORES_MAX);
    per_core_gauge(
        out,
        "hotline_connections",
        "Open connections, per core.",
        &m.connections_by_core,
        cores,
    );
    per_core_gauge(
        out,
        "hotline_outbound_queued_bytes",
        "Bytes queued to connections and not yet written, per core (as of its last sweep).",
        &m.outbound_queued_bytes_by_core,
        cores,
    );
    per_core_gauge(
        out,
        "hotline_outbound_queued_bytes_max",
        "The most bytes queued to one connection, per core (as of its last sweep).",
        &m.outbound_queued_bytes_max_by_core,
        cores,
    );
    counter(
        out,
        "hotline_connections_refused_total",
        "Connections refused because a core was full.",
        load(&m.connections_refused),
    );
    counter_head(out, "hotline_logins_total", "Logins and registrations, by result.");
    let _ = writeln!(out, "hotline_logins_total{{result=\"ok\"}} {}", load(&m.logins_ok));
    let _ = writeln!(
        out,
        "hotline_logins_total{{result=\"failed\"}} {}",
        load(&m.logins_failed)
    );
}

/// Frames in and out by body type (named by the wire's table), bytes, bad frames, errors.
fn render_frames(out: &mut String, m: &Metrics) {
    for (name, dir, slots) in [
        ("hotline_frames_in_total", "received", &m.frames_in_by_type),
        (
            "hotline_frames_out_total",
            "queued to connections",
            &m.frames_out_by_type,
        ),
    ] {
        counter_head(out, name, &format!("Frames {dir}, by body type."));
        for (ty, c) in MessageType::ALL.into_iter().zip(slots) {
            let _ = writeln!(out, "{name}{{type=\"{}\"}} {}", ty.name(), load(c));
        }
    }
    counter(
        out,
        "hotline_bytes_in_total",
        "Bytes read from connections.",
        load(&m.bytes_in),
    );
    counter(
        out,
        "hotline_frames_malformed_total",
        "Frames that failed to decode.",
        load(&m.frames_malformed),
    );
    counter(
        out,
        "hotline_errors_sent_total",
        "Error frames sent.",
        load(&m.errors_sent),
    );
}

/// Messages accepted, delivered by path, and the delivery latency.
fn render_messages(out: &mut String, m: &Metrics) {
    counter(
        out,
        "hotline_messages_sent_total",
        "Messages accepted and acknowledged to their sender.",
        load(&m.messages_acked),
    );
    let name = "hotline_messages_delivered_total";
    counter_head(out, name, "Messages written to a device, by path.");
    let _ = writeln!(out, "{name}{{path=\"live\"}} {}", load(&m.delivered_live));
    let _ = writeln!(out, "{name}{{path=\"catch_up\"}} {}", load(&m.delivered_catch_up));
    m.delivery_latency_us.render(
        out,
        "hotline_delivery_latency_seconds",
        "From a message's commit timestamp to its live push to a device.",
        1e6,
    );
}

/// The log writer's group commits and whether storage is healthy.
fn render_commits(out: &mut String, w: &WriterStats) {
    w.commit_us.render(
        out,
        "hotline_commit_fsync_latency_seconds",
        "One group commit: RocksDB write plus, under sync durability, its fsync.",
        1e6,
    );
    w.batch_requests.render(
        out,
        "hotline_group_commit_batch_requests",
        "Requests per group commit.",
        1.0,
    );
    counter(out, "hotline_group_commits_total", "Group commits.", load(&w.batches));
    counter(
        out,
        "hotline_group_commits_failed_total",
        "Group commits that failed (nothing acknowledged).",
        load(&w.failed_batches),
    );
    gauge_head(
        out,
        "hotline_storage_healthy",
        "1 while the log accepts writes, 0 from a failed group commit until one succeeds \
         (full disk, read-only file system, I/O errors: sends answer StorageUnavailable).",
    );
    let healthy = u8::from(load(&w.failing_batches) == 0);
    let _ = writeln!(out, "hotline_storage_healthy {healthy}");
}

/// Slow readers switched to catch-up, work shed at a bound, presence published.
fn render_shedding(out: &mut String, m: &Metrics) {
    counter(
        out,
        "hotline_lagging_devices_total",
        "Devices switched from live pushes to catch-up (slow readers).",
        load(&m.lagging_switches),
    );
    let name = "hotline_shed_total";
    counter_head(out, name, "Work refused or dropped at a bound, by reason.");
    let _ = writeln!(out, "{name}{{reason=\"overloaded\"}} {}", load(&m.shed_overloaded));
    let _ = writeln!(out, "{name}{{reason=\"queue_delay\"}} {}", load(&m.shed_queue_delay));
    let _ = writeln!(out, "{name}{{reason=\"presence\"}} {}", load(&m.presence_shed));
    let _ = writeln!(out, "{name}{{reason=\"typing_rate\"}} {}", load(&m.typing_rate_limited));
    counter(
        out,
        "hotline_presence_published_total",
        "Presence states published (after coalescing).",
        load(&m.presence_published),
    );
}

/// The integration API and its webhooks.
fn render_integration(out: &mut String, api: &IntegrationStats) {
    for (name, help, value) in [
        (
            "hotline_api_requests_total",
            "Integration API requests.",
            &api.api_requests,
        ),
        (
            "hotline_api_messages_sent_total",
            "Messages sent through the integration API.",
            &api.api_messages_sent,
        ),
        (
            "hotline_webhooks_delivered_total",
            "Webhooks answered 2xx.",
            &api.webhooks_delivered,
        ),
        (
            "hotline_webhook_retries_total",
            "Webhook POSTs retried.",
            &api.webhook_retries,
        ),
        (
            "hotline_webhooks_failed_total",
            "Webhooks dropped after every retry failed.",
            &api.webhooks_failed,
        ),
    ] {
        counter(out, name, help, load(value));
    }
}

/// Retention and the abuse limits.
fn render_limits(out: &mut String, m: &Metrics) {
    counter(
        out,
        "hotline_retention_expired_total",
        "Inbox entries whose payload retention removed.",
        load(&m.retention_expired),
    );
    let name = "hotline_rate_limited_total";
    counter_head(out, name, "Requests refused by an abuse limit, by limit.");
    for limit in crate::abuse::Limit::ALL {
        let _ = writeln!(
            out,
            "{name}{{limit=\"{}\"}} {}",
            limit.name(),
            load(m.abuse.counter(limit))
        );
    }
}

/// The helper pool's failures.
fn render_helpers(out: &mut String, shared: &Shared) {
    counter_head(
        out,
        "hotline_helper_panics_total",
        "Helper jobs that panicked (each answered Internal; the helper went on).",
    );
    let _ = writeln!(out, "hotline_helper_panics_total {}", shared.helpers.panics());
}

/// Items waiting in the cross-thread queues.
/// The admission gates: what delay each core sees, whether it sheds, the writer's queue.
fn render_admission(out: &mut String, shared: &Shared) {
    let m = &shared.metrics;
    let cores = shared.config.cores;
    gauge_head(
        out,
        "hotline_queue_delay_us",
        "How long requests waited (µs): in the writer's queue (its latest batch's oldest), and \
         per core, the delay its admission gate last saw (as of its last sweep).",
    );
    let _ = writeln!(
        out,
        "hotline_queue_delay_us{{queue=\"writer\"}} {}",
        shared.writer.queue_delay_us()
    );
    for (core, delay) in m.queue_delay_us_by_core.iter().take(cores).enumerate() {
        let _ = writeln!(
            out,
            "hotline_queue_delay_us{{queue=\"core\",core=\"{core}\"}} {}",
            load(delay)
        );
    }
    gauge_head(
        out,
        "hotline_shedding",
        "1 while a core sheds new sends for queueing delay (--shed-queue-delay-ms).",
    );
    for (core, on) in m.shedding_by_core.iter().take(cores).enumerate() {
        let _ = writeln!(out, "hotline_shedding{{core=\"{core}\"}} {}", load(on));
    }
}

fn render_queues(out: &mut String, shared: &Shared) {
    gauge_head(out, "hotline_queue_depth", "Items waiting in a cross-thread queue.");
    let _ = writeln!(out, "hotline_queue_depth{{queue=\"writer\"}} {}", shared.writer.depth());
    for (core, mb) in shared.mailboxes.iter().enumerate() {
        let _ = writeln!(
            out,
            "hotline_queue_depth{{queue=\"core\",core=\"{core}\"}} {}",
            mb.depth()
        );
    }
}

/// RocksDB properties per column family, read when scraped.
fn render_rocksdb(out: &mut String, storage: &Storage) {
    let db = storage.db();
    gauge_head(
        out,
        "hotline_rocksdb",
        "RocksDB properties (rocksdb.NAME), per column family.",
    );
    for cf in Cf::ALL {
        let handle = storage.cf(cf);
        for prop in [
            "estimate-num-keys",
            "total-sst-files-size",
            "cur-size-all-mem-tables",
            "estimate-pending-compaction-bytes",
            "num-running-compactions",
            "block-cache-usage",
        ] {
            if let Ok(Some(v)) = db.property_int_value_cf(handle, format!("rocksdb.{prop}").as_str()) {
                let _ = writeln!(out, "hotline_rocksdb{{cf=\"{}\",property=\"{prop}\"}} {v}", cf.name());
            }
        }
    }
}

/// Serves `GET /metrics` on `listener` on a thread of its own until `shared.shutdown`.
pub(crate) fn spawn_endpoint(
    listener: TcpListener,
    shared: Arc<Shared>,
    storage: Arc<Storage>,
) -> std::io::Result<JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("hotline-metrics".into())
        .spawn(move || {
            while !shared.shutdown.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if let Err(e) = answer(stream, &shared, &storage) {
                            tracing::debug!("metrics scrape failed: {e}");
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(ACCEPT_POLL_MS));
                    }
                    Err(e) => {
                        tracing::warn!("metrics endpoint accept failed: {e}");
                        std::thread::sleep(Duration::from_millis(ACCEPT_POLL_MS));
                    }
                }
            }
        })
}

/// Reads one request head (bounded in size and time) and answers it, then closes.
fn answer(mut stream: TcpStream, shared: &Shared, storage: &Storage) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_millis(SCRAPE_READ_TIMEOUT_MS)))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > REQUEST_HEAD_BYTES_MAX {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "request head too large\n",
            );
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, path) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    if method != b"GET" {
        return respond(&mut stream, "405 Method Not Allowed", "text/plain", "GET only\n");
    }
    if path != b"/metrics" {
        return respond(&mut stream, "404 Not Found", "text/plain", "try /metrics\n");
    }
    if let Some(token) = &shared.config.metrics_token {
        if !bearer_matches(&head, token) {
            return respond_with(
                &mut stream,
                "401 Unauthorized",
                "WWW-Authenticate: Bearer realm=\"hotline metrics\"\r\n",
                "text/plain",
                "a bearer token is required (--metrics-token)\n",
            );
        }
    }
    let body = render(shared, storage);
    respond(&mut stream, "200 OK", "text/plain; version=0.0.4", &body)
}

/// Whether the request head carries `Authorization: Bearer TOKEN` with this token; the
/// comparison takes the same time wherever the first difference is (SHA-256 of both sides).
fn bearer_matches(head: &[u8], token: &str) -> bool {
    use sha2::{Digest, Sha256};
    let text = String::from_utf8_lossy(head);
    let presented = text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if !name.trim().eq_ignore_ascii_case("authorization") {
            return None;
        }
        let (scheme, credentials) = value.trim().split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| credentials.trim().to_owned())
    });
    let Some(presented) = presented else { return false };
    let (a, b) = (Sha256::digest(presented.as_bytes()), Sha256::digest(token.as_bytes()));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &str) -> std::io::Result<()> {
    respond_with(stream, status, "", content_type, body)
}

fn respond_with(
    stream: &mut TcpStream,
    status: &str,
    extra_headers: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\n{extra_headers}Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

/// Counters of the integration threads (API requests, webhooks).
#[derive(Debug, Default)]
pub struct IntegrationStats {
    pub api_requests: AtomicU64,
    pub api_messages_sent: AtomicU64,
    pub webhooks_delivered: AtomicU64,
    pub webhook_retries: AtomicU64,
    pub webhooks_failed: AtomicU64,
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
