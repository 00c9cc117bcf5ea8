//! `hotline-loadgen capacity`: the highest rate a server holds within a latency SLO.
//!
//! One fleet of connections stays logged in while short steps run at rising rates
//! (`--rate-start`, times `--rate-factor` each step, up to `--rate-max`). A step *holds*
//! when its p99 delivery latency is within `--slo-ms`, nothing was lost or duplicated, there
//! were no errors, the books settled, and deliveries kept up with the offered rate (within
//! [`KEEP_UP_RATIO`]). After the first step that breaks, `--refine` bisection steps between
//! the last that held and the first that broke narrow the answer down.
//!
//! `--overload-steps N` then runs N more steps above the highest rate tried (each
//! `--rate-factor` times the last), to show what the server does past saturation: with
//! admission control it refuses part of the load (`Overloaded`, counted as *shed*, never as
//! lost) and the p99 of what it accepted stays bounded instead of climbing to seconds.
//!
//! `--connections-steps A,B,C` adds a connection sweep: one fresh fleet per count (idle,
//! or at `--rate` if given), stopping at the first count where connects fail or errors
//! appear, recording server memory per connection for each.

use serde::{Deserialize, Serialize};

use crate::coordinator::{run_nonce, Fleet, LoadArgs, StepOutcome};
use crate::report::Report;

/// Extra runs of a step the hypervisor stole too much from.
pub(crate) const STEAL_RETRIES_MAX: u32 = 2;

/// A step holds only if first deliveries in the window reach this share of the offered rate.
pub(crate) const KEEP_UP_RATIO: f64 = 0.97;

/// Options of `capacity` beyond those of `run`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct CapacityArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    /// The latency objective: p99 delivery latency at most this, in ms.
    #[arg(long)]
    pub slo_ms: f64,
    /// First rate tried, Sends per second.
    #[arg(long, default_value_t = 10_000.0)]
    pub rate_start: f64,
    /// Each step's rate is the previous one times this.
    #[arg(long, default_value_t = 1.5)]
    pub rate_factor: f64,
    /// Highest rate tried.
    #[arg(long, default_value_t = 1_000_000.0)]
    pub rate_max: f64,
    /// Bisection steps after the first failure.
    #[arg(long, default_value_t = 2)]
    pub refine: u32,
    /// A step during which the hypervisor stole more than this share of the machine's CPU
    /// time (a noisy neighbour: /proc/stat steal) is run again, at most twice.
    #[arg(long, default_value_t = 5.0)]
    pub steal_max_percent: f64,
    /// Keep raising the rate past the SLO while deliveries keep up and nothing fails, so the
    /// throughput curve reaches saturation (the answer is still the highest rate that held).
    #[arg(long)]
    pub until_saturated: bool,
    /// After the sweep, this many steps above the highest rate tried (each --rate-factor
    /// times the last), recorded like the others: the overload behaviour.
    #[arg(long, default_value_t = 0)]
    pub overload_steps: u32,
    /// Also sweep connection counts (comma-separated), one fresh fleet each.
    #[arg(long, value_delimiter = ',')]
    pub connections_steps: Vec<usize>,
}

/// One capacity step, as recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CapacityStep {
    pub rate: f64,
    pub offered_msgs_per_s: f64,
    pub throughput_msgs_per_s: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub ack_p99_us: u64,
    /// p99 of how late the load generator itself sent.
    pub send_lag_p99_us: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub errors: u64,
    /// Sends the server refused with `Overloaded` (part of `errors`): shed load.
    #[serde(default)]
    pub shed: u64,
    /// Run by --overload-steps, past the sweep.
    #[serde(default)]
    pub overload: bool,
    pub settled: bool,
    /// Error kinds and counts (error frames by code, lost connections, skipped sends).
    pub error_codes: Vec<(String, u64)>,
    pub server_cpu_percent: Option<f64>,
    pub loadgen_cpu_percent: f64,
    pub machine_steal_percent: Option<f64>,
    /// Runs of this step (more than 1: earlier runs lost over --steal-max-percent to the
    /// hypervisor and were discarded).
    pub attempts: u32,
    pub send_lag_max_us: u64,
    pub held: bool,
    /// Why it did not hold ("" if it did).
    pub verdict: String,
}

/// One connection-sweep point.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ConnectionsStep {
    pub connections: usize,
    pub connected: u64,
    pub failed: u64,
    pub errors: u64,
    pub server_rss_bytes: Option<u64>,
    pub server_rss_bytes_per_connection: Option<f64>,
    pub kernel_tcp_mem_bytes: Option<u64>,
    pub p99_us: u64,
    pub held: bool,
    pub verdict: String,
}

