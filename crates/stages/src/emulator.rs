//! `emulator`: a built-in source that is an ADS1299 in all but silicon: the real driver
//! configures a simulated chip over its SPI protocol and parses its RDATAC frames, the
//! simulated electrodes carry an EEG-like signal, a sine or the chip's internal test signal,
//! and DRDY is paced by absolute deadlines (or not at all).
use crate::ads1299::{
    channel_labels as labels, chip_config, data_rate, gain_error, input_mux, rate_error, Acquisition,
    AcquisitionSpec, GainSetting, Input,
};
use crate::quality::LeadOffParams;
use pipeline::stage::{BuildCx, ParamError};
use pipeline::{Context, Kind, Produce, Role, Stage, StageError, StageType, StreamInfo, StreamMeta};
use schemars::JsonSchema;
use sensors::registers::{Gain, Mux, CHANNELS, MAX_CHIPS};
use sensors::signal::{SignalModel, SignalParams, Waveform};
use sensors::sim::{Electrode, Pacing, SimChain, SimDrdy};
use sensors::{Ads1299, ChannelConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

pub use crate::ads1299::{GAINS, RATES, VREF};

/// 10-20 labels for the first channels, `Ch<n>` after.
pub fn channel_labels(n: usize) -> Vec<String> {
    labels(n)
}

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
fn d_kohm() -> f64 {
    5.0
}

/// One simulated electrode (`electrodes` of `emulator`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ElectrodeParams {
    /// Electrode–skin impedance, kΩ (default 5). The board's 2.2 kΩ series resistor comes on top.
    #[serde(default = "d_kohm")]
    #[schemars(range(min = 0.0, max = 100_000.0))]
    pub impedance_kohm: f64,
    /// Off the skin: the input rails, and its lead-off bit rises where lead-off is on (default
    /// false).
    #[serde(default)]
    pub disconnected: bool,
}

impl Default for ElectrodeParams {
    fn default() -> Self {
        ElectrodeParams { impedance_kohm: 5.0, disconnected: false }
    }
}

/// Parameters of `emulator`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
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
    /// End after this many samples per channel (default: never), e.g. `rate × seconds` for a
    /// fixed-length unpaced run.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub samples: Option<u64>,
    /// Every channel's input, as on `ads1299`: `normal` (default: the electrodes), `shorted`
    /// (the chip's own noise, as the datasheet gives it), `test_signal`, `bias_meas`, `mvdd`,
    /// `temperature`. `signal: test` implies `test_signal`. Changes apply live.
    #[serde(default)]
    pub input: Input,
    /// Lead-off detection, as on `ads1299`: `{ mode: off | dc | ac, current_na }`; its current
    /// flows through each electrode's impedance. Changes apply live.
    #[serde(default)]
    pub lead_off: LeadOffParams,
    /// Per channel label, the simulated electrode: `{ impedance_kohm, disconnected }` (default
    /// 5 kΩ, connected). Changes apply live.
    #[serde(default)]
    pub electrodes: BTreeMap<String, ElectrodeParams>,
    /// Test parameter: labels of channels whose simulated input stage is broken (they read 0
    /// whatever the input), so a self-test fails them (default none).
    #[serde(default)]
    pub broken_channels: Vec<String>,
    /// Channel labels, one per channel (default Fp1 Fp2 C3 C4 P7 P8 O1 O2, then Ch9, Ch10, …):
    /// the names in the stream metadata, the API and the files.
    #[serde(default)]
    pub labels: Vec<String>,
}

/// The emulator source: the ADS1299 driver reading a simulated chain of ceil(channels / 8)
/// chips, so every run exercises the driver's register set-up and frame parsing.
pub struct Emulator {
    acq: Acquisition<SimChain, SimDrdy>,
    p: EmulatorParams,
}

