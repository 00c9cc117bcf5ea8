//! Crash recovery: traffic, `kill -9` at a seeded random moment, restart, N times over one
//! data directory. Afterwards every message the server acknowledged is in its recipient's
//! (and its sender's) inbox exactly once, with the ids its ack named; every inbox is dense;
//! no device cursor ever went backwards across a crash.
//!
//! `make test` runs [`CYCLES_DEFAULT`] cycles. `scripts/crash-loop` runs the same test with
//! `HOTLINE_CRASH_CYCLES=100` (and `HOTLINE_CRASH_SEED` to replay a run); the seed is printed
//! first, and on failure.

use std::collections::{HashMap, HashSet};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hotline_tests::{assert_dense, payload, payload_number, Client, Durability, LoggedIn, Server};
use hotline_wire::{Conversation, SendAck};

/// Kill/restart cycles in `make test`.
const CYCLES_DEFAULT: u32 = 5;
/// Users that send (each to one recipient, `sender % RECIPIENTS`).
const SENDERS: usize = 4;
/// Users that only receive, read and acknowledge.
const RECIPIENTS: usize = 2;
/// Messages each sender offers per cycle (unacknowledged ones from earlier cycles first).
const PER_CYCLE: u64 = 1_500;
/// Unanswered sends per connection.
const WINDOW: usize = 8;
/// The kill lands this long after the traffic starts, uniformly in `[min, max)`.
const KILL_AFTER_MS_MIN: u64 = 2;
const KILL_AFTER_MS_MAX: u64 = 200;

/// splitmix64: a seeded, dependency-free generator, so a failing run replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn range(&mut self, min: u64, max: u64) -> u64 {
        min + self.next() % (max - min)
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|e| panic!("{name}={v:?} is not a number: {e}"))
    })
}

/// One sender's view: what it offered and what the server acknowledged.
struct SenderLog {
    login: LoggedIn,
    to: usize,
    /// client_msg_id (= payload number) → the ack, kept from the first ack.
    acked: HashMap<u64, SendAck>,
    /// Highest client_msg_id offered so far.
    offered_max: u64,
    /// Messages offered again after a crash left them unacknowledged.
    retried: u64,
}

impl SenderLog {
    /// This cycle's messages: every earlier one still unacknowledged (a retry, as a real
    /// client would), then new ones, [`PER_CYCLE`] in all.
    fn batch(&mut self, tag: &str) -> Vec<(u64, Vec<u8>)> {
        let mut batch: Vec<(u64, Vec<u8>)> = (1..=self.offered_max)
            .filter(|n| !self.acked.contains_key(n))
            .take(PER_CYCLE as usize)
            .map(|n| (n, payload(tag, n, 0)))
            .collect();
        self.retried += batch.len() as u64;
        while (batch.len() as u64) < PER_CYCLE {
            self.offered_max += 1;
            batch.push((self.offered_max, payload(tag, self.offered_max, 0)));
        }
        batch
    }
}

