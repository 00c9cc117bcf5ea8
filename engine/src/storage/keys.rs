//! Key layouts for every column family. All integers are big-endian so RocksDB's bytewise
//! order is numeric order: one user's inbox is one contiguous, seq-ordered key range.

/// `(user_id, seq)`: an inbox entry, or `(user_id, device_id)`: a device or cursor.
pub type PairKey = [u8; 16];

/// Encodes two ids as one ordered key.
pub fn pair(a: u64, b: u64) -> PairKey {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&a.to_be_bytes());
    k[8..].copy_from_slice(&b.to_be_bytes());
    k
}

/// Decodes a [`pair`] key; `None` if the key is not 16 bytes (a corrupt database).
pub fn unpair(k: &[u8]) -> Option<(u64, u64)> {
    let a = u64::from_be_bytes(k.get(..8)?.try_into().ok()?);
    let b = u64::from_be_bytes(k.get(8..16)?.try_into().ok()?);
    (k.len() == 16).then_some((a, b))
}

/// A user id key.
pub fn id(user_id: u64) -> [u8; 8] {
    user_id.to_be_bytes()
}

/// Decodes an [`id`] key.
pub fn unid(k: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(k.try_into().ok()?))
}

/// `(user_id, conversation kind, conversation id)`: a `convs` key, ordered by user, then
/// kind, then id.
pub fn conv(user_id: u64, conversation: hotline_wire::Conversation) -> [u8; 17] {
    let (kind, id) = conversation.kind_and_id();
    let mut k = [0u8; 17];
    k[..8].copy_from_slice(&user_id.to_be_bytes());
    k[8] = kind;
    k[9..].copy_from_slice(&id.to_be_bytes());
    k
}

/// The `convs` key under which a user's mark is stored (see the storage module docs): the
/// key of conversation `Direct(0)`, which no user has (user ids start at 1).
pub fn convs_mark(user_id: u64) -> [u8; 17] {
    conv(user_id, hotline_wire::Conversation::Direct(0))
}

/// Decodes a [`conv`] key.
pub fn unconv(k: &[u8]) -> Option<(u64, hotline_wire::Conversation)> {
    if k.len() != 17 {
        return None;
    }
    let user = u64::from_be_bytes(k[..8].try_into().ok()?);
    let id = u64::from_be_bytes(k[9..].try_into().ok()?);
    Some((user, hotline_wire::Conversation::from_kind_and_id(k[8], id)))
}

/// Reads a little-endian u64 at `at` from a stored value.
pub fn le_u64(v: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(v.get(at..at + 8)?.try_into().ok()?))
}

/// Three little-endian u64s as one stored value (a token's user, device and creation time;
/// a dedup entry's message id, seq and timestamp; a message's sender, group, recipient).
/// [`le_u64`] at 0, 8 and 16 reads them back.
pub fn le_u64x3(a: u64, b: u64, c: u64) -> [u8; 24] {
    let mut v = [0u8; 24];
    v[..8].copy_from_slice(&a.to_le_bytes());
    v[8..16].copy_from_slice(&b.to_le_bytes());
    v[16..].copy_from_slice(&c.to_le_bytes());
    v
}

/// A little-endian u64 followed by `rest` as one stored value (a user's or device's
/// creation time and name).
pub fn le_u64_then(a: u64, rest: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + rest.len());
    v.extend_from_slice(&a.to_le_bytes());
    v.extend_from_slice(rest);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_keys_sort_numerically() {
        let mut keys = [pair(2, 1), pair(1, 300), pair(1, 2), pair(1, u64::MAX), pair(0, 9)];
        keys.sort();
        let decoded: Vec<_> = keys.iter().map(|k| unpair(k).unwrap()).collect();
        assert_eq!(decoded, [(0, 9), (1, 2), (1, 300), (1, u64::MAX), (2, 1)]);
        assert_eq!(unpair(&[0; 15]), None);
        assert_eq!(unid(&id(77)), Some(77));
        let v = le_u64x3(1, u64::MAX, 3);
        assert_eq!(
            [le_u64(&v, 0), le_u64(&v, 8), le_u64(&v, 16)],
            [Some(1), Some(u64::MAX), Some(3)]
        );
        assert_eq!(le_u64_then(9, b"name")[8..], *b"name");
        let c = hotline_wire::Conversation::Group(5);
        assert_eq!(unconv(&conv(3, c)), Some((3, c)));
        assert!(
            conv(3, hotline_wire::Conversation::Direct(u64::MAX)) < conv(3, c),
            "direct before group"
        );
    }
}
