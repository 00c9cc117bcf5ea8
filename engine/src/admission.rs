//! Admission control by queueing delay: past a configured delay (`--shed-queue-delay-ms`)
//! a core answers new `Send`s with `Error{Overloaded, retry_after_ms}` at once, instead of
//! letting them queue behind work it cannot finish in time.
//!
//! What a send waits in, and how it is measured:
//! - the log writer's queue: each request is stamped when queued, and whoever takes a
//!   batch publishes the age of its oldest request ([`LogWriter::queue_delay_us`]; 0 when
//!   it found the queue empty);
//! - its core's event loop: a socket that became readable waits for the pass that reads
//!   it, so a core that runs pass after pass without going idle measures the time from one
//!   pass's start to the next (the other tasks of the core, inline commits and mailbox
//!   drains, run in between), and a pass that follows an idle wait measures 0;
//! - its core's mailbox: the deliveries and replies of committed sends wait there for the
//!   core to push them out, stamped when queued; each drain measures the oldest it took.
//!   A core that reads faster than it delivers grows this queue while its passes stay short.
//!
//! The delay a core acts on is the larger of the two. Like CoDel (Nichols and Jacobson,
//! "Controlling Queue Delay", 2012), a delay above the target is only a *standing* queue,
//! worth refusing work for, once it has stayed above for an interval
//! ([`SHED_INTERVAL_TARGETS`] targets, at least [`SHED_INTERVAL_MS_MIN`]): a burst (a big group's fan-out, one slow fsync, a
//! hypervisor pause) drains by itself and sheds nothing. Once shedding, a core refuses a
//! send while the latest delay it saw is above the target and admits it otherwise, so
//! admitted work holds the queue near the target (an accepted send waits about the
//! target, not seconds); it stops once the delay has stayed at or below the target for an
//! interval.
//!
//! What is never shed by delay: logins, `Ack`s (their cursor writes), reads, and every
//! other request; they meet only the queues' bounds, and client writes may fill only
//! [`crate::storage::writer::WRITE_QUEUE_CLIENT_REQUESTS_MAX`] of the writer's queue, so
//! the rest stays for logins, cursors and the server's own writes: an overloaded server
//! still lets users in and drains.
//!
//! Ownership: each core owns its [`Admission`] (no sharing); the writer's delay is one
//! atomic the cores read.
//!
//! [`LogWriter::queue_delay_us`]: crate::storage::writer::LogWriter::queue_delay_us

/// The shedding interval, in targets: a delay must stay above the target this long (and,
/// to stop shedding, at or below it this long) before the state changes.
pub(crate) const SHED_INTERVAL_TARGETS: u64 = 4;
/// The shortest shedding interval (ms), whatever the target: CoDel's 100 ms. A disk's
/// fsync hiccup or a burst of logins can stall the log for tens of milliseconds at any load
/// (the soak saw 147 ms at a sixth of capacity); refusing sends for that would help
/// nothing, since the stall ends by itself. Under a real overload the delay stands, and
/// shedding starts 100 ms into it.
pub(crate) const SHED_INTERVAL_MS_MIN: u64 = 100;

/// Where a core's admission stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Admitting everything; `above_since_us`: when the delay last rose above the target
    /// (`None` while it is at or below).
    Calm { above_since_us: Option<u64> },
    /// Refusing sends while the delay is above the target; `below_since_us`: when it last
    /// fell to or below the target.
    Shedding { below_since_us: Option<u64> },
}

/// One core's admission gate (see the module docs).
#[derive(Debug)]
pub(crate) struct Admission {
    /// The target delay (µs); 0: never shed by delay.
    target_us: u64,
    interval_us: u64,
    state: State,
    /// The latest delay seen (µs), and when (µs).
    delay_us: u64,
    seen_us: u64,
}

impl Admission {
    /// A gate for a target of `target_ms` (0 turns shedding by delay off).
    pub(crate) fn new(target_ms: u32) -> Admission {
        let target_us = u64::from(target_ms) * 1_000;
        Admission {
            target_us,
            interval_us: (target_us * SHED_INTERVAL_TARGETS).max(SHED_INTERVAL_MS_MIN * 1_000),
            state: State::Calm { above_since_us: None },
            delay_us: 0,
            seen_us: 0,
        }
    }

