//! Group bodies: creating groups, membership and listings (the engine's
//! `handlers/groups.rs`). `Done`, the reply to membership changes, has no fields and no type.

use flatbuffers::{UnionWIPOffset, WIPOffset};

use super::conversations::Persistence;
use super::{present, Body, Builder, DeliverOffsets};
use crate::fb;
use crate::frame::FrameError;

/// A member's role in a group (mirrors the schema's `GroupRole`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, PartialOrd, Ord)]
pub struct GroupRole(pub u8);

impl GroupRole {
    pub const MEMBER: GroupRole = GroupRole(0);
    pub const ADMIN: GroupRole = GroupRole(1);
    pub const OWNER: GroupRole = GroupRole(2);

    /// Whether this is a role this protocol version knows.
    pub fn is_known(self) -> bool {
        self.0 <= GroupRole::OWNER.0
    }
}

/// Client → server: create a group owned by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCreate<'a> {
    pub name: &'a str,
    pub persistence: Persistence,
}

impl<'a> Body<'a> for GroupCreate<'a> {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_group_create(), request_id)?;
        Ok(GroupCreate {
            name: b.name().unwrap_or(""),
            persistence: Persistence(b.persistence().0),
        })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        let name = Some(fbb.create_string(self.name));
        let args = fb::GroupCreateArgs {
            name,
            persistence: fb::Persistence(self.persistence.0),
        };
        fb::GroupCreate::create(fbb, &args).as_union_value()
    }
}

/// Server → client: the new group's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupCreated {
    pub group_id: u64,
}

impl<'a> Body<'a> for GroupCreated {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_group_created(), request_id)?;
        Ok(GroupCreated { group_id: b.group_id() })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        let args = fb::GroupCreatedArgs {
            group_id: self.group_id,
        };
        fb::GroupCreated::create(fbb, &args).as_union_value()
    }
}

/// Client → server: add a member or change a member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupAddMember {
    pub group_id: u64,
    pub user_id: u64,
    pub role: GroupRole,
}

impl<'a> Body<'a> for GroupAddMember {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_group_add_member(), request_id)?;
        Ok(GroupAddMember {
            group_id: b.group_id(),
            user_id: b.user_id(),
            role: GroupRole(b.role().0),
        })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        let args = fb::GroupAddMemberArgs {
            group_id: self.group_id,
            user_id: self.user_id,
            role: fb::GroupRole(self.role.0),
        };
        fb::GroupAddMember::create(fbb, &args).as_union_value()
    }
}

/// Client → server: remove a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupRemoveMember {
    pub group_id: u64,
    pub user_id: u64,
}

impl<'a> Body<'a> for GroupRemoveMember {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_group_remove_member(), request_id)?;
        Ok(GroupRemoveMember {
            group_id: b.group_id(),
            user_id: b.user_id(),
        })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        let args = fb::GroupRemoveMemberArgs {
            group_id: self.group_id,
            user_id: self.user_id,
        };
        fb::GroupRemoveMember::create(fbb, &args).as_union_value()
    }
}

/// Client → server: leave a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupLeave {
    pub group_id: u64,
}

impl<'a> Body<'a> for GroupLeave {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_group_leave(), request_id)?;
        Ok(GroupLeave { group_id: b.group_id() })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        let args = fb::GroupLeaveArgs {
            group_id: self.group_id,
        };
        fb::GroupLeave::create(fbb, &args).as_union_value()
    }
}

/// Client → server: a page of a group's members after `after_user_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupMembers {
    pub group_id: u64,
    pub after_user_id: u64,
}

impl<'a> Body<'a> for GroupMembers {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_group_members(), request_id)?;
        Ok(GroupMembers {
            group_id: b.group_id(),
            after_user_id: b.after_user_id(),
        })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        let args = fb::GroupMembersArgs {
            group_id: self.group_id,
            after_user_id: self.after_user_id,
        };
        fb::GroupMembers::create(fbb, &args).as_union_value()
    }
}

/// One member and its role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupMember {
    pub user_id: u64,
    pub role: GroupRole,
}

/// Server → client: a page of members in user id order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupMemberList {
    pub group_id: u64,
    pub members: Vec<GroupMember>,
    pub more: bool,
}

impl<'a> Body<'a> for GroupMemberList {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_group_member_list(), request_id)?;
        let members = b
            .members()
            .map(|list| {
                list.iter()
                    .map(|m| GroupMember {
                        user_id: m.user_id(),
                        role: GroupRole(m.role().0),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(GroupMemberList {
            group_id: b.group_id(),
            members,
            more: b.more(),
        })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        let offsets: Vec<_> = self
            .members
            .iter()
            .map(|g| {
                let args = fb::GroupMemberArgs {
                    user_id: g.user_id,
                    role: fb::GroupRole(g.role.0),
                };
                fb::GroupMember::create(fbb, &args)
            })
            .collect();
        let members = Some(fbb.create_vector(&offsets));
        let args = fb::GroupMemberListArgs {
            group_id: self.group_id,
            members,
            more: self.more,
        };
        fb::GroupMemberList::create(fbb, &args).as_union_value()
    }
}

/// Client → server: a page of the caller's groups after `after_group_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MyGroups {
    pub after_group_id: u64,
}

impl<'a> Body<'a> for MyGroups {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_my_groups(), request_id)?;
        Ok(MyGroups {
            after_group_id: b.after_group_id(),
        })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        let args = fb::MyGroupsArgs {
            after_group_id: self.after_group_id,
        };
        fb::MyGroups::create(fbb, &args).as_union_value()
    }
}

/// One of the caller's groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupInfo<'a> {
    pub group_id: u64,
    pub name: &'a str,
    pub role: GroupRole,
    pub persistence: Persistence,
}

/// Server → client: a page of the caller's groups in id order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupList<'a> {
    pub groups: Vec<GroupInfo<'a>>,
    pub more: bool,
}

impl<'a> Body<'a> for GroupList<'a> {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_group_list(), request_id)?;
        let groups = b
            .groups()
            .map(|list| {
                list.iter()
                    .map(|g| GroupInfo {
                        group_id: g.group_id(),
                        name: g.name().unwrap_or(""),
                        role: GroupRole(g.role().0),
                        persistence: Persistence(g.persistence().0),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(GroupList { groups, more: b.more() })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        let offsets: Vec<_> = self
            .groups
            .iter()
            .map(|g| {
                let name = Some(fbb.create_string(g.name));
                let args = fb::GroupInfoArgs {
                    group_id: g.group_id,
                    name,
                    role: fb::GroupRole(g.role.0),
                    persistence: fb::Persistence(g.persistence.0),
                };
                fb::GroupInfo::create(fbb, &args)
            })
            .collect();
        let groups = Some(fbb.create_vector(&offsets));
        let args = fb::GroupListArgs {
            groups,
            more: self.more,
        };
        fb::GroupList::create(fbb, &args).as_union_value()
    }
}
