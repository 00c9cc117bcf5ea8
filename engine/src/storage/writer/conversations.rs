//! The writer's conversation work: group membership and fan-out, conversation states (read
//! positions, unread counts), persistence levels, receipts, typing, and the scans behind
//! each user's device cursors (delivered receipts, store-until-delivered expiry).
//!
//! Everything here runs on the writer thread, inside one batch: reads go to the caches
//! (and, on a miss, to storage); writes go to the batch and to the batch overlays, which
//! reach the caches only if the batch commits.

use std::collections::BTreeMap;
use std::sync::Arc;

use hotline_wire::{
    Conversation, ErrorCode, GroupRole, MessageKind, Persistence, ReadPosition, Receipt, ReceiptKind, SendFlags,
    TypingNotice,
};
use rocksdb::WriteBatch;

use super::{now_us, Refusal, WriterState, CACHE_ENTRIES_MAX, CONV_STATES_STORES_PER_COMMIT_MAX, SCAN_ENTRIES_MAX};
use crate::mailbox::{home_core, Completion, Notice, ReplyTo};
use crate::storage::keys::{self, pair};
use crate::storage::record::{decode_meta, decode_record, expired_record, StoredMessage, STORE_UNTIL_DELIVERED};
use crate::storage::{
    Cf, ConvState, IdMap, IdSet, MessageOrigin, StorageError, UserScan, CONV_STATES_UNSTORED_MAX, CURSOR_REVOKED,
    USER_SCAN_DEVICE_ID,
};

/// Users whose conversation states one write stores at a clean stop.
const CONV_STATES_STORES_AT_STOP_PER_WRITE: usize = 4_096;

/// A group as the writer knows it: the authority for every membership check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GroupState {
    pub name: String,
    pub persistence: Persistence,
    pub created_us: u64,
    /// Members by user id (ordered, so fan-out order is deterministic).
    pub members: BTreeMap<u64, GroupRole>,
}

impl GroupState {
    fn owners(&self) -> usize {
        self.members.values().filter(|r| **r == GroupRole::OWNER).count()
    }

    fn record(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(9 + self.name.len());
        v.extend_from_slice(&self.created_us.to_le_bytes());
        v.push(self.persistence.0);
        v.extend_from_slice(self.name.as_bytes());
        v
    }
}

/// A receipt to send: to whom, for which message, in the conversation as the sender sees it.
#[derive(Debug, Clone, Copy)]
struct ReceiptDue {
    sender: u64,
    message_id: u64,
    conversation: Conversation,
}

/// One user's device cursors and scan positions, as the writer tracks them.
#[derive(Debug, Clone, Default)]
pub(super) struct ScanState {
    /// Every device with its stored cursor (0: never acked).
    pub cursors: IdMap<u64, u64>,
    pub scan: UserScan,
    /// The scan positions as stored: a restart resumes scanning from these.
    pub stored: UserScan,
    /// No entry after this seq asked for receipts or expires (conservatively the inbox
    /// head when loaded): a cursor moving past it needs no inbox scan at all.
    pub flagged_max: u64,
}

fn forbidden() -> Refusal {
    Refusal::Client(ErrorCode::Forbidden)
}

impl WriterState {
    /// A group, from this batch's changes, the cache or storage.
    fn group(&mut self, group_id: u64) -> Result<Option<Arc<GroupState>>, StorageError> {
        if let Some(g) = self.batch_groups.get(&group_id).or_else(|| self.groups.get(&group_id)) {
            return Ok(Some(g.clone()));
        }
        let Some(record) = self.storage.group(group_id)? else {
            return Ok(None);
        };
        let (members, _) = self.storage.group_members(group_id, 0, usize::MAX)?;
        let g = Arc::new(GroupState {
            name: record.name,
            persistence: record.persistence,
            created_us: record.created_us,
            members: members.into_iter().collect(),
        });
        self.groups.insert(group_id, g.clone());
        Ok(Some(g))
    }

    /// A group to change in this batch (copied into the batch overlay on first change).
    fn group_mut(&mut self, group_id: u64) -> Result<&mut GroupState, Refusal> {
        let g = self.group(group_id)?.ok_or(Refusal::Client(ErrorCode::NoSuchGroup))?;
        let entry = self.batch_groups.entry(group_id).or_insert(g);
        Ok(Arc::make_mut(entry))
    }

