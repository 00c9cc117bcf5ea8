//! The integration API for services and bots, and outgoing webhooks.
//!
//! - API (`--api-listen`, off by default): plain HTTP/1.1, one request per connection,
//!   `Authorization: Bearer TOKEN` where each `--api-token USERNAME:TOKEN` lets a service
//!   act as that (existing) user.
//!   `POST /v1/messages` `{"to":"bob","text":"hi","client_msg_id":N}` sends as the service
//!   user; `GET /v1/conversations/PEER?after=SEQ&limit=N` reads a page of the service user's
//!   direct conversation with PEER.
//! - Concurrency: an accept thread hands each connection to a fixed pool of
//!   [`API_WORKERS`] threads through a queue of at most [`API_QUEUED_MAX`] connections; when
//!   that queue is full the connection is answered `503` with `Retry-After` at once, never
//!   queued further. A request must arrive whole within [`REQUEST_READ_TIMEOUT_MS`] (a
//!   deadline for the whole request, not per read), so a stalled client holds one worker
//!   for at most that long and nobody else waits on it.
//! - Sends go to the log writer's bounded queue with no reply (503 when it is full). The
//!   outcome is read back from the writer's dedup record of `(sender, client_msg_id)`, the
//!   record the writer itself answers a retried `Send` from, written in the same batch as
//!   the message: a send whose id was used before (a retry, also after a restart) is
//!   answered at once with the original ids and writes nothing; a new one waits, bounded by
//!   [`SEND_WAIT_MS`], for its record to appear. Either is answered only once the log has
//!   synced what the read saw (early delivery makes a record visible before its fsync), as
//!   are conversation pages and the webhooks' inbox reads.
//! - Webhooks (`--webhook-url`): a thread polls the inboxes of the `--webhook-user` bots
//!   every [`WEBHOOK_POLL_MS`] and POSTs each message they receive, in order, signed with
//!   `X-Hotline-Signature: sha256=HEX(HMAC-SHA256(secret, body))`. A failed POST is retried
//!   up to `webhook_retries_max` times with doubling backoff, then counted and skipped
//!   (at least once, in order, while the server runs). With `--webhook-online`, a user's
//!   first device coming online is posted too: the home core pushes the user id into a
//!   bounded queue (full: dropped and counted as failed), which this thread drains.
//!   Nothing here blocks a core.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotline_wire::{Conversation, MessageKind, SendFlags};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::shared::Shared;
use crate::storage::record::decode_record;
use crate::storage::writer::{WriteOp, WriteRequest};
use crate::storage::Storage;

pub(crate) mod settings;
use settings::url_host;
pub use settings::{parse_api_token, parse_http_url, IntegrationConfig};

/// Largest request head.
const HEAD_BYTES_MAX: usize = 8 << 10;
/// Largest request body (a message payload plus JSON overhead).
const BODY_BYTES_MAX: usize = 256 << 10;
/// How long a client may take to send its whole request.
pub const REQUEST_READ_TIMEOUT_MS: u64 = 5_000;
/// How long a new send waits to see its entry in the log.
pub const SEND_WAIT_MS: u64 = 10_000;
/// Threads serving API requests: at most this many requests are served at once.
pub const API_WORKERS: usize = 8;
/// Accepted connections waiting for a free worker; one more is answered 503 at once.
pub const API_QUEUED_MAX: usize = 8;
/// The `Retry-After` of every 503, in seconds.
const RETRY_AFTER_S: u32 = 1;
/// Most messages in one conversation page.
const PAGE_MESSAGES_MAX: usize = 256;
/// Most inbox entries one page request scans.
const PAGE_SCAN_ENTRIES_MAX: usize = 16_384;
/// How often the webhook thread looks at the bots' inboxes.
pub const WEBHOOK_POLL_MS: u64 = 50;
/// First retry delay of a webhook; doubles per attempt up to [`WEBHOOK_BACKOFF_MAX_MS`].
const WEBHOOK_BACKOFF_MS: u64 = 100;
const WEBHOOK_BACKOFF_MAX_MS: u64 = 10_000;
/// Connect and read timeout of one webhook POST.
const WEBHOOK_TIMEOUT_MS: u64 = 5_000;
/// How often idle threads check for shutdown.
const POLL_MS: u64 = 50;

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| k.map(|b| b ^ byte);
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A message kind as exported: `normal`, `edit`, `delete`, `expired`, or its number.
pub fn kind_name(kind: MessageKind) -> Value {
    match kind {
        MessageKind::NORMAL => Value::from("normal"),
        MessageKind::EDIT => Value::from("edit"),
        MessageKind::DELETE => Value::from("delete"),
        MessageKind::EXPIRED => Value::from("expired"),
        other => Value::from(other.0),
    }
}

