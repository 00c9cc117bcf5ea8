//! The helper pool: a few threads for the slow or blocking work core threads must never do
//! (argon2, RocksDB reads). Jobs arrive on one bounded queue; a full queue makes the
//! submitting core answer `Overloaded`. Results return through the submitting core's
//! completion queue.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use hotline_wire::ErrorCode;

use crate::auth;
use crate::mailbox::{Completion, HelperOutcome, Mailbox, ReadPurpose, ReplyTo};
use crate::storage::writer::{LogWriter, WriteOp, WriteRequest};
use crate::storage::Storage;

/// Most jobs queued for the pool.
pub const HELPER_QUEUE_JOBS_MAX: usize = 4_096;
/// How long a helper keeps retrying a full writer queue before answering `Overloaded`.
const WRITER_FULL_RETRY_MS: u64 = 1_000;

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

/// The submitting side of the pool.
#[derive(Debug)]
pub struct HelperPool {
    queue: ArrayQueue<HelperJob>,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
    stop: AtomicBool,
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

    /// Asks every helper to finish its queue and exit.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _guard = self.lock.lock();
        self.wake.notify_all();
    }
}

/// Starts `threads` helpers.
pub fn spawn(
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
    });
    let mut handles = Vec::with_capacity(threads);
    for i in 0..threads.max(1) {
        let worker = Worker {
            pool: pool.clone(),
            storage: storage.clone(),
            writer: writer.clone(),
            mailboxes: mailboxes.clone(),
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
}

impl Worker {
    fn run(&self) {
        loop {
            if let Some(job) = self.pool.queue.pop() {
                self.run_job(job);
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

    fn run_job(&self, job: HelperJob) {
        match job {
            HelperJob::Register {
                reply,
                username,
                password,
            } => match auth::hash_password(&password) {
                Ok(password_phc) => self.write(reply, WriteOp::CreateUser { username, password_phc }),
                Err(e) => {
                    tracing::warn!("argon2 hashing failed: {e}");
                    self.reply(reply, Err(ErrorCode::Internal));
                }
            },
            HelperJob::PasswordLogin {
                reply,
                username,
                password,
                device_name,
            } => {
                let user = self.storage.user_by_name(&username);
                let phc = match &user {
                    Ok(Some(user_id)) => self.storage.credential(*user_id),
                    Ok(None) => Ok(None),
                    Err(_) => Ok(None),
                };
                let (user_id, phc) = match (user, phc) {
                    (Ok(user), Ok(phc)) => (user, phc),
                    (Err(e), _) | (_, Err(e)) => {
                        tracing::warn!("login lookup failed: {e}");
                        return self.reply(reply, Err(ErrorCode::StorageUnavailable));
                    }
                };
                if !auth::verify_password(&password, phc.as_deref()) {
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
            HelperJob::TokenLogin { reply, token } => {
                let token_hash = auth::token_hash(&token);
                let outcome = (|| {
                    let Some(record) = self.storage.token(&token_hash)? else {
                        return Ok(Err(ErrorCode::InvalidCredentials));
                    };
                    let cursor = self.storage.cursor(record.user_id, record.device_id)?;
                    let inbox_head = self.storage.inbox_head(record.user_id)?;
                    Ok::<_, crate::storage::StorageError>(Ok(HelperOutcome::TokenLogin {
                        user_id: record.user_id,
                        device_id: record.device_id,
                        cursor,
                        inbox_head,
                        token_hash,
                    }))
                })();
                self.reply(
                    reply,
                    outcome.unwrap_or_else(|e| {
                        tracing::warn!("token lookup failed: {e}");
                        Err(ErrorCode::StorageUnavailable)
                    }),
                );
            }
            HelperJob::ReadInbox {
                reply,
                user_id,
                after_seq,
                limit,
                bytes_max,
                purpose,
            } => {
                let outcome = self
                    .storage
                    .read_inbox(user_id, after_seq, limit, bytes_max)
                    .and_then(|page| {
                        let inbox_head = self.storage.inbox_head(user_id)?;
                        Ok(HelperOutcome::InboxPage {
                            user_id,
                            purpose,
                            page,
                            inbox_head,
                        })
                    });
                self.reply(
                    reply,
                    outcome.map_err(|e| {
                        tracing::warn!("inbox read failed: {e}");
                        ErrorCode::StorageUnavailable
                    }),
                );
            }
            HelperJob::GroupMembers {
                reply,
                user_id,
                group_id,
                after_user_id,
                limit,
            } => {
                let outcome: ReadResult = (|| {
                    if self.storage.group(group_id)?.is_none() {
                        return Ok(Err(ErrorCode::NoSuchGroup));
                    }
                    if self.storage.member_role(group_id, user_id)?.is_none() {
                        return Ok(Err(ErrorCode::Forbidden));
                    }
                    let (members, more) = self.storage.group_members(group_id, after_user_id, limit)?;
                    let members = members
                        .into_iter()
                        .map(|(user_id, role)| hotline_wire::GroupMember { user_id, role })
                        .collect();
                    Ok(Ok(HelperOutcome::GroupMembers(hotline_wire::GroupMemberList {
                        group_id,
                        members,
                        more,
                    })))
                })();
                self.reply(reply, flatten(outcome, "group member read"));
            }
            HelperJob::MyGroups {
                reply,
                user_id,
                after_group_id,
                limit,
            } => {
                let outcome: ReadResult = (|| {
                    let (page, more) = self.storage.user_groups(user_id, after_group_id, limit)?;
                    let mut groups = Vec::with_capacity(page.len());
                    for (group_id, role) in page {
                        if let Some(g) = self.storage.group(group_id)? {
                            groups.push((group_id, g.name, role, g.persistence));
                        }
                    }
                    Ok(Ok(HelperOutcome::Groups { groups, more }))
                })();
                self.reply(reply, flatten(outcome, "group list read"));
            }
            HelperJob::Conversations {
                reply,
                user_id,
                after,
                limit,
            } => {
                let outcome = self
                    .storage
                    .conv_states(user_id, after, limit)
                    .map(|(conversations, more)| {
                        Ok(HelperOutcome::Conversations(hotline_wire::ConversationList {
                            conversations,
                            more,
                        }))
                    });
                self.reply(reply, flatten(outcome, "conversation list read"));
            }
            HelperJob::PresenceCheck {
                reply,
                user_id,
                targets,
            } => {
                let outcome = self
                    .presence_allowed(user_id, &targets)
                    .map(|targets| Ok(HelperOutcome::PresenceAllowed { targets }));
                self.reply(reply, flatten(outcome, "presence check"));
            }
        }
    }

    /// The targets `user_id` may watch: those it has a direct conversation with, or shares
    /// a group with. One point read and one membership range read per target, each bounded.
    fn presence_allowed(&self, user_id: u64, targets: &[u64]) -> Result<Vec<(u64, u64)>, crate::storage::StorageError> {
        let (groups, _) = self.storage.user_groups(user_id, 0, PRESENCE_GROUPS_CHECKED_MAX)?;
        let groups: std::collections::HashSet<u64> = groups.into_iter().map(|(g, _)| g).collect();
        let mut allowed = Vec::new();
        for &target in targets {
            if target == user_id {
                continue;
            }
            let contact = self
                .storage
                .conv_state(user_id, hotline_wire::Conversation::Direct(target))?
                .is_some();
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

/// A read's outcome: a storage failure, or the reply (which may be a refusal).
type ReadResult = Result<Result<HelperOutcome, ErrorCode>, crate::storage::StorageError>;

/// A read's outcome as a helper reply, logging a storage failure.
fn flatten(outcome: ReadResult, what: &str) -> Result<HelperOutcome, ErrorCode> {
    outcome.unwrap_or_else(|e| {
        tracing::warn!("{what} failed: {e}");
        Err(ErrorCode::StorageUnavailable)
    })
}
