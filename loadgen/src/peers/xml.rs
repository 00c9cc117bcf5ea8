//! A small streaming XML reader for XMPP: it turns the bytes of one `<stream:stream>` into
//! the stream header and whole stanzas (each an [`Element`] tree), across any split of the
//! bytes over reads.
//!
//! What it handles is what an XMPP server sends: start, end and empty-element tags with
//! quoted attributes (a `>` inside quotes included), text with the five predefined entities
//! and character references, the `<?xml?>` declaration and comments (skipped). No DTDs, no
//! CDATA (XMPP forbids both). Namespaces are not resolved: names keep their prefix
//! (`stream:features`).
//!
//! State: unparsed bytes in an [`InBuf`]; `open`, the elements of the stanza being read,
//! outermost first (empty between stanzas); `in_stream`, whether the stream header was read.

use super::{InBuf, PeerError};

/// Deepest nesting inside a stanza.
pub(crate) const DEPTH_MAX: usize = 64;

/// An element: its name, attributes, child elements and text (all text pieces joined).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    /// The value of attribute `name`.
    pub(crate) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The first child named `name`.
    pub(crate) fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }
}

/// What the stream said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StreamItem {
    /// `<stream:stream ...>` (its attributes; no children).
    Open(Element),
    /// A whole top-level element inside the stream.
    Stanza(Element),
    /// `</stream:stream>`.
    Close,
}

/// One tag or text run.
#[derive(Debug)]
enum Token {
    Start(Element, bool),
    End,
    Text(String),
    Skip,
}

/// The reader of one XMPP stream (restartable, as XMPP restarts streams after SASL).
#[derive(Debug, Default)]
pub(crate) struct XmlStream {
    inbuf: InBuf,
    open: Vec<Element>,
    in_stream: bool,
}

impl XmlStream {
    /// Bytes read from the socket.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.inbuf.extend(bytes);
    }

    /// Forgets the current stream: the next thing read is a new stream header.
    pub(crate) fn restart(&mut self) {
        self.open.clear();
        self.in_stream = false;
    }

    /// The next complete item, if the bytes so far hold one.
    pub(crate) fn next_item(&mut self) -> Result<Option<StreamItem>, PeerError> {
        loop {
            let Some((token, used)) = tokenize(self.inbuf.pending())? else {
                self.inbuf.check_bound()?;
                return Ok(None);
            };
            self.inbuf.consume(used);
            match token {
                Token::Skip => {}
                Token::Text(text) => {
                    if let Some(top) = self.open.last_mut() {
                        top.text.push_str(&text);
                    }
                }
                Token::Start(element, _) if !self.in_stream => {
                    self.in_stream = true;
                    return Ok(Some(StreamItem::Open(element)));
                }
                Token::Start(element, true) => {
                    if let Some(done) = self.close(element) {
                        return Ok(Some(StreamItem::Stanza(done)));
                    }
                }
                Token::Start(element, false) => {
                    if self.open.len() >= DEPTH_MAX {
                        return Err(PeerError(format!("XML nested deeper than {DEPTH_MAX}")));
                    }
                    self.open.push(element);
                }
                Token::End => match self.open.pop() {
                    None => {
                        self.in_stream = false;
                        return Ok(Some(StreamItem::Close));
                    }
                    Some(element) => {
                        if let Some(done) = self.close(element) {
                            return Ok(Some(StreamItem::Stanza(done)));
                        }
                    }
                },
            }
        }
    }

    /// A finished element: a whole stanza if it is top-level, else its parent's child.
    fn close(&mut self, element: Element) -> Option<Element> {
        match self.open.last_mut() {
            Some(parent) => {
                parent.children.push(element);
                None
            }
            None => Some(element),
        }
    }
}

/// The first token of `buf` and the bytes it took, or `None` until it is complete.
fn tokenize(buf: &[u8]) -> Result<Option<(Token, usize)>, PeerError> {
    let Some(&first) = buf.first() else { return Ok(None) };
    if first != b'<' {
        let Some(end) = buf.iter().position(|&b| b == b'<') else {
            return Ok(None);
        };
        return Ok(Some((Token::Text(unescape(&buf[..end])?), end)));
    }
    if buf.starts_with(b"<?") {
        return Ok(find(buf, b"?>").map(|end| (Token::Skip, end + 2)));
    }
    if buf.starts_with(b"<!--") {
        return Ok(find(buf, b"-->").map(|end| (Token::Skip, end + 3)));
    }
    if buf.len() < 2 {
        return Ok(None);
    }
    if buf[1] == b'!' {
        return Err(PeerError("XML with a DTD or CDATA (XMPP forbids both)".to_owned()));
    }
    // The tag ends at the first '>' outside quotes.
    let mut quote = None;
    let mut end = None;
    for (i, &b) in buf.iter().enumerate().skip(1) {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), _) if b == q => quote = None,
            (None, b'>') => {
                end = Some(i);
                break;
            }
            _ => {}
        }
    }
    let Some(end) = end else { return Ok(None) };
    if buf[1] == b'/' {
        return Ok(Some((Token::End, end + 1)));
    }
    let empty = buf[end - 1] == b'/';
    let inner = &buf[1..if empty { end - 1 } else { end }];
    Ok(Some((Token::Start(parse_tag(inner)?, empty), end + 1)))
}

fn find(buf: &[u8], needle: &[u8]) -> Option<usize> {
    buf.windows(needle.len()).position(|w| w == needle)
}

