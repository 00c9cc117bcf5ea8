//! Owned copies of what the server sends, since `hotline-wire`'s events borrow the read
//! buffer: [`OwnedEvent`] and the types inside it ([`OwnedDeliver`], [`OwnedSyncPage`],
//! [`LoggedIn`], [`OwnedGroupInfo`]), [`HelloInfo`], and the checks tests make on a list of
//! deliveries ([`assert_dense`], [`assert_each_acked_once`]).
//!
//! Each type is a plain copy of its borrowed original; [`OwnedDeliver`]'s `Debug` shows
//! only the head of the payload, so a failure message stays readable.

use std::fmt;

use hotline_wire::{
    Conversation, Deliver, ErrorCode, GroupMemberList, GroupRole, Limits, MessageKind, Persistence, Presence,
    ReadPosition, Receipt, SendAck, SendFlags, TypingNotice,
};

/// Bytes of a payload shown in a `Debug` print.
const PAYLOAD_SHOWN_BYTES: usize = 32;

/// What a successful `Login` returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedIn {
    pub user_id: u64,
    pub device_id: u64,
    pub token: Vec<u8>,
    /// The inbox head at login.
    pub inbox_seq: u64,
    /// The device's stored cursor: everything after it is delivered next.
    pub device_cursor: u64,
    /// The server's epoch (bumped at every start).
    pub epoch: u64,
}

/// What `HelloOk` announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloInfo {
    pub version: u16,
    pub server_name: String,
    pub limits: Limits,
}

/// An owned [`Deliver`].
#[derive(Clone, PartialEq, Eq)]
pub struct OwnedDeliver {
    pub message_id: u64,
    pub conversation: Conversation,
    pub sender: u64,
    pub sender_device: u64,
    pub inbox_seq: u64,
    pub timestamp_us: u64,
    pub payload: Vec<u8>,
    pub flags: SendFlags,
    pub client_msg_id: u64,
    pub kind: MessageKind,
    pub refers_to: u64,
}

impl From<&Deliver<'_>> for OwnedDeliver {
    fn from(d: &Deliver<'_>) -> Self {
        Self {
            message_id: d.message_id,
            conversation: d.conversation,
            sender: d.sender,
            sender_device: d.sender_device,
            inbox_seq: d.inbox_seq,
            timestamp_us: d.timestamp_us,
            payload: d.payload.to_vec(),
            flags: d.flags,
            client_msg_id: d.client_msg_id,
            kind: d.kind,
            refers_to: d.refers_to,
        }
    }
}

impl fmt::Debug for OwnedDeliver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.payload[..self.payload.len().min(PAYLOAD_SHOWN_BYTES)];
        f.debug_struct("Deliver")
            .field("inbox_seq", &self.inbox_seq)
            .field("message_id", &self.message_id)
            .field("conversation", &self.conversation)
            .field("sender", &self.sender)
            .field("sender_device", &self.sender_device)
            .field("client_msg_id", &self.client_msg_id)
            .field("timestamp_us", &self.timestamp_us)
            .field("flags", &self.flags)
            .field("kind", &self.kind)
            .field("refers_to", &self.refers_to)
            .field("payload_len", &self.payload.len())
            .field("payload_head", &String::from_utf8_lossy(shown))
            .finish()
    }
}

/// An owned `SyncPage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedSyncPage {
    pub messages: Vec<OwnedDeliver>,
    /// The inbox head when the page was read.
    pub inbox_seq: u64,
    pub more: bool,
}

/// An owned [`Event`](hotline_wire::Event), minus `HelloOk` (kept apart, see
/// [`Client::hello`](crate::Client::hello)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedEvent {
    Registered {
        request_id: u64,
        user_id: u64,
    },
    LoggedIn {
        request_id: u64,
        logged_in: LoggedIn,
    },
    LoggedOut {
        request_id: u64,
    },
    SendAck {
        request_id: u64,
        ack: SendAck,
    },
    Deliver(OwnedDeliver),
    AckOk {
        request_id: u64,
        device_cursor: u64,
    },
    SyncPage {
        request_id: u64,
        page: OwnedSyncPage,
    },
    Pong {
        request_id: u64,
        nonce: u64,
    },
    Error {
        request_id: u64,
        code: ErrorCode,
        message: String,
        /// When to retry (ms), for `Overloaded` and `RateLimited`; 0 otherwise.
        retry_after_ms: u32,
    },
    GroupCreated {
        request_id: u64,
        group_id: u64,
    },
    Done {
        request_id: u64,
    },
    GroupMemberList {
        request_id: u64,
        list: GroupMemberList,
    },
    GroupList {
        request_id: u64,
        groups: Vec<OwnedGroupInfo>,
        more: bool,
    },
    Receipt(Receipt),
    /// The reply to `MarkRead` (request id), or a push from another device (request id 0).
    ReadPosition {
        request_id: u64,
        position: ReadPosition,
    },
    ConversationList {
        request_id: u64,
        conversations: Vec<ReadPosition>,
        more: bool,
    },
    TypingNotice(TypingNotice),
    Presence(Presence),
}

