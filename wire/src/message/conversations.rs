//! Conversation bodies: conversation references, read positions, typing, presence and
//! persistence (the engine's `handlers/conversations.rs`).

use flatbuffers::{UnionWIPOffset, WIPOffset};

use super::{present, required, Body, Builder, DeliverOffsets};
use crate::fb;
use crate::frame::FrameError;

/// Which conversation a message belongs to, seen from the inbox that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Conversation {
    /// One-to-one with this user.
    Direct(u64),
    /// A group.
    Group(u64),
    /// A kind a newer peer added; carried through unchanged.
    Other { kind: u8, id: u64 },
}

impl Conversation {
    pub(super) fn from_fb(c: &fb::ConversationRef) -> Self {
        match c.kind() {
            fb::ConversationKind::Direct => Conversation::Direct(c.id()),
            fb::ConversationKind::Group => Conversation::Group(c.id()),
            other => Conversation::Other {
                kind: other.0,
                id: c.id(),
            },
        }
    }

    /// The conversation's (kind, id) as stored and ordered.
    pub fn kind_and_id(self) -> (u8, u64) {
        match self {
            Conversation::Direct(id) => (0, id),
            Conversation::Group(id) => (1, id),
            Conversation::Other { kind, id } => (kind, id),
        }
    }

    /// The conversation for a stored (kind, id).
    pub fn from_kind_and_id(kind: u8, id: u64) -> Self {
        match kind {
            0 => Conversation::Direct(id),
            1 => Conversation::Group(id),
            kind => Conversation::Other { kind, id },
        }
    }

    pub(super) fn to_fb(self) -> fb::ConversationRef {
        let (kind, id) = match self {
            Conversation::Direct(id) => (fb::ConversationKind::Direct, id),
            Conversation::Group(id) => (fb::ConversationKind::Group, id),
            Conversation::Other { kind, id } => (fb::ConversationKind(kind), id),
        };
        fb::ConversationRef::new(kind, id)
    }
}

/// How long a conversation's messages are kept (mirrors the schema's `Persistence`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Persistence(pub u8);

impl Persistence {
    /// Kept in every inbox.
    pub const ARCHIVE: Persistence = Persistence(0);
    /// Kept until every device of the inbox's owner acknowledged it.
    pub const UNTIL_DELIVERED: Persistence = Persistence(1);
    /// Live only, never written.
    pub const EPHEMERAL: Persistence = Persistence(2);

    /// Whether this is a level this protocol version knows.
    pub fn is_known(self) -> bool {
        self.0 <= Persistence::EPHEMERAL.0
    }
}

/// Client → server: read up to the inbox entry `up_to_seq` of `conversation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkRead {
    pub conversation: Conversation,
    pub up_to_seq: u64,
}

impl<'a> Body<'a> for MarkRead {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_mark_read(), request_id)?;
        let conversation = required(b.conversation(), request_id, "MarkRead.conversation")?;
        Ok(MarkRead {
            conversation: Conversation::from_fb(conversation),
            up_to_seq: b.up_to_seq(),
        })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        let conversation = self.conversation.to_fb();
        let args = fb::MarkReadArgs {
            conversation: Some(&conversation),
            up_to_seq: self.up_to_seq,
        };
        fb::MarkRead::create(fbb, &args).as_union_value()
    }
}

/// A conversation's read position and unread count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadPosition {
    pub conversation: Conversation,
    pub read_seq: u64,
    pub unread: u64,
    pub last_seq: u64,
}

impl ReadPosition {
    /// Reads one `ReadPosition` table: a frame's body or a `ConversationList` entry.
    fn read_table(b: fb::ReadPosition<'_>, request_id: u64) -> Result<Self, FrameError> {
        let conversation = required(b.conversation(), request_id, "ReadPosition.conversation")?;
        Ok(ReadPosition {
            conversation: Conversation::from_fb(conversation),
            read_seq: b.read_seq(),
            unread: b.unread(),
            last_seq: b.last_seq(),
        })
    }

    /// Writes one `ReadPosition` table: a frame's body or a `ConversationList` entry.
    fn write_table(&self, fbb: &mut Builder) -> WIPOffset<fb::ReadPosition<'static>> {
        let conversation = self.conversation.to_fb();
        let args = fb::ReadPositionArgs {
            conversation: Some(&conversation),
            read_seq: self.read_seq,
            unread: self.unread,
            last_seq: self.last_seq,
        };
        fb::ReadPosition::create(fbb, &args)
    }
}

