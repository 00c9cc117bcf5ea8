//! The helper pool: a few threads for the slow or blocking work core threads must never do
//! (argon2, RocksDB reads). Jobs arrive on one bounded queue; a full queue makes the
//! submitting core answer `Overloaded`. Results return through the submitting core's
//! completion queue.
//!
//! Each job is one function (`Worker::run_job` dispatches); a job answers with a
//! [`HelperOutcome`], or with the [`Refusal`] a write would give: the client's mistake or a
//! storage failure (logged, answered `StorageUnavailable`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use hotline_wire::ErrorCode;

use crate::auth;
use crate::mailbox::{Completion, Mailbox, ReplyTo};
use crate::storage::writer::{LogWriter, WriteOp, WriteRequest};
use crate::storage::{InboxPage, Refusal, Storage, StorageError};

/// Most jobs queued for the pool.
pub(crate) const HELPER_QUEUE_JOBS_MAX: usize = 4_096;
/// How long a helper keeps retrying a full writer queue before answering `Overloaded`.
const WRITER_FULL_RETRY_MS: u64 = 1_000;
/// Fault injection for the fault tests (`tests/tests/faults.rs`): a password login of the
/// username this variable names panics inside its helper. Read once at start; unset in
/// production, where it costs one comparison per password login.
pub(crate) const FAULT_HELPER_PANIC_ENV: &str = "HOTLINE_FAULT_HELPER_PANIC_USERNAME";
/// How long a read waits for the group commits it may have seen to be fsynced (one fsync
/// normally, well under a millisecond to a few); past it the log is failing and the read
/// answers `StorageUnavailable`.
const READ_SYNC_WAIT_MS: u64 = 10_000;

/// A unit of slow work.
#[derive(Debug)]
pub enum HelperJob {
    /// Hash the password, then ask the writer to create the user.
    Register {
        reply: ReplyTo,
        username: String,
        password: String,
    },
    /// Verify the password, then ask the writer for a new device and token.
    PasswordLogin {
        reply: ReplyTo,
        username: String,
        password: String,
        device_name: String,
    },
    /// Resolve a token to its user, device, cursor and inbox head.
    TokenLogin { reply: ReplyTo, token: [u8; 32] },
    /// Read a page of an inbox.
    ReadInbox {
        reply: ReplyTo,
        user_id: u64,
        after_seq: u64,
        limit: usize,
        bytes_max: usize,
        purpose: ReadPurpose,
    },
    /// A page of a group's members, for a member.
    GroupMembers {
        reply: ReplyTo,
        user_id: u64,
        group_id: u64,
        after_user_id: u64,
        limit: usize,
    },
    /// A page of the caller's groups.
    MyGroups {
        reply: ReplyTo,
        user_id: u64,
        after_group_id: u64,
        limit: usize,
    },
    /// A page of the caller's conversations.
    Conversations {
        reply: ReplyTo,
        user_id: u64,
        after: Option<hotline_wire::Conversation>,
        limit: usize,
    },
    /// Which of `targets` share a group or a direct conversation with `user_id`.
    PresenceCheck {
        reply: ReplyTo,
        user_id: u64,
        targets: Vec<u64>,
    },
}

/// Why an inbox read was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadPurpose {
    /// A client's `Sync`: answer with a `SyncPage`.
    Sync,
    /// A device catching up from the log (after login, or after falling behind).
    CatchUp,
}

/// What a helper job produced (its refusal is an `ErrorCode` beside it). `Register` and
/// `PasswordLogin` end in a write: their outcome is the writer's `WriteOutcome`.
#[derive(Debug)]
pub enum HelperOutcome {
    TokenLogin {
        user_id: u64,
        device_id: u64,
        cursor: u64,
        inbox_head: u64,
        token_hash: [u8; 32],
    },
    InboxPage {
        user_id: u64,
        purpose: ReadPurpose,
        page: InboxPage,
        inbox_head: u64,
    },
    GroupMembers(hotline_wire::GroupMemberList),
    /// A page of the caller's groups: (group id, name, role, persistence).
    Groups {
        groups: Vec<(u64, String, hotline_wire::GroupRole, hotline_wire::Persistence)>,
        more: bool,
    },
    Conversations(hotline_wire::ConversationList),
    /// The users among those asked for whose presence the caller may see, each with its
    /// stored last-seen time (µs; 0 if never stored).
    PresenceAllowed {
        targets: Vec<(u64, u64)>,
    },
}

/// The submitting side of the pool.
#[derive(Debug)]
pub struct HelperPool {
    queue: ArrayQueue<HelperJob>,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
    stop: AtomicBool,
    /// Jobs that panicked (each answered `Internal`; the helper went on).
    panics: AtomicU64,
}

