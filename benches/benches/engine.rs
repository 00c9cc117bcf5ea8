//! Engine micro-benchmarks:
//! - `handoff`: items moved from one thread to a core's mailbox and popped there (the
//!   bounded lock-free queue every cross-thread message takes), per item.
//! - `append`: direct messages committed by the log writer, by group-commit batch size,
//!   under `sync` durability (one fsync per batch) and `async` (WAL write only). Each
//!   iteration submits exactly `batch` appends and waits for all their acks, so every
//!   commit carries `batch` messages; criterion reports messages per second.
//! - `append_pairs`: the same, but each batch's messages go between [`PAIRS_USERS`] users
//!   in pairs, in a scattered order, as the server's pairs traffic does: every message
//!   lands in a different part of the inbox, dedup and conversation families, which is
//!   what the memtable inserts and lookups cost in a real group commit (two users alone
//!   append at the end of one key range).

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hotline_engine::mailbox::{Completion, ConnRef, Mailbox, ReplyTo, Requester};
use hotline_engine::storage::writer::{self, WriteOp, WriteOutcome, WriteRequest};
use hotline_engine::storage::{Durability, Storage};
use hotline_wire::{ErrorCode, SendFlags};

fn reply(request_id: u64) -> ReplyTo {
    ReplyTo {
        core: 0,
        conn: ConnRef {
            index: 0,
            generation: 0,
        },
        request_id,
        requester: Requester::Client,
    }
}

fn handoff(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine/handoff");
    for items in [1_000u64, 10_000] {
        group.throughput(Throughput::Elements(items));
        group.bench_with_input(BenchmarkId::new("mailbox_completion", items), &items, |b, &items| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mailbox = Arc::new(Mailbox::default());
                    let producer_box = mailbox.clone();
                    let start = Instant::now();
                    let producer = thread::spawn(move || {
                        for i in 0..items {
                            producer_box.push_completion(Completion::Written {
                                reply: reply(i),
                                outcome: Err(ErrorCode::Overloaded),
                            });
                        }
                    });
                    let mut popped = 0;
                    while popped < items {
                        if mailbox.pop_completion().is_some() {
                            popped += 1;
                        } else {
                            std::hint::spin_loop();
                        }
                    }
                    total += start.elapsed();
                    producer.join().expect("producer thread");
                }
                total
            })
        });
    }
    group.finish();
}

/// Users in the `append_pairs` benchmark (half as many pairs), as in `scripts/hotpath`.
const PAIRS_USERS: usize = 2_000;

struct Log {
    _dir: tempfile::TempDir,
    writer: Arc<writer::LogWriter>,
    mailboxes: Arc<[Mailbox]>,
    users: (u64, u64),
    /// Every user of `append_pairs`, in creation order (pair k: users 2k and 2k + 1).
    population: Vec<u64>,
    /// Where the next `append_pairs` batch starts in its scattered walk over the pairs.
    cursor: usize,
    next_id: u64,
}

impl Log {
    fn open(durability: Durability) -> Log {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = Arc::new(Storage::open(dir.path()).expect("open"));
        let mailboxes: Arc<[Mailbox]> = vec![Mailbox::default()].into();
        let (writer, _threads) = writer::spawn(storage, mailboxes.clone(), durability).expect("writer");
        let mut log = Log {
            _dir: dir,
            writer,
            mailboxes,
            users: (0, 0),
            population: Vec::new(),
            cursor: 0,
            next_id: 1,
        };
        let a = log.create_user("alice");
        let b = log.create_user("bob");
        log.users = (a, b);
        log
    }

    fn wait_written(&self) -> Result<WriteOutcome, ErrorCode> {
        loop {
            match self.mailboxes[0].pop_completion() {
                Some(Completion::Written { outcome, .. }) => return outcome,
                Some(_) => {}
                None => std::hint::spin_loop(),
            }
        }
    }