impl<'a> Body<'a> for ReadPosition {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        ReadPosition::read_table(present(frame.body_as_read_position(), request_id)?, request_id)
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        self.write_table(fbb).as_union_value()
    }
}

/// Client → server: a page of conversations after `after` (`None`: from the start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Conversations {
    pub after: Option<Conversation>,
}

impl<'a> Body<'a> for Conversations {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_conversations(), request_id)?;
        Ok(Conversations {
            after: b.after().map(Conversation::from_fb),
        })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        let after = self.after.map(Conversation::to_fb);
        let args = fb::ConversationsArgs { after: after.as_ref() };
        fb::Conversations::create(fbb, &args).as_union_value()
    }
}

/// Server → client: a page of conversations in (kind, id) order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConversationList {
    pub conversations: Vec<ReadPosition>,
    pub more: bool,
}

impl<'a> Body<'a> for ConversationList {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_conversation_list(), request_id)?;
        let mut conversations = Vec::new();
        if let Some(list) = b.conversations() {
            conversations.reserve_exact(list.len());
            for p in list.iter() {
                conversations.push(ReadPosition::read_table(p, request_id)?);
            }
        }
        Ok(ConversationList {
            conversations,
            more: b.more(),
        })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        let offsets: Vec<_> = self.conversations.iter().map(|p| p.write_table(fbb)).collect();
        let conversations = Some(fbb.create_vector(&offsets));
        let args = fb::ConversationListArgs {
            conversations,
            more: self.more,
        };
        fb::ConversationList::create(fbb, &args).as_union_value()
    }
}

/// Client → server: typing in a conversation (ephemeral).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Typing {
    pub conversation: Conversation,
}

impl<'a> Body<'a> for Typing {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_typing(), request_id)?;
        let conversation = required(b.conversation(), request_id, "Typing.conversation")?;
        Ok(Typing {
            conversation: Conversation::from_fb(conversation),
        })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        let conversation = self.conversation.to_fb();
        let args = fb::TypingArgs {
            conversation: Some(&conversation),
        };
        fb::Typing::create(fbb, &args).as_union_value()
    }
}

/// Server → client: `user_id` is typing in `conversation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypingNotice {
    pub conversation: Conversation,
    pub user_id: u64,
}

impl<'a> Body<'a> for TypingNotice {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_typing_notice(), request_id)?;
        let conversation = required(b.conversation(), request_id, "TypingNotice.conversation")?;
        Ok(TypingNotice {
            conversation: Conversation::from_fb(conversation),
            user_id: b.user_id(),
        })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        let conversation = self.conversation.to_fb();
        let args = fb::TypingNoticeArgs {
            conversation: Some(&conversation),
            user_id: self.user_id,
        };
        fb::TypingNotice::create(fbb, &args).as_union_value()
    }
}

/// Client → server: subscribe to these users' presence.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PresenceSubscribe {
    pub user_ids: Vec<u64>,
}

impl<'a> Body<'a> for PresenceSubscribe {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_presence_subscribe(), request_id)?;
        Ok(PresenceSubscribe {
            user_ids: b.user_ids().map(|v| v.iter().collect()).unwrap_or_default(),
        })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        let user_ids = Some(fbb.create_vector(&self.user_ids));
        fb::PresenceSubscribe::create(fbb, &fb::PresenceSubscribeArgs { user_ids }).as_union_value()
    }
}

/// Server → client: a user's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Presence {
    pub user_id: u64,
    pub online: bool,
    pub last_seen_us: u64,
}

impl<'a> Body<'a> for Presence {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_presence(), request_id)?;
        Ok(Presence {
            user_id: b.user_id(),
            online: b.online(),
            last_seen_us: b.last_seen_us(),
        })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        let args = fb::PresenceArgs {
            user_id: self.user_id,
            online: self.online,
            last_seen_us: self.last_seen_us,
        };
        fb::Presence::create(fbb, &args).as_union_value()
    }
}

/// Client → server: a conversation's persistence for messages sent from now on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetPersistence {
    pub conversation: Conversation,
    pub persistence: Persistence,
}

impl<'a> Body<'a> for SetPersistence {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_set_persistence(), request_id)?;
        let conversation = required(b.conversation(), request_id, "SetPersistence.conversation")?;
        Ok(SetPersistence {
            conversation: Conversation::from_fb(conversation),
            persistence: Persistence(b.persistence().0),
        })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        let conversation = self.conversation.to_fb();
        let args = fb::SetPersistenceArgs {
            conversation: Some(&conversation),
            persistence: fb::Persistence(self.persistence.0),
        };
        fb::SetPersistence::create(fbb, &args).as_union_value()
    }
}
