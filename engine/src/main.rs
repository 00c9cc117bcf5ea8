//! `hotline`: the server binary. `hotline serve` runs the engine; `hotline user add` creates
//! an account in a stopped server's data directory.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use hotline_engine::config::{
    Durability, Registration, ServeConfig, CONNECTIONS_PER_CORE_MAX_DEFAULT, HELPER_THREADS_DEFAULT,
    LOGIN_TIMEOUT_MS_DEFAULT, OUTBOUND_BYTES_MAX_DEFAULT,
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
    Serve(ServeArgs),
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
            };
            hotline_engine::server::serve(config, |addr| {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "hotline listening on {addr}");
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
