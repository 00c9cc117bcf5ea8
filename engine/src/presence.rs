//! Presence: whether a user has any device online, when it was last seen, and who watches.
//!
//! Ownership: a user's presence lives on its home core (where all its devices are), in that
//! core's [`PresenceBook`], together with the list of users subscribed to it. A subscriber
//! lives on its own home core, which keeps the list of users it watches (to unsubscribe
//! when its last device leaves). Cores tell each other through [`Notice`]s batched per
//! destination core in one bounded routed-queue entry per unit of work; a full queue drops
//! the batch and counts it (`presence_shed`): presence is live state, never stored.
//!
//! Last seen: when a user's last device leaves, the time is also stored (the `last_seen`
//! family, through the log writer, best effort), so a subscription made after a restart
//! still learns it.
//!
//! Coalescing: a user's state is published at most once per [`PRESENCE_COALESCE_MS`]; a
//! change inside the window is marked pending and the sweeper publishes the state as it is
//! when the window ends, and only if it differs from what subscribers last heard. A client
//! that flaps (connects and disconnects in a loop) therefore costs its subscribers at most
//! one event per window, whatever its rate.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use hotline_wire::{Message, Presence};

use crate::core::Core;
use crate::limits::PRESENCE_SUBSCRIBE_USERS_MAX;
use crate::mailbox::{home_core, Notice, Routed};
use crate::storage::writer::{WriteOp, WriteRequest};

/// Shortest time between two presence publications of one user.
pub(crate) const PRESENCE_COALESCE_MS: u64 = 1_000;
/// Most subscribers one user's presence keeps; later subscriptions are refused (counted).
pub(crate) const PRESENCE_SUBSCRIBERS_PER_USER_MAX: usize = 10_000;
/// Most users one user may watch at once.
pub(crate) const PRESENCE_TARGETS_PER_USER_MAX: usize = 1_024;
/// Most presence entries a core keeps; past it, offline users nobody watches are forgotten.
pub(crate) const PRESENCE_ENTRIES_MAX: usize = 1 << 20;

/// One `PresenceSubscribe` never names more users than one user may watch.
const _: () = assert!(PRESENCE_SUBSCRIBE_USERS_MAX <= PRESENCE_TARGETS_PER_USER_MAX);

/// One user's presence as its home core knows it.
#[derive(Debug, Default)]
struct Entry {
    online: bool,
    /// When the last device went offline (µs since the epoch; 0: not since start).
    last_seen_us: u64,
    /// The state subscribers last heard (`None`: nothing published yet).
    published: Option<bool>,
    /// When it was last published (core ms; meaningless while `published` is `None`).
    /// Not an `Option`: one entry per online user, so its size counts per connection.
    published_ms: u64,
    pending: bool,
    subscribers: Vec<u64>,
}

/// A core's presence state and its outgoing presence notices.
#[derive(Debug)]
pub(crate) struct PresenceBook {
    entries: HashMap<u64, Entry>,
    /// Users with a coalesced change waiting for its window to end.
    pending: Vec<u64>,
    /// Notices per destination core, handed over at the end of the unit of work.
    outgoing: Vec<Vec<Notice>>,
}

impl PresenceBook {
    pub(crate) fn new(cores: usize) -> Self {
        PresenceBook {
            entries: HashMap::new(),
            pending: Vec::new(),
            outgoing: (0..cores).map(|_| Vec::new()).collect(),
        }
    }

    /// Forgets `subscriber`'s subscriptions to `targets`.
    pub(crate) fn unsubscribe(&mut self, subscriber: u64, targets: &[u64]) {
        for t in targets {
            if let Some(e) = self.entries.get_mut(t) {
                e.subscribers.retain(|&s| s != subscriber);
            }
        }
    }

