//! One connection's transport stack, sans-IO: `wire bytes ⇄ [TLS] ⇄ [WebSocket] ⇄ frames`.
//!
//! The owner reads from its socket and calls [`Layer::ingest`], which appends the
//! length-prefixed frame stream it decoded; it calls [`Layer::seal`] with whole
//! length-prefixed frames to send, then writes [`Layer::wire`] to the socket and
//! [`Layer::consume_wire`]s what was written. Nothing here blocks, reads a clock or
//! touches a socket, so a layer can move between threads with its connection (it is
//! `Send`): the server hands a logged-in connection to its user's home core together with
//! its layer.
//!
//! State, per connection:
//! - `tls`: the rustls connection, when the listener (or the client) speaks TLS.
//! - `ws`: the WebSocket phase, when it speaks WebSocket: the HTTP head being read (the
//!   server's request, or the client's `101` response), then the open frame codec.
//! - `held`: frames sealed before the WebSocket opened, sent as soon as it does.
//! - `wire`: bytes to write to the socket (TLS records, or WebSocket/HTTP bytes in clear).
//! - `finished`: the peer closed (TLS `close_notify`, WebSocket `Close`) or an HTTP
//!   request was answered: the owner flushes `wire` and closes.

use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};
use tungstenite::handshake::client::Response;
use tungstenite::handshake::derive_accept_key;
use tungstenite::handshake::machine::TryParse;
use tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};
use tungstenite::Message;

use crate::http::{serve_head, HttpOutcome, StaticFiles};
use crate::{TransportError, HTTP_HEAD_BYTES_MAX, SCRATCH_RETAIN_BYTES, WS_READ_BUFFER_BYTES};

/// Bytes of a frame's length prefix (a little-endian u32), as in `hotline_wire`.
const PREFIX_BYTES: usize = hotline_wire::FRAME_HEADER_BYTES;

/// What a server listener speaks, shared by every connection it accepts.
#[derive(Debug, Clone, Default)]
pub struct ServerSettings {
    /// TLS under everything else.
    pub tls: Option<Arc<ServerConfig>>,
    /// WebSocket (after an HTTP/1.1 upgrade) above TLS, if any.
    pub ws: Option<Arc<WsServerSettings>>,
}

/// A server WebSocket listener's settings.
#[derive(Debug, Clone)]
pub struct WsServerSettings {
    /// Largest message (one frame without its prefix) accepted.
    pub frame_bytes_max: u32,
    /// Browser origins allowed besides the page's own (`*`: any).
    pub origins_allowed: Vec<String>,
    /// Files answered to plain `GET`s (the web page), if any.
    pub files: Option<StaticFiles>,
}

/// How a client opens its WebSocket.
#[derive(Debug, Clone)]
pub struct WsClientOptions {
    /// The `Host` header (`127.0.0.1:7701`).
    pub host: String,
    /// The request path (`/`).
    pub path: String,
    /// An `Origin` header, as a browser would send.
    pub origin: Option<String>,
    /// Largest message accepted from the server.
    pub frame_bytes_max: u32,
}

/// What a layer speaks, for logs and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    Tls,
    Ws,
    WsOverTls,
}

impl LayerKind {
    /// `tls`, `ws` or `wss`.
    pub fn name(self) -> &'static str {
        match self {
            LayerKind::Tls => "tls",
            LayerKind::Ws => "ws",
            LayerKind::WsOverTls => "wss",
        }
    }
}

enum WsPhase {
    /// Server: reading the HTTP request head (bounded by [`HTTP_HEAD_BYTES_MAX`]).
    ServerHead {
        head: Vec<u8>,
        settings: Arc<WsServerSettings>,
    },
    /// Client: the upgrade request is out; reading the response head.
    ClientHead {
        head: Vec<u8>,
        key: String,
        frame_bytes_max: u32,
    },
    /// Upgraded: messages flow.
    Open(Box<WebSocketContext>),
    /// Closed, or the HTTP request was answered without an upgrade.
    Done,
}

/// One connection's transport stack (see the module docs).
pub struct Layer {
    tls: Option<Connection>,
    ws: Option<WsPhase>,
    held: Vec<u8>,
    /// Scratch: TLS plaintext on its way up.
    plain: Vec<u8>,
    /// Scratch: WebSocket/HTTP bytes on their way down to TLS.
    down: Vec<u8>,
    wire: Vec<u8>,
    wire_sent: usize,
    finished: bool,
    /// The WebSocket refused what the peer sent (an over-long message, a protocol error):
    /// tungstenite's reader stopped inside a frame, so nothing more is read from the peer
    /// (its codec, run on from there, fails a debug assertion). Sending still works, so
    /// the owner can say why it closes.
    ws_read_failed: bool,
}

