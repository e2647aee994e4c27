//! Hardware triggers: the ADS1299's four GPIO pins read from every frame's status word, a
//! simulated TTL pulse train on one of them, and the placement of a Pi GPIO line's kernel-stamped
//! edges on the sample clock.
//!
//! The chip's pins (datasheet SBAS499, 9.6 "Register Maps", the register description "GPIO:
//! General-Purpose I/O Register (address = 14h) (reset = 0Fh)"): `GPIOC[4:1]` (bits [3:0]) set
//! each pin's direction, 1 = input (the reset value: all four inputs); `GPIOD[4:1]` (bits [7:4])
//! read back the pins' levels, whether inputs or outputs, and set an output's level (a write to
//! an input's `GPIOD` bit has no effect). In RDATAC mode the same `GPIOD` bits close every
//! frame's 24-bit status word (9.5 "Programming", reading data: `1100` + `LOFF_STATP` +
//! `LOFF_STATN` + bits [7:4] of the `GPIO` register), so a pin is sampled once per conversion,
//! with the channels of that same sample.
//!
//! Edge rules ([`EdgeDetector`]): a rising edge is a pin read high on a sample after it was read
//! low on the previous one. That per-conversion sampling is the debounce: nothing between two
//! samples is seen, so a pulse must stay high for at least one sample period (1 / rate: 4 ms at
//! 250 SPS, 1 ms at 1000 SPS) and then low for at least one sample period to be sure to give one
//! marker; a shorter pulse may be missed, and a contact bouncing for longer than a sample period
//! gives one marker per bounce seen (TTL outputs of stimulus computers do not bounce). A pin held
//! high gives one marker, at its rise. A pin already high on the first sample read is not an
//! edge (when it rose is unknown).
use crate::drdy::elapsed_ns;
use crate::registers::gpio::{GPIOC_MASK, GPIOD_MASK};

/// GPIO pins on one ADS1299.
pub const PINS: usize = 4;

/// The levels the pins report (bit `k` = `GPIO(k + 1)`), given the `GPIO` register and the
/// levels driven on the pins from outside: an input reports what is driven on it, an output the
/// level written to its `GPIOD` bit.
pub fn pin_levels(gpio_register: u8, driven: u8) -> u8 {
    let inputs = gpio_register & GPIOC_MASK;
    let outputs = (gpio_register & GPIOD_MASK) >> 4;
    (driven & inputs) | (outputs & !inputs & GPIOC_MASK)
}

/// Finds rising edges in the status word's GPIO bits, sample by sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EdgeDetector {
    /// Pins watched, bit `k` = `GPIO(k + 1)`.
    mask: u8,
    /// The watched pins' levels on the previous sample (`None` before the first).
    last: Option<u8>,
}

impl EdgeDetector {
    /// Watches the pins of `mask` (bit `k` = `GPIO(k + 1)`).
    pub fn new(mask: u8) -> Self {
        EdgeDetector { mask: mask & GPIOC_MASK, last: None }
    }

    /// Takes one sample's pin levels (the status word's `gpio` nibble); returns the watched pins
    /// that rose on this sample.
    #[inline]
    pub fn rising(&mut self, levels: u8) -> u8 {
        let now = levels & self.mask;
        let rose = self.last.map_or(0, |before| now & !before);
        self.last = Some(now);
        rose
    }

    /// Forgets the previous sample (a new run).
    pub fn reset(&mut self) {
        self.last = None;
    }
}

/// A simulated TTL pulse train on one of the chip's pins, on the simulated sample clock: the pin
/// rises at `period`, 2 × `period`, … after `START` and stays high for `width` each time (it is
/// low at `START`, so the first rise is a real edge). Sample `n` (at `n / rate`) reads it high
/// when `n / rate` falls in a pulse: each rise lands on the first sample at or after it, exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TriggerSignal {
    /// The pin, 0-based (0 = `GPIO1`).
    pub pin: u8,
    pub period_ns: u64,
    pub width_ns: u64,
}

impl TriggerSignal {
    /// The levels driven on the pins at sample `n` (bit `pin` set while the pulse is high).
    #[inline]
    pub fn driven(&self, n: u64, rate: u32) -> u8 {
        let t = elapsed_ns(n, rate);
        let period = self.period_ns.max(1);
        if t >= period && t % period < self.width_ns {
            1 << (self.pin as usize % PINS)
        } else {
            0
        }
    }
}

