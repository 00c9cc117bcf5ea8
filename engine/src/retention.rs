//! Retention: messages older than their conversation's retention period lose their
//! payload, in the background, on a thread of their own.
//!
//! An expired message keeps a stub in each inbox (same ids and seq, kind `Expired`, no
//! payload: the record the store-until-delivered expiry already writes), so every inbox
//! stays dense and no device cursor, catch-up or `Sync` ever meets a gap. A group's shared
//! payload is deleted with its message. Stubs are idempotent, and the writer never
//! sequences or rereads past records except to make the same stub, so this thread rewrites
//! them directly instead of queueing behind live traffic.
//!
//! Per sweep, each inbox is read from the first entry not yet known to be a stub (kept in
//! memory; a restart rescans once) up to the first entry too young to expire under the
//! shortest period in force, in pages of [`SWEEP_PAGE_MESSAGES`].

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hotline_wire::{Conversation, MessageKind};
use rocksdb::WriteBatch;

use crate::config::RetentionConfig;
use crate::shared::Shared;
use crate::storage::record::{decode_record, expired_record};
use crate::storage::{keys, Cf, Storage, StorageError};

/// Inbox entries read per page during a sweep.
const SWEEP_PAGE_MESSAGES: usize = 1_024;
/// How often the thread checks for shutdown between sweeps.
const SHUTDOWN_POLL_MS: u64 = 50;
/// Microseconds in a day.
const DAY_US: f64 = 86_400e6;

/// Starts the retention thread if any retention is configured.
pub(crate) fn spawn(shared: Arc<Shared>, storage: Arc<Storage>) -> std::io::Result<Option<JoinHandle<()>>> {
    let retention = shared.config.retention.clone();
    if !retention.any() {
        return Ok(None);
    }
    std::thread::Builder::new()
        .name("hotline-retention".into())
        .spawn(move || {
            let mut sweeper = Sweeper::default();
            let interval = Duration::from_millis(retention.sweep_interval_ms);
            while !shared.shutdown.load(Ordering::Relaxed) {
                let started = Instant::now();
                match sweeper.sweep(&storage, &retention, now_us()) {
                    Ok(n) => {
                        shared.metrics.retention_expired.fetch_add(n, Ordering::Relaxed);
                        if n > 0 {
                            tracing::info!("retention: {n} messages expired in {:?}", started.elapsed());
                        }
                    }
                    Err(e) => tracing::warn!("retention sweep failed: {e}"),
                }
                while started.elapsed() < interval && !shared.shutdown.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(SHUTDOWN_POLL_MS).min(interval));
                }
            }
        })
        .map(Some)
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Per-inbox progress between sweeps.
#[derive(Debug, Default)]
pub(crate) struct Sweeper {
    /// User → highest seq below which every entry is a stub.
    stubbed_through: HashMap<u64, u64>,
}

impl Sweeper {
    /// One pass over every inbox; returns how many entries it turned into stubs.
    pub(crate) fn sweep(
        &mut self,
        storage: &Storage,
        retention: &RetentionConfig,
        now_us: u64,
    ) -> Result<u64, StorageError> {
        let Some(shortest) = retention.shortest_days() else {
            return Ok(0);
        };
        let youngest_expirable = now_us.saturating_sub((shortest * DAY_US) as u64);
        let mut expired = 0;
        for user in 1..=storage.max_user_id()? {
            let mut after = self.stubbed_through.get(&user).copied().unwrap_or(0);
            let mut dense = true;
            'pages: loop {
                let page = storage.read_inbox(user, after, SWEEP_PAGE_MESSAGES, usize::MAX)?;
                let mut batch = WriteBatch::default();
                for (seq, record) in &page.entries {
                    after = *seq;
                    let Ok(d) = decode_record(*seq, record) else { continue };
                    if d.timestamp_us > youngest_expirable {
                        storage.db().write(batch)?;
                        break 'pages;
                    }
                    let is_stub = d.kind == MessageKind::EXPIRED;
                    let expires = !is_stub
                        && retention
                            .days_for(user, d.conversation)
                            .is_some_and(|days| d.timestamp_us < now_us.saturating_sub((days * DAY_US) as u64));
                    if expires {
                        if let Ok(stub) = expired_record(record) {
                            batch.put_cf(storage.cf(Cf::Inbox), keys::pair(user, *seq), stub);
                            if matches!(d.conversation, Conversation::Group(_)) {
                                batch.delete_cf(storage.cf(Cf::Payloads), keys::id(d.message_id));
                            }
                            expired += 1;
                        }
                    }
                    dense &= is_stub || expires;
                    if dense {
                        self.stubbed_through.insert(user, *seq);
                    }
                }
                storage.db().write(batch)?;
                if !page.more {
                    break;
                }
            }
        }
        Ok(expired)
    }
}