    /// Who gets a message and how long it is kept. Direct: the recipient then the sender
    /// (one entry for a message to oneself); group: every member, the sender included.
    pub(super) fn recipients(&mut self, sender: u64, to: u64, group: u64) -> Result<(Vec<u64>, Persistence), Refusal> {
        if group != 0 {
            let g = self.group(group)?.ok_or(Refusal::Client(ErrorCode::NoSuchGroup))?;
            if !g.members.contains_key(&sender) {
                return Err(forbidden());
            }
            return Ok((g.members.keys().copied().collect(), g.persistence));
        }
        if self.counters(to)?.is_none() {
            return Err(Refusal::Client(ErrorCode::NoSuchUser));
        }
        let persistence = self.direct_persistence(sender, to)?;
        let recipients = if to == sender { vec![to] } else { vec![to, sender] };
        Ok((recipients, persistence))
    }

    fn direct_persistence(&mut self, a: u64, b: u64) -> Result<Persistence, StorageError> {
        let key = (a.min(b), a.max(b));
        if let Some(p) = self.batch_settings.get(&key).or_else(|| self.settings.get(&key)) {
            return Ok(*p);
        }
        let p = self.storage.direct_persistence(a, b)?;
        self.settings.insert(key, p);
        Ok(p)
    }

    /// An Edit or Delete must refer to the sender's own message in the same conversation:
    /// the sender's copy of it is looked up in the sender's inbox (a message the sender
    /// only received is `Forbidden`; one it never had, `NoSuchMessage`).
    pub(super) fn check_own_message(
        &mut self,
        sender: u64,
        to: u64,
        group: u64,
        refers_to: u64,
    ) -> Result<(), Refusal> {
        let conversation = if group != 0 {
            Conversation::Group(group)
        } else {
            Conversation::Direct(to)
        };
        let origin = match self.batch_messages.get(&refers_to) {
            Some(o) => *o,
            None => {
                let (seq, record) = self
                    .storage
                    .find_in_inbox(sender, refers_to)?
                    .ok_or(Refusal::Client(ErrorCode::NoSuchMessage))?;
                let d = decode_record(seq, &record).map_err(|e| StorageError::Corrupt(e.to_string()))?;
                let original = d.kind == MessageKind::NORMAL || (d.kind == MessageKind::EXPIRED && d.refers_to == 0);
                if !original {
                    return Err(Refusal::Client(ErrorCode::NoSuchMessage));
                }
                MessageOrigin {
                    sender: d.sender,
                    conversation: d.conversation,
                }
            }
        };
        if origin.sender != sender {
            return Err(forbidden());
        }
        if origin.conversation != conversation {
            return Err(Refusal::Client(ErrorCode::NoSuchMessage));
        }
        Ok(())
    }

    /// A conversation state, from this batch's changes, the cache or storage (the user's
    /// counters are loaded first: loading them applies the entries past the user's mark).
    pub(super) fn conv(&mut self, user: u64, conversation: Conversation) -> Result<Option<ConvState>, StorageError> {
        let key = (user, conversation);
        if let Some(c) = self.batch_convs.get(&key).or_else(|| self.convs.get(&key)) {
            return Ok(Some(*c));
        }
        if self.counters(user)?.is_none() {
            return Ok(None);
        }
        if let Some(c) = self.batch_convs.get(&key).or_else(|| self.convs.get(&key)) {
            return Ok(Some(*c));
        }
        let c = self.storage.stored_conv_state(user, conversation)?;
        if let Some(c) = c {
            self.convs.insert(key, c);
        }
        Ok(c)
    }

    /// Applies `user`'s inbox entries past its stored mark to the cached conversation
    /// states (as the user's counters load): what the last commits changed and did not
    /// store yet, or what a crash left unstored.
    pub(super) fn replay_convs(&mut self, user: u64, through: u64) -> Result<(), StorageError> {
        let changes = self.storage.conv_replay(user, through)?;
        if changes.is_empty() {
            return Ok(());
        }
        for (conversation, (seq, ordinal)) in changes {
            let key = (user, conversation);
            let state = match self.convs.get(&key) {
                Some(c) => *c,
                None => self.storage.stored_conv_state(user, conversation)?.unwrap_or_default(),
            };
            self.convs.insert(key, state.apply(seq, ordinal));
            self.note_unstored(user, conversation);
        }
        Ok(())
    }

