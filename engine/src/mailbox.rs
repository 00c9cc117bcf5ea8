//! How threads talk to a core: two bounded lock-free queues and one wake-up. What a
//! request asks and what it produced live beside the request's owner
//! ([`crate::storage::writer::WriteOp`] / `WriteOutcome`, [`crate::helper::HelperJob`] /
//! `HelperOutcome`); this module holds the queues, the envelopes they carry, and the
//! addressing ([`ReplyTo`]) that brings an outcome back to its connection.
//!
//! - `routed` carries work from other cores (an authenticated connection handed to its
//!   user's home core). It sheds: a full queue refuses the push and the sender answers the
//!   client `Overloaded`.
//! - `completions` carries results from the log writer and the helper pool. It never
//!   sheds, since a completion is something already durable or already paid for; a full
//!   queue makes the producer wait (counted in `completion_waits`), which is backpressure
//!   on the writer rather than memory growth.
//!
//! Wake-up: the core parks its mailbox task behind `parked`; a producer that finds it set
//! wakes the task through an [`AtomicWaker`], which monoio turns into an eventfd write to
//! that runtime. A busy core is never woken, so a burst costs one wake, not one per item.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use atomic_waker::AtomicWaker;
use crossbeam_queue::ArrayQueue;
use hotline_transport::Layer;
use hotline_wire::{ErrorCode, ReadPosition, Receipt, TypingNotice};

use crate::helper::HelperOutcome;
use crate::storage::record::StoredMessage;
use crate::storage::writer::WriteOutcome;

/// Most routed (core-to-core) items queued for one core.
pub const ROUTED_QUEUE_ITEMS_MAX: usize = 4_096;
/// Most completions queued for one core before producers wait.
pub const COMPLETION_QUEUE_ITEMS_MAX: usize = 65_536;

/// A connection on some core: its slab index and the generation that index had when the
/// request was made, so a reply never reaches a later connection reusing the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnRef {
    pub index: u32,
    pub generation: u32,
}

/// Who waits for a request's outcome, which says what answering it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requester {
    /// A client's request (a read, a login, a logout, an admin command): its outcome is
    /// answered to it.
    Client,
    /// A client's write (a `Send` or a conversation request) counted in its device's
    /// `sends_in_flight`: its outcome, success or failure, is answered and frees the slot.
    ClientCounted,
    /// The engine's own request (a cursor write, a catch-up read), not a client's: its
    /// outcome is never echoed to the client.
    Engine,
}

/// Where the result of a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyTo {
    pub core: usize,
    pub conn: ConnRef,
    /// The client's request id (`REQUEST_ID_NONE` for the engine's own requests).
    pub request_id: u64,
    pub requester: Requester,
}

impl ReplyTo {
    /// The engine's own request, not a client's: nothing is echoed to the client.
    pub fn is_internal(&self) -> bool {
        self.requester == Requester::Engine
    }
}

/// A live notification for users homed on one core (never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A receipt for `user`, the sender of the message.
    Receipt { user: u64, receipt: Receipt },
    /// `user`'s read position moved: tell its devices, except the connection that asked
    /// (it gets the reply).
    ReadPosition {
        user: u64,
        position: ReadPosition,
        except: Option<ConnRef>,
    },
    /// Someone is typing: tell each of `users` (all homed on the receiving core).
    Typing { users: Vec<u64>, notice: TypingNotice },
    /// A user's presence for its subscribers homed on the receiving core.
    Presence {
        subscribers: Vec<u64>,
        presence: hotline_wire::Presence,
    },
    /// `subscriber` (homed elsewhere) wants `targets`' presence (all homed on the receiving
    /// core), each with its stored last-seen time: remember it and answer with their state.
    Subscribe { subscriber: u64, targets: Vec<(u64, u64)> },
    /// `subscriber` went offline: forget its subscriptions to `targets`.
    Unsubscribe { subscriber: u64, targets: Vec<u64> },
    /// `device`'s token was revoked (logout, or an operator revoking, disabling or removing
    /// the user): close its live connections, so a revoked device stops at once.
    DeviceRevoked { user: u64, device: u64 },
}

