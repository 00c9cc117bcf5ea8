//! Start-up, the thread layout, and graceful shutdown.
//!
//! Threads: one per core (a pinned monoio runtime with its own `SO_REUSEPORT` listener),
//! one log writer (plus a WAL syncer under `async` durability), a few helpers, and the
//! main thread, which only waits for SIGINT/SIGTERM.
//!
//! Shutdown order: cores stop accepting and reading, wait (bounded) until every request
//! they sent to the writer or helpers has completed and its reply is queued, tell each
//! connection `ShuttingDown`, flush and close; then the writer finishes its queue, then
//! the helpers stop, then RocksDB closes. Exit status 0.

use std::cell::RefCell;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hotline_wire::ErrorCode;
use monoio::net::TcpListener;
use monoio::{FusionDriver, RuntimeBuilder};

use crate::config::ServeConfig;
use crate::core::Core;
use crate::mailbox::Mailbox;
use crate::poller::Poller;
use crate::shared::Shared;
use crate::storage::{writer, Storage};
use crate::transport::Transports;
use crate::{conn, helper};

/// Listen backlog per core.
const LISTEN_BACKLOG: i32 = 4_096;
/// io_uring submission queue entries per core.
const URING_ENTRIES: u32 = 4_096;
/// Longest a core waits for its in-flight writes at shutdown.
const SHUTDOWN_DRAIN_MS: u64 = 10_000;
/// Longest a core waits for connections to flush and close at shutdown.
const SHUTDOWN_CLOSE_MS: u64 = 2_000;

/// Where a started server listens.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    /// Plain TCP.
    pub tcp: SocketAddr,
    /// TLS over TCP, when a certificate is configured.
    pub tls: Option<SocketAddr>,
    /// WebSocket, unless turned off.
    pub ws: Option<SocketAddr>,
    /// The WebSocket listener speaks TLS.
    pub ws_tls: bool,
    /// The web page is served on the WebSocket listener.
    pub web: bool,
    /// The Prometheus endpoint, unless turned off.
    pub metrics: Option<SocketAddr>,
    /// The integration API, when on.
    pub api: Option<SocketAddr>,
}

/// One core's listeners: plain TCP, and TLS and WebSocket when configured.
struct CoreListeners {
    tcp: StdListener,
    tls: Option<StdListener>,
    ws: Option<StdListener>,
}

/// Runs `hotline serve` until SIGINT or SIGTERM. `ready` receives the bound addresses.
pub fn serve(config: ServeConfig, ready: impl FnOnce(&Bound)) -> anyhow::Result<()> {
    config.validate().context("invalid configuration")?;
    // Certificates first: a bad --tls-cert stops start-up before any thread starts.
    let transports = Transports::from_config(&config)?;
    check_io_uring();
    raise_open_file_limit();
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create the data directory {}", config.data_dir.display()))?;
    let storage = Arc::new(Storage::open(&config.data_dir)?);
    let mailboxes: Arc<[Mailbox]> = (0..config.cores).map(|_| Mailbox::default()).collect();
    let (log_writer, writer_threads) = writer::spawn_with(
        storage.clone(),
        mailboxes.clone(),
        writer::WriterSettings {
            durability: config.durability,
            early_delivery: config.early_delivery,
            inline_commits: config.inline_commits,
            group_members_max: config.group_members_max,
            ..writer::WriterSettings::new(config.durability)
        },
    )?;
    let (helpers, helper_threads) = helper::spawn(
        config.helper_threads,
        storage.clone(),
        log_writer.clone(),
        mailboxes.clone(),
    )
    .context("cannot start the helper threads")?;

    let listeners = bind_all(&config, &transports)?;
    let bound = listeners.bound;
    let shared = Arc::new(Shared::new(
        config.clone(),
        mailboxes,
        log_writer.clone(),
        helpers.clone(),
        transports,
    ));
    let services = Services::start(listeners.services, &shared, &storage)?;

    let signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])
        .context("cannot install signal handlers")?;
    let signal_handle = signals.handle();
    let cores = start_cores(&shared, listeners.cores)?;
    tracing::info!(
        "serving on {} (tls {:?}, websocket {:?}) with {} cores, durability {:?}, data in {}",
        bound.tcp,
        bound.tls,
        bound.ws,
        config.cores,
        config.durability,
        config.data_dir.display()
    );
    ready(&bound);

    // Wait for SIGINT/SIGTERM on this thread.
    let mut signals = signals;
    if let Some(sig) = signals.forever().next() {
        tracing::info!("signal {sig}: shutting down");
    }
    signal_handle.close();
    shared.shutdown.store(true, Ordering::SeqCst);
    for m in shared.mailboxes.iter() {
        m.wake();
    }
    for core in cores {
        if core.join().is_err() {
            tracing::error!("a core thread panicked during shutdown");
        }
    }
    services.join();
    log_writer.stop();
    for t in writer_threads {
        let _ = t.join();
    }
    helpers.stop();
    for t in helper_threads {
        let _ = t.join();
    }
    drop(storage);
    tracing::info!("metrics at exit: {}", shared.metrics.abuse.summary());
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Every socket `serve` listens on, bound before any thread that uses one starts.
struct Listeners {
    /// One set per core (`SO_REUSEPORT`).
    cores: Vec<CoreListeners>,
    services: ServiceListeners,
    bound: Bound,
}