    /// Records a committed change of `user`'s state of `conversation` that is not stored
    /// yet; a user with none before comes due [`CONV_STATES_STORE_DELAY_MS`] from now.
    ///
    /// [`CONV_STATES_STORE_DELAY_MS`]: super::CONV_STATES_STORE_DELAY_MS
    fn note_unstored(&mut self, user: u64, conversation: Conversation) {
        let delay_us = self.conv_states_store_delay_us;
        let due = &mut self.unstored_due;
        self.unstored
            .entry(user)
            .or_insert_with(|| {
                due.push_back((now_us() + delay_us, user));
                IdSet::default()
            })
            .insert(conversation);
    }

    /// Changes a conversation state in this batch; it is stored with the user's other
    /// changed states (see [`WriterState::put_convs`]) unless `now`.
    fn put_conv(&mut self, user: u64, conversation: Conversation, state: ConvState, now: bool) {
        self.batch_convs.insert((user, conversation), state);
        if now {
            self.batch_conv_puts.insert((user, conversation));
        } else {
            self.batch_unstored.push((user, conversation));
        }
    }

    /// Writes the conversation states this batch must store: those changed by requests
    /// that need it at once (read positions), and every changed state of each user past
    /// [`CONV_STATES_UNSTORED_MAX`] entries beyond its mark or come due (at most
    /// [`CONV_STATES_STORES_PER_COMMIT_MAX`] of those), with the user's new mark.
    pub(super) fn put_convs(&mut self, batch: &mut WriteBatch, now_us: u64) {
        let cf = self.storage.cf(Cf::Convs);
        // Users to store, in order, and as a set (a big batch may name thousands).
        let mut users: Vec<u64> = Vec::new();
        let mut chosen: IdSet<u64> = IdSet::default();
        for &(user, _) in &self.batch_unstored {
            let c = self.batch_users.get(&user).or_else(|| self.users.get(&user));
            let past = c.is_some_and(|c| c.inbox_head - c.convs_through >= CONV_STATES_UNSTORED_MAX);
            if past && chosen.insert(user) {
                users.push(user);
            }
        }
        let mut due = 0;
        while let Some(&(at, user)) = self.unstored_due.front() {
            if at > now_us || due >= CONV_STATES_STORES_PER_COMMIT_MAX {
                break;
            }
            self.unstored_due.pop_front();
            if self.unstored.contains_key(&user) && chosen.insert(user) {
                users.push(user);
                due += 1;
            }
        }
        // This batch's changes of the chosen users, by user.
        let mut changed: IdMap<u64, Vec<Conversation>> = IdMap::default();
        for &(u, c) in &self.batch_unstored {
            if chosen.contains(&u) {
                changed.entry(u).or_default().push(c);
            }
        }
        for &user in &users {
            let Some(counters) = self.batch_users.get(&user).or_else(|| self.users.get(&user)).copied() else {
                continue;
            };
            let mut conversations: IdSet<Conversation> = self.unstored.get(&user).cloned().unwrap_or_default();
            conversations.extend(changed.remove(&user).unwrap_or_default());
            for c in conversations {
                let key = (user, c);
                if let Some(state) = self.batch_convs.get(&key).or_else(|| self.convs.get(&key)) {
                    batch.put_cf(cf, keys::conv(user, c), state.encode());
                    self.batch_conv_puts.remove(&key);
                }
            }
            batch.put_cf(cf, keys::convs_mark(user), counters.inbox_head.to_le_bytes());
            let counters = self.batch_users.entry(user).or_insert(counters);
            counters.convs_through = counters.inbox_head;
            counters.convs_marked = true;
            self.batch_convs_stored.push(user);
        }
        for &(user, c) in &self.batch_conv_puts {
            if let Some(state) = self.batch_convs.get(&(user, c)) {
                batch.put_cf(cf, keys::conv(user, c), state.encode());
            }
        }
    }

