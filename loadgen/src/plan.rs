//! Who sends to whom, and which worker holds whom.
//!
//! Accounts are cut into *units*: a pair (`pairs`: 2 accounts, each sending to the other)
//! or a group (`fanout:K` and `group:K`: K+1 accounts, the first sending every message to
//! the K others).
//! A unit never spans workers, so each stream's books close inside one process. Accounts
//! left over after the last whole unit connect and stay idle.
//!
//! Rate: `--rate` counts `Send` requests (= deliveries) per second over the whole run, for
//! every pattern. `pairs` spreads it over all 2·units senders. `fanout:K` sends rate/K
//! messages per second, each as K `Send`s at the same scheduled time (one per recipient),
//! so the server does the same per-delivery work as for `pairs` at the same `--rate`.
//! `group:K` sends the same rate/K messages per second, each as one `Send` to a server-side
//! group of the K (created by the sender before the run): the server's group fan-out.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Most fan-out recipients per group.
pub(crate) const FANOUT_K_MAX: u32 = 10_000;

/// The traffic pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Pattern {
    /// Account 2i sends to 2i+1 and 2i+1 to 2i.
    Pairs,
    /// Groups of K+1: the first sends each message to the K others.
    Fanout { k: u32 },
    /// Groups of K+1: the first sends each message once to a server-side group of the K others.
    Group { k: u32 },
}

impl Pattern {
    /// Accounts per unit.
    pub(crate) fn unit_accounts(self) -> usize {
        match self {
            Pattern::Pairs => 2,
            Pattern::Fanout { k } | Pattern::Group { k } => k as usize + 1,
        }
    }

    /// Senders per unit.
    pub(crate) fn unit_senders(self) -> usize {
        match self {
            Pattern::Pairs => 2,
            Pattern::Fanout { .. } | Pattern::Group { .. } => 1,
        }
    }

    /// Deliveries one scheduled send event makes (`--rate` counts deliveries).
    pub(crate) fn deliveries_per_event(self) -> u32 {
        match self {
            Pattern::Pairs => 1,
            Pattern::Fanout { k } | Pattern::Group { k } => k,
        }
    }

    /// Whether the unit's sender sends to a server-side group (set up before the run).
    pub(crate) fn uses_groups(self) -> bool {
        matches!(self, Pattern::Group { .. })
    }

    /// For the account at `offset` within its unit: the offsets it sends to.
    pub(crate) fn targets(self, offset: usize) -> Range<usize> {
        match (self, offset) {
            (Pattern::Pairs, 0) => 1..2,
            (Pattern::Pairs, _) => 0..1,
            (Pattern::Fanout { k } | Pattern::Group { k }, 0) => 1..k as usize + 1,
            (Pattern::Fanout { .. } | Pattern::Group { .. }, _) => 0..0,
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Pairs => write!(f, "pairs"),
            Pattern::Fanout { k } => write!(f, "fanout:{k}"),
            Pattern::Group { k } => write!(f, "group:{k}"),
        }
    }
}

impl FromStr for Pattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "pairs" {
            return Ok(Pattern::Pairs);
        }
        for (prefix, group) in [("fanout:", false), ("group:", true)] {
            if let Some(k) = s.strip_prefix(prefix) {
                let k: u32 = k.parse().map_err(|_| format!("{prefix}K needs a number, got {k:?}"))?;
                if k == 0 || k > FANOUT_K_MAX {
                    return Err(format!("{prefix}K needs 1 <= K <= {FANOUT_K_MAX}, got {k}"));
                }
                return Ok(if group {
                    Pattern::Group { k }
                } else {
                    Pattern::Fanout { k }
                });
            }
        }
        Err(format!("unknown pattern {s:?}: use pairs, fanout:K or group:K"))
    }
}

/// The accounts (line ranges of the accounts file) each worker holds: whole units, as even
/// as possible; the last worker also holds the leftover idle accounts.
pub(crate) fn split(connections: usize, pattern: Pattern, workers: usize) -> Vec<Range<usize>> {
    let unit = pattern.unit_accounts();
    let units = connections / unit;
    let workers = workers.max(1);
    (0..workers)
        .map(|w| {
            let first = units * w / workers * unit;
            let end = if w + 1 == workers {
                connections
            } else {
                units * (w + 1) / workers * unit
            };
            first..end
        })
        .collect()
}

/// Senders in the whole run.
pub(crate) fn senders_total(connections: usize, pattern: Pattern) -> usize {
    connections / pattern.unit_accounts() * pattern.unit_senders()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_never_straddle_workers_and_every_account_is_held_once() {
        for (connections, pattern, workers) in [
            (10_000, Pattern::Pairs, 3),
            (1_001, Pattern::Fanout { k: 100 }, 4),
            (7, Pattern::Pairs, 2),
            (5, Pattern::Fanout { k: 9 }, 2),
        ] {
            let ranges = split(connections, pattern, workers);
            assert_eq!(ranges.len(), workers);
            let mut next = 0;
            for r in &ranges {
                assert_eq!(r.start, next, "contiguous");
                assert_eq!(r.start % pattern.unit_accounts(), 0, "a unit starts each range");
                next = r.end;
            }
            assert_eq!(next, connections);
        }
        assert_eq!(split(10, Pattern::Pairs, 3), [0..2, 2..6, 6..10]);
    }

    #[test]
    fn patterns_parse_and_print() {
        assert_eq!("pairs".parse(), Ok(Pattern::Pairs));
        assert_eq!("fanout:100".parse(), Ok(Pattern::Fanout { k: 100 }));
        assert_eq!("group:1000".parse(), Ok(Pattern::Group { k: 1000 }));
        assert_eq!(Pattern::Group { k: 7 }.to_string(), "group:7");
        assert_eq!(Pattern::Group { k: 7 }.deliveries_per_event(), 7);
        assert!("group:0".parse::<Pattern>().is_err());
        assert!("fanout:0".parse::<Pattern>().is_err());
        assert!("ring".parse::<Pattern>().is_err());
        assert_eq!(Pattern::Fanout { k: 3 }.to_string(), "fanout:3");
        assert_eq!(Pattern::Fanout { k: 3 }.targets(0), 1..4);
        assert_eq!(Pattern::Pairs.targets(1), 0..1);
        assert_eq!(senders_total(1_010, Pattern::Fanout { k: 100 }), 10);
    }
}