impl std::fmt::Debug for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layer")
            .field("kind", &self.kind())
            .field("held", &self.held.len())
            .field("wire_pending", &(self.wire.len() - self.wire_sent))
            .field("finished", &self.finished)
            .finish()
    }
}

/// A `Read + Write` over borrowed buffers, for tungstenite's frame codec: reads take from
/// `rx` until it is empty (then `WouldBlock`), writes append to `tx`.
struct MemIo<'a> {
    rx: &'a [u8],
    tx: &'a mut Vec<u8>,
}

impl Read for MemIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.rx.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.rx.read(buf)
    }
}

impl Write for MemIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tx.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn ws_config(frame_bytes_max: u32) -> WebSocketConfig {
    // A message becomes a frame REROOT_BYTES longer; the frame must fit the limit.
    let max = Some((frame_bytes_max as usize).saturating_sub(REROOT_BYTES));
    WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_message_size(max)
        .max_frame_size(max)
}

impl Layer {
    /// The layer for a connection accepted on a listener with `settings`; `None` for plain TCP.
    pub fn server(settings: &ServerSettings) -> Result<Option<Layer>, TransportError> {
        if settings.tls.is_none() && settings.ws.is_none() {
            return Ok(None);
        }
        let tls = match &settings.tls {
            Some(config) => {
                let mut conn = ServerConnection::new(config.clone())?;
                conn.set_buffer_limit(None);
                Some(Connection::Server(conn))
            }
            None => None,
        };
        let ws = settings.ws.clone().map(|settings| WsPhase::ServerHead {
            head: Vec::new(),
            settings,
        });
        Ok(Some(Layer::with(tls, ws)))
    }

    /// A client layer: TLS to `server_name` when `tls` is given, then a WebSocket upgrade
    /// when `ws` is given. Its first bytes (ClientHello, the upgrade request) are in
    /// [`Layer::wire`] already.
    pub fn client(
        tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
        ws: Option<WsClientOptions>,
    ) -> Result<Layer, TransportError> {
        let tls = match tls {
            Some((config, name)) => {
                let mut conn = ClientConnection::new(config, name)?;
                conn.set_buffer_limit(None);
                Some(Connection::Client(conn))
            }
            None => None,
        };
        let mut layer = Layer::with(tls, None);
        if let Some(options) = ws {
            let key = tungstenite::handshake::client::generate_key();
            let origin = options
                .origin
                .as_deref()
                .map(|o| format!("Origin: {o}\r\n"))
                .unwrap_or_default();
            let request = format!(
                "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{origin}\r\n",
                options.path, options.host
            );
            layer.ws = Some(WsPhase::ClientHead {
                head: Vec::new(),
                key,
                frame_bytes_max: options.frame_bytes_max,
            });
            write_down(&mut layer.tls, &mut layer.wire, request.as_bytes())?;
        } else if let Some(tls) = &mut layer.tls {
            drain_tls(tls, &mut layer.wire)?;
        }
        Ok(layer)
    }

    fn with(tls: Option<Connection>, ws: Option<WsPhase>) -> Layer {
        Layer {
            tls,
            ws,
            held: Vec::new(),
            plain: Vec::new(),
            down: Vec::new(),
            wire: Vec::new(),
            wire_sent: 0,
            finished: false,
            ws_read_failed: false,
        }
    }

    /// What this layer speaks.
    pub fn kind(&self) -> LayerKind {
        match (self.tls.is_some(), self.ws.is_some()) {
            (true, true) => LayerKind::WsOverTls,
            (false, true) => LayerKind::Ws,
            _ => LayerKind::Tls,
        }
    }