    /// Stores every changed state not yet stored, with each user's mark, fsynced (at a
    /// clean stop, so the next start has nothing to replay).
    pub(super) fn store_all_convs(&mut self) -> Result<(), rocksdb::Error> {
        let cf = self.storage.cf(Cf::Convs);
        let users: Vec<u64> = self.unstored.keys().copied().collect();
        for chunk in users.chunks(CONV_STATES_STORES_AT_STOP_PER_WRITE) {
            let mut batch = WriteBatch::default();
            for user in chunk {
                let Some(counters) = self.users.get(user) else { continue };
                for &c in self.unstored.get(user).into_iter().flatten() {
                    if let Some(state) = self.convs.get(&(*user, c)) {
                        batch.put_cf(cf, keys::conv(*user, c), state.encode());
                    }
                }
                batch.put_cf(cf, keys::convs_mark(*user), counters.inbox_head.to_le_bytes());
            }
            let mut opts = rocksdb::WriteOptions::default();
            opts.set_sync(true);
            self.storage.db().write_opt(batch, &opts)?;
            for user in chunk {
                self.unstored.remove(user);
                if let Some(c) = self.users.get_mut(user) {
                    c.convs_through = c.inbox_head;
                    c.convs_marked = true;
                }
            }
        }
        Ok(())
    }

    /// The batch committed: its unstored changes join the writer's, and the users it
    /// stored are clean.
    pub(super) fn convs_committed(&mut self) {
        let mut changed = std::mem::take(&mut self.batch_unstored);
        for (user, conversation) in changed.drain(..) {
            self.note_unstored(user, conversation);
        }
        self.batch_unstored = changed; // Keep the allocation.
        for user in self.batch_convs_stored.drain(..) {
            self.unstored.remove(&user);
        }
        self.batch_conv_puts.clear();
    }

    /// The batch failed: the users it was to store stay due.
    pub(super) fn convs_discarded(&mut self) {
        self.batch_unstored.clear();
        self.batch_conv_puts.clear();
        for user in self.batch_convs_stored.drain(..) {
            self.unstored_due.push_front((0, user));
        }
    }

    /// Records an entry appended at `seq` to `owner`'s view of `conversation`; returns its
    /// ordinal (messages from others so far, this one included if `incoming`).
    pub(super) fn conv_appended(
        &mut self,
        owner: u64,
        conversation: Conversation,
        seq: u64,
        incoming: bool,
        batch: &mut WriteBatch,
    ) -> Result<u64, StorageError> {
        let mut state = self.conv(owner, conversation)?.unwrap_or_default();
        state.last_seq = seq;
        state.incoming += u64::from(incoming);
        self.put_conv(owner, conversation, state, false);
        if let Some(counters) = self.counters(owner)? {
            if !counters.convs_marked {
                counters.convs_marked = true;
                let through = counters.convs_through;
                batch.put_cf(
                    self.storage.cf(Cf::Convs),
                    keys::convs_mark(owner),
                    through.to_le_bytes(),
                );
            }
        }
        Ok(state.incoming)
    }

    /// Queues the committed message's notifications: direct entries one per inbox (the
    /// recipient's, then the sender's), group entries as one completion per core.
    pub(super) fn push_committed(
        &mut self,
        message: &Arc<StoredMessage>,
        entries: &[(u64, u64)],
        reply: Option<ReplyTo>,
    ) {
        if message.group == 0 {
            for &(user_id, seq) in entries {
                let origin = if user_id == message.sender { reply } else { None };
                self.out.push((
                    home_core(user_id, self.cores),
                    Completion::Committed {
                        user_id,
                        seq,
                        message: message.clone(),
                        origin,
                        commit: self.batch_tag,
                    },
                ));
            }
            return;
        }
        self.push_fanout(message, entries.iter().copied(), reply);
    }

    /// One `Fanout` completion per core that homes any of `entries`.
    fn push_fanout(
        &mut self,
        message: &Arc<StoredMessage>,
        entries: impl Iterator<Item = (u64, u64)>,
        reply: Option<ReplyTo>,
    ) {
        let mut per_core: Vec<Vec<(u64, u64)>> = vec![Vec::new(); self.cores];
        for (user_id, seq) in entries {
            per_core[home_core(user_id, self.cores)].push((user_id, seq));
        }
        for (core, entries) in per_core.into_iter().enumerate() {
            if entries.is_empty() {
                continue;
            }
            self.out.push((
                core,
                Completion::Fanout {
                    message: message.clone(),
                    entries,
                    origin: reply.filter(|r| r.core == core),
                    commit: self.batch_tag,
                },
            ));
        }
    }

