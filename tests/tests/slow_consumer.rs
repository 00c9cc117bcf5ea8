//! Slow consumers: one device stops reading while many others receive a steady stream of
//! group messages (and a second sender floods the slow device with big direct messages in
//! both phases, so the load is the same and its queue overflows when it stops reading). The others' p99 delivery latency stays within 2x of the same run's
//! phase where the device reads (with a 25 ms floor: below that, a debug build on a shared
//! box is noise), the server's memory stays bounded while the device is stalled, and once it
//! reads again it receives everything, in order.
//!
//! Scaled for `make test` (a debug server on a shared 2-core box, where 50 or 100 receiver
//! threads made the p99s scheduling noise): [`RECEIVERS`] receivers rather than the 1,000
//! of a load test; the load generator measures the big numbers.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use hotline_tests::{assert_dense, Client, Durability, OwnedDeliver, Server};
use hotline_wire::{GroupRole, Persistence, SendFlags};

const RECEIVERS: usize = 20;
/// Group messages per second, per phase.
const RATE_PER_S: u64 = 20;
/// Messages per phase (3 s at the rate).
const PER_PHASE: u64 = 60;
/// Group payloads: small, so a debug build on two shared cores keeps up with the fan-out.
const PAYLOAD_BYTES: usize = 200;
/// The flood to the slow device per phase: 8 MiB, past `--outbound-bytes-max` (256 KiB)
/// and any loopback socket buffer.
const FLOOD_MESSAGES: u64 = 256;
const FLOOD_PAYLOAD_BYTES: usize = 32 << 10;
/// Latency floor under which a p99 comparison is noise on a shared 2-core box running a
/// debug build; the failure this catches (others queued behind the stalled device) costs
/// seconds.
const P99_FLOOR: Duration = Duration::from_millis(25);
/// How much more the server's memory may grow in the stalled phase than in the reading
/// phase (both write the same to the log's memtable): the stalled device's bounded queue
/// (256 KiB) plus allocator noise. Queueing the phase's flood for it would be 8 MiB.
const RSS_EXTRA_GROWTH_MAX_KB: u64 = 4 << 10;

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read the server's status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Sends `PER_PHASE` group messages on a fixed schedule; each payload starts with its
/// scheduled time (µs since `epoch`), padded.
fn send_phase(sender: &mut Client, group: u64, first_id: u64, epoch: Instant) {
    let start = Instant::now();
    for i in 0..PER_PHASE {
        let due = start + Duration::from_micros(i * 1_000_000 / RATE_PER_S);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        let mut payload = format!("{}:", due.duration_since(epoch).as_micros()).into_bytes();
        payload.resize(PAYLOAD_BYTES, b'.');
        sender
            .send_group(group, first_id + i, &payload, SendFlags::NONE)
            .expect("group send");
    }
}

