//! How far the log is durable, in group commits: the writer numbers its commits, says when
//! one is *written* (visible to readers: in the memtable and the WAL file, not yet fsynced)
//! and when it is *synced* (fsynced; under `async` durability, written is as durable as
//! it gets). Readers of the log (the helpers' inbox reads and token logins) wait until
//! every commit they might have seen is synced, so nothing they answer can vanish; the
//! cores compare a live delivery's commit with [`Watermark::synced`] to know when it
//! stopped being tentative (early delivery, docs/guarantees.md).
//!
//! Invariants: `synced <= written`; both only grow; a commit's number is stored in
//! `written` *before* its write, so a reader that saw any of its entries and then loads
//! `written` gets at least that number.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// The writer's commit numbers (see the module docs). Shared through the `LogWriter`.
#[derive(Debug, Default)]
pub struct Watermark {
    written: AtomicU64,
    synced: AtomicU64,
    /// Readers waiting in [`Watermark::wait_synced`]; the writer notifies only if any.
    waiters: AtomicUsize,
    /// An fsync failed: `synced` never moves again in this run.
    failed: AtomicBool,
    lock: Mutex<()>,
    moved: Condvar,
}

impl Watermark {
    /// The writer is about to write commit `n` (commits are numbered from 1).
    pub(crate) fn writing(&self, n: u64) {
        debug_assert!(n > self.written.load(Ordering::Relaxed), "commit numbers grow");
        self.written.store(n, Ordering::SeqCst);
    }

    /// Commit `n` and every one before it are synced (or, for a failed write, left nothing
    /// to wait for).
    pub(crate) fn synced_through(&self, n: u64) {
        debug_assert!(n <= self.written.load(Ordering::Relaxed), "synced <= written");
        self.synced.store(n, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _guard = self.lock.lock();
            self.moved.notify_all();
        }
    }

    /// An fsync failed: nothing written after `synced` will ever be known durable in this
    /// run, so waiting for it is pointless; every waiter gives up at once.
    pub(crate) fn fail(&self) {
        self.failed.store(true, Ordering::SeqCst);
        let _guard = self.lock.lock();
        self.moved.notify_all();
    }

    /// The last commit written (0: none yet).
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    /// The last commit synced (0: none yet).
    pub fn synced(&self) -> u64 {
        self.synced.load(Ordering::SeqCst)
    }

    /// Waits until every commit written so far is synced, at most `timeout`. Call it after
    /// a read: whatever the read saw is durable once this returns true. False: the log
    /// did not sync in time (a failing disk), or cannot any more (a failed fsync: at once).
    pub fn wait_synced(&self, timeout: Duration) -> bool {
        let target = self.written();
        if self.synced() >= target {
            return true;
        }
        if self.failed.load(Ordering::SeqCst) {
            return false;
        }
        let deadline = Instant::now() + timeout;
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let mut guard = self.lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let done = loop {
            if self.synced() >= target {
                break true;
            }
            if self.failed.load(Ordering::SeqCst) {
                break false;
            }
            let now = Instant::now();
            if now >= deadline {
                break false;
            }
            // Bounded waits: a missed notification costs at most one slice.
            let slice = (deadline - now).min(Duration::from_millis(5));
            guard = match self.moved.wait_timeout(guard, slice) {
                Ok((g, _)) => g,
                Err(poisoned) => poisoned.into_inner().0,
            };
        };
        drop(guard);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_reader_waits_for_what_was_written_before_it_asked() {
        let w = Arc::new(Watermark::default());
        assert!(w.wait_synced(Duration::ZERO), "nothing written: nothing to wait for");
        w.writing(1);
        assert!(!w.wait_synced(Duration::from_millis(20)), "commit 1 is not synced");
        let writer = Arc::clone(&w);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            writer.synced_through(1);
        });
        assert!(w.wait_synced(Duration::from_secs(30)));
        t.join().expect("writer thread");
        assert_eq!((w.written(), w.synced()), (1, 1));
        // A commit written after the reader asked is not waited for.
        w.writing(2);
        assert!(!w.wait_synced(Duration::ZERO));
    }

    #[test]
    fn a_failed_fsync_releases_every_waiter_at_once() {
        let w = Arc::new(Watermark::default());
        w.writing(1);
        let failer = Arc::clone(&w);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            failer.fail();
        });
        let started = Instant::now();
        assert!(
            !w.wait_synced(Duration::from_secs(30)),
            "commit 1 will never be known synced"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the waiter gave up at the failure"
        );
        t.join().expect("failing thread");
        let started = Instant::now();
        assert!(!w.wait_synced(Duration::from_secs(30)));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "a later reader does not wait at all"
        );
    }
}