/// The listeners of the threads besides the cores.
struct ServiceListeners {
    control: std::os::unix::net::UnixListener,
    metrics: Option<StdListener>,
    api: Option<StdListener>,
}

/// Binds the per-core TCP, TLS and WebSocket listeners, the admin socket, the metrics
/// endpoint and the integration API, naming the flag of whichever fails.
fn bind_all(config: &ServeConfig, transports: &Transports) -> anyhow::Result<Listeners> {
    let tcp = bind_listeners(config.listen, config.cores)?;
    let addr = tcp[0].local_addr()?;
    let t = &config.transport;
    let tls = match (t.tls_listen, &transports.tls) {
        (Some(at), Some(_)) => Some(bind_listeners(at, config.cores).context("TLS listener (--tls-listen)")?),
        _ => None,
    };
    let ws = match t.ws_listen {
        Some(at) => Some(bind_listeners(at, config.cores).context("WebSocket listener (--ws-listen)")?),
        None => None,
    };
    let control = crate::control::bind(&config.data_dir).with_context(|| {
        format!(
            "cannot bind the admin socket {}",
            crate::control::socket_path(&config.data_dir).display()
        )
    })?;
    let metrics = match config.metrics_listen {
        Some(at) => Some(StdListener::bind(at).with_context(|| {
            format!("cannot bind the metrics endpoint (--metrics-listen {at}); `off` turns it off")
        })?),
        None => None,
    };
    let api = match config.integration.api_listen {
        Some(at) => Some(
            StdListener::bind(at).with_context(|| format!("cannot bind the integration API (--api-listen {at})"))?,
        ),
        None => None,
    };
    let bound = Bound {
        api: api.as_ref().map(|l| l.local_addr()).transpose()?,
        metrics: metrics.as_ref().map(|l| l.local_addr()).transpose()?,
        tcp: addr,
        tls: tls.as_ref().map(|l| l[0].local_addr()).transpose()?,
        ws: ws.as_ref().map(|l| l[0].local_addr()).transpose()?,
        ws_tls: t.ws_tls,
        web: t.web,
    };
    let mut tls = tls.map(Vec::into_iter);
    let mut ws = ws.map(Vec::into_iter);
    let cores = tcp
        .into_iter()
        .map(|tcp| CoreListeners {
            tcp,
            tls: tls.as_mut().and_then(Iterator::next),
            ws: ws.as_mut().and_then(Iterator::next),
        })
        .collect();
    Ok(Listeners {
        cores,
        services: ServiceListeners { control, metrics, api },
        bound,
    })
}

/// The threads besides cores, writer and helpers: metrics, admin socket, integration
/// API and webhooks, retention.
struct Services {
    threads: Vec<thread::JoinHandle<()>>,
}

impl Services {
    fn start(listeners: ServiceListeners, shared: &Arc<Shared>, storage: &Arc<Storage>) -> anyhow::Result<Services> {
        let mut threads = Vec::new();
        if let Some(l) = listeners.metrics {
            let t = crate::metrics::spawn_endpoint(l, shared.clone(), storage.clone())
                .context("cannot start the metrics thread")?;
            threads.push(t);
        }
        if let Some(l) = listeners.api {
            let t = crate::integration::spawn_api(l, shared.clone(), storage.clone())
                .context("cannot start the API thread")?;
            threads.push(t);
        }
        let webhooks = crate::integration::spawn_webhooks(shared.clone(), storage.clone())
            .context("cannot start the webhook thread")?;
        let retention =
            crate::retention::spawn(shared.clone(), storage.clone()).context("cannot start the retention thread")?;
        let control = crate::control::spawn(
            listeners.control,
            shared.config.data_dir.clone(),
            shared.clone(),
            storage.clone(),
        )
        .context("cannot start the admin thread")?;
        threads.extend(webhooks);
        threads.extend(retention);
        threads.push(control);
        Ok(Services { threads })
    }

