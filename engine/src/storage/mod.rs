//! RocksDB as the message log: column families, opening, and the reads the helper pool and
//! the log writer perform. Core threads never call into this module.
//!
//! Column families (keys big-endian, see [`keys`]):
//!
//! | family | key | value |
//! | --- | --- | --- |
//! | `users` | user id | created µs (LE u64), username |
//! | `usernames` | username bytes | user id (LE u64) |
//! | `credentials` | user id | argon2id PHC string |
//! | `tokens` | SHA-256 of the token | user id, device id, created µs (LE u64s) |
//! | `devices` | (user id, device id) | created µs (LE u64), device name |
//! | `inbox` | (user id, seq) | message record ([`record`]) |
//! | `cursors` | (user id, device id) | delivered seq (LE u64) |
//! | `dedup` | (sender id, client msg id) | message id, sender seq, timestamp µs (LE u64s) |
//! | `meta` | name (`message_id_hwm`, `epoch`) | value (LE u64) |
//! | `groups` | group id | created µs (LE u64), persistence (u8), name |
//! | `members` | (group id, user id) | role (u8) |
//! | `memberships` | (user id, group id) | role (u8): the same facts, for "my groups" |
//! | `messages` | message id | no longer written: earlier versions kept each message's sender here for edits |
//! | `convs` | (user id, conversation kind u8, conversation id) | [`ConvState`] (LE u64s) |
//! | `settings` | (lower user id, higher user id) | a direct conversation's persistence (u8) |
//! | `payloads` | message id | a group message's payload, stored once for every member's inbox |
//! | `last_seen` | user id | when the user's last device went offline, µs (LE u64) |
//!
//! `cursors` also holds, under the reserved device id 0, the user's scan positions
//! ([`UserScan`]): how far delivered receipts and store-until-delivered expiry have got.
//!
//! `convs` is written lazily: an append does not rewrite the conversation's state, since
//! its two changing fields (the newest seq and the ordinal of the newest message from
//! others) are in the appended record itself. Under the reserved key of conversation
//! `Direct(0)` (user ids start at 1) each user has the inbox seq through which its stored
//! states are complete (LE u64); a reader applies the records after it
//! ([`Storage::conv_replay`]). The writer stores a user's changed states and moves that mark
//! once a user has [`CONV_STATES_UNSTORED_MAX`] entries past it, or a while after its first
//! unstored one, so the records to apply stay few. A user without the mark (written by an
//! earlier version, or not yet written to) has complete states.
//!
//! An Edit or Delete is checked against the sender's own copy of the original, found by
//! bisection in the sender's inbox ([`Storage::find_in_inbox`]): message ids grow with seqs
//! in every inbox, since both are taken in commit order.
//!
//! Invariants: a user's inbox seqs are dense from 1 and only the log writer writes any
//! family, so the writer's cached counters (inbox heads, last device ids, next user id,
//! group membership, conversation states) are authoritative while the process runs and
//! are recovered from these keys at start.

pub mod keys;
pub mod record;
pub mod watermark;
pub mod writer;

use std::collections::HashMap;
use std::path::Path;

use hotline_wire::{Conversation, GroupRole, Persistence, ReadPosition};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, DBRawIterator, Options,
    ReadOptions, DB,
};

/// A map keyed by ids the server hands out (user, group, message, device ids): a fast
/// hash, with no defence against chosen keys, which these are not. Maps keyed by what a
/// client chooses (its message ids, usernames) keep the standard library's keyed hash.
pub type IdMap<K, V> = HashMap<K, V, rustc_hash::FxBuildHasher>;
/// The set counterpart of [`IdMap`].
pub type IdSet<K> = std::collections::HashSet<K, rustc_hash::FxBuildHasher>;

/// A column family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cf {
    Users,
    Usernames,
    Credentials,
    Tokens,
    Devices,
    Inbox,
    Cursors,
    Dedup,
    Meta,
    Groups,
    Members,
    Memberships,
    Messages,
    Convs,
    Settings,
    Payloads,
    LastSeen,
}

impl Cf {
    /// Every family, in creation order.
    pub const ALL: [Cf; 17] = [
        Cf::Users,
        Cf::Usernames,
        Cf::Credentials,
        Cf::Tokens,
        Cf::Devices,
        Cf::Inbox,
        Cf::Cursors,
        Cf::Dedup,
        Cf::Meta,
        Cf::Groups,
        Cf::Members,
        Cf::Memberships,
        Cf::Messages,
        Cf::Convs,
        Cf::Settings,
        Cf::Payloads,
        Cf::LastSeen,
    ];