/// `name attr='v' attr2="w"` (the inside of a start tag).
fn parse_tag(inner: &[u8]) -> Result<Element, PeerError> {
    let text = std::str::from_utf8(inner).map_err(|_| PeerError("an XML tag that is not UTF-8".to_owned()))?;
    let bad = || PeerError(format!("a malformed XML tag <{text}>"));
    let name_end = text.find(|c: char| c.is_ascii_whitespace()).unwrap_or(text.len());
    let mut element = Element {
        name: text[..name_end].to_owned(),
        ..Element::default()
    };
    if element.name.is_empty() {
        return Err(bad());
    }
    let mut rest = &text[name_end..];
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Ok(element);
        }
        let eq = rest.find('=').ok_or_else(bad)?;
        let key = rest[..eq].trim_end();
        let after = rest[eq + 1..].trim_start();
        let quote = after
            .chars()
            .next()
            .filter(|c| *c == '"' || *c == '\'')
            .ok_or_else(bad)?;
        let close = after[1..].find(quote).ok_or_else(bad)? + 1;
        element
            .attrs
            .push((key.to_owned(), unescape(&after.as_bytes()[1..close])?));
        rest = &after[close + 1..];
    }
}

/// Text with `&lt;`, `&gt;`, `&amp;`, `&quot;`, `&apos;`, `&#N;` and `&#xN;` resolved.
pub(crate) fn unescape(raw: &[u8]) -> Result<String, PeerError> {
    let text = std::str::from_utf8(raw).map_err(|_| PeerError("XML text that is not UTF-8".to_owned()))?;
    if !text.contains('&') {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let semi = rest[amp..]
            .find(';')
            .ok_or_else(|| PeerError("an XML entity without ';'".to_owned()))?;
        let entity = &rest[amp + 1..amp + semi];
        let c = match entity {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = entity.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = entity.strip_prefix('#') {
                    dec.parse().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32)
                    .ok_or_else(|| PeerError(format!("an unknown XML entity &{entity};")))?
            }
        };
        out.push(c);
        rest = &rest[amp + semi + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `text` with `<`, `>`, `&`, `'` and `"` escaped, for attribute values and text.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIRE: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' id='42' from='localhost' version='1.0'>\
        <stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
        <mechanism>PLAIN</mechanism><mechanism>SCRAM-SHA-1</mechanism></mechanisms></stream:features> \
        <message from='lg2@localhost/lg' to='lg1@localhost' type=\"chat\" note='a>b'>\
        <body>00ff&amp;&#x41;</body><x/></message></stream:stream>";

    fn read_all(chunks: &[&[u8]]) -> Vec<StreamItem> {
        let mut s = XmlStream::default();
        let mut items = Vec::new();
        for c in chunks {
            s.push(c);
            while let Some(item) = s.next_item().expect("valid XML") {
                items.push(item);
            }
        }
        items
    }

    #[test]
    fn a_stream_reads_as_header_stanzas_and_close() {
        let items = read_all(&[WIRE.as_bytes()]);
        assert_eq!(items.len(), 4);
        let StreamItem::Open(header) = &items[0] else {
            panic!("{:?}", items[0])
        };
        assert_eq!(header.name, "stream:stream");
        assert_eq!(header.attr("id"), Some("42"));
        let StreamItem::Stanza(features) = &items[1] else {
            panic!()
        };
        let mechanisms = features.child("mechanisms").expect("mechanisms");
        assert_eq!(mechanisms.children.len(), 2);
        assert_eq!(mechanisms.children[0].text, "PLAIN");
        let StreamItem::Stanza(message) = &items[2] else {
            panic!()
        };
        assert_eq!(message.attr("type"), Some("chat"));
        assert_eq!(message.attr("note"), Some("a>b"), "a '>' inside quotes");
        assert_eq!(message.child("body").map(|b| b.text.as_str()), Some("00ff&A"));
        assert!(message.child("x").is_some(), "an empty-element tag");
        assert_eq!(items[3], StreamItem::Close);
    }

    #[test]
    fn a_stanza_split_at_every_byte_reads_the_same() {
        let whole = read_all(&[WIRE.as_bytes()]);
        let bytes: Vec<&[u8]> = WIRE.as_bytes().chunks(1).collect();
        assert_eq!(read_all(&bytes), whole);
        for cut in [10, 100, 250, 300] {
            let (a, b) = WIRE.as_bytes().split_at(cut);
            assert_eq!(read_all(&[a, b]), whole, "cut at {cut}");
        }
    }

    #[test]
    fn a_restart_reads_a_new_header() {
        let mut s = XmlStream::default();
        s.push(b"<stream:stream id='1'><success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
        assert!(matches!(s.next_item(), Ok(Some(StreamItem::Open(_)))));
        assert!(matches!(s.next_item(), Ok(Some(StreamItem::Stanza(e))) if e.name == "success"));
        s.restart();
        s.push(b"<stream:stream id='2'>");
        assert!(matches!(s.next_item(), Ok(Some(StreamItem::Open(e))) if e.attr("id") == Some("2")));
    }

    #[test]
    fn escaping_round_trips_and_bad_entities_fail() {
        let text = "a<b>&'\"c";
        assert_eq!(unescape(escape(text).as_bytes()), Ok(text.to_owned()));
        assert!(unescape(b"&bogus;").is_err());
        assert!(unescape(b"&amp").is_err());
        let mut s = XmlStream::default();
        s.push(b"<stream:stream><!DOCTYPE x>");
        assert!(s.next_item().is_ok());
        assert!(s.next_item().is_err());
    }
}
