//! Offline administration: commands that open a stopped server's data directory directly.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hotline_wire::ErrorCode;

use crate::auth;
use crate::mailbox::{Completion, ConnRef, Mailbox, ReplyTo, WriteOutcome};
use crate::storage::writer::{self, Durability, WriteOp, WriteRequest};
use crate::storage::Storage;

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

/// Runs one write through a private log writer and waits for its outcome.
fn write_once(storage: Arc<Storage>, op: WriteOp) -> anyhow::Result<Result<WriteOutcome, ErrorCode>> {
    let mailboxes: Arc<[Mailbox]> = vec![Mailbox::default()].into();
    let (log_writer, threads) = writer::spawn(storage, mailboxes.clone(), Durability::Sync)?;
    let reply = ReplyTo {
        core: 0,
        conn: ConnRef {
            index: 0,
            generation: 0,
        },
        request_id: 1,
        internal: false,
    };
    if log_writer.submit(WriteRequest { reply: Some(reply), op }).is_err() {
        bail!("the writer queue is full");
    }
    let deadline = Instant::now() + Duration::from_millis(ADMIN_WRITE_TIMEOUT_MS);
    let outcome = loop {
        match mailboxes[0].pop_completion() {
            Some(Completion::Written { outcome, .. }) => break outcome,
            Some(_) => {}
            None if Instant::now() > deadline => bail!("the write did not complete in time"),
            None => std::thread::sleep(Duration::from_millis(1)),
        }
    };
    log_writer.stop();
    for t in threads {
        let _ = t.join();
    }
    Ok(outcome)
}