/// One JSON object describing an inbox entry.
fn message_json(seq: u64, record: &[u8]) -> Option<Value> {
    let d = decode_record(seq, record).ok()?;
    let (kind, id) = d.conversation.kind_and_id();
    let mut v = json!({
        "inbox_seq": d.inbox_seq,
        "message_id": d.message_id,
        "conversation": { "kind": match kind { 0 => "direct", 1 => "group", _ => "other" }, "id": id },
        "sender": d.sender,
        "timestamp_us": d.timestamp_us,
        "kind": kind_name(d.kind),
    });
    match std::str::from_utf8(d.payload) {
        Ok(text) => v["text"] = Value::from(text),
        Err(_) => v["payload_hex"] = Value::from(hex(d.payload)),
    }
    Some(v)
}

/// Starts the API's accept thread and its [`API_WORKERS`] workers on `listener`. The
/// returned thread ends at shutdown after the workers did.
pub fn spawn_api(listener: TcpListener, shared: Arc<Shared>, storage: Arc<Storage>) -> std::io::Result<JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let (queue, waiting) = std::sync::mpsc::sync_channel::<TcpStream>(API_QUEUED_MAX);
    let waiting = Arc::new(Mutex::new(waiting));
    let mut workers = Vec::with_capacity(API_WORKERS);
    for i in 0..API_WORKERS {
        let (shared, storage, waiting) = (shared.clone(), storage.clone(), waiting.clone());
        workers.push(
            std::thread::Builder::new()
                .name(format!("hotline-api-{i}"))
                .spawn(move || serve_queued(&waiting, &shared, &storage))?,
        );
    }
    std::thread::Builder::new().name("hotline-api".into()).spawn(move || {
        // Held here too, so the queue stays open (full, then 503s) even if every worker died.
        let _receiver = waiting;
        accept_until_shutdown(&listener, &queue, &shared);
        // The workers see the queue close once it is empty.
        drop(queue);
        for w in workers {
            let _ = w.join();
        }
    })
}

/// Accepts API connections and queues each for a worker, or answers 503 when the queue is full.
fn accept_until_shutdown(listener: &TcpListener, queue: &SyncSender<TcpStream>, shared: &Shared) {
    while !shared.shutdown.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                shared.integration.api_requests.fetch_add(1, Ordering::Relaxed);
                match queue.try_send(stream) {
                    Ok(()) => {}
                    Err(TrySendError::Full(stream)) => {
                        shared.metrics.shed_overloaded.fetch_add(1, Ordering::Relaxed);
                        refuse_busy(stream);
                    }
                    Err(TrySendError::Disconnected(_)) => unreachable!("the accept thread holds the receiver"),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(POLL_MS)),
            Err(e) => {
                tracing::warn!("api accept failed: {e}");
                std::thread::sleep(Duration::from_millis(POLL_MS));
            }
        }
    }
}

/// Answers 503 without reading the request: every worker is busy and the queue is full.
/// The response fits a new socket's empty buffer, so the nonblocking write completes.
fn refuse_busy(mut stream: TcpStream) {
    // Never wait here: the accept loop must move on whatever this client does.
    if stream.set_nonblocking(true).is_err() {
        return;
    }
    let why = json!({ "error": format!("{API_WORKERS} requests in progress and {API_QUEUED_MAX} waiting; retry") });
    let _ = respond(&mut stream, 503, &why);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    // Drain what already arrived, so closing does not reset the connection under the answer.
    let mut sink = [0u8; 4096];
    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
}