/// A result delivered to a core.
#[derive(Debug)]
pub enum Completion {
    /// A message was appended to `user_id`'s inbox at `seq`; sent to the user's home core,
    /// in seq order. `origin` names the sending connection for the sender's own copy.
    /// `commit`: the group commit that wrote it, durable once the writer's watermark has
    /// synced it (early delivery); 0 when it was durable before it was pushed.
    Committed {
        user_id: u64,
        seq: u64,
        message: Arc<StoredMessage>,
        origin: Option<ReplyTo>,
        commit: u64,
    },
    /// A message reached the inboxes of several users homed on this core, each at its seq
    /// (one completion per core per group message, not one per member); seq 0 means an
    /// ephemeral message, pushed and never stored. `origin` names the sending connection
    /// if it is on this core.
    Fanout {
        message: Arc<StoredMessage>,
        entries: Vec<(u64, u64)>,
        origin: Option<ReplyTo>,
        /// As for `Committed`.
        commit: u64,
    },
    /// Live notifications (receipts, read positions, typing) from one group commit.
    Notices(Vec<Notice>),
    /// The outcome of a write request.
    Written {
        reply: ReplyTo,
        outcome: Result<WriteOutcome, ErrorCode>,
    },
    /// The outcome of a helper job.
    Helped {
        reply: ReplyTo,
        outcome: Result<HelperOutcome, ErrorCode>,
    },
}

/// An authenticated connection handed to its user's home core.
#[derive(Debug)]
pub struct Adopt {
    /// A duplicate of the accepting core's socket (the original closes there); `None`
    /// while the login is still on the core that accepted it.
    pub fd: Option<OwnedFd>,
    pub request_id: u64,
    pub user_id: u64,
    pub device_id: u64,
    /// The token to return in `LoginOk` (only its hash is stored).
    pub token: [u8; 32],
    pub token_hash: [u8; 32],
    pub cursor: u64,
    pub inbox_head: u64,
    /// Bytes read after the `Login` frame, not yet processed.
    pub inbound: Vec<u8>,
    /// Frames queued before the handoff and not yet written.
    pub outbound: Vec<u8>,
    /// The connection's TLS/WebSocket state (`None` on plain TCP): it moves with the
    /// descriptor, so the home core carries on the same TLS session and WebSocket.
    pub layer: Option<Box<Layer>>,
    /// The connection's place in its IP's connection count; moves with the descriptor.
    pub ip_slot: Option<crate::abuse::IpSlot>,
}

/// Who logged in, as the login's outcome tells it.
#[derive(Debug, Clone, Copy)]
pub struct LoginResult {
    pub request_id: u64,
    pub user_id: u64,
    pub device_id: u64,
    pub token: [u8; 32],
    pub token_hash: [u8; 32],
    pub cursor: u64,
    pub inbox_head: u64,
}

impl Adopt {
    /// A login finished on the accepting core, before any socket handoff.
    pub fn local(login: LoginResult) -> Adopt {
        Adopt {
            fd: None,
            request_id: login.request_id,
            user_id: login.user_id,
            device_id: login.device_id,
            token: login.token,
            token_hash: login.token_hash,
            cursor: login.cursor,
            inbox_head: login.inbox_head,
            inbound: Vec::new(),
            outbound: Vec::new(),
            layer: None,
            ip_slot: None,
        }
    }
}

/// Work from another core.
#[derive(Debug)]
pub enum Routed {
    Adopt(Box<Adopt>),
    /// Presence notices, batched per destination core.
    Notices(Vec<Notice>),
}

/// One core's inbound queues. Shared by every thread (`Arc<[Mailbox]>`).
#[derive(Debug)]
pub struct Mailbox {
    routed: ArrayQueue<Routed>,
    /// Each completion with when it was queued (the core's admission gate measures how long
    /// they wait: [`Mailbox::pop_completion_queued`]).
    completions: ArrayQueue<(Instant, Completion)>,
    parked: AtomicBool,
    waker: AtomicWaker,
    /// Set once the core's runtime has exited: completions for it are dropped.
    closed: AtomicBool,
    /// Times a completion producer found the queue full and waited.
    pub completion_waits: AtomicU64,
    /// Routed items refused because the queue was full.
    pub routed_shed: AtomicU64,
}

impl Default for Mailbox {
    fn default() -> Self {
        Self {
            routed: ArrayQueue::new(ROUTED_QUEUE_ITEMS_MAX),
            completions: ArrayQueue::new(COMPLETION_QUEUE_ITEMS_MAX),
            parked: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            closed: AtomicBool::new(false),
            completion_waits: AtomicU64::new(0),
            routed_shed: AtomicU64::new(0),
        }
    }
}

impl Mailbox {
    /// Queues work from another core, or gives it back if the queue is full.
    pub fn push_routed(&self, item: Routed) -> Result<(), Routed> {
        match self.routed.push(item) {
            Ok(()) => {
                self.wake();
                Ok(())
            }
            Err(item) => {
                self.routed_shed.fetch_add(1, Ordering::Relaxed);
                Err(item)
            }
        }
    }

