//! The log writer: the one thread that mutates the database. It sequences and group-commits.
//!
//! Cores (and helpers) submit [`WriteRequest`]s to one bounded queue. The writer drains up
//! to [`BATCH_REQUESTS_MAX`] at a time, applies them to a single RocksDB `WriteBatch`, and
//! commits it with one write (and, under `sync` durability, one fsync): everything that
//! queued while the previous fsync ran shares the next one. Only then does it tell the
//! cores, in commit order.
//!
//! Why the writer, not each user's home core, assigns inbox seqs (a deliberate change from
//! the design brief): a direct message touches two inboxes that usually live on two cores.
//! Assigning both seqs here puts the recipient's copy, the sender's copy and the dedup
//! entry in one atomic batch, so a crash or a failed write can never leave a half-sent
//! message, a seq gap, or a dedup entry without its message; commits per user are in seq
//! order by construction; and a retried send is detected exactly, across restarts, by one
//! bloom-filtered lookup. Delivery still crosses at most one core boundary: sender core →
//! writer → recipient's home core.
//!
//! Invariants:
//! - Counters (inbox heads, last device ids, next user id, next message id) change only
//!   when the batch that used them committed; a failed batch leaves them as they were, so
//!   seqs stay dense and the failed requests can be retried.
//! - Completions for one user are pushed in seq order, so each home core sees its users'
//!   inboxes grow one seq at a time.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use crossbeam_queue::ArrayQueue;
use hotline_wire::{ErrorCode, SendAck, SendFlags};
use rocksdb::{WriteBatch, WriteOptions};

use super::keys::{self, pair};
use super::record::StoredMessage;
use super::{Cf, Storage, StorageError, META_MESSAGE_ID_HWM};
use crate::mailbox::{home_core, Completion, Mailbox, ReplyTo, WriteOutcome};

/// Most requests queued for the writer; a full queue makes submitters shed (`Overloaded`).
pub const WRITE_QUEUE_REQUESTS_MAX: usize = 65_536;
/// Most requests in one group commit.
pub const BATCH_REQUESTS_MAX: usize = 4_096;
/// Most payload bytes in one group commit (a batch stops growing past this).
pub const BATCH_PAYLOAD_BYTES_MAX: usize = 8 << 20;
/// Under `async` durability, how often the WAL is fsynced in the background.
pub const ASYNC_WAL_SYNC_INTERVAL_MS: u64 = 10;

const _: () = assert!(BATCH_REQUESTS_MAX <= WRITE_QUEUE_REQUESTS_MAX);

/// When a write counts as durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Acknowledge after the group commit's fsync: nothing acknowledged is ever lost.
    Sync,
    /// Acknowledge after the WAL write; fsync every [`ASYNC_WAL_SYNC_INTERVAL_MS`].
    Async,
}

/// A mutation.
#[derive(Debug)]
pub enum WriteOp {
    /// Append a direct message to the recipient's and the sender's inbox.
    Append {
        sender: u64,
        sender_device: u64,
        to: u64,
        client_msg_id: u64,
        flags: SendFlags,
        payload: Bytes,
    },
    CreateUser {
        username: String,
        password_phc: String,
    },
    /// A new device for `user_id`, reachable with `token` (only its hash is stored).
    CreateDevice {
        user_id: u64,
        device_name: String,
        token: [u8; 32],
    },
    RevokeToken {
        token_hash: [u8; 32],
    },
    /// Store a device's delivered cursor. The device's home core submits only increasing
    /// values, one at a time, so the stored cursor never moves backwards.
    SetCursor {
        user_id: u64,
        device_id: u64,
        seq: u64,
    },
}

/// A mutation and where its outcome goes (`None`: nobody waits, e.g. admin commands).
#[derive(Debug)]
pub struct WriteRequest {
    pub reply: Option<ReplyTo>,
    pub op: WriteOp,
}

/// Counters the writer keeps (read by metrics and benchmarks).
#[derive(Debug, Default)]
pub struct WriterStats {
    pub batches: AtomicU64,
    pub requests: AtomicU64,
    pub messages: AtomicU64,
    pub commit_micros_total: AtomicU64,
    pub failed_batches: AtomicU64,
}

/// The submitting side of the writer. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct LogWriter {
    queue: ArrayQueue<WriteRequest>,
    sleeping: AtomicBool,
    stop: AtomicBool,
    thread: std::sync::OnceLock<Thread>,
    pub stats: WriterStats,
}

