//! The coordinator: the `run` (and `capacity`) process that splits the connections over
//! worker processes, starts measured steps in all of them at one instant, merges what they
//! report and samples the server from outside (`/proc/PID`).
//!
//! A [`Fleet`] is the set of workers of one run: [`Fleet::start`] spawns them (the binary
//! re-executes itself with the hidden `worker` subcommand), waits until every connection is
//! logged in and measures the server's memory before and after; [`Fleet::step`] runs one
//! measured step; [`Fleet::quit`] has the workers acknowledge everything and exit.
//!
//! Workers talk JSON lines over pipes (see `proto`); one thread per worker forwards its
//! stdout lines into one channel, so the coordinator waits on one thing.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command as Process, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::accounting::Tally;
use crate::clock::{now_ns, unix_ms, NS_PER_MS, NS_PER_S};
use crate::hist::LatencyHist;
use crate::payload::PAYLOAD_HEADER_BYTES;
use crate::peers::{TargetKind, PEER_HEADER_BYTES};
use crate::plan::{self, Pattern};
use crate::proto::{Command, Progress, StepPlan, StepReport, TransportKind, WorkerConfig, WorkerMsg};
use crate::sys;
use crate::worker::CONNECTIONS_PER_WORKER_MAX;

/// How long connections sit idle after the last login before the server's memory is read.
pub(crate) const IDLE_SETTLE_MS: u64 = 1_000;

/// How far ahead of "now" a step's start is set, so every worker has the command in time.
pub(crate) const STEP_LEAD_MS: u64 = 200;

/// How long the connect phase may take beyond `connections / connect-rate`.
pub(crate) const CONNECT_SLACK_S: u64 = 60;

/// How long a step may overrun its warmup + duration + drain before the run gives up.
pub(crate) const STEP_SLACK_S: u64 = 30;

/// How long workers may take to quit.
pub(crate) const QUIT_WAIT_S: u64 = 15;

/// Connections per loopback source address when none are given (under the ~28,000 ports
/// of the default ephemeral range).
pub(crate) const CONNECTIONS_PER_SOURCE_ADDR: usize = 20_000;

