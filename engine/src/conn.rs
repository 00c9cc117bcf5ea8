//! Each core's event loop over its connections: accepting, reading, framing, closing, and
//! moving a logged-in connection to its user's home core.
//!
//! No connection has a task of its own. The core's one readiness source ([`crate::poller`]: a
//! ring of its own with a multishot poll per connection, or epoll) reports sockets that
//! became readable; the event loop ([`io_loop`]), one monoio task per core, waits on it,
//! takes every event at once, reads each ready socket, and looks again at the connections
//! the core woke ([`Core::wake`]: a hand-off, a close to finish, a write wait to arm, a
//! pause that ended). A connection costs its `Conn` entry and a kernel poll entry, nothing
//! more, while idle.
//!
//! Reads: readiness is an edge, so a connection keeps `readable` set until `recv` runs dry;
//! one that stops early (its fairness bound per pass, or a pause: a login in flight, too
//! many sends in flight, too much unsent output) is read again once it may be. Each read
//! goes into the core's one scratch buffer; every complete frame is decoded in place and
//! only an incomplete tail (if any) stays in the connection's own `inbound`.
//!
//! Writes go out with one non-blocking `send` per connection per unit of work, carrying
//! every frame queued by then ([`Core::flush`]); only a full socket arms a write wait.
//!
//! Closing: the socket is shut down, taken out of the poller and closed by the event loop
//! once the connection's last output is flushed (or given up on).
//!
//! TLS and WebSocket connections take the same path with a layer in between (see
//! [`crate::transport`]): reads go through the layer into the frame path, flushes seal
//! queued frames into the layer first, and a hand-off carries the layer with the descriptor.

use std::future::{poll_fn, Future};
use std::os::fd::{FromRawFd, IntoRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use hotline_transport::{ServerSettings, TransportError};
use hotline_wire::{frame_body_len, Decoded, ErrorCode, FrameError, FRAME_HEADER_BYTES};
use monoio::net::TcpListener;

use crate::core::{ConnState, Core, CoreRef};
use crate::handlers;
use crate::limits::{IO_EVENTS_PER_PASS_MAX, MALFORMED_FRAMES_MAX, READ_BYTES_PER_WAKE_MAX};
use crate::mailbox::{home_core, Adopt, Routed};
use crate::poller::Event;

/// Accepts connections until the listener fails for good or the core shuts down. With
/// `transport` (a TLS or WebSocket listener) each connection gets its own layer.
pub(crate) async fn accept_loop(core: CoreRef, listener: TcpListener, transport: Option<Arc<ServerSettings>>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE/ENFILE: out of descriptors. Back off instead of spinning.
                tracing::warn!("accept failed: {e} (open-file limit reached?)");
                monoio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // A fresh stream has no operation in flight, so monoio gives its descriptor up.
        let fd = stream.into_raw_fd();
        let mut c = core.borrow_mut();
        if c.draining {
            close_fd(fd);
            return;
        }
        if c.conns.len() >= c.shared.config.connections_per_core_max {
            c.shared.metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("refusing {peer}: core {} holds its maximum of connections", c.id);
            close_fd(fd);
            continue;
        }
        let layer = match crate::transport::accept(transport.as_ref()) {
            Ok(layer) => layer,
            Err(e) => {
                tracing::warn!("refusing {peer}: cannot start its transport: {e}");
                close_fd(fd);
                continue;
            }
        };
        tracing::debug!("core {}: accepted {peer}", c.id);
        let Some(idx) = take_conn(&mut c, fd, ConnState::Handshaking) else {
            continue;
        };
        c.conns[idx].layer = layer;
        c.conns[idx].peer_ip = Some(peer.ip());
        match c.shared.limiter.connection_opened(peer.ip()) {
            Ok(slot) => c.conns[idx].ip_slot = Some(slot),
            Err(refused) => {
                // Answered like any refusal, then closed (the event loop flushes it).
                tracing::debug!("refusing {peer}: {}", refused.limit.describe());
                c.refuse(idx, 0, refused);
                c.close(idx);
            }
        }
        c.flush_dirty();
    }
}