    /// An ephemeral message: pushed to online devices (inbox seq 0), never written.
    pub(super) fn push_ephemeral(&mut self, message: &Arc<StoredMessage>, recipients: &[u64], reply: Option<ReplyTo>) {
        self.push_fanout(message, recipients.iter().map(|&u| (u, 0)), reply);
    }

    fn notify(&mut self, user: u64, notice: Notice) {
        self.notices[home_core(user, self.cores)].push(notice);
    }

    /// After the commit, the device's home core closes its live connections.
    pub(super) fn revoke_notice(&mut self, user: u64, device: u64) {
        self.notify(user, Notice::DeviceRevoked { user, device });
    }

    pub(super) fn create_group(
        &mut self,
        owner: u64,
        name: String,
        persistence: Persistence,
        timestamp_us: u64,
        batch: &mut WriteBatch,
    ) -> Result<u64, Refusal> {
        if self.counters(owner)?.is_none() {
            return Err(Refusal::Client(ErrorCode::NoSuchUser));
        }
        let group_id = self.batch_next_group_id;
        self.batch_next_group_id += 1;
        let g = GroupState {
            name,
            persistence,
            created_us: timestamp_us,
            members: BTreeMap::from([(owner, GroupRole::OWNER)]),
        };
        batch.put_cf(self.storage.cf(Cf::Groups), keys::id(group_id), g.record());
        self.put_member(group_id, owner, Some(GroupRole::OWNER), batch);
        self.batch_groups.insert(group_id, Arc::new(g));
        Ok(group_id)
    }

    fn put_member(&self, group: u64, user: u64, role: Option<GroupRole>, batch: &mut WriteBatch) {
        let (members, memberships) = (self.storage.cf(Cf::Members), self.storage.cf(Cf::Memberships));
        match role {
            Some(role) => {
                batch.put_cf(members, pair(group, user), [role.0]);
                batch.put_cf(memberships, pair(user, group), [role.0]);
            }
            None => {
                batch.delete_cf(members, pair(group, user));
                batch.delete_cf(memberships, pair(user, group));
            }
        }
    }

    /// Owners grant any role to anyone but themselves; admins add plain members only.
    pub(super) fn add_member(
        &mut self,
        actor: u64,
        group: u64,
        user: u64,
        role: GroupRole,
        batch: &mut WriteBatch,
    ) -> Result<(), Refusal> {
        let g = self.group(group)?.ok_or(Refusal::Client(ErrorCode::NoSuchGroup))?;
        let actor_role = g.members.get(&actor).copied().ok_or_else(forbidden)?;
        let current = g.members.get(&user).copied();
        let allowed = match actor_role {
            GroupRole::OWNER => user != actor,
            GroupRole::ADMIN => role == GroupRole::MEMBER && current.is_none_or(|r| r == GroupRole::MEMBER),
            _ => false,
        };
        if !allowed {
            return Err(forbidden());
        }
        if current.is_none() && g.members.len() >= self.group_members_max {
            return Err(Refusal::Client(ErrorCode::GroupFull));
        }
        if self.counters(user)?.is_none() {
            return Err(Refusal::Client(ErrorCode::NoSuchUser));
        }
        self.group_mut(group)?.members.insert(user, role);
        self.put_member(group, user, Some(role), batch);
        Ok(())
    }

    /// Owners remove anyone but other owners; admins remove plain members; anyone may leave,
    /// except the last owner while others remain.
    pub(super) fn remove_member(
        &mut self,
        actor: u64,
        group: u64,
        user: u64,
        batch: &mut WriteBatch,
    ) -> Result<(), Refusal> {
        let g = self.group(group)?.ok_or(Refusal::Client(ErrorCode::NoSuchGroup))?;
        let actor_role = g.members.get(&actor).copied().ok_or_else(forbidden)?;
        let Some(target_role) = g.members.get(&user).copied() else {
            return Ok(()); // Not a member: nothing to do.
        };
        let allowed = if user == actor {
            target_role != GroupRole::OWNER || g.owners() > 1 || g.members.len() == 1
        } else {
            match actor_role {
                GroupRole::OWNER => target_role != GroupRole::OWNER,
                GroupRole::ADMIN => target_role == GroupRole::MEMBER,
                _ => false,
            }
        };
        if !allowed {
            return Err(forbidden());
        }
        self.group_mut(group)?.members.remove(&user);
        self.put_member(group, user, None, batch);
        Ok(())
    }

