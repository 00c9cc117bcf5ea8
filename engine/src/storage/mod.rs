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
//! | `meta` | name | value (LE u64) |
//!
//! Invariants: a user's inbox seqs are dense from 1 and only the log writer writes any
//! family, so the writer's cached counters (inbox heads, last device ids, next user id)
//! are authoritative while the process runs and are recovered from these keys at start.

pub mod keys;
pub mod record;
pub mod writer;

use std::path::Path;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, Options, ReadOptions, DB,
};

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
}

impl Cf {
    /// Every family, in creation order.
    pub const ALL: [Cf; 9] = [
        Cf::Users,
        Cf::Usernames,
        Cf::Credentials,
        Cf::Tokens,
        Cf::Devices,
        Cf::Inbox,
        Cf::Cursors,
        Cf::Dedup,
        Cf::Meta,
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
        }
    }
}

/// `meta` key of the highest message id ever handed out.
pub const META_MESSAGE_ID_HWM: &[u8] = b"message_id_hwm";

/// Shared block cache for all families.
const BLOCK_CACHE_BYTES: usize = 64 << 20;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("the data directory {dir} is in use by another hotline process (RocksDB lock held); stop it or pick another --data-dir")]
    Locked { dir: String },
    #[error("RocksDB: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("corrupt database: {0}")]
    Corrupt(String),
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

/// One page of an inbox read.
#[derive(Debug, Default)]
pub struct InboxPage {
    /// `(seq, stored record)` in seq order.
    pub entries: Vec<(u64, Vec<u8>)>,
    /// Whether entries exist after the last one returned.
    pub more: bool,
}

impl Storage {
    /// Opens (creating if missing) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Storage, StorageError> {
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_background_jobs(2);
        db_opts.set_bytes_per_sync(1 << 20);
        db_opts.set_keep_log_file_num(4);
        let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let families = Cf::ALL.iter().map(|cf| {
            let mut table = BlockBasedOptions::default();
            table.set_block_cache(&cache);
            table.set_cache_index_and_filter_blocks(true);
            table.set_pin_l0_filter_and_index_blocks_in_cache(true);
            // Point lookups (dedup, tokens, names, user existence) mostly miss or hit
            // recent data: a bloom filter answers most misses without touching a block.
            table.set_bloom_filter(10.0, false);
            let mut o = Options::default();
            o.set_block_based_table_factory(&table);
            o.set_compression_type(if *cf == Cf::Inbox {
                DBCompressionType::Lz4
            } else {
                DBCompressionType::None
            });
            ColumnFamilyDescriptor::new(cf.name(), o)
        });
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
        let Some(v) = self.get(Cf::Tokens, token_hash)? else {
            return Ok(None);
        };
        match (keys::le_u64(&v, 0), keys::le_u64(&v, 8)) {
            (Some(user_id), Some(device_id)) => Ok(Some(TokenRecord { user_id, device_id })),
            _ => Err(StorageError::Corrupt(format!("token record of {} bytes", v.len()))),
        }
    }

    /// A device's stored delivered cursor (0 if never acked).
    pub fn cursor(&self, user_id: u64, device_id: u64) -> Result<u64, StorageError> {
        Ok(self
            .get(Cf::Cursors, &keys::pair(user_id, device_id))?
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
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(keys::pair(user_id.saturating_add(1), 0).to_vec());
        let mut it = self.db.raw_iterator_cf_opt(self.cf(Cf::Inbox), opts);
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
        Ok(page)
    }

    /// A stored `u64` from the `meta` family.
    pub fn meta_u64(&self, key: &[u8]) -> Result<Option<u64>, StorageError> {
        Ok(self.get(Cf::Meta, key)?.and_then(|v| keys::le_u64(&v, 0)))
    }

    /// The highest user id in use (0 if none).
    pub fn max_user_id(&self) -> Result<u64, StorageError> {
        let mut it = self.db.raw_iterator_cf(self.cf(Cf::Users));
        it.seek_to_last();
        let max = it.key().and_then(keys::unid).unwrap_or(0);
        it.status()?;
        Ok(max)
    }

    /// The original outcome of a send, if `(sender, client_msg_id)` was stored before.
    pub fn dedup(&self, sender: u64, client_msg_id: u64) -> Result<Option<[u64; 3]>, StorageError> {
        Ok(self
            .get(Cf::Dedup, &keys::pair(sender, client_msg_id))?
            .and_then(|v| Some([keys::le_u64(&v, 0)?, keys::le_u64(&v, 8)?, keys::le_u64(&v, 16)?])))
    }
}
