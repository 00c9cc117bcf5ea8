//! The stored form of an inbox entry, and the in-memory message the writer hands to cores.
//!
//! Layout of a stored record (version 2), fixed fields little-endian:
//!
//! | bytes | field |
//! | --- | --- |
//! | 1 | format version (2; version 1 records end after the client message id) |
//! | 8 | message id |
//! | 1 | conversation kind (wire `ConversationKind`) |
//! | 8 | conversation id (seen from the inbox owner) |
//! | 8 | sender user id |
//! | 8 | sender device id |
//! | 8 | server timestamp, µs since the Unix epoch |
//! | 1 | send flags |
//! | 8 | sender's client message id |
//! | 1 | message kind (wire `MessageKind`) |
//! | 8 | the message an Edit or Delete refers to |
//! | 8 | ordinal: messages from others in this conversation in this inbox, up to this one |
//! | 1 | storage flags ([`STORE_UNTIL_DELIVERED`]) |
//! | rest | payload |

use bytes::Bytes;
use hotline_wire::{Conversation, Deliver, MessageKind, SendFlags};

use super::keys::le_u64;

const FORMAT_VERSION: u8 = 2;
const FORMAT_VERSION_1: u8 = 1;

/// Bytes before the payload in a version 1 record.
const RECORD_HEADER_BYTES_V1: usize = 51;
/// Bytes before the payload in a stored record.
pub const RECORD_HEADER_BYTES: usize = 69;

/// Storage flag: the entry expires once every device of the inbox's owner acknowledged it.
pub const STORE_UNTIL_DELIVERED: u8 = 1 << 0;
/// Storage flag: the payload is not in the record but stored once, in the `payloads`
/// family under the message id (group messages: one copy for every member's inbox).
pub const PAYLOAD_SHARED: u8 = 1 << 1;

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
    /// The group this message went to; 0 for a direct message.
    pub group: u64,
    pub kind: MessageKind,
    /// Edit and Delete: the original message id.
    pub refers_to: u64,
}

/// What the writer needs from a stored record besides the `Deliver`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMeta {
    /// Messages from others in this conversation, up to and including this entry.
    pub ordinal: u64,
    /// [`STORE_UNTIL_DELIVERED`] and future storage flags.
    pub storage_flags: u8,
}

impl StoredMessage {
    /// The conversation as the owner of `inbox_user`'s inbox sees it.
    pub fn conversation_for(&self, inbox_user: u64) -> Conversation {
        if self.group != 0 {
            Conversation::Group(self.group)
        } else if inbox_user == self.sender {
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
            kind: self.kind,
            refers_to: self.refers_to,
            durable_seq: 0,
        }
    }

    /// Appends the stored record for `inbox_user`'s copy to `out`.
    pub fn encode_record(&self, inbox_user: u64, meta: RecordMeta, out: &mut Vec<u8>) {
        let (kind, conversation_id) = self.conversation_for(inbox_user).kind_and_id();
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
        out.push(self.kind.0);
        out.extend_from_slice(&self.refers_to.to_le_bytes());
        out.extend_from_slice(&meta.ordinal.to_le_bytes());
        out.push(meta.storage_flags);
        if meta.storage_flags & PAYLOAD_SHARED == 0 {
            out.extend_from_slice(&self.payload);
        }
    }
}

/// The record that replaces an expired store-until-delivered entry: same ids, same seq,
/// kind `Expired`, no payload.
pub fn expired_record(v: &[u8]) -> Result<Vec<u8>, RecordError> {
    let d = decode_record(0, v)?;
    let meta = decode_meta(v)?;
    let mut out = Vec::with_capacity(RECORD_HEADER_BYTES);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&d.message_id.to_le_bytes());
    let (kind, id) = d.conversation.kind_and_id();
    out.push(kind);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&d.sender.to_le_bytes());
    out.extend_from_slice(&d.sender_device.to_le_bytes());
    out.extend_from_slice(&d.timestamp_us.to_le_bytes());
    out.push(d.flags.0);
    out.extend_from_slice(&d.client_msg_id.to_le_bytes());
    out.push(MessageKind::EXPIRED.0);
    out.extend_from_slice(&d.refers_to.to_le_bytes());
    out.extend_from_slice(&meta.ordinal.to_le_bytes());
    out.push(0);
    Ok(out)
}

/// The message id of a stored record, if it has a payload stored elsewhere
/// ([`PAYLOAD_SHARED`]) that [`inline_shared_payload`] must put back.
pub fn shared_payload_of(v: &[u8]) -> Option<u64> {
    let meta = decode_meta(v).ok()?;
    (meta.storage_flags & PAYLOAD_SHARED != 0)
        .then(|| le_u64(v, 1))
        .flatten()
}

/// Turns a record whose payload is stored elsewhere into a self-contained one.
pub fn inline_shared_payload(v: &mut Vec<u8>, payload: &[u8]) {
    if v.len() >= RECORD_HEADER_BYTES {
        v[RECORD_HEADER_BYTES - 1] &= !PAYLOAD_SHARED;
        v.truncate(RECORD_HEADER_BYTES);
        v.extend_from_slice(payload);
    }
}

