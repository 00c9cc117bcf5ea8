//! NATS JetStream: the durable NATS, over the same text protocol as [`super::nats`], as the
//! peer Hotline `--durability sync` is compared with (`--target-kind nats-js`).
//!
//! One stream, [`STREAM`], file storage, holding subjects `lg.>`; user `u`'s messages are
//! subject `lg.<u>`. A connection pipelines, in order: `CONNECT` (headers on), `SUB
//! lgd.<u>` (where its consumer pushes), `SUB _INBOX.lg<u>.*` (replies to its requests) and
//! the stream's create request. Every connection asks to create the stream with the same
//! configuration: the server creates it once and answers the others with the stream it
//! has. Once that reply is in, the connection creates its durable push consumer `lg<u>`
//! (filter `lg.<u>`, deliver subject `lgd.<u>`, ack policy `all`); its reply makes the
//! connection ready ([`PeerEvent::Ready`]). Any error reply is a [`PeerEvent::Refused`].
//!
//! A send is an `HPUB lg.<to>` with reply subject `_INBOX.lg<u>.<request_id>` and a
//! `Nats-Msg-Id` header (the server's duplicate window: the counterpart of Hotline's
//! client message ids): the server answers with a PubAck once the message is stored
//! (under `sync_interval: always`, after its fsync), which is the send's
//! [`PeerEvent::SendAck`]. An error PubAck is a [`PeerEvent::Refused`].
//!
//! Deliveries arrive on `lgd.<u>` with a `$JS.ACK...` reply subject. With ack policy `all`
//! acknowledging one message acknowledges every earlier one, so the session acknowledges
//! the newest delivery once per batch of received bytes (when [`PeerSession::next_event`]
//! has parsed everything), the way Hotline's and MQTT's clients acknowledge.
//!
//! Bounds: at most [`OUTSTANDING_MAX`] publishes await their PubAck ([`PeerSession::can_send`]);
//! the consumer lets at most [`CONSUMER_ACK_PENDING_MAX`] deliveries await an ack.

use std::io::Write;

use super::nats::{parse, Item, Parsed};
use super::{read_delivery, InBuf, OutBuf, PeerError, PeerEvent, PeerSession};
use crate::payload::PayloadHeader;

/// The stream every message goes through.
pub(crate) const STREAM: &str = "LG";

/// Most publishes awaiting their PubAck on one connection.
pub(crate) const OUTSTANDING_MAX: usize = 60_000;

/// The consumer's `max_ack_pending`: deliveries unacknowledged before the server pauses it
/// (the session acknowledges after every read, so a few are pending at most).
pub(crate) const CONSUMER_ACK_PENDING_MAX: u32 = 10_000;

/// The stream's `max_consumers`: one consumer per user, and nats-server 2.15 otherwise
/// limits a stream to 1,000 consumers (`default_max_consumers`; 0 or -1 mean that default).
pub(crate) const STREAM_CONSUMERS_MAX: u32 = 1_000_000;

/// The stream's duplicate window (nats-server's default), ns.
pub(crate) const DUPLICATE_WINDOW_NS: u64 = 120_000_000_000;

/// How long the server waits for a delivery's ack before redelivering it, ns.
pub(crate) const ACK_WAIT_NS: u64 = 30_000_000_000;

/// The subscription id of the consumer's deliveries.
const SID_DELIVER: &str = "1";
/// The subscription id of replies (API answers and PubAcks).
const SID_REPLY: &str = "2";

/// The last token of the reply subjects of the set-up requests (PubAcks use the request id).
const REPLY_STREAM: &str = "stream";
const REPLY_CONSUMER: &str = "consumer";

/// What a reply on `_INBOX.lg<user>.*` answers, by its last token.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ReplyTo {
    Stream,
    Consumer,
    /// A publish: its request id.
    Request(u64),
    Unknown(String),
}

impl ReplyTo {
    fn parse(subject: &str) -> ReplyTo {
        let token = subject.rsplit('.').next().unwrap_or_default();
        match token {
            REPLY_STREAM => ReplyTo::Stream,
            REPLY_CONSUMER => ReplyTo::Consumer,
            _ => token
                .parse()
                .map_or_else(|_| ReplyTo::Unknown(token.to_owned()), ReplyTo::Request),
        }
    }
}