/// The options `run` and `capacity` share.
#[derive(Args, Debug, Clone)]
pub(crate) struct LoadArgs {
    /// The server, HOST:PORT.
    #[arg(long)]
    pub target: SocketAddr,
    /// Accounts file from `hotline user provision` (line i is connection i). Hotline only:
    /// for a peer, connection i is user i (see --target-kind).
    #[arg(long)]
    pub accounts: Option<PathBuf>,
    /// What --target is: hotline, or an established server to compare with: nats (core
    /// NATS), nats-js (NATS JetStream: a file-stored stream, publishes acknowledged once
    /// stored, a durable push consumer per user), mqtt (MQTT 3.1.1 at QoS 1, e.g.
    /// Mosquitto) or xmpp (an XMPP server's client
    /// port, e.g. ejabberd, users lgN@localhost with password lgN registered). The same
    /// open-loop scenario and books; scripts/compare-peers runs them side by side.
    #[arg(long, value_enum, default_value_t = TargetKind::Hotline)]
    pub target_kind: TargetKind,
    /// Connections (= accounts = devices) to open.
    #[arg(long)]
    pub connections: usize,
    /// Deliveries per second over all connections (0: connect and stay idle). For pairs
    /// that is Send requests per second; for fanout:K each message is K Sends at the same
    /// scheduled time, for group:K one Send to a group of K, so messages per second = rate / K
    /// and deliveries per second = rate.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Seconds measured (after the warmup).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Payload bytes per message (at least 24: nonce, scheduled time, sequence number).
    #[arg(long, default_value_t = 100)]
    pub payload: usize,
    /// pairs (2i <-> 2i+1), fanout:K (groups of K+1: the first sends to the K others, one
    /// Send each) or group:K (the same units; the first sends once to a server-side group).
    #[arg(long, default_value = "pairs")]
    pub pattern: Pattern,
    /// Seconds of sending before the measured window.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Also report the delivery latency of the sends scheduled in the first SECONDS of the
    /// measured window (latency_first_us) apart from the rest (latency_rest_us): with
    /// --warmup 0 against a fresh server, the cold start next to the warm run.
    #[arg(long, value_name = "SECONDS")]
    pub split_s: Option<f64>,
    /// After sending stops, the books close when every acknowledged message has arrived,
    /// or when nothing new arrived for this many seconds (at most 60 s after the window):
    /// an acknowledged message still missing then counts as lost.
    #[arg(long, default_value_t = 5.0)]
    pub drain: f64,
    /// New connections per second (all workers together).
    #[arg(long, default_value_t = 5_000.0)]
    pub connect_rate: f64,
    /// How long after receiving a message a connection acknowledges it (Ack up to what it
    /// holds), in ms, like a client that batches its acks.
    #[arg(long, default_value_t = 100)]
    pub ack_interval_ms: u64,
    /// The server's process id: its memory (VmRSS) and CPU time go into the report.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Append `start UNIX_NS` to this file when the measured window of a step opens and
    /// `end UNIX_NS` when it closes, so a tool can sample the server over exactly the
    /// window (scripts/hotpath runs `perf stat` from start to end).
    #[arg(long, value_name = "FILE")]
    pub mark_window: Option<PathBuf>,
    /// Worker processes (default: one per 15,000 connections).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Local addresses to connect from, round-robin: A-B (an IPv4 range) or A,B,C
    /// (default: the kernel's choice; 127.0.0.2, ... one per 20,000 connections to a
    /// loopback target above 20,000 connections).
    #[arg(long)]
    pub source_addrs: Option<String>,
    /// A name for the scenario, recorded in the report (results/<label>.json).
    #[arg(long)]
    pub label: Option<String>,
    /// KEY=VALUE facts recorded in the report as they are (e.g. durability=sync).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// What connections speak: tcp (length-prefixed frames), tls (the same inside TLS:
    /// point --target at the server's --tls-listen) or ws (one frame per binary WebSocket
    /// message: point --target at --ws-listen). Recorded in the report as tag transport.
    #[arg(long, value_enum, default_value_t = TransportKind::Tcp)]
    pub transport: TransportKind,
    /// With --transport tls: the PEM certificate to trust (the server's self-signed
    /// --tls-cert, say).
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// With --transport tls: the name the server's certificate must carry.
    #[arg(long, default_value = "localhost")]
    pub tls_server_name: String,
    /// group:K only: also add this existing user (by id, repeatable) to every group the run
    /// creates. It is not one of the run's connections: what it receives stays outside the
    /// books (a test's deliberately slow device, say, while the run measures the others).
    #[arg(long = "group-extra-member", value_name = "USER_ID")]
    pub group_extra_members: Vec<u64>,
}

