//! The stored form of an inbox entry, and the in-memory message the writer hands to cores.
//!
//! Layout of a stored record (version 1), fixed fields little-endian:
//!
//! | bytes | field |
//! | --- | --- |
//! | 1 | format version (1) |
//! | 8 | message id |
//! | 1 | conversation kind (wire `ConversationKind`) |
//! | 8 | conversation id (seen from the inbox owner) |
//! | 8 | sender user id |
//! | 8 | sender device id |
//! | 8 | server timestamp, µs since the Unix epoch |
//! | 1 | send flags |
//! | 8 | sender's client message id |
//! | rest | payload |

use bytes::Bytes;
use hotline_wire::{Conversation, Deliver, SendFlags};

use super::keys::le_u64;

const FORMAT_VERSION: u8 = 1;

/// Bytes before the payload in a stored record.
pub const RECORD_HEADER_BYTES: usize = 51;

/// One message as committed: shared (behind an `Arc`) by every inbox copy's notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub message_id: u64,
    pub sender: u64,
    pub sender_device: u64,
    /// The other party of a direct message (the recipient).
    pub recipient: u64,
    pub timestamp_us: u64,
    pub flags: SendFlags,
    pub client_msg_id: u64,
    pub payload: Bytes,
}

impl StoredMessage {
    /// The conversation as the owner of `inbox_user`'s inbox sees it.
    pub fn conversation_for(&self, inbox_user: u64) -> Conversation {
        if inbox_user == self.sender {
            Conversation::Direct(self.recipient)
        } else {
            Conversation::Direct(self.sender)
        }
    }

    /// The `Deliver` for the copy at `seq` in `inbox_user`'s inbox.
    pub fn deliver(&self, inbox_user: u64, seq: u64) -> Deliver<'_> {
        Deliver {
            message_id: self.message_id,
            conversation: self.conversation_for(inbox_user),
            sender: self.sender,
            sender_device: self.sender_device,
            inbox_seq: seq,
            timestamp_us: self.timestamp_us,
            payload: &self.payload,
            flags: self.flags,
            client_msg_id: self.client_msg_id,
        }
    }

    /// Appends the stored record for `inbox_user`'s copy to `out`.
    pub fn encode_record(&self, inbox_user: u64, out: &mut Vec<u8>) {
        let (kind, conversation_id) = match self.conversation_for(inbox_user) {
            Conversation::Direct(id) => (0u8, id),
            Conversation::Group(id) => (1, id),
            Conversation::Other { kind, id } => (kind, id),
        };
        out.reserve(RECORD_HEADER_BYTES + self.payload.len());
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.message_id.to_le_bytes());
        out.push(kind);
        out.extend_from_slice(&conversation_id.to_le_bytes());
        out.extend_from_slice(&self.sender.to_le_bytes());
        out.extend_from_slice(&self.sender_device.to_le_bytes());
        out.extend_from_slice(&self.timestamp_us.to_le_bytes());
        out.push(self.flags.0);
        out.extend_from_slice(&self.client_msg_id.to_le_bytes());
        out.extend_from_slice(&self.payload);
    }
}

/// Why a stored record could not be read: the database is corrupt or from a newer version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("inbox record of {len} bytes is shorter than its {RECORD_HEADER_BYTES}-byte header")]
    Truncated { len: usize },
    #[error("inbox record has format version {0}, this build reads version {FORMAT_VERSION}")]
    Version(u8),
}

/// Reads a stored record as the `Deliver` for `seq`, borrowing the payload.
pub fn decode_record(seq: u64, v: &[u8]) -> Result<Deliver<'_>, RecordError> {
    let truncated = RecordError::Truncated { len: v.len() };
    if v.len() < RECORD_HEADER_BYTES {
        return Err(truncated);
    }
    if v[0] != FORMAT_VERSION {
        return Err(RecordError::Version(v[0]));
    }
    let u = |at| le_u64(v, at).ok_or(truncated);
    let conversation_id = u(10)?;
    let conversation = match v[9] {
        0 => Conversation::Direct(conversation_id),
        1 => Conversation::Group(conversation_id),
        kind => Conversation::Other {
            kind,
            id: conversation_id,
        },
    };
    Ok(Deliver {
        message_id: u(1)?,
        conversation,
        sender: u(18)?,
        sender_device: u(26)?,
        inbox_seq: seq,
        timestamp_us: u(34)?,
        flags: SendFlags(v[42]),
        client_msg_id: u(43)?,
        payload: &v[RECORD_HEADER_BYTES..],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> StoredMessage {
        StoredMessage {
            message_id: 1 << 40,
            sender: 7,
            sender_device: 2,
            recipient: 9,
            timestamp_us: 1_764_000_000_000_000,
            flags: SendFlags::READ_RECEIPT,
            client_msg_id: 55,
            payload: Bytes::from_static(b"payload \x00\xff"),
        }
    }

    #[test]
    fn records_round_trip_for_both_inboxes() {
        let m = message();
        for (owner, peer) in [(9, 7), (7, 9)] {
            let mut buf = Vec::new();
            m.encode_record(owner, &mut buf);
            assert_eq!(buf.len(), RECORD_HEADER_BYTES + m.payload.len());
            let d = decode_record(12, &buf).unwrap();
            assert_eq!(d, m.deliver(owner, 12));
            assert_eq!(d.conversation, Conversation::Direct(peer));
        }
    }

    #[test]
    fn corrupt_records_are_typed_errors() {
        let mut buf = Vec::new();
        message().encode_record(9, &mut buf);
        assert_eq!(decode_record(1, &buf[..50]), Err(RecordError::Truncated { len: 50 }));
        buf[0] = 9;
        assert_eq!(decode_record(1, &buf), Err(RecordError::Version(9)));
    }
}