/// Where a connection is in its set-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The stream's create request is out.
    CreatingStream,
    /// The consumer's create request is out.
    CreatingConsumer,
    Ready,
}

/// One client connection's protocol state.
#[derive(Debug)]
pub(crate) struct NatsJsSession {
    user: u64,
    inbuf: InBuf,
    outbuf: OutBuf,
    phase: Phase,
    next_request: u64,
    /// Publishes awaiting their PubAck.
    outstanding: usize,
    /// The reply subject of the newest delivery not yet acknowledged (empty: none).
    ack_reply: String,
    /// A publish's header block, reused.
    headers: Vec<u8>,
}

impl NatsJsSession {
    /// A session for user `user`, with its login, subscriptions and stream request queued.
    pub(crate) fn new(user: u64) -> NatsJsSession {
        let mut outbuf = OutBuf::default();
        let _ = write!(
            outbuf.vec(),
            "CONNECT {{\"verbose\":false,\"pedantic\":false,\"headers\":true,\"no_responders\":true,\"name\":\"hotline-loadgen\",\"lang\":\"rust\",\"version\":\"0\",\"protocol\":1}}\r\n\
             SUB lgd.{user} {SID_DELIVER}\r\nSUB _INBOX.lg{user}.* {SID_REPLY}\r\n"
        );
        let mut session = NatsJsSession {
            user,
            inbuf: InBuf::default(),
            outbuf,
            phase: Phase::CreatingStream,
            next_request: 0,
            outstanding: 0,
            ack_reply: String::new(),
            headers: Vec::new(),
        };
        let config = format!(
            "{{\"name\":\"{STREAM}\",\"subjects\":[\"lg.>\"],\"storage\":\"file\",\"retention\":\"limits\",\"num_replicas\":1,\"max_consumers\":{STREAM_CONSUMERS_MAX},\"duplicate_window\":{DUPLICATE_WINDOW_NS}}}"
        );
        session.request(&format!("$JS.API.STREAM.CREATE.{STREAM}"), REPLY_STREAM, &config);
        session
    }

    /// Queues a request to `subject` whose answer comes to `_INBOX.lg<user>.<reply>`.
    fn request(&mut self, subject: &str, reply: &str, body: &str) {
        let user = self.user;
        let _ = write!(
            self.outbuf.vec(),
            "PUB {subject} _INBOX.lg{user}.{reply} {}\r\n{body}\r\n",
            body.len()
        );
    }

    fn create_consumer(&mut self) {
        let user = self.user;
        let config = format!(
            "{{\"stream_name\":\"{STREAM}\",\"config\":{{\"durable_name\":\"lg{user}\",\"deliver_subject\":\"lgd.{user}\",\
             \"filter_subject\":\"lg.{user}\",\"deliver_policy\":\"all\",\"ack_policy\":\"all\",\
             \"ack_wait\":{ACK_WAIT_NS},\"max_ack_pending\":{CONSUMER_ACK_PENDING_MAX}}}}}"
        );
        self.request(
            &format!("$JS.API.CONSUMER.DURABLE.CREATE.{STREAM}.lg{user}"),
            REPLY_CONSUMER,
            &config,
        );
    }

    /// A reply to `_INBOX.lg<user>.<token>`: a set-up answer or a PubAck.
    fn on_reply(&mut self, to: ReplyTo, outcome: Result<(), String>) -> Result<Option<PeerEvent>, PeerError> {
        match (to, self.phase) {
            (ReplyTo::Stream, Phase::CreatingStream) => match outcome {
                Ok(()) => {
                    self.phase = Phase::CreatingConsumer;
                    self.create_consumer();
                    Ok(None)
                }
                Err(why) => Ok(Some(PeerEvent::Refused(format!("stream create: {why}")))),
            },
            (ReplyTo::Consumer, Phase::CreatingConsumer) => match outcome {
                Ok(()) => {
                    self.phase = Phase::Ready;
                    Ok(Some(PeerEvent::Ready))
                }
                Err(why) => Ok(Some(PeerEvent::Refused(format!("consumer create: {why}")))),
            },
            (ReplyTo::Request(request_id), Phase::Ready) => {
                if request_id >= self.next_request || self.outstanding == 0 {
                    return Err(PeerError(format!("a PubAck for request {request_id}, never sent")));
                }
                self.outstanding -= 1;
                Ok(Some(match outcome {
                    Ok(()) => PeerEvent::SendAck { request_id },
                    Err(why) => PeerEvent::Refused(format!("publish: {why}")),
                }))
            }
            (to, phase) => Err(PeerError(format!("a reply to {to:?} while {phase:?}"))),
        }
    }