impl LoadArgs {
    /// Checks what can be checked before anything starts; returns the worker count.
    pub(crate) fn validate(&self) -> anyhow::Result<usize> {
        if self.connections == 0 {
            bail!("--connections must be at least 1");
        }
        if self.payload < PAYLOAD_HEADER_BYTES {
            bail!(
                "--payload {} is below the {PAYLOAD_HEADER_BYTES}-byte header every message carries",
                self.payload
            );
        }
        if !(self.rate >= 0.0 && self.rate.is_finite()) {
            bail!("--rate must be a finite number >= 0");
        }
        if self.duration <= 0.0 || self.warmup < 0.0 || self.drain < 0.0 {
            bail!("--duration must be > 0, --warmup and --drain >= 0");
        }
        if let Some(split) = self.split_s {
            if !(split > 0.0 && split < self.duration) {
                bail!(
                    "--split-s {split} must lie inside the measured window (0 < SECONDS < --duration {})",
                    self.duration
                );
            }
        }
        if self.connect_rate <= 0.0 {
            bail!("--connect-rate must be > 0");
        }
        if !self.group_extra_members.is_empty() && !self.pattern.uses_groups() {
            bail!("--group-extra-member needs --pattern group:K (there is no group to add it to)");
        }
        if self.transport == TransportKind::Tls && self.tls_ca.is_none() {
            bail!("--transport tls needs --tls-ca CERT.pem (the certificate to trust, e.g. the server's --tls-cert)");
        }
        let unit = self.pattern.unit_accounts();
        if self.rate > 0.0 && self.connections < unit {
            bail!(
                "--pattern {} needs at least {unit} connections per unit; {} were given",
                self.pattern,
                self.connections
            );
        }
        let workers = self
            .workers
            .unwrap_or_else(|| self.connections.div_ceil(CONNECTIONS_PER_WORKER_MAX))
            .max(1);
        for range in plan::split(self.connections, self.pattern, workers) {
            if range.len() > CONNECTIONS_PER_WORKER_MAX {
                bail!(
                    "{} connections in one worker exceed {CONNECTIONS_PER_WORKER_MAX} (the open-file limit is 20,000 per process): use --workers {}",
                    range.len(),
                    self.connections.div_ceil(CONNECTIONS_PER_WORKER_MAX) + 1
                );
            }
        }
        if self.target_kind != TargetKind::Hotline {
            return self.validate_peer().map(|()| workers);
        }
        let Some(accounts) = &self.accounts else {
            bail!("--accounts FILE is needed for a Hotline target (make it with `hotline user provision --prefix lg --count N --out FILE`, server stopped)");
        };
        let have = crate::accounts::count(accounts)?;
        if have < self.connections {
            bail!(
                "{} holds {have} accounts but --connections is {}: provision more with `hotline user provision --count {}` (server stopped)",
                accounts.display(),
                self.connections,
                self.connections
            );
        }
        Ok(workers)
    }

    /// What a peer target (`--target-kind nats|nats-js|mqtt|xmpp`) cannot do.
    fn validate_peer(&self) -> anyhow::Result<()> {
        let kind = self.target_kind;
        if self.pattern.uses_groups() {
            bail!("--target-kind {kind} has no server-side groups: use --pattern pairs or fanout:K");
        }
        if self.transport != TransportKind::Tcp {
            bail!("--target-kind {kind} runs over plain TCP only (--transport tcp)");
        }
        if self.payload < PEER_HEADER_BYTES {
            bail!(
                "--payload {} is below the {PEER_HEADER_BYTES}-byte header a peer message carries (the usual one and the sender)",
                self.payload
            );
        }
        Ok(())
    }

    /// The source addresses to bind to.
    pub(crate) fn source_addrs(&self) -> anyhow::Result<Vec<IpAddr>> {
        match &self.source_addrs {
            Some(text) => parse_source_addrs(text),
            None => {
                let loopback = matches!(self.target.ip(), IpAddr::V4(ip) if ip.is_loopback());
                if loopback && self.connections > CONNECTIONS_PER_SOURCE_ADDR {
                    let n = self.connections.div_ceil(CONNECTIONS_PER_SOURCE_ADDR) as u32;
                    Ok((0..n)
                        .map(|i| IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 2)) + i)))
                        .collect())
                } else {
                    Ok(Vec::new())
                }
            }
        }
    }

    /// The tags as (key, value) pairs.
    pub(crate) fn tag_pairs(&self) -> anyhow::Result<Vec<(String, String)>> {
        let mut pairs = vec![("transport".to_owned(), self.transport.to_string())];
        if self.target_kind != TargetKind::Hotline {
            pairs.push(("target_kind".to_owned(), self.target_kind.to_string()));
        }
        for t in &self.tags {
            match t.split_once('=') {
                Some((k, v)) if !k.is_empty() => pairs.push((k.to_owned(), v.to_owned())),
                _ => bail!("--tag {t:?} is not KEY=VALUE"),
            }
        }
        Ok(pairs)
    }
}

