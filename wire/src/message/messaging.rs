//! Messaging bodies: sending, delivery, acknowledgement, sync and receipts (the engine's
//! `handlers/messaging.rs`).

use flatbuffers::{UnionWIPOffset, WIPOffset};

use super::conversations::Conversation;
use super::{present, required, Body, Builder, DeliverOffsets};
use crate::fb;
use crate::frame::FrameError;

/// Per-message flags chosen by the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct SendFlags(pub u8);

impl SendFlags {
    /// No receipts requested.
    pub const NONE: SendFlags = SendFlags(0);
    /// Tell the sender when a recipient device has stored the message.
    pub const DELIVERY_RECEIPT: SendFlags = SendFlags(1 << 0);
    /// Tell the sender when a recipient has read the message.
    pub const READ_RECEIPT: SendFlags = SendFlags(1 << 1);

    /// Whether every flag in `other` is set.
    pub fn contains(self, other: SendFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for SendFlags {
    type Output = SendFlags;
    fn bitor(self, rhs: SendFlags) -> SendFlags {
        SendFlags(self.0 | rhs.0)
    }
}

/// What an inbox entry is (mirrors the schema's `MessageKind`; unknown values pass through).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct MessageKind(pub u8);

impl MessageKind {
    /// An ordinary message.
    pub const NORMAL: MessageKind = MessageKind(0);
    /// Replaces the payload of the sender's own message `refers_to`.
    pub const EDIT: MessageKind = MessageKind(1);
    /// Withdraws the sender's own message `refers_to`.
    pub const DELETE: MessageKind = MessageKind(2);
    /// A store-until-delivered entry whose payload is gone (never pushed live).
    pub const EXPIRED: MessageKind = MessageKind(3);
}

/// Delivered or read (mirrors the schema's `ReceiptKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct ReceiptKind(pub u8);

impl ReceiptKind {
    pub const DELIVERED: ReceiptKind = ReceiptKind(0);
    pub const READ: ReceiptKind = ReceiptKind(1);
}

/// Client → server: send a message to a user (`to`) or a group (`group`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Send<'a> {
    pub client_msg_id: u64,
    pub to: u64,
    pub payload: &'a [u8],
    pub flags: SendFlags,
    /// Non-zero: the group to send to (`to` must be 0).
    pub group: u64,
    pub kind: MessageKind,
    /// Edit and Delete: the original message id.
    pub refers_to: u64,
}

impl<'a> Send<'a> {
    /// A plain message to user `to`.
    pub fn direct(to: u64, client_msg_id: u64, payload: &'a [u8], flags: SendFlags) -> Self {
        Send {
            client_msg_id,
            to,
            payload,
            flags,
            group: 0,
            kind: MessageKind::NORMAL,
            refers_to: 0,
        }
    }
}

impl<'a> Body<'a> for Send<'a> {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_send(), request_id)?;
        Ok(Send {
            client_msg_id: b.client_msg_id(),
            to: b.to(),
            payload: b.payload().map(|p| p.bytes()).unwrap_or(&[]),
            flags: SendFlags(b.flags().bits()),
            group: b.group(),
            kind: MessageKind(b.kind().0),
            refers_to: b.refers_to(),
        })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        let payload = Some(fbb.create_vector(self.payload));
        let args = fb::SendArgs {
            client_msg_id: self.client_msg_id,
            to: self.to,
            payload,
            flags: fb::SendFlags::from_bits_retain(self.flags.0),
            group: self.group,
            kind: fb::MessageKind(self.kind.0),
            refers_to: self.refers_to,
        };
        fb::Send::create(fbb, &args).as_union_value()
    }
}

/// Server → client: the message is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SendAck {
    pub client_msg_id: u64,
    pub message_id: u64,
    pub inbox_seq: u64,
    pub timestamp_us: u64,
}

impl<'a> Body<'a> for SendAck {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_send_ack(), request_id)?;
        Ok(SendAck {
            client_msg_id: b.client_msg_id(),
            message_id: b.message_id(),
            inbox_seq: b.inbox_seq(),
            timestamp_us: b.timestamp_us(),
        })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        let args = fb::SendAckArgs {
            client_msg_id: self.client_msg_id,
            message_id: self.message_id,
            inbox_seq: self.inbox_seq,
            timestamp_us: self.timestamp_us,
        };
        fb::SendAck::create(fbb, &args).as_union_value()
    }
}

/// One inbox message: a live push, or an entry of a `SyncPage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deliver<'a> {
    pub message_id: u64,
    pub conversation: Conversation,
    pub sender: u64,
    pub sender_device: u64,
    pub inbox_seq: u64,
    pub timestamp_us: u64,
    pub payload: &'a [u8],
    pub flags: SendFlags,
    pub client_msg_id: u64,
    pub kind: MessageKind,
    pub refers_to: u64,
    /// The receiving user's durable watermark when this was sent: every inbox entry up to
    /// it is durable; an entry above it is tentative (delivered before its fsync).
    pub durable_seq: u64,
}

impl<'a> Deliver<'a> {
    /// Reads one `Deliver` table: a frame's body or a `SyncPage` entry.
    fn read_table(b: fb::Deliver<'a>, request_id: u64) -> Result<Self, FrameError> {
        let conversation = required(b.conversation(), request_id, "Deliver.conversation")?;
        Ok(Deliver {
            message_id: b.message_id(),
            conversation: Conversation::from_fb(conversation),
            sender: b.sender(),
            sender_device: b.sender_device(),
            inbox_seq: b.inbox_seq(),
            timestamp_us: b.timestamp_us(),
            payload: b.payload().map(|p| p.bytes()).unwrap_or(&[]),
            flags: SendFlags(b.flags().bits()),
            client_msg_id: b.client_msg_id(),
            kind: MessageKind(b.kind().0),
            refers_to: b.refers_to(),
            durable_seq: b.durable_seq(),
        })
    }

