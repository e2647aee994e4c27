//! Waiting for DRDY, and the sample clock built from the DRDY events.

/// One DRDY falling edge: a new frame is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrdyEvent {
    /// When the edge happened, `CLOCK_MONOTONIC` ns (on Linux the kernel's interrupt
    /// timestamp, not the time the waiter woke).
    pub timestamp_ns: u64,
    /// DRDY edges since the previous event that the waiter did not see: their frames are lost
    /// (the chip keeps only the latest). Non-zero means an overrun.
    pub missed: u32,
}

/// Waits for DRDY. Implementations block (an interrupt, a timer), never poll.
pub trait Drdy {
    type Error: core::fmt::Debug;

    /// Blocks until the next DRDY, or for at most `timeout_ns`: `Ok(None)` on time-out (so a
    /// caller can notice a stop request, or a chip that stopped converting).
    fn wait(&mut self, timeout_ns: u64) -> Result<Option<DrdyEvent>, Self::Error>;

    /// Discards DRDY edges already queued (from before the host's `START`: a chip left running
    /// by an earlier run, or edges during configuration), so the first event after `START` is
    /// its first conversion. Returns how many were dropped.
    fn flush(&mut self) -> Result<u32, Self::Error> {
        Ok(0)
    }
}

/// `n / rate` seconds in ns, exactly (integer arithmetic: no drift however large `n`).
#[inline]
pub fn elapsed_ns(n: u64, rate_hz: u32) -> u64 {
    let r = rate_hz.max(1) as u64;
    (n / r) * 1_000_000_000 + (n % r) * 1_000_000_000 / r
}

/// What the tracker made of one DRDY event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// The sample's index since the first DRDY (counting missed ones).
    pub index: u64,
    /// Its nominal time: first DRDY + index / rate, `CLOCK_MONOTONIC` ns.
    pub nominal_ns: u64,
    /// Samples lost just before this one (0 normally).
    pub missed: u64,
}

/// The nominal sample clock (the first DRDY, then + n / rate) and how the DRDY events drift
/// from it. An overrun is a DRDY the waiter reported missing, or a gap of at least 1.5
/// periods between events; both are counted.
#[derive(Debug, Clone)]
pub struct ClockTracker {
    rate: u32,
    first_ns: Option<u64>,
    last_ns: u64,
    index: u64,
    overruns: u64,
    missed: u64,
    drift_ppm: f64,
    overlapped: u64,
}

impl ClockTracker {
    pub fn new(rate_hz: u32) -> Self {
        ClockTracker {
            rate: rate_hz.max(1),
            first_ns: None,
            last_ns: 0,
            index: 0,
            overruns: 0,
            missed: 0,
            drift_ppm: 0.0,
            overlapped: 0,
        }
    }

    /// Takes the next DRDY event.
    pub fn on_drdy(&mut self, ev: DrdyEvent) -> Tick {
        let Some(first) = self.first_ns else {
            self.first_ns = Some(ev.timestamp_ns);
            self.last_ns = ev.timestamp_ns;
            return Tick { index: 0, nominal_ns: ev.timestamp_ns, missed: 0 };
        };
        let gap = ev.timestamp_ns.saturating_sub(self.last_ns);
        let rate = self.rate as u64;
        // Gaps of at least 1.5 periods: gap × rate ≥ 1.5e9. Periods lost = round(gap / T) − 1.
        let periods_x1e9 = gap.saturating_mul(rate);
        let inferred = if periods_x1e9 >= 1_500_000_000 {
            periods_x1e9.saturating_add(500_000_000) / 1_000_000_000 - 1
        } else {
            0
        };
        let missed = inferred.max(ev.missed as u64);
        if missed > 0 {
            self.overruns += 1;
            self.missed += missed;
        }
        self.index += 1 + missed;
        self.last_ns = ev.timestamp_ns;
        let nominal = elapsed_ns(self.index, self.rate);
        let actual = ev.timestamp_ns.wrapping_sub(first) as i64;
        self.drift_ppm = actual.wrapping_sub(nominal as i64) as f64 / nominal as f64 * 1e6;
        Tick { index: self.index, nominal_ns: first + nominal, missed }
    }

    /// The nominal time of sample `n`: first DRDY + n / rate (`None` before the first DRDY).
    pub fn nominal_ns(&self, n: u64) -> Option<u64> {
        self.first_ns.map(|f| f + elapsed_ns(n, self.rate))
    }

    /// How far the DRDY events run ahead (+) or behind (−) the nominal clock, in parts per
    /// million of the time since the first DRDY, as of the latest event.
    pub fn drift_ppm(&self) -> f64 {
        self.drift_ppm
    }

    /// Overrun episodes (each one or more lost samples in a row).
    pub fn overruns(&self) -> u64 {
        self.overruns
    }

    /// Samples lost in all.
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// The host finished reading the latest DRDY's frame at `end_ns` (same clock as the DRDY
    /// timestamps). True if the read ran into the next conversion's update, tUPDATE before the
    /// next DRDY: the chip reloaded its output register mid-read, so the frame is corrupt.
    /// Counted in [`overlapped`](Self::overlapped).
    pub fn read_done(&mut self, end_ns: u64) -> bool {
        if self.first_ns.is_none() {
            return false;
        }
        let update = (self.last_ns + elapsed_ns(1, self.rate)).saturating_sub(crate::timing::T_UPDATE_NS);
        let late = end_ns > update;
        self.overlapped += late as u64;
        late
    }

    /// Frames whose read overlapped the next update (see [`read_done`](Self::read_done)).
    pub fn overlapped(&self) -> u64 {
        self.overlapped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: u64) -> DrdyEvent {
        DrdyEvent { timestamp_ns: t, missed: 0 }
    }

    #[test]
    fn nominal_time_is_exact_at_any_index() {
        assert_eq!(elapsed_ns(3, 4000), 750_000);
        // 1/3 of a second is not a whole number of ns: no error accumulates over a day.
        assert_eq!(elapsed_ns(3 * 86_400 * 250 + 1, 750), 86_400_000_000_000 + 1_333_333);
        let mut c = ClockTracker::new(250);
        c.on_drdy(ev(1_000));
        assert_eq!(c.nominal_ns(250), Some(1_000_001_000));
    }

    #[test]
    fn measures_drift_in_ppm() {
        // A chip whose clock runs 100 ppm fast: 4 ms periods shortened by 400 ns.
        let mut c = ClockTracker::new(250);
        for n in 0..=2500u64 {
            c.on_drdy(ev(5_000 + n * 3_999_600));
        }
        assert!((c.drift_ppm() + 100.0).abs() < 0.01, "{}", c.drift_ppm());
        assert_eq!(c.overruns(), 0);
    }

    #[test]
    fn counts_gaps_and_reported_misses_as_overruns() {
        let mut c = ClockTracker::new(1000);
        let p = 1_000_000;
        assert_eq!(c.on_drdy(ev(0)).index, 0);
        assert_eq!(c.on_drdy(ev(p)).index, 1);
        assert_eq!(c.on_drdy(ev(2 * p + p / 3)).missed, 0, "1.33 periods is jitter");
        let t = c.on_drdy(ev(5 * p));
        assert_eq!((t.index, t.missed, t.nominal_ns), (5, 2, 5 * p));
        let t = c.on_drdy(DrdyEvent { timestamp_ns: 6 * p, missed: 1 });
        assert_eq!((t.index, t.missed), (7, 1), "the waiter's count beats a short gap");
        assert_eq!((c.overruns(), c.missed()), (2, 3));
    }
}
