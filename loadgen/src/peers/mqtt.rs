//! MQTT 3.1.1 at QoS 1 (what Mosquitto speaks): `CONNECT`/`CONNACK`,
//! `SUBSCRIBE`/`SUBACK`, `PUBLISH` with `PUBACK` in both directions.
//!
//! A connection pipelines `CONNECT` (client id `lg<user>`, clean session off so the broker
//! keeps the subscription and queues QoS 1 messages while the client is away, keep-alive
//! off) and `SUBSCRIBE lg/<user>` at QoS 1; the `SUBACK` granting QoS 1 makes it ready. A
//! message to user `u` is `PUBLISH lg/<u>` at QoS 1; the broker's `PUBACK` acknowledges it.
//! Every `PUBLISH` received at QoS 1 is acknowledged at once.
//!
//! Packet ids: sends are numbered by a 64-bit request id; the packet id is
//! `request_id % 65535 + 1` (never 0). `outstanding` keeps the unacknowledged sends in
//! order, at most [`OUTSTANDING_MAX`], so a packet id is never reused while in flight.

use std::collections::VecDeque;

use super::{read_delivery, InBuf, OutBuf, PeerError, PeerEvent, PeerSession};

/// Largest packet the session accepts (Mosquitto's default `message_size_limit` is 256 MB;
/// the load generator's messages are small).
pub(crate) const PACKET_BYTES_MAX: usize = 1 << 20;

/// Most sends awaiting `PUBACK`: under the 65,535 packet ids.
pub(crate) const OUTSTANDING_MAX: usize = 60_000;

const _: () = assert!(
    OUTSTANDING_MAX < u16::MAX as usize,
    "packet ids are not reused in flight"
);

/// The packet id of the one `SUBSCRIBE`.
const SUBSCRIBE_ID: u16 = 1;

const CONNECT: u8 = 1;
const CONNACK: u8 = 2;
const PUBLISH: u8 = 3;
const PUBACK: u8 = 4;
const SUBSCRIBE: u8 = 8;
const SUBACK: u8 = 9;
const PINGRESP: u8 = 13;

/// One client connection's protocol state.
#[derive(Debug)]
pub(crate) struct MqttSession {
    inbuf: InBuf,
    outbuf: OutBuf,
    next_request: u64,
    /// Sends awaiting `PUBACK`, oldest first: (packet id, request id).
    outstanding: VecDeque<(u16, u64)>,
}

impl MqttSession {
    /// A session for user `user`, with its `CONNECT` and `SUBSCRIBE` queued.
    pub(crate) fn new(user: u64) -> MqttSession {
        let mut outbuf = OutBuf::default();
        let client_id = format!("lg{user}");
        let mut body = Vec::new();
        put_str(&mut body, "MQTT");
        body.push(4); // protocol level 3.1.1
        body.push(0); // flags: clean session off, no will, no credentials
        body.extend_from_slice(&0u16.to_be_bytes()); // keep-alive off
        put_str(&mut body, &client_id);
        put_packet(outbuf.vec(), CONNECT << 4, &body);
        let mut body = SUBSCRIBE_ID.to_be_bytes().to_vec();
        put_str(&mut body, &format!("lg/{user}"));
        body.push(1); // QoS 1
        put_packet(outbuf.vec(), SUBSCRIBE << 4 | 0b0010, &body);
        MqttSession {
            inbuf: InBuf::default(),
            outbuf,
            next_request: 0,
            outstanding: VecDeque::new(),
        }
    }
}