impl HelperPool {
    /// Queues a job, or gives it back when the pool is saturated.
    pub fn submit(&self, job: HelperJob) -> Result<(), HelperJob> {
        self.queue.push(job)?;
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _guard = self.lock.lock();
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Jobs queued (a gauge).
    pub fn depth(&self) -> usize {
        self.queue.len()
    }

    /// Jobs that panicked since start (a counter).
    pub fn panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }

    /// Asks every helper to finish its queue and exit.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _guard = self.lock.lock();
        self.wake.notify_all();
    }
}

impl HelperJob {
    /// Where the job's answer goes.
    fn reply(&self) -> ReplyTo {
        match self {
            HelperJob::Register { reply, .. }
            | HelperJob::PasswordLogin { reply, .. }
            | HelperJob::TokenLogin { reply, .. }
            | HelperJob::ReadInbox { reply, .. }
            | HelperJob::GroupMembers { reply, .. }
            | HelperJob::MyGroups { reply, .. }
            | HelperJob::Conversations { reply, .. }
            | HelperJob::PresenceCheck { reply, .. } => *reply,
        }
    }
}

/// Starts `threads` helpers.
pub(crate) fn spawn(
    threads: usize,
    storage: Arc<Storage>,
    writer: Arc<LogWriter>,
    mailboxes: Arc<[Mailbox]>,
) -> std::io::Result<(Arc<HelperPool>, Vec<JoinHandle<()>>)> {
    let pool = Arc::new(HelperPool {
        queue: ArrayQueue::new(HELPER_QUEUE_JOBS_MAX),
        sleepers: AtomicUsize::new(0),
        lock: Mutex::new(()),
        wake: Condvar::new(),
        stop: AtomicBool::new(false),
        panics: AtomicU64::new(0),
    });
    let fault_panic_username = std::env::var(FAULT_HELPER_PANIC_ENV).ok().filter(|u| !u.is_empty());
    let mut handles = Vec::with_capacity(threads);
    for i in 0..threads.max(1) {
        let worker = Worker {
            pool: pool.clone(),
            storage: storage.clone(),
            writer: writer.clone(),
            mailboxes: mailboxes.clone(),
            fault_panic_username: fault_panic_username.clone(),
        };
        handles.push(
            thread::Builder::new()
                .name(format!("hotline-helper-{i}"))
                .spawn(move || worker.run())?,
        );
    }
    Ok((pool, handles))
}

struct Worker {
    pool: Arc<HelperPool>,
    storage: Arc<Storage>,
    writer: Arc<LogWriter>,
    mailboxes: Arc<[Mailbox]>,
    /// [`FAULT_HELPER_PANIC_ENV`]'s username, if set.
    fault_panic_username: Option<String>,
}

impl Worker {
    fn run(&self) {
        loop {
            if let Some(job) = self.pool.queue.pop() {
                // A job that panics (a bug, or a storage library's assertion) answers its
                // requester `Internal` and costs nothing else: the helper, the pool and the
                // other requests go on. Helpers keep no state across jobs, so nothing is
                // left half-changed.
                let reply = job.reply();
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run_job(job)));
                if let Err(panic) = ran {
                    self.pool.panics.fetch_add(1, Ordering::Relaxed);
                    let why = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    tracing::error!(
                        "a helper job panicked ({why}); its request is answered Internal, the helper goes on"
                    );
                    self.reply(reply, Err(ErrorCode::Internal));
                }
                continue;
            }
            if self.pool.stop.load(Ordering::SeqCst) {
                return;
            }
            self.pool.sleepers.fetch_add(1, Ordering::SeqCst);
            if self.pool.queue.is_empty() {
                if let Ok(guard) = self.pool.lock.lock() {
                    let _ = self.pool.wake.wait_timeout(guard, Duration::from_millis(100));
                }
            }
            self.pool.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn reply(&self, reply: ReplyTo, outcome: Result<HelperOutcome, ErrorCode>) {
        self.mailboxes[reply.core].push_completion(Completion::Helped { reply, outcome });
    }

    /// Hands a write to the writer on the requester's behalf; its outcome goes straight
    /// back to the requesting core.
    fn write(&self, reply: ReplyTo, op: WriteOp) {
        let mut request = WriteRequest { reply: Some(reply), op };
        let deadline = Instant::now() + Duration::from_millis(WRITER_FULL_RETRY_MS);
        loop {
            match self.writer.submit(request) {
                Ok(()) => return,
                Err(back) if Instant::now() < deadline => {
                    request = back;
                    thread::sleep(Duration::from_millis(1));
                }
                Err(_) => {
                    self.mailboxes[reply.core].push_completion(Completion::Written {
                        reply,
                        outcome: Err(ErrorCode::Overloaded),
                    });
                    return;
                }
            }
        }
    }

