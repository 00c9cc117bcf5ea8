//! Offline administration: commands that open a stopped server's data directory directly.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hotline_wire::ErrorCode;

use crate::auth;
use crate::mailbox::{Completion, ConnRef, Mailbox, ReplyTo, Requester};
use crate::storage::writer::{self, WriteOp, WriteOutcome, WriteRequest};
use crate::storage::{Durability, Storage};

/// How long an admin command waits for its write.
const ADMIN_WRITE_TIMEOUT_MS: u64 = 30_000;

/// Creates an account and returns its user id.
pub fn add_user(data_dir: &Path, name: &str, password: &str) -> anyhow::Result<u64> {
    auth::check_username(name, hotline_wire::USERNAME_BYTES_MAX_DEFAULT).context("invalid username")?;
    if password.len() > hotline_wire::PASSWORD_BYTES_MAX_DEFAULT as usize {
        bail!(
            "password longer than {} bytes",
            hotline_wire::PASSWORD_BYTES_MAX_DEFAULT
        );
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let storage = Arc::new(Storage::open(data_dir)?);
    let password_phc = auth::hash_password(password).map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    let outcome = write_once(
        storage,
        WriteOp::CreateUser {
            username: name.to_owned(),
            password_phc,
        },
    )?;
    match outcome {
        Ok(WriteOutcome::UserCreated { user_id }) => Ok(user_id),
        Ok(other) => bail!("unexpected outcome {other:?}"),
        Err(ErrorCode::UserExists) => bail!("user {name:?} already exists"),
        Err(code) => bail!("could not create the user: {code:?}"),
    }
}

/// Runs writes through a private log writer (at most `WRITES_IN_FLIGHT_MAX` at a time,
/// so the writer group-commits them) and returns their outcomes in order.
fn run_writes(storage: Arc<Storage>, ops: Vec<WriteOp>) -> anyhow::Result<Vec<Result<WriteOutcome, ErrorCode>>> {
    /// Writes handed to the writer before waiting for outcomes.
    const WRITES_IN_FLIGHT_MAX: usize = 8_192;
    let mailboxes: Arc<[Mailbox]> = vec![Mailbox::default()].into();
    let (log_writer, threads) = writer::spawn(storage, mailboxes.clone(), Durability::Sync)?;
    let total = ops.len();
    let mut outcomes: Vec<Option<Result<WriteOutcome, ErrorCode>>> = vec![None; total];
    let mut done = 0usize;
    let mut pending = ops.into_iter().enumerate().peekable();
    let mut in_flight = 0usize;
    let mut last_progress = Instant::now();
    while done < total {
        while in_flight < WRITES_IN_FLIGHT_MAX {
            let Some((i, op)) = pending.next() else { break };
            let reply = ReplyTo {
                core: 0,
                conn: ConnRef {
                    index: 0,
                    generation: 0,
                },
                request_id: i as u64,
                requester: Requester::Client,
            };
            let mut request = WriteRequest { reply: Some(reply), op };
            while let Err(back) = log_writer.submit(request) {
                request = back;
                std::thread::sleep(Duration::from_millis(1));
            }
            in_flight += 1;
        }
        match mailboxes[0].pop_completion() {
            Some(Completion::Written { reply, outcome }) => {
                outcomes[reply.request_id as usize] = Some(outcome);
                in_flight -= 1;
                done += 1;
                last_progress = Instant::now();
            }
            Some(_) => {}
            None if last_progress.elapsed() > Duration::from_millis(ADMIN_WRITE_TIMEOUT_MS) => {
                bail!("the writer made no progress for {ADMIN_WRITE_TIMEOUT_MS} ms")
            }
            None => std::thread::sleep(Duration::from_micros(200)),
        }
    }
    log_writer.stop();
    for t in threads {
        let _ = t.join();
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.unwrap_or(Err(ErrorCode::Internal)))
        .collect())
}

/// Runs one write and returns its outcome.
fn write_once(storage: Arc<Storage>, op: WriteOp) -> anyhow::Result<Result<WriteOutcome, ErrorCode>> {
    Ok(run_writes(storage, vec![op])?.pop().unwrap_or(Err(ErrorCode::Internal)))
}

/// One provisioned account: a token-only user with one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user_id: u64,
    pub username: String,
    pub token: [u8; 32],
}

impl Account {
    /// The accounts-file line: `USER_ID USERNAME TOKEN_HEX`.
    pub fn to_line(&self) -> String {
        let hex: String = self.token.iter().map(|b| format!("{b:02x}")).collect();
        format!("{} {} {hex}", self.user_id, self.username)
    }

