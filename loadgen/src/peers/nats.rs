//! Core NATS: the text protocol over TCP (`INFO`, `CONNECT`, `PING`/`PONG`, `SUB`, `PUB`,
//! `MSG`, `+OK`, `-ERR`), with `verbose` and `pedantic` off, so the server answers nothing
//! per `PUB`.
//!
//! A connection pipelines `CONNECT`, `SUB lg.<user> 1` and `PING`; the `PONG` answering that
//! `PING` means the subscription is in place ([`PeerEvent::Ready`]). A message to user `u`
//! is `PUB lg.<u>`. Core NATS acknowledges no publish (at-most-once): [`NatsSession::send`]
//! returns `None`. The server's `PING`s are answered with `PONG`.
//!
//! Parsing state: an [`InBuf`]; a `MSG` is taken only once its whole payload and the
//! `\r\n` after it are in, so a payload split over reads waits for the rest.

use std::io::Write;
use std::ops::Range;

use super::{read_delivery, InBuf, OutBuf, PeerError, PeerEvent, PeerSession};

/// Longest control line (`INFO` is the long one, a few hundred bytes).
pub(crate) const LINE_BYTES_MAX: usize = 64 << 10;

/// The subscription id every connection uses for its one subscription.
const SID: &str = "1";

/// One client connection's protocol state.
#[derive(Debug)]
pub(crate) struct NatsSession {
    inbuf: InBuf,
    outbuf: OutBuf,
    /// The initial `PONG` (which makes the connection ready) has arrived.
    ready: bool,
}

impl NatsSession {
    /// A session for user `user`, with its login and subscription queued.
    pub(crate) fn new(user: u64) -> NatsSession {
        let mut outbuf = OutBuf::default();
        let _ = write!(
            outbuf.vec(),
            "CONNECT {{\"verbose\":false,\"pedantic\":false,\"name\":\"hotline-loadgen\",\"lang\":\"rust\",\"version\":\"0\",\"protocol\":1}}\r\nSUB lg.{user} {SID}\r\nPING\r\n"
        );
        NatsSession {
            inbuf: InBuf::default(),
            outbuf,
            ready: false,
        }
    }
}

impl PeerSession for NatsSession {
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
                    return Ok(None);
                }
                Parsed::Item(item, used) => (item, used),
            };
            let event = match item {
                Item::Msg(msg) => Some(read_delivery(&self.inbuf.pending()[msg.payload])),
                Item::Ping => {
                    self.outbuf.push(b"PONG\r\n");
                    None
                }
                Item::Pong if !self.ready => {
                    self.ready = true;
                    Some(PeerEvent::Ready)
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

    fn send(&mut self, to: u64, payload: &[u8]) -> Option<u64> {
        let out = self.outbuf.vec();
        let _ = write!(out, "PUB lg.{to} {}\r\n", payload.len());
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\r\n");
        None
    }
}

/// One protocol item from the server.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Item {
    Ping,
    Pong,
    Err(String),
    /// A `MSG` or `HMSG`.
    Msg(Msg),
    /// `INFO`, `+OK`.
    Ignored,
}

/// Where a `MSG` (or `HMSG`) lies in the parsed buffer.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Msg {
    /// The control line, without its `\r\n`.
    pub line: Range<usize>,
    /// The header block (`NATS/1.0 ...\r\n...\r\n\r\n`; empty for a `MSG`).
    pub headers: Range<usize>,
    /// The payload, after the headers.
    pub payload: Range<usize>,
}

/// The fields of a `MSG` or `HMSG` control line.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct MsgLine<'a> {
    pub subject: &'a str,
    pub sid: &'a str,
    pub reply: Option<&'a str>,
}

impl Msg {
    /// The subject, subscription id and reply subject of this message in `buf`.
    pub(super) fn fields<'a>(&self, buf: &'a [u8]) -> MsgLine<'a> {
        // parse() checked that the line is UTF-8 with 4 to 6 words.
        let text = std::str::from_utf8(&buf[self.line.clone()]).unwrap_or_default();
        let (words, n) = msg_words(text);
        let sizes = if words[0] == "HMSG" { 2 } else { 1 };
        MsgLine {
            subject: words[1],
            sid: words[2],
            reply: (n == 4 + sizes).then_some(words[3]),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Parsed {
    Incomplete,
    /// An item and the bytes it took.
    Item(Item, usize),
}

/// Parses the first item of `buf`.
pub(super) fn parse(buf: &[u8]) -> Result<Parsed, PeerError> {
    let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() > LINE_BYTES_MAX {
            return Err(PeerError(format!("a NATS line longer than {LINE_BYTES_MAX} bytes")));
        }
        return Ok(Parsed::Incomplete);
    };
    let line = &buf[..eol];
    let after = eol + 2;
    let word_end = line.iter().position(|&b| b == b' ' || b == b'\t').unwrap_or(line.len());
    let op = line[..word_end].to_ascii_uppercase();
    let item = match op.as_slice() {
        b"PING" => Item::Ping,
        b"PONG" => Item::Pong,
        b"INFO" | b"+OK" => Item::Ignored,
        b"-ERR" => Item::Err(String::from_utf8_lossy(&line[word_end..]).trim().to_owned()),
        b"MSG" | b"HMSG" => return parse_msg(buf, eol, op == b"HMSG"),
        other => {
            return Err(PeerError(format!(
                "unknown NATS operation {:?}",
                String::from_utf8_lossy(other)
            )))
        }
    };
    Ok(Parsed::Item(item, after))
}

