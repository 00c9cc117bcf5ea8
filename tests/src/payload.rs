//! Numbered payloads a test can recognise again, whatever order or path they come back
//! by: `"{tag}:{n}:"`, padded with `.` to a length ([`payload`]); [`payload_number`] reads
//! the tag and number back, [`numbered`] makes a batch for a pipelined send.

/// A recognisable payload: `"{tag}:{n}:"`, padded with `.` to at least `len_min` bytes.
pub fn payload(tag: &str, n: u64, len_min: usize) -> Vec<u8> {
    let mut bytes = format!("{tag}:{n}:").into_bytes();
    if bytes.len() < len_min {
        bytes.resize(len_min, b'.');
    }
    bytes
}

/// The tag and number of a [`payload`], or `None` if `bytes` is not one.
pub fn payload_number(bytes: &[u8]) -> Option<(String, u64)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut parts = text.splitn(3, ':');
    let tag = parts.next()?;
    let n = parts.next()?.parse().ok()?;
    parts.next()?;
    Some((tag.to_owned(), n))
}

/// `(client_msg_id, payload)` for each `n` in `ns`: client_msg_id `n`, [`payload`]`(tag, n, len_min)`.
pub fn numbered(tag: &str, ns: impl IntoIterator<Item = u64>, len_min: usize) -> Vec<(u64, Vec<u8>)> {
    ns.into_iter().map(|n| (n, payload(tag, n, len_min))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_carry_their_tag_and_number() {
        let bytes = payload("s3", 42, 100);
        assert_eq!(bytes.len(), 100);
        assert_eq!(payload_number(&bytes), Some(("s3".to_owned(), 42)));
        assert_eq!(payload("x", 7, 0), b"x:7:");
        assert_eq!(payload_number(b"no number here"), None);
        assert_eq!(
            payload_number(b"x:7"),
            None,
            "the trailing separator is part of the format"
        );
    }
}
