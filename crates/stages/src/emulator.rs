//! `emulator`: a built-in source that behaves like an ADS1299: raw 24-bit counts, paced by
//! absolute deadlines like the chip's DRDY, or as fast as possible.
use pipeline::rt::{monotonic_ns, realtime_ns, sleep_until_ns};
use pipeline::stage::{BuildCx, ParamError};
use pipeline::{Context, Header, Kind, Produce, Role, Stage, StageError, StageType, StreamInfo, StreamMeta};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::f64::consts::TAU;
use std::sync::Arc;

/// Sample rates the ADS1299 offers.
pub const RATES: [u32; 7] = [250, 500, 1000, 2000, 4000, 8000, 16000];
/// PGA gains the ADS1299 offers.
pub const GAINS: [u32; 7] = [1, 2, 4, 6, 8, 12, 24];
/// The ADS1299's internal reference, volts.
pub const VREF: f64 = 4.5;

/// What the emulator puts on its channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// 1/f background, 8–12 Hz alpha, line noise at `line_hz`, blinks on the frontal channels.
    #[default]
    Eeg,
    /// A sine of `sine_hz` and `amplitude_uv` on every channel.
    Sine,
    /// The ADS1299 internal test signal: a square wave of ±1.875 mV at f_CLK / 2^21 (≈ 0.98 Hz).
    Test,
}

/// How a paced emulator wakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Pace {
    /// Once per packet, at the deadline of its last sample.
    #[default]
    Batch,
    /// Once per sample, as the chip's DRDY does.
    Drdy,
}

fn d_channels() -> usize {
    8
}
fn d_rate() -> u32 {
    4000
}
fn d_gain() -> u32 {
    24
}
fn d_line() -> f64 {
    50.0
}
fn d_sine_hz() -> f64 {
    10.0
}
fn d_amp() -> f64 {
    50.0
}
fn d_true() -> bool {
    true
}

/// Parameters of `emulator`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmulatorParams {
    /// Number of channels (default 8).
    #[serde(default = "d_channels")]
    #[schemars(range(min = 1, max = 32))]
    pub channels: usize,
    /// Samples per second per channel: 250, 500, 1000, 2000, 4000 (default), 8000 or 16000.
    #[serde(default = "d_rate")]
    pub rate: u32,
    /// PGA gain: 1, 2, 4, 6, 8, 12 or 24 (default).
    #[serde(default = "d_gain")]
    pub gain: u32,
    /// Samples per packet; default rate / 250 (a packet every 4 ms).
    #[serde(default)]
    #[schemars(range(min = 1, max = 4096))]
    pub batch: Option<usize>,
    /// What to generate (default `eeg`).
    #[serde(default)]
    pub signal: Signal,
    /// Line-noise frequency in Hz for `eeg` (default 50).
    #[serde(default = "d_line")]
    #[schemars(range(min = 0.0, max = 1000.0))]
    pub line_hz: f64,
    /// Frequency of the `sine` signal in Hz (default 10).
    #[serde(default = "d_sine_hz")]
    #[schemars(range(min = 0.0, max = 8000.0))]
    pub sine_hz: f64,
    /// Amplitude of the `sine` signal in µV (default 50).
    #[serde(default = "d_amp")]
    #[schemars(range(min = 0.0, max = 4.5e6))]
    pub amplitude_uv: f64,
    /// Seed of the noise generator: the same seed gives the same samples (default 0).
    #[serde(default)]
    pub seed: u64,
    /// Paced by the clock like the chip (default true), or as fast as possible.
    #[serde(default = "d_true")]
    pub realtime: bool,
    /// Wake once per packet (`batch`, default) or once per sample (`drdy`).
    #[serde(default)]
    pub pace: Pace,
}

/// The emulator source.
pub struct Emulator {
    p: EmulatorParams,
    batch: usize,
    uv_per_count: f64,
    meta: Arc<StreamMeta>,
    stream_id: u16,
    /// Samples produced so far (per channel).
    n: u64,
    seq: u64,
    start_mono: u64,
    start_real: i64,
    started: bool,
    rng: u64,
    /// Per-channel 1/f state (three one-pole low-passes of white noise, Voss–McCartney style).
    pink: Vec<[f64; 3]>,
    /// Per-channel phase offsets of alpha.
    phase: Vec<f64>,
    blink_until: u64,
}