    /// Queues the acknowledgement of the newest delivery, if any.
    fn flush_ack(&mut self) {
        if self.ack_reply.is_empty() {
            return;
        }
        let _ = write!(self.outbuf.vec(), "PUB {} 0\r\n\r\n", self.ack_reply);
        self.ack_reply.clear();
    }
}

impl PeerSession for NatsJsSession {
    fn outbound(&self) -> &[u8] {
        self.outbuf.as_slice()
    }

    fn consume_outbound(&mut self, n: usize) {
        self.outbuf.consume(n);
    }

    fn receive(&mut self, bytes: &[u8]) {
        self.inbuf.extend(bytes);
    }

    fn next_event(&mut self) -> Result<Option<PeerEvent>, PeerError> {
        loop {
            let (item, used) = match parse(self.inbuf.pending())? {
                Parsed::Incomplete => {
                    self.inbuf.check_bound()?;
                    self.flush_ack();
                    return Ok(None);
                }
                Parsed::Item(item, used) => (item, used),
            };
            let event = match item {
                Item::Msg(msg) => {
                    let buf = self.inbuf.pending();
                    let fields = msg.fields(buf);
                    let (headers, payload) = (&buf[msg.headers.clone()], &buf[msg.payload.clone()]);
                    match fields.sid {
                        SID_DELIVER => {
                            let reply = fields.reply.unwrap_or_default();
                            if !reply.starts_with("$JS.ACK.") {
                                return Err(PeerError(format!("a delivery without an ack subject: {reply:?}")));
                            }
                            self.ack_reply.clear();
                            self.ack_reply.push_str(reply);
                            Some(read_delivery(payload))
                        }
                        SID_REPLY => {
                            let to = ReplyTo::parse(fields.subject);
                            let outcome = reply_outcome(headers, payload);
                            self.inbuf.consume(used);
                            match self.on_reply(to, outcome)? {
                                Some(event) => return Ok(Some(event)),
                                None => continue,
                            }
                        }
                        sid => return Err(PeerError(format!("a message for unknown subscription {sid:?}"))),
                    }
                }
                Item::Ping => {
                    self.outbuf.push(b"PONG\r\n");
                    None
                }
                Item::Pong | Item::Ignored => None,
                Item::Err(why) => Some(PeerEvent::Refused(why)),
            };
            self.inbuf.consume(used);
            if event.is_some() {
                return Ok(event);
            }
        }
    }

    fn can_send(&self) -> bool {
        self.phase == Phase::Ready && self.outstanding < OUTSTANDING_MAX
    }

    fn send(&mut self, to: u64, payload: &[u8]) -> Option<u64> {
        let request_id = self.next_request;
        self.next_request += 1;
        self.outstanding += 1;
        let nonce = PayloadHeader::read(payload).map_or(0, |h| h.run_nonce);
        let user = self.user;
        self.headers.clear();
        let _ = write!(
            self.headers,
            "NATS/1.0\r\nNats-Msg-Id: {nonce:x}.{user}.{request_id}\r\n\r\n"
        );
        let out = self.outbuf.vec();
        let _ = write!(
            out,
            "HPUB lg.{to} _INBOX.lg{user}.{request_id} {} {}\r\n",
            self.headers.len(),
            self.headers.len() + payload.len()
        );
        out.extend_from_slice(&self.headers);
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\r\n");
        Some(request_id)
    }
}