    /// Takes bytes read from the socket; appends the frames they complete to `frames`
    /// (length-prefixed, as on plain TCP). After an error the connection is finished:
    /// flush [`Layer::wire`] (it may hold an alert or an HTTP error) and close.
    pub fn ingest(&mut self, data: &[u8], frames: &mut Vec<u8>) -> Result<(), TransportError> {
        if self.finished {
            return Ok(());
        }
        let Some(tls) = &mut self.tls else {
            return self.ingest_plain(data, frames);
        };
        let mut plain = std::mem::take(&mut self.plain);
        plain.clear();
        let mut rest = data;
        let mut result = Ok(());
        while !rest.is_empty() {
            if let Err(e) = tls.read_tls(&mut rest) {
                result = Err(TransportError::Tls(rustls::Error::General(e.to_string())));
                break;
            }
            match tls.process_new_packets() {
                Ok(state) => {
                    let n = state.plaintext_bytes_to_read();
                    if state.peer_has_closed() {
                        self.finished = true;
                    }
                    if n > 0 {
                        let at = plain.len();
                        plain.resize(at + n, 0);
                        if let Err(e) = tls.reader().read_exact(&mut plain[at..]) {
                            result = Err(TransportError::Tls(rustls::Error::General(e.to_string())));
                            break;
                        }
                    }
                }
                Err(e) => {
                    result = Err(e.into());
                    break;
                }
            }
        }
        // Handshake messages, session tickets, or the alert that explains an error.
        let drained = drain_tls(tls, &mut self.wire);
        result?;
        drained?;
        let up = self.ingest_plain(&plain, frames);
        if plain.capacity() <= SCRATCH_RETAIN_BYTES {
            self.plain = plain;
        }
        up
    }

    /// Above TLS (or without it): the WebSocket phase, or the frame stream itself.
    fn ingest_plain(&mut self, data: &[u8], frames: &mut Vec<u8>) -> Result<(), TransportError> {
        let Some(phase) = &mut self.ws else {
            frames.extend_from_slice(data);
            return Ok(());
        };
        let secure = self.tls.is_some();
        let mut down = std::mem::take(&mut self.down);
        down.clear();
        let result = match phase {
            WsPhase::ServerHead { head, settings } => {
                head.extend_from_slice(data);
                match serve_head(head, settings, secure, &mut down) {
                    HttpOutcome::NeedMore => Ok(()),
                    HttpOutcome::Upgraded { consumed } => {
                        let early = head.split_off(consumed);
                        let ctx = WebSocketContext::from_partially_read(
                            early,
                            Role::Server,
                            Some(ws_config(settings.frame_bytes_max)),
                        );
                        *phase = WsPhase::Open(Box::new(ctx));
                        self.opened(frames, &mut down)
                    }
                    HttpOutcome::Responded { .. } => {
                        *phase = WsPhase::Done;
                        self.finished = true;
                        Ok(())
                    }
                }
            }
            WsPhase::ClientHead {
                head,
                key,
                frame_bytes_max,
            } => {
                head.extend_from_slice(data);
                match Response::try_parse(head) {
                    Ok(Some((consumed, response))) => {
                        let accept = derive_accept_key(key.as_bytes());
                        let accepted = response
                            .headers()
                            .get("sec-websocket-accept")
                            .is_some_and(|v| v.as_bytes() == accept.as_bytes());
                        if response.status().as_u16() != 101 || !accepted {
                            self.finished = true;
                            Err(TransportError::Http(format!(
                                "the server refused the WebSocket upgrade: {}",
                                response.status()
                            )))
                        } else {
                            let early = head.split_off(consumed);
                            let ctx = WebSocketContext::from_partially_read(
                                early,
                                Role::Client,
                                Some(ws_config(*frame_bytes_max)),
                            );
                            *phase = WsPhase::Open(Box::new(ctx));
                            self.opened(frames, &mut down)
                        }
                    }
                    Ok(None) if head.len() > HTTP_HEAD_BYTES_MAX => {
                        Err(TransportError::Http("upgrade response head too long".into()))
                    }
                    Ok(None) => Ok(()),
                    Err(e) => Err(TransportError::Http(e.to_string())),
                }
            }
            WsPhase::Open(_) if self.ws_read_failed => Ok(()),
            WsPhase::Open(ctx) => read_messages(ctx, data, frames, &mut down, &mut self.finished),
            WsPhase::Done => Ok(()),
        };
        if result.is_err() && matches!(self.ws, Some(WsPhase::Open(_))) {
            self.ws_read_failed = true;
        }
        let written = write_down(&mut self.tls, &mut self.wire, &down);
        if down.capacity() <= SCRATCH_RETAIN_BYTES {
            self.down = down;
        }
        result?;
        written
    }