impl LogWriter {
    /// Queues a request, or gives it back if the queue is full (the caller sheds).
    pub fn submit(&self, request: WriteRequest) -> Result<(), WriteRequest> {
        self.queue.push(request)?;
        if self.sleeping.swap(false, Ordering::SeqCst) {
            if let Some(t) = self.thread.get() {
                t.unpark();
            }
        }
        Ok(())
    }

    /// Requests queued (a gauge).
    pub fn depth(&self) -> usize {
        self.queue.len()
    }

    /// Asks the writer to finish what is queued and exit.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }
}

/// Per-user counters the writer owns.
#[derive(Debug, Clone, Copy, Default)]
struct UserCounters {
    inbox_head: u64,
    /// Last device id, loaded on first need.
    device_last: Option<u64>,
}

/// Starts the writer thread (and, under `async` durability, its WAL syncer).
pub fn spawn(
    storage: Arc<Storage>,
    mailboxes: Arc<[Mailbox]>,
    durability: Durability,
) -> Result<(Arc<LogWriter>, Vec<JoinHandle<()>>), StorageError> {
    let writer = Arc::new(LogWriter {
        queue: ArrayQueue::new(WRITE_QUEUE_REQUESTS_MAX),
        sleeping: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        thread: std::sync::OnceLock::new(),
        stats: WriterStats::default(),
    });
    let mut state = WriterState::load(storage.clone(), mailboxes, durability)?;
    let w = writer.clone();
    let handle = thread::Builder::new()
        .name("hotline-writer".into())
        .spawn(move || state.run(&w))
        .map_err(|e| StorageError::Corrupt(format!("cannot start the writer thread: {e}")))?;
    let _ = writer.thread.set(handle.thread().clone());
    let mut handles = vec![handle];
    if durability == Durability::Async {
        let w = writer.clone();
        let syncer = thread::Builder::new()
            .name("hotline-walsync".into())
            .spawn(move || wal_syncer(&storage, &w))
            .map_err(|e| StorageError::Corrupt(format!("cannot start the WAL syncer: {e}")))?;
        handles.push(syncer);
    }
    Ok((writer, handles))
}

fn wal_syncer(storage: &Storage, writer: &LogWriter) {
    let mut synced_batches = 0;
    while !writer.stop.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(ASYNC_WAL_SYNC_INTERVAL_MS));
        let batches = writer.stats.batches.load(Ordering::Relaxed);
        if batches != synced_batches {
            if let Err(e) = storage.db().flush_wal(true) {
                tracing::warn!("background WAL fsync failed: {e}");
            }
            synced_batches = batches;
        }
    }
    let _ = storage.db().flush_wal(true);
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Message ids: microsecond timestamp in the high bits, so they sort by time, made strictly
/// increasing across the process and across restarts by the stored high-water mark.
fn message_id_floor(now_us: u64) -> u64 {
    now_us << 8
}

struct WriterState {
    storage: Arc<Storage>,
    mailboxes: Arc<[Mailbox]>,
    cores: usize,
    sync: bool,
    users: HashMap<u64, UserCounters>,
    next_user_id: u64,
    next_message_id: u64,
    // Per-batch overlays: applied on commit, dropped on failure.
    batch_users: HashMap<u64, UserCounters>,
    batch_usernames: HashSet<String>,
    batch_dedup: HashMap<(u64, u64), SendAck>,
    batch_next_user_id: u64,
    batch_next_message_id: u64,
    out: Vec<(usize, Completion)>,
    record: Vec<u8>,
}

/// Why one request could not be applied (the rest of the batch goes on).
enum Refusal {
    Client(ErrorCode),
    Storage(StorageError),
}

impl From<StorageError> for Refusal {
    fn from(e: StorageError) -> Self {
        Refusal::Storage(e)
    }
}

impl WriterState {
    fn load(storage: Arc<Storage>, mailboxes: Arc<[Mailbox]>, durability: Durability) -> Result<Self, StorageError> {
        let next_user_id = storage.max_user_id()? + 1;
        let hwm = storage.meta_u64(META_MESSAGE_ID_HWM)?.unwrap_or(0);
        let next_message_id = (hwm + 1).max(message_id_floor(now_us()));
        let cores = mailboxes.len();
        Ok(Self {
            storage,
            mailboxes,
            cores,
            sync: durability == Durability::Sync,
            users: HashMap::new(),
            next_user_id,
            next_message_id,
            batch_users: HashMap::new(),
            batch_usernames: HashSet::new(),
            batch_dedup: HashMap::new(),
            batch_next_user_id: next_user_id,
            batch_next_message_id: next_message_id,
            out: Vec::new(),
            record: Vec::with_capacity(1024),
        })
    }