    /// The family's name in RocksDB.
    pub fn name(self) -> &'static str {
        match self {
            Cf::Users => "users",
            Cf::Usernames => "usernames",
            Cf::Credentials => "credentials",
            Cf::Tokens => "tokens",
            Cf::Devices => "devices",
            Cf::Inbox => "inbox",
            Cf::Cursors => "cursors",
            Cf::Dedup => "dedup",
            Cf::Meta => "meta",
            Cf::Groups => "groups",
            Cf::Members => "members",
            Cf::Memberships => "memberships",
            Cf::Messages => "messages",
            Cf::Convs => "convs",
            Cf::Settings => "settings",
            Cf::Payloads => "payloads",
            Cf::LastSeen => "last_seen",
        }
    }
}

/// The device id under which `cursors` keeps a user's [`UserScan`] (device ids start at 1).
pub const USER_SCAN_DEVICE_ID: u64 = 0;

/// The stored cursor of a device that logged out (its token is gone, so nothing reads it
/// for a login): it no longer counts for store-until-delivered expiry or receipts.
pub const CURSOR_REVOKED: u64 = u64::MAX;

/// A user past this many inbox entries beyond its `convs` mark has its conversation states
/// stored at the end of the group commit (see the module docs).
pub const CONV_STATES_UNSTORED_MAX: u64 = 256;

/// `meta` key of the highest message id ever handed out.
pub const META_MESSAGE_ID_HWM: &[u8] = b"message_id_hwm";
/// `meta` key of the server's epoch, bumped at every start (see [`Storage::bump_epoch`]).
pub const META_EPOCH: &[u8] = b"epoch";

/// The dedup family's memtable bloom filter, as a share of its write buffer (64 MiB by
/// default: 1.3 MiB of filter).
const DEDUP_MEMTABLE_BLOOM_RATIO: f64 = 0.02;

/// Shared block cache for all families.
const BLOCK_CACHE_BYTES: usize = 64 << 20;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("the data directory {dir} is in use by another hotline process (RocksDB lock held); stop it or pick another --data-dir")]
    Locked { dir: String },
    #[error(
        "the data directory {dir} is not writable ({cause}): mount it read-write (after a file-system \
         error: stop hotline, umount, fsck, mount), fix its permissions, or pick another --data-dir"
    )]
    NotWritable { dir: String, cause: String },
    #[error("RocksDB: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("corrupt database: {0}")]
    Corrupt(String),
    /// A thread the storage needs (the log writer, its WAL syncer) could not be started.
    #[error("cannot start the {thread} thread: {cause}")]
    Spawn {
        thread: &'static str,
        cause: std::io::Error,
    },
}

/// Why one request got no result: the client's mistake (answered with its code), or a
/// storage failure (logged, answered `StorageUnavailable`; the request may be retried).
/// The log writer refuses a write with it; the helper pool answers a read with it.
#[derive(Debug)]
pub enum Refusal {
    Client(hotline_wire::ErrorCode),
    Storage(StorageError),
}

impl From<StorageError> for Refusal {
    fn from(e: StorageError) -> Self {
        Refusal::Storage(e)
    }
}

impl Refusal {
    /// The code the requester is answered with; a storage failure is logged as `what` failing.
    pub fn into_code(self, what: &str) -> hotline_wire::ErrorCode {
        match self {
            Refusal::Client(code) => code,
            Refusal::Storage(e) => {
                tracing::warn!("{what} failed: {e}");
                hotline_wire::ErrorCode::StorageUnavailable
            }
        }
    }
}

/// When a write counts as durable (`--durability`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Acknowledge after the group commit's fsync: nothing acknowledged is ever lost.
    Sync,
    /// Acknowledge after the WAL write; fsync every [`writer::ASYNC_WAL_SYNC_INTERVAL_MS`].
    Async,
}

/// The open database. Shared (`Arc`) by the writer, the helper pool and admin commands.
pub struct Storage {
    db: DB,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").field("path", &self.db.path()).finish()
    }
}

/// What a token resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRecord {
    pub user_id: u64,
    pub device_id: u64,
}

/// A group's stored description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    pub name: String,
    pub persistence: Persistence,
    pub created_us: u64,
}