    /// Parses an accounts-file line.
    pub fn parse(line: &str) -> Option<Account> {
        let mut parts = line.split_whitespace();
        let user_id = parts.next()?.parse().ok()?;
        let username = parts.next()?.to_owned();
        let hex = parts.next()?;
        if hex.len() != 64 || parts.next().is_some() {
            return None;
        }
        let mut token = [0u8; 32];
        for (i, byte) in token.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Account {
            user_id,
            username,
            token,
        })
    }
}

/// What `provision` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provisioned {
    pub created: usize,
    pub reused: usize,
}

/// Makes sure accounts `{prefix}0 .. {prefix}{count-1}` exist, each with a live token, and
/// writes them to `out` (one [`Account::to_line`] per line). Accounts already in `out`
/// with a token that still resolves are kept; the rest get a new device and token.
/// Provisioned users have no password (they log in by token only), so no argon2 is spent:
/// this is the load generator's fast path to 100,000s of accounts.
pub fn provision(data_dir: &Path, prefix: &str, count: usize, out: &Path) -> anyhow::Result<Provisioned> {
    auth::check_username(&format!("{prefix}{count}"), hotline_wire::USERNAME_BYTES_MAX_DEFAULT)
        .context("invalid --prefix")?;
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let storage = Arc::new(Storage::open(data_dir)?);
    let mut accounts: Vec<Option<Account>> = vec![None; count];
    let mut reused = 0;
    if let Ok(text) = std::fs::read_to_string(out) {
        for account in text.lines().filter_map(Account::parse) {
            let Some(index) = account
                .username
                .strip_prefix(prefix)
                .and_then(|n| n.parse::<usize>().ok())
            else {
                continue;
            };
            let live = storage
                .token(&auth::token_hash(&account.token))?
                .is_some_and(|t| t.user_id == account.user_id);
            if index < count && live && accounts[index].is_none() {
                accounts[index] = Some(account);
                reused += 1;
            }
        }
    }
    // Users that do not exist yet.
    let mut missing_users = Vec::new();
    let mut user_ids = vec![0u64; count];
    for (i, slot) in accounts.iter().enumerate() {
        if slot.is_some() {
            continue;
        }
        match storage.user_by_name(&format!("{prefix}{i}"))? {
            Some(id) => user_ids[i] = id,
            None => missing_users.push(i),
        }
    }
    let ops = missing_users
        .iter()
        .map(|i| WriteOp::CreateUser {
            username: format!("{prefix}{i}"),
            password_phc: String::new(),
        })
        .collect();
    for (i, outcome) in missing_users.iter().zip(run_writes(storage.clone(), ops)?) {
        match outcome {
            Ok(WriteOutcome::UserCreated { user_id }) => user_ids[*i] = user_id,
            other => bail!("creating {prefix}{i}: {other:?}"),
        }
    }
    // A device and token for every account without a live one.
    let need: Vec<usize> = (0..count).filter(|i| accounts[*i].is_none()).collect();
    let mut ops = Vec::with_capacity(need.len());
    for i in &need {
        ops.push(WriteOp::CreateDevice {
            user_id: user_ids[*i],
            device_name: "loadgen".to_owned(),
            token: auth::new_token().map_err(|e| anyhow::anyhow!("OS random source: {e}"))?,
        });
    }
    for (i, outcome) in need.iter().zip(run_writes(storage, ops)?) {
        match outcome {
            Ok(WriteOutcome::DeviceCreated { user_id, token, .. }) => {
                accounts[*i] = Some(Account {
                    user_id,
                    username: format!("{prefix}{i}"),
                    token,
                })
            }
            other => bail!("creating a device for {prefix}{i}: {other:?}"),
        }
    }
    let mut text = String::with_capacity(count * 90);
    for account in accounts.iter().flatten() {
        text.push_str(&account.to_line());
        text.push('\n');
    }
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(Provisioned {
        created: need.len(),
        reused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provisioning_is_idempotent_and_tokens_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let out = dir.path().join("accounts.txt");
        assert_eq!(
            provision(&data, "lg", 50, &out).unwrap(),
            Provisioned { created: 50, reused: 0 }
        );
        let first = std::fs::read_to_string(&out).unwrap();
        let accounts: Vec<Account> = first.lines().map(|l| Account::parse(l).unwrap()).collect();
        assert_eq!(accounts.len(), 50);
        assert_eq!(accounts[7].username, "lg7");
        // Growing the set keeps the first 50 and their tokens.
        assert_eq!(
            provision(&data, "lg", 60, &out).unwrap(),
            Provisioned {
                created: 10,
                reused: 50
            }
        );
        let second = std::fs::read_to_string(&out).unwrap();
        assert!(second.starts_with(&first));
        let storage = Storage::open(&data).unwrap();
        for a in second.lines().map(|l| Account::parse(l).unwrap()) {
            let t = storage.token(&auth::token_hash(&a.token)).unwrap().unwrap();
            assert_eq!(t.user_id, a.user_id);
            assert_eq!(storage.user_by_name(&a.username).unwrap(), Some(a.user_id));
        }
        assert_eq!(Account::parse("1 x abc"), None);
    }
}

/// Takes a RocksDB checkpoint of `storage` into `to` (which must not exist yet): a
/// consistent copy, made while the server keeps serving (hard links where the file
/// system allows, so it is quick and small until compaction rewrites files).
pub fn backup(storage: &Storage, to: &Path) -> anyhow::Result<()> {
    if to.exists() {
        bail!("{} already exists: a backup goes into a new directory", to.display());
    }
    let checkpoint = rocksdb::checkpoint::Checkpoint::new(storage.db()).context("cannot start a checkpoint")?;
    checkpoint
        .create_checkpoint(to)
        .with_context(|| format!("cannot write the checkpoint to {}", to.display()))?;
    Ok(())
}

/// What [`restore`] put in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    pub files: u64,
    pub users: u64,
}

