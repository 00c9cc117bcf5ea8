//! Latency histograms: HDR histograms in microseconds, shipped between processes as base64
//! of the V2 serialization, merged by addition.
//!
//! Every histogram covers 1 µs to [`LATENCY_US_MAX`] at [`SIGNIFICANT_DIGITS`]; a larger
//! value is recorded as the maximum (saturating), so a stall is never dropped.

use anyhow::Context;
use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Largest latency a histogram tells apart: one hour, in µs.
pub(crate) const LATENCY_US_MAX: u64 = 3_600 * 1_000_000;

/// Significant decimal digits kept (0.1 % relative error).
pub(crate) const SIGNIFICANT_DIGITS: u8 = 3;

/// Percentiles of the latency curve written to the JSON report (and plotted).
pub(crate) const CURVE_PERCENTILES: [f64; 17] = [
    0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.995, 99.999, 99.9995, 99.9999, 100.0,
];

/// One latency histogram, in microseconds.
#[derive(Debug, Clone)]
pub(crate) struct LatencyHist {
    hist: Histogram<u64>,
}

impl Default for LatencyHist {
    fn default() -> Self {
        Self::new()
    }
}

/// The summary a report prints: percentiles and the maximum, in µs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Percentiles {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl LatencyHist {
    /// An empty histogram.
    pub(crate) fn new() -> LatencyHist {
        let hist = Histogram::new_with_bounds(1, LATENCY_US_MAX, SIGNIFICANT_DIGITS)
            .expect("constant bounds are valid (1 <= low, high >= 2 * low, 3 digits)");
        LatencyHist { hist }
    }

    /// Records a latency of `ns` nanoseconds (rounded to µs, at least 1).
    pub(crate) fn record_ns(&mut self, ns: u64) {
        self.record_us(ns.div_ceil(1_000));
    }

    /// Records a latency of `us` microseconds, saturating at the maximum.
    pub(crate) fn record_us(&mut self, us: u64) {
        self.hist.saturating_record(us.clamp(1, LATENCY_US_MAX));
    }

    /// Values recorded.
    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.hist.len()
    }

    /// Whether nothing was recorded.
    pub(crate) fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }

    /// Adds every value of `other`.
    pub(crate) fn merge(&mut self, other: &LatencyHist) {
        self.hist
            .add(&other.hist)
            .expect("histograms with the same bounds always add");
    }

    /// The V2 serialization, in base64 (one line of text).
    pub(crate) fn to_base64(&self) -> String {
        let mut bytes = Vec::new();
        V2Serializer::new()
            .serialize(&self.hist, &mut bytes)
            .expect("serializing into a Vec cannot fail");
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// Reads what [`LatencyHist::to_base64`] wrote.
    pub(crate) fn from_base64(text: &str) -> anyhow::Result<LatencyHist> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .context("histogram: bad base64")?;
        let read: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| anyhow::anyhow!("histogram: bad V2 serialization: {e:?}"))?;
        // Re-home it in our bounds so merging never fails.
        let mut hist = LatencyHist::new();
        hist.hist
            .add(&read)
            .map_err(|e| anyhow::anyhow!("histogram out of bounds: {e:?}"))?;
        Ok(hist)
    }

    /// p50, p90, p99, p99.9 and the maximum.
    pub(crate) fn percentiles(&self) -> Percentiles {
        if self.hist.is_empty() {
            return Percentiles::default();
        }
        let q = |q: f64| self.hist.value_at_quantile(q);
        Percentiles {
            count: self.hist.len(),
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            p999: q(0.999),
            max: self.hist.max(),
            mean: self.hist.mean(),
        }
    }

    /// `(percentile, µs)` at each of [`CURVE_PERCENTILES`].
    pub(crate) fn curve(&self) -> Vec<(f64, u64)> {
        if self.hist.is_empty() {
            return Vec::new();
        }
        CURVE_PERCENTILES
            .iter()
            .map(|&p| (p, self.hist.value_at_quantile(p / 100.0)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_histograms_equal_one_histogram_of_everything() {
        let mut a = LatencyHist::new();
        let mut b = LatencyHist::new();
        let mut all = LatencyHist::new();
        for v in 1..=1000u64 {
            a.record_us(v);
            all.record_us(v);
        }
        for v in [5_000u64, 10_000, 2_000_000] {
            b.record_us(v);
            all.record_us(v);
        }
        // Across a process boundary: serialized, shipped as text, read back, merged.
        let mut merged = LatencyHist::from_base64(&a.to_base64()).expect("a reads back");
        merged.merge(&LatencyHist::from_base64(&b.to_base64()).expect("b reads back"));
        assert_eq!(merged.len(), 1003);
        assert_eq!(merged.percentiles(), all.percentiles());
        let p = merged.percentiles();
        assert_eq!(p.p50, 502, "the 502nd of 1003 values");
        assert!(p.p999 >= 5_000 && p.max >= 2_000_000 && p.max <= 2_002_000, "{p:?}");
        assert_eq!(merged.curve(), all.curve());
    }

    #[test]
    fn out_of_range_values_saturate_instead_of_vanishing() {
        let mut h = LatencyHist::new();
        h.record_us(0);
        h.record_us(LATENCY_US_MAX * 10);
        h.record_ns(1);
        assert_eq!(h.len(), 3);
        assert!(h.percentiles().max >= LATENCY_US_MAX);
        assert!(LatencyHist::from_base64("not base64!").is_err());
    }
}