    /// Waits for every service thread (each stops on `shared.shutdown`).
    fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Starts one thread per core and waits until each is serving.
fn start_cores(shared: &Arc<Shared>, listeners: Vec<CoreListeners>) -> anyhow::Result<Vec<thread::JoinHandle<()>>> {
    let (started_tx, started_rx) = mpsc::channel();
    let mut cores = Vec::with_capacity(listeners.len());
    for (id, listener) in listeners.into_iter().enumerate() {
        let shared = shared.clone();
        let started = started_tx.clone();
        cores.push(
            thread::Builder::new()
                .name(format!("hotline-core-{id}"))
                .spawn(move || run_core(id, shared, listener, started))
                .context("cannot start a core thread")?,
        );
    }
    drop(started_tx);
    for _ in 0..cores.len() {
        match started_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => bail!("a core failed to start: {e}"),
            Err(_) => bail!("a core thread died while starting"),
        }
    }
    Ok(cores)
}

/// Refuses to start without a usable io_uring unless monoio's epoll driver can stand in;
/// either way the operator is told exactly what is going on.
fn check_io_uring() {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(0);
    if disabled != 0 || !monoio::utils::detect_uring() {
        tracing::warn!(
            "io_uring is unavailable (/proc/sys/kernel/io_uring_disabled = {disabled}, or the kernel lacks it): \
             FALLING BACK to monoio's epoll driver; expect lower throughput. Enable io_uring with \
             `sysctl kernel.io_uring_disabled=0`."
        );
    }
}

/// Raises the soft open-file limit to the hard limit: each connection is one descriptor.
fn raise_open_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read only the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    tracing::info!(
        "open-file limit {}: at most about {} connections in this process",
        lim.rlim_cur,
        lim.rlim_cur.saturating_sub(64)
    );
}

/// One `SO_REUSEPORT` listener per core on the same address; port 0 picks one port for all.
fn bind_listeners(addr: SocketAddr, cores: usize) -> anyhow::Result<Vec<StdListener>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let mut addr = addr;
    let mut out = Vec::with_capacity(cores);
    for _ in 0..cores {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_port(true)?;
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket
            .bind(&addr.into())
            .with_context(|| format!("cannot listen on {addr} (in use, or not an address of this host?)"))?;
        socket.listen(LISTEN_BACKLOG)?;
        let listener: StdListener = socket.into();
        addr = listener.local_addr()?;
        out.push(listener);
    }
    Ok(out)
}

/// The CPUs this process may run on (its affinity mask: `taskset`, systemd's
/// `CPUAffinity=`, a cgroup's cpuset), in order; every CPU number below `CPU_SETSIZE` if
/// the mask cannot be read.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity writes at most
    // size_of::<cpu_set_t>() bytes into it, and CPU_ISSET reads within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            let cpus = thread::available_parallelism().map_or(1, |n| n.get());
            return (0..cpus).collect();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect()
    }
}

