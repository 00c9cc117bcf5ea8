//! `hotline`: the server binary. Subcommands:
//! - `serve`: run the engine until SIGINT or SIGTERM.
//! - `user add`, `user provision`: create accounts in a stopped server's data directory.
//! - `backup`, `restore`, `export`: copy the database out (through the running server's
//!   admin socket, or directly when stopped), restore it into a new directory, write one
//!   user's history as JSON lines.
//! - `admin user-add | reset-password | revoke-tokens | disable | enable | user-remove |
//!   groups | stats`: ask a running server over its admin socket.
//! - `config print`: show the configuration `serve` would run with.
//!
//! `--data-dir` (`HOTLINE_DATA_DIR`) is declared once (`DataDir`) and shared by all of them.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use std::ffi::OsString;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use hotline_engine::abuse::AbuseLimits;
use hotline_engine::config::{
    Registration, ServeConfig, TransportConfig, METRICS_LISTEN_DEFAULT, TLS_LISTEN_DEFAULT, WS_LISTEN_DEFAULT,
};
use hotline_engine::limits::{
    CONNECTIONS_PER_CORE_MAX_DEFAULT, HELPER_THREADS_DEFAULT, LOGIN_TIMEOUT_MS_DEFAULT, OUTBOUND_BYTES_MAX_DEFAULT,
};
use hotline_engine::poller::PollerKind;
use hotline_engine::storage::Durability;
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
    /// A TOML file of settings (keys are the long flag names with `_`, see
    /// `hotline.sample.toml`). A flag beats its `HOTLINE_*` variable, which beats the file.
    #[arg(long, global = true, env = "HOTLINE_CONFIG")]
    config: Option<PathBuf>,
    /// Log level: error, warn, info, debug or trace, or a filter such as
    /// `info,hotline_engine::core=debug` (RUST_LOG overrides).
    #[arg(long, global = true, env = "HOTLINE_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Log lines as human-readable text or as one JSON object per line.
    #[arg(long, global = true, env = "HOTLINE_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// `--data-dir`, declared once and flattened into every subcommand that takes it.