    fn presence(&self, user: u64) -> Presence {
        let e = self.entries.get(&user);
        Presence {
            user_id: user,
            online: e.is_some_and(|e| e.online),
            last_seen_us: e.map_or(0, |e| e.last_seen_us),
        }
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl Core {
    fn route(&mut self, core: usize, notice: Notice) {
        self.presence.outgoing[core].push(notice);
    }

    /// The first device of `user` came online on this (its home) core.
    pub(crate) fn user_online(&mut self, user: u64) {
        self.presence.entries.entry(user).or_default().online = true;
        if let Some(events) = &self.shared.online_events {
            if events.push(user).is_err() {
                self.shared.integration.webhooks_failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.publish_presence(user);
    }

    /// The last device of `user` went offline: publish it and drop its subscriptions.
    pub(crate) fn user_offline(&mut self, user: u64, targets: Vec<u64>) {
        let e = self.presence.entries.entry(user).or_default();
        e.online = false;
        e.last_seen_us = now_us();
        let last_seen = WriteRequest {
            reply: None,
            op: WriteOp::LastSeen {
                user,
                at_us: e.last_seen_us,
            },
        };
        if self.submit_write(last_seen).is_err() {
            self.shared.metrics.presence_shed.fetch_add(1, Ordering::Relaxed);
        }
        self.publish_presence(user);
        let cores = self.shared.config.cores;
        let mut per_core: Vec<Vec<u64>> = vec![Vec::new(); cores];
        for t in targets {
            per_core[home_core(t, cores)].push(t);
        }
        for (core, targets) in per_core.into_iter().enumerate() {
            if !targets.is_empty() {
                self.route(
                    core,
                    Notice::Unsubscribe {
                        subscriber: user,
                        targets,
                    },
                );
            }
        }
        if self.presence.entries.len() > PRESENCE_ENTRIES_MAX {
            self.presence
                .entries
                .retain(|_, e| e.online || !e.subscribers.is_empty() || e.pending);
        }
    }

    /// Publishes `user`'s state to its subscribers now, or marks it pending if the last
    /// publication was less than [`PRESENCE_COALESCE_MS`] ago.
    fn publish_presence(&mut self, user: u64) {
        let now = self.now_ms();
        let Some(e) = self.presence.entries.get_mut(&user) else {
            return;
        };
        if e.subscribers.is_empty() || e.published == Some(e.online) {
            e.pending = false;
            return;
        }
        if e.published.is_some() && now.saturating_sub(e.published_ms) < PRESENCE_COALESCE_MS {
            if !e.pending {
                e.pending = true;
                self.presence.pending.push(user);
            }
            return;
        }
        e.pending = false;
        e.published = Some(e.online);
        e.published_ms = now;
        let subscribers = e.subscribers.clone();
        let presence = self.presence.presence(user);
        self.shared.metrics.presence_published.fetch_add(1, Ordering::Relaxed);
        let cores = self.shared.config.cores;
        let mut per_core: Vec<Vec<u64>> = vec![Vec::new(); cores];
        for s in subscribers {
            per_core[home_core(s, cores)].push(s);
        }
        for (core, subscribers) in per_core.into_iter().enumerate() {
            if !subscribers.is_empty() {
                self.route(core, Notice::Presence { subscribers, presence });
            }
        }
    }

    /// Publishes the changes whose coalescing window has ended (from the sweeper).
    pub(crate) fn publish_pending_presence(&mut self) {
        let pending = std::mem::take(&mut self.presence.pending);
        for user in pending {
            if let Some(e) = self.presence.entries.get_mut(&user) {
                e.pending = false;
            }
            self.publish_presence(user);
        }
    }

    /// A subscriber on some core watches `targets` (homed here): remember it, and tell it
    /// their current state.
    pub(crate) fn on_subscribe(&mut self, subscriber: u64, targets: Vec<(u64, u64)>) {
        let home = home_core(subscriber, self.shared.config.cores);
        let mut states = Vec::with_capacity(targets.len());
        for (t, stored_last_seen_us) in targets {
            let online = self.users.contains_key(&t);
            let e = self.presence.entries.entry(t).or_default();
            e.online = online;
            // The stored time covers users not seen since this process started.
            e.last_seen_us = e.last_seen_us.max(stored_last_seen_us);
            if !e.subscribers.contains(&subscriber) {
                if e.subscribers.len() >= PRESENCE_SUBSCRIBERS_PER_USER_MAX {
                    self.shared.metrics.presence_shed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                e.subscribers.push(subscriber);
            }
            states.push(self.presence.presence(t));
        }
        for presence in states {
            self.route(
                home,
                Notice::Presence {
                    subscribers: vec![subscriber],
                    presence,
                },
            );
        }
    }

    /// The helper checked which users the device's user may watch: subscribe to them.
    pub(crate) fn on_presence_allowed(&mut self, idx: usize, request_id: u64, targets: Vec<(u64, u64)>) {
        let Some(user_id) = self.conns[idx].device().map(|d| d.user_id) else {
            return;
        };
        let cores = self.shared.config.cores;
        let mut per_core: Vec<Vec<(u64, u64)>> = vec![Vec::new(); cores];
        if let Some(user) = self.users.get_mut(&user_id) {
            for (t, stored_last_seen_us) in targets {
                if user.presence_targets.contains(&t) {
                    // Already subscribed: ask again for its current state all the same.
                } else if user.presence_targets.len() >= PRESENCE_TARGETS_PER_USER_MAX {
                    continue;
                } else {
                    user.presence_targets.push(t);
                }
                per_core[home_core(t, cores)].push((t, stored_last_seen_us));
            }
        }
        for (core, targets) in per_core.into_iter().enumerate() {
            if !targets.is_empty() {
                self.route(
                    core,
                    Notice::Subscribe {
                        subscriber: user_id,
                        targets,
                    },
                );
            }
        }
        self.push(idx, request_id, &Message::Done);
    }

    /// Hands this unit of work's presence notices over: this core's own at once (a
    /// subscription answered here may produce one more round, hence the bounded loop),
    /// other cores' as one routed entry each.
    pub(crate) fn flush_presence(&mut self) {
        for _ in 0..3 {
            let local = std::mem::take(&mut self.presence.outgoing[self.id]);
            if local.is_empty() {
                break;
            }
            self.on_notices(local);
        }
        let shared = self.shared.clone();
        for core in 0..self.presence.outgoing.len() {
            if core == self.id || self.presence.outgoing[core].is_empty() {
                continue;
            }
            let notices = std::mem::take(&mut self.presence.outgoing[core]);
            if shared.mailboxes[core].push_routed(Routed::Notices(notices)).is_err() {
                shared.metrics.presence_shed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