/// One worker: serves queued connections, one at a time, until the queue closes.
fn serve_queued(waiting: &Mutex<Receiver<TcpStream>>, shared: &Shared, storage: &Storage) {
    loop {
        let next = waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv_timeout(Duration::from_millis(POLL_MS));
        match next {
            Ok(stream) => {
                if let Err(e) = serve_one(stream, shared, storage) {
                    tracing::debug!("api request failed: {e}");
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Reads some bytes before `deadline`: 408 once it has passed, 400 on a read error.
fn read_before(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> Result<usize, (u16, String)> {
    let left = deadline.saturating_duration_since(Instant::now());
    let late = || {
        (
            408,
            format!("the request did not arrive within {REQUEST_READ_TIMEOUT_MS} ms"),
        )
    };
    if left.is_zero() {
        return Err(late());
    }
    stream.set_read_timeout(Some(left)).map_err(|e| (400, e.to_string()))?;
    stream.read(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => late(),
        _ => (400, e.to_string()),
    })
}

fn read_request(stream: &mut TcpStream) -> Result<Request, (u16, String)> {
    let bad = |why: &str| (400, why.to_owned());
    let deadline = Instant::now() + Duration::from_millis(REQUEST_READ_TIMEOUT_MS);
    let mut data = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if data.len() > HEAD_BYTES_MAX {
            return Err((431, "request head too large".into()));
        }
        let n = read_before(stream, &mut buf, deadline)?;
        if n == 0 {
            return Err(bad("connection closed mid-request"));
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = std::str::from_utf8(&data[..head_end]).map_err(|_| bad("request head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let (method, path) = (
        first.next().unwrap_or_default().to_owned(),
        first.next().unwrap_or_default().to_owned(),
    );
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map_or(Ok(0), |(_, v)| v.parse())
        .map_err(|_| bad("bad Content-Length"))?;
    if length > BODY_BYTES_MAX {
        return Err((413, format!("body over {BODY_BYTES_MAX} bytes")));
    }
    let mut body = data[head_end + 4..].to_vec();
    while body.len() < length {
        let n = read_before(stream, &mut buf, deadline)?;
        if n == 0 {
            return Err(bad("connection closed mid-body"));
        }
        body.extend_from_slice(&buf[..n]);
    }
    body.truncate(length);
    Ok(Request {
        method,
        path,
        headers,
        body,
    })
}

fn respond(stream: &mut TcpStream, status: u16, body: &Value) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let body = body.to_string();
    let retry_after = if status == 503 {
        format!("Retry-After: {RETRY_AFTER_S}\r\n")
    } else {
        String::new()
    };
    write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{retry_after}Connection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

fn serve_one(mut stream: TcpStream, shared: &Shared, storage: &Storage) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(Duration::from_millis(REQUEST_READ_TIMEOUT_MS)))?;
    let (status, body) = match read_request(&mut stream) {
        Ok(request) => handle(&request, shared, storage),
        Err((status, why)) => (status, json!({ "error": why })),
    };
    respond(&mut stream, status, &body)
}

fn handle(request: &Request, shared: &Shared, storage: &Storage) -> (u16, Value) {
    let error = |status: u16, why: String| (status, json!({ "error": why }));
    let token = request
        .headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .and_then(|(_, v)| v.strip_prefix("Bearer "));
    let tokens = &shared.config.integration.api_tokens;
    // Compare every token in full so timing does not tell how much of one matched.
    let service = token.and_then(|t| {
        tokens
            .iter()
            .filter(|(known, _)| {
                known.len() == t.len() && known.bytes().zip(t.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
            })
            .fold(None, |_, (_, user)| Some(user.clone()))
    });
    let Some(service) = service else {
        return error(401, "missing or unknown API token (Authorization: Bearer TOKEN)".into());
    };
    let user_id = match storage.user_by_name(&service) {
        Ok(Some(id)) => id,
        Ok(None) => return error(401, format!("the token's service user {service:?} does not exist")),
        Err(e) => return error(503, e.to_string()),
    };
    let (path, query) = request.path.split_once('?').unwrap_or((&request.path, ""));
    match (request.method.as_str(), path) {
        ("POST", "/v1/messages") => send(request, shared, storage, user_id).unwrap_or_else(|(s, w)| error(s, w)),
        ("GET", p) if p.starts_with("/v1/conversations/") => {
            let peer = &p["/v1/conversations/".len()..];
            page(storage, shared, user_id, peer, query).unwrap_or_else(|(s, w)| error(s, w))
        }
        (_, "/v1/messages") => error(405, "POST only".into()),
        _ => error(404, "POST /v1/messages or GET /v1/conversations/PEER".into()),
    }
}

fn send(request: &Request, shared: &Shared, storage: &Storage, sender: u64) -> Result<(u16, Value), (u16, String)> {
    let body: Value = serde_json::from_slice(&request.body).map_err(|e| (400, format!("body is not JSON: {e}")))?;
    let to_name = body["to"]
        .as_str()
        .ok_or((400, "\"to\" (a username) is required".into()))?;
    let text = body["text"].as_str().ok_or((400, "\"text\" is required".into()))?;
    if text.len() > shared.config.payload_bytes_max as usize {
        return Err((
            413,
            format!("text over payload_bytes_max ({})", shared.config.payload_bytes_max),
        ));
    }
    let storage_err = |e: crate::storage::StorageError| (503, e.to_string());
    let to = storage
        .user_by_name(to_name)
        .map_err(storage_err)?
        .ok_or((404, format!("no user named {to_name:?}")))?;
    let client_msg_id = match body["client_msg_id"].as_u64() {
        Some(id) => id,
        None => {
            let mut id = [0u8; 8];
            getrandom::fill(&mut id).map_err(|e| (503, e.to_string()))?;
            u64::from_le_bytes(id) | 1
        }
    };
    let sent = |[message_id, _, timestamp_us]: [u64; 3]| {
        (
            200,
            json!({ "message_id": message_id, "to": to, "timestamp_us": timestamp_us }),
        )
    };
    // A retry: answered from the record the first send left, writing nothing (once it is
    // durable: under early delivery a record is visible before its fsync).
    if let Some(original) = storage.dedup(sender, client_msg_id).map_err(storage_err)? {
        durable(shared)?;
        return Ok(sent(original));
    }
    let request = WriteRequest {
        reply: None,
        op: WriteOp::Append {
            sender,
            sender_device: 0,
            to,
            group: 0,
            client_msg_id,
            flags: SendFlags::NONE,
            kind: MessageKind::NORMAL,
            refers_to: 0,
            payload: Bytes::copy_from_slice(text.as_bytes()),
        },
    };
    if shared.writer.submit(request).is_err() {
        shared.metrics.shed_overloaded.fetch_add(1, Ordering::Relaxed);
        return Err((503, "write queue full; retry".into()));
    }
    // The dedup record lands in the same batch as the message (or was there already, when
    // a concurrent retry won the race): either way it holds the ids to answer with.
    let deadline = Instant::now() + Duration::from_millis(SEND_WAIT_MS);
    loop {
        if let Some(written) = storage.dedup(sender, client_msg_id).map_err(storage_err)? {
            durable(shared)?;
            shared.integration.api_messages_sent.fetch_add(1, Ordering::Relaxed);
            return Ok(sent(written));
        }
        if Instant::now() > deadline {
            return Err((503, format!("the message was not written within {SEND_WAIT_MS} ms")));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until whatever the reads before it saw is durable (under early delivery a group
/// commit is visible before its fsync), so the API never answers with something that could
/// vanish; `503` if the log does not sync within [`SEND_WAIT_MS`].
fn durable(shared: &Shared) -> Result<(), (u16, String)> {
    if shared.writer.watermark.wait_synced(Duration::from_millis(SEND_WAIT_MS)) {
        Ok(())
    } else {
        Err((503, format!("the log did not sync within {SEND_WAIT_MS} ms")))
    }
}

fn page(
    storage: &Storage,
    shared: &Shared,
    user: u64,
    peer_name: &str,
    query: &str,
) -> Result<(u16, Value), (u16, String)> {
    let storage_err = |e: crate::storage::StorageError| (503, e.to_string());
    let peer = storage
        .user_by_name(peer_name)
        .map_err(storage_err)?
        .ok_or((404, format!("no user named {peer_name:?}")))?;
    let mut after = 0u64;
    let mut limit = 50usize;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("after", v)) => after = v.parse().map_err(|_| (400, format!("bad after={v}")))?,
            Some(("limit", v)) => limit = v.parse().map_err(|_| (400, format!("bad limit={v}")))?,
            _ => return Err((400, format!("unknown query parameter {pair:?} (after, limit)"))),
        }
    }
    let limit = limit.clamp(1, PAGE_MESSAGES_MAX);
    let mut messages = Vec::new();
    let mut scanned = 0;
    let mut more = true;
    while messages.len() < limit && scanned < PAGE_SCAN_ENTRIES_MAX && more {
        let page = storage.read_inbox(user, after, 256, usize::MAX).map_err(storage_err)?;
        more = page.more;
        for (seq, record) in &page.entries {
            scanned += 1;
            after = *seq;
            let conversation = decode_record(*seq, record).map(|d| d.conversation);
            if conversation == Ok(Conversation::Direct(peer)) {
                if let Some(m) = message_json(*seq, record) {
                    messages.push(m);
                }
                if messages.len() == limit {
                    more = true;
                    break;
                }
            }
        }
    }
    durable(shared)?;
    Ok((200, json!({ "messages": messages, "next_after": after, "more": more })))
}

/// Starts the webhook thread, if a URL is configured.
pub fn spawn_webhooks(shared: Arc<Shared>, storage: Arc<Storage>) -> std::io::Result<Option<JoinHandle<()>>> {
    let config = shared.config.integration.clone();
    let Some(url) = config.webhook_url.clone() else {
        return Ok(None);
    };
    std::thread::Builder::new()
        .name("hotline-webhooks".into())
        .spawn(move || {
            // Bots that exist now get only what arrives from now on; bots created later,
            // everything (all of it arrived after start).
            let mut next: HashMap<String, (u64, u64)> = HashMap::new();
            for name in &config.webhook_users {
                if let Ok(Some(id)) = storage.user_by_name(name) {
                    next.insert(name.clone(), (id, storage.inbox_head(id).unwrap_or(0)));
                }
            }
            while !shared.shutdown.load(Ordering::Relaxed) {
                while let Some(user) = shared.online_events.as_ref().and_then(|q| q.pop()) {
                    let event =
                        json!({ "event": "online", "user_id": user, "user": storage.username(user).ok().flatten() });
                    post_with_retries(&shared, &url, &config, &event.to_string());
                }
                for name in &config.webhook_users {
                    if !next.contains_key(name) {
                        if let Ok(Some(id)) = storage.user_by_name(name) {
                            next.insert(name.clone(), (id, 0));
                        }
                    }
                    let Some((bot, after)) = next.get_mut(name) else {
                        continue;
                    };
                    let Ok(page) = storage.read_inbox(*bot, *after, 64, usize::MAX) else {
                        continue;
                    };
                    // Only durable messages leave the server (early delivery).
                    if durable(&shared).is_err() {
                        continue;
                    }
                    for (seq, record) in &page.entries {
                        *after = *seq;
                        let Some(message) = message_json(*seq, record) else {
                            continue;
                        };
                        if message["sender"] == *bot {
                            continue;
                        }
                        let event = json!({ "event": "message", "bot": name, "message": message });
                        post_with_retries(&shared, &url, &config, &event.to_string());
                    }
                }
                std::thread::sleep(Duration::from_millis(WEBHOOK_POLL_MS));
            }
        })
        .map(Some)
}

fn post_with_retries(shared: &Shared, url: &str, config: &IntegrationConfig, body: &str) {
    let stats = &shared.integration;
    let signature = format!(
        "sha256={}",
        hex(&hmac_sha256(config.webhook_secret.as_bytes(), body.as_bytes()))
    );
    let mut backoff = WEBHOOK_BACKOFF_MS;
    for attempt in 0..=config.webhook_retries_max {
        if attempt > 0 {
            stats.webhook_retries.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(backoff));
            backoff = (backoff * 2).min(WEBHOOK_BACKOFF_MAX_MS);
        }
        match post(url, &signature, body) {
            Ok(()) => {
                stats.webhooks_delivered.fetch_add(1, Ordering::Relaxed);
                return;
            }
            // The host only: a webhook URL's path is often a credential of its own.
            Err(e) => tracing::warn!("webhook POST to {} (attempt {}): {e}", url_host(url), attempt + 1),
        }
        if shared.shutdown.load(Ordering::Relaxed) {
            break;
        }
    }
    stats.webhooks_failed.fetch_add(1, Ordering::Relaxed);
}

fn post(url: &str, signature: &str, body: &str) -> Result<(), String> {
    let (authority, path) = parse_http_url(url)?;
    let with_port = if authority.contains(':') {
        authority.clone()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let timeout = Duration::from_millis(WEBHOOK_TIMEOUT_MS);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nX-Hotline-Signature: {signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut status = [0u8; 12];
    stream.read_exact(&mut status).map_err(|e| e.to_string())?;
    match &status[9..10] {
        b"2" => Ok(()),
        _ => Err(format!("answered {}", String::from_utf8_lossy(&status))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