    /// The WebSocket just opened: read what came with the head, send what was held.
    fn opened(&mut self, frames: &mut Vec<u8>, down: &mut Vec<u8>) -> Result<(), TransportError> {
        let Some(WsPhase::Open(ctx)) = &mut self.ws else {
            return Ok(());
        };
        read_messages(ctx, &[], frames, down, &mut self.finished)?;
        let held = std::mem::take(&mut self.held);
        seal_messages(ctx, &held, down)
    }

    /// Queues whole length-prefixed frames for the peer; their bytes appear in
    /// [`Layer::wire`]. Frames sealed before a WebSocket opens are held until it does.
    pub fn seal(&mut self, frames: &[u8]) -> Result<(), TransportError> {
        if frames.is_empty() {
            return Ok(());
        }
        match &mut self.ws {
            None => write_down(&mut self.tls, &mut self.wire, frames),
            Some(WsPhase::ServerHead { .. } | WsPhase::ClientHead { .. }) => {
                self.held.extend_from_slice(frames);
                Ok(())
            }
            Some(WsPhase::Open(ctx)) => {
                let mut down = std::mem::take(&mut self.down);
                down.clear();
                let sealed = seal_messages(ctx, frames, &mut down);
                let written = write_down(&mut self.tls, &mut self.wire, &down);
                if down.capacity() <= SCRATCH_RETAIN_BYTES {
                    self.down = down;
                }
                sealed?;
                written
            }
            // Nobody is listening any more.
            Some(WsPhase::Done) => Ok(()),
        }
    }

    /// Says goodbye properly (WebSocket `Close`, TLS `close_notify`) before the owner
    /// closes the socket; the bytes land in [`Layer::wire`].
    pub fn close(&mut self) {
        let mut down = Vec::new();
        if let Some(WsPhase::Open(ctx)) = &mut self.ws {
            let mut io = MemIo { rx: &[], tx: &mut down };
            let _ = ctx.close(&mut io, None);
            let _ = ctx.flush(&mut io);
        }
        let _ = write_down(&mut self.tls, &mut self.wire, &down);
        if let Some(tls) = &mut self.tls {
            tls.send_close_notify();
            let _ = drain_tls(tls, &mut self.wire);
        }
        self.finished = true;
    }

    /// Bytes to write to the socket.
    pub fn wire(&self) -> &[u8] {
        &self.wire[self.wire_sent..]
    }

    /// `n` bytes of [`Layer::wire`] were written.
    pub fn consume_wire(&mut self, n: usize) {
        self.wire_sent += n;
        debug_assert!(self.wire_sent <= self.wire.len());
        if self.wire_sent >= self.wire.len() {
            self.wire.clear();
            self.wire_sent = 0;
        } else if self.wire_sent > self.wire.len() / 2 {
            self.wire.drain(..self.wire_sent);
            self.wire_sent = 0;
        }
    }

    /// Bytes queued and not yet on the socket: unwritten wire bytes and held frames.
    pub fn pending_bytes(&self) -> usize {
        self.wire.len() - self.wire_sent + self.held.len()
    }

    /// Whether the peer closed, or the layer answered and is done: flush and close.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Whether frames flow end to end (TLS handshake done, WebSocket upgraded).
    pub fn is_open(&self) -> bool {
        let tls_open = self.tls.as_ref().is_none_or(|t| !t.is_handshaking());
        let ws_open = match &self.ws {
            None => true,
            Some(phase) => matches!(phase, WsPhase::Open(_)),
        };
        tls_open && ws_open && !self.finished
    }

    /// Drops everything not yet written (the peer is gone or will not read it).
    pub fn discard_pending(&mut self) {
        self.wire = Vec::new();
        self.wire_sent = 0;
        self.held = Vec::new();
    }

    /// Returns scratch and written-out buffers to the allocator: for idle connections.
    pub fn release_idle(&mut self) {
        self.plain = Vec::new();
        self.down = Vec::new();
        if self.wire_sent == self.wire.len() {
            self.wire = Vec::new();
            self.wire_sent = 0;
        }
    }
}

/// Moves everything rustls wants to send into `wire`.
fn drain_tls(tls: &mut Connection, wire: &mut Vec<u8>) -> Result<(), TransportError> {
    while tls.wants_write() {
        tls.write_tls(wire)
            .map_err(|e| TransportError::Tls(rustls::Error::General(e.to_string())))?;
    }
    Ok(())
}

