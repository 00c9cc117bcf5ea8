//! One readiness source per core for all of its connections, instead of one task and one
//! poll operation per connection.
//!
//! A connection is registered once, when the core takes it (accepted or handed over), and
//! deregistered once, when it leaves; between the two the kernel reports every change of
//! its readability without being asked again:
//! - **io_uring** (the default where the kernel allows it): a ring of the core's own, apart
//!   from monoio's, with one multishot `POLL_ADD` per connection. Events are completions
//!   read straight from shared memory (no system call to reap them); registering,
//!   deregistering and arming a write wait are the only submissions.
//! - **epoll** (where io_uring is unavailable, or `--poller epoll`): one edge-triggered
//!   epoll set; `epoll_wait` collects every ready connection in one call.
//!
//! Either way the core's event loop waits on one descriptor ([`Poller::fd`]), readable
//! whenever events are pending, through monoio; it then takes every event at once
//! ([`Poller::reap`]) and reads each ready socket with `recv`.
//!
//! Events are edges: a connection is reported when data arrives, not while data waits. The
//! core therefore keeps a connection's readability itself (`Conn::readable`) and reads it
//! until `recv` runs dry, or comes back to it, so nothing waits unread (see
//! [`crate::conn`]). A token carries the connection's slab index and generation, so an
//! event that was on its way when the connection went (and its slot was reused) is told
//! apart and dropped.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use io_uring::{cqueue, opcode, types, IoUring};

/// Submission queue entries of a core's ring: registrations and write waits only, submitted
/// as they are made, so a few hundred is plenty.
const URING_SQ_ENTRIES: u32 = 512;
/// Completion queue entries of a core's ring: four passes' worth of events
/// ([`crate::limits::IO_EVENTS_PER_PASS_MAX`]). Past it the kernel keeps completions aside
/// (it never drops them) and ends the multishot polls it could not post for; the core
/// re-arms those. The ring's pages count in the server's memory (16 B per entry, 64 KiB
/// here; 32,768 entries cost 55 B per connection at 19,000 connections).
const URING_CQ_ENTRIES: u32 = 4_096;
const _: () = assert!(URING_CQ_ENTRIES as usize >= 4 * crate::limits::IO_EVENTS_PER_PASS_MAX);
/// Events one `epoll_wait` takes at most.
const EPOLL_EVENTS_MAX: usize = 1_024;

/// Which mechanism reports readiness (`--poller`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PollerKind {
    /// io_uring if the kernel allows it, else epoll.
    #[default]
    Auto,
    /// A ring of the core's own with one multishot poll per connection.
    Uring,
    /// Edge-triggered epoll.
    Epoll,
}

/// What a reaped event says about one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Event {
    /// The connection's slab index and generation (see [`Token`]).
    pub idx: usize,
    pub generation: u32,
    /// Data, end of file or an error may be waiting.
    pub readable: bool,
    /// Room in the send buffer (or an error) after a write wait was armed.
    pub writable: bool,
    /// The multishot poll ended without being asked to: register the connection again.
    pub rearm: bool,
}

/// A connection's identity in a readiness source: slab index (low 30 bits), generation
/// (next 32 bits) and what the operation waits for (top 2 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Token(u64);

const TOKEN_INDEX_BITS: u32 = 30;
const TOKEN_KIND_SHIFT: u32 = 62;
const KIND_READ: u64 = 0;
const KIND_WRITE: u64 = 1;
/// The completion of a `POLL_REMOVE` itself: carries no connection.
const KIND_REMOVE: u64 = 2;

impl Token {
    fn new(idx: usize, generation: u32, kind: u64) -> Token {
        // Each connection holds a descriptor, and Linux caps a process's descriptors below
        // 2^30 (`fs.nr_open`), so a slab index always fits.
        assert!(
            idx < 1 << TOKEN_INDEX_BITS,
            "connection index {idx} does not fit a token"
        );
        Token((kind << TOKEN_KIND_SHIFT) | (u64::from(generation) << TOKEN_INDEX_BITS) | idx as u64)
    }

