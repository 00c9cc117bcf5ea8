//! What a load-generator message carries, and how its ids are made.
//!
//! Payload layout (little-endian), padded with zeros to `--payload` bytes:
//! `run_nonce: u64 | scheduled_ns: u64 | seq: u64`. `scheduled_ns` is the `CLOCK_MONOTONIC`
//! time the send was *scheduled* for (not when it went out), so delivery latency is measured
//! open-loop; `seq` numbers the messages of one (sender, recipient) stream densely from 0.
//! A delivery whose nonce is not this run's (a backlog from an earlier run) is not counted.
//!
//! `client_msg_id` = `run_nonce << 32 | send counter`: unique per sender across runs (the
//! server deduplicates a repeated id and would not deliver it again), with 2^32 sends per
//! sender and run.

/// Bytes of the header at the front of every payload; `--payload` must be at least this.
pub(crate) const PAYLOAD_HEADER_BYTES: usize = 24;

/// The header of a load-generator payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PayloadHeader {
    pub run_nonce: u64,
    pub scheduled_ns: u64,
    pub seq: u64,
}

impl PayloadHeader {
    /// Writes the header into the first [`PAYLOAD_HEADER_BYTES`] of `buf`.
    pub(crate) fn write(&self, buf: &mut [u8]) {
        buf[0..8].copy_from_slice(&self.run_nonce.to_le_bytes());
        buf[8..16].copy_from_slice(&self.scheduled_ns.to_le_bytes());
        buf[16..24].copy_from_slice(&self.seq.to_le_bytes());
    }

    /// Reads a header, or `None` if the payload is too short to hold one.
    pub(crate) fn read(buf: &[u8]) -> Option<PayloadHeader> {
        let word = |i: usize| -> Option<u64> { Some(u64::from_le_bytes(buf.get(i..i + 8)?.try_into().ok()?)) };
        Some(PayloadHeader {
            run_nonce: word(0)?,
            scheduled_ns: word(8)?,
            seq: word(16)?,
        })
    }
}

/// The client message id of a sender's `counter`-th send in the run `run_nonce`.
pub(crate) fn client_msg_id(run_nonce: u32, counter: u32) -> u64 {
    (u64::from(run_nonce) << 32) | u64::from(counter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_round_trips_and_a_short_payload_has_none() {
        let h = PayloadHeader {
            run_nonce: 7,
            scheduled_ns: 123_456_789,
            seq: 42,
        };
        let mut buf = vec![0u8; 100];
        h.write(&mut buf);
        assert_eq!(PayloadHeader::read(&buf), Some(h));
        assert_eq!(PayloadHeader::read(&buf[..23]), None);
        assert_eq!(client_msg_id(3, 5), (3 << 32) | 5);
    }
}