/// Registers socket `fd` as a new connection of this core, watched by its poller. Returns
/// its slab index, or `None` (socket closed) if the poller refused it.
fn take_conn(core: &mut Core, fd: RawFd, state: ConnState) -> Option<usize> {
    let idx = core.insert_conn(fd, state);
    let generation = core.conns[idx].generation;
    if let Some(poller) = core.io.poller.as_mut() {
        if let Err(e) = poller.register(fd, idx, generation) {
            tracing::warn!("core {}: cannot watch a connection: {e}", core.id);
            core.remove_conn(idx);
            close_fd(fd);
            return None;
        }
    }
    Some(idx)
}

fn close_fd(fd: RawFd) {
    // SAFETY: `fd` is a descriptor this core owns and no longer uses; from_raw_fd takes it
    // over and closes it when dropped.
    drop(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
}

/// The core's event loop over its connections (see the module docs). Runs as long as the
/// runtime does.
pub(crate) async fn io_loop(core: CoreRef) {
    let Some(watch) = watch_poller(&core) else { return };
    let mut ready = std::pin::pin!(watch.readable(false));
    // When the previous pass started, unless the loop waited idle since: ready sockets
    // waited (at most) from then to this pass, what the admission gate measures.
    let mut busy_since: Option<Instant> = None;
    loop {
        let started = Instant::now();
        let lag_us = busy_since.map_or(0, |since| started.duration_since(since).as_micros() as u64);
        busy_since = Some(started);
        let more = {
            let mut c = core.borrow_mut();
            c.observe_delay(started, lag_us);
            io_pass(&mut c)
        };
        if more {
            // Leave the rest to the next turn, after the core's other tasks.
            yield_now().await;
            continue;
        }
        poll_fn(|cx| {
            if ready.as_mut().poll(cx).is_ready() {
                // It completed: nothing is left in flight, so a new one may replace it.
                ready.set(watch.readable(false));
                return Poll::Ready(());
            }
            let mut c = core.borrow_mut();
            if c.io.woken.is_empty() {
                c.io.waker = Some(cx.waker().clone());
                busy_since = None;
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
    }
}

/// A monoio handle on (a duplicate of) the poller's descriptor, whose readability says that
/// events are pending. Monoio polls it with its own io_uring (or epoll) like any socket.
fn watch_poller(core: &CoreRef) -> Option<monoio::net::UnixStream> {
    let c = core.borrow();
    let poller = c.io.poller.as_ref()?;
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on the poller's open descriptor returns a new one or -1.
    let dup = unsafe { libc::fcntl(poller.fd(), libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        tracing::error!(
            "core {}: cannot watch the poller: {}",
            c.id,
            std::io::Error::last_os_error()
        );
        return None;
    }
    // SAFETY: `dup` is ours alone; the stream owns (and closes) it from here.
    let std_stream = unsafe { std::os::unix::net::UnixStream::from_raw_fd(dup) };
    match monoio::net::UnixStream::from_std(std_stream) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!("core {}: cannot watch the poller: {e}", c.id);
            None
        }
    }
}

/// One pass of the event loop: every reported event (up to a bound), then every woken
/// connection, then the flushes. Returns whether work is left for another pass.
fn io_pass(core: &mut Core) -> bool {
    let mut events = std::mem::take(&mut core.io.events);
    let more_events = match core.io.poller.as_mut() {
        Some(poller) => poller.reap(&mut events, IO_EVENTS_PER_PASS_MAX),
        None => false,
    };
    for event in events.drain(..) {
        on_event(core, event);
    }
    core.io.events = events;
    // Connections woken from here on wait for the next pass.
    let mut woken = std::mem::take(&mut core.io.woken);
    for &idx in &woken {
        service(core, idx);
    }
    woken.clear();
    if core.io.woken.is_empty() {
        core.io.woken = woken; // Keep the allocation.
    }
    core.flush_dirty();
    more_events || !core.io.woken.is_empty()
}

/// Acts on one reported event, unless its connection is gone (a stale event).
fn on_event(core: &mut Core, event: Event) {
    let Some(conn) = core.conns.get_mut(event.idx) else {
        return;
    };
    if conn.generation != event.generation {
        return;
    }
    if event.rearm {
        let (fd, generation) = (conn.fd, conn.generation);
        if let Some(poller) = core.io.poller.as_mut() {
            if let Err(e) = poller.register(fd, event.idx, generation) {
                tracing::warn!("core {}: cannot watch connection {} again: {e}", core.id, event.idx);
                core.close(event.idx);
            }
        }
    }
    if event.readable {
        core.conns[event.idx].readable = true;
    }
    if event.writable && core.conns[event.idx].write_blocked {
        core.on_writable(event.idx);
    }
    service(core, event.idx);
}

/// Does what connection `idx` is waiting for: its hand-off, the end of its close, a write
/// wait, reading.
fn service(core: &mut Core, idx: usize) {
    let outbound_bytes_max = core.shared.config.outbound_bytes_max;
    let draining = core.draining;
    let Some(conn) = core.conns.get_mut(idx) else { return };
    conn.woken = false;
    if conn.handoff.is_some() {
        hand_off(core, idx);
        return;
    }
    if conn.closing && conn.unsent() == 0 {
        finish(core, idx);
        return;
    }
    if conn.write_blocked && !conn.write_armed {
        conn.write_armed = true;
        let (fd, generation) = (conn.fd, conn.generation);
        if let Some(poller) = core.io.poller.as_mut() {
            if let Err(e) = poller.arm_write(fd, idx, generation) {
                tracing::warn!("core {}: cannot wait for connection {idx} to drain: {e}", core.id);
                finish(core, idx);
                return;
            }
        }
    }
    let conn = &core.conns[idx];
    if conn.readable && !draining && conn.accepts_frames(outbound_bytes_max) && !read_ready(core, idx) {
        finish(core, idx);
    }
}

/// Ends connection `idx`: the last flush (WebSocket `Close` and TLS `close_notify` best
/// effort), then shutdown, out of the poller, closed.
fn finish(core: &mut Core, idx: usize) {
    core.close_layer(idx);
    core.flush(idx);
    let Some(conn) = core.conns.get(idx) else { return };
    let (fd, generation) = (conn.fd, conn.generation);
    if let Some(poller) = core.io.poller.as_mut() {
        poller.deregister(fd, idx, generation);
    }
    // SAFETY: shutdown on our own open socket; it only changes the socket's state.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
    core.remove_conn(idx);
    close_fd(fd);
    tracing::debug!("core {}: connection {idx} closed", core.id);
}

/// Reads whatever the socket has (up to a fairness bound) and handles every whole frame.
/// Returns false when the connection is finished (peer closed, or a socket error).
fn read_ready(core: &mut Core, idx: usize) -> bool {
    let scratch_rc = core.scratch.clone();
    let mut scratch = scratch_rc.borrow_mut();
    let mut total = 0usize;
    loop {
        let Some(conn) = core.conns.get(idx) else { return false };
        if !conn.accepts_frames(core.shared.config.outbound_bytes_max) || core.draining {
            return true; // Paused: `readable` stays set for when it may read again.
        }
        if total >= READ_BYTES_PER_WAKE_MAX {
            core.wake(idx); // Fairness: the rest in the next pass.
            return true;
        }
        // SAFETY: `scratch` is a live buffer of `scratch.len()` writable bytes and
        // `conn.fd` is this connection's open socket, owned by this core.
        let n = unsafe { libc::recv(conn.fd, scratch.as_mut_ptr().cast(), scratch.len(), libc::MSG_DONTWAIT) };
        if n == 0 {
            return false;
        }
        if n < 0 {
            match std::io::Error::last_os_error().kind() {
                std::io::ErrorKind::WouldBlock => {
                    core.conns[idx].readable = false;
                    return true;
                }
                std::io::ErrorKind::Interrupted => continue,
                _ => return false,
            }
        }
        let n = n as usize;
        total += n;
        core.shared.metrics.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
        if core.conns[idx].layer.is_some() {
            ingest_layer(core, idx, &scratch[..n]);
        } else {
            process_bytes(core, idx, &scratch[..n]);
        }
        if n < scratch.len() {
            // Drained: the next arrival is reported again.
            if let Some(conn) = core.conns.get_mut(idx) {
                conn.readable = false;
            }
            return true;
        }
    }
}

/// Handles `data` that arrived on connection `idx`, after any tail kept from before.
pub(crate) fn process_bytes(core: &mut Core, idx: usize, data: &[u8]) {
    let Some(conn) = core.conns.get_mut(idx) else { return };
    let mut buf = std::mem::take(&mut conn.inbound);
    if buf.is_empty() {
        let used = handle_frames(core, idx, data);
        if let Some(conn) = core.conns.get_mut(idx) {
            conn.inbound.extend_from_slice(&data[used..]);
        }
    } else {
        buf.extend_from_slice(data);
        let used = handle_frames(core, idx, &buf);
        buf.drain(..used);
        if let Some(conn) = core.conns.get_mut(idx) {
            // An emptied buffer is released: idle connections hold no read memory.
            conn.inbound = if buf.is_empty() { Vec::new() } else { buf };
        }
    }
}

/// Handles frames kept while the connection was paused, once it accepts frames again.
pub(crate) fn resume(core: &mut Core, idx: usize) {
    let Some(conn) = core.conns.get(idx) else { return };
    if conn.accepts_frames(core.shared.config.outbound_bytes_max) && !conn.inbound.is_empty() {
        process_bytes(core, idx, &[]);
    }
}

/// Decodes and dispatches whole frames from the front of `buf`; returns the bytes used.
fn handle_frames(core: &mut Core, idx: usize, buf: &[u8]) -> usize {
    let frame_bytes_max = core.limits.frame_bytes_max;
    let mut at = 0;
    loop {
        let Some(conn) = core.conns.get(idx) else {
            return buf.len();
        };
        if !conn.accepts_frames(core.shared.config.outbound_bytes_max) || core.draining {
            return at;
        }
        let rest = &buf[at..];
        let len = match frame_body_len(rest, frame_bytes_max) {
            Ok(None) => return at,
            Ok(Some(len)) => len,
            Err(e @ FrameError::TooLarge { .. }) => {
                // The stream can no longer be trusted: say why, then close.
                core.shared.metrics.frames_malformed.fetch_add(1, Ordering::Relaxed);
                core.close_with_error(idx, ErrorCode::FrameTooLarge, &e.to_string());
                return buf.len();
            }
            Err(e) => {
                at += FRAME_HEADER_BYTES;
                malformed(core, idx, &e);
                continue;
            }
        };
        let end = FRAME_HEADER_BYTES + len;
        if rest.len() < end {
            return at;
        }
        at += end;
        let now = core.now_ms();
        let conn = &mut core.conns[idx];
        conn.last_rx_ms = now;
        conn.ping_sent = false;
        core.shared.metrics.frames_in.fetch_add(1, Ordering::Relaxed);
        match core.decoder.decode(&rest[..end]) {
            Ok(Decoded::Frame { frame, .. }) => {
                core.shared.metrics.frames_in_by_type[frame.message.index()].fetch_add(1, Ordering::Relaxed);
                handlers::dispatch(core, idx, frame)
            }
            Ok(Decoded::NeedMore { .. }) => unreachable!("a whole frame was sliced out above"),
            Err(e) => malformed(core, idx, &e),
        }
    }
}

/// Answers a frame that was framed correctly but not valid; closes after too many.
fn malformed(core: &mut Core, idx: usize, e: &FrameError) {
    core.shared.metrics.frames_malformed.fetch_add(1, Ordering::Relaxed);
    let text = e.to_string();
    core.push_error(idx, e.request_id(), e.code(), &text);
    let conn = &mut core.conns[idx];
    if e.code() == ErrorCode::MalformedFrame {
        conn.malformed_frames += 1;
        if conn.malformed_frames >= MALFORMED_FRAMES_MAX {
            core.close_with_error(idx, ErrorCode::MalformedFrame, "too many malformed frames");
        }
    }
}

/// A login finished on the core that accepted the connection. If that core is the user's
/// home, the device goes live right here; otherwise the event loop hands the socket over.
pub(crate) fn login_succeeded(core: &mut Core, idx: usize, mut adopt: Adopt) {
    let username = core.pending_usernames.remove(&idx);
    let ip = core.conns[idx].peer_ip;
    core.shared.limiter.login_finished(ip, username.as_deref(), true);
    if home_core(adopt.user_id, core.shared.config.cores) == core.id {
        core.activate_device(idx, &adopt);
        resume(core, idx);
        return;
    }
    let conn = &mut core.conns[idx];
    adopt.inbound = std::mem::take(&mut conn.inbound);
    conn.handoff = Some(Box::new(adopt));
    core.wake(idx);
}

/// Moves connection `idx` to its user's home core, socket, layer, unsent output and
/// unhandled input with it; this core stops watching the socket first. If the home core's
/// mailbox is full the connection stays (and is watched again), and the login is refused
/// with `Overloaded`.
fn hand_off(core: &mut Core, idx: usize) {
    let conn = &mut core.conns[idx];
    let Some(mut adopt) = conn.handoff.take() else { return };
    adopt.outbound = conn.outbound.split_off(conn.outbound_sent);
    adopt.layer = conn.layer.take();
    adopt.ip_slot = conn.ip_slot.take();
    conn.outbound.clear();
    conn.outbound_sent = 0;
    let (fd, generation) = (conn.fd, conn.generation);
    if let Some(poller) = core.io.poller.as_mut() {
        poller.deregister(fd, idx, generation);
    }
    // SAFETY: `fd` is this connection's open socket, owned by this core until now; the
    // `Adopt` carries it to the home core, and this core forgets it below (or takes it back).
    adopt.fd = Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
    let home = home_core(adopt.user_id, core.shared.config.cores);
    let request_id = adopt.request_id;
    let (user_id, kind) = (adopt.user_id, adopt.layer.as_ref().map(|l| l.kind()));
    let shared = core.shared.clone();
    match shared.mailboxes[home].push_routed(Routed::Adopt(adopt)) {
        Ok(()) => {
            tracing::debug!(
                "core {}: connection {idx} of user {user_id} ({}) moves to core {home}",
                core.id,
                kind.map_or("tcp", |k| k.name())
            );
            core.remove_conn(idx);
            return;
        }
        Err(Routed::Adopt(back)) => adopt = back,
        Err(Routed::Notices(_)) => unreachable!("push_routed gives back what it was given"),
    }
    // The home core cannot take it now: the login fails, the client may retry.
    if let Some(fd) = adopt.fd.take() {
        let _ = fd.into_raw_fd(); // Still `conn.fd`.
    }
    let conn = &mut core.conns[idx];
    conn.inbound = std::mem::take(&mut adopt.inbound);
    conn.outbound = std::mem::take(&mut adopt.outbound);
    conn.layer = adopt.layer.take();
    conn.ip_slot = adopt.ip_slot.take();
    conn.state = ConnState::Ready;
    conn.write_armed = false;
    if let Some(poller) = core.io.poller.as_mut() {
        if let Err(e) = poller.register(fd, idx, generation) {
            tracing::warn!("core {}: cannot watch connection {idx} again: {e}", core.id);
            core.close(idx);
        }
    }
    core.shared.metrics.shed_overloaded.fetch_add(1, Ordering::Relaxed);
    core.push_error(
        idx,
        request_id,
        ErrorCode::Overloaded,
        "home core busy; retry the login",
    );
    core.wake(idx);
}

/// Takes over a connection handed over by another core: a logged-in device from now on.
pub(crate) fn adopt(core: &mut Core, mut adopt: Adopt) {
    let Some(fd) = adopt.fd.take() else { return };
    let Some(idx) = take_conn(core, fd.into_raw_fd(), ConnState::Handshaking) else {
        return;
    };
    core.conns[idx].outbound = std::mem::take(&mut adopt.outbound);
    core.conns[idx].inbound = std::mem::take(&mut adopt.inbound);
    core.conns[idx].layer = adopt.layer.take();
    core.conns[idx].ip_slot = adopt.ip_slot.take();
    core.activate_device(idx, &adopt);
    resume(core, idx);
}

/// Makes the running task's future yield once to the scheduler.
pub(crate) async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// Handles `data` read from connection `idx`, which has a layer: decodes it into frames
/// and hands them to the same path plain TCP bytes take.
pub(crate) fn ingest_layer(core: &mut Core, idx: usize, data: &[u8]) {
    let mut frames = std::mem::take(&mut core.layer_frames);
    frames.clear();
    let Some(layer) = core.conns.get_mut(idx).and_then(|c| c.layer.as_mut()) else {
        return;
    };
    let result = layer.ingest(data, &mut frames);
    let finished = layer.is_finished();
    let has_wire = layer.pending_bytes() > 0;
    if !frames.is_empty() {
        process_bytes(core, idx, &frames);
    }
    match result {
        Ok(()) => {}
        Err(e @ TransportError::FrameTooLarge { .. }) => {
            core.shared.metrics.frames_malformed.fetch_add(1, Ordering::Relaxed);
            core.close_with_error(idx, ErrorCode::FrameTooLarge, &e.to_string());
        }
        Err(e) => {
            tracing::debug!("core {}: connection {idx}: {e}", core.id);
            core.close(idx);
        }
    }
    if finished {
        core.close(idx);
    }
    if has_wire {
        core.mark_dirty(idx);
    }
    if frames.capacity() <= hotline_transport::SCRATCH_RETAIN_BYTES {
        core.layer_frames = frames;
    }
}
