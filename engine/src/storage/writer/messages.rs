//! The writer's `Append`: a direct or group message into every inbox it reaches, with its
//! dedup entry, in the one batch that also takes each inbox's next seq.
//!
//! Everything is checked before a seq is taken, so a refusal leaves no trace; a message is
//! then written to the recipient's inbox first and the sender's second (one copy to
//! oneself), and its cores are told only after the batch commits.

use std::sync::Arc;

use bytes::Bytes;
use hotline_wire::{MessageKind, Persistence, SendAck, SendFlags};
use rocksdb::WriteBatch;

use super::{Refusal, WriteOutcome, WriterState};
use crate::mailbox::ReplyTo;
use crate::storage::keys::{self, pair};
use crate::storage::record::{RecordMeta, StoredMessage, PAYLOAD_SHARED, STORE_UNTIL_DELIVERED};
use crate::storage::{Cf, MessageOrigin};

/// The fields of a [`super::WriteOp::Append`].
#[derive(Debug)]
pub(super) struct Append {
    pub sender: u64,
    pub sender_device: u64,
    pub to: u64,
    pub group: u64,
    pub client_msg_id: u64,
    pub flags: SendFlags,
    pub kind: MessageKind,
    pub refers_to: u64,
    pub payload: Bytes,
}

impl WriterState {
    /// Appends a message (or answers a retry with its original ack).
    pub(super) fn append(
        &mut self,
        m: Append,
        reply: Option<ReplyTo>,
        batch: &mut WriteBatch,
        timestamp_us: u64,
    ) -> Result<WriteOutcome, Refusal> {
        if let Some(ack) = self.deduplicated(m.sender, m.client_msg_id)? {
            return Ok(WriteOutcome::Sent(ack));
        }
        // Check everything before taking any seq, so a refusal leaves no trace.
        let (recipients, persistence) = self.recipients(m.sender, m.to, m.group)?;
        if m.kind == MessageKind::EDIT || m.kind == MessageKind::DELETE {
            self.check_own_message(m.sender, m.to, m.group, m.refers_to)?;
        }
        let message_id = self.batch_next_message_id;
        self.batch_next_message_id += 1;
        let message = Arc::new(StoredMessage {
            message_id,
            sender: m.sender,
            sender_device: m.sender_device,
            recipient: m.to,
            timestamp_us,
            flags: m.flags,
            client_msg_id: m.client_msg_id,
            payload: m.payload,
            group: m.group,
            kind: m.kind,
            refers_to: m.refers_to,
        });
        if persistence == Persistence::EPHEMERAL {
            self.push_ephemeral(&message, &recipients, reply);
            return Ok(WriteOutcome::Sent(SendAck {
                client_msg_id: m.client_msg_id,
                message_id,
                inbox_seq: 0,
                timestamp_us,
            }));
        }
        let entries = self.write_copies(&message, &recipients, persistence, batch)?;
        let sender_seq = entries
            .iter()
            .find(|(owner, _)| *owner == m.sender)
            .map_or(0, |(_, seq)| *seq);
        if m.kind == MessageKind::NORMAL {
            self.remember_origin(&message);
        }
        let ack = SendAck {
            client_msg_id: m.client_msg_id,
            message_id,
            inbox_seq: sender_seq,
            timestamp_us,
        };
        let dedup_value = keys::le_u64x3(message_id, sender_seq, timestamp_us);
        batch.put_cf(self.storage.cf(Cf::Dedup), pair(m.sender, m.client_msg_id), dedup_value);
        self.batch_dedup.insert((m.sender, m.client_msg_id), ack);
        self.push_committed(&message, &entries, reply);
        Ok(WriteOutcome::Sent(ack))
    }

