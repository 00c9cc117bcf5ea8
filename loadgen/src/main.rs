//! `hotline-loadgen`: what a box can hold. Opens many client connections to a Hotline
//! server (through `hotline-wire`'s [`hotline_wire::ClientSession`], never engine internals),
//! sends on an open-loop schedule, and reports delivery latency (scheduled send → delivery),
//! throughput, server memory per connection and whether every acknowledged message arrived
//! exactly once and in order.
//!
//! # Layout
//! - `main.rs`: the command line (`run`, `capacity`, `render`, the hidden `worker`).
//! - [`coordinator`]: the `run` process: spawns workers, starts steps at one instant, merges
//!   their reports, samples the server from `/proc`.
//! - [`worker`]: a worker process: one `mio` event loop, one session per connection.
//! - [`plan`]: patterns (pairs, fan-out) and how accounts are split over workers.
//! - [`payload`]: the header every message carries, and client message ids.
//! - [`peers`]: drivers for NATS, MQTT and XMPP servers (`--target-kind`), so established
//!   servers run the same scenario through the same books.
//! - [`accounting`]: the per-stream books (lost, duplicated, out of order).
//! - [`hist`]: HDR latency histograms and their serialization between processes.
//! - [`proto`]: the JSON lines coordinator and workers exchange.
//! - [`report`]: the JSON report and the human summary; [`capacity`]: the rate sweep;
//!   [`render`]: results/README.md tables and SVG plots.
//! - [`accounts`], [`clock`], [`sys`]: the accounts file, time and timers, `/proc` and git.

mod accounting;
mod accounts;
mod capacity;
mod clock;
mod coordinator;
mod hist;
mod payload;
mod peers;
mod plan;
mod proto;
mod render;
mod report;
mod sys;
mod worker;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::coordinator::{run_nonce, Fleet, LoadArgs};
use crate::report::Report;

#[derive(Parser, Debug)]
#[command(
    name = "hotline-loadgen",
    version,
    about = "Hotline's load generator: open-loop delivery latency, throughput and capacity",
    long_about = "Hotline's load generator: open-loop delivery latency, throughput and capacity.\n\n\
        Accounts come from `hotline user provision --prefix lg --count N --out FILE` (server stopped); \
        line i of FILE is connection i, logged in by token (one account = one device = one connection).\n\n\
        --rate counts deliveries per second over the whole run (Send requests, except for group:K). pairs: account 2i sends to 2i+1 and \
        back, the rate spread evenly over all senders, each on a fixed schedule with its own phase. \
        fanout:K: groups of K+1 accounts, the first sends each message to the K others as K Sends at \
        one scheduled time, so messages/s = rate/K and deliveries/s = rate. group:K: the same units, \
        but the first creates a server-side group of the K others before the run and sends each \
        message once to it (the server's group fan-out); again deliveries/s = rate.\n\n\
        --target-kind nats|nats-js|mqtt|xmpp runs the same scenario against core NATS, NATS JetStream \
        (file storage, acknowledged publishes), an MQTT broker at QoS 1 \
        or an XMPP server (connection i is user i; no --accounts): see scripts/compare-peers.\n\n\
        Exit status: 0, or 1 if any acknowledged message was lost or any was delivered twice; 2 on \
        a setup or runtime failure."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Connect, send at --rate for --warmup + --duration seconds, drain, report.
    Run(LoadArgs),
    /// Raise the rate step by step until p99 breaks --slo-ms (or anything is lost or errors),
    /// and report the highest rate that held (--duration is each step's length).
    Capacity(capacity::CapacityArgs),
    /// Render the JSON reports in a results directory into its README.md table and SVG plots.
    Render {
        /// The results directory.
        #[arg(long, default_value = "results")]
        results: PathBuf,
    },
    /// (internal) One worker process; started by `run` and `capacity`.
    #[command(hide = true)]
    Worker,
}

fn main() {
    let cli = Cli::parse();
    let code = match execute(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hotline-loadgen: {e:#}");
            2
        }
    };
    std::process::exit(code);
}

fn execute(command: Cmd) -> anyhow::Result<i32> {
    match command {
        Cmd::Worker => {
            worker::main()?;
            Ok(0)
        }
        Cmd::Run(args) => run(&args),
        Cmd::Capacity(args) => {
            let report = capacity::capacity(&args)?;
            println!("{}", report.best.summary());
            match report.capacity.best_rate {
                Some(rate) => println!(
                    "capacity: {rate:.0} Sends/s held p99 <= {} ms{}",
                    args.slo_ms,
                    report
                        .capacity
                        .broke_because
                        .as_ref()
                        .map_or_else(String::new, |why| format!("; the next step broke: {why}"))
                ),
                None => println!(
                    "capacity: no rate held p99 <= {} ms: {}",
                    args.slo_ms,
                    report.capacity.broke_because.as_deref().unwrap_or("?")
                ),
            }
            write_json(args.load.json.as_ref(), &report)?;
            Ok(if report.best.incorrect() { 1 } else { 0 })
        }
        Cmd::Render { results } => {
            render::render(&results)?;
            println!("rendered {}", results.join("README.md").display());
            Ok(0)
        }
    }
}

fn run(args: &LoadArgs) -> anyhow::Result<i32> {
    let workers = args.validate()?;
    let (mut fleet, connected) = Fleet::start(args, workers, run_nonce())?;
    let step = fleet.step(args, args.rate);
    let quit = fleet.quit();
    let step = step?;
    quit?;
    let report = Report::new(args, workers, &connected, &step)?;
    println!("{}", report.summary());
    write_json(args.json.as_ref(), &report)?;
    Ok(if report.incorrect() { 1 } else { 0 })
}

fn write_json<T: serde::Serialize>(path: Option<&PathBuf>, value: &T) -> anyhow::Result<()> {
    let Some(path) = path else { return Ok(()) };
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