/// What `capacity` found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CapacitySummary {
    pub slo_ms: f64,
    pub steps: Vec<CapacityStep>,
    /// The highest rate that held, if any did.
    pub best_rate: Option<f64>,
    /// The lowest rate that broke, if any did.
    pub broke_at_rate: Option<f64>,
    pub broke_because: Option<String>,
    /// The most first deliveries per second any step saw, SLO or not.
    pub max_throughput_msgs_per_s: f64,
    pub connection_sweep: Vec<ConnectionsStep>,
    /// The largest connection count that held, if a sweep ran.
    pub connections_held: Option<usize>,
}

/// The JSON of `capacity`: the full report of the best step (or the first, if none held),
/// plus the sweep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CapacityReport {
    #[serde(flatten)]
    pub best: Report,
    pub capacity: CapacitySummary,
}

/// Why a step did not hold, or `None` if it did.
pub(crate) fn verdict(step: &StepOutcome, slo_ms: f64) -> Option<String> {
    let t = &step.tally;
    let p99_us = step.latency.percentiles().p99;
    if t.lost > 0 || t.duplicated > 0 {
        return Some(format!("lost {} duplicated {}", t.lost, t.duplicated));
    }
    let shed = shed(step);
    if step.errors_total() > shed {
        return Some(format!("{} errors", step.errors_total()));
    }
    if shed > 0 {
        return Some(format!("shed {shed} sends (Overloaded)"));
    }
    if !step.settled {
        return Some("the books did not settle within the drain".to_owned());
    }
    if step.latency.is_empty() {
        return Some("nothing delivered in the window".to_owned());
    }
    if p99_us as f64 > slo_ms * 1_000.0 {
        return Some(format!("p99 {:.2} ms > {slo_ms} ms", p99_us as f64 / 1_000.0));
    }
    let offered = step.window_sent as f64 / step.duration_s;
    if step.throughput() < offered * KEEP_UP_RATIO {
        return Some(format!(
            "delivered {:.0}/s of {offered:.0}/s offered",
            step.throughput()
        ));
    }
    None
}

/// Sends the server refused with `Overloaded` in `step`.
fn shed(step: &StepOutcome) -> u64 {
    step.error_codes
        .iter()
        .filter(|(code, _)| code == "Overloaded")
        .map(|(_, n)| n)
        .sum()
}

fn record(step: &StepOutcome, slo_ms: f64) -> CapacityStep {
    let lat = step.latency.percentiles();
    let why = verdict(step, slo_ms);
    CapacityStep {
        rate: step.rate,
        offered_msgs_per_s: (step.window_sent as f64 / step.duration_s).round(),
        throughput_msgs_per_s: step.throughput().round(),
        p50_us: lat.p50,
        p99_us: lat.p99,
        p999_us: lat.p999,
        max_us: lat.max,
        ack_p99_us: step.ack_latency.percentiles().p99,
        send_lag_p99_us: step.send_lag.percentiles().p99,
        lost: step.tally.lost,
        duplicated: step.tally.duplicated,
        errors: step.errors_total(),
        shed: shed(step),
        overload: false,
        settled: step.settled,
        error_codes: {
            let mut codes = step.error_codes.clone();
            if step.skipped > 0 {
                codes.push(("skipped sends".to_owned(), step.skipped));
            }
            codes
        },
        server_cpu_percent: step.server_cpu_percent.map(|c| c.round()),
        loadgen_cpu_percent: step.loadgen_cpu_percent.round(),
        machine_steal_percent: step.machine_steal_percent.map(|s| (s * 10.0).round() / 10.0),
        attempts: 1,
        send_lag_max_us: step.send_lag_max_ns / 1_000,
        held: why.is_none(),
        verdict: why.unwrap_or_default(),
    }
}