    /// A group's persistence is its owners' to set; a direct conversation's, either party's.
    pub(super) fn set_persistence(
        &mut self,
        actor: u64,
        conversation: Conversation,
        persistence: Persistence,
        batch: &mut WriteBatch,
    ) -> Result<(), Refusal> {
        match conversation {
            Conversation::Group(group) => {
                let g = self.group(group)?.ok_or(Refusal::Client(ErrorCode::NoSuchGroup))?;
                if g.members.get(&actor) != Some(&GroupRole::OWNER) {
                    return Err(forbidden());
                }
                let g = self.group_mut(group)?;
                g.persistence = persistence;
                let record = g.record();
                batch.put_cf(self.storage.cf(Cf::Groups), keys::id(group), record);
                Ok(())
            }
            Conversation::Direct(peer) => {
                if self.counters(peer)?.is_none() {
                    return Err(Refusal::Client(ErrorCode::NoSuchUser));
                }
                let key = (actor.min(peer), actor.max(peer));
                batch.put_cf(self.storage.cf(Cf::Settings), pair(key.0, key.1), [persistence.0]);
                self.batch_settings.insert(key, persistence);
                Ok(())
            }
            Conversation::Other { .. } => Err(Refusal::Client(ErrorCode::InvalidRequest)),
        }
    }

    /// Moves `user`'s read position in `conversation` to the entry at `seq`, sends read
    /// receipts for what it passes, and tells the user's other devices.
    pub(super) fn mark_read(
        &mut self,
        user: u64,
        conversation: Conversation,
        seq: u64,
        reply: Option<ReplyTo>,
        timestamp_us: u64,
    ) -> Result<ReadPosition, Refusal> {
        let Some(mut state) = self.conv(user, conversation)? else {
            return Err(Refusal::Client(ErrorCode::NoSuchMessage));
        };
        if seq <= state.read_seq {
            return Ok(state.position(conversation));
        }
        if seq > state.last_seq {
            return Err(Refusal::Client(ErrorCode::NoSuchMessage));
        }
        let ordinal = if seq == state.last_seq {
            state.incoming
        } else {
            let record = self
                .storage
                .inbox_entry(user, seq)?
                .ok_or(Refusal::Client(ErrorCode::NoSuchMessage))?;
            let d = decode_record(seq, &record).map_err(|e| StorageError::Corrupt(e.to_string()))?;
            if d.conversation != conversation {
                return Err(Refusal::Client(ErrorCode::NoSuchMessage));
            }
            decode_meta(&record)
                .map_err(|e| StorageError::Corrupt(e.to_string()))?
                .ordinal
        };
        let (receipts, _) =
            self.receipts_between(user, state.read_seq, seq, SendFlags::READ_RECEIPT, Some(conversation))?;
        self.send_receipts(&receipts, ReceiptKind::READ, user, timestamp_us);
        state.read_seq = seq;
        state.read_incoming = ordinal;
        self.put_conv(user, conversation, state, true);
        let position = state.position(conversation);
        let home = home_core(user, self.cores);
        let except = reply.filter(|r| r.core == home).map(|r| r.conn);
        self.notify(user, Notice::ReadPosition { user, position, except });
        Ok(position)
    }

    /// Messages in `user`'s inbox after `after` up to `until` (at most [`SCAN_ENTRIES_MAX`])
    /// sent by others with `flag`, in `only` if given: `(sender, message id, the
    /// conversation as the sender sees it)`, and the last seq scanned.
    fn receipts_between(
        &self,
        user: u64,
        after: u64,
        until: u64,
        flag: SendFlags,
        only: Option<Conversation>,
    ) -> Result<(Vec<ReceiptDue>, u64), StorageError> {
        let limit = (until - after).min(SCAN_ENTRIES_MAX as u64) as usize;
        let page = self.storage.read_inbox(user, after, limit, usize::MAX)?;
        let mut out = Vec::new();
        let mut last = after;
        for (seq, record) in &page.entries {
            if *seq > until {
                break;
            }
            last = *seq;
            let Ok(d) = decode_record(*seq, record) else { continue };
            if d.sender == user || d.kind != MessageKind::NORMAL || !d.flags.contains(flag) {
                continue;
            }
            if only.is_some_and(|c| c != d.conversation) {
                continue;
            }
            let sender_view = match d.conversation {
                Conversation::Direct(_) => Conversation::Direct(user),
                other => other,
            };
            out.push(ReceiptDue {
                sender: d.sender,
                message_id: d.message_id,
                conversation: sender_view,
            });
        }
        Ok((out, last))
    }

