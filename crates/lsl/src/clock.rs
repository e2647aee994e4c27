//! The map between eegd's clock (packet timestamps: ns since the UNIX epoch) and LSL's clock
//! (`lsl_local_clock`: seconds on this machine's monotonic clock).
//!
//! The offset between the two is measured once, when a stage starts; after that every sample's
//! LSL time comes from its own eegd timestamp (the DRDY clock), never from the time it is pushed,
//! and a marker's eegd time from its LSL timestamp. One offset for the whole run keeps the
//! spacing of the samples exactly as acquired (a wall-clock step later does not move them).

/// `unix_ns = lsl_s × 1e9 + offset_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockMap {
    pub offset_ns: i64,
}

impl ClockMap {
    /// Measures the offset: reads the UNIX clock, the LSL clock and the UNIX clock again, a few
    /// times, and keeps the tightest bracket (its midpoint against the LSL reading).
    pub fn measure(mut lsl_s: impl FnMut() -> f64, mut unix_ns: impl FnMut() -> i64) -> ClockMap {
        let mut best = (i64::MAX, 0i64);
        for _ in 0..7 {
            let a = unix_ns();
            let l = lsl_s();
            let b = unix_ns();
            let width = b - a;
            if width >= 0 && width < best.0 {
                best = (width, a + width / 2 - secs_to_ns(l));
            }
        }
        ClockMap { offset_ns: best.1 }
    }

    /// The LSL time of an eegd timestamp.
    pub fn to_lsl(&self, unix_ns: i64) -> f64 {
        (unix_ns - self.offset_ns) as f64 * 1e-9
    }

    /// The eegd timestamp of an LSL time on this machine's clock.
    pub fn to_unix_ns(&self, lsl_s: f64) -> i64 {
        secs_to_ns(lsl_s) + self.offset_ns
    }
}

fn secs_to_ns(s: f64) -> i64 {
    (s * 1e9).round() as i64
}

/// Now on the UNIX clock, ns.
pub fn unix_now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_both_ways_at_nanosecond_precision() {
        // A machine up for 12 days, on 2026-12-01.
        let m = ClockMap { offset_ns: 1_796_083_200_000_000_000 - 1_036_800_000_000_000 };
        let unix = 1_796_083_200_123_456_789;
        let l = m.to_lsl(unix);
        assert!((l - 1_036_800.123_456_789).abs() < 1e-9, "{l}");
        assert!((m.to_unix_ns(l) - unix).abs() <= 1);
    }

    #[test]
    fn samples_keep_their_spacing_whatever_the_push_time() {
        // Samples 4 ms apart on the DRDY clock are 4 ms apart on the LSL clock, exactly.
        let m = ClockMap { offset_ns: 1_700_000_000_000_000_000 };
        let t0 = 1_700_000_100_000_000_000;
        let d: Vec<f64> = (0..1000).map(|k| m.to_lsl(t0 + k * 4_000_000) - m.to_lsl(t0)).collect();
        for (k, v) in d.iter().enumerate() {
            assert!((v - k as f64 * 0.004).abs() < 1e-9, "sample {k}: {v}");
        }
    }

    #[test]
    fn measure_takes_the_tightest_bracket() {
        // The UNIX clock reads 10 µs apart except on the fourth try (1 µs); the LSL clock
        // reads 100.0 s each time. The offset must come from the tight try.
        let unix = [0i64, 10_000, 0, 10_000, 0, 10_000, 500_000, 501_000, 0, 10_000, 0, 10_000, 0, 10_000];
        let mut k = 0;
        let m = ClockMap::measure(
            || 100.0,
            || {
                k += 1;
                unix[k - 1]
            },
        );
        assert_eq!(m.offset_ns, 500_500 - 100_000_000_000);
    }
}
