//! A worker process: one thread, one `mio` event loop over non-blocking sockets, one
//! [`ClientSession`] per connection (one account = one device = one connection), or with
//! `--target-kind nats|nats-js|mqtt|xmpp` one [`PeerSession`] per connection instead (see `peers`):
//! the same schedule, sockets and books; a peer's login is its own handshake, and it has no
//! inbox positions, groups or Hotline acks.
//!
//! Phases, driven by the coordinator's [`Command`]s on stdin:
//! 1. *Connecting*: connections open at this worker's share of `--connect-rate` (at most
//!    [`CONNECTS_IN_FLIGHT_MAX`] unfinished at once), each pipelining `Hello` and
//!    `Login(token)`. A fresh login first receives the inbox backlog of earlier runs; it is
//!    ignored (inbox seq at or below `LoginOk.inbox_seq`) and the worker reports
//!    [`WorkerMsg::Ready`] once every connection is logged in and caught up (or failed).
//! 2. *Idle*, until a [`Command::Step`]: sends run open-loop on a fixed schedule (see
//!    [`Schedule`]), then the books drain; [`WorkerMsg::StepDone`] reports them. Repeat.
//! 3. *Quitting*: every connection acknowledges what it received, confirmed, so the next
//!    run starts without a backlog; then [`WorkerMsg::Bye`] and exit.
//!
//! Ownership: the worker owns every connection, session and [`StreamLedger`]; a unit (pair
//! or group) lies entirely in one worker, so both ends of each stream are here.
//!
//! Bounds: a connection's unsent bytes stop at [`OUTBOUND_BYTES_MAX`] (a send beyond it is
//! skipped and counted: the server is not reading); one loop iteration makes at most
//! [`SEND_EVENTS_PER_TICK_MAX`] scheduled sends before it services sockets again.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hotline_transport::tls::ClientTls;
use hotline_transport::{Layer, WsClientOptions};
use hotline_wire::{ClientSession, ErrorCode, Event, SendFlags, TOKEN_BYTES};
use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use socket2::{Domain, Protocol, Socket, Type};

use crate::accounting::{Delivery, StreamLedger, Tally};
use crate::accounts::{self, Account};
use crate::clock::{now_ns, tighten_timer_slack, Timer, NS_PER_MS, NS_PER_S};
use crate::hist::LatencyHist;
use crate::payload::{client_msg_id, PayloadHeader};
use crate::peers::{self, PeerEvent, PeerSession, TargetKind};
use crate::proto::{
    emit, Command, Progress, ReadyReport, StepPlan, StepReport, TransportKind, WorkerConfig, WorkerMsg,
};

/// Most connections one worker holds: the open-file limit here is 20,000 per process, and
/// the worker needs a few descriptors of its own.
pub(crate) const CONNECTIONS_PER_WORKER_MAX: usize = 15_000;

/// Most connections with a connect or login unfinished at once, per worker.
pub(crate) const CONNECTS_IN_FLIGHT_MAX: usize = 1_000;

/// How long a connection may take from connect to `LoginOk`.
pub(crate) const CONNECT_TIMEOUT_MS: u64 = 15_000;

/// How long logged-in connections may take to receive the backlog of earlier runs.
pub(crate) const BACKLOG_WAIT_MS: u64 = 30_000;

/// Unsent bytes a connection may hold; a scheduled send beyond it is skipped and counted.
pub(crate) const OUTBOUND_BYTES_MAX: usize = 1 << 20;

/// Most scheduled send events one loop iteration makes before servicing sockets again.
pub(crate) const SEND_EVENTS_PER_TICK_MAX: u64 = 4_096;

/// Shortest interval between two wake-ups of the send timer: a scheduled send goes out at
/// most this late because of it (and its latency, measured from the schedule, shows it).
pub(crate) const TIMER_TICK_NS: u64 = 200_000;

/// Bytes read from a socket per `read` call (one buffer shared by all connections).
pub(crate) const READ_CHUNK_BYTES: usize = 64 << 10;

/// How often the connect phase walks all connections (timeouts, backlog caught up).
pub(crate) const SWEEP_INTERVAL_MS: u64 = 50;

/// How often the worker reports progress.
pub(crate) const PROGRESS_INTERVAL_MS: u64 = 500;

/// Longest a step's books stay open after sending stops, however steadily acknowledgements
/// and deliveries still trickle in (see `--drain`).
pub(crate) const DRAIN_MAX_S: u64 = 60;

/// How long Quit waits for the final acks to be confirmed.
pub(crate) const QUIT_ACK_WAIT_MS: u64 = 5_000;

/// Socket readiness events taken per `poll`.
const EVENTS_PER_POLL: usize = 1_024;

/// The `mio` token of the send timer.
const TIMER_TOKEN: Token = Token(usize::MAX - 1);

/// The `mio` token of the command waker.
const WAKER_TOKEN: Token = Token(usize::MAX - 2);

const _: () = assert!(
    CONNECTIONS_PER_WORKER_MAX < usize::MAX - 2,
    "connection tokens stay below the reserved ones"
);

/// Where one connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnState {
    /// Not opened yet.
    Pending,
    /// TCP connect in progress; `Hello` + `Login` queued in the session.
    Connecting,
    /// Connected, `LoginOk` not seen yet.
    LoggingIn,
    /// Logged in: `login_head` is valid.
    Ready,
    /// Failed or closed; `stream` is `None`.
    Closed,
}

/// A send waiting for its `SendAck` (or `Error`).
#[derive(Debug, Clone, Copy)]
struct Inflight {
    request_id: u64,
    /// The streams this send serves: one, or (a group send) every stream of the sender,
    /// all at the same seq (a group sender's streams move in lockstep).
    stream: u32,
    streams_end: u32,
    seq: u64,
    scheduled_ns: u64,
    done: bool,
}

/// A connection's protocol state: Hotline's session, or a peer's (`--target-kind`).
// Hotline's session stays inline: it is the measured path, and a run holds one kind only.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Session {
    Hotline(ClientSession),
    Peer(Box<dyn PeerSession>),
}

impl Session {
    fn outbound(&self) -> &[u8] {
        match self {
            Session::Hotline(s) => s.outbound(),
            Session::Peer(p) => p.outbound(),
        }
    }

    fn consume_outbound(&mut self, n: usize) {
        match self {
            Session::Hotline(s) => s.consume_outbound(n),
            Session::Peer(p) => p.consume_outbound(n),
        }
    }

    fn receive(&mut self, bytes: &[u8]) {
        match self {
            Session::Hotline(s) => s.receive(bytes),
            Session::Peer(p) => p.receive(bytes),
        }
    }

    fn next_ev(&mut self) -> Result<Option<Ev>, String> {
        match self {
            Session::Hotline(s) => s.next_event().map(|e| e.map(Ev::from_event)).map_err(|e| e.to_string()),
            Session::Peer(p) => p.next_event().map(|e| e.map(Ev::from_peer)).map_err(|e| e.0),
        }
    }