impl Emulator {
    /// The chip configuration `p` stands for, on `chips` chips.
    fn chip(p: &EmulatorParams, chips: usize) -> sensors::Config {
        let mux = if p.signal == Signal::Test { Mux::TestSignal } else { input_mux(p.input, false) };
        let gain = GainSetting::All(p.gain);
        let mut cfg =
            chip_config(p.rate, chips, p.channels, &gain, ChannelConfig { mux, ..Default::default() });
        cfg.test_signal.internal = mux == Mux::TestSignal;
        cfg.bias.measure = mux == Mux::BiasMeas;
        p.lead_off.apply(&mut cfg);
        cfg
    }

    /// The railed/flat/lead-off/impedance figures of this source.
    pub fn quality(&self) -> &crate::quality::Quality {
        self.acq.quality()
    }
}

/// Puts `p.electrodes` and `p.broken_channels` on the simulated chain.
fn electrodes(sim: &mut SimChain, p: &EmulatorParams) {
    let names = crate::labels::labels(&p.labels, p.channels).unwrap_or_else(|_| channel_labels(p.channels));
    for (c, name) in names.iter().enumerate() {
        let e = p.electrodes.get(name).copied().unwrap_or_default();
        sim.set_electrode(
            c,
            Electrode { impedance_ohm: e.impedance_kohm * 1e3, disconnected: e.disconnected },
        );
        sim.set_broken(c, p.broken_channels.contains(name));
    }
}

impl Stage for Emulator {
    fn start(&mut self) -> Result<(), StageError> {
        // The simulated chip checks the driver's waits on its own clock.
        let mut delay = self.acq.dev.spi_mut().delay();
        self.acq.configure(&mut delay)
    }

    fn produce(&mut self, cx: &mut Context<'_>) -> Result<Produce, StageError> {
        if !self.acq.is_configured() {
            self.start()?;
        }
        self.acq.produce(cx)
    }

    fn finish(&mut self, _: &mut Context<'_>) -> Result<(), StageError> {
        self.acq.stop();
        Ok(())
    }
}

impl StageType for Emulator {
    type Params = EmulatorParams;
    const NAME: &'static str = "emulator";
    const ROLE: Role = Role::Source;
    const ACCEPTS: &'static [Kind] = &[];
    const DOC: &'static str = "A built-in ADS1299 stand-in: the real ADS1299 driver talking to a \
        simulated chip (a daisy chain of ceil(channels / 8)), whose electrodes carry `eeg` (1/f \
        background, alpha, line noise, blinks on Fp1/Fp2), a `sine`, or the chip's internal `test` \
        signal. Raw 24-bit counts exactly as the chip gives them (gain, 4.5 V reference, clipping), \
        stamped first DRDY + n / rate; paced by absolute DRDY deadlines, or unpaced. Simulated \
        `electrodes` (impedance, disconnected) carry the `lead_off` current as the chip would; the \
        chip checks the driver's timing against the datasheet.\n\n\
        Inputs: none. Outputs: raw counts.";
    const EXAMPLE: &'static str =
        "stages:\n  - emulator: { channels: 8, rate: 1000, gain: 24, signal: sine, sine_hz: 10, amplitude_uv: 100,\n      \
        lead_off: { mode: ac, current_na: 6 }, electrodes: { Fp1: { impedance_kohm: 20 }, O2: { disconnected: true } } }\n  \
        - null_sink: {}\n";

    fn check(p: &Self::Params) -> Vec<ParamError> {
        let mut e = Vec::new();
        if data_rate(p.rate).is_none() {
            e.push(rate_error(p.rate));
        }
        if Gain::from_factor(p.gain).is_none() {
            e.push(gain_error(p.gain));
        }
        e.extend(p.lead_off.check());
        let names =
            crate::labels::labels(&p.labels, p.channels).unwrap_or_else(|_| channel_labels(p.channels));
        for (param, label) in p
            .electrodes
            .keys()
            .map(|l| ("electrodes", l))
            .chain(p.broken_channels.iter().map(|l| ("broken_channels", l)))
        {
            if !names.contains(label) {
                e.push(ParamError::new(
                    param,
                    format!("no channel `{label}` (channels: {})", names.join(", ")),
                ));
            }
        }
        e
    }

