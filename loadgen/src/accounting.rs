//! Correctness accounting: did every acknowledged message reach its recipient exactly once
//! and in order?
//!
//! A *stream* is one (sender, recipient) pair; its messages are numbered densely from 0 by
//! the sender (`seq`, carried in the payload). The [`StreamLedger`] of a stream lives in the
//! worker that holds both ends (a pair or fan-out group never spans workers), so the sender
//! side (sent, acked, failed) and the recipient side (delivered) meet without messages
//! between processes. A [`Tally`] adds ledgers' outcomes up for a report.
//!
//! Definitions:
//! - *duplicated*: a delivery of a seq already delivered.
//! - *out of order*: a first delivery of a seq below the highest seq already delivered.
//! - *lost*: acknowledged (a `SendAck` came back) and not delivered when the books close.
//! - *unacked*: sent, neither acknowledged nor failed when the books close (not a loss: the
//!   server never promised it).

use serde::{Deserialize, Serialize};

/// A growable set of small integers.
#[derive(Debug, Clone, Default)]
pub(crate) struct BitSet {
    words: Vec<u64>,
}

impl BitSet {
    /// Adds `i`; returns whether it was already there.
    pub(crate) fn insert(&mut self, i: u64) -> bool {
        let (word, bit) = ((i / 64) as usize, i % 64);
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let was = self.words[word] & (1 << bit) != 0;
        self.words[word] |= 1 << bit;
        was
    }

    /// Whether `i` is in the set.
    pub(crate) fn contains(&self, i: u64) -> bool {
        let (word, bit) = ((i / 64) as usize, i % 64);
        self.words.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }
}

/// What a delivery was, as far as the stream's books go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// The first delivery of this seq, in order.
    First,
    /// The first delivery of this seq, but a higher seq came before it.
    OutOfOrder,
    /// This seq was delivered before.
    Duplicate,
}

/// The books of one (sender, recipient) stream.
#[derive(Debug, Clone, Default)]
pub(crate) struct StreamLedger {
    /// The next seq the sender will use (so `0..sent` were sent).
    sent: u64,
    acked: BitSet,
    failed: BitSet,
    delivered: BitSet,
    /// Highest seq delivered so far, if any.
    delivered_max: Option<u64>,
}

impl StreamLedger {
    /// Numbers the next message sent on this stream.
    pub(crate) fn on_sent(&mut self) -> u64 {
        let seq = self.sent;
        self.sent += 1;
        seq
    }

    /// Seqs `0..sent()` have been sent.
    pub(crate) fn sent(&self) -> u64 {
        self.sent
    }

    /// A `SendAck` for `seq`; false if it was acknowledged before.
    pub(crate) fn on_acked(&mut self, seq: u64) -> bool {
        !self.acked.insert(seq)
    }

    /// An `Error` reply for the send of `seq`: the server refused it.
    pub(crate) fn on_failed(&mut self, seq: u64) {
        self.failed.insert(seq);
    }

    /// `seq` arrived at the recipient.
    pub(crate) fn on_delivered(&mut self, seq: u64) -> Delivery {
        if self.delivered.insert(seq) {
            return Delivery::Duplicate;
        }
        match self.delivered_max {
            Some(max) if seq < max => Delivery::OutOfOrder,
            _ => {
                self.delivered_max = Some(seq);
                Delivery::First
            }
        }
    }

    /// Whether `seq` has been acknowledged.
    pub(crate) fn is_acked(&self, seq: u64) -> bool {
        self.acked.contains(seq)
    }

    /// Whether `seq` has been delivered.
    pub(crate) fn is_delivered(&self, seq: u64) -> bool {
        self.delivered.contains(seq)
    }

    #[cfg(test)]
    /// Whether every seq in `from..sent()` is settled: acknowledged and delivered, or failed.
    pub(crate) fn settled(&self, from: u64) -> bool {
        (from..self.sent).all(|s| self.failed.contains(s) || (self.acked.contains(s) && self.delivered.contains(s)))
    }

