//! Hardware triggers of `ads1299` and `emulator`: the parameters (`triggers`, `trigger_lines`,
//! `trigger_signal`) and [`Triggers`], which turns the rising edges of the chip's GPIO pins, and
//! of Pi GPIO lines, into markers on their sample.
//!
//! A chip pin is read from every frame's status word, so its marker is on the exact sample whose
//! frame first shows it high (see `sensors::gpio` for the edge rules: one sample period is the
//! debounce and the shortest pulse, a pin held high gives one marker). A Pi GPIO line is an edge
//! event stamped by the kernel; `sensors::gpio::LineClock` puts it on the nearest sample. Either
//! way the marker's time is that sample's time on the packets' clock (first sample's time +
//! index / rate), and it is posted to [`MarkerHub`] like every other marker, so recordings,
//! the daemon's control events and the live view all get it.
//!
//! Real-time contract: after the first sample, [`Triggers::on_sample`] and
//! [`Triggers::poll_lines`] never allocate or lock (labels are `Arc<str>` made at build time;
//! posting clones them).
use crate::markers::{Marker, MarkerHub};
use pipeline::stage::ParamError;
use pipeline::StageError;
use schemars::JsonSchema;
use sensors::drdy::{elapsed_ns, Tick};
use sensors::gpio::{EdgeDetector, LineClock, TriggerSignal, PINS};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Longest trigger label, in characters.
pub const MAX_LABEL: usize = 64;
/// Most Pi GPIO trigger lines on one source.
pub const MAX_LINES: usize = 8;

/// `triggers`: a marker label for each chip GPIO pin read as a trigger input, e.g.
/// `{ gpio1: stim, gpio2: response }`. Pins not named are left as they are (inputs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerPins {
    /// Label of a rising edge on `GPIO1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpio1: Option<String>,
    /// Label of a rising edge on `GPIO2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpio2: Option<String>,
    /// Label of a rising edge on `GPIO3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpio3: Option<String>,
    /// Label of a rising edge on `GPIO4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpio4: Option<String>,
}

impl TriggerPins {
    /// `(pin, label)` for each named pin, pin 0-based (0 = `GPIO1`).
    pub fn named(&self) -> impl Iterator<Item = (usize, &str)> {
        [&self.gpio1, &self.gpio2, &self.gpio3, &self.gpio4]
            .into_iter()
            .enumerate()
            .filter_map(|(k, l)| l.as_deref().map(|l| (k, l)))
    }

    /// The named pins as a `GPIOC`-style mask (bit `k` = `GPIO(k + 1)`).
    pub fn mask(&self) -> u8 {
        self.named().fold(0, |m, (k, _)| m | 1 << k)
    }
}

/// One Pi GPIO line read as a trigger (`trigger_lines` of `ads1299`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerLine {
    /// The GPIO chip, as for `drdy` (`gpiochip0`, `/dev/gpiochip0` or `0`).
    pub chip: String,
    /// The line offset (on the Pi 5 header, the BCM GPIO number).
    pub line: u32,
    /// Label of a rising edge.
    pub label: String,
}

/// `trigger_signal` of `emulator`: a simulated TTL pulse train on a chip pin.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerSignalParams {
    /// The pin, 1–4 (`GPIO1`–`GPIO4`).
    #[schemars(range(min = 1, max = 4))]
    pub gpio: u8,
    /// Time from one rise to the next, ms; the first rise is one period after the start.
    #[schemars(range(min = 0.001))]
    pub period_ms: f64,
    /// How long each pulse stays high, ms (less than `period_ms`).
    #[schemars(range(min = 0.001))]
    pub width_ms: f64,
}

impl TriggerSignalParams {
    pub fn signal(&self) -> TriggerSignal {
        TriggerSignal {
            pin: self.gpio.clamp(1, PINS as u8) - 1,
            period_ns: (self.period_ms * 1e6).round() as u64,
            width_ns: (self.width_ms * 1e6).round() as u64,
        }
    }
}

fn check_label(param: &'static str, what: &str, label: &str, e: &mut Vec<ParamError>) {
    let n = label.chars().count();
    if n == 0 || n > MAX_LABEL {
        e.push(ParamError::new(param, format!("{what}: a label has 1 to {MAX_LABEL} characters, not {n}")));
    }
}

/// Checks `triggers`.
pub fn check_pins(p: &TriggerPins) -> Vec<ParamError> {
    let mut e = Vec::new();
    for (k, label) in p.named() {
        check_label("triggers", &format!("`gpio{}`", k + 1), label, &mut e);
    }
    e
}