    fn reconfigure(&mut self, p: &Self::Params) -> Result<(), ParamError> {
        let chips = p.channels.div_ceil(CHANNELS).clamp(1, MAX_CHIPS);
        let live = EmulatorParams {
            input: self.p.input,
            lead_off: self.p.lead_off,
            electrodes: self.p.electrodes.clone(),
            broken_channels: self.p.broken_channels.clone(),
            ..p.clone()
        };
        if live != self.p {
            return Err(ParamError::new(
                "",
                "only `input`, `lead_off`, `electrodes` and `broken_channels` change live; the others need a restart",
            ));
        }
        self.acq.reconfigure(Self::chip(p, chips))?;
        electrodes(self.acq.dev.spi_mut(), p);
        self.p = p.clone();
        Ok(())
    }

    fn build(
        p: &Self::Params,
        _: &[StreamInfo],
        cx: &BuildCx<'_>,
    ) -> Result<(Self, Option<StreamInfo>), ParamError> {
        let batch = p.batch.unwrap_or((p.rate / 250) as usize).max(1);
        let chips = p.channels.div_ceil(CHANNELS).clamp(1, MAX_CHIPS);
        let waveform = match p.signal {
            Signal::Eeg => Waveform::Eeg,
            Signal::Sine => Waveform::Sine,
            Signal::Test => Waveform::Flat,
        };
        let cfg = Self::chip(p, chips);
        let model = SignalModel::new(
            SignalParams {
                waveform,
                line_hz: p.line_hz,
                sine_hz: p.sine_hz,
                amplitude_uv: p.amplitude_uv,
                seed: p.seed,
            },
            chips * CHANNELS,
        );
        let mut sim = SimChain::new(chips, model);
        electrodes(&mut sim, p);
        let pacing = match (p.realtime, p.pace) {
            (false, _) => Pacing::Unpaced,
            (true, Pace::Batch) => Pacing::Batch(batch as u32),
            (true, Pace::Drdy) => Pacing::PerSample,
        };
        let drdy = sim.drdy(pacing);
        let dev = Ads1299::new(sim, chips).map_err(|e| ParamError::new("channels", e.to_string()))?;
        let meta = Arc::new(StreamMeta {
            stream_id: cx.stream_id,
            labels: crate::labels::labels(&p.labels, p.channels)?,
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
        let spec = AcquisitionSpec {
            cfg,
            name: cx.name.to_string(),
            rate: p.rate,
            batch,
            channels: p.channels,
            meta,
            stream_id: cx.stream_id,
            limit: p.samples,
            record_wake: p.realtime,
            check_overlap: pacing == Pacing::PerSample,
        };
        Ok((Emulator { acq: Acquisition::new(dev, drdy, spec), p: p.clone() }, Some(out)))
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

    #[test]
    fn test_signal_is_the_chips_internal_square_wave() {
        let params = serde_json::json!({"channels": 3, "rate": 250, "gain": 1, "signal": "test",
            "realtime": false, "batch": 250});
        let mut h = Harness::new("emulator", params, &[], 4).unwrap();
        let (_, out) = h.produce().unwrap();
        let v = out[0].i32s();
        let high = sensors::sim::quantise(1875.0, 1);
        // f_CLK / 2^21 ≈ 0.977 Hz: the first 128 samples (0.512 s) high, the rest low.
        assert!(v[..128].iter().all(|&x| x == high), "{:?}", &v[..4]);
        assert!(v[128..250].iter().all(|&x| x == -high));
        assert_eq!(&v[250..500], &v[..250], "every channel carries it");
    }

    #[test]
    fn twelve_channels_chain_two_chips_and_emit_twelve() {
        let params = serde_json::json!({"channels": 12, "rate": 1000, "signal": "sine",
            "amplitude_uv": 100, "realtime": false, "batch": 10});
        let mut h = Harness::new("emulator", params, &[], 4).unwrap();
        assert_eq!(h.output.as_ref().unwrap().meta.labels[11], "Ch12");
        let (_, out) = h.produce().unwrap();
        let hd = out[0].header();
        assert_eq!((hd.channels, hd.samples), (12, 10));
        let v = out[0].i32s();
        assert!(v[10..20].iter().any(|&x| x != 0));
        assert_eq!(&v[110..120], &v[..10], "channel 12 (chip 2) = channel 1 (chip 1)");
    }

    #[test]
    fn samples_ends_the_source_after_that_many() {
        let params = serde_json::json!({"rate": 250, "batch": 4, "samples": 10, "realtime": false});
        let mut h = Harness::new("emulator", params, &[], 4).unwrap();
        let sizes: Vec<u32> = (0..3).map(|_| h.produce().unwrap().1[0].header().samples).collect();
        assert_eq!(sizes, [4, 4, 2]);
        let (r, out) = h.produce().unwrap();
        assert_eq!((r, out.len()), (Produce::End, 0));
    }

    #[test]
    fn a_late_reader_of_a_drdy_paced_chip_counts_the_overrun() {
        // One sample per packet, so each packet's timestamp says exactly which DRDY it came from.
        let params = serde_json::json!({"rate": 250, "batch": 1, "realtime": true, "pace": "drdy"});
        let mut h = Harness::new("emulator", params, &[], 4).unwrap();
        h.start().unwrap();
        let t0 = h.produce().unwrap().1[0].header().timestamp_ns;
        let lost_before = h.stats().overruns.load(std::sync::atomic::Ordering::Relaxed);
        // Not reading for 40 ms lets about 10 DRDYs pass: their samples are gone.
        std::thread::sleep(std::time::Duration::from_millis(40));
        let t1 = h.produce().unwrap().1[0].header().timestamp_ns;
        let lost = h.stats().overruns.load(std::sync::atomic::Ordering::Relaxed) - lost_before;
        assert!(lost >= 8, "{lost} samples lost");
        // The timestamp stays on the sample grid and shows the gap.
        assert_eq!(t1 - t0, (1 + lost as i64) * 4_000_000);
        assert_eq!(h.stats().wake_late_ns.count(), 2);
    }

    fn run(h: &mut Harness, packets: usize) {
        for _ in 0..packets {
            h.produce().unwrap();
        }
    }

    #[test]
    fn electrode_impedances_come_back_from_ac_lead_off() {
        let params = serde_json::json!({"channels": 5, "rate": 250, "batch": 25, "realtime": false,
            "lead_off": {"mode": "ac", "current_na": 6},
            "electrodes": {"Fp1": {"impedance_kohm": 5}, "Fp2": {"impedance_kohm": 20},
                "C3": {"impedance_kohm": 50}, "C4": {"impedance_kohm": 200}, "P7": {"disconnected": true}}});
        let mut h = Harness::new("emulator", params, &[], 8).unwrap();
        h.start().unwrap();
        // 1.024 s of lock-in after the first 0.1 s: 2.1 s of samples is plenty.
        run(&mut h, 21);
        let board =
            crate::quality::boards().into_iter().find(|b| b.labels.len() == 5).expect("registered on start");
        let q = board.channels();
        for (c, want) in [5.0, 20.0, 50.0, 200.0].into_iter().enumerate() {
            let z = q[c].impedance_kohm.unwrap();
            assert!((z - want).abs() < 0.1 * want, "{}: {z} kΩ, want {want}", q[c].label);
            assert!(!q[c].lead_off && !q[c].railed);
        }
        assert_eq!(q[0].status, "good");
        assert_eq!(q[1].status, "fair");
        assert_eq!(q[3].status, "bad");
        assert!(q[4].lead_off && q[4].railed && q[4].impedance_kohm.is_none(), "{:?}", q[4]);
        assert_eq!(q[4].status, "bad");
        assert!(board.impedance_ns() > 0);
    }

    #[test]
    fn a_railed_stream_is_flagged_within_a_second_and_a_live_patch_switches_lead_off() {
        let params = serde_json::json!({"channels": 2, "rate": 500, "batch": 50,
            "realtime": false, "signal": "sine", "sine_hz": 10, "amplitude_uv": 250000});
        let mut h = Harness::new("emulator", params, &[], 8).unwrap();
        h.start().unwrap();
        run(&mut h, 10); // 1 s
        let board =
            crate::quality::boards().into_iter().find(|b| b.labels.len() == 2 && b.rate == 500).unwrap();
        let q = board.channels();
        assert!(q[0].railed && q[1].railed && q[0].status == "bad", "{q:?}");
        assert!(q[0].railed_samples > 0);
        assert_eq!(board.lead_off().0, crate::quality::LeadOffMode::Off);
        h.stage().patch(&serde_json::json!({"lead_off": {"mode": "ac"}, "amplitude_uv": 10})).unwrap_err();
        h.stage().patch(&serde_json::json!({"lead_off": {"mode": "ac"}})).unwrap();
        run(&mut h, 1);
        assert_eq!(board.lead_off(), (crate::quality::LeadOffMode::Ac, 6));
    }

    #[test]
    fn the_test_signal_measures_at_the_datasheet_values_except_on_a_broken_channel() {
        // Six channels: no other test here makes a board of six (tests run side by side).
        let params = serde_json::json!({"channels": 6, "rate": 250, "batch": 50, "realtime": false,
            "input": "test_signal", "broken_channels": ["C3"]});
        let mut h = Harness::new("emulator", params, &[], 8).unwrap();
        h.start().unwrap();
        run(&mut h, 1);
        let board = crate::quality::boards().into_iter().find(|b| b.labels.len() == 6).unwrap();
        let gen = board.request_measurement(750, 500.0);
        run(&mut h, 16);
        let m = board.measurement(gen).expect("done after 750 samples");
        assert!((m[0].max_uv - 1875.0).abs() < 1.0 && (m[1].min_uv + 1875.0).abs() < 1.0, "{m:?}");
        assert!((m[0].frequency_hz.unwrap() - 0.9765625).abs() < 0.01, "{m:?}");
        assert_eq!((m[2].max_uv, m[2].min_uv, m[2].frequency_hz), (0.0, 0.0, None), "broken");
        // Shorted inputs, live: the chip's noise.
        h.stage().patch(&serde_json::json!({"input": "shorted"})).unwrap();
        run(&mut h, 1);
        let gen = board.request_measurement(1000, 0.0);
        run(&mut h, 21);
        let m = board.measurement(gen).unwrap();
        let (rms, _) = sensors::sim::shorted_noise_uv(250, 24);
        assert!((m[0].rms_uv - rms).abs() < 0.15 * rms, "{} µV rms, datasheet {rms}", m[0].rms_uv);
        assert_eq!(m[2].rms_uv, 0.0);
    }

    #[test]
    fn electrodes_are_named_by_the_streams_labels() {
        let p = |v| serde_json::from_value::<EmulatorParams>(v).unwrap();
        let ok = p(
            serde_json::json!({"channels": 2, "labels": ["A1", "A2"], "electrodes": {"A2": {"disconnected": true}}}),
        );
        assert!(Emulator::check(&ok).is_empty());
        let bad = p(serde_json::json!({"channels": 2, "labels": ["A1", "A2"], "electrodes": {"Fp1": {}},
            "broken_channels": ["Z"]}));
        let e = Emulator::check(&bad);
        assert_eq!(e.iter().map(|e| e.param).collect::<Vec<_>>(), ["electrodes", "broken_channels"]);
        assert!(e[0].message.contains("no channel `Fp1` (channels: A1, A2)"), "{}", e[0].message);
    }
}