/// Places a Pi GPIO line's edges on the ADS1299's sample clock.
///
/// Both clocks are the kernel's: DRDY and the trigger line are edge events on GPIO character
/// devices, each stamped with `CLOCK_MONOTONIC` in the interrupt handler. An edge at kernel time
/// `t` is put on the sample nearest it, counted from the latest DRDY (`anchor`, sample `i` at
/// kernel time `d`):
///
/// ```text
/// n = i + round((t − d) × rate / 1e9)
/// ```
///
/// Anchoring on the latest DRDY rather than on the first one (the nominal clock, first DRDY +
/// n / rate) keeps the chip's clock drift out: the chip's oscillator and the Pi's differ by up
/// to ±(50 + 20) ppm or so, which over an hour is 0.25 s on the nominal clock but 0.3 µs over the
/// 4 ms since the latest DRDY.
///
/// Error bound: the edge's place on the sample clock is off by at most `(J_drdy + J_line) ×
/// rate` samples (plus the drift since the anchor, negligible), where `J` is each interrupt's
/// timestamp jitter (tens of µs on a Pi 5). Rounding then puts it on the nearest sample, or on
/// its neighbour when the edge falls within that error of the midpoint between two samples. So
/// while `J_drdy + J_line` is under half a sample period (2 ms at 250 SPS, 31 µs at 16 kSPS),
/// every edge lands within one sample of the true nearest one; the tests below check it on a
/// simulated drifting, jittery clock. A chip pin (the status word) has no such error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineClock {
    rate: u32,
    /// The latest DRDY: (sample index, kernel time ns).
    anchor: Option<(u64, u64)>,
}

impl LineClock {
    pub fn new(rate_hz: u32) -> Self {
        LineClock { rate: rate_hz.max(1), anchor: None }
    }

    /// Takes a DRDY: sample `index` was ready at kernel time `drdy_ns`.
    #[inline]
    pub fn on_drdy(&mut self, index: u64, drdy_ns: u64) {
        self.anchor = Some((index, drdy_ns));
    }

    /// The sample nearest kernel time `edge_ns` (`None` before the first DRDY, or for an edge
    /// nearer a time before sample 0: it happened before the acquisition).
    pub fn sample_of(&self, edge_ns: u64) -> Option<u64> {
        let (i, d) = self.anchor?;
        let rate = self.rate as i128;
        let dt = edge_ns as i128 - d as i128;
        // round(dt × rate / 1e9), half away from zero, in integers.
        let num = dt * rate;
        let half = 500_000_000i128;
        let steps = if num >= 0 { (num + half) / 1_000_000_000 } else { -((-num + half) / 1_000_000_000) };
        u64::try_from(i as i128 + steps).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_report_what_is_driven_and_outputs_their_own_level() {
        // All inputs (the reset value): every driven level shows.
        assert_eq!(pin_levels(0x0F, 0b1010), 0b1010);
        // GPIO1 an output written low, GPIO2–4 inputs: GPIO1 ignores what is driven on it.
        assert_eq!(pin_levels(0x0E, 0b0001), 0);
        // GPIO1 an output written high.
        assert_eq!(pin_levels(0x1E, 0b0000), 0b0001);
        assert_eq!(pin_levels(0x1E, 0b0100), 0b0101);
    }

    #[test]
    fn one_marker_per_rise_and_none_while_held_high() {
        let mut d = EdgeDetector::new(0b0011);
        // Already high on the first sample: unknown rise, no edge.
        assert_eq!(d.rising(0b0001), 0);
        assert_eq!(d.rising(0b0001), 0, "held high");
        assert_eq!(d.rising(0b0000), 0);
        assert_eq!(d.rising(0b0001), 0b0001);
        assert_eq!(d.rising(0b0011), 0b0010, "GPIO2 rises while GPIO1 is still high");
        assert_eq!(d.rising(0b1111), 0, "GPIO3/4 are not watched");
        d.reset();
        assert_eq!(d.rising(0b0000), 0);
        assert_eq!(d.rising(0b0011), 0b0011);
    }

    #[test]
    fn the_simulated_pulse_rises_on_exact_samples() {
        let s = TriggerSignal { pin: 0, period_ns: 500_000_000, width_ns: 10_000_000 };
        let high: Vec<u64> = (0..1600).filter(|&n| s.driven(n, 1000) != 0).collect();
        let expect: Vec<u64> = [500, 1000, 1500].iter().flat_map(|&k| k..k + 10).collect();
        assert_eq!(high, expect);
        // At 250 SPS a 6 ms period rises at 6, 12, 18 ms: on the first sample at or after.
        let s = TriggerSignal { pin: 2, period_ns: 6_000_000, width_ns: 1_000_000 };
        let high: Vec<u64> = (0..6).filter(|&n| s.driven(n, 250) != 0).collect();
        assert_eq!(high, [3], "12 ms is sample 3; 6 and 18 ms fall between samples");
        assert_eq!(s.driven(3, 250), 0b0100);
    }

    /// A tiny deterministic generator (xorshift), so the test needs no crate.
    fn jitter(state: &mut u64, max_ns: i64) -> i64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        (*state % (2 * max_ns as u64 + 1)) as i64 - max_ns
    }