/// An owned `GroupInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedGroupInfo {
    pub group_id: u64,
    pub name: String,
    pub role: GroupRole,
    pub persistence: Persistence,
}

impl OwnedEvent {
    /// The request this answers; [`hotline_wire::REQUEST_ID_NONE`] for pushes.
    pub fn request_id(&self) -> u64 {
        match self {
            OwnedEvent::Deliver(_) | OwnedEvent::Receipt(_) | OwnedEvent::TypingNotice(_) | OwnedEvent::Presence(_) => {
                hotline_wire::REQUEST_ID_NONE
            }
            OwnedEvent::Registered { request_id, .. }
            | OwnedEvent::GroupCreated { request_id, .. }
            | OwnedEvent::Done { request_id }
            | OwnedEvent::GroupMemberList { request_id, .. }
            | OwnedEvent::GroupList { request_id, .. }
            | OwnedEvent::ReadPosition { request_id, .. }
            | OwnedEvent::ConversationList { request_id, .. }
            | OwnedEvent::LoggedIn { request_id, .. }
            | OwnedEvent::LoggedOut { request_id }
            | OwnedEvent::SendAck { request_id, .. }
            | OwnedEvent::AckOk { request_id, .. }
            | OwnedEvent::SyncPage { request_id, .. }
            | OwnedEvent::Pong { request_id, .. }
            | OwnedEvent::Error { request_id, .. } => *request_id,
        }
    }

    /// A one-line summary for failure messages (payloads left out).
    pub(crate) fn summary(&self) -> String {
        match self {
            OwnedEvent::Deliver(d) => format!("Deliver(seq {} msg {})", d.inbox_seq, d.message_id),
            OwnedEvent::SyncPage { request_id, page } => format!(
                "SyncPage(req {request_id}, {} messages, head {}, more {})",
                page.messages.len(),
                page.inbox_seq,
                page.more
            ),
            OwnedEvent::Error {
                request_id,
                code,
                message,
                ..
            } => format!("Error(req {request_id}, {code:?}, {message:?})"),
            other => format!("{other:?}"),
        }
    }
}

/// Asserts every acknowledged send is in `inbox` exactly once, at its acknowledged seq.
pub fn assert_each_acked_once(inbox: &[OwnedDeliver], acked: &[SendAck], what: &str) {
    for ack in acked {
        let copies = inbox
            .iter()
            .filter(|m| m.message_id == ack.message_id && m.inbox_seq == ack.inbox_seq)
            .count();
        assert_eq!(
            copies, 1,
            "{what}: acknowledged message {ack:?} is not there exactly once"
        );
    }
}

/// Panics unless `messages` hold the inbox seqs `first_seq, first_seq + 1, ...` in order.
pub fn assert_dense(messages: &[OwnedDeliver], first_seq: u64, what: &str) {
    for (i, m) in messages.iter().enumerate() {
        let expected = first_seq + i as u64;
        assert_eq!(
            m.inbox_seq, expected,
            "{what}: entry {i} has seq {} where {expected} was due (a gap, a duplicate or a reordering): {m:?}",
            m.inbox_seq
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotline_wire::{Conversation, MessageKind, SendFlags};

    fn entry(inbox_seq: u64) -> OwnedDeliver {
        OwnedDeliver {
            message_id: inbox_seq,
            conversation: Conversation::Direct(1),
            sender: 1,
            sender_device: 1,
            inbox_seq,
            timestamp_us: 0,
            payload: Vec::new(),
            flags: SendFlags::NONE,
            client_msg_id: inbox_seq,
            kind: MessageKind::NORMAL,
            refers_to: 0,
        }
    }

    #[test]
    fn dense_seqs_pass_and_gaps_fail() {
        assert_dense(&[entry(4), entry(5), entry(6)], 4, "dense");
        for broken in [
            vec![entry(1), entry(3)],
            vec![entry(1), entry(1)],
            vec![entry(2), entry(1)],
        ] {
            let result = std::panic::catch_unwind(|| assert_dense(&broken, 1, "broken"));
            assert!(result.is_err(), "{broken:?} passed as dense");
        }
    }
}