/// Checks `trigger_lines` against each other and the DRDY line (`drdy_chip`, `drdy_line`).
pub fn check_lines(lines: &[TriggerLine], drdy: (&str, u32)) -> Vec<ParamError> {
    let mut e = Vec::new();
    if lines.len() > MAX_LINES {
        e.push(ParamError::new("trigger_lines", format!("{} lines: at most {MAX_LINES}", lines.len())));
    }
    let chip = |c: &str| c.trim_start_matches("/dev/").trim_start_matches("gpiochip").to_string();
    for (i, l) in lines.iter().enumerate() {
        check_label("trigger_lines", &format!("line {} of `{}`", l.line, l.chip), &l.label, &mut e);
        if (chip(&l.chip), l.line) == (chip(drdy.0), drdy.1) {
            e.push(ParamError::new(
                "trigger_lines",
                format!("line {} of `{}` is the DRDY line: wire the trigger to another line", l.line, l.chip),
            ));
        }
        if lines[..i].iter().any(|o| (chip(&o.chip), o.line) == (chip(&l.chip), l.line)) {
            e.push(ParamError::new(
                "trigger_lines",
                format!("line {} of `{}` is listed twice", l.line, l.chip),
            ));
        }
    }
    e
}

/// Checks `trigger_signal`.
pub fn check_signal(s: &TriggerSignalParams) -> Vec<ParamError> {
    let mut e = Vec::new();
    if !(1..=PINS as u8).contains(&s.gpio) {
        e.push(ParamError::new(
            "trigger_signal",
            format!("`gpio` is {}: the chip has GPIO1 to GPIO4", s.gpio),
        ));
    }
    if !(s.period_ms > 0.0 && s.width_ms > 0.0 && s.width_ms < s.period_ms) {
        e.push(ParamError::new(
            "trigger_signal",
            format!(
                "`width_ms` {} and `period_ms` {}: a pulse needs 0 < width_ms < period_ms",
                s.width_ms, s.period_ms
            ),
        ));
    }
    e
}

/// Edge events of Pi GPIO lines, read without blocking.
pub trait LineEvents: Send {
    /// The next rising edge waiting: (index of the line in `trigger_lines`, `CLOCK_MONOTONIC`
    /// ns of the edge), or `None` when there is none. Never blocks.
    fn next_edge(&mut self) -> Result<Option<(usize, u64)>, StageError>;
}

/// What an acquisition does with trigger inputs.
#[derive(Default)]
pub struct Triggers {
    pins: EdgeDetector,
    pin_labels: [Option<Arc<str>>; PINS],
    line_labels: Vec<Arc<str>>,
    lines: Option<Box<dyn LineEvents>>,
    clock: LineClock,
    rate: u32,
    /// Sample 0's time on the packets' clock (UNIX ns).
    t0_ns: i64,
    warm: bool,
}

impl Triggers {
    /// Triggers on the chip pins of `pins`, and on `lines` (labels in `trigger_lines` order).
    pub fn new(rate: u32, pins: &TriggerPins, lines: &[TriggerLine]) -> Triggers {
        let mut pin_labels: [Option<Arc<str>>; PINS] = Default::default();
        for (k, label) in pins.named() {
            pin_labels[k] = Some(Arc::from(label));
        }
        Triggers {
            pins: EdgeDetector::new(pins.mask()),
            pin_labels,
            line_labels: lines.iter().map(|l| Arc::from(l.label.as_str())).collect(),
            lines: None,
            clock: LineClock::new(rate),
            rate,
            t0_ns: 0,
            warm: false,
        }
    }

    /// True when nothing is watched.
    pub fn is_empty(&self) -> bool {
        self.pin_labels.iter().all(Option::is_none) && self.line_labels.is_empty()
    }

    /// Where the Pi GPIO lines' edges come from (opened when the source starts).
    pub fn set_lines(&mut self, lines: Box<dyn LineEvents>) {
        self.lines = Some(lines);
    }

    /// A new run: sample 0 is at `t0_ns` on the packets' clock.
    pub fn start(&mut self, t0_ns: i64) {
        self.t0_ns = t0_ns;
        self.pins.reset();
        self.clock = LineClock::new(self.rate);
        if !self.warm {
            // The first use of the hub from a thread registers it with the hub's lock-free list
            // (one allocation): do it here, not on the first trigger.
            MarkerHub::global().subscribers();
            self.warm = true;
        }
    }

    /// The time of sample `n` on the packets' clock.
    fn time_of(&self, n: u64) -> i64 {
        self.t0_ns + elapsed_ns(n, self.rate) as i64
    }

    /// Takes one sample: its tick, its DRDY's kernel time, and the chip pins' levels (the first
    /// chip's status-word `gpio` nibble). Posts a marker for each named pin that rose on it.
    #[inline]
    pub fn on_sample(&mut self, tick: Tick, drdy_ns: u64, gpio: u8) {
        // After lost samples (an overrun, counted by the clock), a rise during them shows on
        // this sample, the first one read: the marker goes here, late by the gap.
        self.clock.on_drdy(tick.index, drdy_ns);
        let mut rose = self.pins.rising(gpio);
        while rose != 0 {
            let k = rose.trailing_zeros() as usize;
            rose &= rose - 1;
            if let Some(label) = &self.pin_labels[k] {
                MarkerHub::global().post(Marker::trigger(self.time_of(tick.index), label));
            }
        }
    }