/// Reads the writer's bookkeeping fields of a stored record (version 1: none, zeros).
pub fn decode_meta(v: &[u8]) -> Result<RecordMeta, RecordError> {
    match v.first() {
        Some(&FORMAT_VERSION_1) => Ok(RecordMeta {
            ordinal: 0,
            storage_flags: 0,
        }),
        Some(&FORMAT_VERSION) if v.len() >= RECORD_HEADER_BYTES => Ok(RecordMeta {
            ordinal: le_u64(v, 60).ok_or(RecordError::Truncated { len: v.len() })?,
            storage_flags: v[68],
        }),
        Some(&FORMAT_VERSION) | None => Err(RecordError::Truncated { len: v.len() }),
        Some(&other) => Err(RecordError::Version(other)),
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
    let header = match v.first() {
        Some(&FORMAT_VERSION_1) => RECORD_HEADER_BYTES_V1,
        Some(&FORMAT_VERSION) => RECORD_HEADER_BYTES,
        Some(&other) => return Err(RecordError::Version(other)),
        None => return Err(truncated),
    };
    if v.len() < header {
        return Err(truncated);
    }
    let (kind, refers_to) = if header == RECORD_HEADER_BYTES {
        (MessageKind(v[51]), le_u64(v, 52).ok_or(truncated)?)
    } else {
        (MessageKind::NORMAL, 0)
    };
    let u = |at| le_u64(v, at).ok_or(truncated);
    let conversation_id = u(10)?;
    let conversation = Conversation::from_kind_and_id(v[9], conversation_id);
    Ok(Deliver {
        message_id: u(1)?,
        conversation,
        sender: u(18)?,
        sender_device: u(26)?,
        inbox_seq: seq,
        timestamp_us: u(34)?,
        flags: SendFlags(v[42]),
        client_msg_id: u(43)?,
        kind,
        refers_to,
        payload: &v[header..],
        // A record says nothing of durability: the core fills it in.
        durable_seq: 0,
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
            group: 0,
            kind: MessageKind::NORMAL,
            refers_to: 0,
        }
    }

    const META: RecordMeta = RecordMeta {
        ordinal: 3,
        storage_flags: STORE_UNTIL_DELIVERED,
    };

    #[test]
    fn records_round_trip_for_both_inboxes() {
        let m = message();
        for (owner, peer) in [(9, 7), (7, 9)] {
            let mut buf = Vec::new();
            m.encode_record(owner, META, &mut buf);
            assert_eq!(buf.len(), RECORD_HEADER_BYTES + m.payload.len());
            let d = decode_record(12, &buf).unwrap();
            assert_eq!(d, m.deliver(owner, 12));
            assert_eq!(d.conversation, Conversation::Direct(peer));
            assert_eq!(decode_meta(&buf), Ok(META));
        }
    }

    #[test]
    fn group_edits_and_expired_records_round_trip() {
        let m = StoredMessage {
            group: 44,
            kind: MessageKind::EDIT,
            refers_to: 9,
            ..message()
        };
        let mut buf = Vec::new();
        m.encode_record(9, META, &mut buf);
        let d = decode_record(3, &buf).unwrap();
        assert_eq!(
            (d.conversation, d.kind, d.refers_to),
            (Conversation::Group(44), MessageKind::EDIT, 9)
        );
        let expired = expired_record(&buf).unwrap();
        let e = decode_record(3, &expired).unwrap();
        assert_eq!(
            (e.kind, e.payload, e.message_id),
            (MessageKind::EXPIRED, &[][..], m.message_id)
        );
        assert_eq!(
            decode_meta(&expired).unwrap().storage_flags,
            0,
            "an expired record never expires again"
        );
    }

    #[test]
    fn a_shared_payload_is_left_out_and_put_back() {
        let m = message();
        let mut buf = Vec::new();
        let meta = RecordMeta {
            ordinal: 1,
            storage_flags: PAYLOAD_SHARED,
        };
        m.encode_record(9, meta, &mut buf);
        assert_eq!(buf.len(), RECORD_HEADER_BYTES);
        assert_eq!(shared_payload_of(&buf), Some(m.message_id));
        inline_shared_payload(&mut buf, &m.payload);
        assert_eq!(shared_payload_of(&buf), None);
        assert_eq!(decode_record(4, &buf).unwrap(), m.deliver(9, 4));
    }

    #[test]
    fn version_1_records_still_read() {
        let mut buf = Vec::new();
        message().encode_record(9, META, &mut buf);
        // A version 1 record is the version 2 header without the last 18 bytes.
        let mut v1 = buf[..RECORD_HEADER_BYTES_V1].to_vec();
        v1[0] = FORMAT_VERSION_1;
        v1.extend_from_slice(&buf[RECORD_HEADER_BYTES..]);
        let d = decode_record(12, &v1).unwrap();
        assert_eq!(d, message().deliver(9, 12));
        assert_eq!(decode_meta(&v1).unwrap().ordinal, 0);
    }

    #[test]
    fn corrupt_records_are_typed_errors() {
        let mut buf = Vec::new();
        message().encode_record(9, META, &mut buf);
        assert_eq!(decode_record(1, &buf[..50]), Err(RecordError::Truncated { len: 50 }));
        buf[0] = 9;
        assert_eq!(decode_record(1, &buf), Err(RecordError::Version(9)));
    }
}