#[test]
#[allow(clippy::too_many_lines, reason = "an end-to-end scenario, read top to bottom")]
fn acknowledged_messages_and_cursors_survive_repeated_kill_9() {
    let cycles = env_u64("HOTLINE_CRASH_CYCLES").map_or(CYCLES_DEFAULT, |n| n as u32);
    let seed = env_u64("HOTLINE_CRASH_SEED").unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_nanos() as u64
    });
    eprintln!("crash-recovery: seed {seed} (replay with HOTLINE_CRASH_SEED={seed}), {cycles} cycles");
    let mut rng = Rng(seed);
    let started = Instant::now();

    let mut server = Server::options().durability(Durability::Sync).cores(2).start();
    let addr = server.addr();
    let recipients: Vec<LoggedIn> = (0..RECIPIENTS)
        .map(|i| Client::new_user(addr, &format!("recipient{i}")).1)
        .collect();
    let mut senders: Vec<SenderLog> = (0..SENDERS)
        .map(|i| SenderLog {
            login: Client::new_user(addr, &format!("sender{i}")).1,
            to: i % RECIPIENTS,
            acked: HashMap::new(),
            offered_max: 0,
            retried: 0,
        })
        .collect();
    // The highest cursor each recipient device was seen with (LoginOk or a confirmed Ack).
    let mut cursor_seen = [0u64; RECIPIENTS];
    let mut acked_total = 0usize;
    let mut restart_ms_max = 0u128;

    for cycle in 1..=cycles {
        let addr = server.addr();
        // Recipients: resume, check the cursor, read a little, confirm an ack.
        for (i, r) in recipients.iter().enumerate() {
            let (mut client, again) = Client::resume(addr, &r.token);
            assert_eq!(again.device_id, r.device_id, "seed {seed}: the token survived");
            assert!(
                again.device_cursor >= cursor_seen[i],
                "seed {seed} cycle {cycle}: recipient{i}'s cursor went backwards: {} after {}",
                again.device_cursor,
                cursor_seen[i]
            );
            assert!(
                again.device_cursor <= again.inbox_seq,
                "seed {seed}: cursor past the head"
            );
            cursor_seen[i] = again.device_cursor;
            let pending = (again.inbox_seq - again.device_cursor).min(rng.range(1, 200)) as usize;
            let read = client.expect_delivers(pending);
            assert_dense(&read, again.device_cursor + 1, "the catch-up after a restart");
            if let Some(last) = read.last() {
                let stored = client.ack_confirmed(last.inbox_seq);
                assert!(stored >= cursor_seen[i], "seed {seed}: AckOk went backwards");
                cursor_seen[i] = stored;
            }
        }

        // Senders: resume here (the server is surely up), then send from threads.
        let handles: Vec<_> = senders
            .iter_mut()
            .enumerate()
            .map(|(i, s)| {
                let (mut client, _) = Client::resume(addr, &s.login.token);
                let to = recipients[s.to].user_id;
                let batch = s.batch(&format!("s{i}"));
                thread::spawn(move || client.send_pipelined(to, &batch, WINDOW, |_, _| {}))
            })
            .collect();
        let kill_after = Duration::from_millis(rng.range(KILL_AFTER_MS_MIN, KILL_AFTER_MS_MAX));
        thread::sleep(kill_after);
        server.kill9();

        let mut acked_cycle = 0;
        for (s, handle) in senders.iter_mut().zip(handles) {
            let outcome = handle.join().expect("a sender thread panicked");
            for (n, reply) in outcome.replies {
                let ack = reply.unwrap_or_else(|code| panic!("seed {seed}: a send failed with {code:?}"));
                acked_cycle += 1;
                if let Some(first) = s.acked.get(&n) {
                    assert_eq!(
                        (first.message_id, first.inbox_seq),
                        (ack.message_id, ack.inbox_seq),
                        "seed {seed}: a retried message got new ids (stored twice?)"
                    );
                } else {
                    s.acked.insert(n, ack);
                }
            }
        }
        acked_total += acked_cycle;
        let t = Instant::now();
        server.restart();
        restart_ms_max = restart_ms_max.max(t.elapsed().as_millis());
        eprintln!(
            "crash-recovery: cycle {cycle}: kill after {} ms, {acked_cycle} acks this cycle",
            kill_after.as_millis()
        );
    }

    // Verification on the last restart.
    let addr = server.addr();
    for (i, r) in recipients.iter().enumerate() {
        let (mut client, again) = Client::resume(addr, &r.token);
        assert!(
            again.device_cursor >= cursor_seen[i],
            "seed {seed}: recipient{i}'s cursor went backwards"
        );
        let inbox = client.sync_all(0);
        assert_dense(&inbox, 1, &format!("seed {seed}: recipient{i}'s inbox"));
        assert_eq!(
            again.inbox_seq,
            inbox.len() as u64,
            "seed {seed}: LoginOk's head is the last seq"
        );
        let mut seen = HashSet::new();
        for m in &inbox {
            assert!(seen.insert(m.payload.clone()), "seed {seed}: stored twice: {m:?}");
        }
        let by_payload: HashMap<&[u8], _> = inbox.iter().map(|m| (m.payload.as_slice(), m)).collect();
        for (j, s) in senders.iter().enumerate().filter(|(_, s)| s.to == i) {
            for (n, ack) in &s.acked {
                let m = by_payload
                    .get(payload(&format!("s{j}"), *n, 0).as_slice())
                    .unwrap_or_else(|| panic!("seed {seed}: acknowledged s{j}:{n} ({ack:?}) is lost"));
                assert_eq!((m.message_id, m.sender), (ack.message_id, s.login.user_id));
            }
        }
        for m in &inbox {
            let (tag, n) = payload_number(&m.payload).expect("only test payloads");
            let j: usize = tag[1..].parse().expect("sender tag");
            assert!(n <= senders[j].offered_max, "seed {seed}: a message nobody sent: {m:?}");
        }
        // Conversation states (stored in bulk, the rest rebuilt from the inbox after each
        // kill) match the inbox: the newest seq and the unread count per sender.
        let mut expected: Vec<(Conversation, u64, u64)> = Vec::new();
        for m in &inbox {
            let c = Conversation::Direct(m.sender);
            match expected.iter_mut().find(|(e, _, _)| *e == c) {
                Some(e) => *e = (c, m.inbox_seq, e.2 + 1),
                None => expected.push((c, m.inbox_seq, 1)),
            }
        }
        expected.sort_by_key(|(c, _, _)| c.kind_and_id());
        let (listed, _) = client.conversations();
        let listed: Vec<_> = listed.iter().map(|p| (p.conversation, p.last_seq, p.unread)).collect();
        assert_eq!(listed, expected, "seed {seed}: recipient{i}'s conversations");
        if let Some(&(c, last, _)) = expected.first() {
            let read = client.mark_read(c, last).expect("the newest seq is readable");
            assert_eq!((read.read_seq, read.unread), (last, 0), "seed {seed}");
        }
    }
    for (j, s) in senders.iter().enumerate() {
        let (mut client, _) = Client::resume(addr, &s.login.token);
        let own = client.sync_all(0);
        assert_dense(&own, 1, &format!("seed {seed}: sender{j}'s inbox"));
        for ack in s.acked.values() {
            let index = usize::try_from(ack.inbox_seq - 1).expect("fits usize");
            assert_eq!(
                own.get(index).map(|m| m.message_id),
                Some(ack.message_id),
                "seed {seed}: sender{j}'s copy at seq {}",
                ack.inbox_seq
            );
        }
    }
    let distinct: usize = senders.iter().map(|s| s.acked.len()).sum();
    let retried: u64 = senders.iter().map(|s| s.retried).sum();
    eprintln!(
        "crash-loop: seed={seed} cycles={cycles} acks={acked_total} distinct_acked={distinct} \
         reoffered_unacked={retried} lost=0 duplicates=0 restart_ms_max={restart_ms_max} \
         elapsed_s={:.1}",
        started.elapsed().as_secs_f64()
    );
}
