//! XMPP client streams (RFC 6120/6121), as ejabberd serves them on plain TCP: stream open,
//! SASL PLAIN, stream restart, resource binding, the legacy session if advertised (and not
//! `<optional/>`), initial presence, then `<message type='chat'>` stanzas whose `<body>` is
//! the payload in hex.
//!
//! A connection logs in as `lg<user>@DOMAIN` with password `lg<user>` (the compare script
//! registers those users). After `<success/>` it pipelines bind, session, presence and an
//! `iq` with id `ready`: the server handles a stream's stanzas in order, so the answer to
//! `ready` (a result or an error, whichever the server's modules give) means presence is
//! in and messages to the user reach this connection ([`PeerEvent::Ready`]). Plain message
//! stanzas are not acknowledged: [`XmppSession::send`] returns `None`.
//!
//! State: [`Stage`] (where the login is), the [`XmlStream`] reading the server's stream.

use base64::Engine;

use super::xml::{escape, StreamItem, XmlStream};
use super::{read_delivery, OutBuf, PeerError, PeerEvent, PeerSession};

/// The id of the `iq` whose answer says the connection is ready.
const READY_IQ_ID: &str = "ready";

/// Where a connection's login is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Stream opened; waiting for the features that offer SASL mechanisms.
    AwaitingMechanisms,
    /// `<auth mechanism='PLAIN'>` sent; waiting for `<success/>`.
    Authenticating,
    /// Stream restarted; waiting for the features that offer resource binding.
    AwaitingBind,
    /// Bind, session, presence and the `ready` iq sent; waiting for the `ready` answer.
    Binding,
    /// Logged in, available, receiving messages.
    Ready,
}

/// One client connection's protocol state.
#[derive(Debug)]
pub(crate) struct XmppSession {
    user: u64,
    domain: String,
    stage: Stage,
    xml: XmlStream,
    outbuf: OutBuf,
    /// Hex of one payload (reused per send).
    hex: String,
}

impl XmppSession {
    /// A session for `lg<user>@domain`, with its stream header queued.
    pub(crate) fn new(user: u64, domain: &str) -> XmppSession {
        let mut s = XmppSession {
            user,
            domain: domain.to_owned(),
            stage: Stage::AwaitingMechanisms,
            xml: XmlStream::default(),
            outbuf: OutBuf::default(),
            hex: String::new(),
        };
        s.open_stream();
        s
    }

    fn open_stream(&mut self) {
        let header = format!(
            "<?xml version='1.0'?><stream:stream to='{}' xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
            escape(&self.domain)
        );
        self.outbuf.push(header.as_bytes());
    }

    fn on_stanza(&mut self, stanza: super::xml::Element) -> Result<Option<PeerEvent>, PeerError> {
        match (stanza.name.as_str(), self.stage) {
            ("stream:features", Stage::AwaitingMechanisms) => {
                let plain = stanza
                    .child("mechanisms")
                    .is_some_and(|m| m.children.iter().any(|c| c.text.trim() == "PLAIN"));
                if !plain {
                    return Ok(Some(PeerEvent::Refused("the server offers no SASL PLAIN".to_owned())));
                }
                let name = format!("lg{}", self.user);
                let credentials = base64::engine::general_purpose::STANDARD.encode(format!("\0{name}\0{name}"));
                let auth =
                    format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{credentials}</auth>");
                self.outbuf.push(auth.as_bytes());
                self.stage = Stage::Authenticating;
            }
            ("success", Stage::Authenticating) => {
                self.xml.restart();
                self.open_stream();
                self.stage = Stage::AwaitingBind;
            }
            ("failure", _) => {
                let why = stanza.children.first().map_or("?", |c| c.name.as_str());
                return Ok(Some(PeerEvent::Refused(format!("SASL failure: {why}"))));
            }
            ("stream:features", Stage::AwaitingBind) => {
                if stanza.child("bind").is_none() {
                    return Ok(Some(PeerEvent::Refused(
                        "the server offers no resource binding".to_owned(),
                    )));
                }
                let mut out = String::from(
                    "<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
                     <resource>lg</resource></bind></iq>",
                );
                if stanza.child("session").is_some_and(|s| s.child("optional").is_none()) {
                    out.push_str(
                        "<iq type='set' id='session'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>",
                    );
                }
                out.push_str("<presence/>");
                out.push_str(&format!(
                    "<iq type='get' id='{READY_IQ_ID}' to='{}'><ping xmlns='urn:xmpp:ping'/></iq>",
                    escape(&self.domain)
                ));
                self.outbuf.push(out.as_bytes());
                self.stage = Stage::Binding;
            }
            ("iq", _) => {
                let id = stanza.attr("id").unwrap_or_default();
                if stanza.attr("type") == Some("error") && (id == "bind" || id == "session") {
                    return Ok(Some(PeerEvent::Refused(format!("the server refused {id}"))));
                }
                if id == READY_IQ_ID && self.stage == Stage::Binding {
                    self.stage = Stage::Ready;
                    return Ok(Some(PeerEvent::Ready));
                }
            }
            ("message", _) => {
                if stanza.attr("type") == Some("error") {
                    return Ok(Some(PeerEvent::Refused("a message bounced".to_owned())));
                }
                let Some(body) = stanza.child("body") else {
                    return Ok(None);
                };
                let payload =
                    from_hex(body.text.trim()).ok_or_else(|| PeerError("a message body that is not hex".to_owned()))?;
                return Ok(Some(read_delivery(&payload)));
            }
            ("stream:error", _) => {
                let why = stanza.children.first().map_or("?", |c| c.name.as_str());
                return Err(PeerError(format!("stream error: {why}")));
            }
            _ => {}
        }
        Ok(None)
    }
}