    /// Queues a `kind` receipt from `user` to the sender of each of `receipts`.
    fn send_receipts(&mut self, receipts: &[ReceiptDue], kind: ReceiptKind, user: u64, timestamp_us: u64) {
        for r in receipts {
            let receipt = Receipt {
                kind,
                message_id: r.message_id,
                conversation: r.conversation,
                user_id: user,
                timestamp_us,
            };
            self.notify(
                r.sender,
                Notice::Receipt {
                    user: r.sender,
                    receipt,
                },
            );
        }
    }

    /// Tells the conversation's other party (or the group's other members) that `user` types.
    pub(super) fn typing(&mut self, user: u64, conversation: Conversation) -> Result<(), Refusal> {
        let (users, seen_as) = match conversation {
            Conversation::Group(group) => {
                let g = self.group(group)?.ok_or(Refusal::Client(ErrorCode::NoSuchGroup))?;
                if !g.members.contains_key(&user) {
                    return Err(forbidden());
                }
                let others: Vec<u64> = g.members.keys().copied().filter(|&m| m != user).collect();
                (others, conversation)
            }
            Conversation::Direct(peer) => {
                if self.counters(peer)?.is_none() {
                    return Err(Refusal::Client(ErrorCode::NoSuchUser));
                }
                (vec![peer], Conversation::Direct(user))
            }
            Conversation::Other { .. } => return Err(Refusal::Client(ErrorCode::InvalidRequest)),
        };
        let notice = TypingNotice {
            conversation: seen_as,
            user_id: user,
        };
        let mut per_core: Vec<Vec<u64>> = vec![Vec::new(); self.cores];
        for u in users {
            per_core[home_core(u, self.cores)].push(u);
        }
        for (core, users) in per_core.into_iter().enumerate() {
            if !users.is_empty() {
                self.notices[core].push(Notice::Typing { users, notice });
            }
        }
        Ok(())
    }

    fn scan_state(&mut self, user: u64) -> Result<&mut ScanState, StorageError> {
        if !self.scans.contains_key(&user) {
            let head = self.counters(user)?.map_or(0, |c| c.inbox_head);
            let scan = self.storage.user_scan(user)?;
            let state = ScanState {
                cursors: self.storage.device_cursors(user)?.into_iter().collect(),
                scan,
                stored: scan,
                flagged_max: head,
            };
            self.scans.insert(user, state);
        }
        Ok(self.scans.get_mut(&user).expect("inserted above"))
    }

    /// An entry at `seq` in `user`'s inbox asked for receipts or expires.
    pub(super) fn flagged_at(&mut self, user: u64, seq: u64) {
        // Not loaded: the load takes the head, which covers this entry.
        if let Some(s) = self.scans.get_mut(&user) {
            s.flagged_max = s.flagged_max.max(seq);
        }
    }

    /// A device's cursor moved: the first device past an entry triggers its delivered
    /// receipt; the last one past a store-until-delivered entry expires it.
    pub(super) fn cursor_moved(
        &mut self,
        user: u64,
        device: u64,
        seq: u64,
        batch: &mut WriteBatch,
    ) -> Result<(), StorageError> {
        let state = self.scan_state(user)?;
        let cursor = state.cursors.entry(device).or_insert(0);
        // A revoked device's cursor stays revoked (its connection may store one last cursor
        // after the Logout).
        if *cursor != CURSOR_REVOKED {
            *cursor = (*cursor).max(seq);
        }
        self.rescan(user, batch)
    }

    /// Whether `device`'s cursor is marked revoked (a late cursor write must not undo it).
    pub(super) fn is_revoked(&mut self, user: u64, device: u64) -> Result<bool, StorageError> {
        Ok(self.scan_state(user)?.cursors.get(&device) == Some(&CURSOR_REVOKED))
    }

