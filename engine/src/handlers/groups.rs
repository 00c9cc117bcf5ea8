//! Groups: create, add and remove members, leave, list members, list my groups.
//!
//! Membership changes go to the log writer, which owns membership and checks roles (see
//! `storage::writer::conversations`); lists are read by the helper pool. Here only the
//! request's own shape is checked.

use hotline_wire::{ErrorCode, GroupAddMember, GroupCreate, GroupLeave, GroupMembers, MyGroups};

use super::{logged_in_user, submit_read, submit_write};
use crate::core::Core;
use crate::helper::HelperJob;
use crate::limits::GROUP_NAME_BYTES_MAX;
use crate::storage::writer::WriteOp;

pub(super) fn create(core: &mut Core, idx: usize, request_id: u64, m: GroupCreate<'_>) {
    let Some(owner) = logged_in_user(core, idx, request_id, "GroupCreate") else {
        return;
    };
    if m.name.len() > GROUP_NAME_BYTES_MAX {
        let text = format!("group name must be at most {GROUP_NAME_BYTES_MAX} bytes");
        return core.push_error(idx, request_id, ErrorCode::InvalidRequest, &text);
    }
    if !m.persistence.is_known() {
        return core.push_error(idx, request_id, ErrorCode::InvalidRequest, "unknown persistence level");
    }
    let op = WriteOp::CreateGroup {
        owner,
        name: m.name.to_owned(),
        persistence: m.persistence,
    };
    submit_write(core, idx, request_id, op);
}

pub(super) fn add_member(core: &mut Core, idx: usize, request_id: u64, m: GroupAddMember) {
    let Some(actor) = logged_in_user(core, idx, request_id, "GroupAddMember") else {
        return;
    };
    if m.group_id == 0 || m.user_id == 0 || !m.role.is_known() {
        let text = "GroupAddMember needs a group, a user and a known role";
        return core.push_error(idx, request_id, ErrorCode::InvalidRequest, text);
    }
    let op = WriteOp::AddMember {
        actor,
        group: m.group_id,
        user: m.user_id,
        role: m.role,
    };
    submit_write(core, idx, request_id, op);
}

pub(super) fn remove_member(core: &mut Core, idx: usize, request_id: u64, group_id: u64, user_id: u64) {
    let Some(actor) = logged_in_user(core, idx, request_id, "GroupRemoveMember") else {
        return;
    };
    if group_id == 0 || user_id == 0 {
        let text = "GroupRemoveMember needs a group and a user";
        return core.push_error(idx, request_id, ErrorCode::InvalidRequest, text);
    }
    let op = WriteOp::RemoveMember {
        actor,
        group: group_id,
        user: user_id,
    };
    submit_write(core, idx, request_id, op);
}

pub(super) fn leave(core: &mut Core, idx: usize, request_id: u64, m: GroupLeave) {
    let Some(actor) = logged_in_user(core, idx, request_id, "GroupLeave") else {
        return;
    };
    remove_member(core, idx, request_id, m.group_id, actor);
}

pub(super) fn members(core: &mut Core, idx: usize, request_id: u64, m: GroupMembers) {
    let Some(user_id) = logged_in_user(core, idx, request_id, "GroupMembers") else {
        return;
    };
    let job = HelperJob::GroupMembers {
        reply: core.reply_to(idx, request_id),
        user_id,
        group_id: m.group_id,
        after_user_id: m.after_user_id,
        limit: core.limits.sync_page_messages_max as usize,
    };
    submit_read(core, idx, request_id, job);
}

pub(super) fn my_groups(core: &mut Core, idx: usize, request_id: u64, m: MyGroups) {
    let Some(user_id) = logged_in_user(core, idx, request_id, "MyGroups") else {
        return;
    };
    let job = HelperJob::MyGroups {
        reply: core.reply_to(idx, request_id),
        user_id,
        after_group_id: m.after_group_id,
        limit: core.limits.sync_page_messages_max as usize,
    };
    submit_read(core, idx, request_id, job);
}
