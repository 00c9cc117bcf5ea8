//! `hotline`: the server binary. `hotline serve` runs the engine; `hotline user add` creates
//! an account in a stopped server's data directory.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use hotline_engine::abuse::AbuseLimits;
use hotline_engine::config::{
    Durability, Registration, ServeConfig, TransportConfig, CONNECTIONS_PER_CORE_MAX_DEFAULT, HELPER_THREADS_DEFAULT,
    LOGIN_TIMEOUT_MS_DEFAULT, OUTBOUND_BYTES_MAX_DEFAULT, TLS_LISTEN_DEFAULT, WS_LISTEN_DEFAULT,
};
use hotline_wire::{
    FRAME_BYTES_MAX_DEFAULT, IDLE_TIMEOUT_MS_DEFAULT, PAYLOAD_BYTES_MAX_DEFAULT, SYNC_PAGE_MESSAGES_MAX_DEFAULT,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "hotline",
    version,
    about = "Hotline: a thread-per-core chat engine on io_uring and RocksDB"
)]
struct Cli {
    /// Log level: error, warn, info, debug or trace (RUST_LOG overrides).
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server until SIGINT or SIGTERM.
    Serve(Box<ServeArgs>),
    /// Manage accounts in a data directory (the server must be stopped).
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Create an account; the password is read from the first line of stdin.
    Add {
        /// The username: 1 to 64 bytes of letters, digits, '_', '.' and '-'.
        name: String,
        /// The server's data directory.
        #[arg(long, default_value = "./hotline-data")]
        data_dir: PathBuf,
    },
    /// Bulk-create token-only accounts PREFIX0..PREFIX{COUNT-1} (no password, no argon2)
    /// and write `USER_ID USERNAME TOKEN_HEX` lines to --out; accounts already in --out
    /// with a live token are reused, so repeated runs are cheap. For load generation.
    Provision {
        /// Username prefix.
        #[arg(long, default_value = "lg")]
        prefix: String,
        /// Number of accounts.
        #[arg(long)]
        count: usize,
        /// The accounts file to read and (re)write.
        #[arg(long)]
        out: PathBuf,
        /// The server's data directory.
        #[arg(long, default_value = "./hotline-data")]
        data_dir: PathBuf,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum DurabilityArg {
    /// Acknowledge a message after its group commit is fsynced: nothing acknowledged is
    /// ever lost, even on power loss.
    Sync,
    /// Acknowledge after the write-ahead log write; fsync every 10 ms in the background
    /// (a crash of the machine, not the process, may lose the last few ms).
    Async,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum RegistrationArg {
    /// Anyone may create an account with a Register frame.
    Open,
    /// Accounts are created only with `hotline user add`.
    Closed,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Address to accept TCP connections on (port 0 picks a free port; the chosen address
    /// is printed as `hotline listening on ADDR`).
    #[arg(long, default_value = "127.0.0.1:7700")]
    listen: SocketAddr,
    /// Directory of the RocksDB message log (created if missing).
    #[arg(long, default_value = "./hotline-data")]
    data_dir: PathBuf,
    /// Cores to run on, one pinned io_uring runtime each (default: every CPU).
    #[arg(long)]
    cores: Option<usize>,
    /// When a message counts as durable and is acknowledged.
    #[arg(long, value_enum, default_value = "sync")]
    durability: DurabilityArg,
    /// Whether clients may create accounts themselves.
    #[arg(long, value_enum, default_value = "open")]
    registration: RegistrationArg,
    /// Silence after which a connection is pinged (at half) and then closed.
    #[arg(long, default_value_t = IDLE_TIMEOUT_MS_DEFAULT)]
    idle_timeout_ms: u32,
    /// Time a new connection has to log in.
    #[arg(long, default_value_t = LOGIN_TIMEOUT_MS_DEFAULT)]
    login_timeout_ms: u32,
    /// Largest frame a client may send, in bytes.
    #[arg(long, default_value_t = FRAME_BYTES_MAX_DEFAULT)]
    frame_bytes_max: u32,
    /// Largest message payload, in bytes.
    #[arg(long, default_value_t = PAYLOAD_BYTES_MAX_DEFAULT)]
    payload_bytes_max: u32,
    /// Most messages in one SyncPage.
    #[arg(long, default_value_t = SYNC_PAGE_MESSAGES_MAX_DEFAULT)]
    sync_page_messages_max: u32,
    /// Bytes queued for one connection before its device stops getting live pushes and
    /// catches up from the log once it reads again.
    #[arg(long, default_value_t = OUTBOUND_BYTES_MAX_DEFAULT)]
    outbound_bytes_max: usize,
    /// Most connections one core holds (the open-file limit usually binds first).
    #[arg(long, default_value_t = CONNECTIONS_PER_CORE_MAX_DEFAULT)]
    connections_per_core_max: usize,
    /// Threads for password hashing and log reads.
    #[arg(long, default_value_t = HELPER_THREADS_DEFAULT)]
    helper_threads: usize,
    /// Most members of one group (adding one more answers GroupFull).
    #[arg(long, default_value_t = hotline_engine::config::GROUP_MEMBERS_MAX_DEFAULT)]
    group_members_max: usize,
    /// PEM certificate (chain) for TLS; with --tls-key it turns on the TLS listener
    /// (--tls-listen). `scripts/self-signed-cert` makes a pair for local use.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Address of the TLS listener (same protocol as --listen, inside TLS); used only
    /// with --tls-cert/--tls-key.
    #[arg(long, default_value = TLS_LISTEN_DEFAULT)]
    tls_listen: SocketAddr,
    /// Address of the WebSocket listener (one binary message carries one frame), or
    /// `off`. Port 0 picks a free port.
    #[arg(long, default_value = WS_LISTEN_DEFAULT, value_parser = parse_listen_or_off)]
    ws_listen: ListenOrOff,
    /// The WebSocket listener speaks TLS (wss://) with --tls-cert/--tls-key.
    #[arg(long)]
    ws_tls: bool,
    /// A browser origin (`https://chat.example.com`) allowed to open a WebSocket besides
    /// the web page's own; repeat for more, `*` for any. Clients that send no Origin
    /// (not browsers) are always allowed.
    #[arg(long = "ws-allowed-origin")]
    ws_allowed_origins: Vec<String>,
    /// Serve the web chat page at http://WS-LISTEN/ (same listener as the WebSocket).
    #[arg(long)]
    web: bool,
    #[command(flatten)]
    abuse: AbuseArgs,
}

/// Abuse limits (0 turns one off). Each hit answers `Error{RateLimited}` with
/// `retry_after_ms` and counts in a metric.
#[derive(Debug, Args)]
struct AbuseArgs {
    /// Login attempts one IP may make per minute (token bucket).
    #[arg(long, default_value_t = AbuseLimits::default().login_attempts_per_ip_per_minute)]
    login_attempts_per_ip_per_minute: u32,
    /// Login attempts per username per minute, from any address (token bucket).
    #[arg(long, default_value_t = AbuseLimits::default().login_attempts_per_username_per_minute)]
    login_attempts_per_username_per_minute: u32,
    /// Longest backoff after repeated failed logins of one username or IP (after 3
    /// failures in a row, 250 ms, doubling per further failure).
    #[arg(long, default_value_t = AbuseLimits::default().login_backoff_ms_max)]
    login_backoff_ms_max: u32,
    /// Messages one user may send per second, all devices together (token bucket).
    #[arg(long, default_value_t = AbuseLimits::default().messages_per_user_per_second)]
    messages_per_user_per_second: u32,
    /// Messages per second into one conversation (direct pair or group), all senders.
    #[arg(long, default_value_t = AbuseLimits::default().messages_per_conversation_per_second)]
    messages_per_conversation_per_second: u32,
    /// Connections open at once from one IP.
    #[arg(long, default_value_t = AbuseLimits::default().connections_per_ip_max)]
    connections_per_ip_max: u32,
    /// Registrations one IP may attempt per hour (token bucket).
    #[arg(long, default_value_t = AbuseLimits::default().registrations_per_ip_per_hour)]
    registrations_per_ip_per_hour: u32,
}

/// A listening address, or `off`.
#[derive(Debug, Clone, Copy)]
struct ListenOrOff(Option<SocketAddr>);

fn parse_listen_or_off(s: &str) -> Result<ListenOrOff, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(ListenOrOff(None));
    }
    s.parse()
        .map(|a| ListenOrOff(Some(a)))
        .map_err(|e| format!("{s:?} is neither an address (127.0.0.1:7701) nor `off`: {e}"))
}

fn main() {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(cli.command) {
        eprintln!("hotline: {e:#}");
        std::process::exit(1);
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(a) => {
            let cores = a
                .cores
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let config = ServeConfig {
                listen: a.listen,
                data_dir: a.data_dir,
                cores,
                durability: match a.durability {
                    DurabilityArg::Sync => Durability::Sync,
                    DurabilityArg::Async => Durability::Async,
                },
                registration: match a.registration {
                    RegistrationArg::Open => Registration::Open,
                    RegistrationArg::Closed => Registration::Closed,
                },
                idle_timeout_ms: a.idle_timeout_ms,
                login_timeout_ms: a.login_timeout_ms,
                frame_bytes_max: a.frame_bytes_max,
                payload_bytes_max: a.payload_bytes_max,
                sync_page_messages_max: a.sync_page_messages_max,
                outbound_bytes_max: a.outbound_bytes_max,
                connections_per_core_max: a.connections_per_core_max,
                helper_threads: a.helper_threads,
                group_members_max: a.group_members_max,
                transport: TransportConfig {
                    tls_listen: a.tls_cert.as_ref().map(|_| a.tls_listen),
                    tls_cert: a.tls_cert,
                    tls_key: a.tls_key,
                    ws_listen: a.ws_listen.0,
                    ws_tls: a.ws_tls,
                    ws_origins_allowed: a.ws_allowed_origins,
                    web: a.web,
                },
                abuse: AbuseLimits {
                    login_attempts_per_ip_per_minute: a.abuse.login_attempts_per_ip_per_minute,
                    login_attempts_per_username_per_minute: a.abuse.login_attempts_per_username_per_minute,
                    login_backoff_ms_max: a.abuse.login_backoff_ms_max,
                    messages_per_user_per_second: a.abuse.messages_per_user_per_second,
                    messages_per_conversation_per_second: a.abuse.messages_per_conversation_per_second,
                    connections_per_ip_max: a.abuse.connections_per_ip_max,
                    registrations_per_ip_per_hour: a.abuse.registrations_per_ip_per_hour,
                },
            };
            hotline_engine::server::serve(config, |bound| {
                // The plain line comes last: whoever waits for it knows every listener is up.
                let mut out = std::io::stdout().lock();
                if let Some(addr) = bound.tls {
                    let _ = writeln!(out, "hotline tls listening on {addr}");
                }
                if let Some(addr) = bound.ws {
                    let scheme = if bound.ws_tls { "wss" } else { "ws" };
                    let _ = writeln!(out, "hotline {scheme} listening on {addr}");
                    if bound.web {
                        let page = if bound.ws_tls { "https" } else { "http" };
                        let _ = writeln!(out, "hotline web page at {page}://{addr}/");
                    }
                }
                let _ = writeln!(out, "hotline listening on {}", bound.tcp);
                let _ = out.flush();
            })
        }
        Command::User(UserCommand::Add { name, data_dir }) => {
            let mut password = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut password)
                .context("cannot read the password from stdin")?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                bail!("empty password: write it as the first line of stdin");
            }
            let user_id = hotline_engine::admin::add_user(&data_dir, &name, password)?;
            println!("{user_id}");
            Ok(())
        }
        Command::User(UserCommand::Provision {
            prefix,
            count,
            out,
            data_dir,
        }) => {
            let p = hotline_engine::admin::provision(&data_dir, &prefix, count, &out)?;
            println!(
                "{} accounts in {}: {} created, {} reused",
                count,
                out.display(),
                p.created,
                p.reused
            );
            Ok(())
        }
    }
}