impl PeerSession for MqttSession {
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
            let buf = self.inbuf.pending();
            let Some((header, body)) = split_packet(buf)? else {
                self.inbuf.check_bound()?;
                return Ok(None);
            };
            let used = body.end;
            let body = &buf[body];
            let event = match header >> 4 {
                CONNACK => match body {
                    [_, 0] => None,
                    [_, code] => Some(PeerEvent::Refused(format!("CONNACK return code {code}"))),
                    _ => return Err(PeerError("a CONNACK that is not 2 bytes".to_owned())),
                },
                SUBACK => match body.get(2) {
                    Some(0x80) | None => Some(PeerEvent::Refused("SUBACK refused the subscription".to_owned())),
                    Some(_) => Some(PeerEvent::Ready),
                },
                PUBACK => {
                    let id = packet_id(body)?;
                    let at = self.outstanding.iter().position(|&(p, _)| p == id);
                    at.and_then(|at| self.outstanding.remove(at))
                        .map(|(_, request_id)| PeerEvent::SendAck { request_id })
                }
                PUBLISH => {
                    let qos = (header >> 1) & 0b11;
                    let topic_len = usize::from(packet_id(body)?);
                    let mut at = 2 + topic_len;
                    let mut ack = None;
                    if qos > 0 {
                        ack = Some(packet_id(body.get(at..).unwrap_or_default())?);
                        at += 2;
                    }
                    let payload = body
                        .get(at..)
                        .ok_or_else(|| PeerError("a PUBLISH shorter than its topic".to_owned()))?;
                    let delivery = read_delivery(payload);
                    if let Some(id) = ack {
                        put_packet(self.outbuf.vec(), PUBACK << 4, &id.to_be_bytes());
                    }
                    Some(delivery)
                }
                PINGRESP => None,
                other => return Err(PeerError(format!("unexpected MQTT packet type {other}"))),
            };
            self.inbuf.consume(used);
            if event.is_some() {
                return Ok(event);
            }
        }
    }

    fn can_send(&self) -> bool {
        self.outstanding.len() < OUTSTANDING_MAX
    }

    fn send(&mut self, to: u64, payload: &[u8]) -> Option<u64> {
        debug_assert!(self.can_send(), "the worker asks first");
        let request_id = self.next_request;
        self.next_request += 1;
        let id = (request_id % u64::from(u16::MAX)) as u16 + 1;
        self.outstanding.push_back((id, request_id));
        let topic = format!("lg/{to}");
        let remaining = 2 + topic.len() + 2 + payload.len();
        let out = self.outbuf.vec();
        out.push(PUBLISH << 4 | 0b0010);
        put_remaining_length(out, remaining);
        put_str(out, &topic);
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(payload);
        Some(request_id)
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_packet(out: &mut Vec<u8>, header: u8, body: &[u8]) {
    out.push(header);
    put_remaining_length(out, body.len());
    out.extend_from_slice(body);
}

/// The remaining-length varint: 7 bits a byte, least significant first, at most 4 bytes.
pub(crate) fn put_remaining_length(out: &mut Vec<u8>, mut len: usize) {
    assert!(len < 1 << 28, "MQTT packets are under 256 MB");
    loop {
        let byte = (len % 128) as u8;
        len /= 128;
        if len == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// The first packet of `buf`: its header byte and the range of its body, or `None` until
/// the whole packet is in.
fn split_packet(buf: &[u8]) -> Result<Option<(u8, std::ops::Range<usize>)>, PeerError> {
    let Some(&header) = buf.first() else { return Ok(None) };
    let mut len = 0usize;
    for i in 0..4 {
        let Some(&byte) = buf.get(1 + i) else { return Ok(None) };
        len |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if len > PACKET_BYTES_MAX {
                return Err(PeerError(format!(
                    "an MQTT packet of {len} bytes (at most {PACKET_BYTES_MAX})"
                )));
            }
            let start = 2 + i;
            return Ok((buf.len() >= start + len).then_some((header, start..start + len)));
        }
    }
    Err(PeerError("an MQTT remaining length over 4 bytes".to_owned()))
}

fn packet_id(body: &[u8]) -> Result<u16, PeerError> {
    match body {
        [a, b, ..] => Ok(u16::from_be_bytes([*a, *b])),
        _ => Err(PeerError("an MQTT packet too short for its id".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::PayloadHeader;
    use crate::peers::write_sender;

    #[test]
    fn remaining_lengths_use_one_to_four_bytes() {
        for (len, wire) in [
            (0, vec![0x00]),
            (127, vec![0x7f]),
            (128, vec![0x80, 0x01]),
            (16_383, vec![0xff, 0x7f]),
            (16_384, vec![0x80, 0x80, 0x01]),
            (2_097_152, vec![0x80, 0x80, 0x80, 0x01]),
        ] {
            let mut out = Vec::new();
            put_remaining_length(&mut out, len);
            assert_eq!(out, wire, "{len}");
        }
        // A body of 200 bytes behind a 2-byte length: incomplete until the last byte.
        let mut packet = vec![PUBACK << 4];
        put_remaining_length(&mut packet, 200);
        packet.extend(std::iter::repeat_n(0, 200));
        assert_eq!(split_packet(&packet[..1]), Ok(None));
        assert_eq!(split_packet(&packet[..2]), Ok(None));
        assert_eq!(split_packet(&packet[..202]), Ok(None));
        assert_eq!(split_packet(&packet), Ok(Some((PUBACK << 4, 3..203))));
        assert!(
            split_packet(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]).is_err(),
            "5 length bytes"
        );
    }

    #[test]
    fn the_login_pipelines_connect_and_subscribe_and_the_suback_makes_it_ready() {
        let mut s = MqttSession::new(12);
        let out = s.outbound().to_vec();
        assert_eq!(&out[..2], &[0x10, 16]);
        assert_eq!(&out[2..10], b"\0\x04MQTT\x04\x00");
        assert_eq!(&out[14..18], b"lg12");
        assert_eq!(&out[18..], b"\x82\x0a\x00\x01\x00\x05lg/12\x01");
        s.consume_outbound(out.len());
        s.receive(&[0x20, 2, 0, 0, 0x90, 3, 0]);
        assert_eq!(s.next_event(), Ok(None), "CONNACK is quiet; the SUBACK is not whole");
        s.receive(&[1, 1]);
        assert_eq!(s.next_event(), Ok(Some(PeerEvent::Ready)));
        let mut s = MqttSession::new(1);
        s.receive(&[0x20, 2, 0, 5]);
        assert!(matches!(s.next_event(), Ok(Some(PeerEvent::Refused(_)))));
    }

    #[test]
    fn a_publish_split_across_reads_is_delivered_and_acknowledged() {
        let mut sender = MqttSession::new(3);
        let n = sender.outbound().len();
        sender.consume_outbound(n);
        let mut payload = vec![0u8; 140];
        PayloadHeader {
            run_nonce: 1,
            scheduled_ns: 2,
            seq: 8,
        }
        .write(&mut payload);
        write_sender(&mut payload, 3);
        assert_eq!(sender.send(4, &payload), Some(0));
        let wire = sender.outbound().to_vec();
        assert_eq!(
            &wire[..3],
            &[0x32, 0x80 | 20, 1],
            "148 = 20 + 128: a 2-byte remaining length"
        );
        // The broker forwards it as is (same packet id, as it happens).
        let mut recipient = MqttSession::new(4);
        let n = recipient.outbound().len();
        recipient.consume_outbound(n);
        for b in &wire[..wire.len() - 1] {
            recipient.receive(std::slice::from_ref(b));
            assert_eq!(recipient.next_event(), Ok(None));
        }
        recipient.receive(&wire[wire.len() - 1..]);
        match recipient.next_event() {
            Ok(Some(PeerEvent::Deliver { sender, header })) => {
                assert_eq!(sender, 3);
                assert_eq!(header.map(|h| h.seq), Some(8));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(recipient.outbound(), &[0x40, 2, 0, 1], "PUBACK for packet id 1");
        sender.receive(&[0x40, 2, 0, 1]);
        assert_eq!(sender.next_event(), Ok(Some(PeerEvent::SendAck { request_id: 0 })));
        sender.receive(&[0x40, 2, 0, 1]);
        assert_eq!(sender.next_event(), Ok(None), "a repeated PUBACK acknowledges nothing");
    }

    #[test]
    fn packet_ids_wrap_without_zero() {
        let mut s = MqttSession::new(1);
        s.next_request = u64::from(u16::MAX) - 1;
        s.send(2, b"x");
        s.send(2, b"x");
        assert_eq!(s.outstanding, [(u16::MAX, 65_534), (1, 65_535)]);
    }
}
