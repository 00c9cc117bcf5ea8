//! The admin-only control socket: a Unix socket `DATA_DIR/admin.sock`, mode 0600 (only the
//! server's own user, and root, can connect), served by a thread of its own, never a core.
//!
//! Protocol: the client sends one line, `COMMAND ARG...`; the server answers a status line
//! (`ok` or `error: WHY`), then the command's output, then closes. Commands:
//! - `backup DIR`: a RocksDB checkpoint of the live database into the new directory DIR.
//! - `export USERNAME`: the user's history as JSON lines.
//! - `stats`: live counters, one `name value` per line.
//! - `user-add NAME PASSWORD`, `user-password NAME PASSWORD` (the password is the rest of
//!   the line), `user-revoke NAME` (every token: its devices must log in again with the
//!   password), `user-disable NAME`, `user-enable NAME`, `user-remove NAME`,
//!   `user-groups NAME`.
//!
//! Writes go to the log writer's bounded queue with no reply (`WriteRequest::reply:
//! None`); this thread then waits, bounded, until RocksDB shows the result. Argon2 runs
//! here too, never on a core.
//!
//! Secrets: a password command's line is logged (and echoed in errors) only through
//! [`Loggable`], which leaves the password out.
//!
//! Requests are handled one at a time (an operator's tool, not a service): a slow request
//! delays the next, never a core. Reads go straight to RocksDB (thread-safe), so nothing
//! waits on the cores or the writer's queue.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::shared::Shared;
use crate::storage::Storage;

/// The socket's file name inside the data directory.
pub const SOCKET_FILE: &str = "admin.sock";
/// Longest request line.
const REQUEST_BYTES_MAX: u64 = 4 << 10;
/// How long a client may take to send its request line.
const REQUEST_READ_TIMEOUT_MS: u64 = 2_000;
/// How often the thread checks for shutdown while idle.
const ACCEPT_POLL_MS: u64 = 50;

/// The control socket's path for a data directory.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_FILE)
}

/// Binds the socket (replacing a stale one from a crashed run) with mode 0600.
pub fn bind(data_dir: &Path) -> std::io::Result<UnixListener> {
    let path = socket_path(data_dir);
    if path.exists() {
        if UnixStream::connect(&path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!(
                    "{} is in use: is another server running on this data directory?",
                    path.display()
                ),
            ));
        }
        std::fs::remove_file(&path)?;
    }
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves requests until `shared.shutdown`, then removes the socket file.
pub fn spawn(
    listener: UnixListener,
    data_dir: PathBuf,
    shared: Arc<Shared>,
    storage: Arc<Storage>,
) -> std::io::Result<JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    std::thread::Builder::new().name("hotline-admin".into()).spawn(move || {
        while !shared.shutdown.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((stream, _)) => {
                    if let Err(e) = answer(stream, &shared, &storage) {
                        tracing::warn!("admin request failed: {e}");
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(ACCEPT_POLL_MS));
                }
                Err(e) => {
                    tracing::warn!("admin socket accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(ACCEPT_POLL_MS));
                }
            }
        }
        let _ = std::fs::remove_file(socket_path(&data_dir));
    })
}