    fn run(&mut self, handle: &LogWriter) {
        let mut requests = Vec::with_capacity(BATCH_REQUESTS_MAX);
        loop {
            let mut payload_bytes = 0usize;
            while requests.len() < BATCH_REQUESTS_MAX && payload_bytes < BATCH_PAYLOAD_BYTES_MAX {
                let Some(r) = handle.queue.pop() else { break };
                if let WriteOp::Append { payload, .. } = &r.op {
                    payload_bytes += payload.len();
                }
                requests.push(r);
            }
            if requests.is_empty() {
                if handle.stop.load(Ordering::SeqCst) && handle.queue.is_empty() {
                    return;
                }
                handle.sleeping.store(true, Ordering::SeqCst);
                if handle.queue.is_empty() && !handle.stop.load(Ordering::SeqCst) {
                    thread::park_timeout(Duration::from_millis(100));
                }
                handle.sleeping.store(false, Ordering::SeqCst);
                continue;
            }
            self.commit(&mut requests, handle);
        }
    }

    /// Applies `requests` as one batch, commits it, and reports every outcome.
    fn commit(&mut self, requests: &mut Vec<WriteRequest>, handle: &LogWriter) {
        let started = Instant::now();
        let mut batch = WriteBatch::default();
        let timestamp_us = now_us();
        self.batch_next_message_id = self.next_message_id.max(message_id_floor(timestamp_us));
        self.batch_next_user_id = self.next_user_id;
        let mut messages = 0u64;
        let count = requests.len() as u64;
        for request in requests.drain(..) {
            let reply = request.reply;
            let is_message = matches!(request.op, WriteOp::Append { .. });
            match self.apply(request, &mut batch, timestamp_us) {
                Ok(()) => messages += u64::from(is_message),
                Err(Refusal::Client(code)) => self.refuse(reply, code),
                Err(Refusal::Storage(e)) => {
                    tracing::warn!("storage read failed while applying a write: {e}");
                    self.refuse(reply, ErrorCode::StorageUnavailable);
                }
            }
        }
        if !batch.is_empty() {
            batch.put_cf(
                self.storage.cf(Cf::Meta),
                META_MESSAGE_ID_HWM,
                (self.batch_next_message_id - 1).to_le_bytes(),
            );
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(self.sync);
        let result = if batch.is_empty() {
            Ok(())
        } else {
            self.storage.db().write_opt(batch, &opts)
        };
        match result {
            Ok(()) => {
                for (user, counters) in self.batch_users.drain() {
                    self.users.insert(user, counters);
                }
                self.next_user_id = self.batch_next_user_id;
                self.next_message_id = self.batch_next_message_id;
                for (core, completion) in self.out.drain(..) {
                    self.mailboxes[core].push_completion(completion);
                }
            }
            Err(e) => {
                tracing::error!("group commit of {count} requests failed, none acknowledged: {e}");
                handle.stats.failed_batches.fetch_add(1, Ordering::Relaxed);
                self.batch_users.clear();
                // Nothing reached an inbox: only the requesters hear, and they may retry.
                let requesters: Vec<ReplyTo> = self
                    .out
                    .drain(..)
                    .filter_map(|(_, c)| match c {
                        Completion::Written { reply, .. } => Some(reply),
                        _ => None,
                    })
                    .collect();
                for reply in requesters {
                    self.refuse(Some(reply), ErrorCode::StorageUnavailable);
                }
                messages = 0;
            }
        }
        self.batch_usernames.clear();
        self.batch_dedup.clear();
        let stats = &handle.stats;
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.requests.fetch_add(count, Ordering::Relaxed);
        stats.messages.fetch_add(messages, Ordering::Relaxed);
        stats
            .commit_micros_total
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    }

    fn refuse(&mut self, reply: Option<ReplyTo>, code: ErrorCode) {
        if let Some(reply) = reply {
            self.mailboxes[reply.core].push_completion(Completion::Written {
                reply,
                outcome: Err(code),
            });
        }
    }

    fn emit_written(&mut self, reply: Option<ReplyTo>, outcome: WriteOutcome) {
        if let Some(reply) = reply {
            self.out.push((
                reply.core,
                Completion::Written {
                    reply,
                    outcome: Ok(outcome),
                },
            ));
        }
    }

    /// The counters of an existing user, loading them on first use; `None` if no such user.
    fn counters(&mut self, user_id: u64) -> Result<Option<&mut UserCounters>, StorageError> {
        if user_id == 0 {
            return Ok(None);
        }
        if !self.batch_users.contains_key(&user_id) {
            let loaded = match self.users.get(&user_id) {
                Some(c) => *c,
                None => {
                    if !self.storage.user_exists(user_id)? {
                        return Ok(None);
                    }
                    UserCounters {
                        inbox_head: self.storage.inbox_head(user_id)?,
                        device_last: None,
                    }
                }
            };
            self.batch_users.insert(user_id, loaded);
        }
        Ok(self.batch_users.get_mut(&user_id))
    }

    fn next_seq(&mut self, user_id: u64) -> Result<u64, Refusal> {
        let c = self.counters(user_id)?.ok_or(Refusal::Client(ErrorCode::NoSuchUser))?;
        c.inbox_head += 1;
        Ok(c.inbox_head)
    }

    fn apply(&mut self, request: WriteRequest, batch: &mut WriteBatch, timestamp_us: u64) -> Result<(), Refusal> {
        let reply = request.reply;
        match request.op {
            WriteOp::Append {
                sender,
                sender_device,
                to,
                client_msg_id,
                flags,
                payload,
            } => {
                let dedup_key = (sender, client_msg_id);
                if let Some(ack) = self.batch_dedup.get(&dedup_key) {
                    let ack = *ack;
                    self.emit_written(reply, WriteOutcome::Sent(ack));
                    return Ok(());
                }
                if let Some([message_id, inbox_seq, ts]) = self.storage.dedup(sender, client_msg_id)? {
                    let ack = SendAck {
                        client_msg_id,
                        message_id,
                        inbox_seq,
                        timestamp_us: ts,
                    };
                    self.emit_written(reply, WriteOutcome::Sent(ack));
                    return Ok(());
                }
                // Check the recipient before taking any seq, so a refusal leaves no trace.
                if self.counters(to)?.is_none() {
                    return Err(Refusal::Client(ErrorCode::NoSuchUser));
                }
                let recipient_seq = self.next_seq(to)?;
                let sender_seq = if to == sender {
                    recipient_seq
                } else {
                    self.next_seq(sender)?
                };
                let message_id = self.batch_next_message_id;
                self.batch_next_message_id += 1;
                let message = Arc::new(StoredMessage {
                    message_id,
                    sender,
                    sender_device,
                    recipient: to,
                    timestamp_us,
                    flags,
                    client_msg_id,
                    payload,
                });
                let inbox = self.storage.cf(Cf::Inbox);
                let copies = [(to, recipient_seq), (sender, sender_seq)];
                // A message to oneself has one copy.
                let copies = if to == sender { &copies[..1] } else { &copies[..] };
                for &(owner, seq) in copies {
                    self.record.clear();
                    message.encode_record(owner, &mut self.record);
                    batch.put_cf(inbox, pair(owner, seq), &self.record);
                }
                let ack = SendAck {
                    client_msg_id,
                    message_id,
                    inbox_seq: sender_seq,
                    timestamp_us,
                };
                let mut dedup_value = [0u8; 24];
                dedup_value[..8].copy_from_slice(&message_id.to_le_bytes());
                dedup_value[8..16].copy_from_slice(&sender_seq.to_le_bytes());
                dedup_value[16..].copy_from_slice(&timestamp_us.to_le_bytes());
                batch.put_cf(self.storage.cf(Cf::Dedup), pair(sender, client_msg_id), dedup_value);
                self.batch_dedup.insert(dedup_key, ack);
                if to != sender {
                    self.out.push((
                        home_core(to, self.cores),
                        Completion::Committed {
                            user_id: to,
                            seq: recipient_seq,
                            message: message.clone(),
                            origin: None,
                        },
                    ));
                }
                self.out.push((
                    home_core(sender, self.cores),
                    Completion::Committed {
                        user_id: sender,
                        seq: sender_seq,
                        message,
                        origin: reply,
                    },
                ));
                self.emit_written(reply, WriteOutcome::Sent(ack));
                Ok(())
            }
            WriteOp::CreateUser { username, password_phc } => {
                if self.batch_usernames.contains(&username) || self.storage.user_by_name(&username)?.is_some() {
                    return Err(Refusal::Client(ErrorCode::UserExists));
                }
                let user_id = self.batch_next_user_id;
                self.batch_next_user_id += 1;
                let mut user = Vec::with_capacity(8 + username.len());
                user.extend_from_slice(&timestamp_us.to_le_bytes());
                user.extend_from_slice(username.as_bytes());
                batch.put_cf(self.storage.cf(Cf::Users), keys::id(user_id), user);
                batch.put_cf(
                    self.storage.cf(Cf::Usernames),
                    username.as_bytes(),
                    user_id.to_le_bytes(),
                );
                batch.put_cf(
                    self.storage.cf(Cf::Credentials),
                    keys::id(user_id),
                    password_phc.as_bytes(),
                );
                self.batch_users.insert(
                    user_id,
                    UserCounters {
                        inbox_head: 0,
                        device_last: Some(0),
                    },
                );
                self.batch_usernames.insert(username);
                self.emit_written(reply, WriteOutcome::UserCreated { user_id });
                Ok(())
            }
            WriteOp::CreateDevice {
                user_id,
                device_name,
                token,
            } => {
                let storage = self.storage.clone();
                let c = self.counters(user_id)?.ok_or(Refusal::Client(ErrorCode::NoSuchUser))?;
                let last = match c.device_last {
                    Some(last) => last,
                    None => storage.last_in_range(Cf::Devices, user_id)?,
                };
                let device_id = last + 1;
                c.device_last = Some(device_id);
                let inbox_head = c.inbox_head;
                let token_hash = crate::auth::token_hash(&token);
                let mut device = Vec::with_capacity(8 + device_name.len());
                device.extend_from_slice(&timestamp_us.to_le_bytes());
                device.extend_from_slice(device_name.as_bytes());
                batch.put_cf(storage.cf(Cf::Devices), pair(user_id, device_id), device);
                let mut tok = [0u8; 24];
                tok[..8].copy_from_slice(&user_id.to_le_bytes());
                tok[8..16].copy_from_slice(&device_id.to_le_bytes());
                tok[16..].copy_from_slice(&timestamp_us.to_le_bytes());
                batch.put_cf(storage.cf(Cf::Tokens), token_hash, tok);
                self.emit_written(
                    reply,
                    WriteOutcome::DeviceCreated {
                        user_id,
                        device_id,
                        token,
                        token_hash,
                        inbox_head,
                    },
                );
                Ok(())
            }
            WriteOp::RevokeToken { token_hash } => {
                batch.delete_cf(self.storage.cf(Cf::Tokens), token_hash);
                self.emit_written(reply, WriteOutcome::TokenRevoked);
                Ok(())
            }
            WriteOp::SetCursor {
                user_id,
                device_id,
                seq,
            } => {
                batch.put_cf(
                    self.storage.cf(Cf::Cursors),
                    pair(user_id, device_id),
                    seq.to_le_bytes(),
                );
                self.emit_written(
                    reply,
                    WriteOutcome::CursorStored {
                        user_id,
                        device_id,
                        seq,
                    },
                );
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::ConnRef;

    struct Harness {
        storage: Arc<Storage>,
        mailboxes: Arc<[Mailbox]>,
        writer: Arc<LogWriter>,
        threads: Vec<JoinHandle<()>>,
    }

    fn reply(request_id: u64) -> Option<ReplyTo> {
        Some(ReplyTo {
            core: 0,
            conn: ConnRef {
                index: 0,
                generation: 0,
            },
            request_id,
            internal: false,
        })
    }

    impl Harness {
        fn open(dir: &std::path::Path) -> Harness {
            let storage = Arc::new(Storage::open(dir).unwrap());
            let mailboxes: Arc<[Mailbox]> = vec![Mailbox::default()].into();
            let (writer, threads) = spawn(storage.clone(), mailboxes.clone(), Durability::Sync).unwrap();
            Harness {
                storage,
                mailboxes,
                writer,
                threads,
            }
        }

        fn close(self) {
            self.writer.stop();
            for t in self.threads {
                t.join().unwrap();
            }
        }

        /// Submits `op` and returns its outcome plus the notifications pushed before it.
        fn write(&self, op: WriteOp) -> (Result<WriteOutcome, ErrorCode>, Vec<(u64, u64)>) {
            self.writer.submit(WriteRequest { reply: reply(1), op }).unwrap();
            let mut committed = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match self.mailboxes[0].pop_completion() {
                    Some(Completion::Written { outcome, .. }) => return (outcome, committed),
                    Some(Completion::Committed { user_id, seq, .. }) => committed.push((user_id, seq)),
                    Some(other) => panic!("unexpected {other:?}"),
                    None if Instant::now() > deadline => panic!("no outcome in time"),
                    None => thread::sleep(Duration::from_micros(100)),
                }
            }
        }

        fn user(&self, name: &str) -> u64 {
            let op = WriteOp::CreateUser {
                username: name.into(),
                password_phc: String::new(),
            };
            match self.write(op).0 {
                Ok(WriteOutcome::UserCreated { user_id }) => user_id,
                other => panic!("{other:?}"),
            }
        }

        fn send(&self, from: u64, to: u64, client_msg_id: u64) -> (Result<WriteOutcome, ErrorCode>, Vec<(u64, u64)>) {
            self.write(WriteOp::Append {
                sender: from,
                sender_device: 1,
                to,
                client_msg_id,
                flags: SendFlags::NONE,
                payload: Bytes::from_static(b"hi"),
            })
        }

        fn seqs(&self, user: u64) -> Vec<u64> {
            let page = self.storage.read_inbox(user, 0, 1_000, usize::MAX).unwrap();
            page.entries.iter().map(|(seq, _)| *seq).collect()
        }
    }

    #[test]
    fn seqs_stay_dense_across_a_refused_send_and_notifications_come_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let h = Harness::open(dir.path());
        let (a, b) = (h.user("a"), h.user("b"));
        let (_, first) = h.send(a, b, 1);
        assert_eq!(first, [(b, 1), (a, 1)], "recipient's copy first, then the sender's");
        assert_eq!(h.send(a, 999_999, 2).0, Err(ErrorCode::NoSuchUser));
        let (ok, committed) = h.send(a, b, 3);
        let Ok(WriteOutcome::Sent(ack)) = ok else {
            panic!("{ok:?}")
        };
        assert_eq!(
            (ack.inbox_seq, committed),
            (2, vec![(b, 2), (a, 2)]),
            "the refusal took no seq"
        );
        assert_eq!(h.seqs(a), [1, 2]);
        assert_eq!(h.seqs(b), [1, 2]);
        h.close();
    }

    #[test]
    fn a_retry_is_deduplicated_even_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let h = Harness::open(dir.path());
        let (a, b) = (h.user("a"), h.user("b"));
        let (Ok(WriteOutcome::Sent(original)), _) = h.send(a, b, 42) else {
            panic!()
        };
        let (retry, committed) = h.send(a, b, 42);
        assert_eq!(retry, Ok(WriteOutcome::Sent(original)));
        assert!(committed.is_empty(), "a duplicate notifies nobody");
        h.close();
        let h = Harness::open(dir.path());
        assert_eq!(h.send(a, b, 42).0, Ok(WriteOutcome::Sent(original)));
        let (Ok(WriteOutcome::Sent(next)), _) = h.send(a, b, 43) else {
            panic!()
        };
        assert_eq!(next.inbox_seq, 2, "the recovered head continues densely");
        assert!(
            next.message_id > original.message_id,
            "message ids keep increasing across restarts"
        );
        assert_eq!(h.seqs(b), [1, 2]);
        h.close();
    }

    #[test]
    fn a_message_to_oneself_has_one_copy() {
        let dir = tempfile::tempdir().unwrap();
        let h = Harness::open(dir.path());
        let a = h.user("a");
        let (Ok(WriteOutcome::Sent(ack)), committed) = h.send(a, a, 1) else {
            panic!()
        };
        assert_eq!((ack.inbox_seq, committed), (1, vec![(a, 1)]));
        assert_eq!(h.seqs(a), [1]);
        h.close();
    }

    #[test]
    fn usernames_are_unique_even_within_one_batch() {
        let dir = tempfile::tempdir().unwrap();
        let h = Harness::open(dir.path());
        for _ in 0..2 {
            let op = WriteOp::CreateUser {
                username: "twin".into(),
                password_phc: String::new(),
            };
            h.writer.submit(WriteRequest { reply: reply(7), op }).unwrap();
        }
        let mut outcomes = Vec::new();
        while outcomes.len() < 2 {
            if let Some(Completion::Written { outcome, .. }) = h.mailboxes[0].pop_completion() {
                outcomes.push(outcome.map(|_| ()));
            }
        }
        outcomes.sort_by_key(|o| o.is_err());
        assert_eq!(outcomes, [Ok(()), Err(ErrorCode::UserExists)]);
        h.close();
    }
}
