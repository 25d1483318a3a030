//! Telemetry stage: an insertable tap over frame outcomes that keeps per-type frame counters and
//! two histograms (frame size, latency from read to committed outcome). Its snapshot is part of
//! the run report. It edits no other stage: the builder inserts it at the outcome seam.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::pipeline::{Emit, PipelineError, Stage};

use super::{FrameOutcome, Outcome};

/// A histogram over power-of-two buckets: bucket `i` counts values `< 2^i` not counted by an
/// earlier bucket; the last bucket is open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Histogram {
    /// Upper bounds (exclusive) of the buckets; the last bucket has none.
    pub bounds: Vec<u64>,
    pub counts: Vec<u64>,
    pub count: u64,
    pub sum: u64,
    pub max: u64,
}

impl Histogram {
    /// Buckets `< 1, < 2, < 4, ... < 2^(buckets-2)`, then everything else.
    pub fn log2(buckets: usize) -> Self {
        let buckets = buckets.clamp(2, 64);
        Self {
            bounds: (0..buckets - 1).map(|i| 1u64 << i).collect(),
            counts: vec![0; buckets],
            count: 0,
            sum: 0,
            max: 0,
        }
    }

    pub fn record(&mut self, value: u64) {
        let idx = self
            .bounds
            .iter()
            .position(|&b| value < b)
            .unwrap_or(self.bounds.len());
        self.counts[idx] += 1;
        self.count += 1;
        self.sum = self.sum.saturating_add(value);
        self.max = self.max.max(value);
    }

    /// Upper bound of the bucket holding quantile `q` (0..=1); `max` for the open bucket.
    pub fn quantile_upper_bound(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return self
                    .bounds
                    .get(i)
                    .copied()
                    .unwrap_or(self.max)
                    .min(self.max.max(1));
            }
        }
        self.max
    }
}

/// What the telemetry stage measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TelemetrySnapshot {
    /// Outcomes by frame type (`rejected` for frames rejected before decoding a type).
    pub frames_by_kind: BTreeMap<String, u64>,
    /// Line sizes in bytes.
    pub frame_bytes: Histogram,
    /// Read -> committed (or rejected) latency of each frame, in microseconds.
    pub frame_latency_us: Histogram,
}

impl Default for TelemetrySnapshot {
    fn default() -> Self {
        Self {
            frames_by_kind: BTreeMap::new(),
            frame_bytes: Histogram::log2(32),
            frame_latency_us: Histogram::log2(40),
        }
    }
}

/// Reads the telemetry of a running or finished pipeline.
///
/// A `std::sync::Mutex`: the stage holds it for a few additions per frame, never across an
/// `.await`.
#[derive(Debug, Clone, Default)]
pub struct TelemetryHandle(Arc<Mutex<TelemetrySnapshot>>);

impl TelemetryHandle {
    pub fn snapshot(&self) -> TelemetrySnapshot {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

pub struct TelemetryStage {
    data: TelemetryHandle,
}

impl TelemetryStage {
    pub fn new() -> (Self, TelemetryHandle) {
        let data = TelemetryHandle::default();
        (Self { data: data.clone() }, data)
    }
}

impl Stage<FrameOutcome, FrameOutcome> for TelemetryStage {
    fn name(&self) -> &'static str {
        "telemetry"
    }

    fn process(
        &mut self,
        outcome: FrameOutcome,
        out: &mut Emit<FrameOutcome>,
    ) -> Result<(), PipelineError> {
        {
            let mut d = self.data.0.lock().unwrap_or_else(|p| p.into_inner());
            let kind = match (&outcome.result, outcome.meta.kind) {
                (Outcome::Rejected(_), _) | (_, None) => "rejected",
                (_, Some(kind)) => kind,
            };
            *d.frames_by_kind.entry(kind.to_owned()).or_insert(0) += 1;
            d.frame_bytes.record(outcome.meta.bytes as u64);
            let latency = outcome.meta.read_at.elapsed().as_micros();
            d.frame_latency_us
                .record(u64::try_from(latency).unwrap_or(u64::MAX));
        }
        out.push(outcome);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_and_quantiles() {
        let mut h = Histogram::log2(6);
        for v in [0, 1, 3, 3, 20, 1000] {
            h.record(v);
        }
        assert_eq!(h.bounds, vec![1, 2, 4, 8, 16]);
        assert_eq!(h.counts, vec![1, 1, 2, 0, 0, 2]);
        assert_eq!((h.count, h.sum, h.max), (6, 1027, 1000));
        assert_eq!(h.quantile_upper_bound(0.5), 4);
        assert_eq!(h.quantile_upper_bound(1.0), 1000);
    }
}