fn run_core(id: usize, shared: Arc<Shared>, listeners: CoreListeners, started: mpsc::Sender<Result<(), String>>) {
    // Core `id` takes the id-th CPU the process may use (not CPU `id`: under `taskset -c 1`
    // core 0 belongs on CPU 1).
    let allowed = allowed_cpus();
    let cpu = allowed.get(id % allowed.len().max(1)).copied().unwrap_or(0);
    if let Err(e) = monoio::utils::bind_to_cpu_set([cpu]) {
        tracing::warn!("core {id}: cannot pin to cpu {cpu}: {e:?}");
    }
    let runtime = RuntimeBuilder::<FusionDriver>::new()
        .enable_timer()
        .with_entries(URING_ENTRIES)
        .build();
    let mut runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            let _ = started.send(Err(format!("core {id}: cannot build the io runtime: {e}")));
            return;
        }
    };
    let mailbox_shared = shared.clone();
    runtime.block_on(async move {
        let from_std = |l: StdListener| TcpListener::from_std(l).map_err(|e| format!("core {id}: listener: {e}"));
        let opened = (|| {
            let tcp = from_std(listeners.tcp)?;
            let tls = listeners.tls.map(from_std).transpose()?;
            let ws = listeners.ws.map(from_std).transpose()?;
            Ok::<_, String>((tcp, tls, ws))
        })();
        let (tcp, tls, ws) = match opened {
            Ok(l) => l,
            Err(e) => {
                let _ = started.send(Err(e));
                return;
            }
        };
        let poller = match Poller::open(shared.config.poller) {
            Ok(p) => p,
            Err(e) => {
                let _ = started.send(Err(format!(
                    "core {id}: cannot open the connection poller ({:?}): {e}",
                    shared.config.poller
                )));
                return;
            }
        };
        if id == 0 {
            tracing::info!("connection readiness through {}", poller.name());
        }
        let core = Rc::new(RefCell::new(Core::new(id, shared.clone())));
        core.borrow_mut().io.poller = Some(poller);
        monoio::spawn(conn::io_loop(core.clone()));
        monoio::spawn(mailbox_loop(core.clone()));
        if shared.writer.inline {
            monoio::spawn(committer(core.clone()));
        }
        monoio::spawn(sweeper(core.clone()));
        monoio::spawn(cursor_ticker(core.clone()));
        if let (Some(listener), Some(settings)) = (tls, &shared.transports.tls) {
            monoio::spawn(conn::accept_loop(core.clone(), listener, Some(settings.clone())));
        }
        if let (Some(listener), Some(settings)) = (ws, &shared.transports.ws) {
            monoio::spawn(conn::accept_loop(core.clone(), listener, Some(settings.clone())));
        }
        let _ = started.send(Ok(()));
        monoio::select! {
            _ = conn::accept_loop(core.clone(), tcp, None) => {},
            _ = shutdown_requested(&shared) => {},
        }
        drain_and_close(&core).await;
    });
    mailbox_shared.mailboxes[id].close();
}