/// Runs the sweep; returns the report and whether anything was lost or duplicated.
pub(crate) fn capacity(args: &CapacityArgs) -> anyhow::Result<CapacityReport> {
    anyhow::ensure!(args.slo_ms > 0.0, "--slo-ms must be > 0");
    anyhow::ensure!(args.rate_factor > 1.0, "--rate-factor must be > 1");
    anyhow::ensure!(args.rate_start > 0.0, "--rate-start must be > 0");
    let load = &args.load;
    let workers = load.validate()?;
    let (mut fleet, connected) = Fleet::start(load, workers, run_nonce())?;
    let mut steps = Vec::new();
    let mut outcomes: Vec<StepOutcome> = Vec::new();
    let mut failure = None;
    // Rising phase: geometric steps until a step breaks (or, with --until-saturated, until
    // one fails to keep up, errs or loses something). At the first step that breaks the
    // SLO, bisect right away (--refine steps), before any overload has left a backlog or
    // compaction debt behind to disturb the low-rate steps.
    let mut rate = args.rate_start;
    let mut refined = false;
    while let Some(step) = run_step(&mut fleet, args, rate, &mut outcomes, &mut steps, &mut failure) {
        let corrupt = step.lost > 0 || step.duplicated > 0;
        let saturated = corrupt || step.errors > 0 || !keeps_up(step);
        let stop = if args.until_saturated { saturated } else { !step.held };
        if corrupt {
            break;
        }
        if !step.held && !refined {
            refined = true;
            refine(&mut fleet, args, &mut outcomes, &mut steps, &mut failure);
            if failure.is_some() || steps.iter().any(|s| s.lost > 0 || s.duplicated > 0) {
                break;
            }
        }
        if stop || rate * args.rate_factor > args.rate_max {
            break;
        }
        rate *= args.rate_factor;
    }
    overload(&mut fleet, args, &mut outcomes, &mut steps, &mut failure);
    let good = best_index(&steps);
    let bad = steps
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.held && good.is_none_or(|g| s.rate > steps[g].rate))
        .min_by(|a, b| a.1.rate.total_cmp(&b.1.rate))
        .map(|(i, _)| i);
    let quit = fleet.quit();
    // The report is the best step's; when none held, the lowest rate's.
    let best_i = good.unwrap_or_else(|| {
        (0..steps.len())
            .min_by(|&a, &b| steps[a].rate.total_cmp(&steps[b].rate))
            .unwrap_or(0)
    });
    anyhow::ensure!(
        !outcomes.is_empty(),
        "{}",
        failure.unwrap_or_else(|| "no step ran".to_owned())
    );
    let mut best = Report::new(load, workers, &connected, &outcomes[best_i])?;
    // The books of every step count: a loss at a rate that did not hold is still a loss.
    best.lost = outcomes.iter().map(|o| o.tally.lost).sum();
    best.duplicated = outcomes.iter().map(|o| o.tally.duplicated).sum();
    let connection_sweep = connection_sweep(args)?;
    let connections_held = connection_sweep
        .iter()
        .take_while(|s| s.held)
        .last()
        .map(|s| s.connections);
    quit?;
    Ok(CapacityReport {
        best,
        capacity: CapacitySummary {
            slo_ms: args.slo_ms,
            best_rate: good.map(|g| outcomes[g].rate),
            broke_at_rate: bad.map(|b| outcomes[b].rate),
            broke_because: bad.map(|b| steps[b].verdict.clone()).or(failure),
            max_throughput_msgs_per_s: steps.iter().map(|s| s.throughput_msgs_per_s).fold(0.0, f64::max),
            steps,
            connection_sweep,
            connections_held,
        },
    })
}

/// `--refine` bisection steps between the best rate that held and the lowest above it that
/// broke (halving the lowest broken rate while none held).
fn refine(
    fleet: &mut Fleet,
    args: &CapacityArgs,
    outcomes: &mut Vec<StepOutcome>,
    steps: &mut Vec<CapacityStep>,
    failure: &mut Option<String>,
) {
    for _ in 0..args.refine {
        let good = best_index(steps).map(|g| steps[g].rate);
        let bad = steps
            .iter()
            .filter(|s| !s.held && good.is_none_or(|g| s.rate > g))
            .map(|s| s.rate)
            .min_by(f64::total_cmp);
        let next = match (good, bad) {
            (Some(g), Some(b)) => (g + b) / 2.0,
            (None, Some(b)) => b / 2.0,
            _ => return,
        };
        match run_step(fleet, args, next, outcomes, steps, failure) {
            Some(s) if s.lost == 0 && s.duplicated == 0 => {}
            _ => return,
        }
    }
}

/// `--overload-steps`: steps above the highest rate tried, each `--rate-factor` times the
/// last, marked as such; stops early at a loss (the books must stay exact under overload).
fn overload(
    fleet: &mut Fleet,
    args: &CapacityArgs,
    outcomes: &mut Vec<StepOutcome>,
    steps: &mut Vec<CapacityStep>,
    failure: &mut Option<String>,
) {
    if failure.is_some() || steps.iter().any(|s| s.lost > 0 || s.duplicated > 0) {
        return;
    }
    let mut rate = steps.iter().map(|s| s.rate).fold(args.rate_start, f64::max);
    for _ in 0..args.overload_steps {
        rate *= args.rate_factor;
        match run_step(fleet, args, rate, outcomes, steps, failure) {
            Some(s) if s.lost == 0 && s.duplicated == 0 => {}
            _ => return,
        }
        if let Some(last) = steps.last_mut() {
            last.overload = true;
        }
    }
}