/// Parses `A-B` (inclusive IPv4 range) or `A,B,C`.
pub(crate) fn parse_source_addrs(text: &str) -> anyhow::Result<Vec<IpAddr>> {
    if let Some((a, b)) = text.split_once('-') {
        let a: Ipv4Addr = a
            .trim()
            .parse()
            .with_context(|| format!("--source-addrs: bad address {a:?}"))?;
        let b: Ipv4Addr = b
            .trim()
            .parse()
            .with_context(|| format!("--source-addrs: bad address {b:?}"))?;
        let (a, b) = (u32::from(a), u32::from(b));
        if b < a || b - a >= 1 << 16 {
            bail!("--source-addrs: {text:?} is not a range of at most 65,536 addresses");
        }
        return Ok((a..=b).map(|i| IpAddr::V4(Ipv4Addr::from(i))).collect());
    }
    text.split(',')
        .map(|a| {
            a.trim()
                .parse()
                .with_context(|| format!("--source-addrs: bad address {a:?}"))
        })
        .collect()
}

/// What the connect phase measured.
#[derive(Debug)]
pub(crate) struct Connected {
    pub connected: u64,
    pub failed: u64,
    pub backlog: u64,
    pub connect_latency: LatencyHist,
    pub errors: Vec<(String, u64)>,
    pub connect_s: f64,
    pub server_rss_before: Option<u64>,
    pub server_rss_idle: Option<u64>,
    pub tcp_mem_before: Option<u64>,
    pub tcp_mem_idle: Option<u64>,
}

/// What one step measured, merged over all workers.
#[derive(Debug, Clone, Default)]
pub(crate) struct StepOutcome {
    pub rate: f64,
    pub tally: Tally,
    pub window_delivered: u64,
    pub window_sent: u64,
    pub skipped: u64,
    pub errors: u64,
    pub error_codes: Vec<(String, u64)>,
    pub disconnected: u64,
    pub unverified: u64,
    pub stale: u64,
    pub unexpected: u64,
    pub settled: bool,
    pub send_lag_max_ns: u64,
    pub latency: LatencyHist,
    pub ack_latency: LatencyHist,
    pub send_lag: LatencyHist,
    /// With `--split-s`: delivery latency before and after the split point.
    pub latency_split: Option<(LatencyHist, LatencyHist)>,
    pub duration_s: f64,
    /// Worker CPU during the window, as a percentage of one core.
    pub loadgen_cpu_percent: f64,
    /// Server CPU during the window, as a percentage of one core.
    pub server_cpu_percent: Option<f64>,
    /// The whole machine during the window: busy and stolen (by the hypervisor) CPU time,
    /// as a percentage of all cores.
    pub machine_busy_percent: Option<f64>,
    pub machine_steal_percent: Option<f64>,
    pub server_rss_after: Option<u64>,
    pub tcp_mem_after: Option<u64>,
}

impl StepOutcome {
    /// First deliveries per second inside the measured window.
    pub(crate) fn throughput(&self) -> f64 {
        self.window_delivered as f64 / self.duration_s
    }

    /// Errors of every kind: error frames, lost connections, sends that could not be made.
    pub(crate) fn errors_total(&self) -> u64 {
        self.errors + self.skipped
    }
}

/// The worker processes of one run.
#[derive(Debug)]
pub(crate) struct Fleet {
    children: Vec<Child>,
    stdins: Vec<ChildStdin>,
    rx: mpsc::Receiver<(usize, Option<WorkerMsg>)>,
    progress: Vec<Progress>,
    bar: ProgressBar,
    server_pid: Option<u32>,
    connections: usize,
    last_plain_line: Instant,
}

/// What a step samples at the edges of its measured window: the server's and the
/// machine's CPU counters, and the `--mark-window` lines.
#[derive(Debug, Default)]
struct WindowProbe {
    cpu_start: Option<(u64, u64)>,
    cpu_end: Option<(u64, u64)>,
    machine_start: Option<(u64, u64, u64)>,
    machine_end: Option<(u64, u64, u64)>,
    /// --mark-window: 1 once the start is written, 2 once the end is.
    marked: u8,
}