/// Whether a JetStream reply (API answer or PubAck) says success; else the server's words.
/// A status header (`NATS/1.0 503`: no responders, JetStream is off) is a failure too.
fn reply_outcome(headers: &[u8], body: &[u8]) -> Result<(), String> {
    if let Some(status) = headers.strip_prefix(b"NATS/1.0") {
        let status = String::from_utf8_lossy(status.split(|&b| b == b'\r').next().unwrap_or_default());
        let status = status.trim();
        if !status.is_empty() {
            return Err(if status.starts_with("503") {
                "no responders (is JetStream enabled on the server?)".to_owned()
            } else {
                format!("status {status}")
            });
        }
    }
    // The common case, a PubAck, is decided without parsing it.
    if !body.windows(7).any(|w| w == b"\"error\"") {
        return Ok(());
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("a reply that is not JSON ({e}): {body:?}"))?;
    match value.get("error") {
        None => Ok(()),
        Some(error) => Err(error
            .get("description")
            .and_then(|d| d.as_str())
            .map_or_else(|| error.to_string(), str::to_owned)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::write_sender;

    fn payload(seq: u64, sender: u64) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        PayloadHeader {
            run_nonce: 9,
            scheduled_ns: 100,
            seq,
        }
        .write(&mut p);
        write_sender(&mut p, sender);
        p
    }

    fn take_out(s: &mut NatsJsSession) -> String {
        let out = String::from_utf8(s.outbound().to_vec()).expect("text");
        s.consume_outbound(out.len());
        out
    }

    fn reply(s: &mut NatsJsSession, user: u64, token: &str, body: &str) {
        s.receive(format!("MSG _INBOX.lg{user}.{token} 2 {}\r\n{body}\r\n", body.len()).as_bytes());
    }

    /// A session past its set-up.
    fn ready(user: u64) -> NatsJsSession {
        let mut s = NatsJsSession::new(user);
        take_out(&mut s);
        reply(
            &mut s,
            user,
            "stream",
            "{\"type\":\"io.nats.jetstream.api.v1.stream_create_response\"}",
        );
        reply(&mut s, user, "consumer", "{\"name\":\"lg3\"}");
        assert_eq!(s.next_event(), Ok(Some(PeerEvent::Ready)));
        take_out(&mut s);
        s
    }

    #[test]
    fn set_up_creates_the_stream_then_the_consumer_and_only_then_is_ready() {
        let mut s = NatsJsSession::new(3);
        assert!(!s.can_send(), "not before the consumer exists");
        let out = take_out(&mut s);
        assert!(out.starts_with("CONNECT {"), "{out}");
        assert!(out.contains("\"headers\":true"), "{out}");
        assert!(
            out.contains("\r\nSUB lgd.3 1\r\nSUB _INBOX.lg3.* 2\r\nPUB $JS.API.STREAM.CREATE.LG _INBOX.lg3.stream ")
        );
        assert!(out.contains("\"storage\":\"file\""), "{out}");
        assert!(
            out.contains("\"max_consumers\":1000000"),
            "one consumer per user, past 2.15's default 1,000: {out}"
        );
        reply(&mut s, 3, "stream", "{\"config\":{\"name\":\"LG\"}}");
        assert_eq!(s.next_event(), Ok(None));
        let out = take_out(&mut s);
        assert!(
            out.starts_with("PUB $JS.API.CONSUMER.DURABLE.CREATE.LG.lg3 _INBOX.lg3.consumer "),
            "{out}"
        );
        assert!(out.contains("\"filter_subject\":\"lg.3\""), "{out}");
        assert!(out.contains("\"deliver_subject\":\"lgd.3\""), "{out}");
        assert!(out.contains("\"ack_policy\":\"all\""), "{out}");
        reply(&mut s, 3, "consumer", "{\"name\":\"lg3\"}");
        assert_eq!(s.next_event(), Ok(Some(PeerEvent::Ready)));
        assert!(s.can_send());
    }

    #[test]
    fn a_set_up_error_is_a_refusal_in_the_servers_words() {
        let mut s = NatsJsSession::new(1);
        reply(
            &mut s,
            1,
            "stream",
            "{\"error\":{\"code\":400,\"err_code\":10058,\"description\":\"stream name already in use with a different configuration\"}}",
        );
        assert_eq!(
            s.next_event(),
            Ok(Some(PeerEvent::Refused(
                "stream create: stream name already in use with a different configuration".to_owned()
            )))
        );
        let mut s = NatsJsSession::new(1);
        s.receive(b"HMSG _INBOX.lg1.stream 2 16 16\r\nNATS/1.0 503\r\n\r\n\r\n");
        assert!(matches!(s.next_event(), Ok(Some(PeerEvent::Refused(why))) if why.contains("JetStream enabled")));
    }

    #[test]
    fn a_publish_carries_a_message_id_and_its_puback_acknowledges_it() {
        let mut s = ready(3);
        let p = payload(1, 3);
        assert_eq!(s.send(4, &p), Some(0));
        assert_eq!(s.send(4, &p), Some(1));
        let out = s.outbound().to_vec();
        let head = b"HPUB lg.4 _INBOX.lg3.0 32 72\r\nNATS/1.0\r\nNats-Msg-Id: 9.3.0\r\n\r\n";
        assert_eq!(&out[..head.len()], head, "{}", String::from_utf8_lossy(&out));
        assert_eq!(&out[head.len()..head.len() + 40], &p[..]);
        reply(&mut s, 3, "1", "{\"stream\":\"LG\",\"seq\":2}");
        reply(&mut s, 3, "0", "{\"stream\":\"LG\",\"seq\":1}");
        assert_eq!(s.next_event(), Ok(Some(PeerEvent::SendAck { request_id: 1 })));
        assert_eq!(s.next_event(), Ok(Some(PeerEvent::SendAck { request_id: 0 })));
        assert_eq!(s.next_event(), Ok(None));
        reply(&mut s, 3, "7", "{\"stream\":\"LG\",\"seq\":3}");
        assert!(s.next_event().is_err(), "an ack for a request never made");
    }

    #[test]
    fn an_error_puback_is_a_refusal_and_frees_its_slot() {
        let mut s = ready(3);
        s.send(4, &payload(1, 3));
        reply(
            &mut s,
            3,
            "0",
            "{\"error\":{\"code\":503,\"description\":\"resource limits exceeded\"}}",
        );
        assert_eq!(
            s.next_event(),
            Ok(Some(PeerEvent::Refused("publish: resource limits exceeded".to_owned())))
        );
        assert_eq!(s.outstanding, 0);
    }

    #[test]
    fn deliveries_split_across_reads_arrive_whole_and_the_newest_is_acked_once_per_read() {
        let mut s = ready(1);
        let mut wire = Vec::new();
        for (seq, dseq) in [(5, 1), (6, 2)] {
            let headers = "NATS/1.0\r\nNats-Msg-Id: a.2.0\r\n\r\n";
            let p = payload(seq, 2);
            let _ = write!(
                wire,
                "HMSG lgd.1 1 $JS.ACK.LG.lg1.1.{seq}.{dseq}.1700000000.0 {} {}\r\n{headers}",
                headers.len(),
                headers.len() + p.len()
            );
            wire.extend_from_slice(&p);
            wire.extend_from_slice(b"\r\n");
        }
        let mut seqs = Vec::new();
        for b in &wire {
            s.receive(std::slice::from_ref(b));
            while let Some(ev) = s.next_event().expect("valid") {
                match ev {
                    PeerEvent::Deliver { sender, header } => {
                        assert_eq!(sender, 2);
                        seqs.push(header.expect("a header").seq);
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
        assert_eq!(seqs, [5, 6]);
        let out = take_out(&mut s);
        assert!(
            out.ends_with("PUB $JS.ACK.LG.lg1.1.6.2.1700000000.0 0\r\n\r\n"),
            "{out}"
        );
        // Fed whole, two deliveries cost one ack: the newest.
        s.receive(&wire);
        while s.next_event().expect("valid").is_some() {}
        assert_eq!(take_out(&mut s), "PUB $JS.ACK.LG.lg1.1.6.2.1700000000.0 0\r\n\r\n");
    }

    #[test]
    fn a_delivery_without_an_ack_subject_is_a_protocol_error() {
        let mut s = ready(1);
        s.receive(b"MSG lgd.1 1 3\r\nabc\r\n");
        assert!(s.next_event().is_err());
    }
}
