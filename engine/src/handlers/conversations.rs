//! Read positions, conversation lists, persistence levels, typing and presence
//! subscriptions: what a logged-in device says about conversations rather than in them.

use hotline_wire::{
    Conversation, Conversations, ErrorCode, MarkRead, PresenceSubscribe, SetPersistence, Typing, REQUEST_ID_NONE,
};

use super::{logged_in_user, submit_read, submit_write};
use crate::core::{ConnState, Core};
use crate::helper::HelperJob;
use crate::limits::{PRESENCE_SUBSCRIBE_USERS_MAX, TYPING_INTERVAL_MS_MIN};
use crate::storage::writer::WriteOp;

/// Whether a conversation names something (a kind this server knows and a non-zero id).
fn names_something(c: Conversation) -> bool {
    matches!(c, Conversation::Direct(id) | Conversation::Group(id) if id != 0)
}

pub(super) fn mark_read(core: &mut Core, idx: usize, request_id: u64, m: MarkRead) {
    let Some(user) = logged_in_user(core, idx, request_id, "MarkRead") else {
        return;
    };
    if !names_something(m.conversation) || m.up_to_seq == 0 {
        let text = "MarkRead needs a direct or group conversation and an inbox seq";
        return core.push_error(idx, request_id, ErrorCode::InvalidRequest, text);
    }
    let op = WriteOp::MarkRead {
        user,
        conversation: m.conversation,
        seq: m.up_to_seq,
    };
    submit_write(core, idx, request_id, op);
}

pub(super) fn list(core: &mut Core, idx: usize, request_id: u64, m: Conversations) {
    let Some(user_id) = logged_in_user(core, idx, request_id, "Conversations") else {
        return;
    };
    let job = HelperJob::Conversations {
        reply: core.reply_to(idx, request_id),
        user_id,
        after: m.after,
        limit: core.limits.sync_page_messages_max as usize,
    };
    submit_read(core, idx, request_id, job);
}

pub(super) fn set_persistence(core: &mut Core, idx: usize, request_id: u64, m: SetPersistence) {
    let Some(actor) = logged_in_user(core, idx, request_id, "SetPersistence") else {
        return;
    };
    if !names_something(m.conversation) || !m.persistence.is_known() {
        let text = "SetPersistence needs a direct or group conversation and a known level";
        return core.push_error(idx, request_id, ErrorCode::InvalidRequest, text);
    }
    let op = WriteOp::SetPersistence {
        actor,
        conversation: m.conversation,
        persistence: m.persistence,
    };
    submit_write(core, idx, request_id, op);
}

/// Typing is rate-limited per device: at most one per [`TYPING_INTERVAL_MS_MIN`] is passed
/// on; the rest are dropped (counted), and answered `RateLimited` only if they asked for a
/// reply (a request id).
pub(super) fn typing(core: &mut Core, idx: usize, request_id: u64, m: Typing) {
    let Some(user) = logged_in_user(core, idx, request_id, "Typing") else {
        return;
    };
    if !names_something(m.conversation) {
        let text = "Typing needs a direct or group conversation";
        return core.push_error(idx, request_id, ErrorCode::InvalidRequest, text);
    }
    let now = core.now_ms();
    let ConnState::LoggedIn(dev) = &mut core.conns[idx].state else {
        return;
    };
    if dev.typing_last_ms != 0 && now.saturating_sub(dev.typing_last_ms) < TYPING_INTERVAL_MS_MIN {
        core.shared
            .metrics
            .typing_rate_limited
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if request_id != REQUEST_ID_NONE {
            core.push_error(idx, request_id, ErrorCode::RateLimited, "typing too often");
        }
        return;
    }
    dev.typing_last_ms = now;
    let op = WriteOp::Typing {
        user,
        conversation: m.conversation,
    };
    submit_write(core, idx, request_id, op);
}

pub(super) fn presence_subscribe(core: &mut Core, idx: usize, request_id: u64, m: PresenceSubscribe) {
    let Some(user_id) = logged_in_user(core, idx, request_id, "PresenceSubscribe") else {
        return;
    };
    if m.user_ids.len() > PRESENCE_SUBSCRIBE_USERS_MAX {
        let text = format!("at most {PRESENCE_SUBSCRIBE_USERS_MAX} users per PresenceSubscribe");
        return core.push_error(idx, request_id, ErrorCode::InvalidRequest, &text);
    }
    let job = HelperJob::PresenceCheck {
        reply: core.reply_to(idx, request_id),
        user_id,
        targets: m.user_ids,
    };
    submit_read(core, idx, request_id, job);
}