    /// A device logged out: it no longer holds back store-until-delivered expiry.
    pub(super) fn device_revoked(
        &mut self,
        user: u64,
        device: u64,
        batch: &mut WriteBatch,
    ) -> Result<(), StorageError> {
        self.scan_state(user)?.cursors.insert(device, CURSOR_REVOKED);
        batch.put_cf(
            self.storage.cf(Cf::Cursors),
            pair(user, device),
            CURSOR_REVOKED.to_le_bytes(),
        );
        self.rescan(user, batch)
    }

    /// Sends the delivered receipts and expires the entries that `user`'s live devices'
    /// cursors have passed since the last scan.
    fn rescan(&mut self, user: u64, batch: &mut WriteBatch) -> Result<(), StorageError> {
        let state = self.scan_state(user)?;
        let live = || state.cursors.values().copied().filter(|&c| c != CURSOR_REVOKED);
        let highest = live().max().unwrap_or(0);
        // With no live device left, nothing can acknowledge anything: nothing expires.
        let lowest = live().min().unwrap_or(0);
        let flagged_max = state.flagged_max;
        // Nothing flagged past the scan positions: move them without reading. They are
        // stored whenever they moved (one small put beside the cursor this batch writes
        // anyway): a restart rescans from the stored positions, since the flags are not
        // stored, and without this it read everything since the last flagged entry, for
        // every user, inside the writer's first commits (`results/hotpath.md`, the cold
        // start after a restart).
        if state.scan.receipts_seq >= flagged_max {
            state.scan.receipts_seq = state.scan.receipts_seq.max(highest);
        }
        if state.scan.expired_seq >= flagged_max {
            state.scan.expired_seq = state.scan.expired_seq.max(lowest);
        }
        let mut scan = state.scan;
        let stored = state.stored;
        if highest > scan.receipts_seq {
            let (receipts, last) =
                self.receipts_between(user, scan.receipts_seq, highest, SendFlags::DELIVERY_RECEIPT, None)?;
            self.send_receipts(&receipts, ReceiptKind::DELIVERED, user, super::now_us());
            scan.receipts_seq = last;
        }
        if lowest > scan.expired_seq {
            let limit = (lowest - scan.expired_seq).min(SCAN_ENTRIES_MAX as u64) as usize;
            let page = self.storage.read_inbox(user, scan.expired_seq, limit, usize::MAX)?;
            for (seq, record) in &page.entries {
                if *seq > lowest {
                    break;
                }
                scan.expired_seq = *seq;
                let expires = decode_meta(record).is_ok_and(|m| m.storage_flags & STORE_UNTIL_DELIVERED != 0);
                if expires {
                    if let Ok(expired) = expired_record(record) {
                        batch.put_cf(self.storage.cf(Cf::Inbox), pair(user, *seq), expired);
                    }
                }
            }
        }
        if scan != stored {
            let mut v = [0u8; 16];
            v[..8].copy_from_slice(&scan.receipts_seq.to_le_bytes());
            v[8..].copy_from_slice(&scan.expired_seq.to_le_bytes());
            batch.put_cf(self.storage.cf(Cf::Cursors), pair(user, USER_SCAN_DEVICE_ID), v);
            if let Some(state) = self.scans.get_mut(&user) {
                state.scan = scan;
                state.stored = scan;
            }
        }
        Ok(())
    }

    /// Empties any cache past [`CACHE_ENTRIES_MAX`] (between batches, so nothing of the
    /// current batch is lost; everything reloads from storage on demand).
    pub(super) fn bound_caches(&mut self) {
        if self.convs.len() > CACHE_ENTRIES_MAX {
            // States changed and not yet stored stay: nothing else holds them.
            let unstored = &self.unstored;
            self.convs
                .retain(|(user, c), _| unstored.get(user).is_some_and(|cs| cs.contains(c)));
        }
        if self.settings.len() > CACHE_ENTRIES_MAX {
            self.settings.clear();
        }
        let members: usize = self.groups.values().map(|g| g.members.len()).sum();
        if members > CACHE_ENTRIES_MAX {
            self.groups.clear();
        }
        if self.scans.len() > CACHE_ENTRIES_MAX {
            self.scans.clear();
        }
    }
}