    /// The Hotline session (`None` for a peer, which has no Hotline requests).
    fn hotline(&mut self) -> Option<&mut ClientSession> {
        match self {
            Session::Hotline(s) => Some(s),
            Session::Peer(_) => None,
        }
    }

    /// Hotline's delivered inbox position (0 for a peer, which has no inbox positions).
    fn delivered_seq(&self) -> u64 {
        match self {
            Session::Hotline(s) => s.delivered_seq(),
            Session::Peer(_) => 0,
        }
    }
}

/// One connection and its session.
#[derive(Debug)]
struct Conn {
    account: Account,
    stream: Option<TcpStream>,
    /// TLS or WebSocket between the session and the socket (`None` on plain TCP).
    layer: Option<Box<Layer>>,
    session: Session,
    state: ConnState,
    /// When the connect started (for the connect+login latency and the timeout).
    started_ns: u64,
    /// `LoginOk.inbox_seq`: deliveries at or below it are earlier runs' backlog.
    login_head: u64,
    /// The streams (ledger indices) this connection sends on.
    tx_streams: Range<u32>,
    /// The stream this connection receives, and the user id that sends it.
    rx_stream: Option<(u32, u64)>,
    inflight: VecDeque<Inflight>,
    /// Sends made in this run (the low half of `client_msg_id`).
    send_counter: u32,
    /// In the worker's flush list.
    flush_queued: bool,
    /// In the worker's ack list.
    ack_queued: bool,
    /// `group:K` senders: the server-side group (0 until `GroupCreated`).
    group_id: u64,
    /// `group:K` senders: group requests (create, add member) not answered yet.
    group_setup_pending: u32,
}

/// One (sender, recipient) stream.
#[derive(Debug)]
struct StreamInfo {
    ledger: StreamLedger,
    recipient: u32,
    recipient_user: u64,
    /// `ledger.sent()` when the current step began: the step's books cover seqs from here.
    step_first: u64,
}

/// The send schedule of one step in this worker: event `j` is due at
/// `first_ns + j * period_ns` and belongs to sender `j % senders`. Each sender so sends
/// every `senders * period_ns` (the same for every sender in the run), with its own phase;
/// workers are offset by a fraction of a period so their events interleave.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    first_ns: u64,
    period_ns: f64,
    next: u64,
    end_ns: u64,
}

impl Schedule {
    fn due_ns(&self, j: u64) -> u64 {
        self.first_ns + (j as f64 * self.period_ns) as u64
    }
}

/// A step in progress.
#[derive(Debug)]
struct StepState {
    schedule: Option<Schedule>,
    window_start_ns: u64,
    window_end_ns: u64,
    /// `--split-s`: sends scheduled before this instant are "first", the rest "rest".
    split_at_ns: Option<u64>,
    drain_deadline_ns: u64,
    cpu_at_window_start_ns: Option<u64>,
    cpu_window_ns: Option<u64>,
}

#[derive(Debug)]
enum Phase {
    Connecting,
    Idle,
    Running(StepState),
    Quitting {
        deadline_ns: u64,
        awaiting: u64,
        confirmed: u64,
    },
}

/// What a session event told us, copied out of the session's buffer.
#[derive(Debug)]
enum Ev {
    LoggedIn {
        inbox_seq: u64,
    },
    Deliver {
        sender: u64,
        inbox_seq: u64,
        header: Option<PayloadHeader>,
    },
    SendAck {
        request_id: u64,
    },
    AckOk,
    Error {
        request_id: u64,
        code: ErrorCode,
    },
    GroupCreated {
        group_id: u64,
    },
    Done,
    /// A peer refused something (login, subscription, a message).
    Refused(String),
    Other,
}

impl Ev {
    fn from_event(event: Event<'_>) -> Ev {
        match event {
            Event::LoggedIn { inbox_seq, .. } => Ev::LoggedIn { inbox_seq },
            Event::Deliver(d) => Ev::Deliver {
                sender: d.sender,
                inbox_seq: d.inbox_seq,
                header: PayloadHeader::read(d.payload),
            },
            Event::SendAck { request_id, .. } => Ev::SendAck { request_id },
            Event::AckOk { .. } => Ev::AckOk,
            Event::Error { request_id, error } => Ev::Error {
                request_id,
                code: error.code,
            },
            Event::GroupCreated { group_id, .. } => Ev::GroupCreated { group_id },
            Event::Done { .. } => Ev::Done,
            _ => Ev::Other,
        }
    }

    /// A peer's event: its readiness is a login (with no backlog position), its deliveries
    /// have no inbox seq (1 passes the backlog filter; the run nonce still applies).
    fn from_peer(event: PeerEvent) -> Ev {
        match event {
            PeerEvent::Ready => Ev::LoggedIn { inbox_seq: 0 },
            PeerEvent::Deliver { sender, header } => Ev::Deliver {
                sender,
                inbox_seq: 1,
                header,
            },
            PeerEvent::SendAck { request_id } => Ev::SendAck { request_id },
            PeerEvent::Refused(why) => Ev::Refused(why),
        }
    }
}

/// Counts of one step (reset when a step starts).
#[derive(Debug, Default)]
struct StepCounts {
    tally: Tally,
    /// Seqs both acknowledged and delivered (the books settle when this reaches `acked`).
    acked_delivered: u64,
    window_delivered: u64,
    window_sent: u64,
    skipped: u64,
    errors: u64,
    error_codes: BTreeMap<String, u64>,
    disconnected: u64,
    stale: u64,
    unexpected: u64,
    send_lag_max_ns: u64,
    /// When the last acknowledgement or first delivery arrived.
    progress_ns: u64,
    latency: LatencyHist,
    ack_latency: LatencyHist,
    send_lag: LatencyHist,
    /// With `--split-s`: delivery latency of sends scheduled before the split, and after.
    latency_first: LatencyHist,
    latency_rest: LatencyHist,
}

/// The worker's whole state.
struct Worker {
    cfg: WorkerConfig,
    poll: Poll,
    timer: Timer,
    commands: mpsc::Receiver<Command>,
    conns: Vec<Conn>,
    streams: Vec<StreamInfo>,
    /// Connection indices of this worker's senders, in schedule order.
    senders: Vec<u32>,
    read_buf: Vec<u8>,
    /// Frames a layer decoded from one read.
    frames_buf: Vec<u8>,
    /// For `--transport tls`: the client configuration and the name to verify.
    tls_client: Option<ClientTls>,
    payload: Vec<u8>,
    flush_list: Vec<u32>,
    /// Connections with something to acknowledge, each with the time its ack is due
    /// (first receipt + `--ack-interval-ms`): due times are spread like arrivals, so acks
    /// go out in a trickle rather than one burst of writes every interval.
    ack_list: VecDeque<(u64, u32)>,
    phase: Phase,
    // Connect phase.
    connect_next: usize,
    connect_first_ns: u64,
    connects_in_flight: usize,
    connected: u64,
    connect_failed: u64,
    backlog: u64,
    all_logged_in_ns: Option<u64>,
    connect_latency: LatencyHist,
    connect_errors: BTreeMap<String, u64>,
    counts: StepCounts,
    next_progress_ns: u64,
    next_sweep_ns: u64,
    /// When the send timer last fired.
    timer_fired_ns: u64,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("worker", &self.cfg.worker)
            .field("conns", &self.conns.len())
            .finish_non_exhaustive()
    }
}