/// `MSG <subject> <sid> [reply-to] <#bytes>` or
/// `HMSG <subject> <sid> [reply-to] <#header bytes> <#total bytes>`, its control line
/// ending at `eol`.
fn parse_msg(buf: &[u8], eol: usize, with_headers: bool) -> Result<Parsed, PeerError> {
    let text = std::str::from_utf8(&buf[..eol]).map_err(|_| PeerError("a MSG line is not UTF-8".to_owned()))?;
    let (words, n) = msg_words(text);
    let sizes = if with_headers { 2 } else { 1 };
    if n != 3 + sizes && n != 4 + sizes {
        return Err(PeerError(format!("a MSG line with {n} words: {text:?}")));
    }
    let number = |word: &str| -> Result<usize, PeerError> {
        word.parse()
            .map_err(|_| PeerError(format!("a MSG line with a bad size: {text:?}")))
    };
    let total = number(words[n - 1])?;
    let headers = if with_headers { number(words[n - 2])? } else { 0 };
    if headers > total {
        return Err(PeerError(format!("a HMSG with more header bytes than bytes: {text:?}")));
    }
    let start = eol + 2;
    let end = start + total + 2;
    if buf.len() < end {
        return Ok(Parsed::Incomplete);
    }
    if &buf[start + total..end] != b"\r\n" {
        return Err(PeerError("a MSG payload not followed by CRLF".to_owned()));
    }
    let msg = Msg {
        line: 0..eol,
        headers: start..start + headers,
        payload: start + headers..start + total,
    };
    Ok(Parsed::Item(Item::Msg(msg), end))
}

/// The words of a `MSG`/`HMSG` line (at most 6) and how many there were (7: more than 6),
/// without allocating.
fn msg_words(text: &str) -> ([&str; 6], usize) {
    let mut words = [""; 6];
    let mut n = 0;
    for word in text.split_ascii_whitespace() {
        if n == words.len() {
            return (words, n + 1);
        }
        words[n] = word;
        n += 1;
    }
    (words, n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::PayloadHeader;
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

    #[test]
    fn the_login_subscribes_and_pings_and_the_pong_makes_it_ready() {
        let mut s = NatsSession::new(7);
        let out = String::from_utf8(s.outbound().to_vec()).expect("text");
        assert!(out.starts_with("CONNECT {\"verbose\":false,\"pedantic\":false"));
        assert!(out.ends_with("\r\nSUB lg.7 1\r\nPING\r\n"));
        s.consume_outbound(out.len());
        s.receive(b"INFO {\"server_id\":\"x\"}\r\nPI");
        assert_eq!(s.next_event(), Ok(None));
        s.receive(b"NG\r\nPONG\r\n");
        assert_eq!(s.next_event(), Ok(Some(PeerEvent::Ready)));
        assert_eq!(s.outbound(), b"PONG\r\n", "the server's PING is answered");
    }

    #[test]
    fn a_msg_split_across_reads_is_delivered_once_whole() {
        let mut s = NatsSession::new(1);
        let p = payload(5, 2);
        let mut wire = format!("MSG lg.1 1 {}\r\n", p.len()).into_bytes();
        wire.extend_from_slice(&p);
        wire.extend_from_slice(b"\r\nMSG lg.1 1 reply.x 40\r\n");
        wire.extend_from_slice(&payload(6, 2));
        wire.extend_from_slice(b"\r\n");
        // Byte by byte: every split point, including inside the payload and its CRLF.
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
    }

    #[test]
    fn publishes_go_to_the_recipients_subject_unacknowledged() {
        let mut s = NatsSession::new(1);
        let n = s.outbound().len();
        s.consume_outbound(n);
        assert_eq!(s.send(4, b"abc"), None);
        assert_eq!(s.outbound(), b"PUB lg.4 3\r\nabc\r\n");
    }

    #[test]
    fn errors_are_refusals_and_garbage_is_a_protocol_error() {
        let mut s = NatsSession::new(1);
        s.receive(b"-ERR 'Authorization Violation'\r\n");
        assert_eq!(
            s.next_event(),
            Ok(Some(PeerEvent::Refused("'Authorization Violation'".to_owned())))
        );
        s.receive(b"HELLO\r\n");
        assert!(s.next_event().is_err());
        let mut s = NatsSession::new(1);
        s.receive(b"MSG lg.1 1 3\r\nabcXY");
        assert!(s.next_event().is_err(), "a payload must end in CRLF");
    }
}
