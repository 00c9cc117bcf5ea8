//! Time: one clock for everything the load generator measures, and a precise timer.
//!
//! Every timestamp is `CLOCK_MONOTONIC` in nanoseconds ([`now_ns`]). It is the same clock in
//! every process on the machine, so a scheduled send time written into a payload by one
//! worker can be subtracted from a delivery time read by another, and the coordinator can
//! hand all workers one absolute start time.
//!
//! [`Timer`] is a `timerfd` armed at absolute monotonic deadlines, so the event loop wakes
//! for the next scheduled send with microsecond precision instead of `epoll_wait`'s
//! millisecond granularity, without spinning.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Nanoseconds in a second.
pub(crate) const NS_PER_S: u64 = 1_000_000_000;

/// Nanoseconds in a millisecond.
pub(crate) const NS_PER_MS: u64 = 1_000_000;

/// `CLOCK_MONOTONIC` now, in nanoseconds.
pub(crate) fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC) failed");
    ts.tv_sec as u64 * NS_PER_S + ts.tv_nsec as u64
}

/// Milliseconds since the Unix epoch (wall clock), for run nonces and reports.
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Asks the kernel to fire this thread's timers within 1 µs of their deadline (the default
/// slack is 50 µs, which would show up in every latency measured from a scheduled time).
pub(crate) fn tighten_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes an integer argument and touches no memory.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong, 0, 0, 0) };
}

/// A non-blocking `timerfd` on `CLOCK_MONOTONIC`, armed at absolute deadlines.
#[derive(Debug)]
pub(crate) struct Timer {
    fd: OwnedFd,
    /// The deadline it is armed for, if it has not fired (been [`Timer::clear`]ed) since.
    armed_ns: Option<u64>,
}

impl Timer {
    /// A disarmed timer.
    pub(crate) fn new() -> io::Result<Timer> {
        // SAFETY: timerfd_create has no memory effects; the result is checked below.
        let fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Timer { fd, armed_ns: None })
    }

    /// Arms the timer for `deadline_ns` unless it is already armed for that time or earlier.
    pub(crate) fn arm_at(&mut self, deadline_ns: u64) -> io::Result<()> {
        if self.armed_ns.is_some_and(|armed| armed <= deadline_ns) {
            return Ok(());
        }
        // A zero it_value would disarm: a deadline in the past fires at once instead.
        let deadline_ns = deadline_ns.max(1);
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec {
                tv_sec: (deadline_ns / NS_PER_S) as libc::time_t,
                tv_nsec: (deadline_ns % NS_PER_S) as libc::c_long,
            },
        };
        // SAFETY: `spec` is a valid itimerspec; a null old-value pointer is allowed.
        let rc = unsafe {
            libc::timerfd_settime(
                self.fd.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        self.armed_ns = Some(deadline_ns);
        Ok(())
    }

    /// Consumes a expiry after the descriptor turned readable; the timer is then disarmed.
    pub(crate) fn clear(&mut self) {
        let mut expirations = [0u8; 8];
        // SAFETY: reads at most 8 bytes into an 8-byte buffer. EAGAIN (nothing expired) is fine.
        unsafe { libc::read(self.fd.as_raw_fd(), expirations.as_mut_ptr().cast(), expirations.len()) };
        self.armed_ns = None;
    }
}

impl AsRawFd for Timer {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timer_fires_at_its_deadline_and_not_before() {
        let mut timer = Timer::new().expect("timerfd");
        let start = now_ns();
        timer.arm_at(start + 2 * NS_PER_MS).expect("arm");
        let mut pfd = libc::pollfd {
            fd: timer.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, 1_000) };
        assert_eq!(n, 1, "the timer fired");
        assert!(now_ns() >= start + 2 * NS_PER_MS);
        timer.clear();
        // SAFETY: as above.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        assert_eq!(n, 0, "cleared");
    }
}