    /// Closes the books on seqs `from..sent()`: (lost, unacked).
    pub(crate) fn close(&self, from: u64) -> (u64, u64) {
        let mut lost = 0;
        let mut unacked = 0;
        for s in from..self.sent {
            if self.acked.contains(s) {
                if !self.delivered.contains(s) {
                    lost += 1;
                }
            } else if !self.failed.contains(s) {
                unacked += 1;
            }
        }
        (lost, unacked)
    }
}

/// Counts over many streams (and, summed, over workers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Tally {
    /// `Send` requests written.
    pub sent: u64,
    /// `SendAck`s received.
    pub acked: u64,
    /// Sends the server answered with an `Error`.
    pub failed: u64,
    /// First deliveries (duplicates not counted).
    pub delivered: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub lost: u64,
    pub unacked: u64,
}

impl Tally {
    /// Adds `other` into `self`.
    pub(crate) fn add(&mut self, other: &Tally) {
        self.sent += other.sent;
        self.acked += other.acked;
        self.failed += other.failed;
        self.delivered += other.delivered;
        self.duplicated += other.duplicated;
        self.out_of_order += other.out_of_order;
        self.lost += other.lost;
        self.unacked += other.unacked;
    }

    /// Counts one delivery outcome.
    pub(crate) fn count_delivery(&mut self, d: Delivery) {
        match d {
            Delivery::First => self.delivered += 1,
            Delivery::OutOfOrder => {
                self.delivered += 1;
                self.out_of_order += 1;
            }
            Delivery::Duplicate => self.duplicated += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A known history with one planted loss (seq 4), one duplicate (seq 2 twice) and one
    /// reordering (3 before 2), plus one refused send (seq 6) and one never acknowledged (7).
    #[test]
    fn planted_loss_duplicate_and_reordering_are_each_counted_once() {
        let mut ledger = StreamLedger::default();
        let mut tally = Tally::default();
        for _ in 0..8 {
            ledger.on_sent();
            tally.sent += 1;
        }
        for seq in [0, 1, 2, 3, 4, 5] {
            assert!(ledger.on_acked(seq));
            tally.acked += 1;
        }
        assert!(!ledger.on_acked(5), "a second ack of the same seq is recognised");
        ledger.on_failed(6);
        for seq in [0, 1, 3, 2, 2, 5] {
            tally.count_delivery(ledger.on_delivered(seq));
        }
        assert!(!ledger.settled(0));
        let (lost, unacked) = ledger.close(0);
        tally.lost += lost;
        tally.unacked += unacked;
        assert_eq!(tally.delivered, 5, "0, 1, 3, 2, 5");
        assert_eq!(tally.duplicated, 1, "the second 2");
        assert_eq!(tally.out_of_order, 1, "2 after 3");
        assert_eq!(tally.lost, 1, "4 was acknowledged and never delivered");
        assert_eq!(tally.unacked, 1, "7 was never answered; 6 was refused");
        assert!(!ledger.settled(5), "7 is still unanswered");
        assert_eq!(
            ledger.close(5),
            (0, 1),
            "closing from a later step counts only its seqs"
        );
        assert!(ledger.on_acked(7));
        assert_eq!(ledger.on_delivered(7), Delivery::First);
        assert!(ledger.settled(5), "5 delivered, 6 refused, 7 delivered");
        assert!(!ledger.settled(4), "4 is lost");
    }

    #[test]
    fn a_clean_stream_settles_with_nothing_lost() {
        let mut ledger = StreamLedger::default();
        for seq in 0..100 {
            assert_eq!(ledger.on_sent(), seq);
            assert_eq!(ledger.on_delivered(seq), Delivery::First, "delivered before its ack");
            assert!(ledger.on_acked(seq));
        }
        assert!(ledger.settled(0));
        assert_eq!(ledger.close(0), (0, 0));
    }

    #[test]
    fn bitset_grows_and_remembers() {
        let mut set = BitSet::default();
        assert!(!set.contains(1000));
        assert!(!set.insert(1000));
        assert!(set.insert(1000));
        assert!(set.contains(1000) && !set.contains(999) && !set.contains(1_000_000));
    }
}