/// xorshift64*: small, fast and deterministic; statistical quality is ample for test signals.
fn next_u64(s: &mut u64) -> u64 {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    s.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

fn uniform(s: &mut u64) -> f64 {
    (next_u64(s) >> 11) as f64 / (1u64 << 53) as f64
}

fn gaussian(s: &mut u64) -> f64 {
    // Irwin–Hall with 4 terms: bounded and cheap, close enough to normal for a background.
    (uniform(s) + uniform(s) + uniform(s) + uniform(s) - 2.0) * 1.732
}

/// 10-20 labels for the first channels, `Ch<n>` after.
pub fn channel_labels(n: usize) -> Vec<String> {
    const TEN_TWENTY: [&str; 8] = ["Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "O2"];
    (0..n).map(|i| if n <= 8 { TEN_TWENTY[i].to_string() } else { format!("Ch{}", i + 1) }).collect()
}

impl Emulator {
    /// One sample of channel `ch` at sample index `n`, in µV.
    fn sample_uv(&mut self, ch: usize, n: u64) -> f64 {
        let t = n as f64 / self.p.rate as f64;
        match self.p.signal {
            Signal::Sine => self.p.amplitude_uv * (TAU * self.p.sine_hz * t).sin(),
            Signal::Test => {
                let f = 2.048e6 / (1u64 << 21) as f64;
                if (t * f).fract() < 0.5 {
                    1875.0
                } else {
                    -1875.0
                }
            }
            Signal::Eeg => {
                let w = gaussian(&mut self.rng);
                let st = &mut self.pink[ch];
                // Three poles spread over the band give an approximately 1/f spectrum.
                let rate = self.p.rate as f64;
                for (k, fc) in [2.0, 20.0, 200.0].into_iter().enumerate() {
                    let a = (-TAU * fc / rate).exp();
                    st[k] = a * st[k] + (1.0 - a) * w * (rate / fc).sqrt();
                }
                let background = 4.0 * (st[0] + st[1] + st[2]);
                let alpha_env = 0.6 + 0.4 * (TAU * 0.1 * t + self.phase[ch]).sin();
                let alpha = 20.0 * alpha_env * (TAU * 10.0 * t + self.phase[ch]).sin();
                let line = 5.0 * (TAU * self.p.line_hz * t).sin();
                let blink = if ch < 2 && n < self.blink_until {
                    let left = (self.blink_until - n) as f64 / (0.3 * rate);
                    150.0 * (std::f64::consts::PI * left).sin()
                } else {
                    0.0
                };
                background + alpha + line + blink
            }
        }
    }

    fn fill(&mut self, cx: &mut Context<'_>, deadline: Option<u64>) -> Result<(), StageError> {
        let (ch, batch, n0) = (self.p.channels, self.batch, self.n);
        let rate = self.p.rate as i64;
        let ts =
            self.start_real + (n0 as i64 / rate) * 1_000_000_000 + (n0 as i64 % rate) * 1_000_000_000 / rate;
        let header = Header {
            stream_id: self.stream_id,
            kind: Kind::Raw,
            seq: self.seq,
            timestamp_ns: ts,
            rate: self.p.rate as f64,
            channels: ch as u32,
            samples: batch as u32,
            ready_ns: 0,
            meta: self.meta.clone(),
        };
        self.seq += 1;
        self.n += batch as u64;
        if self.p.signal == Signal::Eeg && self.n > self.blink_until + 2 * self.p.rate as u64 {
            // A blink every few seconds on average, 300 ms long.
            if uniform(&mut self.rng) < batch as f64 / (4.0 * self.p.rate as f64) {
                self.blink_until = self.n + (0.3 * self.p.rate as f64) as u64;
            }
        }
        let mut pkt = match cx.alloc(header) {
            Ok(p) => p,
            Err(_) => {
                // The chip does not wait either: the samples are lost, counted, and the gap
                // shows in `seq`.
                cx.count_drop(1);
                return Ok(());
            }
        };
        {
            let mut m = pkt.make_mut()?;
            let out = m.i32s_mut();
            let full = (1i64 << 23) - 1;
            for i in 0..batch {
                if self.p.pace == Pace::Drdy {
                    if let Some(d) = deadline {
                        let sample_deadline =
                            d - ((batch - 1 - i) as u64 * 1_000_000_000) / self.p.rate as u64;
                        sleep_until_ns(sample_deadline);
                    }
                }
                for c in 0..ch {
                    let uv = self.sample_uv(c, n0 + i as u64);
                    let counts = (uv / self.uv_per_count).round() as i64;
                    out[c * batch + i] = counts.clamp(-full - 1, full) as i32;
                }
            }
            m.header_mut().ready_ns = monotonic_ns();
        }
        cx.emit(pkt);
        Ok(())
    }
}

impl Stage for Emulator {
    fn produce(&mut self, cx: &mut Context<'_>) -> Result<Produce, StageError> {
        if !self.started {
            self.started = true;
            self.start_mono = monotonic_ns();
            self.start_real = realtime_ns();
        }
        if !self.p.realtime {
            self.fill(cx, None)?;
            return Ok(Produce::Ready);
        }
        // Absolute deadline of this packet's last sample: lateness never accumulates.
        let last = self.n + self.batch as u64;
        let rate = self.p.rate as u64;
        let deadline = self.start_mono + (last / rate) * 1_000_000_000 + (last % rate) * 1_000_000_000 / rate;
        if self.p.pace == Pace::Batch {
            sleep_until_ns(deadline);
        }
        self.fill(cx, Some(deadline))?;
        // Batch pacing: the one wake's lateness. DRDY pacing: the last sample's wake, plus the
        // (sub-microsecond) work on that one sample.
        cx.stats().wake_late_ns.record(monotonic_ns().saturating_sub(deadline));
        Ok(Produce::Ready)
    }
}

impl StageType for Emulator {
    type Params = EmulatorParams;
    const NAME: &'static str = "emulator";
    const ROLE: Role = Role::Source;
    const ACCEPTS: &'static [Kind] = &[];
    const DOC: &'static str = "A built-in ADS1299 stand-in: raw 24-bit counts with correct headers, \
        paced by absolute deadlines like the chip's DRDY (or unpaced).\n\nInputs: none. Outputs: raw counts.";
    const EXAMPLE: &'static str =
        "stages:\n  - emulator: { channels: 8, rate: 1000, gain: 24, signal: sine, sine_hz: 10, amplitude_uv: 100 }\n  - null_sink: {}\n";

    fn check(p: &Self::Params) -> Vec<ParamError> {
        let mut e = Vec::new();
        if !RATES.contains(&p.rate) {
            e.push(ParamError::new(
                "rate",
                format!("{} is not an ADS1299 rate (one of {:?})", p.rate, RATES),
            ));
        }
        if !GAINS.contains(&p.gain) {
            e.push(ParamError::new(
                "gain",
                format!("{} is not an ADS1299 gain (one of {:?})", p.gain, GAINS),
            ));
        }
        e
    }

    fn build(
        p: &Self::Params,
        _: &[StreamInfo],
        cx: &BuildCx<'_>,
    ) -> Result<(Self, Option<StreamInfo>), ParamError> {
        let batch = p.batch.unwrap_or((p.rate / 250) as usize).max(1);
        let meta = Arc::new(StreamMeta {
            stream_id: cx.stream_id,
            labels: channel_labels(p.channels),
            units: "counts".into(),
            gains: vec![p.gain as f64; p.channels],
            vref: VREF,
            sensor_id: "emulator".into(),
            ..Default::default()
        });
        let out = StreamInfo {
            kind: Kind::Raw,
            rate: p.rate as f64,
            channels: p.channels,
            max_samples: batch,
            meta: meta.clone(),
        };
        let mut rng = p.seed ^ 0x9E37_79B9_7F4A_7C15;
        let phase = (0..p.channels).map(|_| uniform(&mut rng) * TAU).collect();
        Ok((
            Emulator {
                p: p.clone(),
                batch,
                uv_per_count: crate::to_voltage::uv_per_count(VREF, p.gain as f64),
                meta,
                stream_id: cx.stream_id,
                n: 0,
                seq: 0,
                start_mono: 0,
                start_real: 0,
                started: false,
                rng,
                pink: vec![[0.0; 3]; p.channels],
                phase,
                blink_until: 0,
            },
            Some(out),
        ))
    }
}

pipeline::register_stage!(Emulator);

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::testing::Harness;

    #[test]
    fn emits_sine_counts_with_continuous_headers() {
        let params = serde_json::json!({"channels": 2, "rate": 1000, "gain": 24, "signal": "sine",
            "sine_hz": 10, "amplitude_uv": 100, "realtime": false, "batch": 50});
        let mut h = Harness::new("emulator", params, &[], 8).unwrap();
        let mut peak = 0i32;
        for k in 0..4u64 {
            let (_, out) = h.produce().unwrap();
            let p = &out[0];
            let hd = p.header();
            assert_eq!((hd.kind, hd.seq, hd.channels, hd.samples), (Kind::Raw, k, 2, 50));
            assert_eq!(hd.rate, 1000.0);
            peak = peak.max(p.i32s().iter().copied().max().unwrap());
        }
        let expect = (100.0 / crate::to_voltage::uv_per_count(VREF, 24.0)).round() as i32;
        assert!((peak - expect).abs() <= 2, "peak {peak} counts, expected {expect}");
    }

    #[test]
    fn timestamps_advance_by_n_over_rate() {
        let params = serde_json::json!({"rate": 250, "batch": 3, "realtime": false});
        let mut h = Harness::new("emulator", params, &[], 8).unwrap();
        let t0 = h.produce().unwrap().1[0].header().timestamp_ns;
        let t1 = h.produce().unwrap().1[0].header().timestamp_ns;
        assert_eq!(t1 - t0, 12_000_000);
    }

    #[test]
    fn same_seed_same_samples() {
        let run = |seed: u64| {
            let params = serde_json::json!({"seed": seed, "realtime": false, "rate": 250});
            let mut h = Harness::new("emulator", params, &[], 8).unwrap();
            h.produce().unwrap().1[0].i32s().to_vec()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn rejects_rates_the_chip_lacks() {
        let e =
            EmulatorParams { rate: 300, gain: 3, ..serde_json::from_value(serde_json::json!({})).unwrap() };
        let errs = Emulator::check(&e);
        assert_eq!(errs.iter().map(|e| e.param).collect::<Vec<_>>(), ["rate", "gain"]);
    }
}
