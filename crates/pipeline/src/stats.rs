//! Counters and histograms the data path writes and the control plane reads while it runs.
use serde::Serialize;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
const BUCKETS: usize = SUB * (64 - SUB_BITS as usize + 1);

/// A log-linear histogram of `u64` values (nanoseconds, usually) with about 3 % resolution,
/// recorded with relaxed atomics so any thread can read it while the data path writes it.
///
/// Written here rather than taken from `hdrhistogram`: that crate's concurrent form hands values
/// through channels and allocates on refresh, and the data path must not allocate.
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

/// Percentiles of a histogram, in the histogram's unit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

fn index(v: u64) -> usize {
    if v < 2 * SUB as u64 {
        return v as usize;
    }
    let e = 63 - v.leading_zeros();
    let shift = e - SUB_BITS;
    SUB * (e - SUB_BITS + 1) as usize + ((v >> shift) as usize - SUB)
}

/// The middle of bucket `i`'s range.
fn value_of(i: usize) -> u64 {
    if i < 2 * SUB {
        return i as u64;
    }
    let e = (i / SUB) as u32 + SUB_BITS - 1;
    let shift = e - SUB_BITS;
    let low = ((i % SUB + SUB) as u64) << shift;
    low + (1u64 << shift) / 2
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }

    pub fn record(&self, v: u64) {
        self.buckets[index(v)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(v, Ordering::Relaxed);
        self.max.fetch_max(v, Ordering::Relaxed);
    }

    pub fn reset(&self) {
        for b in self.buckets.iter() {
            b.store(0, Ordering::Relaxed);
        }
        self.count.store(0, Ordering::Relaxed);
        self.sum.store(0, Ordering::Relaxed);
        self.max.store(0, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The value below which fraction `q` of the recorded values fall.
    pub fn quantile(&self, q: f64) -> u64 {
        let n = self.count();
        if n == 0 {
            return 0;
        }
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                return value_of(i).min(self.max.load(Ordering::Relaxed));
            }
        }
        self.max.load(Ordering::Relaxed)
    }

    pub fn percentiles(&self) -> Percentiles {
        let count = self.count();
        Percentiles {
            count,
            p50: self.quantile(0.5),
            p99: self.quantile(0.99),
            p999: self.quantile(0.999),
            max: self.max.load(Ordering::Relaxed),
            mean: if count == 0 { 0.0 } else { self.sum.load(Ordering::Relaxed) as f64 / count as f64 },
        }
    }

    /// Cumulative counts at the given upper bounds (for Prometheus buckets).
    pub fn cumulative(&self, bounds: &[u64]) -> Vec<u64> {
        bounds
            .iter()
            .map(|&b| {
                self.buckets
                    .iter()
                    .enumerate()
                    .take_while(|(i, _)| value_of(*i) <= b)
                    .map(|(_, c)| c.load(Ordering::Relaxed))
                    .sum()
            })
            .collect()
    }

    pub fn sum(&self) -> u64 {
        self.sum.load(Ordering::Relaxed)
    }
}

/// Where a stage is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StageState {
    Running,
    /// Finished normally (its inputs ended, or the pipeline stopped).
    Finished,
    /// Stopped by its `drain_then_stop` policy after an error.
    Stopped,
    /// Failed with a `fatal` error.
    Failed,
}

/// Counters of one stage.
pub struct StageStats {
    pub packets_in: AtomicU64,
    pub packets_out: AtomicU64,
    /// Samples per channel in the packets emitted (a source's: the samples acquired).
    pub samples_out: AtomicU64,
    pub errors: AtomicU64,
    /// Packets this stage could not take (it had stopped) or could not emit (pool exhausted).
    pub drops: AtomicU64,
    /// Time inside `process`/`produce`, per call, ns.
    pub process_ns: Histogram,
    /// For sinks: source-ready → this sink has the packet, ns.
    pub latency_ns: Histogram,
    /// For paced sources: deadline → awake, ns (on hardware, DRDY → user space).
    pub wake_late_ns: Histogram,
    /// For acquisition sources: samples lost to DRDY overruns (read too late, overwritten).
    pub overruns: AtomicU64,
    /// For acquisition sources: drift of the DRDY events from the nominal sample clock, ppm
    /// (`f64` bits; see [`StageStats::drift_ppm`]).
    drift_ppm: AtomicU64,
    state: AtomicU8,
    last_error: Mutex<Option<String>>,
}

impl Default for StageStats {
    fn default() -> Self {
        StageStats {
            packets_in: AtomicU64::new(0),
            packets_out: AtomicU64::new(0),
            samples_out: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            drops: AtomicU64::new(0),
            process_ns: Histogram::new(),
            latency_ns: Histogram::new(),
            wake_late_ns: Histogram::new(),
            overruns: AtomicU64::new(0),
            drift_ppm: AtomicU64::new(0),
            state: AtomicU8::new(0),
            last_error: Mutex::new(None),
        }
    }
}

impl StageStats {
    pub fn state(&self) -> StageState {
        match self.state.load(Ordering::Acquire) {
            0 => StageState::Running,
            1 => StageState::Finished,
            2 => StageState::Stopped,
            _ => StageState::Failed,
        }
    }

    /// Drift of the DRDY events from the nominal sample clock, ppm (0 for other stages).
    pub fn drift_ppm(&self) -> f64 {
        f64::from_bits(self.drift_ppm.load(Ordering::Relaxed))
    }

    pub fn set_drift_ppm(&self, ppm: f64) {
        self.drift_ppm.store(ppm.to_bits(), Ordering::Relaxed);
    }

    pub fn set_state(&self, s: StageState) {
        let v = match s {
            StageState::Running => 0,
            StageState::Finished => 1,
            StageState::Stopped => 2,
            StageState::Failed => 3,
        };
        self.state.store(v, Ordering::Release);
    }

    /// Records an error (error path only: this allocates).
    pub fn record_error(&self, message: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some(message.to_string());
        }
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_and_value_round_trip_within_resolution() {
        for v in [0u64, 1, 31, 63, 64, 65, 100, 1000, 12_345, 1 << 40, u64::MAX / 3] {
            let back = value_of(index(v));
            let err = (back as f64 - v as f64).abs() / (v.max(1) as f64);
            assert!(err <= 1.0 / SUB as f64, "{v} -> {back}");
        }
        assert!(index(u64::MAX) < BUCKETS);
    }

    #[test]
    fn percentiles_of_uniform_values() {
        let h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record(v);
        }
        let p = h.percentiles();
        assert_eq!(p.count, 10_000);
        assert!((p.p50 as f64 - 5000.0).abs() < 5000.0 * 0.04, "{p:?}");
        assert!((p.p99 as f64 - 9900.0).abs() < 9900.0 * 0.04, "{p:?}");
        assert_eq!(p.max, 10_000);
    }
}