/// `hotline-loadgen worker`: reads its config from stdin and runs until told to quit.
pub(crate) fn main() -> anyhow::Result<()> {
    let mut first = String::new();
    io::stdin()
        .read_line(&mut first)
        .context("worker: reading the config line")?;
    anyhow::ensure!(
        !first.is_empty(),
        "worker: stdin closed before the config line (workers are started by `run`)"
    );
    let cfg: WorkerConfig = serde_json::from_str(&first).context("worker: bad config line")?;
    let poll = Poll::new().context("worker: epoll")?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER_TOKEN).context("worker: waker")?);
    let (tx, commands) = mpsc::channel();
    // The worker keeps a reference too: if the reader thread held the last one, its exit
    // would close the eventfd and epoll would drop the wake-up still pending on it.
    let waker_kept = Arc::clone(&waker);
    std::thread::spawn(move || {
        // Stdin's buffer is shared: lines after the config line are read here.
        for line in io::stdin().lines() {
            let command = match line.map(|l| serde_json::from_str::<Command>(&l)) {
                Ok(Ok(command)) => command,
                Ok(Err(e)) => {
                    emit(&WorkerMsg::Fatal(format!("bad command line: {e}")));
                    Command::Quit
                }
                Err(_) => Command::Quit,
            };
            let quit = matches!(command, Command::Quit);
            if tx.send(command).is_err() || waker.wake().is_err() || quit {
                return;
            }
        }
        // The coordinator is gone: quit.
        let _ = tx.send(Command::Quit);
        let _ = waker.wake();
    });
    tighten_timer_slack();
    let mut worker = Worker::new(cfg, poll, commands)?;
    let result = worker.run();
    drop(waker_kept);
    result
}

impl Worker {
    #[allow(clippy::too_many_lines, reason = "still to split: socket set-up, then the schedule")]
    fn new(cfg: WorkerConfig, poll: Poll, commands: mpsc::Receiver<Command>) -> anyhow::Result<Worker> {
        let n = cfg.accounts.len();
        anyhow::ensure!(
            n <= CONNECTIONS_PER_WORKER_MAX,
            "worker {} was given {n} connections; at most {CONNECTIONS_PER_WORKER_MAX} fit under the open-file limit: use more --workers",
            cfg.worker
        );
        let accounts = match (&cfg.accounts_file, cfg.target_kind) {
            (Some(path), TargetKind::Hotline) => accounts::load(path, cfg.accounts.start, n)?,
            (None, TargetKind::Hotline) => anyhow::bail!("worker: a Hotline target needs an accounts file"),
            // A peer's users are numbered by accounts line.
            _ => cfg
                .accounts
                .clone()
                .map(|line| Account {
                    user_id: line as u64,
                    token: [0; TOKEN_BYTES],
                })
                .collect(),
        };
        let target_kind = cfg.target_kind;
        let unit = cfg.pattern.unit_accounts();
        let units = n / unit;
        let mut conns: Vec<Conn> = accounts
            .into_iter()
            .map(|account| Conn {
                session: match peers::session(target_kind, account.user_id) {
                    Some(peer) => Session::Peer(peer),
                    None => Session::Hotline(ClientSession::new("hotline-loadgen")),
                },
                account,
                stream: None,
                layer: None,
                state: ConnState::Pending,
                started_ns: 0,
                login_head: 0,
                tx_streams: 0..0,
                rx_stream: None,
                inflight: VecDeque::new(),
                send_counter: 0,
                flush_queued: false,
                ack_queued: false,
                group_id: 0,
                group_setup_pending: 0,
            })
            .collect();
        let mut streams = Vec::new();
        let mut senders = Vec::new();
        for u in 0..units {
            for offset in 0..unit {
                let sender = u * unit + offset;
                let targets = cfg.pattern.targets(offset);
                if targets.is_empty() {
                    continue;
                }
                let first = streams.len() as u32;
                for t in targets {
                    let recipient = u * unit + t;
                    streams.push(StreamInfo {
                        ledger: StreamLedger::default(),
                        recipient: recipient as u32,
                        recipient_user: conns[recipient].account.user_id,
                        step_first: 0,
                    });
                    let sender_user = conns[sender].account.user_id;
                    conns[recipient].rx_stream = Some((streams.len() as u32 - 1, sender_user));
                }
                conns[sender].tx_streams = first..streams.len() as u32;
                senders.push(sender as u32);
            }
        }
        let tls_client = match (&cfg.transport, &cfg.tls_ca) {
            (TransportKind::Tls, Some(ca)) => Some(
                hotline_transport::tls::client_trusting(ca, &cfg.tls_server_name)
                    .context("worker: TLS client configuration")?,
            ),
            (TransportKind::Tls, None) => anyhow::bail!("--transport tls needs --tls-ca"),
            _ => None,
        };
        let timer = Timer::new().context("worker: timerfd")?;
        poll.registry()
            .register(&mut SourceFd(&timer.as_raw_fd()), TIMER_TOKEN, Interest::READABLE)
            .context("worker: register the timer")?;
        let now = now_ns();
        Ok(Worker {
            payload: vec![0u8; cfg.payload_bytes],
            cfg,
            poll,
            timer,
            commands,
            conns,
            streams,
            senders,
            read_buf: vec![0u8; READ_CHUNK_BYTES],
            frames_buf: Vec::new(),
            tls_client,
            flush_list: Vec::new(),
            ack_list: VecDeque::new(),
            phase: Phase::Connecting,
            connect_next: 0,
            connect_first_ns: now,
            connects_in_flight: 0,
            connected: 0,
            connect_failed: 0,
            backlog: 0,
            all_logged_in_ns: None,
            connect_latency: LatencyHist::new(),
            connect_errors: BTreeMap::new(),
            counts: StepCounts::default(),
            next_progress_ns: now,
            next_sweep_ns: now,
            timer_fired_ns: 0,
        })
    }

