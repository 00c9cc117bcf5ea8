//! Hello, Register, Login, Logout, Ping: getting a connection to `LoggedIn`.

use hotline_wire::{
    Credentials, ErrorCode, Hello, HelloOk, Login, Message, Ping, Pong, Register, PROTOCOL_VERSION,
    PROTOCOL_VERSION_MIN,
};

use super::{invalid_state, overloaded};
use crate::auth;
use crate::config::Registration;
use crate::core::{ConnState, Core};
use crate::helper::HelperJob;
use crate::storage::writer::{WriteOp, WriteRequest};

/// Names this server in `HelloOk`.
const SERVER_NAME: &str = concat!("hotline/", env!("CARGO_PKG_VERSION"));

pub(super) fn hello(core: &mut Core, idx: usize, request_id: u64, m: Hello<'_>) {
    if !matches!(core.conns[idx].state, ConnState::Handshaking) {
        return invalid_state(core, idx, request_id, "Hello");
    }
    if m.version_min > PROTOCOL_VERSION || m.version_max < PROTOCOL_VERSION_MIN || m.version_min > m.version_max {
        let text = format!(
            "client speaks versions {}..={}, server {PROTOCOL_VERSION_MIN}..={PROTOCOL_VERSION}",
            m.version_min, m.version_max
        );
        core.push_error(idx, request_id, ErrorCode::UnsupportedVersion, &text);
        return core.close(idx);
    }
    core.conns[idx].state = ConnState::Ready;
    let limits = core.limits;
    let reply = HelloOk {
        version: m.version_max.min(PROTOCOL_VERSION),
        server_name: SERVER_NAME,
        limits,
    };
    core.push(idx, request_id, &Message::HelloOk(reply));
}

pub(super) fn register(core: &mut Core, idx: usize, request_id: u64, m: Register<'_>) {
    if !matches!(core.conns[idx].state, ConnState::Ready) {
        return invalid_state(core, idx, request_id, "Register");
    }
    if core.shared.config.registration == Registration::Closed {
        let text = "this server does not accept registrations";
        return core.push_error(idx, request_id, ErrorCode::RegistrationClosed, text);
    }
    if let Err(e) = auth::check_username(m.username, core.limits.username_bytes_max) {
        return core.push_error(idx, request_id, ErrorCode::InvalidRequest, &e.to_string());
    }
    if m.password.is_empty() || m.password.len() > core.limits.password_bytes_max as usize {
        let text = format!("password must be 1 to {} bytes", core.limits.password_bytes_max);
        return core.push_error(idx, request_id, ErrorCode::InvalidRequest, &text);
    }
    if let Err(refused) = core.shared.limiter.registration_attempt(core.conns[idx].peer_ip) {
        return core.refuse(idx, request_id, refused);
    }
    let job = HelperJob::Register {
        reply: core.reply_to(idx, request_id),
        username: m.username.to_owned(),
        password: m.password.to_owned(),
    };
    if core.shared.helpers.submit(job).is_err() {
        return overloaded(core, idx, request_id, "registration queue full; retry");
    }
    core.outstanding += 1;
    core.conns[idx].state = ConnState::Authenticating { request_id };
}

pub(super) fn login(core: &mut Core, idx: usize, request_id: u64, m: Login<'_>) {
    if !matches!(core.conns[idx].state, ConnState::Ready) {
        return invalid_state(core, idx, request_id, "Login");
    }
    if m.device_name.len() > core.limits.device_name_bytes_max as usize {
        let text = format!(
            "device name must be at most {} bytes",
            core.limits.device_name_bytes_max
        );
        return core.push_error(idx, request_id, ErrorCode::InvalidRequest, &text);
    }
    let username = match m.credentials {
        Credentials::Password { username, .. } => Some(username),
        Credentials::Token(_) => None,
    };
    if let Err(refused) = core.shared.limiter.login_attempt(core.conns[idx].peer_ip, username) {
        return core.refuse(idx, request_id, refused);
    }
    let reply = core.reply_to(idx, request_id);
    let job = match m.credentials {
        Credentials::Password { username, password } => {
            if auth::check_username(username, core.limits.username_bytes_max).is_err()
                || password.len() > core.limits.password_bytes_max as usize
            {
                // Cannot match any account; answered like any other wrong credential.
                return core.push_error(idx, request_id, ErrorCode::InvalidCredentials, "invalid credentials");
            }
            core.pending_usernames.insert(idx, username.into());
            HelperJob::PasswordLogin {
                reply,
                username: username.to_owned(),
                password: password.to_owned(),
                device_name: m.device_name.to_owned(),
            }
        }
        Credentials::Token(token) => {
            let Ok(token) = <[u8; auth::TOKEN_BYTES]>::try_from(token) else {
                return core.push_error(idx, request_id, ErrorCode::InvalidCredentials, "invalid credentials");
            };
            core.pending_tokens.insert(idx, token);
            HelperJob::TokenLogin { reply, token }
        }
    };
    if core.shared.helpers.submit(job).is_err() {
        core.pending_tokens.remove(&idx);
        core.pending_usernames.remove(&idx);
        return overloaded(core, idx, request_id, "login queue full; retry");
    }
    core.outstanding += 1;
    core.conns[idx].state = ConnState::Authenticating { request_id };
}

pub(super) fn logout(core: &mut Core, idx: usize, request_id: u64) {
    let ConnState::LoggedIn(dev) = &core.conns[idx].state else {
        return invalid_state(core, idx, request_id, "Logout");
    };
    let request = WriteRequest {
        reply: Some(core.reply_to(idx, request_id)),
        op: WriteOp::RevokeToken {
            token_hash: dev.token_hash,
        },
    };
    if core.submit_write(request).is_err() {
        return overloaded(core, idx, request_id, "write queue full; retry");
    }
    core.outstanding += 1;
}

/// Answers a `Ping` in any state after `Hello`. Before it, a `Ping` is refused like every
/// other request: the handshake comes first, so a peer that never sends `Hello` cannot keep
/// a connection busy (or probe a server) with anything but the one frame that starts it.
pub(super) fn ping(core: &mut Core, idx: usize, request_id: u64, p: Ping) {
    if matches!(core.conns[idx].state, ConnState::Handshaking) {
        return invalid_state(core, idx, request_id, "Ping");
    }
    core.push(idx, request_id, &Message::Pong(Pong { nonce: p.nonce }));
}