    fn idx(self) -> usize {
        (self.0 & ((1 << TOKEN_INDEX_BITS) - 1)) as usize
    }

    fn generation(self) -> u32 {
        (self.0 >> TOKEN_INDEX_BITS) as u32
    }

    fn kind(self) -> u64 {
        self.0 >> TOKEN_KIND_SHIFT
    }
}

/// A core's readiness source (see the module docs). Used only on the thread that made it.
pub(crate) enum Poller {
    /// Boxed: the ring's handles are ten times the epoll variant's size.
    Uring(Box<UringPoller>),
    Epoll(EpollPoller),
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Poller {
    /// Opens the readiness source `kind` asks for; `Auto` falls back to epoll when a ring
    /// cannot be made (io_uring disabled or missing).
    pub(crate) fn open(kind: PollerKind) -> io::Result<Poller> {
        match kind {
            PollerKind::Uring => {
                UringPoller::open(URING_SQ_ENTRIES, URING_CQ_ENTRIES).map(|p| Poller::Uring(Box::new(p)))
            }
            PollerKind::Epoll => EpollPoller::open().map(Poller::Epoll),
            PollerKind::Auto => match UringPoller::open(URING_SQ_ENTRIES, URING_CQ_ENTRIES) {
                Ok(p) => Ok(Poller::Uring(Box::new(p))),
                Err(e) => {
                    tracing::debug!("no io_uring for the connection poller ({e}): using epoll");
                    EpollPoller::open().map(Poller::Epoll)
                }
            },
        }
    }

    /// `io_uring` or `epoll`, for logs.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Poller::Uring(_) => "io_uring",
            Poller::Epoll(_) => "epoll",
        }
    }

    /// The descriptor that is readable whenever events are waiting.
    pub(crate) fn fd(&self) -> RawFd {
        match self {
            Poller::Uring(p) => p.ring.as_raw_fd(),
            Poller::Epoll(p) => p.epfd.as_raw_fd(),
        }
    }

    /// Starts reporting socket `fd`'s readability as connection `(idx, generation)`. A
    /// socket that is readable already is reported at once.
    pub(crate) fn register(&mut self, fd: RawFd, idx: usize, generation: u32) -> io::Result<()> {
        let token = Token::new(idx, generation, KIND_READ);
        match self {
            Poller::Uring(p) => {
                let poll = opcode::PollAdd::new(types::Fd(fd), read_mask())
                    .multi(true)
                    .build()
                    .user_data(token.0);
                p.submit(&[poll])
            }
            Poller::Epoll(p) => p.ctl(libc::EPOLL_CTL_ADD, fd, token, false),
        }
    }

    /// Reports once when socket `fd` has room to send (io_uring), or from now on with every
    /// readiness change (epoll, where a spurious report is harmless).
    pub(crate) fn arm_write(&mut self, fd: RawFd, idx: usize, generation: u32) -> io::Result<()> {
        match self {
            Poller::Uring(p) => {
                let token = Token::new(idx, generation, KIND_WRITE);
                let poll = opcode::PollAdd::new(types::Fd(fd), libc::POLLOUT as u32)
                    .build()
                    .user_data(token.0);
                p.submit(&[poll])
            }
            Poller::Epoll(p) => p.ctl(libc::EPOLL_CTL_MOD, fd, Token::new(idx, generation, KIND_READ), true),
        }
    }

    /// Stops reporting connection `(idx, generation)` on socket `fd` (still open). Events
    /// already on their way may still be reaped; the core drops them by generation.
    pub(crate) fn deregister(&mut self, fd: RawFd, idx: usize, generation: u32) {
        let result = match self {
            Poller::Uring(p) => {
                let removed = Token::new(0, 0, KIND_REMOVE).0;
                let read = Token::new(idx, generation, KIND_READ).0;
                let write = Token::new(idx, generation, KIND_WRITE).0;
                p.submit(&[
                    opcode::PollRemove::new(read).build().user_data(removed),
                    opcode::PollRemove::new(write).build().user_data(removed),
                ])
            }
            Poller::Epoll(p) => {
                // SAFETY: epoll_ctl on our epoll set and an open descriptor; DEL reads no event.
                let rc = unsafe { libc::epoll_ctl(p.epfd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
                if rc == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            }
        };
        if let Err(e) = result {
            tracing::warn!("cannot stop polling connection {idx}: {e}");
        }
    }

    /// Appends every pending event (at most `max`) to `out`; never blocks. Returns whether
    /// `max` stopped it (more may be pending).
    pub(crate) fn reap(&mut self, out: &mut Vec<Event>, max: usize) -> bool {
        match self {
            Poller::Uring(p) => p.reap(out, max),
            Poller::Epoll(p) => p.reap(out, max),
        }
    }
}

fn read_mask() -> u32 {
    (libc::POLLIN | libc::POLLRDHUP) as u32
}

/// The io_uring readiness source: a ring of the core's own.
pub(crate) struct UringPoller {
    ring: IoUring,
}

impl UringPoller {
    fn open(sq_entries: u32, cq_entries: u32) -> io::Result<UringPoller> {
        // COOP_TASKRUN: a poll's completion is posted when this thread next enters the
        // kernel (it does so constantly), instead of interrupting it with an IPI; a sleeping
        // thread is still woken. TASKRUN_FLAG tells `reap` when such work waits.
        // SINGLE_ISSUER: only this core's thread submits. All three need Linux 6.0; an
        // older kernel (multishot polls need 5.13) gets a plain ring.
        let tuned = IoUring::builder()
            .setup_cqsize(cq_entries)
            .setup_coop_taskrun()
            .setup_taskrun_flag()
            .setup_single_issuer()
            .setup_submit_all()
            .build(sq_entries);
        let ring = match tuned {
            Ok(ring) => ring,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::debug!("a plain ring for the connection poller: this kernel refuses the tuned one ({e})");
                IoUring::builder().setup_cqsize(cq_entries).build(sq_entries)?
            }
            Err(e) => return Err(e),
        };
        Ok(UringPoller { ring })
    }

    /// Queues `entries` and submits them (with anything queued before) in one call.
    fn submit(&mut self, entries: &[io_uring::squeue::Entry]) -> io::Result<()> {
        for entry in entries {
            loop {
                // SAFETY: the entries pushed here reference no memory (polls and poll
                // removals carry a descriptor and numbers only), so nothing must outlive
                // the submission.
                let pushed = unsafe { self.ring.submission().push(entry) };
                if pushed.is_ok() {
                    break;
                }
                // Full: submit what is queued, then push again.
                self.submit_queued()?;
            }
        }
        self.submit_queued()
    }

    fn submit_queued(&mut self) -> io::Result<()> {
        loop {
            match self.ring.submit() {
                Ok(_) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn reap(&mut self, out: &mut Vec<Event>, max: usize) -> bool {
        let mut taken = self.take_completions(out, max);
        while taken < max && self.kernel_holds_completions() {
            // Completions wait as task work (COOP_TASKRUN), or in the kernel's overflow
            // list (the queue was full): entering the kernel posts them.
            let _ = self.ring.submitter().submit_and_wait(0);
            let more = self.take_completions(out, max - taken);
            if more == 0 {
                break;
            }
            taken += more;
        }
        // Took some and more are held back: another pass (without taking any, waiting on
        // the ring's descriptor enters the kernel, which posts them).
        taken == max || (taken > 0 && self.kernel_holds_completions())
    }

    /// Completions the kernel has but has not posted to the queue yet.
    fn kernel_holds_completions(&mut self) -> bool {
        let sq = self.ring.submission();
        sq.taskrun() || sq.cq_overflow()
    }

    fn take_completions(&mut self, out: &mut Vec<Event>, max: usize) -> usize {
        let mut taken = 0;
        let mut completions = self.ring.completion();
        completions.sync();
        for cqe in completions.by_ref() {
            let token = Token(cqe.user_data());
            let kind = token.kind();
            let res = cqe.result();
            if kind == KIND_REMOVE || res == -libc::ECANCELED {
                continue; // A removal done, or a poll that was removed.
            }
            let failed = res < 0;
            let mask = if failed { 0 } else { res as u32 };
            let error_or_hangup = failed || mask & (libc::POLLERR | libc::POLLHUP) as u32 != 0;
            out.push(Event {
                idx: token.idx(),
                generation: token.generation(),
                readable: kind == KIND_READ || error_or_hangup,
                writable: kind == KIND_WRITE || error_or_hangup,
                rearm: kind == KIND_READ && !failed && !cqueue::more(cqe.flags()),
            });
            taken += 1;
            if taken == max {
                break;
            }
        }
        taken
    }
}

/// The epoll readiness source.
pub(crate) struct EpollPoller {
    epfd: OwnedFd,
    events: Vec<libc::epoll_event>,
}

impl EpollPoller {
    fn open() -> io::Result<EpollPoller> {
        // SAFETY: epoll_create1 returns a new descriptor or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(EpollPoller {
            // SAFETY: `fd` was just created and is owned by nobody else.
            epfd: unsafe { OwnedFd::from_raw_fd(fd) },
            events: vec![libc::epoll_event { events: 0, u64: 0 }; EPOLL_EVENTS_MAX],
        })
    }

    fn ctl(&mut self, op: libc::c_int, fd: RawFd, token: Token, write: bool) -> io::Result<()> {
        let mut interest = libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET;
        if write {
            interest |= libc::EPOLLOUT;
        }
        let mut event = libc::epoll_event {
            events: interest as u32,
            u64: token.0,
        };
        // SAFETY: epoll_ctl reads the one event we pass, on our epoll set.
        let rc = unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut event) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn reap(&mut self, out: &mut Vec<Event>, max: usize) -> bool {
        let want = max.min(self.events.len());
        // SAFETY: the kernel writes at most `want` events into our buffer of that many.
        let n = unsafe { libc::epoll_wait(self.epfd.as_raw_fd(), self.events.as_mut_ptr(), want as i32, 0) };
        if n <= 0 {
            return false;
        }
        for e in &self.events[..n as usize] {
            let token = Token(e.u64);
            let flags = e.events as i32;
            let error_or_hangup = flags & (libc::EPOLLERR | libc::EPOLLHUP) != 0;
            out.push(Event {
                idx: token.idx(),
                generation: token.generation(),
                readable: flags & (libc::EPOLLIN | libc::EPOLLRDHUP) != 0 || error_or_hangup,
                writable: flags & libc::EPOLLOUT != 0 || error_or_hangup,
                rearm: false,
            });
        }
        n as usize == want
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::socket_pair as pair;

    #[test]
    fn a_token_keeps_index_generation_and_kind_apart() {
        let t = Token::new((1 << TOKEN_INDEX_BITS) - 1, u32::MAX, KIND_WRITE);
        assert_eq!(t.idx(), (1 << TOKEN_INDEX_BITS) - 1);
        assert_eq!(t.generation(), u32::MAX);
        assert_eq!(t.kind(), KIND_WRITE);
        let t = Token::new(7, 1, KIND_READ);
        assert_eq!((t.idx(), t.generation(), t.kind()), (7, 1, KIND_READ));
    }

    fn write(fd: &OwnedFd, bytes: &[u8]) {
        // SAFETY: send reads `bytes` from a live slice.
        let n = unsafe { libc::send(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), libc::MSG_DONTWAIT) };
        assert_eq!(n, bytes.len() as isize);
    }

    fn drain(fd: &OwnedFd) {
        let mut buf = [0u8; 4096];
        // SAFETY: recv writes into our live buffer.
        while unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) } > 0 {}
    }

    fn reap_readable(p: &mut Poller) -> Vec<(usize, u32)> {
        let mut events = Vec::new();
        // Completions may be posted as task work: give them a few tries to arrive.
        for _ in 0..100 {
            p.reap(&mut events, 64);
            if !events.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        events
            .iter()
            .filter(|e| e.readable)
            .map(|e| (e.idx, e.generation))
            .collect()
    }

    /// Both sources report each arrival once per edge, stop after deregistration, and
    /// report a socket that was readable before it was registered.
    fn reports_edges(kind: PollerKind) {
        let Ok(mut p) = Poller::open(kind) else {
            panic!("cannot open the {kind:?} poller here");
        };
        let (a, a_peer) = pair();
        let (b, b_peer) = pair();
        write(&b_peer, b"early");
        p.register(a.as_raw_fd(), 3, 7).unwrap();
        p.register(b.as_raw_fd(), 4, 9).unwrap();
        assert_eq!(
            reap_readable(&mut p),
            vec![(4, 9)],
            "{} reports data there before registration",
            p.name()
        );
        drain(&b);
        write(&a_peer, b"hello");
        assert_eq!(reap_readable(&mut p), vec![(3, 7)]);
        drain(&a);
        // Nothing new arrived: no event.
        let mut events = Vec::new();
        p.reap(&mut events, 64);
        assert!(events.is_empty(), "{events:?}");
        p.deregister(a.as_raw_fd(), 3, 7);
        write(&a_peer, b"after");
        write(&b_peer, b"again");
        assert_eq!(
            reap_readable(&mut p),
            vec![(4, 9)],
            "a deregistered socket is not reported"
        );
    }

    #[test]
    fn the_io_uring_poller_reports_each_arrival_and_stops_after_deregistration() {
        reports_edges(PollerKind::Uring);
    }

    #[test]
    fn the_epoll_poller_reports_each_arrival_and_stops_after_deregistration() {
        reports_edges(PollerKind::Epoll);
    }

    /// More arrivals than the completion queue holds: the kernel keeps what it cannot post
    /// and ends the multishot polls it could not post for; each such connection is
    /// reported with `rearm`, and once registered again (as the event loop does) it is
    /// reported again. No connection goes silent.
    #[test]
    fn after_a_completion_queue_overflow_every_connection_is_reported_again() {
        const CONNS: usize = 64;
        let mut p = Poller::Uring(Box::new(UringPoller::open(8, 8).expect("a small ring")));
        let pairs: Vec<_> = (0..CONNS).map(|_| pair()).collect();
        for (i, (ours, _)) in pairs.iter().enumerate() {
            p.register(ours.as_raw_fd(), i, 1).unwrap();
        }
        for round in 0..3 {
            for (_, peer) in &pairs {
                write(peer, b"x");
            }
            let mut seen = [false; CONNS];
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while seen.iter().any(|s| !s) && std::time::Instant::now() < deadline {
                let mut events = Vec::new();
                p.reap(&mut events, 4);
                assert!(events.len() <= 4, "a reap takes at most its bound: {}", events.len());
                for e in events {
                    assert_eq!(e.generation, 1);
                    seen[e.idx] |= e.readable;
                    if e.rearm {
                        p.register(pairs[e.idx].0.as_raw_fd(), e.idx, 1).unwrap();
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            let silent: Vec<usize> = (0..CONNS).filter(|&i| !seen[i]).collect();
            assert!(silent.is_empty(), "round {round}: never reported: {silent:?}");
            for (ours, _) in &pairs {
                drain(ours);
            }
        }
    }

    #[test]
    fn a_write_wait_reports_room_to_send() {
        for kind in [PollerKind::Uring, PollerKind::Epoll] {
            let mut p = Poller::open(kind).unwrap();
            let (a, _a_peer) = pair();
            p.register(a.as_raw_fd(), 1, 1).unwrap();
            p.arm_write(a.as_raw_fd(), 1, 1).unwrap();
            let mut events = Vec::new();
            for _ in 0..100 {
                p.reap(&mut events, 64);
                if events.iter().any(|e| e.writable) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            assert!(
                events.iter().any(|e| e.writable && e.idx == 1),
                "{}: {events:?}",
                p.name()
            );
        }
    }
}