    fn run(&mut self) -> anyhow::Result<()> {
        let mut events = Events::with_capacity(EVENTS_PER_POLL);
        loop {
            let now = now_ns();
            self.timed_work(now);
            if let Phase::Quitting {
                deadline_ns,
                awaiting,
                confirmed,
            } = self.phase
            {
                if awaiting == 0 || now >= deadline_ns {
                    emit(&WorkerMsg::Bye {
                        acks_confirmed: confirmed,
                    });
                    return Ok(());
                }
            }
            self.flush_all();
            let wake_ns = self.next_wake_ns();
            if let Some(at) = wake_ns {
                // At most one timer wake-up per tick: programming a timer is costly (in a
                // VM, a VM exit), and at high rates the loop is awake for socket events anyway.
                let at = at.max(self.timer_fired_ns + TIMER_TICK_NS);
                self.timer.arm_at(at).context("worker: arm the timer")?;
            }
            let ack_due_ns = self.ack_list.front().map_or(u64::MAX, |(due, _)| *due);
            let periodic_ns = ack_due_ns.min(self.next_progress_ns);
            let timeout = Duration::from_nanos(periodic_ns.saturating_sub(now_ns()).max(NS_PER_MS / 2));
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("worker: epoll_wait"),
            }
            let now = now_ns();
            for event in events.iter() {
                match event.token() {
                    TIMER_TOKEN => {
                        self.timer.clear();
                        self.timer_fired_ns = now;
                    }
                    WAKER_TOKEN => self.take_commands(now),
                    Token(i) => {
                        if event.is_writable() {
                            self.on_writable(i);
                        }
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.on_readable(i, now);
                        }
                    }
                }
            }
        }
    }

    /// The next instant the timer must wake the loop for, if any.
    fn next_wake_ns(&self) -> Option<u64> {
        match &self.phase {
            Phase::Connecting
                if self.connect_next < self.conns.len() && self.connects_in_flight < CONNECTS_IN_FLIGHT_MAX =>
            {
                Some(self.connect_due_ns(self.connect_next))
            }
            Phase::Running(step) => step
                .schedule
                .filter(|s| s.due_ns(s.next) < s.end_ns)
                .map(|s| s.due_ns(s.next)),
            _ => None,
        }
    }

    fn connect_due_ns(&self, i: usize) -> u64 {
        let rate = self.cfg.connect_rate_per_s.max(1.0);
        self.connect_first_ns + (i as f64 * NS_PER_S as f64 / rate) as u64
    }

    fn take_commands(&mut self, now: u64) {
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::Step(plan) => self.start_step(plan, now),
                Command::Quit => self.start_quit(now),
            }
        }
    }

    /// Everything due by time rather than by socket readiness.
    fn timed_work(&mut self, now: u64) {
        match self.phase {
            Phase::Connecting => self.connect_work(now),
            Phase::Running(_) => self.step_work(now),
            Phase::Idle | Phase::Quitting { .. } => {}
        }
        while let Some(&(due, i)) = self.ack_list.front() {
            if due > now {
                break;
            }
            self.ack_list.pop_front();
            let conn = &mut self.conns[i as usize];
            conn.ack_queued = false;
            let acking = conn
                .session
                .hotline()
                .is_some_and(|s| s.ack_delivered().unwrap_or(false));
            if conn.state == ConnState::Ready && acking {
                queue_flush(&mut self.flush_list, conn, i);
            }
        }
        if now >= self.next_progress_ns {
            self.next_progress_ns = now + PROGRESS_INTERVAL_MS * NS_PER_MS;
            let t = &self.counts.tally;
            emit(&WorkerMsg::Progress(Progress {
                connected: self.connected,
                failed: self.connect_failed,
                sent: t.sent,
                acked: t.acked,
                delivered: t.delivered,
                errors: self.counts.errors + self.counts.skipped,
            }));
        }
    }

    // ----- connect phase -----

    fn connect_work(&mut self, now: u64) {
        while self.connect_next < self.conns.len()
            && self.connects_in_flight < CONNECTS_IN_FLIGHT_MAX
            && self.connect_due_ns(self.connect_next) <= now
        {
            let i = self.connect_next;
            self.connect_next += 1;
            if let Err(e) = self.open(i, now) {
                self.count_connect_error(&format!("connect: {}", e.kind()));
                self.conns[i].state = ConnState::Closed;
                self.connect_failed += 1;
            }
        }
        // The sweeps below walk every connection: a few times a second is enough.
        if now < self.next_sweep_ns {
            return;
        }
        self.next_sweep_ns = now + SWEEP_INTERVAL_MS * NS_PER_MS;
        // Timeouts: a connect or login that takes too long fails.
        let timeout_ns = CONNECT_TIMEOUT_MS * NS_PER_MS;
        for i in 0..self.connect_next {
            let c = &self.conns[i];
            if matches!(c.state, ConnState::Connecting | ConnState::LoggingIn) && now > c.started_ns + timeout_ns {
                self.count_connect_error("login timeout");
                self.close(i);
            }
        }
        if self.connect_next < self.conns.len() || self.connects_in_flight > 0 {
            return;
        }
        let logged_in_ns = *self.all_logged_in_ns.get_or_insert(now);
        let uses_groups = self.cfg.pattern.uses_groups();
        let caught_up = self.conns.iter().all(|c| {
            let group_ready =
                !uses_groups || c.tx_streams.is_empty() || (c.group_id != 0 && c.group_setup_pending == 0);
            c.state != ConnState::Ready || (c.session.delivered_seq() >= c.login_head && group_ready)
        });
        if caught_up || now > logged_in_ns + BACKLOG_WAIT_MS * NS_PER_MS {
            self.phase = Phase::Idle;
            let mut connect_errors: Vec<(String, u64)> = self.connect_errors.clone().into_iter().collect();
            if !caught_up {
                connect_errors.push(("backlog not caught up".to_owned(), 1));
            }
            emit(&WorkerMsg::Ready(ReadyReport {
                connected: self.connected,
                failed: self.connect_failed,
                backlog: self.backlog,
                connect_latency: self.connect_latency.to_base64(),
                error_codes: connect_errors,
            }));
        }
    }

    fn count_connect_error(&mut self, what: &str) {
        *self.connect_errors.entry(what.to_owned()).or_default() += 1;
    }

    /// Starts connection `i`: a non-blocking connect from the next source address, with
    /// `Hello` and `Login(token)` queued behind it.
    fn open(&mut self, i: usize, now: u64) -> io::Result<()> {
        let target = self.cfg.target;
        let socket = Socket::new(
            Domain::for_address(target),
            Type::STREAM.nonblocking().cloexec(),
            Some(Protocol::TCP),
        )?;
        socket.set_nodelay(true)?;
        if !self.cfg.source_addrs.is_empty() {
            let global = self.cfg.accounts.start + i;
            let ip = self.cfg.source_addrs[global % self.cfg.source_addrs.len()];
            set_bind_address_no_port(&socket);
            socket.bind(&SocketAddr::new(ip, 0).into())?;
        }
        match socket.connect(&target.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        let mut stream = TcpStream::from_std(socket.into());
        self.poll
            .registry()
            .register(&mut stream, Token(i), Interest::READABLE | Interest::WRITABLE)?;
        let conn = &mut self.conns[i];
        conn.layer = match self.cfg.transport {
            TransportKind::Tcp => None,
            TransportKind::Tls => Some(Box::new(
                Layer::client(self.tls_client.clone(), None).map_err(|e| io::Error::other(e.to_string()))?,
            )),
            TransportKind::Ws => {
                let options = WsClientOptions {
                    host: target.to_string(),
                    path: "/".to_owned(),
                    origin: None,
                    frame_bytes_max: hotline_wire::FRAME_BYTES_MAX_DEFAULT,
                };
                Some(Box::new(
                    Layer::client(None, Some(options)).map_err(|e| io::Error::other(e.to_string()))?,
                ))
            }
        };
        conn.stream = Some(stream);
        conn.state = ConnState::Connecting;
        conn.started_ns = now;
        let token = conn.account.token;
        // A peer session queued its login when it was made.
        if let Some(session) = conn.session.hotline() {
            session
                .hello()
                .and_then(|_| session.login_token(&token, "loadgen"))
                .map_err(|e| io::Error::other(e.to_string()))?;
        }
        self.connects_in_flight += 1;
        Ok(())
    }

    // ----- steps -----

    fn start_step(&mut self, plan: StepPlan, now: u64) {
        if !matches!(self.phase, Phase::Idle) {
            emit(&WorkerMsg::Fatal("Step while not idle".to_owned()));
            return;
        }
        self.counts = StepCounts::default();
        for s in &mut self.streams {
            s.step_first = s.ledger.sent();
        }
        let window_start_ns = plan.t0_ns + plan.warmup_ns;
        let window_end_ns = window_start_ns + plan.duration_ns;
        let senders_total = self.cfg.senders_total.max(1) as f64;
        let events_per_s_total = plan.rate / f64::from(self.cfg.pattern.deliveries_per_event());
        let events_per_s = events_per_s_total * self.senders.len() as f64 / senders_total;
        let schedule = (events_per_s > 0.0 && !self.senders.is_empty()).then(|| {
            let period_ns = NS_PER_S as f64 / events_per_s;
            let offset = period_ns * self.cfg.worker as f64 / self.cfg.workers.max(1) as f64;
            Schedule {
                first_ns: plan.t0_ns + offset as u64,
                period_ns,
                next: 0,
                end_ns: window_end_ns,
            }
        });
        self.phase = Phase::Running(StepState {
            schedule,
            window_start_ns,
            window_end_ns,
            split_at_ns: plan.split_ns.map(|split| window_start_ns + split),
            drain_deadline_ns: window_end_ns + plan.drain_ns,
            cpu_at_window_start_ns: None,
            cpu_window_ns: None,
        });
        self.step_work(now);
    }

    fn step_work(&mut self, now: u64) {
        let Phase::Running(step) = &mut self.phase else { return };
        if step.cpu_at_window_start_ns.is_none() && now >= step.window_start_ns {
            step.cpu_at_window_start_ns = Some(cpu_ns());
        }
        if step.cpu_window_ns.is_none() && now >= step.window_end_ns {
            step.cpu_window_ns = Some(cpu_ns().saturating_sub(step.cpu_at_window_start_ns.unwrap_or(0)));
        }
        let (window_start, window_end, drain_deadline) =
            (step.window_start_ns, step.window_end_ns, step.drain_deadline_ns);
        if let Some(mut schedule) = step.schedule {
            let mut made = 0;
            while made < SEND_EVENTS_PER_TICK_MAX {
                let due = schedule.due_ns(schedule.next);
                if due > now || due >= schedule.end_ns {
                    break;
                }
                let sender = self.senders[(schedule.next % self.senders.len() as u64) as usize];
                schedule.next += 1;
                made += 1;
                self.counts.send_lag_max_ns = self.counts.send_lag_max_ns.max(now - due);
                let in_window = due >= window_start && due < window_end;
                if in_window {
                    self.counts.send_lag.record_ns(now - due);
                }
                self.send_event(sender, due, in_window);
            }
            if let Phase::Running(step) = &mut self.phase {
                step.schedule = Some(schedule);
            }
        }
        let behind =
            matches!(&self.phase, Phase::Running(StepState { schedule: Some(s), .. }) if s.due_ns(s.next) < s.end_ns);
        if now < window_end || behind {
            return;
        }
        let t = &self.counts.tally;
        let settled = t.acked + t.failed >= t.sent && self.counts.acked_delivered >= t.acked;
        // The books close once settled; or once nothing (no ack, no delivery) arrived for the
        // drain period, so a server still working through a backlog is not called lossy;
        // or at the hard cap.
        let drain_ns = drain_deadline - window_end;
        let quiet = now >= drain_deadline && now >= self.counts.progress_ns + drain_ns;
        if settled || quiet || now >= window_end + DRAIN_MAX_S * NS_PER_S {
            self.finish_step(settled);
        }
    }

    /// One scheduled send event of connection `c`: one `Send` per stream it sends on, or
    /// (`group:K`) one `Send` to its group, which serves all its streams.
    fn send_event(&mut self, c: u32, scheduled_ns: u64, in_window: bool) {
        let conn = &mut self.conns[c as usize];
        let sends = u64::from(conn.tx_streams.end - conn.tx_streams.start);
        if in_window {
            self.counts.window_sent += sends;
        }
        if conn.state != ConnState::Ready || conn.unsent() > OUTBOUND_BYTES_MAX {
            self.counts.skipped += sends;
            return;
        }
        if self.cfg.pattern.uses_groups() {
            return self.send_group_event(c, scheduled_ns);
        }
        let session = match &mut conn.session {
            Session::Hotline(session) => session,
            Session::Peer(_) => return self.send_peer_event(c, scheduled_ns),
        };
        for s in conn.tx_streams.clone() {
            let stream = &mut self.streams[s as usize];
            let seq = stream.ledger.on_sent();
            PayloadHeader {
                run_nonce: u64::from(self.cfg.run_nonce),
                scheduled_ns,
                seq,
            }
            .write(&mut self.payload);
            let id = client_msg_id(self.cfg.run_nonce, conn.send_counter);
            conn.send_counter = conn
                .send_counter
                .checked_add(1)
                .expect("at most 2^32 sends per sender and run (see payload.rs)");
            match session.send(stream.recipient_user, id, &self.payload, SendFlags::NONE) {
                Ok(request_id) => {
                    self.counts.tally.sent += 1;
                    conn.inflight.push_back(Inflight {
                        request_id,
                        stream: s,
                        streams_end: s + 1,
                        seq,
                        scheduled_ns,
                        done: false,
                    });
                }
                Err(e) => {
                    // Only a payload over the server's limit gets here: a setup mistake.
                    self.counts.tally.sent += 1;
                    stream.ledger.on_failed(seq);
                    self.counts.tally.failed += 1;
                    self.counts.errors += 1;
                    *self.counts.error_codes.entry(format!("local: {e}")).or_default() += 1;
                }
            }
        }
        queue_flush(&mut self.flush_list, conn, c);
    }

    /// A peer's send event: one message per stream. A protocol without acknowledgements
    /// (core NATS, XMPP) counts a send acknowledged when it is queued, so a message that
    /// never arrives counts as lost.
    fn send_peer_event(&mut self, c: u32, scheduled_ns: u64) {
        let conn = &mut self.conns[c as usize];
        let Session::Peer(peer) = &mut conn.session else { return };
        for s in conn.tx_streams.clone() {
            if !peer.can_send() {
                self.counts.skipped += 1;
                continue;
            }
            let stream = &mut self.streams[s as usize];
            let seq = stream.ledger.on_sent();
            PayloadHeader {
                run_nonce: u64::from(self.cfg.run_nonce),
                scheduled_ns,
                seq,
            }
            .write(&mut self.payload);
            peers::write_sender(&mut self.payload, conn.account.user_id);
            self.counts.tally.sent += 1;
            match peer.send(stream.recipient_user, &self.payload) {
                Some(request_id) => conn.inflight.push_back(Inflight {
                    request_id,
                    stream: s,
                    streams_end: s + 1,
                    seq,
                    scheduled_ns,
                    done: false,
                }),
                None => {
                    stream.ledger.on_acked(seq);
                    self.counts.tally.acked += 1;
                    if stream.ledger.is_delivered(seq) {
                        self.counts.acked_delivered += 1;
                    }
                }
            }
        }
        queue_flush(&mut self.flush_list, conn, c);
    }

    /// A `group:K` send event: one `Send` to the sender's group; every stream of the sender
    /// takes the same seq (they move in lockstep), which the payload carries.
    fn send_group_event(&mut self, c: u32, scheduled_ns: u64) {
        let conn = &mut self.conns[c as usize];
        let streams = conn.tx_streams.clone();
        let mut seq = None;
        for s in streams.clone() {
            let next = self.streams[s as usize].ledger.on_sent();
            assert!(
                seq.is_none_or(|seq| seq == next),
                "a group sender's streams move in lockstep"
            );
            seq = Some(next);
        }
        let Some(seq) = seq else { return };
        let fanout = u64::from(streams.end - streams.start);
        PayloadHeader {
            run_nonce: u64::from(self.cfg.run_nonce),
            scheduled_ns,
            seq,
        }
        .write(&mut self.payload);
        let id = client_msg_id(self.cfg.run_nonce, conn.send_counter);
        conn.send_counter = conn
            .send_counter
            .checked_add(1)
            .expect("at most 2^32 sends per sender and run (see payload.rs)");
        self.counts.tally.sent += fanout;
        let Some(session) = conn.session.hotline() else { return };
        match session.send_group(conn.group_id, id, &self.payload, SendFlags::NONE) {
            Ok(request_id) => conn.inflight.push_back(Inflight {
                request_id,
                stream: streams.start,
                streams_end: streams.end,
                seq,
                scheduled_ns,
                done: false,
            }),
            Err(e) => {
                for s in streams {
                    self.streams[s as usize].ledger.on_failed(seq);
                }
                self.counts.tally.failed += fanout;
                self.counts.errors += 1;
                *self.counts.error_codes.entry(format!("local: {e}")).or_default() += 1;
            }
        }
        queue_flush(&mut self.flush_list, conn, c);
    }

    /// A `group:K` sender logged in: create its group, then add its K recipients (and any
    /// `--group-extra-member`s).
    fn start_group_setup(&mut self, i: usize) {
        let conn = &mut self.conns[i];
        if conn.tx_streams.is_empty() {
            return;
        }
        let name = format!("loadgen-{}", self.cfg.run_nonce);
        let Some(session) = conn.session.hotline() else { return };
        match session.group_create(&name, hotline_wire::Persistence::ARCHIVE) {
            Ok(_) => conn.group_setup_pending += 1,
            Err(e) => self.count_connect_error(&format!("group create: {e}")),
        }
        queue_flush(&mut self.flush_list, &mut self.conns[i], i as u32);
    }

    fn on_group_created(&mut self, i: usize, group_id: u64) {
        let conn = &mut self.conns[i];
        conn.group_setup_pending = conn.group_setup_pending.saturating_sub(1);
        conn.group_id = group_id;
        let Some(session) = conn.session.hotline() else { return };
        let recipients = conn.tx_streams.clone().map(|s| self.streams[s as usize].recipient_user);
        let users: Vec<u64> = recipients.chain(self.cfg.group_extra_members.iter().copied()).collect();
        for user in users {
            match session.group_add_member(group_id, user, hotline_wire::GroupRole::MEMBER) {
                Ok(_) => conn.group_setup_pending += 1,
                Err(e) => {
                    *self.connect_errors.entry(format!("group add: {e}")).or_default() += 1;
                }
            }
        }
        queue_flush(&mut self.flush_list, conn, i as u32);
    }

    fn finish_step(&mut self, settled: bool) {
        let Phase::Running(step) = std::mem::replace(&mut self.phase, Phase::Idle) else {
            return;
        };
        let mut unverified = 0;
        for s in &mut self.streams {
            let (lost, unacked) = s.ledger.close(s.step_first);
            if self.conns[s.recipient as usize].state == ConnState::Ready {
                self.counts.tally.lost += lost;
            } else {
                unverified += lost;
            }
            self.counts.tally.unacked += unacked;
            s.step_first = s.ledger.sent();
        }
        let c = std::mem::take(&mut self.counts);
        emit(&WorkerMsg::StepDone(Box::new(StepReport {
            tally: c.tally,
            window_delivered: c.window_delivered,
            window_sent: c.window_sent,
            skipped: c.skipped,
            errors: c.errors,
            error_codes: c.error_codes.into_iter().collect(),
            disconnected: c.disconnected,
            unverified,
            stale: c.stale,
            unexpected: c.unexpected,
            settled,
            cpu_window_ns: step.cpu_window_ns.unwrap_or(0),
            send_lag_max_ns: c.send_lag_max_ns,
            latency: c.latency.to_base64(),
            ack_latency: c.ack_latency.to_base64(),
            send_lag: c.send_lag.to_base64(),
            latency_split: step
                .split_at_ns
                .map(|_| (c.latency_first.to_base64(), c.latency_rest.to_base64())),
        })));
    }

    fn start_quit(&mut self, now: u64) {
        if matches!(self.phase, Phase::Quitting { .. }) {
            return;
        }
        let mut awaiting = 0;
        for i in 0..self.conns.len() {
            let conn = &mut self.conns[i];
            if conn.state != ConnState::Ready || conn.session.delivered_seq() == 0 {
                continue;
            }
            // Only what the server said is durable (early delivery): a tentative entry left
            // unacknowledged is the next run's backlog, which its login filters out.
            let Some(session) = conn.session.hotline() else {
                continue;
            };
            let seq = session.ackable_seq();
            if seq > 0 && session.ack_confirmed(seq).is_ok() {
                awaiting += 1;
                queue_flush(&mut self.flush_list, conn, i as u32);
            }
        }
        self.phase = Phase::Quitting {
            deadline_ns: now + QUIT_ACK_WAIT_MS * NS_PER_MS,
            awaiting,
            confirmed: 0,
        };
    }

    // ----- sockets -----

    fn flush_all(&mut self) {
        for i in std::mem::take(&mut self.flush_list) {
            self.conns[i as usize].flush_queued = false;
            self.flush(i as usize);
        }
    }

    /// Writes what the session has queued until the socket would block.
    fn flush(&mut self, i: usize) {
        let conn = &mut self.conns[i];
        if !matches!(conn.state, ConnState::LoggingIn | ConnState::Ready) {
            return;
        }
        let Some(stream) = conn.stream.as_mut() else { return };
        if let Some(layer) = conn.layer.as_mut() {
            let frames = conn.session.outbound();
            let sealed = layer.seal(frames);
            let n = frames.len();
            conn.session.consume_outbound(n);
            if let Err(e) = sealed {
                return self.lose(i, &format!("transport: {e}"));
            }
            while !layer.wire().is_empty() {
                match stream.write(layer.wire()) {
                    Ok(0) => return self.lose(i, "write returned 0"),
                    Ok(n) => layer.consume_wire(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return self.lose(i, &format!("write: {}", e.kind())),
                }
            }
            return;
        }
        while !conn.session.outbound().is_empty() {
            match stream.write(conn.session.outbound()) {
                Ok(0) => return self.lose(i, "write returned 0"),
                Ok(n) => conn.session.consume_outbound(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.lose(i, &format!("write: {}", e.kind())),
            }
        }
    }

    fn on_writable(&mut self, i: usize) {
        let Some(conn) = self.conns.get_mut(i) else { return };
        if conn.state == ConnState::Connecting {
            let Some(stream) = conn.stream.as_ref() else { return };
            match stream.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => {
                    self.count_connect_error(&format!("connect: {}", e.kind()));
                    return self.close(i);
                }
            }
            match stream.peer_addr() {
                Ok(_) => conn.state = ConnState::LoggingIn,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => {
                    self.count_connect_error(&format!("connect: {}", e.kind()));
                    return self.close(i);
                }
            }
        }
        self.flush(i);
    }

    fn on_readable(&mut self, i: usize, now: u64) {
        loop {
            let Some(conn) = self.conns.get_mut(i) else { return };
            if !matches!(
                conn.state,
                ConnState::LoggingIn | ConnState::Ready | ConnState::Connecting
            ) {
                return;
            }
            let Some(stream) = conn.stream.as_mut() else { return };
            let n = match stream.read(&mut self.read_buf) {
                Ok(0) => return self.lose(i, "closed by the server"),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.lose(i, &format!("read: {}", e.kind())),
            };
            if conn.state == ConnState::Connecting {
                conn.state = ConnState::LoggingIn;
            }
            if let Some(layer) = conn.layer.as_mut() {
                self.frames_buf.clear();
                if let Err(e) = layer.ingest(&self.read_buf[..n], &mut self.frames_buf) {
                    return self.lose(i, &format!("transport: {e}"));
                }
                conn.session.receive(&self.frames_buf);
            } else {
                conn.session.receive(&self.read_buf[..n]);
            }
            if !self.drain_events(i, now) {
                return;
            }
            // A short read emptied the socket: no need for the read that says EAGAIN.
            if n < self.read_buf.len() {
                break;
            }
        }
        let conn = &mut self.conns[i];
        if conn.unsent() > 0 {
            queue_flush(&mut self.flush_list, conn, i as u32);
        }
    }

    /// Handles every complete frame received; false if the connection was closed.
    fn drain_events(&mut self, i: usize, now: u64) -> bool {
        loop {
            let ev = match self.conns[i].session.next_ev() {
                Ok(Some(ev)) => ev,
                Ok(None) => return true,
                Err(e) => {
                    self.lose(i, &format!("protocol: {e}"));
                    return false;
                }
            };
            self.handle(i, ev, now);
            if self.conns[i].state == ConnState::Closed {
                return false;
            }
        }
    }

    fn handle(&mut self, i: usize, ev: Ev, now: u64) {
        match ev {
            Ev::LoggedIn { inbox_seq } => {
                let conn = &mut self.conns[i];
                conn.state = ConnState::Ready;
                conn.login_head = inbox_seq;
                self.connect_latency.record_ns(now.saturating_sub(conn.started_ns));
                self.connected += 1;
                self.connects_in_flight -= 1;
                if self.cfg.pattern.uses_groups() {
                    self.start_group_setup(i);
                }
            }
            Ev::GroupCreated { group_id } => self.on_group_created(i, group_id),
            Ev::Done => {
                let conn = &mut self.conns[i];
                conn.group_setup_pending = conn.group_setup_pending.saturating_sub(1);
            }
            Ev::Deliver {
                sender,
                inbox_seq,
                header,
            } => self.on_deliver(i, sender, inbox_seq, header, now),
            Ev::SendAck { request_id } => self.on_send_ack(i, request_id, now),
            Ev::AckOk => {
                if let Phase::Quitting {
                    awaiting, confirmed, ..
                } = &mut self.phase
                {
                    *awaiting = awaiting.saturating_sub(1);
                    *confirmed += 1;
                }
            }
            Ev::Error { request_id, code } => self.on_error(i, request_id, code),
            Ev::Refused(why) => self.on_refused(i, &why),
            Ev::Other => {}
        }
    }

    fn on_deliver(&mut self, i: usize, sender: u64, inbox_seq: u64, header: Option<PayloadHeader>, now: u64) {
        let conn = &mut self.conns[i];
        queue_ack(
            &mut self.ack_list,
            conn,
            i as u32,
            now + self.cfg.ack_interval_ms * NS_PER_MS,
        );
        let current = header.filter(|h| h.run_nonce == u64::from(self.cfg.run_nonce));
        let Some(h) = current.filter(|_| inbox_seq > conn.login_head) else {
            if matches!(self.phase, Phase::Connecting) {
                self.backlog += 1;
            } else {
                self.counts.stale += 1;
            }
            return;
        };
        let Some((s, _)) = conn.rx_stream.filter(|(_, from)| *from == sender) else {
            self.counts.unexpected += 1;
            return;
        };
        let ledger = &mut self.streams[s as usize].ledger;
        let delivery = ledger.on_delivered(h.seq);
        self.counts.tally.count_delivery(delivery);
        if delivery == Delivery::Duplicate {
            return;
        }
        self.counts.progress_ns = now;
        if ledger.is_acked(h.seq) {
            self.counts.acked_delivered += 1;
        }
        if let Phase::Running(step) = &self.phase {
            if h.scheduled_ns >= step.window_start_ns && h.scheduled_ns < step.window_end_ns {
                let latency_ns = now.saturating_sub(h.scheduled_ns);
                self.counts.latency.record_ns(latency_ns);
                match step.split_at_ns {
                    Some(split) if h.scheduled_ns < split => self.counts.latency_first.record_ns(latency_ns),
                    Some(_) => self.counts.latency_rest.record_ns(latency_ns),
                    None => {}
                }
            }
            if now >= step.window_start_ns && now < step.window_end_ns {
                self.counts.window_delivered += 1;
            }
        }
    }

    fn on_send_ack(&mut self, i: usize, request_id: u64, now: u64) {
        let conn = &mut self.conns[i];
        // The sender's own inbox copy moved its delivered position: ack it in time.
        queue_ack(
            &mut self.ack_list,
            conn,
            i as u32,
            now + self.cfg.ack_interval_ms * NS_PER_MS,
        );
        let Some(f) = take_inflight(&mut conn.inflight, request_id) else {
            return;
        };
        let mut acked = 0;
        for s in f.stream..f.streams_end {
            let ledger = &mut self.streams[s as usize].ledger;
            if !ledger.on_acked(f.seq) {
                continue;
            }
            acked += 1;
            self.counts.tally.acked += 1;
            if ledger.is_delivered(f.seq) {
                self.counts.acked_delivered += 1;
            }
        }
        if acked == 0 {
            return;
        }
        self.counts.progress_ns = now;
        if let Phase::Running(step) = &self.phase {
            if f.scheduled_ns >= step.window_start_ns && f.scheduled_ns < step.window_end_ns {
                self.counts.ack_latency.record_ns(now.saturating_sub(f.scheduled_ns));
            }
        }
    }

    fn on_error(&mut self, i: usize, request_id: u64, code: ErrorCode) {
        let conn = &mut self.conns[i];
        if conn.state == ConnState::LoggingIn || conn.state == ConnState::Connecting {
            self.count_connect_error(&format!("login: {code:?}"));
            return self.close(i);
        }
        self.counts.errors += 1;
        *self.counts.error_codes.entry(format!("{code:?}")).or_default() += 1;
        if let Some(f) = take_inflight(&mut conn.inflight, request_id) {
            for s in f.stream..f.streams_end {
                self.streams[s as usize].ledger.on_failed(f.seq);
                self.counts.tally.failed += 1;
            }
        } else if conn.group_setup_pending > 0 {
            // A group create or add failed: the setup will not finish (counted above).
            conn.group_setup_pending -= 1;
        } else if let Phase::Quitting { awaiting, .. } = &mut self.phase {
            *awaiting = awaiting.saturating_sub(1);
        }
    }

    /// A peer refused something: a login or subscription fails the connection; anything
    /// else is counted as an error.
    fn on_refused(&mut self, i: usize, why: &str) {
        if matches!(self.conns[i].state, ConnState::LoggingIn | ConnState::Connecting) {
            self.count_connect_error(&format!("refused: {why}"));
            return self.close(i);
        }
        self.counts.errors += 1;
        *self.counts.error_codes.entry(format!("refused: {why}")).or_default() += 1;
    }

    /// A connection failed while logged in: counted as an error, then closed.
    fn lose(&mut self, i: usize, why: &str) {
        match self.conns[i].state {
            ConnState::Ready => {
                self.counts.errors += 1;
                self.counts.disconnected += 1;
                *self
                    .counts
                    .error_codes
                    .entry(format!("disconnected: {why}"))
                    .or_default() += 1;
                if let Phase::Quitting { awaiting, .. } = &mut self.phase {
                    *awaiting = awaiting.saturating_sub(1);
                }
            }
            ConnState::Connecting | ConnState::LoggingIn => self.count_connect_error(why),
            ConnState::Pending | ConnState::Closed => {}
        }
        self.close(i);
    }

    fn close(&mut self, i: usize) {
        let conn = &mut self.conns[i];
        if matches!(conn.state, ConnState::Connecting | ConnState::LoggingIn) {
            self.connects_in_flight -= 1;
            self.connect_failed += 1;
        }
        if let Some(mut stream) = conn.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
        conn.layer = None;
        conn.state = ConnState::Closed;
    }
}

impl Conn {
    /// Bytes queued for the server and not yet written (frames and sealed layer bytes).
    fn unsent(&self) -> usize {
        self.session.outbound().len() + self.layer.as_ref().map_or(0, |l| l.pending_bytes())
    }
}

fn queue_flush(list: &mut Vec<u32>, conn: &mut Conn, i: u32) {
    if !conn.flush_queued {
        conn.flush_queued = true;
        list.push(i);
    }
}

fn queue_ack(list: &mut VecDeque<(u64, u32)>, conn: &mut Conn, i: u32, due_ns: u64) {
    if !conn.ack_queued {
        conn.ack_queued = true;
        list.push_back((due_ns, i));
    }
}

/// Removes the in-flight send with `request_id` (sends are queued in request-id order).
fn take_inflight(inflight: &mut VecDeque<Inflight>, request_id: u64) -> Option<Inflight> {
    let at = inflight.binary_search_by_key(&request_id, |f| f.request_id).ok()?;
    let entry = &mut inflight[at];
    if entry.done {
        return None;
    }
    entry.done = true;
    let found = *entry;
    while inflight.front().is_some_and(|f| f.done) {
        inflight.pop_front();
    }
    Some(found)
}

/// Lets the kernel pick the source port at `connect` (per 4-tuple) rather than at `bind`
/// (per address), so one source address is not limited to one ephemeral range in total.
fn set_bind_address_no_port(socket: &Socket) {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket and a c_int option value of the right size.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// This process's user + system CPU time, ns.
pub(crate) fn cpu_ns() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one rusage into the buffer we own.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return 0;
    }
    // SAFETY: getrusage succeeded and initialised it.
    let usage = unsafe { usage.assume_init() };
    let tv = |t: libc::timeval| t.tv_sec as u64 * NS_PER_S + t.tv_usec as u64 * 1_000;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflight_sends_are_found_in_any_order_and_the_queue_shrinks() {
        let mut q: VecDeque<Inflight> = (1..=5)
            .map(|request_id| Inflight {
                request_id,
                streams_end: 1,
                stream: 0,
                seq: request_id - 1,
                scheduled_ns: 0,
                done: false,
            })
            .collect();
        assert_eq!(take_inflight(&mut q, 3).map(|f| f.seq), Some(2));
        assert_eq!(q.len(), 5, "1 and 2 still wait");
        assert!(take_inflight(&mut q, 3).is_none(), "answered once only");
        assert_eq!(take_inflight(&mut q, 1).map(|f| f.seq), Some(0));
        assert_eq!(q.len(), 4);
        assert_eq!(take_inflight(&mut q, 2).map(|f| f.seq), Some(1));
        assert_eq!(q.len(), 2, "1, 2 and 3 are gone");
        assert!(take_inflight(&mut q, 9).is_none());
    }

    #[test]
    fn a_schedule_spaces_events_evenly() {
        let s = Schedule {
            first_ns: 1_000,
            period_ns: 2_500.5,
            next: 0,
            end_ns: u64::MAX,
        };
        assert_eq!(s.due_ns(0), 1_000);
        assert_eq!(s.due_ns(2), 6_001);
        assert_eq!(s.due_ns(1_000_000), 1_000 + 2_500_500_000);
    }
}