    /// Posts a marker for every Pi GPIO line edge waiting, on the sample nearest it. Call once a
    /// packet, after its samples' [`on_sample`](Self::on_sample).
    pub fn poll_lines(&mut self) -> Result<(), StageError> {
        let Some(lines) = self.lines.as_mut() else { return Ok(()) };
        while let Some((i, edge_ns)) = lines.next_edge()? {
            // An edge from before the first sample (queued since the line was requested) is not
            // part of the recording: dropped.
            let (Some(n), Some(label)) = (self.clock.sample_of(edge_ns), self.line_labels.get(i)) else {
                continue;
            };
            MarkerHub::global().post(Marker::trigger(self.t0_ns + elapsed_ns(n, self.rate) as i64, label));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markers::Origin;

    fn tick(index: u64) -> Tick {
        Tick { index, nominal_ns: 0, missed: 0 }
    }

    #[test]
    fn pins_parse_from_yaml_style_maps_and_unknown_pins_are_refused() {
        let p: TriggerPins =
            serde_json::from_value(serde_json::json!({"gpio1": "stim", "gpio3": "resp"})).unwrap();
        assert_eq!(p.named().collect::<Vec<_>>(), [(0, "stim"), (2, "resp")]);
        assert_eq!(p.mask(), 0b0101);
        assert!(serde_json::from_value::<TriggerPins>(serde_json::json!({"gpio5": "x"})).is_err());
        let long = "x".repeat(MAX_LABEL + 1);
        let e = check_pins(&TriggerPins { gpio2: Some(long), ..Default::default() });
        assert_eq!(e.len(), 1);
        assert!(e[0].message.contains("`gpio2`"), "{}", e[0].message);
    }

    #[test]
    fn lines_may_not_reuse_drdy_or_each_other() {
        let l = |chip: &str, line| TriggerLine { chip: chip.into(), line, label: "t".into() };
        let e = check_lines(&[l("gpiochip0", 25), l("0", 17), l("/dev/gpiochip0", 17)], ("gpiochip0", 25));
        let m: Vec<&str> = e.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(m[0].contains("is the DRDY line") && m[1].contains("listed twice"), "{m:?}");
        assert!(check_lines(&[l("gpiochip0", 17)], ("gpiochip0", 25)).is_empty());
    }

    #[test]
    fn a_signal_needs_a_pin_and_a_width_shorter_than_its_period() {
        let s = |gpio, period_ms, width_ms| TriggerSignalParams { gpio, period_ms, width_ms };
        assert!(check_signal(&s(1, 500.0, 10.0)).is_empty());
        assert_eq!(check_signal(&s(5, 10.0, 10.0)).len(), 2);
        assert_eq!(
            s(2, 500.0, 10.0).signal(),
            TriggerSignal { pin: 1, period_ns: 500_000_000, width_ns: 10_000_000 }
        );
    }

    struct Fake(Vec<(usize, u64)>);
    impl LineEvents for Fake {
        fn next_edge(&mut self) -> Result<Option<(usize, u64)>, StageError> {
            Ok(self.0.pop())
        }
    }

    /// One test posts to the process-wide hub, so the two kinds of trigger are checked together
    /// (tests of this binary run in parallel).
    #[test]
    fn pin_rises_and_line_edges_become_trigger_markers_on_their_samples() {
        let sub = MarkerHub::global().subscribe();
        let pins = TriggerPins { gpio2: Some("resp".into()), ..Default::default() };
        let lines = [TriggerLine { chip: "gpiochip0".into(), line: 17, label: "line".into() }];
        let mut t = Triggers::new(1000, &pins, &lines);
        // Line edges 2.4 ms and 6.6 ms after sample 0's DRDY (at kernel time 50 ms).
        t.set_lines(Box::new(Fake(vec![(0, 56_600_000), (0, 52_400_000)])));
        let t0 = 1_700_000_000_000_000_000;
        t.start(t0);
        for (n, gpio) in [0b0010, 0, 0b0010, 0b0010, 0b0011, 0, 0b0010, 0b1000].into_iter().enumerate() {
            t.on_sample(tick(n as u64), 50_000_000 + n as u64 * 1_000_000, gpio);
        }
        t.poll_lines().unwrap();
        MarkerHub::global().unsubscribe(&sub);
        let got: Vec<(i64, String, Origin)> = std::iter::from_fn(|| sub.pop())
            .filter(|m| (t0..t0 + 1_000_000_000).contains(&m.timestamp_ns))
            .map(|m| ((m.timestamp_ns - t0) / 1_000_000, m.text.to_string(), m.origin))
            .collect();
        let want = [(2, "resp"), (6, "resp"), (2, "line"), (7, "line")];
        assert_eq!(got, want.map(|(n, l)| (n, l.to_string(), Origin::Trigger)));
    }
}