/// One user's view of one conversation: what unread counts and read positions need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConvState {
    /// The newest inbox seq of this conversation.
    pub last_seq: u64,
    /// Messages from others in this conversation (the ordinal of the newest one).
    pub incoming: u64,
    /// Read up to this inbox seq.
    pub read_seq: u64,
    /// The ordinal at `read_seq`: `incoming - read_incoming` is the unread count.
    pub read_incoming: u64,
}

impl ConvState {
    pub const BYTES: usize = 32;

    pub fn encode(&self) -> [u8; Self::BYTES] {
        let mut v = [0u8; Self::BYTES];
        for (i, x) in [self.last_seq, self.incoming, self.read_seq, self.read_incoming]
            .into_iter()
            .enumerate()
        {
            v[i * 8..i * 8 + 8].copy_from_slice(&x.to_le_bytes());
        }
        v
    }

    pub fn decode(v: &[u8]) -> Option<ConvState> {
        Some(ConvState {
            last_seq: keys::le_u64(v, 0)?,
            incoming: keys::le_u64(v, 8)?,
            read_seq: keys::le_u64(v, 16)?,
            read_incoming: keys::le_u64(v, 24)?,
        })
    }

    /// The state after an inbox entry of this conversation at `seq` whose record holds
    /// `ordinal`; applying a user's entries in seq order gives the same state however many
    /// of them the stored state already reflects.
    pub fn apply(self, seq: u64, ordinal: u64) -> ConvState {
        ConvState {
            last_seq: self.last_seq.max(seq),
            incoming: if seq >= self.last_seq { ordinal } else { self.incoming },
            ..self
        }
    }

    /// Messages from others after the read position.
    pub fn unread(&self) -> u64 {
        self.incoming.saturating_sub(self.read_incoming)
    }

    pub fn position(&self, conversation: Conversation) -> ReadPosition {
        ReadPosition {
            conversation,
            read_seq: self.read_seq,
            unread: self.unread(),
            last_seq: self.last_seq,
        }
    }
}

/// How far the writer's per-user scans behind the device cursors have got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserScan {
    /// Delivered receipts were sent for every entry up to here (the highest device cursor).
    pub receipts_seq: u64,
    /// Store-until-delivered entries are expired up to here (the lowest device cursor).
    pub expired_seq: u64,
}

/// Who sent a message and where: what an Edit or Delete is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageOrigin {
    pub sender: u64,
    /// The conversation as the sender sees it.
    pub conversation: Conversation,
}

/// `(second id, value)` entries of a pair-keyed family, and whether more follow.
type PairsPage = (Vec<(u64, Vec<u8>)>, bool);

/// One page of an inbox read.
#[derive(Debug, Default)]
pub struct InboxPage {
    /// `(seq, stored record)` in seq order.
    pub entries: Vec<(u64, Vec<u8>)>,
    /// Whether entries exist after the last one returned.
    pub more: bool,
}

/// The file [`check_writable`] creates and removes.
const WRITE_PROBE_FILE: &str = ".hotline-write-probe";

/// Fails with [`StorageError::NotWritable`] if files cannot be created in `dir` (a read-only
/// mount, say), which RocksDB would report as a failed rename of its info log. A missing
/// `dir` passes: RocksDB creates it, or says why it cannot.
fn check_writable(dir: &Path) -> Result<(), StorageError> {
    if !dir.is_dir() {
        return Ok(());
    }
    let probe = dir.join(WRITE_PROBE_FILE);
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe);
    match created {
        Ok(_) => {
            // A leftover probe is harmless; the next start removes it.
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(StorageError::NotWritable {
            dir: dir.display().to_string(),
            cause: e.to_string(),
        }),
    }
}

/// A family's base options: where the writer's inserts follow a pattern, the memtable is
/// told so. `memtable_insert_with_hint_prefix_extractor` makes RocksDB remember, per key
/// prefix, where the last insert went and start the next one's skip-list search there: an
/// inbox entry `(user, seq)` lands right after its user's previous one, a dedup entry
/// `(sender, client_msg_id)` usually after its sender's, a conversation state overwrites
/// its user's; message ids only grow, so for the families keyed by one the prefix is empty
/// and every insert goes after the last. It applies to a write that one thread applies to
/// the memtable (the writer's token makes every write so).
fn memtable_options(cf: Cf) -> Result<Options, StorageError> {
    let prefix = match cf {
        Cf::Inbox | Cf::Dedup | Cf::Convs | Cf::Cursors => "rocksdb.FixedPrefix.8",
        Cf::Messages | Cf::Payloads => "rocksdb.FixedPrefix.0",
        _ => return Ok(Options::default()),
    };
    Ok(Options::default().get_options_from_string(format!("memtable_insert_with_hint_prefix_extractor={prefix}"))?)
}