impl WindowProbe {
    /// Takes each sample once `now` has passed its edge of the window.
    fn sample(
        &mut self,
        args: &LoadArgs,
        server_pid: Option<u32>,
        now: u64,
        window_start: u64,
        window_end: u64,
    ) -> anyhow::Result<()> {
        if let Some(pid) = server_pid {
            if self.cpu_start.is_none() && now >= window_start {
                self.cpu_start = sys::process_cpu_ns(pid).map(|c| (c, now));
            }
            if self.cpu_end.is_none() && now >= window_end {
                self.cpu_end = sys::process_cpu_ns(pid).map(|c| (c, now));
            }
        }
        if self.machine_start.is_none() && now >= window_start {
            self.machine_start = sys::machine_cpu_ticks();
        }
        if self.machine_end.is_none() && now >= window_end {
            self.machine_end = sys::machine_cpu_ticks();
        }
        if self.marked < 1 && now >= window_start {
            mark_window(args, "start")?;
            self.marked = 1;
        }
        if self.marked < 2 && now >= window_end {
            mark_window(args, "end")?;
            self.marked = 2;
        }
        Ok(())
    }

    /// Takes the end samples still missing (the books settled the moment the window
    /// closed) and writes the CPU shares into `out`.
    fn finish(mut self, args: &LoadArgs, server_pid: Option<u32>, out: &mut StepOutcome) -> anyhow::Result<()> {
        if let (Some(pid), None) = (server_pid, self.cpu_end) {
            self.cpu_end = sys::process_cpu_ns(pid).map(|c| (c, now_ns()));
        }
        if self.machine_end.is_none() {
            self.machine_end = sys::machine_cpu_ticks();
        }
        if self.marked < 2 {
            mark_window(args, "end")?;
        }
        if let (Some((b0, s0, t0)), Some((b1, s1, t1))) = (self.machine_start, self.machine_end) {
            let total = t1.saturating_sub(t0).max(1) as f64;
            out.machine_busy_percent = Some(b1.saturating_sub(b0) as f64 / total * 100.0);
            out.machine_steal_percent = Some(s1.saturating_sub(s0) as f64 / total * 100.0);
        }
        if let (Some((a, ta)), Some((b, tb))) = (self.cpu_start, self.cpu_end) {
            out.server_cpu_percent = Some(b.saturating_sub(a) as f64 / (tb - ta).max(1) as f64 * 100.0);
        }
        Ok(())
    }
}