#[derive(Args, Debug, Clone)]
struct DataDir {
    /// The data directory: the RocksDB message log (`serve` and `restore` create it if
    /// missing) and, while the server runs, its admin socket.
    #[arg(
        id = "data_dir",
        long = "data-dir",
        env = "HOTLINE_DATA_DIR",
        default_value = "./hotline-data"
    )]
    path: PathBuf,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server until SIGINT or SIGTERM.
    Serve(Box<ServeArgs>),
    /// Manage accounts in a data directory (the server must be stopped).
    #[command(subcommand)]
    User(UserCommand),
    /// Back up the database into a new directory: through the running server's admin
    /// socket (a consistent RocksDB checkpoint while it serves), or directly when stopped.
    Backup {
        /// The new directory to write the backup into.
        #[arg(long)]
        to: PathBuf,
        #[command(flatten)]
        data_dir: DataDir,
    },
    /// Restore a backup into a new (or empty) data directory; the server must be stopped.
    Restore {
        /// The backup directory (`hotline backup --to`).
        #[arg(long)]
        from: PathBuf,
        #[command(flatten)]
        data_dir: DataDir,
    },
    /// Write one user's history (every conversation, sent and received) as JSON lines.
    Export {
        /// The username.
        #[arg(long)]
        user: String,
        /// Where to write (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        data_dir: DataDir,
    },
    /// Ask a running server over its admin socket (DATA_DIR/admin.sock, mode 0600).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Show the configuration `hotline serve` would run with.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Create an account on the running server; the password is the first line of stdin.
    UserAdd {
        name: String,
        #[command(flatten)]
        data_dir: DataDir,
    },
    /// Replace a user's password (first line of stdin); existing tokens stay valid
    /// unless revoked too.
    ResetPassword {
        name: String,
        #[command(flatten)]
        data_dir: DataDir,
    },
    /// Revoke every token of a user: each device must log in with the password again.
    RevokeTokens {
        name: String,
        #[command(flatten)]
        data_dir: DataDir,
    },
    /// Disable an account: its password is refused and every token revoked (the
    /// password is kept for `enable`).
    Disable {
        name: String,
        #[command(flatten)]
        data_dir: DataDir,
    },
    /// Enable a disabled account: its old password works again.
    Enable {
        name: String,
        #[command(flatten)]
        data_dir: DataDir,
    },
    /// Remove an account: password deleted, every token revoked, nobody can log in as it
    /// again. The name stays reserved and its messages stay in other users' inboxes.
    UserRemove {
        name: String,
        #[command(flatten)]
        data_dir: DataDir,
    },
    /// List a user's groups: `GROUP_ID ROLE NAME` per line.
    Groups {
        name: String,
        #[command(flatten)]
        data_dir: DataDir,
    },
    /// Live counters: connections, logins, messages, queue depth, users.
    Stats {
        #[command(flatten)]
        data_dir: DataDir,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Print the effective configuration (file, then `HOTLINE_*`, then flags) as TOML,
    /// after checking it as `serve` would.
    Print(Box<ServeArgs>),
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum LogFormat {
    /// `2026-01-01T00:00:00Z  INFO target: message`
    Text,
    /// `{"ts_ms":1764077040123,"level":"INFO","target":"…","message":"…",…}`
    Json,
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Create an account; the password is read from the first line of stdin.
    Add {
        /// The username: 1 to 64 bytes of letters, digits, '_', '.' and '-'.
        name: String,
        #[command(flatten)]
        data_dir: DataDir,
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
        #[command(flatten)]
        data_dir: DataDir,
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

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum OnOff {
    On,
    Off,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum PollerArg {
    Auto,
    Uring,
    Epoll,
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
    #[arg(long, env = "HOTLINE_LISTEN", default_value = "127.0.0.1:7700")]
    listen: SocketAddr,
    #[command(flatten)]
    data_dir: DataDir,
    /// Cores to run on, one pinned io_uring runtime each (default: every CPU).
    #[arg(long, env = "HOTLINE_CORES")]
    cores: Option<usize>,
    /// When a message counts as durable and is acknowledged.
    #[arg(long, env = "HOTLINE_DURABILITY", value_enum, default_value = "sync")]
    durability: DurabilityArg,
    /// Under sync durability, push a message to online recipients before its fsync (each
    /// `Deliver` carries the durable watermark; the sender's `SendAck` still waits for the
    /// fsync). `off`: deliver only durable messages, for clients that ignore the watermark.
    #[arg(long, env = "HOTLINE_EARLY_DELIVERY", value_enum, default_value = "on")]
    early_delivery: OnOff,
    /// Each core runs the group commit of the writes its connections queued, at the end of
    /// its event-loop turn, instead of waking the log writer thread (which still does the
    /// fsync under sync, and the writes of other threads). Applies to async, and to sync
    /// with early delivery; `off`: every commit on the writer thread.
    #[arg(long, env = "HOTLINE_INLINE_COMMITS", value_enum, default_value = "on")]
    inline_commits: OnOff,
    /// What reports the readiness of each core's connections: `uring`, a ring per core with
    /// one multishot poll per connection; `epoll`, an edge-triggered epoll set per core;
    /// `auto`, io_uring where the kernel allows it, else epoll.
    #[arg(long, env = "HOTLINE_POLLER", value_enum, default_value = "auto")]
    poller: PollerArg,
    /// Whether clients may create accounts themselves.
    #[arg(long, env = "HOTLINE_REGISTRATION", value_enum, default_value = "open")]
    registration: RegistrationArg,
    /// Silence after which a connection is pinged (at half) and then closed.
    #[arg(long, env = "HOTLINE_IDLE_TIMEOUT_MS", default_value_t = IDLE_TIMEOUT_MS_DEFAULT)]
    idle_timeout_ms: u32,
    /// Time a new connection has to log in.
    #[arg(long, env = "HOTLINE_LOGIN_TIMEOUT_MS", default_value_t = LOGIN_TIMEOUT_MS_DEFAULT)]
    login_timeout_ms: u32,
    /// Largest frame a client may send, in bytes.
    #[arg(long, env = "HOTLINE_FRAME_BYTES_MAX", default_value_t = FRAME_BYTES_MAX_DEFAULT)]
    frame_bytes_max: u32,
    /// Largest message payload, in bytes.
    #[arg(long, env = "HOTLINE_PAYLOAD_BYTES_MAX", default_value_t = PAYLOAD_BYTES_MAX_DEFAULT)]
    payload_bytes_max: u32,
    /// Most messages in one SyncPage.
    #[arg(long, env = "HOTLINE_SYNC_PAGE_MESSAGES_MAX", default_value_t = SYNC_PAGE_MESSAGES_MAX_DEFAULT)]
    sync_page_messages_max: u32,
    /// Bytes queued for one connection before its device stops getting live pushes and
    /// catches up from the log once it reads again.
    #[arg(long, env = "HOTLINE_OUTBOUND_BYTES_MAX", default_value_t = OUTBOUND_BYTES_MAX_DEFAULT)]
    outbound_bytes_max: usize,
    /// Most connections one core holds (the open-file limit usually binds first).
    #[arg(long, env = "HOTLINE_CONNECTIONS_PER_CORE_MAX", default_value_t = CONNECTIONS_PER_CORE_MAX_DEFAULT)]
    connections_per_core_max: usize,
    /// Threads for password hashing and log reads.
    #[arg(long, env = "HOTLINE_HELPER_THREADS", default_value_t = HELPER_THREADS_DEFAULT)]
    helper_threads: usize,
    /// Queueing delay (ms) past which new sends are refused at once with Overloaded
    /// (retry_after_ms) instead of waiting: once requests have waited longer than this, in
    /// the log writer's queue or a core's event loop, for a sustained interval (4 times
    /// this, at least 100 ms). Keep it well above the disk's fsync latency. 0: never.
    #[arg(long, env = "HOTLINE_SHED_QUEUE_DELAY_MS", default_value_t = hotline_engine::limits::SHED_QUEUE_DELAY_MS_DEFAULT)]
    shed_queue_delay_ms: u32,
    /// Most members of one group (adding one more answers GroupFull).
    #[arg(long, env = "HOTLINE_GROUP_MEMBERS_MAX", default_value_t = hotline_engine::limits::GROUP_MEMBERS_MAX_DEFAULT)]
    group_members_max: usize,
    /// PEM certificate (chain) for TLS; with --tls-key it turns on the TLS listener
    /// (--tls-listen). `scripts/self-signed-cert` makes a pair for local use.
    #[arg(long, env = "HOTLINE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "HOTLINE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Address of the TLS listener (same protocol as --listen, inside TLS); used only
    /// with --tls-cert/--tls-key.
    #[arg(long, env = "HOTLINE_TLS_LISTEN", default_value = TLS_LISTEN_DEFAULT)]
    tls_listen: SocketAddr,
    /// Address of the WebSocket listener (one binary message carries one frame), or
    /// `off`. Port 0 picks a free port.
    #[arg(long, env = "HOTLINE_WS_LISTEN", default_value = WS_LISTEN_DEFAULT, value_parser = parse_listen_or_off)]
    ws_listen: ListenOrOff,
    /// The WebSocket listener speaks TLS (wss://) with --tls-cert/--tls-key.
    #[arg(long, env = "HOTLINE_WS_TLS")]
    ws_tls: bool,
    /// A browser origin (`https://chat.example.com`) allowed to open a WebSocket besides
    /// the web page's own; repeat for more, `*` for any. Clients that send no Origin
    /// (not browsers) are always allowed.
    #[arg(
        long = "ws-allowed-origin",
        env = "HOTLINE_WS_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    ws_allowed_origins: Vec<String>,
    /// Serve the web chat page at http://WS-LISTEN/ (same listener as the WebSocket).
    #[arg(long, env = "HOTLINE_WEB")]
    web: bool,
    /// Address of the Prometheus text endpoint (`GET /metrics`), or `off`. Port 0 picks a
    /// free port. Keep it on loopback or a private network, or set --metrics-token.
    #[arg(long, env = "HOTLINE_METRICS_LISTEN", default_value = METRICS_LISTEN_DEFAULT, value_parser = parse_listen_or_off)]
    metrics_listen: ListenOrOff,
    /// A bearer token (at least 16 characters) every scrape must send
    /// (`Authorization: Bearer TOKEN`; others get 401). Empty: the endpoint is open.
    #[arg(long, env = "HOTLINE_METRICS_TOKEN", default_value = "", hide_env_values = true)]
    metrics_token: String,
    /// Days (fractions allowed) after which a message loses its payload, leaving an
    /// `Expired` stub in each inbox; 0 keeps everything forever.
    #[arg(long, env = "HOTLINE_RETENTION_DAYS", default_value_t = 0.0)]
    retention_days: f64,
    /// A conversation's own retention, overriding --retention-days: `group:ID=DAYS` or
    /// `direct:USER_ID-USER_ID=DAYS` (0: keep forever). Repeat for more.
    #[arg(long = "retention-conversation", env = "HOTLINE_RETENTION_CONVERSATIONS", value_delimiter = ',', value_parser = hotline_engine::config::parse_retention_override)]
    retention_conversations: Vec<((u8, u64, u64), f64)>,
    /// Time between two retention sweeps (each rewrites what has expired since the last).
    #[arg(long, env = "HOTLINE_RETENTION_SWEEP_INTERVAL_MS", default_value_t = hotline_engine::limits::RETENTION_SWEEP_INTERVAL_MS_DEFAULT)]
    retention_sweep_interval_ms: u64,
    /// Address of the integration HTTP API for services and bots, or `off`.
    #[arg(long, env = "HOTLINE_API_LISTEN", default_value = "off", value_parser = parse_listen_or_off)]
    api_listen: ListenOrOff,
    /// An API token, `USERNAME:TOKEN` (token of 16+ characters): requests bearing TOKEN act
    /// as the existing user USERNAME. Repeat for more.
    #[arg(long = "api-token", env = "HOTLINE_API_TOKENS", value_delimiter = ',', value_parser = hotline_engine::integration::parse_api_token)]
    api_tokens: Vec<(String, String)>,
    /// Where webhooks are POSTed (`http://host:port/path`).
    #[arg(long, env = "HOTLINE_WEBHOOK_URL")]
    webhook_url: Option<String>,
    /// The HMAC-SHA256 key of the `X-Hotline-Signature` header (16+ characters).
    #[arg(long, env = "HOTLINE_WEBHOOK_SECRET", default_value = "")]
    webhook_secret: String,
    /// A bot username: each message it receives is POSTed to --webhook-url. Repeat for more.
    #[arg(long = "webhook-user", env = "HOTLINE_WEBHOOK_USERS", value_delimiter = ',')]
    webhook_users: Vec<String>,
    /// Retries of a failed webhook POST (backoff from 100 ms, doubling) before it is dropped.
    #[arg(long, env = "HOTLINE_WEBHOOK_RETRIES_MAX", default_value_t = 5)]
    webhook_retries_max: u32,
    /// Also POST an `online` event when a user's first device comes online.
    #[arg(long, env = "HOTLINE_WEBHOOK_ONLINE")]
    webhook_online: bool,
    #[command(flatten)]
    abuse: AbuseArgs,
}

/// Abuse limits (0 turns one off). Each hit answers `Error{RateLimited}` with
/// `retry_after_ms` and counts in a metric.
#[derive(Debug, Args)]
struct AbuseArgs {
    /// Login attempts one IP may make per minute (token bucket).
    #[arg(long, env = "HOTLINE_LOGIN_ATTEMPTS_PER_IP_PER_MINUTE", default_value_t = AbuseLimits::default().login_attempts_per_ip_per_minute)]
    login_attempts_per_ip_per_minute: u32,
    /// Login attempts per username per minute, from any address (token bucket).
    #[arg(long, env = "HOTLINE_LOGIN_ATTEMPTS_PER_USERNAME_PER_MINUTE", default_value_t = AbuseLimits::default().login_attempts_per_username_per_minute)]
    login_attempts_per_username_per_minute: u32,
    /// Longest backoff after repeated failed logins of one username or IP (after 3
    /// failures in a row, 250 ms, doubling per further failure).
    #[arg(long, env = "HOTLINE_LOGIN_BACKOFF_MS_MAX", default_value_t = AbuseLimits::default().login_backoff_ms_max)]
    login_backoff_ms_max: u32,
    /// Messages one user may send per second, all devices together (token bucket).
    #[arg(long, env = "HOTLINE_MESSAGES_PER_USER_PER_SECOND", default_value_t = AbuseLimits::default().messages_per_user_per_second)]
    messages_per_user_per_second: u32,
    /// Messages per second into one conversation (direct pair or group), all senders.
    #[arg(long, env = "HOTLINE_MESSAGES_PER_CONVERSATION_PER_SECOND", default_value_t = AbuseLimits::default().messages_per_conversation_per_second)]
    messages_per_conversation_per_second: u32,
    /// Connections open at once from one IP.
    #[arg(long, env = "HOTLINE_CONNECTIONS_PER_IP_MAX", default_value_t = AbuseLimits::default().connections_per_ip_max)]
    connections_per_ip_max: u32,
    /// Registrations one IP may attempt per hour (token bucket).
    #[arg(long, env = "HOTLINE_REGISTRATIONS_PER_IP_PER_HOUR", default_value_t = AbuseLimits::default().registrations_per_ip_per_hour)]
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
    let argv: Vec<OsString> = std::env::args_os().collect();
    if let Err(e) = apply_config_file(&argv) {
        eprintln!("hotline: invalid configuration: {e:#}");
        std::process::exit(2);
    }
    let matches = Cli::command().get_matches_from(&argv);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    init_logging(&cli.log_level, cli.log_format);
    if let Command::Config(ConfigCommand::Print(a)) = cli.command {
        let serve = matches
            .subcommand_matches("config")
            .and_then(|m| m.subcommand_matches("print"))
            .expect("clap routed `config print` here");
        let config = serve_config(*a);
        if let Err(e) = config.validate() {
            eprintln!("hotline: invalid configuration: {e}");
            std::process::exit(2);
        }
        print!("{}", render_config(&matches, serve));
        return;
    }
    if let Err(e) = run(cli.command) {
        eprintln!("hotline: {e:#}");
        std::process::exit(exit_code(&e));
    }
}

/// Exit status 2 for every invalid configuration, wherever it was found (clap, the file,
/// `ServeConfig::validate` inside `serve`), 1 for every other failure. Chosen by the
/// error's type, so a check that moves between `main` and `serve` keeps its status.
fn exit_code(e: &anyhow::Error) -> i32 {
    if e.downcast_ref::<hotline_engine::config::ConfigError>().is_some() {
        2
    } else {
        1
    }
}

/// Finds `--config FILE` (or `HOTLINE_CONFIG`) before clap runs and turns each key of the
/// file into its `HOTLINE_*` variable unless that variable is already set: clap then
/// applies flag > variable > file > default in one place. Unknown keys and values of the
/// wrong TOML type are rejected here, naming the key; clap rejects unparsable values
/// naming the flag, the value and why.
fn apply_config_file(argv: &[OsString]) -> anyhow::Result<()> {
    let mut path: Option<PathBuf> = std::env::var_os("HOTLINE_CONFIG").map(PathBuf::from);
    let mut it = argv.iter().skip(1);
    while let Some(arg) = it.next() {
        let arg = arg.to_string_lossy();
        if arg == "--config" {
            path = it.next().map(PathBuf::from);
        } else if let Some(p) = arg.strip_prefix("--config=") {
            path = Some(PathBuf::from(p));
        }
    }
    let Some(path) = path else { return Ok(()) };
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read --config {}", path.display()))?;
    let command = Cli::command();
    let mut keys: Vec<(String, String)> = Vec::new();
    let serve = command.find_subcommand("serve").expect("serve exists");
    for arg in command.get_arguments().chain(serve.get_arguments()) {
        if let Some(env) = arg.get_env() {
            if arg.get_id() != "config" {
                keys.push((arg.get_id().to_string(), env.to_string_lossy().into_owned()));
            }
        }
    }
    let settings =
        hotline_engine::config::parse_config_file(&text, &keys.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
            .with_context(|| format!("in {}", path.display()))?;
    for (key, value) in settings {
        let env = &keys
            .iter()
            .find(|(k, _)| *k == key)
            .expect("parse_config_file checks keys")
            .1;
        if std::env::var_os(env).is_none() {
            // Single-threaded here: nothing else reads the environment yet.
            std::env::set_var(env, value);
        }
    }
    Ok(())
}

/// The effective settings of `serve` as a TOML file `--config` accepts.
fn render_config(global: &clap::ArgMatches, serve: &clap::ArgMatches) -> String {
    let mut out = String::from("# hotline effective configuration (file < HOTLINE_* < flags)\n");
    let command = Cli::command();
    let serve_cmd = command.find_subcommand("serve").expect("serve exists");
    let render = |m: &clap::ArgMatches, id: &str, out: &mut String| {
        let values: Vec<String> = m
            .get_raw(id)
            .map(|r| r.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let quote = |v: &String| {
            if v == "true" || v == "false" || (!v.is_empty() && v.parse::<f64>().is_ok_and(f64::is_finite)) {
                v.clone()
            } else {
                format!("{v:?}")
            }
        };
        let is_list = matches!(
            id,
            "ws_allowed_origins" | "retention_conversations" | "api_tokens" | "webhook_users"
        );
        // Secrets are never printed; the line says they are set.
        let secret = matches!(id, "api_tokens" | "webhook_secret" | "metrics_token");
        match values.as_slice() {
            many if secret && many.iter().any(|v| !v.is_empty()) => {
                out.push_str(&format!("# {id} is set (not shown)\n"))
            }
            [] if is_list => out.push_str(&format!("{id} = []\n")),
            [] => out.push_str(&format!("# {id} is not set\n")),
            [one] if !is_list => out.push_str(&format!("{id} = {}\n", quote(one))),
            many => out.push_str(&format!(
                "{id} = [{}]\n",
                many.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(", ")
            )),
        }
    };
    for id in ["log_level", "log_format"] {
        render(global, id, &mut out);
    }
    for arg in serve_cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if arg.get_env().is_some() && id != "config" && id != "log_level" && id != "log_format" {
            render(serve, id, &mut out);
        }
    }
    out
}

fn init_logging(level: &str, format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let secret_free = tracing_subscriber::filter::filter_fn(hotline_engine::logging::secret_free);
    match format {
        LogFormat::Text => builder.finish().with(secret_free).init(),
        LogFormat::Json => builder
            .event_format(hotline_engine::logging::JsonLines)
            .finish()
            .with(secret_free)
            .init(),
    }
}

fn serve_config(a: ServeArgs) -> ServeConfig {
    let cores = a
        .cores
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    ServeConfig {
        listen: a.listen,
        data_dir: a.data_dir.path,
        cores,
        durability: match a.durability {
            DurabilityArg::Sync => Durability::Sync,
            DurabilityArg::Async => Durability::Async,
        },
        early_delivery: a.early_delivery == OnOff::On,
        inline_commits: a.inline_commits == OnOff::On,
        poller: match a.poller {
            PollerArg::Auto => PollerKind::Auto,
            PollerArg::Uring => PollerKind::Uring,
            PollerArg::Epoll => PollerKind::Epoll,
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
        shed_queue_delay_ms: a.shed_queue_delay_ms,
        group_members_max: a.group_members_max,
        abuse: AbuseLimits {
            login_attempts_per_ip_per_minute: a.abuse.login_attempts_per_ip_per_minute,
            login_attempts_per_username_per_minute: a.abuse.login_attempts_per_username_per_minute,
            login_backoff_ms_max: a.abuse.login_backoff_ms_max,
            messages_per_user_per_second: a.abuse.messages_per_user_per_second,
            messages_per_conversation_per_second: a.abuse.messages_per_conversation_per_second,
            connections_per_ip_max: a.abuse.connections_per_ip_max,
            registrations_per_ip_per_hour: a.abuse.registrations_per_ip_per_hour,
        },
        metrics_listen: a.metrics_listen.0,
        metrics_token: (!a.metrics_token.is_empty()).then_some(a.metrics_token),
        integration: hotline_engine::integration::IntegrationConfig {
            api_listen: a.api_listen.0,
            api_tokens: a.api_tokens,
            webhook_url: a.webhook_url,
            webhook_secret: a.webhook_secret,
            webhook_users: a.webhook_users,
            webhook_retries_max: a.webhook_retries_max,
            webhook_online: a.webhook_online,
        },
        retention: hotline_engine::config::RetentionConfig {
            days: a.retention_days,
            conversations: a.retention_conversations,
            sweep_interval_ms: a.retention_sweep_interval_ms,
        },
        transport: TransportConfig {
            tls_listen: a.tls_cert.as_ref().map(|_| a.tls_listen),
            tls_cert: a.tls_cert,
            tls_key: a.tls_key,
            ws_listen: a.ws_listen.0,
            ws_tls: a.ws_tls,
            ws_origins_allowed: a.ws_allowed_origins,
            web: a.web,
        },
    }
}

/// The password on the first line of stdin.
fn read_password() -> anyhow::Result<String> {
    let mut password = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut password)
        .context("cannot read the password from stdin")?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        bail!("empty password: write it as the first line of stdin");
    }
    Ok(password.to_owned())
}

/// Refuses to open (and so create) a database where there is none.
fn existing_database(data_dir: &std::path::Path) -> anyhow::Result<hotline_engine::storage::Storage> {
    if !data_dir.join("CURRENT").is_file() {
        bail!("no database in {} (set --data-dir)", data_dir.display());
    }
    Ok(hotline_engine::storage::Storage::open(data_dir)?)
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Config(_) => unreachable!("handled in main"),
        Command::Serve(a) => {
            let config = serve_config(*a);
            hotline_engine::server::serve(config, |bound| {
                // The plain line comes last: whoever waits for it knows every listener is up.
                let mut out = std::io::stdout().lock();
                if let Some(addr) = bound.api {
                    let _ = writeln!(out, "hotline api listening on {addr}");
                }
                if let Some(addr) = bound.metrics {
                    let _ = writeln!(out, "hotline metrics listening on {addr}");
                }
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
        Command::Backup { to, data_dir } => backup(&to, &data_dir.path),
        Command::Restore { from, data_dir } => restore(&from, &data_dir.path),
        Command::Export { user, out, data_dir } => export(&user, out.as_deref(), &data_dir.path),
        Command::Admin(command) => admin(command),
        Command::User(UserCommand::Add { name, data_dir }) => add_user(&name, &data_dir.path),
        Command::User(UserCommand::Provision {
            prefix,
            count,
            out,
            data_dir,
        }) => provision(&prefix, count, &out, &data_dir.path),
    }
}

/// `hotline backup`: through the running server's admin socket, or directly when stopped.
fn backup(to: &std::path::Path, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let to = std::path::absolute(to).with_context(|| format!("bad --to {}", to.display()))?;
    let request = format!("backup {}", to.display());
    let mut out = std::io::stdout().lock();
    if hotline_engine::control::request(data_dir, &request, &mut out)?.is_none() {
        let storage = existing_database(data_dir)?;
        hotline_engine::admin::backup(&storage, &to)?;
        writeln!(out, "backup written to {} (server stopped)", to.display())?;
    }
    Ok(())
}

/// `hotline restore`: a backup into a new (or empty) data directory.
fn restore(from: &std::path::Path, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let r = hotline_engine::admin::restore(from, data_dir)?;
    println!(
        "restored {} files from {} into {} ({} users)",
        r.files,
        from.display(),
        data_dir.display(),
        r.users
    );
    Ok(())
}

/// `hotline export`: one user's history as JSON lines, to `out` or stdout.
fn export(user: &str, out: Option<&std::path::Path>, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let mut sink: Box<dyn Write> = match out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    if hotline_engine::control::request(data_dir, &format!("export {user}"), &mut sink)?.is_none() {
        let storage = existing_database(data_dir)?;
        hotline_engine::admin::export_user(&storage, user, &mut sink)?;
    }
    Ok(())
}

/// `hotline admin ...`: one request to the running server's admin socket.
fn admin(command: AdminCommand) -> anyhow::Result<()> {
    let (request, data_dir) = match command {
        AdminCommand::Stats { data_dir } => ("stats".to_owned(), data_dir.path),
        AdminCommand::UserAdd { name, data_dir } => (format!("user-add {name} {}", read_password()?), data_dir.path),
        AdminCommand::ResetPassword { name, data_dir } => {
            (format!("user-password {name} {}", read_password()?), data_dir.path)
        }
        AdminCommand::RevokeTokens { name, data_dir } => (format!("user-revoke {name}"), data_dir.path),
        AdminCommand::Groups { name, data_dir } => (format!("user-groups {name}"), data_dir.path),
        AdminCommand::Disable { name, data_dir } => (format!("user-disable {name}"), data_dir.path),
        AdminCommand::Enable { name, data_dir } => (format!("user-enable {name}"), data_dir.path),
        AdminCommand::UserRemove { name, data_dir } => (format!("user-remove {name}"), data_dir.path),
    };
    let mut out = std::io::stdout().lock();
    if hotline_engine::control::request(&data_dir, &request, &mut out)?.is_none() {
        bail!(
            "no server is running on {} (no {})",
            data_dir.display(),
            hotline_engine::control::socket_path(&data_dir).display()
        );
    }
    Ok(())
}

/// `hotline user add`: an account in a stopped server's data directory.
fn add_user(name: &str, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let password = read_password()?;
    let user_id = hotline_engine::admin::add_user(data_dir, name, &password)?;
    println!("{user_id}");
    Ok(())
}

/// `hotline user provision`: token-only accounts for load generation.
fn provision(prefix: &str, count: usize, out: &std::path::Path, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let p = hotline_engine::admin::provision(data_dir, prefix, count, out)?;
    println!(
        "{} accounts in {}: {} created, {} reused",
        count,
        out.display(),
        p.created,
        p.reused
    );
    Ok(())
}