fn answer(stream: UnixStream, shared: &Shared, storage: &Storage) -> anyhow::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_millis(REQUEST_READ_TIMEOUT_MS)))?;
    let mut line = String::new();
    BufReader::new((&stream).take_bounded()).read_line(&mut line)?;
    let mut out = std::io::BufWriter::new(&stream);
    let mut words = line.trim_end().splitn(2, ' ');
    let (command, arg) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
    tracing::info!("admin: {}", Loggable(line.trim_end()));
    let result = match command {
        "backup" if !arg.is_empty() => crate::admin::backup(storage, Path::new(arg)).map(|()| {
            let _ = writeln!(out, "ok\nbackup written to {arg}");
        }),
        "export" if !arg.is_empty() => match storage.user_by_name(arg) {
            Ok(Some(_)) => {
                writeln!(out, "ok")?;
                crate::admin::export_user(storage, arg, &mut out).map(drop)
            }
            Ok(None) => Err(anyhow::anyhow!("no user named {arg:?}")),
            Err(e) => Err(e.into()),
        },
        "stats" => {
            writeln!(out, "ok")?;
            let m = &shared.metrics;
            let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            writeln!(out, "connections {}", load(&shared.connections))?;
            writeln!(out, "logins_ok {}", load(&m.logins_ok))?;
            writeln!(out, "logins_failed {}", load(&m.logins_failed))?;
            writeln!(out, "messages_sent {}", load(&m.messages_acked))?;
            writeln!(
                out,
                "messages_delivered {}",
                load(&m.delivered_live) + load(&m.delivered_catch_up)
            )?;
            writeln!(out, "writer_queue_depth {}", shared.writer.depth())?;
            writeln!(out, "users {}", storage.max_user_id()?)?;
            Ok(())
        }
        "user-add" | "user-password" => {
            let (name, password) = arg.split_once(' ').unwrap_or((arg, ""));
            user_password(shared, storage, command == "user-add", name, password).map(|id| {
                let _ = writeln!(out, "ok\n{id}");
            })
        }
        "user-disable" | "user-enable" | "user-remove" => set_access(shared, storage, command, arg).map(|n| {
            let _ = writeln!(out, "ok\n{command} {arg}: revoked {n} tokens");
        }),
        "user-revoke" => revoke_tokens(shared, storage, arg).map(|n| {
            let _ = writeln!(out, "ok\nrevoked {n} tokens of {arg}");
        }),
        "user-groups" => match storage.user_by_name(arg)? {
            Some(user) => {
                writeln!(out, "ok")?;
                let (groups, _) = storage.user_groups(user, 0, usize::MAX)?;
                for (group, role) in groups {
                    let name = storage.group(group)?.map(|g| g.name).unwrap_or_default();
                    let role = match role {
                        hotline_wire::GroupRole::OWNER => "owner",
                        hotline_wire::GroupRole::ADMIN => "admin",
                        _ => "member",
                    };
                    writeln!(out, "{group} {role} {name}")?;
                }
                Ok(())
            }
            None => Err(anyhow::anyhow!("no user named {arg:?}")),
        },
        _ => Err(anyhow::anyhow!(
            "unknown request {:?}: backup DIR | export USERNAME | stats | user-add NAME PASSWORD | \
             user-password NAME PASSWORD | user-revoke NAME | user-groups NAME",
            Loggable(line.trim_end()).to_string()
        )),
    };
    if let Err(e) = result {
        writeln!(out, "error: {e:#}")?;
    }
    out.flush()?;
    Ok(())
}

/// Commands whose argument is `NAME PASSWORD`: the password is never shown (log lines,
/// the client's error messages).
const PASSWORD_COMMANDS: [&str; 2] = ["user-add", "user-password"];

/// A request line as it may be shown: a password command's password is left out.
#[derive(Debug, Clone, Copy)]
pub struct Loggable<'a>(pub &'a str);

impl std::fmt::Display for Loggable<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut words = self.0.splitn(3, ' ');
        let (command, name) = (words.next().unwrap_or_default(), words.next());
        match name {
            Some(name) if PASSWORD_COMMANDS.contains(&command) => {
                write!(f, "{command} {name} (password not shown)")
            }
            _ if PASSWORD_COMMANDS.iter().any(|c| command.eq_ignore_ascii_case(c)) => {
                write!(f, "{command} (arguments not shown)")
            }
            _ => f.write_str(self.0),
        }
    }
}

/// How long an admin write may take to show in RocksDB.
const ADMIN_WRITE_WAIT_MS: u64 = 10_000;