/// Passes bytes down: through TLS when there is TLS, else straight to the wire.
fn write_down(tls: &mut Option<Connection>, wire: &mut Vec<u8>, bytes: &[u8]) -> Result<(), TransportError> {
    if bytes.is_empty() {
        return Ok(());
    }
    match tls {
        None => {
            wire.extend_from_slice(bytes);
            Ok(())
        }
        Some(tls) => {
            // No buffer limit is set, so this takes everything (rustls holds it until
            // the handshake completes if need be).
            tls.writer()
                .write_all(bytes)
                .map_err(|e| TransportError::Tls(rustls::Error::General(e.to_string())))?;
            drain_tls(tls, wire)
        }
    }
}

/// Bytes a message grows by crossing between the stream and WebSocket (see [`push_realigned`]).
pub const REROOT_BYTES: usize = 4;

/// Appends one FlatBuffer, moved by [`REROOT_BYTES`] so its alignment suits the other side:
/// with `prefixed`, as a length-prefixed stream frame; without, as a bare message.
///
/// Why: FlatBuffers aligns fields relative to the start of the buffer the verifier is given.
/// On the stream that start is the length prefix, so a frame body's 8-byte fields sit at
/// 4 mod 8 from the body's first byte; a WebSocket message is a standard FlatBuffer, its
/// fields at 0 mod 8 from its first byte (what every FlatBuffers library builds and a strict
/// verifier expects). Crossing either way, the buffer gets 4 bytes in front: a new root
/// offset, 4 more than the old one, which stays behind as unused padding. Every other
/// FlatBuffers offset is relative, so the buffer means the same, and every field moves by 4:
/// exactly the alignment change needed. Anything shorter than a root offset (not a
/// FlatBuffer) passes unchanged, for the decoder to refuse as it would on TCP.
fn push_realigned(out: &mut Vec<u8>, buffer: &[u8], prefixed: bool) -> Result<(), TransportError> {
    let root = buffer
        .first_chunk::<4>()
        .and_then(|r| u32::from_le_bytes(*r).checked_add(REROOT_BYTES as u32));
    let len = buffer.len() + if root.is_some() { REROOT_BYTES } else { 0 };
    if prefixed {
        let len = u32::try_from(len).map_err(|_| TransportError::FrameTooLarge { max: u32::MAX })?;
        out.extend_from_slice(&len.to_le_bytes());
    }
    if let Some(root) = root {
        out.extend_from_slice(&root.to_le_bytes());
    }
    out.extend_from_slice(buffer);
    Ok(())
}