    /// Writes one `Deliver` table: a frame's body or a `SyncPage` entry.
    fn write_table(&self, fbb: &mut Builder) -> WIPOffset<fb::Deliver<'static>> {
        let payload = Some(fbb.create_vector(self.payload));
        let conversation = self.conversation.to_fb();
        let args = fb::DeliverArgs {
            message_id: self.message_id,
            conversation: Some(&conversation),
            sender: self.sender,
            sender_device: self.sender_device,
            inbox_seq: self.inbox_seq,
            timestamp_us: self.timestamp_us,
            payload,
            flags: fb::SendFlags::from_bits_retain(self.flags.0),
            client_msg_id: self.client_msg_id,
            kind: fb::MessageKind(self.kind.0),
            refers_to: self.refers_to,
            durable_seq: self.durable_seq,
        };
        fb::Deliver::create(fbb, &args)
    }
}

impl<'a> Body<'a> for Deliver<'a> {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        Deliver::read_table(present(frame.body_as_deliver(), request_id)?, request_id)
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        self.write_table(fbb).as_union_value()
    }
}

/// Client → server: this device has stored everything up to `up_to_seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ack {
    pub up_to_seq: u64,
}

impl<'a> Body<'a> for Ack {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_ack(), request_id)?;
        Ok(Ack {
            up_to_seq: b.up_to_seq(),
        })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        let args = fb::AckArgs {
            up_to_seq: self.up_to_seq,
        };
        fb::Ack::create(fbb, &args).as_union_value()
    }
}

/// Server → client: reply to an `Ack` that carried a request id; the cursor is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AckOk {
    pub device_cursor: u64,
}

impl<'a> Body<'a> for AckOk {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_ack_ok(), request_id)?;
        Ok(AckOk {
            device_cursor: b.device_cursor(),
        })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        let args = fb::AckOkArgs {
            device_cursor: self.device_cursor,
        };
        fb::AckOk::create(fbb, &args).as_union_value()
    }
}

/// Server → client push: the receiving user's durable watermark moved to `inbox_seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Durable {
    pub inbox_seq: u64,
}

impl<'a> Body<'a> for Durable {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_durable(), request_id)?;
        Ok(Durable {
            inbox_seq: b.inbox_seq(),
        })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        let args = fb::DurableArgs {
            inbox_seq: self.inbox_seq,
        };
        fb::Durable::create(fbb, &args).as_union_value()
    }
}

/// Client → server: read a page of the caller's inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sync {
    pub after_seq: u64,
    /// 0 means the server's maximum.
    pub limit: u32,
}

impl<'a> Body<'a> for Sync {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_sync(), request_id)?;
        Ok(Sync {
            after_seq: b.after_seq(),
            limit: b.limit(),
        })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        let args = fb::SyncArgs {
            after_seq: self.after_seq,
            limit: self.limit,
        };
        fb::Sync::create(fbb, &args).as_union_value()
    }
}

/// Server → client: a page of inbox messages in seq order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncPage<'a> {
    pub messages: Vec<Deliver<'a>>,
    pub inbox_seq: u64,
    pub more: bool,
}

impl<'a> Body<'a> for SyncPage<'a> {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_sync_page(), request_id)?;
        let mut messages = Vec::new();
        if let Some(list) = b.messages() {
            messages.reserve_exact(list.len());
            for d in list.iter() {
                messages.push(Deliver::read_table(d, request_id)?);
            }
        }
        Ok(SyncPage {
            messages,
            inbox_seq: b.inbox_seq(),
            more: b.more(),
        })
    }

    fn write(&self, fbb: &mut Builder, scratch: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        // Children first, then the vector: FlatBuffers builds bottom-up. The offsets go in
        // the encoder's reused scratch list, so a page allocates nothing new once the
        // encoder has seen a page that large.
        scratch.clear();
        for d in &self.messages {
            let o = d.write_table(fbb);
            scratch.push(o);
        }
        let messages = Some(fbb.create_vector(scratch));
        let args = fb::SyncPageArgs {
            messages,
            inbox_seq: self.inbox_seq,
            more: self.more,
        };
        fb::SyncPage::create(fbb, &args).as_union_value()
    }
}

/// Server → sender's devices: a message was delivered to or read by `user_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    pub kind: ReceiptKind,
    pub message_id: u64,
    /// As the sender sees it.
    pub conversation: Conversation,
    pub user_id: u64,
    pub timestamp_us: u64,
}

impl<'a> Body<'a> for Receipt {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_receipt(), request_id)?;
        let conversation = required(b.conversation(), request_id, "Receipt.conversation")?;
        Ok(Receipt {
            kind: ReceiptKind(b.kind().0),
            message_id: b.message_id(),
            conversation: Conversation::from_fb(conversation),
            user_id: b.user_id(),
            timestamp_us: b.timestamp_us(),
        })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        let conversation = self.conversation.to_fb();
        let args = fb::ReceiptArgs {
            kind: fb::ReceiptKind(self.kind.0),
            message_id: self.message_id,
            conversation: Some(&conversation),
            user_id: self.user_id,
            timestamp_us: self.timestamp_us,
        };
        fb::Receipt::create(fbb, &args).as_union_value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_flags_combine() {
        let f = SendFlags::DELIVERY_RECEIPT | SendFlags::READ_RECEIPT;
        assert!(f.contains(SendFlags::DELIVERY_RECEIPT));
        assert!(f.contains(SendFlags::READ_RECEIPT));
        assert!(!SendFlags::NONE.contains(SendFlags::READ_RECEIPT));
    }
}