    /// Queues a completion, waiting while the queue is full (see the module docs).
    pub fn push_completion(&self, item: Completion) {
        let mut item = (Instant::now(), item);
        loop {
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            match self.completions.push(item) {
                Ok(()) => break,
                Err(back) => {
                    item = back;
                    self.completion_waits.fetch_add(1, Ordering::Relaxed);
                    self.wake();
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
        }
        self.wake();
    }

    /// Wakes the core if it is parked.
    pub fn wake(&self) {
        if self.parked.swap(false, Ordering::SeqCst) {
            self.waker.wake();
        }
    }

    /// Takes the next routed item.
    pub fn pop_routed(&self) -> Option<Routed> {
        self.routed.pop()
    }

    /// Takes the next completion.
    pub fn pop_completion(&self) -> Option<Completion> {
        self.completions.pop().map(|(_, c)| c)
    }

    /// Takes the next completion, with when it was queued.
    pub fn pop_completion_queued(&self) -> Option<(Instant, Completion)> {
        self.completions.pop()
    }

    /// Completions queued (racy by nature: a bound, not an exact count).
    pub fn completions_len(&self) -> usize {
        self.completions.len()
    }

    /// Items queued in both queues (a gauge; racy by nature).
    pub fn depth(&self) -> usize {
        self.routed.len() + self.completions.len()
    }

    /// Marks the core gone: later completions are dropped instead of waited on.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Resolves once something is queued (or someone calls [`Mailbox::wake`]).
    /// Only the owning core awaits this.
    pub async fn wait(&self) {
        std::future::poll_fn(|cx| {
            self.waker.register(cx.waker());
            self.parked.store(true, Ordering::SeqCst);
            if !self.routed.is_empty() || !self.completions.is_empty() {
                self.parked.store(false, Ordering::SeqCst);
                return Poll::Ready(());
            }
            // A wake() between the store above and now swapped `parked` back to false.
            if !self.parked.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            Poll::Pending
        })
        .await
    }
}

/// The home core of a user: a stable hash of the id, so every core, the writer and every
/// restart with the same core count agree without coordination.
pub fn home_core(user_id: u64, cores: usize) -> usize {
    // Fibonacci hashing spreads sequential ids evenly.
    let h = user_id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((h >> 32) % cores as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_cores_are_stable_and_spread() {
        let mut counts = [0usize; 4];
        for user in 1..=10_000u64 {
            let core = home_core(user, 4);
            assert_eq!(core, home_core(user, 4));
            counts[core] += 1;
        }
        for c in counts {
            assert!((2_000..3_000).contains(&c), "{counts:?}");
        }
        assert_eq!(home_core(12345, 1), 0);
    }

    fn adopt() -> Routed {
        Routed::Adopt(Box::new(Adopt {
            fd: None,
            request_id: 1,
            user_id: 1,
            device_id: 1,
            token: [0; 32],
            token_hash: [0; 32],
            cursor: 0,
            inbox_head: 0,
            inbound: Vec::new(),
            outbound: Vec::new(),
            layer: None,
            ip_slot: None,
        }))
    }

    #[test]
    fn a_full_routed_queue_sheds_and_counts() {
        let m = Mailbox::default();
        for _ in 0..ROUTED_QUEUE_ITEMS_MAX {
            m.push_routed(adopt()).unwrap();
        }
        assert!(m.push_routed(adopt()).is_err());
        assert_eq!(m.routed_shed.load(Ordering::Relaxed), 1);
        assert_eq!(m.depth(), ROUTED_QUEUE_ITEMS_MAX);
    }

    #[test]
    fn a_closed_mailbox_drops_completions_instead_of_waiting() {
        // A regression would make `push_completion` wait forever for room: the pushes run
        // on their own thread, and the test fails (instead of hanging) past a deadline.
        let m = Arc::new(Mailbox::default());
        m.close();
        let (done, finished) = std::sync::mpsc::channel();
        let producer = Arc::clone(&m);
        std::thread::spawn(move || {
            for _ in 0..COMPLETION_QUEUE_ITEMS_MAX + 10 {
                producer.push_completion(Completion::Written {
                    reply: ReplyTo {
                        core: 0,
                        conn: ConnRef {
                            index: 0,
                            generation: 0,
                        },
                        request_id: 0,
                        requester: Requester::Engine,
                    },
                    outcome: Err(ErrorCode::Internal),
                });
            }
            let _ = done.send(());
        });
        let deadline = Duration::from_secs(30);
        assert!(
            finished.recv_timeout(deadline).is_ok(),
            "pushing to a closed mailbox still waited after {deadline:?}"
        );
        assert_eq!(m.depth(), 0);
    }
}
