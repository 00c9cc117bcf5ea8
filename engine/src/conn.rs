//! Connection tasks: accepting, reading, framing, and moving a logged-in connection to its
//! user's home core.
//!
//! Memory: an idle connection holds no read buffer. Its task waits on an io_uring poll
//! for readability; only then does it `recv` into the core's one scratch buffer, decode
//! every complete frame in place, and keep just an incomplete tail (if any) in the
//! connection's own `inbound`. Writes go out with one non-blocking `send` per connection
//! per unit of work, carrying every frame queued by then; only a full socket makes the
//! task also wait for writability.
//!
//! TLS and WebSocket connections take the same path with a layer in between (see
//! [`crate::transport`]): reads go through the layer into the frame path, flushes seal
//! queued frames into the layer first, and a hand-off carries the layer with the descriptor.

use std::future::{poll_fn, Future};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use hotline_transport::{ServerSettings, TransportError};
use hotline_wire::{frame_body_len, Decoded, ErrorCode, FrameError, FRAME_HEADER_BYTES};
use monoio::net::{TcpListener, TcpStream};

use crate::core::{ConnState, Core, CoreRef};
use crate::handlers;
use crate::limits::{MALFORMED_FRAMES_MAX, READ_BYTES_PER_WAKE_MAX};
use crate::mailbox::{home_core, Adopt, Routed};

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
        let idx = {
            let mut c = core.borrow_mut();
            if c.draining {
                return;
            }
            if c.conns.len() >= c.shared.config.connections_per_core_max {
                c.shared.metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("refusing {peer}: core {} holds its maximum of connections", c.id);
                continue;
            }
            let layer = match crate::transport::accept(transport.as_ref()) {
                Ok(layer) => layer,
                Err(e) => {
                    tracing::warn!("refusing {peer}: cannot start its transport: {e}");
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            tracing::debug!("core {}: accepted {peer}", c.id);
            let idx = c.insert_conn(stream.as_raw_fd(), ConnState::Handshaking);
            c.conns[idx].layer = layer;
            c.conns[idx].peer_ip = Some(peer.ip());
            match c.shared.limiter.connection_opened(peer.ip()) {
                Ok(slot) => c.conns[idx].ip_slot = Some(slot),
                Err(refused) => {
                    // Answered like any refusal, then closed (the task flushes it).
                    tracing::debug!("refusing {peer}: {}", refused.limit.describe());
                    c.refuse(idx, 0, refused);
                    c.close(idx);
                }
            }
            idx
        };
        monoio::spawn(run(core.clone(), idx, stream));
    }
}

enum Wakeup {
    Readable(bool),
    Writable(bool),
    Woken,
}