impl Storage {
    /// Opens (creating if missing) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Storage, StorageError> {
        check_writable(dir)?;
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_background_jobs(2);
        db_opts.set_bytes_per_sync(1 << 20);
        db_opts.set_keep_log_file_num(4);
        let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let families = Cf::ALL
            .iter()
            .map(|cf| -> Result<ColumnFamilyDescriptor, StorageError> {
                let mut table = BlockBasedOptions::default();
                table.set_block_cache(&cache);
                table.set_cache_index_and_filter_blocks(true);
                table.set_pin_l0_filter_and_index_blocks_in_cache(true);
                // Point lookups (dedup, tokens, names, user existence) mostly miss or hit
                // recent data: a bloom filter answers most misses without touching a block.
                table.set_bloom_filter(10.0, false);
                let mut o = memtable_options(*cf)?;
                if *cf == Cf::Dedup {
                    // Every send looks up its (sender, client_msg_id), and nearly every
                    // lookup misses: a bloom filter over the memtable's whole keys answers
                    // those without a skip-list search.
                    o.set_memtable_prefix_bloom_ratio(DEDUP_MEMTABLE_BLOOM_RATIO);
                    o.set_memtable_whole_key_filtering(true);
                }
                o.set_block_based_table_factory(&table);
                o.set_compression_type(if matches!(*cf, Cf::Inbox | Cf::Payloads) {
                    DBCompressionType::Lz4
                } else {
                    DBCompressionType::None
                });
                Ok(ColumnFamilyDescriptor::new(cf.name(), o))
            });
        let families = families.collect::<Result<Vec<_>, _>>()?;
        let db = DB::open_cf_descriptors(&db_opts, dir, families).map_err(|e| {
            let text = e.to_string();
            if text.contains("lock") && (text.contains("unavailable") || text.contains("Resource")) {
                StorageError::Locked {
                    dir: dir.display().to_string(),
                }
            } else {
                StorageError::Rocks(e)
            }
        })?;
        Ok(Storage { db })
    }

    /// The raw database, for the writer.
    pub(crate) fn db(&self) -> &DB {
        &self.db
    }

    /// A column family handle. Every family is created at open, so a missing one is a bug.
    pub(crate) fn cf(&self, cf: Cf) -> &ColumnFamily {
        self.db
            .cf_handle(cf.name())
            .unwrap_or_else(|| panic!("column family {} was created at open", cf.name()))
    }

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.db.get_cf(self.cf(cf), key)?)
    }

    /// A point read that is made about once per session (a token, a device cursor at
    /// login): it bypasses the block cache, so a wave of logins neither evicts the inbox
    /// blocks that catch-up and `Sync` reread nor grows memory with blocks read once.
    fn get_once(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let mut opts = ReadOptions::default();
        opts.fill_cache(false);
        Ok(self.db.get_cf_opt(self.cf(cf), key, &opts)?)
    }

    /// The user id registered under `username`.
    pub fn user_by_name(&self, username: &str) -> Result<Option<u64>, StorageError> {
        match self.get(Cf::Usernames, username.as_bytes())? {
            None => Ok(None),
            Some(v) => keys::le_u64(&v, 0)
                .map(Some)
                .ok_or_else(|| StorageError::Corrupt(format!("usernames[{username}] is {} bytes", v.len()))),
        }
    }

    /// Whether `user_id` exists.
    pub fn user_exists(&self, user_id: u64) -> Result<bool, StorageError> {
        Ok(self.db.get_pinned_cf(self.cf(Cf::Users), keys::id(user_id))?.is_some())
    }

    /// The argon2id PHC string of `user_id`.
    pub fn credential(&self, user_id: u64) -> Result<Option<String>, StorageError> {
        match self.get(Cf::Credentials, &keys::id(user_id))? {
            None => Ok(None),
            Some(v) => String::from_utf8(v)
                .map(Some)
                .map_err(|_| StorageError::Corrupt(format!("credentials[{user_id}] is not UTF-8"))),
        }
    }

    /// What a token hash resolves to, if it is live.
    pub fn token(&self, token_hash: &[u8; 32]) -> Result<Option<TokenRecord>, StorageError> {
        let Some(v) = self.get_once(Cf::Tokens, token_hash)? else {
            return Ok(None);
        };
        match (keys::le_u64(&v, 0), keys::le_u64(&v, 8)) {
            (Some(user_id), Some(device_id)) => Ok(Some(TokenRecord { user_id, device_id })),
            _ => Err(StorageError::Corrupt(format!("token record of {} bytes", v.len()))),
        }
    }

    /// The username of `user_id`, if it exists.
    pub fn username(&self, user_id: u64) -> Result<Option<String>, StorageError> {
        Ok(self
            .get(Cf::Users, &keys::id(user_id))?
            .and_then(|v| v.get(8..).map(|name| String::from_utf8_lossy(name).into_owned())))
    }

    /// The hashes of every live token of `user_id` (a full scan of the tokens: admin only).
    pub fn tokens_of(&self, user_id: u64) -> Result<Vec<[u8; 32]>, StorageError> {
        let mut it = self.db.raw_iterator_cf(self.cf(Cf::Tokens));
        it.seek_to_first();
        let mut out = Vec::new();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if keys::le_u64(v, 0) == Some(user_id) {
                if let Ok(hash) = <[u8; 32]>::try_from(k) {
                    out.push(hash);
                }
            }
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    /// A device's stored delivered cursor (0 if never acked).
    pub fn cursor(&self, user_id: u64, device_id: u64) -> Result<u64, StorageError> {
        Ok(self
            .get_once(Cf::Cursors, &keys::pair(user_id, device_id))?
            .and_then(|v| keys::le_u64(&v, 0))
            .unwrap_or(0))
    }

    /// The highest key's second half within `owner`'s range of a pair-keyed family: the
    /// inbox head, or the last device id. 0 when the range is empty.
    pub fn last_in_range(&self, cf: Cf, owner: u64) -> Result<u64, StorageError> {
        let mut it = self.db.raw_iterator_cf(self.cf(cf));
        it.seek_for_prev(keys::pair(owner, u64::MAX));
        let last = match it.key().and_then(keys::unpair) {
            Some((o, second)) if o == owner => second,
            _ => 0,
        };
        it.status()?;
        Ok(last)
    }

    /// The seq of the newest entry in `user_id`'s inbox (0 if empty).
    pub fn inbox_head(&self, user_id: u64) -> Result<u64, StorageError> {
        self.last_in_range(Cf::Inbox, user_id)
    }

    /// Entries of `user_id`'s inbox after `after_seq`: at most `limit` of them and, beyond
    /// the first, at most `bytes_max` of record bytes.
    pub fn read_inbox(
        &self,
        user_id: u64,
        after_seq: u64,
        limit: usize,
        bytes_max: usize,
    ) -> Result<InboxPage, StorageError> {
        let mut it = self.owner_range(Cf::Inbox, user_id);
        it.seek(keys::pair(user_id, after_seq.saturating_add(1)));
        let mut page = InboxPage::default();
        let mut bytes = 0usize;
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let Some((owner, seq)) = keys::unpair(k) else {
                return Err(StorageError::Corrupt(format!("inbox key of {} bytes", k.len())));
            };
            if owner != user_id {
                break;
            }
            if page.entries.len() >= limit || (!page.entries.is_empty() && bytes + v.len() > bytes_max) {
                page.more = true;
                break;
            }
            bytes += v.len();
            page.entries.push((seq, v.to_vec()));
            it.next();
        }
        it.status()?;
        // Group messages keep one payload for all members: put it back into each record.
        for (_, record) in &mut page.entries {
            if let Some(message_id) = record::shared_payload_of(record) {
                let payload = self.get(Cf::Payloads, &keys::id(message_id))?.unwrap_or_default();
                record::inline_shared_payload(record, &payload);
            }
        }
        Ok(page)
    }

    /// A stored `u64` from the `meta` family.
    pub fn meta_u64(&self, key: &[u8]) -> Result<Option<u64>, StorageError> {
        Ok(self.get(Cf::Meta, key)?.and_then(|v| keys::le_u64(&v, 0)))
    }

    /// Stores and returns the next epoch (the first start gets 1), fsynced before it
    /// returns: a client that saw entries delivered early under one epoch knows from a
    /// login under another that the server restarted and may have lost what was not yet
    /// durable. Called once at start-up, before the log writer runs.
    pub fn bump_epoch(&self) -> Result<u64, StorageError> {
        let epoch = self.meta_u64(META_EPOCH)?.unwrap_or(0) + 1;
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(true);
        self.db
            .put_cf_opt(self.cf(Cf::Meta), META_EPOCH, epoch.to_le_bytes(), &opts)?;
        Ok(epoch)
    }

    /// The highest user id in use (0 if none).
    pub fn max_user_id(&self) -> Result<u64, StorageError> {
        let mut it = self.db.raw_iterator_cf(self.cf(Cf::Users));
        it.seek_to_last();
        let max = it.key().and_then(keys::unid).unwrap_or(0);
        it.status()?;
        Ok(max)
    }

    /// An iterator over the keys of a pair-keyed family that start with `owner` (it stops
    /// at the next owner's first key); seek it into the range.
    fn owner_range(&self, cf: Cf, owner: u64) -> DBRawIterator<'_> {
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(keys::pair(owner.saturating_add(1), 0).to_vec());
        self.db.raw_iterator_cf_opt(self.cf(cf), opts)
    }

    /// Every `(second id, value)` under `owner` in a pair-keyed family, after `after`, at
    /// most `limit` of them, and whether more follow.
    fn pairs_page(&self, cf: Cf, owner: u64, after: u64, limit: usize) -> Result<PairsPage, StorageError> {
        let mut it = self.owner_range(cf, owner);
        it.seek(keys::pair(owner, after.saturating_add(1)));
        let mut out = Vec::new();
        let mut more = false;
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            match keys::unpair(k) {
                Some((o, second)) if o == owner => {
                    if out.len() >= limit {
                        more = true;
                        break;
                    }
                    out.push((second, v.to_vec()));
                }
                _ => break,
            }
            it.next();
        }
        it.status()?;
        Ok((out, more))
    }

    /// A group's description, if it exists.
    pub fn group(&self, group_id: u64) -> Result<Option<GroupRecord>, StorageError> {
        let Some(v) = self.get(Cf::Groups, &keys::id(group_id))? else {
            return Ok(None);
        };
        if v.len() < 9 {
            return Err(StorageError::Corrupt(format!(
                "groups[{group_id}] is {} bytes",
                v.len()
            )));
        }
        Ok(Some(GroupRecord {
            created_us: keys::le_u64(&v, 0).unwrap_or(0),
            persistence: Persistence(v[8]),
            name: String::from_utf8_lossy(&v[9..]).into_owned(),
        }))
    }

    /// The highest group id in use (0 if none).
    pub fn max_group_id(&self) -> Result<u64, StorageError> {
        let mut it = self.db.raw_iterator_cf(self.cf(Cf::Groups));
        it.seek_to_last();
        let max = it.key().and_then(keys::unid).unwrap_or(0);
        it.status()?;
        Ok(max)
    }

    /// A page of a group's members in user id order, and whether more follow.
    pub fn group_members(
        &self,
        group_id: u64,
        after_user_id: u64,
        limit: usize,
    ) -> Result<(Vec<(u64, GroupRole)>, bool), StorageError> {
        let (page, more) = self.pairs_page(Cf::Members, group_id, after_user_id, limit)?;
        let members = page
            .into_iter()
            .map(|(user, v)| (user, GroupRole(v.first().copied().unwrap_or(0))))
            .collect();
        Ok((members, more))
    }

    /// A page of the groups `user_id` belongs to, in group id order, and whether more follow.
    pub fn user_groups(
        &self,
        user_id: u64,
        after_group_id: u64,
        limit: usize,
    ) -> Result<(Vec<(u64, GroupRole)>, bool), StorageError> {
        let (page, more) = self.pairs_page(Cf::Memberships, user_id, after_group_id, limit)?;
        let groups = page
            .into_iter()
            .map(|(group, v)| (group, GroupRole(v.first().copied().unwrap_or(0))))
            .collect();
        Ok((groups, more))
    }

    /// `user_id`'s role in `group_id`, if a member.
    pub fn member_role(&self, group_id: u64, user_id: u64) -> Result<Option<GroupRole>, StorageError> {
        Ok(self
            .get(Cf::Members, &keys::pair(group_id, user_id))?
            .map(|v| GroupRole(v.first().copied().unwrap_or(0))))
    }

    /// The entry of `message_id` in `user_id`'s inbox, as `(seq, record)`: a bisection over
    /// the inbox by seq (message ids grow with seqs in every inbox), a seek per step.
    pub fn find_in_inbox(&self, user_id: u64, message_id: u64) -> Result<Option<(u64, Vec<u8>)>, StorageError> {
        let mut it = self.owner_range(Cf::Inbox, user_id);
        let (mut low, mut high) = (1u64, self.inbox_head(user_id)?);
        while low <= high {
            let middle = low + (high - low) / 2;
            it.seek(keys::pair(user_id, middle));
            let found = match (it.key().and_then(keys::unpair), it.value()) {
                (Some((owner, seq)), Some(v)) if owner == user_id && seq <= high => Some((seq, v)),
                _ => None,
            };
            let Some((seq, record)) = found else {
                high = middle - 1;
                continue;
            };
            let id = record::decode_record(seq, record)
                .map_err(|e| StorageError::Corrupt(format!("inbox {user_id}/{seq}: {e}")))?
                .message_id;
            match id.cmp(&message_id) {
                std::cmp::Ordering::Equal => return Ok(Some((seq, record.to_vec()))),
                std::cmp::Ordering::Less => low = seq + 1,
                std::cmp::Ordering::Greater => high = middle - 1,
            }
        }
        it.status()?;
        Ok(None)
    }

    /// The inbox seq through which `user_id`'s stored conversation states are complete;
    /// `None` if the user has no such mark (its states are complete: see the module docs).
    pub fn convs_through(&self, user_id: u64) -> Result<Option<u64>, StorageError> {
        Ok(self
            .get(Cf::Convs, &keys::convs_mark(user_id))?
            .and_then(|v| keys::le_u64(&v, 0)))
    }

    /// What `user_id`'s inbox entries after `through` change in its conversation states:
    /// per conversation, the newest seq and its ordinal (see [`ConvState::apply`]).
    pub fn conv_replay(&self, user_id: u64, through: u64) -> Result<HashMap<Conversation, (u64, u64)>, StorageError> {
        let mut it = self.owner_range(Cf::Inbox, user_id);
        it.seek(keys::pair(user_id, through.saturating_add(1)));
        let mut latest = HashMap::new();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let Some((owner, seq)) = keys::unpair(k) else {
                return Err(StorageError::Corrupt(format!("inbox key of {} bytes", k.len())));
            };
            if owner != user_id {
                break;
            }
            let corrupt = |e: record::RecordError| StorageError::Corrupt(format!("inbox {user_id}/{seq}: {e}"));
            let conversation = record::decode_record(seq, v).map_err(corrupt)?.conversation;
            let ordinal = record::decode_meta(v).map_err(corrupt)?.ordinal;
            latest.insert(conversation, (seq, ordinal));
            it.next();
        }
        it.status()?;
        Ok(latest)
    }

    /// What the entries after `user_id`'s `convs` mark change in its conversation states
    /// (empty without a mark), to apply to the states as stored. Whatever the writer stores
    /// meanwhile, the result is exact: a state stored later reflects a later mark, and
    /// [`ConvState::apply`] leaves it as it is for entries it already holds.
    pub fn conv_changes(&self, user_id: u64) -> Result<HashMap<Conversation, (u64, u64)>, StorageError> {
        match self.convs_through(user_id)? {
            Some(through) => self.conv_replay(user_id, through),
            None => Ok(HashMap::new()),
        }
    }

    /// `user_id`'s state of one conversation as stored (without the entries after the
    /// user's `convs` mark: the writer applies those itself).
    pub fn stored_conv_state(
        &self,
        user_id: u64,
        conversation: Conversation,
    ) -> Result<Option<ConvState>, StorageError> {
        Ok(self
            .get(Cf::Convs, &keys::conv(user_id, conversation))?
            .and_then(|v| ConvState::decode(&v)))
    }

    /// `user_id`'s state of one conversation, if it has one.
    pub fn conv_state(&self, user_id: u64, conversation: Conversation) -> Result<Option<ConvState>, StorageError> {
        let changes = self.conv_changes(user_id)?;
        let stored = self.stored_conv_state(user_id, conversation)?;
        Ok(match changes.get(&conversation) {
            Some(&(seq, ordinal)) => Some(stored.unwrap_or_default().apply(seq, ordinal)),
            None => stored,
        })
    }

    /// A page of `user_id`'s conversations after `after` in (kind, id) order.
    pub fn conv_states(
        &self,
        user_id: u64,
        after: Option<Conversation>,
        limit: usize,
    ) -> Result<(Vec<ReadPosition>, bool), StorageError> {
        let mut changes = self.conv_changes(user_id)?;
        let after_key = after.map(|c| keys::conv(user_id, c));
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(keys::id(user_id.saturating_add(1)).to_vec());
        let mut it = self.db.raw_iterator_cf_opt(self.cf(Cf::Convs), opts);
        match &after_key {
            Some(k) => {
                it.seek(k);
                if it.key() == Some(&k[..]) {
                    it.next();
                }
            }
            None => it.seek(keys::id(user_id)),
        }
        let mut page: Vec<([u8; 17], ConvState)> = Vec::new();
        let mut more = false;
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let Some((owner, conversation)) = keys::unconv(k) else {
                return Err(StorageError::Corrupt(format!("convs key of {} bytes", k.len())));
            };
            if owner != user_id {
                break;
            }
            if k == keys::convs_mark(user_id) {
                it.next();
                continue;
            }
            if page.len() >= limit {
                more = true;
                break;
            }
            let mut state = ConvState::decode(v)
                .ok_or_else(|| StorageError::Corrupt(format!("convs value of {} bytes", v.len())))?;
            if let Some((seq, ordinal)) = changes.remove(&conversation) {
                state = state.apply(seq, ordinal);
            }
            page.push((keys::conv(user_id, conversation), state));
            it.next();
        }
        it.status()?;
        // Conversations begun after the mark have no stored state yet: those that fall
        // within this page join it (a page that grows past `limit` hands its tail to the next).
        let page_end = if more { page.last().map(|(k, _)| *k) } else { None };
        for (conversation, (seq, ordinal)) in changes {
            let key = keys::conv(user_id, conversation);
            let after_start = after_key.is_none_or(|a| key > a);
            let before_end = page_end.is_none_or(|end| key < end);
            if after_start && before_end && self.stored_conv_state(user_id, conversation)?.is_none() {
                page.push((key, ConvState::default().apply(seq, ordinal)));
            }
        }
        page.sort_unstable_by_key(|(k, _)| *k);
        if page.len() > limit {
            page.truncate(limit);
            more = true;
        }
        let positions = page
            .into_iter()
            .filter_map(|(k, state)| keys::unconv(&k).map(|(_, c)| state.position(c)))
            .collect();
        Ok((positions, more))
    }

    /// A direct conversation's persistence (archive unless set).
    pub fn direct_persistence(&self, a: u64, b: u64) -> Result<Persistence, StorageError> {
        Ok(self
            .get(Cf::Settings, &keys::pair(a.min(b), a.max(b)))?
            .and_then(|v| v.first().copied())
            .map_or(Persistence::ARCHIVE, Persistence))
    }

    /// Every device of `user_id` with its stored cursor (0 if it never acked).
    pub fn device_cursors(&self, user_id: u64) -> Result<Vec<(u64, u64)>, StorageError> {
        let (devices, _) = self.pairs_page(Cf::Devices, user_id, 0, usize::MAX)?;
        devices
            .into_iter()
            .map(|(device, _)| Ok((device, self.cursor(user_id, device)?)))
            .collect()
    }

    /// How far the writer's scans behind `user_id`'s cursors have got.
    pub fn user_scan(&self, user_id: u64) -> Result<UserScan, StorageError> {
        Ok(self
            .get(Cf::Cursors, &keys::pair(user_id, USER_SCAN_DEVICE_ID))?
            .and_then(|v| {
                Some(UserScan {
                    receipts_seq: keys::le_u64(&v, 0)?,
                    expired_seq: keys::le_u64(&v, 8)?,
                })
            })
            .unwrap_or_default())
    }

    /// When `user_id` was last seen going offline (µs; 0 if never stored).
    pub fn last_seen(&self, user_id: u64) -> Result<u64, StorageError> {
        Ok(self
            .get(Cf::LastSeen, &keys::id(user_id))?
            .and_then(|v| keys::le_u64(&v, 0))
            .unwrap_or(0))
    }

    /// One inbox entry.
    pub fn inbox_entry(&self, user_id: u64, seq: u64) -> Result<Option<Vec<u8>>, StorageError> {
        self.get(Cf::Inbox, &keys::pair(user_id, seq))
    }

    /// The original outcome of a send, if `(sender, client_msg_id)` was stored before.
    pub fn dedup(&self, sender: u64, client_msg_id: u64) -> Result<Option<[u64; 3]>, StorageError> {
        Ok(self
            .get(Cf::Dedup, &keys::pair(sender, client_msg_id))?
            .and_then(|v| Some([keys::le_u64(&v, 0)?, keys::le_u64(&v, 8)?, keys::le_u64(&v, 16)?])))
    }
}
