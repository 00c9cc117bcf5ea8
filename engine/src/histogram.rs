//! A histogram of `u64` observations in power-of-two buckets, updated with relaxed atomics
//! from any thread and rendered in Prometheus text format by the metrics endpoint. A leaf
//! module, so the log writer can keep its histograms without depending on the endpoint.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Buckets of a [`Histogram`]: upper bounds 1, 2, 4, … 2^(N-2), then +Inf.
pub(crate) const HISTOGRAM_BUCKETS: usize = 28;

/// A histogram of `u64` observations in power-of-two buckets.
#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; HISTOGRAM_BUCKETS],
    sum: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, value: u64) {
        // Bucket i holds values <= 2^i; the last one everything larger.
        let i = (64 - value.saturating_sub(1).leading_zeros()) as usize;
        self.buckets[i.min(HISTOGRAM_BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// Writes the histogram in Prometheus text format; `scale` divides bucket bounds and
    /// the sum (1e6 turns microseconds into seconds).
    pub(crate) fn render(&self, out: &mut String, name: &str, help: &str, scale: f64) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            cumulative += b.load(Ordering::Relaxed);
            if i + 1 == HISTOGRAM_BUCKETS {
                let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
            } else {
                let le = (1u64 << i) as f64 / scale;
                let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
            }
        }
        let sum = self.sum.load(Ordering::Relaxed) as f64 / scale;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cumulative}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_powers_of_two_and_cumulative() {
        let h = Histogram::default();
        for v in [0, 1, 2, 3, 4, 5, 1 << 40] {
            h.observe(v);
        }
        assert_eq!(h.count(), 7);
        let mut out = String::new();
        h.render(&mut out, "x", "help", 1.0);
        assert!(out.contains("x_bucket{le=\"1\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"2\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"4\"} 5\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"8\"} 6\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 7\n"), "{out}");
        assert!(out.contains("x_count 7\n"), "{out}");
    }
}