    /// The ack of an earlier send with the same `(sender, client_msg_id)`, from this batch
    /// or from storage (across restarts).
    fn deduplicated(&self, sender: u64, client_msg_id: u64) -> Result<Option<SendAck>, Refusal> {
        if let Some(ack) = self.batch_dedup.get(&(sender, client_msg_id)) {
            return Ok(Some(*ack));
        }
        Ok(self
            .storage
            .dedup(sender, client_msg_id)?
            .map(|[message_id, inbox_seq, timestamp_us]| SendAck {
                client_msg_id,
                message_id,
                inbox_seq,
                timestamp_us,
            }))
    }

    /// Writes `message` into each of `recipients`' inboxes at its next seq (direct: the
    /// recipient's copy first, then the sender's); returns `(owner, seq)` per copy.
    fn write_copies(
        &mut self,
        message: &StoredMessage,
        recipients: &[u64],
        persistence: Persistence,
        batch: &mut WriteBatch,
    ) -> Result<Vec<(u64, u64)>, Refusal> {
        // Every read that could fail happens before the first copy is put, so a refusal
        // (a member gone, a storage read failing) leaves no half-written message.
        for &owner in recipients {
            self.counters(owner)?
                .ok_or(Refusal::Client(hotline_wire::ErrorCode::NoSuchUser))?;
            self.conv(owner, message.conversation_for(owner))?;
        }
        let mut storage_flags = if persistence == Persistence::UNTIL_DELIVERED {
            STORE_UNTIL_DELIVERED
        } else {
            0
        };
        if message.group != 0 && !message.payload.is_empty() {
            // One payload for every member's inbox (fan-out on write).
            storage_flags |= PAYLOAD_SHARED;
            batch.put_cf(
                self.storage.cf(Cf::Payloads),
                keys::id(message.message_id),
                &message.payload,
            );
        }
        let scan_worthy = storage_flags & STORE_UNTIL_DELIVERED != 0
            || message.flags.contains(SendFlags::DELIVERY_RECEIPT)
            || message.flags.contains(SendFlags::READ_RECEIPT);
        let mut entries = Vec::with_capacity(recipients.len());
        for &owner in recipients {
            let seq = self.next_seq(owner)?;
            let conversation = message.conversation_for(owner);
            let incoming = owner != message.sender && message.kind == MessageKind::NORMAL;
            let ordinal = self.conv_appended(owner, conversation, seq, incoming, batch)?;
            let meta = RecordMeta { ordinal, storage_flags };
            self.record.clear();
            message.encode_record(owner, meta, &mut self.record);
            debug_assert_record_shape(message, owner, seq, meta, &self.record);
            batch.put_cf(self.storage.cf(Cf::Inbox), pair(owner, seq), &self.record);
            entries.push((owner, seq));
            if scan_worthy {
                self.flagged_at(owner, seq);
            }
        }
        Ok(entries)
    }

    /// Remembers who sent a normal message in this batch, for the Edits and Deletes that
    /// refer to it before it is readable (later ones find the sender's copy in its inbox).
    fn remember_origin(&mut self, message: &StoredMessage) {
        let origin = MessageOrigin {
            sender: message.sender,
            conversation: message.conversation_for(message.sender),
        };
        self.batch_messages.insert(message.message_id, origin);
    }
}

/// The record about to be written reads back as the message it was made from (paired with
/// the checks `decode_record` makes on every read): the copy at `seq` in `owner`'s inbox,
/// with its bookkeeping, and its payload unless that is stored once for the group.
fn debug_assert_record_shape(message: &StoredMessage, owner: u64, seq: u64, meta: RecordMeta, record: &[u8]) {
    if !cfg!(debug_assertions) {
        return;
    }
    let decoded = crate::storage::record::decode_record(seq, record);
    let mut expected = message.deliver(owner, seq);
    if meta.storage_flags & PAYLOAD_SHARED != 0 {
        expected.payload = &[];
    }
    debug_assert_eq!(decoded, Ok(expected), "a record reads back as written");
    debug_assert_eq!(
        crate::storage::record::decode_meta(record),
        Ok(meta),
        "a record's bookkeeping reads back as written"
    );
}