/// Floods `to` with big direct messages from another connection, paced over the phase
/// (so the log writer is busy but not saturated: the test is about the slow reader).
fn flood(mut flooder: Client, to: u64, first_id: u64) -> thread::JoinHandle<Client> {
    thread::spawn(move || {
        let start = Instant::now();
        let phase = Duration::from_micros(PER_PHASE * 1_000_000 / RATE_PER_S);
        for i in 0..FLOOD_MESSAGES {
            let due = start + phase.mul_f64(i as f64 / FLOOD_MESSAGES as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
            flooder
                .send(to, first_id + i, &vec![b'f'; FLOOD_PAYLOAD_BYTES])
                .expect("a flood send");
        }
        flooder
    })
}

fn sent_at(d: &OwnedDeliver, epoch: Instant) -> Instant {
    let text = std::str::from_utf8(&d.payload[..32.min(d.payload.len())]).unwrap_or("");
    let us: u64 = text
        .split(':')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a timestamped payload");
    epoch + Duration::from_micros(us)
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

#[test]
fn a_stalled_device_costs_the_others_nothing_and_catches_up_in_order() {
    // Async durability: this is about delivery, and fsync stalls on a shared disk are noise.
    let mut server = Server::options().cores(2).durability(Durability::Async).stopped();
    let accounts = server.provision("r", RECEIVERS + 3);
    server.restart();
    let addr = server.addr();
    let epoch = Instant::now();

    let flooder_account = accounts.last().expect("provisioned").clone();
    let accounts = &accounts[..accounts.len() - 1];
    let (_, sender_token) = &accounts[0];
    let (slow_id, slow_token) = &accounts[1];
    let (flooder, _) = Client::resume(addr, &flooder_account.1);
    let (mut sender, _) = Client::resume(addr, sender_token);
    let group = sender
        .create_group("busy", Persistence::ARCHIVE)
        .expect("create the group");
    for (user_id, _) in &accounts[1..] {
        sender
            .add_member(group, *user_id, GroupRole::MEMBER)
            .expect("add a member");
    }

    // Receivers: each reads both phases, reporting each phase's latencies.
    let (tx, rx) = mpsc::channel::<(usize, Vec<Duration>)>();
    let receivers: Vec<_> = accounts[2..]
        .iter()
        .map(|(_, token)| {
            let (mut client, _) = Client::resume(addr, token);
            let tx = tx.clone();
            thread::spawn(move || {
                for phase in 0..2 {
                    let mut lat = Vec::with_capacity(PER_PHASE as usize);
                    for _ in 0..PER_PHASE {
                        let d = client.expect_deliver();
                        lat.push(Instant::now().saturating_duration_since(sent_at(&d, epoch)));
                    }
                    tx.send((phase, lat)).expect("report");
                }
            })
        })
        .collect();
    drop(tx);

    // Phase 1: the slow device reads like everyone else.
    let pid = server.pid().expect("running");
    let rss_start = rss_kb(pid);
    let (slow, slow_login) = Client::resume(addr, slow_token);
    let reader = thread::spawn(move || {
        let mut slow = slow;
        let got = slow.expect_delivers((PER_PHASE + FLOOD_MESSAGES) as usize);
        (slow, got)
    });
    let flooding = flood(flooder, *slow_id, 1);
    send_phase(&mut sender, group, 1, epoch);
    let flooder = flooding.join().expect("the flooder");
    let (mut slow, phase1) = reader.join().expect("the slow device's reader");
    assert_dense(&phase1, slow_login.device_cursor + 1, "the slow device while reading");

    // Phase 2: it stops reading (and writing: no Pongs either).
    let rss_before = rss_kb(pid);
    slow.pause_writes();
    let flooding = flood(flooder, *slow_id, 1 + FLOOD_MESSAGES);
    send_phase(&mut sender, group, 1 + PER_PHASE, epoch);
    drop(flooding.join().expect("the flooder"));
    let rss_during = rss_kb(pid);

    let mut phases: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for (phase, lat) in rx {
        phases[phase].extend(lat);
    }
    for r in receivers {
        r.join().expect("a receiver failed");
    }
    let (p99_reading, p99_stalled) = (p99(phases[0].clone()), p99(phases[1].clone()));
    eprintln!(
        "p99 with every device reading {p99_reading:?}, with one stalled {p99_stalled:?}; \
         server RSS {rss_start} kB -> {rss_before} kB (reading) -> {rss_during} kB (stalled)"
    );
    assert!(
        p99_stalled <= 2 * p99_reading.max(P99_FLOOR),
        "one stalled device raised the others' p99 from {p99_reading:?} to {p99_stalled:?}"
    );
    let (grew_reading, grew_stalled) = (
        rss_before.saturating_sub(rss_start),
        rss_during.saturating_sub(rss_before),
    );
    assert!(
        grew_stalled <= grew_reading + RSS_EXTRA_GROWTH_MAX_KB,
        "server memory grew {grew_stalled} kB while one device was stalled, {grew_reading} kB while it read"
    );

    // It reads again: everything from phase 2, in order, no gaps, no repeats.
    let rest = slow.expect_delivers((PER_PHASE + FLOOD_MESSAGES) as usize);
    assert_dense(
        &rest,
        phase1.last().map_or(1, |d| d.inbox_seq + 1),
        "the slow device's catch-up",
    );
    slow.expect_no_deliver(Duration::from_millis(200));
}