/// Reads every whole message in `data` (after what the codec buffered before): each data
/// message becomes one length-prefixed frame in `frames`. Replies the codec owes (pongs,
/// the close echo) go to `down`.
fn read_messages(
    ctx: &mut WebSocketContext,
    data: &[u8],
    frames: &mut Vec<u8>,
    down: &mut Vec<u8>,
    finished: &mut bool,
) -> Result<(), TransportError> {
    let mut io = MemIo { rx: data, tx: down };
    loop {
        let payload = match ctx.read(&mut io) {
            Ok(Message::Binary(b)) => b,
            // Not a frame: passed on as one, so the peer's decoder answers it exactly
            // as it answers a malformed frame on TCP.
            Ok(Message::Text(t)) => t.into(),
            Ok(Message::Close(_)) => {
                *finished = true;
                continue;
            }
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                *finished = true;
                break;
            }
            Err(e) => return Err(e.into()),
        };
        push_realigned(frames, &payload, true)?;
    }
    match ctx.flush(&mut io) {
        Ok(()) | Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Writes each length-prefixed frame in `frames` as one binary message into `down`.
fn seal_messages(ctx: &mut WebSocketContext, frames: &[u8], down: &mut Vec<u8>) -> Result<(), TransportError> {
    let mut io = MemIo { rx: &[], tx: down };
    let mut rest = frames;
    while !rest.is_empty() {
        let Some(prefix) = rest.first_chunk::<PREFIX_BYTES>() else {
            return Err(TransportError::PartialFrame { len: rest.len() });
        };
        let len = u32::from_le_bytes(*prefix) as usize;
        let Some(body) = rest.get(PREFIX_BYTES..PREFIX_BYTES + len) else {
            return Err(TransportError::PartialFrame { len: rest.len() });
        };
        let mut message = Vec::with_capacity(REROOT_BYTES + body.len());
        push_realigned(&mut message, body, false)?;
        match ctx.write(&mut io, Message::binary(message)) {
            Ok(()) => {}
            // The peer closed: nothing more can go out, and that is not an error here.
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => return Ok(()),
            Err(tungstenite::Error::Protocol(tungstenite::error::ProtocolError::SendAfterClosing)) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        rest = &rest[PREFIX_BYTES + len..];
    }
    match ctx.flush(&mut io) {
        Ok(()) | Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::tls;

    const FRAME_BYTES_MAX: u32 = 1 << 16;

    fn testdata(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata").join(name)
    }

    fn pair(with_tls: bool, with_ws: bool) -> (Layer, Layer) {
        let server_tls = with_tls
            .then(|| tls::server_config(&testdata("cert.pem"), &testdata("key.pem")).expect("test certificate loads"));
        let settings = ServerSettings {
            tls: server_tls,
            ws: with_ws.then(|| {
                Arc::new(WsServerSettings {
                    frame_bytes_max: FRAME_BYTES_MAX,
                    origins_allowed: Vec::new(),
                    files: None,
                })
            }),
        };
        let server = Layer::server(&settings).expect("server layer").expect("not plain");
        let client_tls = with_tls.then(|| {
            let roots = tls::load_certificates(&testdata("cert.pem")).expect("test certificate loads");
            let config = tls::client_config(&roots).expect("client config");
            (config, tls::server_name("localhost").expect("valid name"))
        });
        let ws = with_ws.then(|| WsClientOptions {
            host: "localhost:7701".into(),
            path: "/".into(),
            origin: None,
            frame_bytes_max: FRAME_BYTES_MAX,
        });
        (server, Layer::client(client_tls, ws).expect("client layer"))
    }

    /// Moves wire bytes both ways until neither side has any; returns the frames each got.
    fn shuttle(client: &mut Layer, server: &mut Layer) -> (Vec<u8>, Vec<u8>) {
        let (mut to_client, mut to_server) = (Vec::new(), Vec::new());
        for _ in 0..32 {
            let c = client.wire().to_vec();
            client.consume_wire(c.len());
            server.ingest(&c, &mut to_server).expect("server ingests");
            let s = server.wire().to_vec();
            server.consume_wire(s.len());
            client.ingest(&s, &mut to_client).expect("client ingests");
            if c.is_empty() && s.is_empty() {
                break;
            }
        }
        (to_client, to_server)
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as u32).to_le_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    /// Real frames, as the Rust encoder makes them (size-prefixed FlatBuffers).
    fn pings(nonces: &[u64]) -> Vec<u8> {
        let mut encoder = hotline_wire::Encoder::new();
        let mut out = Vec::new();
        for &nonce in nonces {
            encoder.encode_into(
                nonce,
                &hotline_wire::Message::Ping(hotline_wire::Ping { nonce }),
                &mut out,
            );
        }
        out
    }

    /// Decodes a frame stream with the strict verifier; returns (request id, ping nonce).
    fn decode_pings(mut stream: &[u8]) -> Vec<(u64, u64)> {
        let decoder = hotline_wire::FrameDecoder::new(1 << 20, 0);
        let mut out = Vec::new();
        while !stream.is_empty() {
            let len = hotline_wire::frame_body_len(stream, 1 << 20)
                .expect("a valid prefix")
                .expect("a whole frame");
            let end = hotline_wire::FRAME_HEADER_BYTES + len;
            match decoder.decode(&stream[..end]).expect("verifies") {
                hotline_wire::Decoded::Frame { frame, .. } => match frame.message {
                    hotline_wire::Message::Ping(p) => out.push((frame.request_id, p.nonce)),
                    other => panic!("not a ping: {other:?}"),
                },
                hotline_wire::Decoded::NeedMore { .. } => panic!("sliced a whole frame"),
            }
            stream = &stream[end..];
        }
        out
    }

    #[test]
    fn frames_cross_every_stack_both_ways_and_still_verify() {
        for (with_tls, with_ws) in [(true, false), (false, true), (true, true)] {
            let (mut server, mut client) = pair(with_tls, with_ws);
            // Sealed before any handshake finished: held (or buffered by rustls) until then.
            let nonces = [1, 2, u64::MAX];
            client.seal(&pings(&nonces)).expect("seal");
            let (_, got) = shuttle(&mut client, &mut server);
            let want: Vec<(u64, u64)> = nonces.iter().map(|&n| (n, n)).collect();
            assert_eq!(
                decode_pings(&got),
                want,
                "tls {with_tls} ws {with_ws}: client to server"
            );
            assert!(client.is_open() && server.is_open());
            server.seal(&pings(&[9])).expect("seal");
            let (got, _) = shuttle(&mut client, &mut server);
            assert_eq!(
                decode_pings(&got),
                [(9, 9)],
                "tls {with_tls} ws {with_ws}: server to client"
            );
            client.close();
            shuttle(&mut client, &mut server);
            assert!(
                server.is_finished(),
                "tls {with_tls} ws {with_ws}: the close reached the server"
            );
        }
    }

    #[test]
    fn a_websocket_message_over_the_frame_limit_is_refused() {
        let (mut server, mut client) = pair(false, true);
        shuttle(&mut client, &mut server);
        client.seal(&frame(&vec![1u8; FRAME_BYTES_MAX as usize])).expect("seal");
        let bytes = client.wire().to_vec();
        let mut frames = Vec::new();
        let err = server.ingest(&bytes, &mut frames).expect_err("too large");
        let max = FRAME_BYTES_MAX - REROOT_BYTES as u32;
        assert!(
            matches!(err, TransportError::FrameTooLarge { max: m } if m == max),
            "{err}"
        );
        assert!(frames.is_empty());
    }

    /// Regression (found by the `engine_frames` fuzz target): a read that reached the
    /// server's layer after it refused an over-long message ran tungstenite's reader on from
    /// the half-read frame, which fails a debug assertion ("in_buffer.capacity() > len").
    #[test]
    fn bytes_after_a_refused_websocket_message_are_dropped() {
        let (mut server, mut client) = pair(false, true);
        shuttle(&mut client, &mut server);
        client.seal(&frame(&vec![1u8; FRAME_BYTES_MAX as usize])).expect("seal");
        client.seal(&pings(&[1])).expect("seal");
        let bytes = client.wire().to_vec();
        let (first, rest) = bytes.split_at(WS_READ_BUFFER_BYTES);
        let mut frames = Vec::new();
        server.ingest(first, &mut frames).expect_err("too large");
        for read in rest.chunks(WS_READ_BUFFER_BYTES) {
            server.ingest(read, &mut frames).expect("dropped");
        }
        assert!(frames.is_empty(), "nothing is read after the refusal");
    }

    #[test]
    /// Regression: a browser's Hello (a FlatBuffer aligned from its own first byte) failed the
    /// server's verifier with "Type `u64` at position 36 is unaligned".
    fn a_standard_flatbuffer_message_verifies_as_a_stream_frame() {
        // What a browser sends: a bare FlatBuffer aligned from its own first byte.
        let mut fbb = flatbuffers::FlatBufferBuilder::new();
        let body = hotline_wire::fb::Ping::create(&mut fbb, &hotline_wire::fb::PingArgs { nonce: 77 });
        let root = hotline_wire::fb::Frame::create(
            &mut fbb,
            &hotline_wire::fb::FrameArgs {
                request_id: 5,
                body_type: hotline_wire::fb::Body::Ping,
                body: Some(body.as_union_value()),
            },
        );
        fbb.finish(root, None);
        let mut frames = Vec::new();
        push_realigned(&mut frames, fbb.finished_data(), true).expect("fits");
        assert_eq!(decode_pings(&frames), [(5, 77)]);
        // And what the server sends becomes such a bare FlatBuffer, verifiable from byte 0.
        let stream = pings(&[3]);
        let mut message = Vec::new();
        push_realigned(&mut message, &stream[hotline_wire::FRAME_HEADER_BYTES..], false).expect("fits");
        let frame = flatbuffers::root::<hotline_wire::fb::Frame>(&message).expect("a standard FlatBuffer");
        assert_eq!(frame.request_id(), 3);
    }

    #[test]
    fn garbage_instead_of_a_tls_hello_is_a_tls_error() {
        let (mut server, _) = pair(true, false);
        let err = server
            .ingest(b"GET / HTTP/1.1\r\n\r\n", &mut Vec::new())
            .expect_err("not TLS");
        assert!(matches!(err, TransportError::Tls(_)), "{err}");
    }

    #[test]
    fn sealing_a_partial_frame_is_a_caller_bug_reported_as_such() {
        let (mut server, mut client) = pair(false, true);
        shuttle(&mut client, &mut server);
        let err = server.seal(&[5, 0, 0, 0, 1]).expect_err("partial");
        assert!(matches!(err, TransportError::PartialFrame { len: 5 }), "{err}");
    }
}