    /// Runs one job and answers it: reads reply here, a job that ends in a write hands
    /// its reply to the writer.
    fn run_job(&self, job: HelperJob) {
        // Each read with what its log line calls it, should storage fail.
        let (reply, what, outcome) = match job {
            HelperJob::Register {
                reply,
                username,
                password,
            } => return self.register(reply, username, &password),
            HelperJob::PasswordLogin {
                reply,
                username,
                password,
                device_name,
            } => return self.password_login(reply, &username, &password, device_name),
            HelperJob::TokenLogin { reply, token } => (reply, "token lookup", self.token_login(&token)),
            HelperJob::ReadInbox {
                reply,
                user_id,
                after_seq,
                limit,
                bytes_max,
                purpose,
            } => (
                reply,
                "inbox read",
                self.read_inbox(user_id, after_seq, limit, bytes_max, purpose),
            ),
            HelperJob::GroupMembers {
                reply,
                user_id,
                group_id,
                after_user_id,
                limit,
            } => (
                reply,
                "group member read",
                self.group_members(user_id, group_id, after_user_id, limit),
            ),
            HelperJob::MyGroups {
                reply,
                user_id,
                after_group_id,
                limit,
            } => (reply, "group list read", self.my_groups(user_id, after_group_id, limit)),
            HelperJob::Conversations {
                reply,
                user_id,
                after,
                limit,
            } => (
                reply,
                "conversation list read",
                self.conversations(user_id, after, limit),
            ),
            HelperJob::PresenceCheck {
                reply,
                user_id,
                targets,
            } => (reply, "presence check", self.presence_check(user_id, &targets)),
        };
        self.reply(reply, outcome.map_err(|refusal| refusal.into_code(what)));
    }

    /// Hashes the password (argon2), then asks the writer to create the user.
    fn register(&self, reply: ReplyTo, username: String, password: &str) {
        match auth::hash_password(password) {
            Ok(password_phc) => self.write(reply, WriteOp::CreateUser { username, password_phc }),
            Err(e) => {
                tracing::warn!("argon2 hashing failed: {e}");
                self.reply(reply, Err(ErrorCode::Internal));
            }
        }
    }

    /// Verifies the password, then asks the writer for a new device and token. An unknown
    /// user costs the same argon2 verification as a wrong password.
    fn password_login(&self, reply: ReplyTo, username: &str, password: &str, device_name: String) {
        if self.fault_panic_username.as_deref() == Some(username) {
            panic!("injected fault ({FAULT_HELPER_PANIC_ENV}): a login of {username}");
        }
        let lookup = self.storage.user_by_name(username).and_then(|user| match user {
            Some(user_id) => Ok((Some(user_id), self.storage.credential(user_id)?)),
            None => Ok((None, None)),
        });
        let (user_id, phc) = match lookup {
            Ok(found) => found,
            Err(e) => return self.reply(reply, Err(Refusal::Storage(e).into_code("login lookup"))),
        };
        if !auth::verify_password(password, phc.as_deref()) {
            return self.reply(reply, Err(ErrorCode::InvalidCredentials));
        }
        let Some(user_id) = user_id else {
            return self.reply(reply, Err(ErrorCode::InvalidCredentials));
        };
        match auth::new_token() {
            Ok(token) => self.write(
                reply,
                WriteOp::CreateDevice {
                    user_id,
                    device_name,
                    token,
                },
            ),
            Err(e) => {
                tracing::error!("the OS random source failed: {e}");
                self.reply(reply, Err(ErrorCode::Internal));
            }
        }
    }

    /// Resolves a token to its user, device, cursor and inbox head.
    fn token_login(&self, token: &[u8; 32]) -> Result<HelperOutcome, Refusal> {
        let token_hash = auth::token_hash(token);
        let record = self
            .storage
            .token(&token_hash)?
            .ok_or(Refusal::Client(ErrorCode::InvalidCredentials))?;
        let outcome = HelperOutcome::TokenLogin {
            user_id: record.user_id,
            device_id: record.device_id,
            cursor: self.storage.cursor(record.user_id, record.device_id)?,
            inbox_head: self.storage.inbox_head(record.user_id)?,
            token_hash,
        };
        self.durable_reads()?;
        Ok(outcome)
    }