    fn create_user(&mut self, name: &str) -> u64 {
        let op = WriteOp::CreateUser {
            username: name.to_owned(),
            password_phc: String::new(),
        };
        assert!(self
            .writer
            .submit(WriteRequest {
                reply: Some(reply(0)),
                op
            })
            .is_ok());
        match self.wait_written() {
            Ok(WriteOutcome::UserCreated { user_id }) => user_id,
            other => panic!("create user: {other:?}"),
        }
    }

    /// Creates the `append_pairs` population (once).
    fn populate(&mut self) {
        while self.population.len() < PAIRS_USERS {
            let name = format!("pair-user-{}", self.population.len());
            let id = self.create_user(&name);
            self.population.push(id);
        }
    }

    /// Submits `batch` appends at once and waits for every ack.
    fn append_batch(&mut self, batch: u64, payload: &Bytes) {
        let (a, b) = self.users;
        self.append_each(batch, payload, |_| (a, b));
    }

    /// Submits `batch` appends between the population's pairs, each from a different pair
    /// in a scattered order (a stride coprime with the number of pairs, so every pair
    /// comes round equally often), alternating direction, and waits for every ack.
    fn append_pairs_batch(&mut self, batch: u64, payload: &Bytes) {
        const STRIDE: usize = 617;
        let pairs = self.population.len() / 2;
        let start = self.cursor;
        self.cursor += batch as usize;
        let population = std::mem::take(&mut self.population);
        self.append_each(batch, payload, |i| {
            let n = start + i as usize;
            let pair = (n * STRIDE) % pairs;
            let (x, y) = (population[2 * pair], population[2 * pair + 1]);
            if (n / pairs).is_multiple_of(2) {
                (x, y)
            } else {
                (y, x)
            }
        });
        self.population = population;
    }

    fn append_each(&mut self, batch: u64, payload: &Bytes, route: impl Fn(u64) -> (u64, u64)) {
        for i in 0..batch {
            let (sender, to) = route(i);
            let op = WriteOp::Append {
                sender,
                sender_device: 1,
                to,
                group: 0,
                client_msg_id: self.next_id,
                flags: SendFlags::NONE,
                kind: hotline_wire::MessageKind::NORMAL,
                refers_to: 0,
                payload: payload.clone(),
            };
            self.next_id += 1;
            assert!(self
                .writer
                .submit(WriteRequest {
                    reply: Some(reply(0)),
                    op
                })
                .is_ok());
        }
        let mut acked = 0;
        while acked < batch {
            match self.mailboxes[0].pop_completion() {
                Some(Completion::Written { outcome, .. }) => {
                    assert!(outcome.is_ok(), "append failed: {outcome:?}");
                    acked += 1;
                }
                Some(_) => {}
                None => std::hint::spin_loop(),
            }
        }
    }
}

fn append(c: &mut Criterion) {
    let payload = Bytes::from(vec![0x5Au8; 100]);
    for (name, durability) in [("sync", Durability::Sync), ("async", Durability::Async)] {
        let mut group = c.benchmark_group(format!("engine/append_{name}"));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(5));
        let mut log = Log::open(durability);
        for batch in [1u64, 16, 128, 1_024] {
            group.throughput(Throughput::Elements(batch));
            group.bench_with_input(BenchmarkId::new("batch", batch), &batch, |b, &batch| {
                b.iter(|| log.append_batch(batch, &payload))
            });
        }
        group.finish();
        log.writer.stop();
    }
}

fn append_pairs(c: &mut Criterion) {
    let payload = Bytes::from(vec![0x5Au8; 100]);
    for (name, durability) in [("sync", Durability::Sync), ("async", Durability::Async)] {
        let mut group = c.benchmark_group(format!("engine/append_pairs_{name}"));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(5));
        let mut log = Log::open(durability);
        log.populate();
        for batch in [16u64, 128, 1_024] {
            group.throughput(Throughput::Elements(batch));
            group.bench_with_input(BenchmarkId::new("batch", batch), &batch, |b, &batch| {
                b.iter(|| log.append_pairs_batch(batch, &payload))
            });
        }
        group.finish();
        log.writer.stop();
    }
}

criterion_group!(benches, handoff, append, append_pairs);
criterion_main!(benches);