/// Queues `op` for the writer (waiting, bounded, while its queue is full).
fn submit(shared: &Shared, op: crate::storage::writer::WriteOp) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_millis(ADMIN_WRITE_WAIT_MS);
    let mut request = crate::storage::writer::WriteRequest { reply: None, op };
    while let Err(back) = shared.writer.submit(request) {
        anyhow::ensure!(std::time::Instant::now() < deadline, "the writer's queue stayed full");
        request = back;
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// Waits (bounded) until `done` says the write is visible.
fn wait_for(mut done: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_millis(ADMIN_WRITE_WAIT_MS);
    while !done()? {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the write did not land within {ADMIN_WRITE_WAIT_MS} ms"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// Creates a user (`create`) or replaces an existing user's password; returns the user id.
fn user_password(shared: &Shared, storage: &Storage, create: bool, name: &str, password: &str) -> anyhow::Result<u64> {
    use crate::storage::writer::WriteOp;
    crate::auth::check_username(name, hotline_wire::USERNAME_BYTES_MAX_DEFAULT)
        .map_err(|e| anyhow::anyhow!("invalid username: {e}"))?;
    anyhow::ensure!(!password.is_empty(), "empty password");
    anyhow::ensure!(
        password.len() <= hotline_wire::PASSWORD_BYTES_MAX_DEFAULT as usize,
        "password longer than {} bytes",
        hotline_wire::PASSWORD_BYTES_MAX_DEFAULT
    );
    let existing = storage.user_by_name(name)?;
    match (create, existing) {
        (true, Some(_)) => anyhow::bail!("user {name:?} already exists"),
        (false, None) => anyhow::bail!("no user named {name:?}"),
        (true, None) => {
            let phc = crate::auth::hash_password(password).map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
            submit(
                shared,
                WriteOp::CreateUser {
                    username: name.to_owned(),
                    password_phc: phc,
                },
            )?;
            let mut id = 0;
            wait_for(|| {
                id = storage.user_by_name(name)?.unwrap_or(0);
                Ok(id != 0)
            })?;
            Ok(id)
        }
        (false, Some(user_id)) => {
            let phc = crate::auth::hash_password(password).map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
            submit(
                shared,
                WriteOp::SetPassword {
                    user_id,
                    password_phc: phc.clone(),
                },
            )?;
            wait_for(|| Ok(storage.credential(user_id)?.as_deref() == Some(phc.as_str())))?;
            Ok(user_id)
        }
    }
}

/// Disables (password refused, every token revoked), enables (the old password works
/// again) or removes (password deleted, every token revoked: nobody can log in as it again;
/// the name stays reserved and its messages stay in other inboxes) an account. Returns how
/// many tokens were revoked.
fn set_access(shared: &Shared, storage: &Storage, command: &str, name: &str) -> anyhow::Result<usize> {
    use crate::auth::DISABLED_PREFIX;
    let user_id = storage
        .user_by_name(name)?
        .ok_or_else(|| anyhow::anyhow!("no user named {name:?}"))?;
    let phc = storage.credential(user_id)?.unwrap_or_default();
    let new = match command {
        "user-disable" if phc.starts_with(DISABLED_PREFIX) => anyhow::bail!("{name} is already disabled"),
        "user-disable" if phc.is_empty() => anyhow::bail!("{name} has no password (removed or token-only)"),
        "user-disable" => format!("{DISABLED_PREFIX}{phc}"),
        "user-enable" => match phc.strip_prefix(DISABLED_PREFIX) {
            Some(old) => old.to_owned(),
            None => anyhow::bail!("{name} is not disabled"),
        },
        _ => String::new(),
    };
    submit(
        shared,
        crate::storage::writer::WriteOp::SetPassword {
            user_id,
            password_phc: new.clone(),
        },
    )?;
    wait_for(|| Ok(storage.credential(user_id)?.unwrap_or_default() == new))?;
    if command == "user-enable" {
        return Ok(0);
    }
    revoke_tokens(shared, storage, name)
}

/// Revokes every token of `name`; returns how many.
fn revoke_tokens(shared: &Shared, storage: &Storage, name: &str) -> anyhow::Result<usize> {
    let user = storage
        .user_by_name(name)?
        .ok_or_else(|| anyhow::anyhow!("no user named {name:?}"))?;
    let tokens = storage.tokens_of(user)?;
    for token_hash in &tokens {
        submit(
            shared,
            crate::storage::writer::WriteOp::RevokeToken {
                token_hash: *token_hash,
            },
        )?;
    }
    wait_for(|| Ok(storage.tokens_of(user)?.is_empty()))?;
    Ok(tokens.len())
}

trait TakeBounded: Sized {
    fn take_bounded(self) -> std::io::Take<Self>;
}

impl<R: std::io::Read> TakeBounded for R {
    fn take_bounded(self) -> std::io::Take<Self> {
        self.take(REQUEST_BYTES_MAX)
    }
}

/// Sends `request` to the server running on `data_dir`. `Ok(None)`: no server is
/// listening there (the caller may work on the stopped data directory instead).
/// Otherwise the output after a status `ok`, copied to `out`; a status `error: …` is an error.
pub fn request(data_dir: &Path, request: &str, out: &mut dyn Write) -> anyhow::Result<Option<()>> {
    let path = socket_path(data_dir);
    let stream = match UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(e) => {
            return Err(anyhow::anyhow!(
                "cannot connect to {}: {e} (run as the server's user)",
                path.display()
            ))
        }
    };
    (&stream).write_all(format!("{request}\n").as_bytes())?;
    let mut reader = BufReader::new(&stream);
    let mut status = String::new();
    reader.read_line(&mut status)?;
    let status = status.trim_end();
    if status != "ok" {
        let why = status.strip_prefix("error: ").unwrap_or(status);
        anyhow::bail!("the server refused `{}`: {why}", Loggable(request));
    }
    std::io::copy(&mut reader, out)?;
    out.flush()?;
    Ok(Some(()))
}

#[cfg(test)]
mod tests {
    use super::Loggable;

    #[test]
    fn a_password_command_is_shown_without_its_password() {
        let shown = |line| Loggable(line).to_string();
        assert_eq!(
            shown("user-add alice s3cret pass"),
            "user-add alice (password not shown)"
        );
        assert_eq!(
            shown("user-password alice s3cret"),
            "user-password alice (password not shown)"
        );
        assert_eq!(shown("USER-ADD alice s3cret"), "USER-ADD (arguments not shown)");
        assert_eq!(shown("user-revoke alice"), "user-revoke alice");
        assert_eq!(shown("stats"), "stats");
    }
}
