//! Send, Ack, Sync: a logged-in device's traffic.

use bytes::Bytes;
use hotline_wire::{Ack, ErrorCode, MessageKind, Send, Sync};

use super::{invalid_state, overloaded};
use crate::config::SYNCS_IN_FLIGHT_MAX;
use crate::core::{ConnState, Core};
use crate::helper::HelperJob;
use crate::mailbox::{ReadPurpose, ReplyTo};
use crate::storage::writer::{WriteOp, WriteRequest};

pub fn send(core: &mut Core, idx: usize, request_id: u64, m: Send<'_>) {
    let reply = ReplyTo {
        counted: true,
        ..core.reply_to(idx, request_id)
    };
    let payload_max = core.limits.payload_bytes_max;
    let ConnState::LoggedIn(dev) = &mut core.conns[idx].state else {
        return invalid_state(core, idx, request_id, "Send");
    };
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
    if let Err(refused) = core.shared.limiter.message(dev.user_id, m.to, m.group) {
        return core.refuse(idx, request_id, refused);
    }
    let ConnState::LoggedIn(dev) = &mut core.conns[idx].state else {
        unreachable!("checked above, nothing changed the state since");
    };
    let request = WriteRequest {
        reply: Some(reply),
        op: WriteOp::Append {
            sender: dev.user_id,
            sender_device: dev.device_id,
            to: m.to,
            group: m.group,
            client_msg_id: m.client_msg_id,
            flags: m.flags,
            kind: m.kind,
            refers_to: m.refers_to,
            payload: Bytes::copy_from_slice(m.payload),
        },
    };
    if core.shared.writer.submit(request).is_err() {
        return overloaded(core, idx, request_id, "write queue full; retry");
    }
    dev.sends_in_flight += 1;
    core.outstanding += 1;
}

pub fn ack(core: &mut Core, idx: usize, request_id: u64, m: Ack) {
    if !matches!(core.conns[idx].state, ConnState::LoggedIn(_)) {
        return invalid_state(core, idx, request_id, "Ack");
    }
    core.ack(idx, request_id, m.up_to_seq);
}

pub fn sync(core: &mut Core, idx: usize, request_id: u64, m: Sync) {
    let reply = core.reply_to(idx, request_id);
    let page_max = core.limits.sync_page_messages_max;
    let bytes_max = core.shared.config.sync_page_bytes_max();
    let ConnState::LoggedIn(dev) = &mut core.conns[idx].state else {
        return invalid_state(core, idx, request_id, "Sync");
    };
    if dev.syncs_in_flight >= SYNCS_IN_FLIGHT_MAX {
        return overloaded(core, idx, request_id, "too many Syncs in flight");
    }
    let limit = if m.limit == 0 { page_max } else { m.limit.min(page_max) };
    let job = HelperJob::ReadInbox {
        reply,
        user_id: dev.user_id,
        after_seq: m.after_seq,
        limit: limit as usize,
        bytes_max,
        purpose: ReadPurpose::Sync,
    };
    if core.shared.helpers.submit(job).is_err() {
        return overloaded(core, idx, request_id, "read queue full; retry");
    }
    dev.syncs_in_flight += 1;
    core.outstanding += 1;
}