impl PeerSession for XmppSession {
    fn outbound(&self) -> &[u8] {
        self.outbuf.as_slice()
    }

    fn consume_outbound(&mut self, n: usize) {
        self.outbuf.consume(n);
    }

    fn receive(&mut self, bytes: &[u8]) {
        self.xml.push(bytes);
    }

    fn next_event(&mut self) -> Result<Option<PeerEvent>, PeerError> {
        loop {
            match self.xml.next_item()? {
                None => return Ok(None),
                Some(StreamItem::Open(_)) => {}
                Some(StreamItem::Close) => return Err(PeerError("the server closed the stream".to_owned())),
                Some(StreamItem::Stanza(stanza)) => {
                    if let Some(event) = self.on_stanza(stanza)? {
                        return Ok(Some(event));
                    }
                }
            }
        }
    }

    fn send(&mut self, to: u64, payload: &[u8]) -> Option<u64> {
        self.hex.clear();
        for b in payload {
            self.hex.push(char::from(HEX[usize::from(b >> 4)]));
            self.hex.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        let stanza = format!(
            "<message to='lg{to}@{}' type='chat'><body>{}</body></message>",
            self.domain, self.hex
        );
        self.outbuf.push(stanza.as_bytes());
        None
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn from_hex(text: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::PayloadHeader;
    use crate::peers::write_sender;

    fn take_out(s: &mut XmppSession) -> String {
        let out = String::from_utf8(s.outbound().to_vec()).expect("text");
        s.consume_outbound(out.len());
        out
    }

    #[test]
    fn the_login_walks_sasl_restart_bind_session_and_presence() {
        let mut s = XmppSession::new(5, "localhost");
        assert!(take_out(&mut s).contains("<stream:stream to='localhost'"));
        s.receive(
            b"<?xml version='1.0'?><stream:stream id='a' version='1.0' xmlns='jabber:client' \
              xmlns:stream='http://etherx.jabber.org/streams'><stream:features>\
              <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><mechanisms \
              xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms>\
              </stream:features>",
        );
        assert_eq!(s.next_event(), Ok(None));
        // base64("\0lg5\0lg5")
        assert!(take_out(&mut s).contains("mechanism='PLAIN'>AGxnNQBsZzU=</auth>"));
        s.receive(b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/><stream:stream id='b'>");
        assert_eq!(s.next_event(), Ok(None));
        assert!(take_out(&mut s).starts_with("<?xml version='1.0'?><stream:stream"));
        s.receive(b"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></stream:features>");
        assert_eq!(s.next_event(), Ok(None));
        let out = take_out(&mut s);
        assert!(out.contains("<resource>lg</resource>"));
        assert!(
            out.contains("id='session'"),
            "a session that is not optional is asked for"
        );
        assert!(out.contains("<presence/>"));
        s.receive(b"<iq type='result' id='bind'><bind><jid>lg5@localhost/lg</jid></bind></iq><iq type='result' id='session'/>");
        assert_eq!(s.next_event(), Ok(None));
        s.receive(b"<iq type='error' id='ready'/>");
        assert_eq!(s.next_event(), Ok(Some(PeerEvent::Ready)));
    }

    #[test]
    fn a_message_split_across_reads_is_delivered_once_whole() {
        let mut sender = XmppSession::new(1, "localhost");
        take_out(&mut sender);
        let mut payload = vec![0u8; 50];
        PayloadHeader {
            run_nonce: 3,
            scheduled_ns: 4,
            seq: 5,
        }
        .write(&mut payload);
        write_sender(&mut payload, 1);
        assert_eq!(sender.send(2, &payload), None);
        let stanza = take_out(&mut sender);
        assert!(stanza.starts_with("<message to='lg2@localhost' type='chat'><body>0300000000000000"));
        let mut recipient = XmppSession::new(2, "localhost");
        recipient.receive(b"<stream:stream>");
        assert_eq!(recipient.next_event(), Ok(None));
        let (a, b) = stanza.as_bytes().split_at(60);
        recipient.receive(a);
        assert_eq!(recipient.next_event(), Ok(None));
        recipient.receive(b);
        match recipient.next_event() {
            Ok(Some(PeerEvent::Deliver { sender, header })) => {
                assert_eq!(sender, 1);
                assert_eq!(header.map(|h| h.seq), Some(5));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refusals_and_stream_errors_are_reported() {
        let mut s = XmppSession::new(1, "localhost");
        s.receive(b"<stream:stream><failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>");
        assert_eq!(
            s.next_event(),
            Ok(Some(PeerEvent::Refused("SASL failure: not-authorized".to_owned())))
        );
        s.receive(b"<stream:error><policy-violation/></stream:error>");
        assert!(s.next_event().is_err());
        assert_eq!(from_hex("0aFf"), Some(vec![10, 255]));
        assert_eq!(from_hex("0g"), None);
    }
}