/// One connection's task: waits for what the connection needs, lets the core act on it.
///
/// The read readiness op lives across loop iterations and is re-armed only after it
/// completes; the write one exists only while a send is blocked and is dropped only once
/// it completed: monoio does not cancel an in-flight io_uring poll when its future is
/// dropped, so re-creating them on every wake-up would pile up polls in the kernel, each
/// holding the socket open. For the same reason the socket is `shutdown` before it is dropped:
/// that completes any poll still pending, so the close really closes.
pub(crate) async fn run(core: CoreRef, idx: usize, stream: TcpStream) {
    let mut read_op = std::pin::pin!(stream.readable(false));
    // Created only while a send is blocked (rare), so an idle connection's task does not
    // carry a second readiness future: the task is one of the few per-connection costs.
    let mut write_op = None;
    loop {
        let (want_read, want_write, done, handoff) = {
            let c = core.borrow();
            let Some(conn) = c.conns.get(idx) else { return };
            (
                conn.accepts_frames(c.shared.config.outbound_bytes_max) && !c.draining,
                conn.write_blocked,
                conn.closing && conn.unsent() == 0,
                conn.handoff.is_some(),
            )
        };
        if handoff {
            if hand_off(&core, idx) {
                // The home core owns the socket now (through a duplicate descriptor): no
                // shutdown here, just drop this core's descriptor.
                return;
            }
            continue;
        }
        if done {
            break;
        }
        let wakeup = poll_fn(|cx| {
            if want_read {
                if let Poll::Ready(r) = read_op.as_mut().poll(cx) {
                    return Poll::Ready(Wakeup::Readable(r.is_ok()));
                }
            }
            if want_write {
                let op = write_op.get_or_insert_with(|| Box::pin(stream.writable(false)));
                if let Poll::Ready(r) = op.as_mut().poll(cx) {
                    return Poll::Ready(Wakeup::Writable(r.is_ok()));
                }
            }
            let mut c = core.borrow_mut();
            match c.conns.get_mut(idx) {
                None => Poll::Ready(Wakeup::Woken),
                Some(conn) if conn.woken => {
                    conn.woken = false;
                    Poll::Ready(Wakeup::Woken)
                }
                Some(conn) => {
                    conn.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await;
        let mut c = core.borrow_mut();
        match wakeup {
            Wakeup::Readable(ok) => {
                read_op.set(stream.readable(false));
                if !ok || !read_ready(&mut c, idx) {
                    break;
                }
            }
            Wakeup::Writable(ok) => {
                // It completed, so no poll is left in flight: dropping it is safe.
                write_op = None;
                if !ok {
                    break;
                }
                c.on_writable(idx);
            }
            Wakeup::Woken => {}
        }
        c.flush_dirty();
    }
    let mut c = core.borrow_mut();
    // WebSocket Close and TLS close_notify, best effort in the last flush.
    c.close_layer(idx);
    c.flush(idx);
    // SAFETY: shutdown on our own open socket; it only changes the socket's state.
    unsafe { libc::shutdown(stream.as_raw_fd(), libc::SHUT_RDWR) };
    c.remove_conn(idx);
    tracing::debug!("core {}: connection {idx} closed", c.id);
}

/// Reads whatever the socket has (up to a fairness bound) and handles every whole frame.
/// Returns false when the connection is finished (peer closed, or a socket error).
fn read_ready(core: &mut Core, idx: usize) -> bool {
    let scratch_rc = core.scratch.clone();
    let mut scratch = scratch_rc.borrow_mut();
    let mut total = 0usize;
    while total < READ_BYTES_PER_WAKE_MAX {
        let Some(conn) = core.conns.get(idx) else { return false };
        if !conn.accepts_frames(core.shared.config.outbound_bytes_max) || core.draining {
            break;
        }
        // SAFETY: `scratch` is a live buffer of `scratch.len()` writable bytes and
        // `conn.fd` is this connection's open socket, owned by the running task.
        let n = unsafe { libc::recv(conn.fd, scratch.as_mut_ptr().cast(), scratch.len(), libc::MSG_DONTWAIT) };
        if n == 0 {
            return false;
        }
        if n < 0 {
            match std::io::Error::last_os_error().kind() {
                std::io::ErrorKind::WouldBlock => break,
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
            break; // Drained: the next readiness tells us when there is more.
        }
    }
    true
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
/// home, the device goes live right here; otherwise the task hands the socket over.
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
    conn.wake();
}

/// Moves connection `idx` to its user's home core. Returns true when it left this core.
fn hand_off(core: &CoreRef, idx: usize) -> bool {
    let mut c = core.borrow_mut();
    let conn = &mut c.conns[idx];
    let Some(mut adopt) = conn.handoff.take() else {
        return false;
    };
    adopt.outbound = conn.outbound.split_off(conn.outbound_sent);
    adopt.layer = conn.layer.take();
    adopt.ip_slot = conn.ip_slot.take();
    conn.outbound.clear();
    conn.outbound_sent = 0;
    // SAFETY: `conn.fd` is this connection's open socket; F_DUPFD_CLOEXEC returns a new
    // descriptor (or -1) and touches nothing else.
    let dup = unsafe { libc::fcntl(conn.fd, libc::F_DUPFD_CLOEXEC, 0) };
    let home = home_core(adopt.user_id, c.shared.config.cores);
    let request_id = adopt.request_id;
    let (user_id, kind) = (adopt.user_id, adopt.layer.as_ref().map(|l| l.kind()));
    if dup >= 0 {
        // SAFETY: `dup` is a descriptor we just created and own exclusively.
        adopt.fd = Some(unsafe { OwnedFd::from_raw_fd(dup) });
        let shared = c.shared.clone();
        match shared.mailboxes[home].push_routed(Routed::Adopt(adopt)) {
            Ok(()) => {
                tracing::debug!(
                    "core {}: connection {idx} of user {user_id} ({}) moves to core {home}",
                    c.id,
                    kind.map_or("tcp", |k| k.name())
                );
                c.remove_conn(idx);
                return true;
            }
            Err(Routed::Adopt(back)) => adopt = back,
            Err(Routed::Notices(_)) => unreachable!("push_routed gives back what it was given"),
        }
    } else {
        tracing::warn!("dup of a connection failed: {}", std::io::Error::last_os_error());
    }
    // The home core cannot take it now: the login fails, the client may retry.
    let conn = &mut c.conns[idx];
    conn.inbound = std::mem::take(&mut adopt.inbound);
    conn.outbound = std::mem::take(&mut adopt.outbound);
    conn.layer = adopt.layer.take();
    conn.ip_slot = adopt.ip_slot.take();
    conn.state = ConnState::Ready;
    c.shared.metrics.shed_overloaded.fetch_add(1, Ordering::Relaxed);
    c.push_error(
        idx,
        request_id,
        ErrorCode::Overloaded,
        "home core busy; retry the login",
    );
    c.flush_dirty();
    false
}

/// Takes over a connection handed over by another core: a logged-in device from now on.
pub(crate) fn adopt(core: &mut Core, mut adopt: Adopt) {
    let Some(fd) = adopt.fd.take() else { return };
    let stream = match TcpStream::from_std(std::net::TcpStream::from(fd)) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("core {}: cannot adopt a connection: {e}", core.id);
            return;
        }
    };
    let idx = core.insert_conn(stream.as_raw_fd(), ConnState::Handshaking);
    core.conns[idx].outbound = std::mem::take(&mut adopt.outbound);
    core.conns[idx].inbound = std::mem::take(&mut adopt.inbound);
    core.conns[idx].layer = adopt.layer.take();
    core.conns[idx].ip_slot = adopt.ip_slot.take();
    core.activate_device(idx, &adopt);
    resume(core, idx);
    if let Some(me) = core.self_ref.upgrade() {
        monoio::spawn(run(me, idx, stream));
    }
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