/// The step with the highest rate that held.
fn best_index(steps: &[CapacityStep]) -> Option<usize> {
    steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.held)
        .max_by(|a, b| a.1.rate.total_cmp(&b.1.rate))
        .map(|(i, _)| i)
}

/// Whether deliveries kept up with the offered rate.
fn keeps_up(step: &CapacityStep) -> bool {
    step.throughput_msgs_per_s >= step.offered_msgs_per_s * KEEP_UP_RATIO
}

/// Runs one step and records it; `None` (with `failure` set) if the step could not run.
fn run_step<'a>(
    fleet: &mut Fleet,
    args: &CapacityArgs,
    rate: f64,
    outcomes: &mut Vec<StepOutcome>,
    steps: &'a mut Vec<CapacityStep>,
    failure: &mut Option<String>,
) -> Option<&'a CapacityStep> {
    let mut attempts = 0;
    let (outcome, mut step) = loop {
        attempts += 1;
        let outcome = match fleet.step(&args.load, rate) {
            Ok(o) => o,
            Err(e) => {
                *failure = Some(format!("step at {rate:.0}/s failed: {e:#}"));
                return None;
            }
        };
        let step = record(&outcome, args.slo_ms);
        let stolen = step.machine_steal_percent.unwrap_or(0.0);
        let clean = step.lost == 0 && step.duplicated == 0;
        if stolen <= args.steal_max_percent || !clean || attempts > STEAL_RETRIES_MAX {
            break (outcome, step);
        }
        eprintln!(
            "capacity: {rate:.0}/s: the hypervisor stole {stolen:.1}% of the machine's CPU time (over {}%): running the step again",
            args.steal_max_percent
        );
    };
    step.attempts = attempts;
    eprintln!(
        "capacity: {:>9.0}/s offered -> {:>9.0}/s delivered, p50 {:>6} p99 {:>7} µs, errors {} (shed {}) lost {}, server CPU {}%, loadgen CPU {}%, steal {}%: {}",
        step.offered_msgs_per_s,
        step.throughput_msgs_per_s,
        step.p50_us,
        step.p99_us,
        step.errors,
        step.shed,
        step.lost,
        step.server_cpu_percent.unwrap_or(-1.0),
        step.loadgen_cpu_percent,
        step.machine_steal_percent.unwrap_or(-1.0),
        if step.held { "held" } else { &step.verdict }
    );
    if !step.error_codes.is_empty() {
        let codes: Vec<String> = step.error_codes.iter().map(|(c, n)| format!("{c}: {n}")).collect();
        eprintln!("capacity:   errors: {}", codes.join(", "));
    }
    outcomes.push(outcome);
    steps.push(step);
    steps.last()
}

fn connection_sweep(args: &CapacityArgs) -> anyhow::Result<Vec<ConnectionsStep>> {
    let mut out = Vec::new();
    for &connections in &args.connections_steps {
        let mut load = args.load.clone();
        load.connections = connections;
        load.workers = None;
        let workers = load.validate()?;
        let (mut fleet, connected) = match Fleet::start(&load, workers, run_nonce()) {
            Ok(f) => f,
            Err(e) => {
                out.push(ConnectionsStep {
                    connections,
                    connected: 0,
                    failed: connections as u64,
                    errors: connections as u64,
                    server_rss_bytes: None,
                    server_rss_bytes_per_connection: None,
                    kernel_tcp_mem_bytes: None,
                    p99_us: 0,
                    held: false,
                    verdict: format!("{e:#}"),
                });
                break;
            }
        };
        let step = fleet.step(&load, load.rate);
        let _ = fleet.quit();
        let step = step?;
        let report = Report::new(&load, workers, &connected, &step)?;
        let why = if report.errors > 0 {
            Some(format!("{} errors", report.errors))
        } else if load.rate > 0.0 {
            verdict(&step, args.slo_ms)
        } else {
            None
        };
        eprintln!(
            "capacity: {connections} connections: {} connected, {} errors, {} B/connection: {}",
            report.connected,
            report.errors,
            report.server_rss_bytes_per_connection.map_or(0.0, |b| b),
            why.as_deref().unwrap_or("held")
        );
        let held = why.is_none();
        out.push(ConnectionsStep {
            connections,
            connected: report.connected,
            failed: report.connect_failed,
            errors: report.errors,
            server_rss_bytes: report.server_rss_bytes,
            server_rss_bytes_per_connection: report.server_rss_bytes_per_connection,
            kernel_tcp_mem_bytes: report.kernel_tcp_mem_bytes,
            p99_us: report.latency_us.p99,
            held,
            verdict: why.unwrap_or_default(),
        });
        if !held {
            break;
        }
    }
    Ok(out)
}
