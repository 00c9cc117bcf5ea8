//! Drivers for established servers, so Hotline can be compared with them by the same tool,
//! the same scenario and the same books (`--target-kind nats|nats-js|mqtt|xmpp`).
//!
//! # Layout
//! - [`PeerSession`]: what the worker needs of a connection to a peer: bytes to write,
//!   bytes read, events out, and `send`. Sans-I/O like `hotline_wire::ClientSession`: the
//!   worker's `mio` loop owns the socket.
//! - [`nats`]: core NATS (text protocol); [`nats_js`]: NATS JetStream over it (file
//!   storage, acknowledged publishes, a durable push consumer per user); [`mqtt`]: MQTT
//!   3.1.1 at QoS 1 (Mosquitto);
//!   [`xmpp`]: XMPP client streams (ejabberd), with [`xml`] its streaming tokenizer.
//!
//! Naming: the connection at accounts line `i` is user `i`: NATS subject `lg.i` (JetStream:
//! in stream `LG`, consumer `lgi`), MQTT client
//! id `lgi` subscribed to topic `lg/i`, XMPP `lgi@localhost` with password `lgi`.
//!
//! A peer payload is the load generator's payload (see `payload`) with the sender's user
//! number in bytes 24..32, since not every protocol says who sent a message (MQTT does not).
//! XMPP carries it hex-encoded in `<body>`.
//!
//! Acknowledgement: MQTT QoS 1 `PUBACK` and JetStream's PubAck acknowledge a send. Core NATS and plain XMPP
//! message stanzas have none: a send counts as acknowledged when it is queued, so a
//! message that never arrives counts as lost.

pub(crate) mod mqtt;
pub(crate) mod nats;
pub(crate) mod nats_js;
pub(crate) mod xml;
pub(crate) mod xmpp;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::payload::{PayloadHeader, PAYLOAD_HEADER_BYTES};

/// Bytes at the front of a peer payload: the load generator's header, then the sender.
pub(crate) const PEER_HEADER_BYTES: usize = PAYLOAD_HEADER_BYTES + 8;

/// Longest protocol line or stanza a driver buffers before calling the peer broken.
pub(crate) const INBOUND_PENDING_BYTES_MAX: usize = 4 << 20;

/// The XMPP domain the peers scripts configure (`bench/peers/ejabberd.yml`).
pub(crate) const XMPP_DOMAIN: &str = "localhost";

/// What the load generator talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TargetKind {
    /// A Hotline server (the default).
    Hotline,
    /// A core NATS server (nats-server).
    Nats,
    /// NATS JetStream (nats-server -js): a file-stored stream, acknowledged publishes.
    #[serde(rename = "nats-js")]
    NatsJs,
    /// An MQTT 3.1.1 broker at QoS 1 (Mosquitto).
    Mqtt,
    /// An XMPP server's client port (ejabberd), users `lgN@localhost` / password `lgN`.
    Xmpp,
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TargetKind::Hotline => "hotline",
            TargetKind::Nats => "nats",
            TargetKind::NatsJs => "nats-js",
            TargetKind::Mqtt => "mqtt",
            TargetKind::Xmpp => "xmpp",
        })
    }
}

/// What a peer connection reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PeerEvent {
    /// Logged in and subscribed: messages sent to this user now reach this connection.
    Ready,
    /// A message arrived; `sender` and `header` come from its payload (`None`: not ours).
    Deliver { sender: u64, header: Option<PayloadHeader> },
    /// The send `request_id` was acknowledged by the server.
    SendAck { request_id: u64 },
    /// The server refused something (login, subscription, a message): its words.
    Refused(String),
}

/// The peer broke its protocol (or we did not understand it): the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PeerError(pub String);

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One connection to a peer, without I/O.
pub(crate) trait PeerSession: fmt::Debug + Send {
    /// Bytes to write to the socket.
    fn outbound(&self) -> &[u8];
    /// `n` bytes of [`PeerSession::outbound`] were written.
    fn consume_outbound(&mut self, n: usize);
    /// Bytes read from the socket.
    fn receive(&mut self, bytes: &[u8]);
    /// The next event from what was received, if complete.
    fn next_event(&mut self) -> Result<Option<PeerEvent>, PeerError>;
    /// Whether [`PeerSession::send`] may be called now (false: too many sends await their
    /// acknowledgement; the worker skips and counts the send).
    fn can_send(&self) -> bool {
        true
    }
    /// Queues `payload` for user `to`. `Some(request_id)`: a [`PeerEvent::SendAck`] will
    /// follow; `None`: the protocol acknowledges nothing.
    fn send(&mut self, to: u64, payload: &[u8]) -> Option<u64>;
}