    /// Waits until whatever the reads before it saw is durable: under early delivery they
    /// may have seen a group commit not yet fsynced, and what a helper answers (an inbox
    /// head, a page of history) must never vanish.
    fn durable_reads(&self) -> Result<(), Refusal> {
        if self
            .writer
            .watermark
            .wait_synced(Duration::from_millis(READ_SYNC_WAIT_MS))
        {
            Ok(())
        } else {
            Err(Refusal::Client(ErrorCode::StorageUnavailable))
        }
    }

    /// A page of `user_id`'s inbox after `after_seq`, with the inbox head.
    fn read_inbox(
        &self,
        user_id: u64,
        after_seq: u64,
        limit: usize,
        bytes_max: usize,
        purpose: ReadPurpose,
    ) -> Result<HelperOutcome, Refusal> {
        let page = self.storage.read_inbox(user_id, after_seq, limit, bytes_max)?;
        let inbox_head = self.storage.inbox_head(user_id)?;
        self.durable_reads()?;
        Ok(HelperOutcome::InboxPage {
            user_id,
            purpose,
            page,
            inbox_head,
        })
    }

    /// A page of a group's members, for a member only.
    fn group_members(
        &self,
        user_id: u64,
        group_id: u64,
        after_user_id: u64,
        limit: usize,
    ) -> Result<HelperOutcome, Refusal> {
        if self.storage.group(group_id)?.is_none() {
            return Err(Refusal::Client(ErrorCode::NoSuchGroup));
        }
        if self.storage.member_role(group_id, user_id)?.is_none() {
            return Err(Refusal::Client(ErrorCode::Forbidden));
        }
        let (members, more) = self.storage.group_members(group_id, after_user_id, limit)?;
        let members = members
            .into_iter()
            .map(|(user_id, role)| hotline_wire::GroupMember { user_id, role })
            .collect();
        Ok(HelperOutcome::GroupMembers(hotline_wire::GroupMemberList {
            group_id,
            members,
            more,
        }))
    }

    /// A page of the caller's groups, each with its name and persistence.
    fn my_groups(&self, user_id: u64, after_group_id: u64, limit: usize) -> Result<HelperOutcome, Refusal> {
        let (page, more) = self.storage.user_groups(user_id, after_group_id, limit)?;
        let mut groups = Vec::with_capacity(page.len());
        for (group_id, role) in page {
            if let Some(g) = self.storage.group(group_id)? {
                groups.push((group_id, g.name, role, g.persistence));
            }
        }
        Ok(HelperOutcome::Groups { groups, more })
    }

    /// A page of the caller's conversations.
    fn conversations(
        &self,
        user_id: u64,
        after: Option<hotline_wire::Conversation>,
        limit: usize,
    ) -> Result<HelperOutcome, Refusal> {
        let (conversations, more) = self.storage.conv_states(user_id, after, limit)?;
        Ok(HelperOutcome::Conversations(hotline_wire::ConversationList {
            conversations,
            more,
        }))
    }

    /// Which of `targets` the caller may watch, with their last-seen times.
    fn presence_check(&self, user_id: u64, targets: &[u64]) -> Result<HelperOutcome, Refusal> {
        let targets = self.presence_allowed(user_id, targets)?;
        Ok(HelperOutcome::PresenceAllowed { targets })
    }

    /// The targets `user_id` may watch: those it has a direct conversation with, or shares
    /// a group with. One point read and one membership range read per target, each bounded.
    fn presence_allowed(&self, user_id: u64, targets: &[u64]) -> Result<Vec<(u64, u64)>, StorageError> {
        let (groups, _) = self.storage.user_groups(user_id, 0, PRESENCE_GROUPS_CHECKED_MAX)?;
        let groups: std::collections::HashSet<u64> = groups.into_iter().map(|(g, _)| g).collect();
        // Conversations begun since the user's `convs` mark are only in its inbox.
        let begun = self.storage.conv_changes(user_id)?;
        let mut allowed = Vec::new();
        for &target in targets {
            if target == user_id {
                continue;
            }
            let direct = hotline_wire::Conversation::Direct(target);
            let contact = begun.contains_key(&direct) || self.storage.stored_conv_state(user_id, direct)?.is_some();
            let shared = contact || {
                let (theirs, _) = self.storage.user_groups(target, 0, PRESENCE_GROUPS_CHECKED_MAX)?;
                theirs.iter().any(|(g, _)| groups.contains(g))
            };
            if shared {
                allowed.push((target, self.storage.last_seen(target)?));
            }
        }
        Ok(allowed)
    }
}

/// Most of the caller's groups a presence check looks through.
const PRESENCE_GROUPS_CHECKED_MAX: usize = 1_024;
