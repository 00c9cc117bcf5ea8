//! The writer's account work: users, devices and their tokens, passwords, device cursors,
//! last-seen times. Each function applies one request to the batch and returns its outcome.

use hotline_wire::ErrorCode;
use rocksdb::WriteBatch;

use super::{Refusal, UserCounters, WriteOutcome, WriterState};
use crate::storage::keys::{self, pair};
use crate::storage::Cf;

impl WriterState {
    /// A new user with the next user id; usernames are unique, within this batch too.
    pub(super) fn create_user(
        &mut self,
        username: String,
        password_phc: &str,
        batch: &mut WriteBatch,
        timestamp_us: u64,
    ) -> Result<WriteOutcome, Refusal> {
        if self.batch_usernames.contains(&username) || self.storage.user_by_name(&username)?.is_some() {
            return Err(Refusal::Client(ErrorCode::UserExists));
        }
        let user_id = self.batch_next_user_id;
        self.batch_next_user_id += 1;
        let user = keys::le_u64_then(timestamp_us, username.as_bytes());
        batch.put_cf(self.storage.cf(Cf::Users), keys::id(user_id), user);
        batch.put_cf(
            self.storage.cf(Cf::Usernames),
            username.as_bytes(),
            user_id.to_le_bytes(),
        );
        batch.put_cf(
            self.storage.cf(Cf::Credentials),
            keys::id(user_id),
            password_phc.as_bytes(),
        );
        self.batch_users.insert(
            user_id,
            UserCounters {
                inbox_head: 0,
                device_last: Some(0),
                convs_through: 0,
                convs_marked: false,
            },
        );
        self.batch_usernames.insert(username);
        Ok(WriteOutcome::UserCreated { user_id })
    }

    /// A new device of `user_id` with the next device id, reachable with `token` (only its
    /// hash is stored).
    pub(super) fn create_device(
        &mut self,
        user_id: u64,
        device_name: &str,
        token: [u8; 32],
        batch: &mut WriteBatch,
        timestamp_us: u64,
    ) -> Result<WriteOutcome, Refusal> {
        let storage = self.storage.clone();
        let c = self.counters(user_id)?.ok_or(Refusal::Client(ErrorCode::NoSuchUser))?;
        let last = match c.device_last {
            Some(last) => last,
            None => storage.last_in_range(Cf::Devices, user_id)?,
        };
        let device_id = last + 1;
        c.device_last = Some(device_id);
        let inbox_head = c.inbox_head;
        if let Some(scan) = self.scans.get_mut(&user_id) {
            scan.cursors.insert(device_id, 0);
        }
        let token_hash = crate::auth::token_hash(&token);
        let device = keys::le_u64_then(timestamp_us, device_name.as_bytes());
        batch.put_cf(storage.cf(Cf::Devices), pair(user_id, device_id), device);
        let record = keys::le_u64x3(user_id, device_id, timestamp_us);
        batch.put_cf(storage.cf(Cf::Tokens), token_hash, record);
        Ok(WriteOutcome::DeviceCreated {
            user_id,
            device_id,
            token,
            token_hash,
            inbox_head,
        })
    }

    /// Forgets a token; its device stops at once (its connections are told to close).
    pub(super) fn revoke_token(
        &mut self,
        token_hash: [u8; 32],
        batch: &mut WriteBatch,
    ) -> Result<WriteOutcome, Refusal> {
        if let Some(record) = self.storage.token(&token_hash)? {
            self.device_revoked(record.user_id, record.device_id, batch)?;
            self.revoke_notice(record.user_id, record.device_id);
        }
        batch.delete_cf(self.storage.cf(Cf::Tokens), token_hash);
        Ok(WriteOutcome::TokenRevoked)
    }

    /// Replaces `user_id`'s password (admin).
    pub(super) fn set_password(&self, user_id: u64, password_phc: &str, batch: &mut WriteBatch) -> WriteOutcome {
        batch.put_cf(
            self.storage.cf(Cf::Credentials),
            keys::id(user_id),
            password_phc.as_bytes(),
        );
        WriteOutcome::Done
    }

    /// Stores a device's delivered cursor (not for a revoked device), and moves the scans
    /// behind it (receipts, expiry).
    pub(super) fn set_cursor(
        &mut self,
        user_id: u64,
        device_id: u64,
        seq: u64,
        batch: &mut WriteBatch,
    ) -> Result<WriteOutcome, Refusal> {
        if !self.is_revoked(user_id, device_id)? {
            batch.put_cf(
                self.storage.cf(Cf::Cursors),
                pair(user_id, device_id),
                seq.to_le_bytes(),
            );
            self.cursor_moved(user_id, device_id, seq, batch)?;
        }
        Ok(WriteOutcome::CursorStored {
            user_id,
            device_id,
            seq,
        })
    }

    /// `user`'s last device went offline at `at_us`.
    pub(super) fn last_seen(&self, user: u64, at_us: u64, batch: &mut WriteBatch) -> WriteOutcome {
        batch.put_cf(self.storage.cf(Cf::LastSeen), keys::id(user), at_us.to_le_bytes());
        WriteOutcome::Done
    }
}
