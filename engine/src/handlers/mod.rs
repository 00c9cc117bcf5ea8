//! One file per family of protocol operations, dispatched from one `match` on the body.
//! Handlers run on the core thread and never block: anything slow goes to the helper pool
//! or the log writer, and its outcome comes back as a completion (see [`crate::core`]).

mod messaging;
mod session;

use std::sync::atomic::Ordering;

use hotline_wire::{ErrorCode, Frame, Message};

use crate::core::{ConnState, Core};

/// Routes one decoded frame from connection `idx` to its handler.
pub fn dispatch(core: &mut Core, idx: usize, frame: Frame<'_>) {
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
        other @ (Message::HelloOk(_)
        | Message::RegisterOk(_)
        | Message::LoginOk(_)
        | Message::LogoutOk
        | Message::SendAck(_)
        | Message::Deliver(_)
        | Message::AckOk(_)
        | Message::SyncPage(_)
        | Message::Error(_)) => {
            let text = format!("{} is sent by servers, not clients", other.name());
            core.push_error(idx, request_id, ErrorCode::InvalidRequest, &text);
        }
    }
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

/// Refuses a request because a bounded queue is full.
fn overloaded(core: &mut Core, idx: usize, request_id: u64, what: &str) {
    core.shared.metrics.shed_overloaded.fetch_add(1, Ordering::Relaxed);
    core.push_error(idx, request_id, ErrorCode::Overloaded, what);
}
