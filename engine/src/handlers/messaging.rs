//! Send, Ack, Sync: a logged-in device's traffic.

use bytes::Bytes;
use hotline_wire::{Ack, ErrorCode, MessageKind, Send, Sync};

use super::{invalid_state, logged_in_user, submit_read, submit_write};
use crate::core::{ConnState, Core, DeliveryMode, OWN_SENDS_TRACKED_MAX};
use crate::helper::{HelperJob, ReadPurpose};
use crate::storage::writer::WriteOp;

pub(super) fn send(core: &mut Core, idx: usize, request_id: u64, m: Send<'_>) {
    let payload_max = core.limits.payload_bytes_max;
    let ConnState::LoggedIn(dev) = &core.conns[idx].state else {
        return invalid_state(core, idx, request_id, "Send");
    };
    let (sender, sender_device, catching_up) = (dev.user_id, dev.device_id, dev.mode == DeliveryMode::CatchingUp);
    if (m.to == 0) == (m.group == 0) {
        let text = "Send must name either a user (to) or a group, not both";
        return core.push_error(idx, request_id, ErrorCode::InvalidRequest, text);
    }
    let kind_ok = match m.kind {
        MessageKind::NORMAL => m.refers_to == 0,
        MessageKind::EDIT => m.refers_to != 0,
        MessageKind::DELETE => m.refers_to != 0 && m.payload.is_empty(),
        _ => false,
    };
    if !kind_ok {
        let text = "Send.kind: Normal has no refers_to; Edit and Delete name one; Delete has no payload";
        return core.push_error(idx, request_id, ErrorCode::InvalidRequest, text);
    }
    if m.payload.len() > payload_max as usize {
        let text = format!(
            "payload of {} bytes exceeds the limit of {payload_max}",
            m.payload.len()
        );
        return core.push_error(idx, request_id, ErrorCode::PayloadTooLarge, &text);
    }
    if core.shed_for_delay(idx, request_id) {
        return;
    }
    if let Err(refused) = core.shared.limiter.message(sender, m.to, m.group) {
        return core.refuse(idx, request_id, refused);
    }
    let op = WriteOp::Append {
        sender,
        sender_device,
        to: m.to,
        group: m.group,
        client_msg_id: m.client_msg_id,
        flags: m.flags,
        kind: m.kind,
        refers_to: m.refers_to,
        payload: Bytes::copy_from_slice(m.payload),
    };
    if catching_up {
        let own = core.own_sends.entry(idx).or_default();
        if own.len() < OWN_SENDS_TRACKED_MAX {
            own.push(m.client_msg_id);
        }
    }
    submit_write(core, idx, request_id, op);
}

pub(super) fn ack(core: &mut Core, idx: usize, request_id: u64, m: Ack) {
    if !matches!(core.conns[idx].state, ConnState::LoggedIn(_)) {
        return invalid_state(core, idx, request_id, "Ack");
    }
    core.ack(idx, request_id, m.up_to_seq);
}

pub(super) fn sync(core: &mut Core, idx: usize, request_id: u64, m: Sync) {
    let Some(user_id) = logged_in_user(core, idx, request_id, "Sync") else {
        return;
    };
    let page_max = core.limits.sync_page_messages_max;
    let limit = if m.limit == 0 { page_max } else { m.limit.min(page_max) };
    let job = HelperJob::ReadInbox {
        reply: core.reply_to(idx, request_id),
        user_id,
        after_seq: m.after_seq,
        limit: limit as usize,
        bytes_max: core.shared.config.sync_page_bytes_max(),
        purpose: ReadPurpose::Sync,
    };
    submit_read(core, idx, request_id, job);
}
