//! One file per family of protocol operations, dispatched from one `match` on the body.
//! Handlers run on the core thread and never block: anything slow goes to the helper pool
//! or the log writer, and its outcome comes back as a completion (see [`crate::core`]).

mod conversations;
mod groups;
mod messaging;
mod session;

use std::sync::atomic::Ordering;

use hotline_wire::{ErrorCode, Frame, Message, MessageType, Sender};

use crate::core::{ConnState, Core};
use crate::limits::CORE_REQUESTS_IN_FLIGHT_MAX;

/// Routes one decoded frame from connection `idx` to its handler: one arm per body the
/// wire table marks [`Sender::Client`] or [`Sender::Either`]; the rest are refused.
pub(crate) fn dispatch(core: &mut Core, idx: usize, frame: Frame<'_>) {
    let request_id = frame.request_id;
    match frame.message {
        Message::Hello(m) => session::hello(core, idx, request_id, m),
        Message::Register(m) => session::register(core, idx, request_id, m),
        Message::Login(m) => session::login(core, idx, request_id, m),
        Message::Logout => session::logout(core, idx, request_id),
        Message::Ping(p) => session::ping(core, idx, request_id, p),
        Message::Pong(_) => {}
        Message::Send(m) => messaging::send(core, idx, request_id, m),
        Message::Ack(m) => messaging::ack(core, idx, request_id, m),
        Message::Sync(m) => messaging::sync(core, idx, request_id, m),
        Message::GroupCreate(m) => groups::create(core, idx, request_id, m),
        Message::GroupAddMember(m) => groups::add_member(core, idx, request_id, m),
        Message::GroupRemoveMember(m) => groups::remove_member(core, idx, request_id, m.group_id, m.user_id),
        Message::GroupLeave(m) => groups::leave(core, idx, request_id, m),
        Message::GroupMembers(m) => groups::members(core, idx, request_id, m),
        Message::MyGroups(m) => groups::my_groups(core, idx, request_id, m),
        Message::MarkRead(m) => conversations::mark_read(core, idx, request_id, m),
        Message::Conversations(m) => conversations::list(core, idx, request_id, m),
        Message::SetPersistence(m) => conversations::set_persistence(core, idx, request_id, m),
        Message::Typing(m) => conversations::typing(core, idx, request_id, m),
        Message::PresenceSubscribe(m) => conversations::presence_subscribe(core, idx, request_id, m),
        other => server_body(core, idx, request_id, other.message_type()),
    }
}

/// Refuses a body only servers send.
fn server_body(core: &mut Core, idx: usize, request_id: u64, ty: MessageType) {
    // A client body without an arm in `dispatch` is a bug, not the peer's mistake.
    debug_assert_eq!(ty.sender(), Sender::Server, "{} has no handler", ty.name());
    let text = format!("{} is sent by servers, not clients", ty.name());
    core.push_error(idx, request_id, ErrorCode::InvalidRequest, &text);
}

/// Refuses a request that is not valid in the connection's state.
fn invalid_state(core: &mut Core, idx: usize, request_id: u64, what: &str) {
    let state = match core.conns[idx].state {
        ConnState::Handshaking => "send Hello first",
        ConnState::Ready => "log in first",
        ConnState::Authenticating { .. } => "a login is in progress",
        ConnState::LoggedIn(_) => "already logged in",
    };
    let text = format!("{what}: {state}");
    core.push_error(idx, request_id, ErrorCode::InvalidState, &text);
}

/// The logged-in user of connection `idx`, or `None` after refusing `what` (not logged in).
fn logged_in_user(core: &mut Core, idx: usize, request_id: u64, what: &str) -> Option<u64> {
    match &core.conns[idx].state {
        ConnState::LoggedIn(dev) => Some(dev.user_id),
        _ => {
            invalid_state(core, idx, request_id, what);
            None
        }
    }
}

/// Submits a write for connection `idx`'s request, or answers `Overloaded`. It counts in
/// the device's `sends_in_flight` like a `Send`, so a client pipelining requests is paused
/// at `SENDS_IN_FLIGHT_MAX` instead of filling the writer's queue for everyone; the core's
/// connections together stop at `CORE_REQUESTS_IN_FLIGHT_MAX`, and client writes leave
/// the writer's reserved share to logins and acks (`WRITE_QUEUE_CLIENT_REQUESTS_MAX`).
fn submit_write(core: &mut Core, idx: usize, request_id: u64, op: crate::storage::writer::WriteOp) {
    if core.outstanding >= CORE_REQUESTS_IN_FLIGHT_MAX {
        return overloaded(core, idx, request_id, "too many requests in flight on this core; retry");
    }
    let request = crate::storage::writer::WriteRequest {
        reply: Some(core.counted_reply(idx, request_id)),
        op,
    };
    if core.submit_client_write(request).is_err() {
        return overloaded(core, idx, request_id, "write queue full; retry");
    }
    if let Some(dev) = core.conns[idx].device() {
        dev.sends_in_flight += 1;
    }
    core.outstanding += 1;
}

/// Submits a read for connection `idx`'s request (counted with its `Sync`s against
/// `SYNCS_IN_FLIGHT_MAX`), or answers `Overloaded`.
fn submit_read(core: &mut Core, idx: usize, request_id: u64, job: crate::helper::HelperJob) {
    let Some(dev) = core.conns[idx].device() else { return };
    if dev.syncs_in_flight >= crate::limits::SYNCS_IN_FLIGHT_MAX {
        return overloaded(core, idx, request_id, "too many reads in flight");
    }
    if core.outstanding >= CORE_REQUESTS_IN_FLIGHT_MAX {
        return overloaded(core, idx, request_id, "too many requests in flight on this core; retry");
    }
    if core.shared.helpers.submit(job).is_err() {
        return overloaded(core, idx, request_id, "read queue full; retry");
    }
    if let Some(dev) = core.conns[idx].device() {
        dev.syncs_in_flight += 1;
    }
    core.outstanding += 1;
}

/// Refuses a request because a bounded queue is full.
fn overloaded(core: &mut Core, idx: usize, request_id: u64, what: &str) {
    core.shared.metrics.shed_overloaded.fetch_add(1, Ordering::Relaxed);
    core.push_error(idx, request_id, ErrorCode::Overloaded, what);
}