async fn shutdown_requested(shared: &Shared) {
    while !shared.shutdown.load(Ordering::SeqCst) {
        monoio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Handles the core's mailbox for as long as the runtime lives.
async fn mailbox_loop(core: crate::core::CoreRef) {
    /// Completions handled per turn before other tasks get to run.
    const MAILBOX_BUDGET_ITEMS: usize = 1_024;
    let shared = core.borrow().shared.clone();
    let id = core.borrow().id;
    loop {
        let handled = core.borrow_mut().drain_mailbox(MAILBOX_BUDGET_ITEMS);
        if handled == MAILBOX_BUDGET_ITEMS {
            conn::yield_now().await;
        } else {
            shared.mailboxes[id].wait().await;
        }
    }
}

/// Inline commits: once a turn has queued writes, runs them as a group commit on this core
/// (or leaves them to whoever holds the writer's token). Woken by the first write a turn
/// queues, it runs after the tasks already woken in that turn, so their writes share the
/// commit; the completions it pushes to this core wake the mailbox task locally, without
/// a system call, and a delivery between two users of this core crosses no thread at all.
async fn committer(core: crate::core::CoreRef) {
    let writer = core.borrow().shared.writer.clone();
    loop {
        std::future::poll_fn(|cx| {
            let mut c = core.borrow_mut();
            if c.committer.take() {
                std::task::Poll::Ready(())
            } else {
                c.committer.waker = Some(cx.waker().clone());
                std::task::Poll::Pending
            }
        })
        .await;
        writer.commit_inline();
    }
}

/// Runs the periodic duties (timeouts, pings, stalled catch-ups), and the injected stall
/// of [`FAULT_STALL_CORE_ENV`] when a test asks for one.
async fn sweeper(core: crate::core::CoreRef) {
    let idle_ms = u64::from(core.borrow().shared.config.idle_timeout_ms);
    let period = Duration::from_millis((idle_ms / 4).clamp(50, 1_000));
    let id = core.borrow().id;
    let stall_request = std::env::var_os(FAULT_STALL_CORE_ENV).map(PathBuf::from);
    loop {
        monoio::time::sleep(period).await;
        if let Some(request) = &stall_request {
            injected_stall(request, id);
        }
        core.borrow_mut().sweep();
    }
}

/// Fault injection for the fault tests (`tests/tests/faults.rs`): the path of a file that,
/// once it exists holding `CORE_ID DURATION_MS`, makes that core's thread sleep that long,
/// once (the core removes the file, then sleeps), the way a core stalls on a blocking call
/// made by mistake, a long page fault or a descheduled vCPU: its connections, timers and
/// mailbox all wait. Each core's sweeper looks for the file, so a stall starts within one
/// sweep period (at most 1 s). Write the file whole (a temporary file renamed over the
/// path): every core may read it at any time. Read once at start; unset in production,
/// where it costs one branch per sweep.
pub(crate) const FAULT_STALL_CORE_ENV: &str = "HOTLINE_FAULT_STALL_CORE";
/// Longest an injected stall lasts, so a test cannot wedge a core for good.
const FAULT_STALL_CORE_MS_MAX: u64 = 60_000;

/// Sleeps this core's thread if [`FAULT_STALL_CORE_ENV`]'s file names this core (see there).
fn injected_stall(request: &Path, core: usize) {
    let Ok(text) = std::fs::read_to_string(request) else {
        return;
    };
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    let (Some(Ok(target)), Some(Ok(ms)), None) = (fields.next(), fields.next(), fields.next()) else {
        tracing::warn!(
            "{FAULT_STALL_CORE_ENV}: {} holds {text:?}, not `CORE_ID DURATION_MS`: ignored and removed",
            request.display()
        );
        let _ = std::fs::remove_file(request);
        return;
    };
    // Only the named core takes the request, so one stall happens once.
    if target != core as u64 || std::fs::remove_file(request).is_err() {
        return;
    }
    let ms = ms.min(FAULT_STALL_CORE_MS_MAX);
    tracing::warn!("core {core}: stalls for {ms} ms (injected fault, {FAULT_STALL_CORE_ENV})");
    thread::sleep(Duration::from_millis(ms));
    tracing::warn!("core {core}: the injected stall is over");
}

/// Stores the device cursors that plain `Ack`s moved, as they come due (see
/// [`crate::limits::CURSOR_STORE_DELAY_MS`]).
async fn cursor_ticker(core: crate::core::CoreRef) {
    let period = Duration::from_millis(crate::limits::CURSOR_TICK_MS);
    loop {
        monoio::time::sleep(period).await;
        core.borrow_mut().write_due_cursors();
    }
}

async fn drain_and_close(core: &crate::core::CoreRef) {
    {
        let mut c = core.borrow_mut();
        c.draining = true;
        let ids: Vec<usize> = c.conns.iter().map(|(i, _)| i).collect();
        for idx in ids {
            c.wake(idx);
        }
    }
    let started = Instant::now();
    while core.borrow().outstanding > 0 && started.elapsed() < Duration::from_millis(SHUTDOWN_DRAIN_MS) {
        monoio::time::sleep(Duration::from_millis(5)).await;
    }
    {
        let mut c = core.borrow_mut();
        if c.outstanding > 0 {
            tracing::warn!("core {}: {} requests still in flight at shutdown", c.id, c.outstanding);
        }
        let ids: Vec<usize> = c.conns.iter().map(|(i, _)| i).collect();
        for idx in ids {
            c.close_with_error(idx, ErrorCode::ShuttingDown, "server shutting down");
        }
        c.flush_dirty();
    }
    let started = Instant::now();
    while !core.borrow().conns.is_empty() && started.elapsed() < Duration::from_millis(SHUTDOWN_CLOSE_MS) {
        monoio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cores_pin_to_the_cpus_the_process_may_use() {
        let all = allowed_cpus();
        assert!(!all.is_empty());
        let last = *all.last().expect("non-empty");
        // A thread restricted to one CPU (as `taskset -c N` restricts a process) sees only it.
        let seen = thread::spawn(move || {
            monoio::utils::bind_to_cpu_set([last]).expect("pin to an allowed cpu");
            allowed_cpus()
        })
        .join()
        .expect("the pinned thread");
        assert_eq!(seen, [last]);
    }

    #[test]
    fn a_stall_request_is_taken_only_by_its_core_and_a_malformed_one_is_dropped() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let request = dir.path().join("stall-core");
        std::fs::write(&request, "1 0").expect("write the request");
        injected_stall(&request, 0);
        assert!(request.exists(), "core 0 took core 1's request");
        injected_stall(&request, 1);
        assert!(!request.exists(), "core 1 left its request for another stall");
        std::fs::write(&request, "1 soon").expect("write the request");
        injected_stall(&request, 0);
        assert!(
            !request.exists(),
            "a malformed request stays and is read again every sweep"
        );
    }
}