/// Copies the backup in `from` into the (new or empty) data directory `data_dir`, then
/// opens it to check it is a whole database. The server must be stopped.
pub fn restore(from: &Path, data_dir: &Path) -> anyhow::Result<Restored> {
    if !from.join("CURRENT").is_file() {
        bail!(
            "{} is not a backup (no CURRENT file): make one with `hotline backup --to DIR`",
            from.display()
        );
    }
    if data_dir.exists() {
        let mut entries = std::fs::read_dir(data_dir).with_context(|| format!("cannot read {}", data_dir.display()))?;
        if entries.next().is_some() {
            bail!(
                "{} is not empty: restore into a new directory (stop the server, move the old data aside)",
                data_dir.display()
            );
        }
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let mut files = 0;
    for entry in std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), data_dir.join(entry.file_name()))
                .with_context(|| format!("cannot copy {}", entry.path().display()))?;
            files += 1;
        }
    }
    let storage = Storage::open(data_dir).context("the restored database does not open")?;
    let users = storage.max_user_id()?;
    Ok(Restored { files, users })
}

/// Writes every message in `username`'s inbox (sent and received, every conversation) to
/// `out` as JSON lines, in inbox order; returns how many.
pub fn export_user(storage: &Storage, username: &str, out: &mut dyn std::io::Write) -> anyhow::Result<u64> {
    /// Messages read per page.
    const EXPORT_PAGE_MESSAGES: usize = 1_024;
    let user_id = storage
        .user_by_name(username)?
        .with_context(|| format!("no user named {username:?}"))?;
    let mut after = 0;
    let mut count = 0;
    loop {
        let page = storage.read_inbox(user_id, after, EXPORT_PAGE_MESSAGES, usize::MAX)?;
        for (seq, record) in &page.entries {
            after = *seq;
            let d = match crate::storage::record::decode_record(*seq, record) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!("export: {username} inbox seq {seq}: {e}; skipped");
                    continue;
                }
            };
            let (kind, id) = d.conversation.kind_and_id();
            let mut line = serde_json::json!({
                "user": username,
                "inbox_seq": d.inbox_seq,
                "message_id": d.message_id,
                "conversation": { "kind": match kind { 0 => "direct", 1 => "group", _ => "other" }, "id": id },
                "sender": d.sender,
                "sender_device": d.sender_device,
                "timestamp_us": d.timestamp_us,
                "kind": crate::integration::kind_name(d.kind),
                "refers_to": d.refers_to,
            });
            match std::str::from_utf8(d.payload) {
                Ok(text) => line["text"] = serde_json::Value::from(text),
                Err(_) => {
                    let hex: String = d.payload.iter().map(|b| format!("{b:02x}")).collect();
                    line["payload_hex"] = serde_json::Value::from(hex);
                }
            }
            writeln!(out, "{line}")?;
            count += 1;
        }
        if !page.more {
            break;
        }
    }
    out.flush()?;
    Ok(count)
}