    /// A chip clock 80 ppm slow and DRDY / line interrupts each stamped within ±20 µs, for an
    /// hour at 250 SPS: every edge lands within one sample of the true nearest one, while the
    /// nominal clock (first DRDY + n / rate) ends 72 samples off.
    #[test]
    fn line_edges_land_within_one_sample_on_a_drifting_jittery_clock() {
        let rate = 250u32;
        let period = 4_000_000.0 * (1.0 + 80e-6); // true sample period, ns
        let start = 1_000_000_000u64;
        let true_ns = |k: f64| start as f64 + k * period;
        let mut c = LineClock::new(rate);
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let (mut worst, mut checked, mut exact, mut nominal_off) = (0i64, 0, 0, 0i64);
        let samples = 3600 * rate as u64;
        for k in 0..samples {
            let drdy = (true_ns(k as f64) as i64 + jitter(&mut rng, 20_000)) as u64;
            c.on_drdy(k, drdy);
            if k % 997 == 0 {
                // An edge somewhere in the next period, as the host would read it after this DRDY.
                let frac = (jitter(&mut rng, 500) + 500) as f64 / 1000.0;
                let edge_true = true_ns(k as f64 + frac);
                let stamped = (edge_true as i64 + jitter(&mut rng, 20_000)) as u64;
                let nearest = ((edge_true - start as f64) / period).round() as i64;
                let got = c.sample_of(stamped).unwrap() as i64;
                worst = worst.max((got - nearest).abs());
                exact += (got == nearest) as usize;
                let nominal = ((stamped - start) as f64 * rate as f64 / 1e9).round() as i64;
                nominal_off = (nominal - nearest).abs();
                checked += 1;
            }
        }
        assert!(checked > 900);
        assert!(worst <= 1, "an edge landed {worst} samples from the nearest one");
        // Only edges within the jitter (≤ 40 µs of 4 ms) of a midpoint may land next door.
        eprintln!("{exact} of {checked} edges on the nearest sample, the rest on its neighbour");
        assert!(exact * 100 >= checked * 97, "{exact} of {checked} on the nearest sample");
        assert!(nominal_off >= 70, "the nominal clock drifts ({nominal_off} samples): anchoring matters");
    }

    #[test]
    fn edges_before_the_anchor_round_to_the_nearest_sample() {
        let mut c = LineClock::new(1000);
        assert_eq!(c.sample_of(5), None, "no DRDY yet");
        c.on_drdy(10, 10_000_000);
        assert_eq!(c.sample_of(10_000_000), Some(10));
        assert_eq!(c.sample_of(10_499_999), Some(10));
        assert_eq!(c.sample_of(10_500_000), Some(11));
        assert_eq!(c.sample_of(8_600_000), Some(9), "1.4 ms before: 1 sample back");
        assert_eq!(c.sample_of(8_400_000), Some(8));
        assert_eq!(c.sample_of(0), Some(0), "sample 0 was at 0 ms");
        c.on_drdy(0, 10_000_000);
        assert_eq!(c.sample_of(9_600_000), Some(0));
        assert_eq!(c.sample_of(9_400_000), None, "nearer sample −1: before the acquisition");
    }
}