/// A session for user `user` of a `kind` peer (`None` for Hotline, which has its own).
pub(crate) fn session(kind: TargetKind, user: u64) -> Option<Box<dyn PeerSession>> {
    match kind {
        TargetKind::Hotline => None,
        TargetKind::Nats => Some(Box::new(nats::NatsSession::new(user))),
        TargetKind::NatsJs => Some(Box::new(nats_js::NatsJsSession::new(user))),
        TargetKind::Mqtt => Some(Box::new(mqtt::MqttSession::new(user))),
        TargetKind::Xmpp => Some(Box::new(xmpp::XmppSession::new(user, XMPP_DOMAIN))),
    }
}

/// Writes the sender into a peer payload (after the header the worker wrote).
pub(crate) fn write_sender(payload: &mut [u8], sender: u64) {
    payload[PAYLOAD_HEADER_BYTES..PEER_HEADER_BYTES].copy_from_slice(&sender.to_le_bytes());
}

/// A delivered payload's sender and header.
pub(crate) fn read_delivery(payload: &[u8]) -> PeerEvent {
    let sender = payload
        .get(PAYLOAD_HEADER_BYTES..PEER_HEADER_BYTES)
        .and_then(|b| b.try_into().ok())
        .map_or(u64::MAX, u64::from_le_bytes);
    PeerEvent::Deliver {
        sender,
        header: PayloadHeader::read(payload),
    }
}

/// Bytes received and not yet parsed, with a read cursor so parsing does not shift the
/// buffer per message; the consumed front is dropped when the rest is parsed or it grows.
#[derive(Debug, Default)]
pub(crate) struct InBuf {
    bytes: Vec<u8>,
    start: usize,
}

impl InBuf {
    /// Appends received bytes.
    pub(crate) fn extend(&mut self, more: &[u8]) {
        if self.start > 0 && (self.start == self.bytes.len() || self.start >= 64 << 10) {
            self.bytes.drain(..self.start);
            self.start = 0;
        }
        self.bytes.extend_from_slice(more);
    }

    /// The unparsed bytes.
    pub(crate) fn pending(&self) -> &[u8] {
        &self.bytes[self.start..]
    }

    /// `n` bytes of [`InBuf::pending`] were parsed.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.bytes.len());
    }

    /// Fails once a peer has sent more than [`INBOUND_PENDING_BYTES_MAX`] without completing
    /// what the parser waits for.
    pub(crate) fn check_bound(&self) -> Result<(), PeerError> {
        let pending = self.bytes.len() - self.start;
        if pending > INBOUND_PENDING_BYTES_MAX {
            return Err(PeerError(format!(
                "{pending} bytes pending without a complete message (at most {INBOUND_PENDING_BYTES_MAX})"
            )));
        }
        Ok(())
    }
}

/// Bytes queued for the socket, consumed from the front.
#[derive(Debug, Default)]
pub(crate) struct OutBuf {
    bytes: Vec<u8>,
    start: usize,
}

impl OutBuf {
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[self.start..]
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.bytes.len() {
            self.bytes.clear();
            self.start = 0;
        }
    }

    pub(crate) fn push(&mut self, more: &[u8]) {
        self.bytes.extend_from_slice(more);
    }

    /// The buffer to append to (for `write!`).
    pub(crate) fn vec(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_payload_names_its_sender() {
        let mut payload = vec![0u8; 40];
        PayloadHeader {
            run_nonce: 1,
            scheduled_ns: 2,
            seq: 3,
        }
        .write(&mut payload);
        write_sender(&mut payload, 77);
        match read_delivery(&payload) {
            PeerEvent::Deliver { sender, header } => {
                assert_eq!(sender, 77);
                assert_eq!(header.map(|h| h.seq), Some(3));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            read_delivery(b"short"),
            PeerEvent::Deliver {
                sender: u64::MAX,
                header: None
            }
        ));
    }

    #[test]
    fn the_inbound_buffer_keeps_unparsed_bytes_across_reads() {
        let mut b = InBuf::default();
        b.extend(b"abc");
        b.consume(2);
        b.extend(b"de");
        assert_eq!(b.pending(), b"cde");
        b.consume(3);
        b.extend(b"f");
        assert_eq!(b.pending(), b"f");
    }
}