impl Fleet {
    /// Spawns the workers and waits until every connection is logged in (or failed).
    #[allow(clippy::too_many_lines, reason = "still to split: spawning, then the login wait")]
    pub(crate) fn start(args: &LoadArgs, workers: usize, run_nonce: u32) -> anyhow::Result<(Fleet, Connected)> {
        let source_addrs = args.source_addrs()?;
        let server_rss_before = args.server_pid.and_then(sys::rss_bytes);
        let tcp_mem_before = sys::kernel_tcp_mem_bytes();
        let exe = std::env::current_exe().context("cannot find this executable to start workers")?;
        let (tx, rx) = mpsc::channel();
        let mut children = Vec::new();
        let mut stdins = Vec::new();
        let ranges = plan::split(args.connections, args.pattern, workers);
        let senders_total = plan::senders_total(args.connections, args.pattern);
        for (w, range) in ranges.into_iter().enumerate() {
            let share = range.len() as f64 / args.connections as f64;
            let config = WorkerConfig {
                worker: w,
                workers,
                target: args.target,
                target_kind: args.target_kind,
                accounts_file: args.accounts.clone(),
                accounts: range,
                pattern: args.pattern,
                payload_bytes: args.payload,
                run_nonce,
                connect_rate_per_s: args.connect_rate * share,
                ack_interval_ms: args.ack_interval_ms,
                source_addrs: source_addrs.clone(),
                senders_total,
                transport: args.transport,
                tls_ca: args.tls_ca.clone(),
                tls_server_name: args.tls_server_name.clone(),
                group_extra_members: args.group_extra_members.clone(),
            };
            let mut child = Process::new(&exe)
                .arg("worker")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .with_context(|| format!("cannot start worker {w} ({})", exe.display()))?;
            let mut stdin = child.stdin.take().context("worker stdin was piped")?;
            let stdout = child.stdout.take().context("worker stdout was piped")?;
            writeln!(stdin, "{}", serde_json::to_string(&config)?).context("cannot configure a worker")?;
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    match serde_json::from_str::<WorkerMsg>(&line) {
                        Ok(msg) => {
                            if tx.send((w, Some(msg))).is_err() {
                                return;
                            }
                        }
                        Err(_) => eprintln!("worker {w}: {line}"),
                    }
                }
                let _ = tx.send((w, None));
            });
            children.push(child);
            stdins.push(stdin);
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}").expect("a valid template"));
        bar.enable_steady_tick(Duration::from_millis(200));
        let mut fleet = Fleet {
            children,
            stdins,
            rx,
            progress: vec![Progress::default(); workers],
            bar,
            server_pid: args.server_pid,
            connections: args.connections,
            last_plain_line: Instant::now(),
        };
        let started = Instant::now();
        let deadline = started
            + Duration::from_secs_f64(args.connections as f64 / args.connect_rate)
            + Duration::from_secs(CONNECT_SLACK_S);
        let mut ready = 0;
        let mut connected = Connected {
            connected: 0,
            failed: 0,
            backlog: 0,
            connect_latency: LatencyHist::new(),
            errors: Vec::new(),
            connect_s: 0.0,
            server_rss_before,
            server_rss_idle: None,
            tcp_mem_before,
            tcp_mem_idle: None,
        };
        while ready < workers {
            match fleet.next_msg(deadline, "connecting")? {
                (_, WorkerMsg::Ready(r)) => {
                    ready += 1;
                    connected.connected += r.connected;
                    connected.failed += r.failed;
                    connected.backlog += r.backlog;
                    connected
                        .connect_latency
                        .merge(&LatencyHist::from_base64(&r.connect_latency)?);
                    merge_codes(&mut connected.errors, &r.error_codes);
                }
                (w, other) => fleet.unexpected(w, other)?,
            }
        }
        connected.connect_s = started.elapsed().as_secs_f64();
        fleet.bar.set_message(format!(
            "{} connected, {} failed; idle {IDLE_SETTLE_MS} ms, then measuring the server",
            connected.connected, connected.failed
        ));
        std::thread::sleep(Duration::from_millis(IDLE_SETTLE_MS));
        connected.server_rss_idle = args.server_pid.and_then(sys::rss_bytes);
        connected.tcp_mem_idle = sys::kernel_tcp_mem_bytes();
        Ok((fleet, connected))
    }

    /// Runs one step at `rate` in every worker and merges the reports.
    pub(crate) fn step(&mut self, args: &LoadArgs, rate: f64) -> anyhow::Result<StepOutcome> {
        let t0_ns = now_ns() + STEP_LEAD_MS * NS_PER_MS;
        let plan = StepPlan {
            rate,
            t0_ns,
            warmup_ns: (args.warmup * NS_PER_S as f64) as u64,
            duration_ns: (args.duration * NS_PER_S as f64) as u64,
            drain_ns: (args.drain * NS_PER_S as f64) as u64,
            split_ns: args.split_s.map(|s| (s * NS_PER_S as f64) as u64),
        };
        for stdin in &mut self.stdins {
            writeln!(stdin, "{}", serde_json::to_string(&Command::Step(plan))?).context("a worker is gone")?;
        }
        let window_start = t0_ns + plan.warmup_ns;
        let window_end = window_start + plan.duration_ns;
        let deadline = Instant::now()
            + Duration::from_nanos(window_end - now_ns())
            + Duration::from_secs(crate::worker::DRAIN_MAX_S + STEP_SLACK_S);
        let mut probe = WindowProbe::default();
        let mut out = StepOutcome {
            rate,
            duration_s: args.duration,
            settled: true,
            ..StepOutcome::default()
        };
        let mut done = 0;
        let mut cpu_window_ns = 0;
        while done < self.children.len() {
            let now = now_ns();
            probe.sample(args, self.server_pid, now, window_start, window_end)?;
            let phase = if now < window_start {
                "warmup"
            } else if now < window_end {
                "measuring"
            } else {
                "draining"
            };
            let msg = match self.rx.recv_timeout(Duration::from_millis(20)) {
                Ok(m) => m,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if Instant::now() > deadline {
                        bail!("the workers did not finish the step in time");
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => bail!("every worker is gone"),
            };
            match msg {
                (w, Some(WorkerMsg::Progress(p))) => {
                    self.progress[w] = p;
                    self.show(&format!("{phase} @ {rate:.0}/s"));
                }
                (_, Some(WorkerMsg::StepDone(r))) => {
                    done += 1;
                    cpu_window_ns += r.cpu_window_ns;
                    merge_step(&mut out, &r)?;
                }
                (w, other) => self.unexpected(w, other.unwrap_or(WorkerMsg::Fatal("exited".to_owned())))?,
            }
        }
        probe.finish(args, self.server_pid, &mut out)?;
        out.loadgen_cpu_percent = cpu_window_ns as f64 / plan.duration_ns as f64 * 100.0;
        out.server_rss_after = self.server_pid.and_then(sys::rss_bytes);
        out.tcp_mem_after = sys::kernel_tcp_mem_bytes();
        Ok(out)
    }

    /// Has every worker acknowledge what it received, disconnect and exit.
    pub(crate) fn quit(mut self) -> anyhow::Result<()> {
        for stdin in &mut self.stdins {
            let _ = writeln!(stdin, "{}", serde_json::to_string(&Command::Quit)?);
        }
        let deadline = Instant::now() + Duration::from_secs(QUIT_WAIT_S);
        let mut gone = 0;
        while gone < self.children.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok((_, Some(WorkerMsg::Bye { .. }))) => gone += 1,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        self.bar.finish_and_clear();
        for child in &mut self.children {
            // A worker that did not say Bye in time is ended here.
            if !matches!(child.try_wait(), Ok(Some(_))) {
                std::thread::sleep(Duration::from_millis(200));
                if !matches!(child.try_wait(), Ok(Some(_))) {
                    let _ = child.kill();
                }
            }
            let _ = child.wait();
        }
        Ok(())
    }

    fn next_msg(&mut self, deadline: Instant, phase: &str) -> anyhow::Result<(usize, WorkerMsg)> {
        loop {
            match self.rx.recv_timeout(Duration::from_millis(100)) {
                Ok((w, Some(WorkerMsg::Progress(p)))) => {
                    self.progress[w] = p;
                    self.show(phase);
                }
                Ok((w, Some(msg))) => return Ok((w, msg)),
                Ok((w, None)) => bail!("worker {w} exited unexpectedly (its stderr is above)"),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if Instant::now() > deadline {
                        bail!("timed out while {phase}");
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => bail!("every worker is gone"),
            }
        }
    }

    fn unexpected(&mut self, w: usize, msg: WorkerMsg) -> anyhow::Result<()> {
        match msg {
            WorkerMsg::Fatal(why) => bail!("worker {w} failed: {why}"),
            other => bail!("worker {w} sent {other:?} out of turn"),
        }
    }

    fn show(&mut self, phase: &str) {
        let mut p = Progress::default();
        for w in &self.progress {
            p.connected += w.connected;
            p.failed += w.failed;
            p.sent += w.sent;
            p.acked += w.acked;
            p.delivered += w.delivered;
            p.errors += w.errors;
        }
        let line = format!(
            "{phase}: conns {}/{} (failed {}) | sent {} acked {} delivered {} errors {}",
            p.connected, self.connections, p.failed, p.sent, p.acked, p.delivered, p.errors
        );
        if self.bar.is_hidden() {
            if self.last_plain_line.elapsed() >= Duration::from_secs(5) {
                self.last_plain_line = Instant::now();
                eprintln!("hotline-loadgen: {line}");
            }
        } else {
            self.bar.set_message(line);
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for child in &mut self.children {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn merge_codes(into: &mut Vec<(String, u64)>, from: &[(String, u64)]) {
    for (code, n) in from {
        match into.iter_mut().find(|(c, _)| c == code) {
            Some((_, m)) => *m += n,
            None => into.push((code.clone(), *n)),
        }
    }
}

/// Appends `what UNIX_NS` to `--mark-window`'s file, if given.
fn mark_window(args: &LoadArgs, what: &str) -> anyhow::Result<()> {
    let Some(path) = &args.mark_window else { return Ok(()) };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open --mark-window {}", path.display()))?;
    let unix_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    writeln!(file, "{what} {unix_ns}").with_context(|| format!("cannot write --mark-window {}", path.display()))
}

fn merge_step(out: &mut StepOutcome, r: &StepReport) -> anyhow::Result<()> {
    out.tally.add(&r.tally);
    out.window_delivered += r.window_delivered;
    out.window_sent += r.window_sent;
    out.skipped += r.skipped;
    out.errors += r.errors;
    merge_codes(&mut out.error_codes, &r.error_codes);
    out.disconnected += r.disconnected;
    out.unverified += r.unverified;
    out.stale += r.stale;
    out.unexpected += r.unexpected;
    out.settled &= r.settled;
    out.send_lag_max_ns = out.send_lag_max_ns.max(r.send_lag_max_ns);
    out.latency.merge(&LatencyHist::from_base64(&r.latency)?);
    out.ack_latency.merge(&LatencyHist::from_base64(&r.ack_latency)?);
    out.send_lag.merge(&LatencyHist::from_base64(&r.send_lag)?);
    if let Some((first, rest)) = &r.latency_split {
        let (out_first, out_rest) = out.latency_split.get_or_insert_with(Default::default);
        out_first.merge(&LatencyHist::from_base64(first)?);
        out_rest.merge(&LatencyHist::from_base64(rest)?);
    }
    Ok(())
}

/// A run's nonce: the low 32 bits of the Unix time in ms (unique per run unless two runs
/// start within the same millisecond, 49 days apart).
pub(crate) fn run_nonce() -> u32 {
    (unix_ms() & 0xffff_ffff) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_address_ranges_and_lists_parse() {
        let r = parse_source_addrs("127.0.0.2-127.0.0.4").expect("range");
        assert_eq!(r.len(), 3);
        assert_eq!(r[2], "127.0.0.4".parse::<IpAddr>().expect("ip"));
        let l = parse_source_addrs("127.0.0.2,127.0.0.9").expect("list");
        assert_eq!(l.len(), 2);
        assert!(parse_source_addrs("127.0.0.9-127.0.0.2").is_err());
        assert!(parse_source_addrs("nope").is_err());
    }

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        load: LoadArgs,
    }

    fn load_args(extra: &[&str]) -> LoadArgs {
        use clap::Parser;
        let base = [
            "t",
            "--target",
            "127.0.0.1:1",
            "--accounts",
            "/nonexistent",
            "--connections",
            "11",
        ];
        Cli::try_parse_from(base.iter().chain(extra))
            .expect("arguments parse")
            .load
    }

    #[test]
    fn an_extra_group_member_needs_the_group_pattern() {
        let pairs = load_args(&["--group-extra-member", "7"]).validate();
        let why = pairs.expect_err("no group to add it to").to_string();
        assert!(why.contains("--group-extra-member needs --pattern group:K"), "{why}");
        let group = load_args(&[
            "--pattern",
            "group:10",
            "--group-extra-member",
            "7",
            "--group-extra-member",
            "9",
        ]);
        assert_eq!(group.group_extra_members, [7, 9]);
        // Past that check: the missing accounts file is the next complaint.
        let why = group.validate().expect_err("no accounts file").to_string();
        assert!(why.contains("accounts"), "{why}");
    }
}