    /// Takes a measurement: at `now_us`, requests wait `delay_us`. Returns whether this
    /// turned shedding on (`Some(true)`) or off (`Some(false)`).
    /// Samples further apart than the interval do not make a standing delay: nothing was
    /// seen in between (an idle core takes none).
    pub(crate) fn observe(&mut self, now_us: u64, delay_us: u64) -> Option<bool> {
        let gap_us = now_us.saturating_sub(self.seen_us);
        self.delay_us = delay_us;
        self.seen_us = now_us;
        if self.target_us == 0 {
            return None;
        }
        let above = delay_us > self.target_us;
        match &mut self.state {
            State::Calm { above_since_us } => {
                if gap_us > self.interval_us {
                    *above_since_us = None;
                }
                if !above {
                    *above_since_us = None;
                    return None;
                }
                let since = *above_since_us.get_or_insert(now_us);
                if now_us.saturating_sub(since) < self.interval_us {
                    return None;
                }
                self.state = State::Shedding { below_since_us: None };
                Some(true)
            }
            State::Shedding { below_since_us } => {
                if above {
                    *below_since_us = None;
                    return None;
                }
                let since = *below_since_us.get_or_insert(now_us);
                if now_us.saturating_sub(since) < self.interval_us {
                    return None;
                }
                self.state = State::Calm { above_since_us: None };
                Some(false)
            }
        }
    }

    /// Whether a new send may go ahead now.
    pub(crate) fn admits(&self) -> bool {
        match self.state {
            State::Calm { .. } => true,
            State::Shedding { .. } => self.delay_us <= self.target_us,
        }
    }

    /// Whether the gate is shedding.
    #[cfg(test)]
    pub(crate) fn shedding(&self) -> bool {
        matches!(self.state, State::Shedding { .. })
    }

    /// The latest delay seen (µs).
    pub(crate) fn delay_us(&self) -> u64 {
        self.delay_us
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000;
    /// The interval of a 5 ms target, in ms.
    const INTERVAL_MS: u64 = SHED_INTERVAL_MS_MIN;

    #[test]
    fn a_burst_shorter_than_the_interval_sheds_nothing() {
        let mut gate = Admission::new(5);
        for t in 0..INTERVAL_MS - 5 {
            assert_eq!(gate.observe(t * MS, 50 * MS), None);
            assert!(gate.admits());
        }
        gate.observe(INTERVAL_MS * MS, MS);
        for t in INTERVAL_MS + 1..2 * INTERVAL_MS {
            assert_eq!(
                gate.observe(t * MS, 50 * MS),
                None,
                "a low sample restarts the interval"
            );
            assert!(gate.admits());
        }
    }

    #[test]
    fn a_standing_delay_sheds_while_above_and_admits_while_below() {
        let mut gate = Admission::new(5);
        for t in 0..INTERVAL_MS {
            assert_eq!(gate.observe(t * MS, 8 * MS), None);
        }
        assert_eq!(gate.observe(INTERVAL_MS * MS, 8 * MS), Some(true));
        assert!(gate.shedding());
        assert!(!gate.admits(), "above the target while shedding");
        gate.observe((INTERVAL_MS + 1) * MS, 3 * MS);
        assert!(gate.admits(), "below the target: admit, to hold the queue near it");
        assert!(gate.shedding(), "one low sample does not end shedding");
        gate.observe((INTERVAL_MS + 2) * MS, 9 * MS);
        assert!(!gate.admits());
    }

    #[test]
    fn shedding_stops_after_an_interval_at_or_below_the_target() {
        let mut gate = Admission::new(5);
        for t in 0..=INTERVAL_MS {
            gate.observe(t * MS, 10 * MS);
        }
        assert!(gate.shedding());
        for t in INTERVAL_MS + 1..2 * INTERVAL_MS + 1 {
            assert_eq!(gate.observe(t * MS, 5 * MS), None, "at the target is not above it");
        }
        assert_eq!(gate.observe((2 * INTERVAL_MS + 1) * MS, 5 * MS), Some(false));
        assert!(!gate.shedding());
        assert!(gate.admits());
    }

    #[test]
    fn sparse_samples_do_not_make_a_standing_delay() {
        let mut gate = Admission::new(5);
        for t in 0..10 {
            let at = t * (INTERVAL_MS + 1) * MS;
            assert_eq!(gate.observe(at, 8 * MS), None, "nothing seen between samples");
            assert!(gate.admits());
        }
    }

    #[test]
    fn a_zero_target_never_sheds() {
        let mut gate = Admission::new(0);
        for t in 0..1_000 {
            assert_eq!(gate.observe(t * MS, 10_000 * MS), None);
            assert!(gate.admits());
        }
        assert_eq!(gate.delay_us(), 10_000 * MS);
    }

    #[test]
    fn a_large_target_stretches_the_interval() {
        let mut gate = Admission::new(50);
        for t in 0..4 * 50 {
            assert_eq!(gate.observe(t * MS, 60 * MS), None, "4 x 50 ms is above the floor");
        }
        assert_eq!(gate.observe(4 * 50 * MS, 60 * MS), Some(true));
    }
}
