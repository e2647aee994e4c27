//! `highpass`, `lowpass`, `bandpass`, `bandstop`: Butterworth filters run as second-order
//! sections, equal to `scipy.signal.sosfilt(scipy.signal.butter(order, …, output='sos',
//! fs=rate), x)` per channel with zero initial state.
//!
//! The four share one stage, [`Butterworth`], generic over its parameters; each parameter type
//! says which band it designs and where the group delay is reported.
use dsp::{butter, group_delay_s, BandKind, DesignError, Sos, SosBank};
use pipeline::stage::{BuildCx, ParamError};
use pipeline::StreamMeta;
use pipeline::{Context, Kind, Packet, Role, Stage, StageError, StageType, StreamInfo};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::marker::PhantomData;
use std::sync::Arc;

fn four() -> u8 {
    4
}

/// Parameters of `lowpass`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LowpassParams {
    /// Cut-off (-3 dB) in Hz; below half the input rate.
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub hz: f64,
    /// Butterworth order (default 4).
    #[serde(default = "four")]
    #[schemars(range(min = 1, max = 8))]
    pub order: u8,
}

/// Parameters of `highpass`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HighpassParams {
    /// Cut-off (-3 dB) in Hz; below half the input rate.
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub hz: f64,
    /// Butterworth order (default 4).
    #[serde(default = "four")]
    #[schemars(range(min = 1, max = 8))]
    pub order: u8,
}

/// Parameters of `bandpass`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BandpassParams {
    /// Lower edge (-3 dB) in Hz.
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub low_hz: f64,
    /// Upper edge (-3 dB) in Hz; above `low_hz`, below half the input rate.
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub high_hz: f64,
    /// Butterworth order (default 4); the filter has twice as many poles, as in scipy.
    #[serde(default = "four")]
    #[schemars(range(min = 1, max = 8))]
    pub order: u8,
}

/// Parameters of `bandstop`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BandstopParams {
    /// Lower edge (-3 dB) in Hz.
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub low_hz: f64,
    /// Upper edge (-3 dB) in Hz; above `low_hz`, below half the input rate.
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub high_hz: f64,
    /// Butterworth order (default 4); the filter has twice as many poles, as in scipy.
    #[serde(default = "four")]
    #[schemars(range(min = 1, max = 8))]
    pub order: u8,
}

/// A filter's `DOC`: what it does, then Inputs / Outputs with where the delay is measured.
macro_rules! filter_doc {
    ($what:literal, $delay:literal) => {
        concat!(
            $what,
            "\n\nInputs: voltage.\nOutputs: voltage, same shape; the stream's `group_delay_s` grows by \
             the filter's group delay ",
            $delay
        )
    };
}

/// What each filter's parameters say about its design.
pub trait Design {
    /// The stage type's name, documentation and example (see `StageType`).
    const NAME: &'static str;
    const DOC: &'static str;
    const EXAMPLE: &'static str;
    /// Rules the schema cannot state.
    fn check(&self) -> Vec<ParamError> {
        Vec::new()
    }
    fn order(&self) -> u8;
    fn band(&self) -> BandKind;
    /// Where the added group delay is reported, in Hz, for a stream at `rate`.
    fn delay_at_hz(&self, rate: f64) -> f64;
}

impl Design for LowpassParams {
    const NAME: &'static str = "lowpass";
    const DOC: &'static str = filter_doc!(
        "Butterworth low-pass of order `order` at `hz`, as second-order sections: equals \
         `scipy.signal.sosfilt(scipy.signal.butter(order, hz, 'lowpass', output='sos', fs=rate), x)`. \
         Takes live changes (the state carries on when the order is unchanged).",
        "at 0 Hz."
    );
    const EXAMPLE: &'static str =
        "stages:\n  - emulator: {}\n  - to_voltage: {}\n  - lowpass: { hz: 40 }\n  - null_sink: {}\n";
    fn order(&self) -> u8 {
        self.order
    }
    fn band(&self) -> BandKind {
        BandKind::Lowpass(self.hz)
    }
    /// 0 Hz: the low end of the pass band, where a low-pass delay is flattest.
    fn delay_at_hz(&self, _: f64) -> f64 {
        0.0
    }
}

impl Design for HighpassParams {
    const NAME: &'static str = "highpass";
    const DOC: &'static str = filter_doc!(
        "Butterworth high-pass of order `order` at `hz`, as second-order sections: equals \
         `scipy.signal.sosfilt(scipy.signal.butter(order, hz, 'highpass', output='sos', fs=rate), x)`. \
         Takes live changes (the state carries on when the order is unchanged).",
        "at sqrt(hz × rate/2), the geometric centre of the pass band."
    );
    const EXAMPLE: &'static str =
        "stages:\n  - emulator: {}\n  - to_voltage: {}\n  - highpass: { hz: 0.5 }\n  - null_sink: {}\n";
    fn order(&self) -> u8 {
        self.order
    }
    fn band(&self) -> BandKind {
        BandKind::Highpass(self.hz)
    }
    /// The geometric centre of the pass band, `sqrt(hz × rate/2)`.
    fn delay_at_hz(&self, rate: f64) -> f64 {
        (self.hz * rate / 2.0).sqrt()
    }
}

impl Design for BandpassParams {
    const NAME: &'static str = "bandpass";
    const DOC: &'static str = filter_doc!(
        "Butterworth band-pass from `low_hz` to `high_hz`, as second-order sections: equals \
         `scipy.signal.sosfilt(scipy.signal.butter(order, [low_hz, high_hz], 'bandpass', output='sos', \
         fs=rate), x)`, so it has 2 × `order` poles. Takes live changes (the state carries on when the \
         order is unchanged).",
        "at sqrt(low_hz × high_hz), the centre of the pass band."
    );
    const EXAMPLE: &'static str = "stages:\n  - emulator: {}\n  - to_voltage: {}\n  - bandpass: { low_hz: 1, high_hz: 40 }\n  - null_sink: {}\n";
    fn check(&self) -> Vec<ParamError> {
        check_band(self.low_hz, self.high_hz)
    }
    fn order(&self) -> u8 {
        self.order
    }
    fn band(&self) -> BandKind {
        BandKind::Bandpass(self.low_hz, self.high_hz)
    }
    /// The centre of the pass band, `sqrt(low_hz × high_hz)`.
    fn delay_at_hz(&self, _: f64) -> f64 {
        (self.low_hz * self.high_hz).sqrt()
    }
}

impl Design for BandstopParams {
    const NAME: &'static str = "bandstop";
    const DOC: &'static str = filter_doc!(
        "Butterworth band-stop from `low_hz` to `high_hz`, as second-order sections: equals \
         `scipy.signal.sosfilt(scipy.signal.butter(order, [low_hz, high_hz], 'bandstop', output='sos', \
         fs=rate), x)`, so it has 2 × `order` poles. Takes live changes (the state carries on when the \
         order is unchanged).",
        "at 0 Hz."
    );
    const EXAMPLE: &'static str = "stages:\n  - emulator: {}\n  - to_voltage: {}\n  - bandstop: { low_hz: 45, high_hz: 55 }\n  - null_sink: {}\n";
    fn check(&self) -> Vec<ParamError> {
        check_band(self.low_hz, self.high_hz)
    }
    fn order(&self) -> u8 {
        self.order
    }
    fn band(&self) -> BandKind {
        BandKind::Bandstop(self.low_hz, self.high_hz)
    }
    /// 0 Hz, in the lower pass band.
    fn delay_at_hz(&self, _: f64) -> f64 {
        0.0
    }
}

/// `low_hz < high_hz`, the rule the schema cannot state.
fn check_band(low_hz: f64, high_hz: f64) -> Vec<ParamError> {
    if low_hz < high_hz {
        Vec::new()
    } else {
        vec![ParamError::new("high_hz", format!("must be above `low_hz` ({low_hz} Hz), got {high_hz} Hz"))]
    }
}

/// A design error as a parameter error that names the parameter at fault.
fn design_error(band: BandKind, rate: f64, e: DesignError) -> ParamError {
    let param = match (band, &e) {
        (BandKind::Lowpass(_) | BandKind::Highpass(_), _) => "hz",
        (BandKind::Bandpass(lo, _) | BandKind::Bandstop(lo, _), DesignError::Frequency { f_hz, .. })
            if *f_hz == lo =>
        {
            "low_hz"
        }
        (BandKind::Bandpass(..) | BandKind::Bandstop(..), _) => "high_hz",
    };
    let message = match e {
        DesignError::Frequency { f_hz, nyquist_hz } => format!(
            "{f_hz} Hz must be below the Nyquist frequency of the input stream ({nyquist_hz} Hz at {rate} samples/s)"
        ),
        other => other.to_string(),
    };
    ParamError::new(param, message)
}

/// The metadata a filter stamps on its packets: its input's, with its own group delay added.
///
/// Per packet this is a pointer comparison and a reference-count increment. When the input's
/// metadata changes (an upstream filter was redesigned) or the filter's own delay does (a live
/// change), a new record is made once, so `group_delay_s` stays cumulative and current.
pub(crate) struct DelayedMeta {
    input: Arc<StreamMeta>,
    output: Arc<StreamMeta>,
    delay_s: f64,
}

impl DelayedMeta {
    pub(crate) fn new(input: &Arc<StreamMeta>, delay_s: f64) -> DelayedMeta {
        let output =
            Arc::new(StreamMeta { group_delay_s: input.group_delay_s + delay_s, ..(**input).clone() });
        DelayedMeta { input: input.clone(), output, delay_s }
    }

    /// The metadata of the output stream.
    pub(crate) fn output(&self) -> &Arc<StreamMeta> {
        &self.output
    }

    /// A live change of this stage's delay (allocates; between packets).
    pub(crate) fn set_delay(&mut self, delay_s: f64) {
        *self = DelayedMeta::new(&self.input, delay_s);
    }

    /// Puts the output metadata on a packet's header.
    pub(crate) fn stamp(&mut self, h: &mut pipeline::Header) {
        if !Arc::ptr_eq(&h.meta, &self.input) {
            if *h.meta == *self.input {
                self.input = h.meta.clone();
            } else {
                *self = DelayedMeta::new(&h.meta, self.delay_s);
            }
        }
        h.meta = self.output.clone();
    }
}

/// Designs the sections for `p` at `rate`.
pub fn sections<P: Design>(p: &P, rate: f64) -> Result<Vec<Sos>, ParamError> {
    butter(p.order() as usize, p.band(), rate).map_err(|e| design_error(p.band(), rate, e))
}

/// A Butterworth filter over every channel of a voltage stream. `P` picks the band:
/// [`Lowpass`], [`Highpass`], [`Bandpass`], [`Bandstop`].
pub struct Butterworth<P> {
    bank: SosBank,
    rate: f64,
    meta: DelayedMeta,
    params: PhantomData<fn() -> P>,
}

pub type Lowpass = Butterworth<LowpassParams>;
pub type Highpass = Butterworth<HighpassParams>;
pub type Bandpass = Butterworth<BandpassParams>;
pub type Bandstop = Butterworth<BandstopParams>;

impl<P: Design> Butterworth<P> {
    fn build_for(p: &P, inputs: &[StreamInfo]) -> Result<(Self, Option<StreamInfo>), ParamError> {
        let input = &inputs[0];
        let sos = sections(p, input.rate)?;
        let delay = group_delay_s(&sos, p.delay_at_hz(input.rate), input.rate);
        let meta = DelayedMeta::new(&input.meta, delay);
        let out = StreamInfo { meta: meta.output().clone(), ..input.clone() };
        let stage = Butterworth {
            bank: SosBank::new(&sos, input.channels),
            rate: input.rate,
            meta,
            params: PhantomData,
        };
        Ok((stage, Some(out)))
    }

    /// A live redesign: new coefficients between packets (no allocation up to order 8); the
    /// state carries on when the order is unchanged, and the packets' `group_delay_s` follows
    /// the new design.
    fn redesign(&mut self, p: &P) -> Result<(), ParamError> {
        let sos = sections(p, self.rate)?;
        self.bank.set_sections(&sos);
        self.meta.set_delay(group_delay_s(&sos, p.delay_at_hz(self.rate), self.rate));
        Ok(())
    }
}

/// Filters a packet in place (or in its copy-on-write copy) and passes it on.
pub(crate) fn filter_packet(
    bank: &mut SosBank,
    meta: &mut DelayedMeta,
    mut pkt: Packet,
    cx: &mut Context<'_>,
) -> Result<(), StageError> {
    let mut m = pkt.make_mut()?;
    let (h, data) = m.parts_f32();
    meta.stamp(h);
    let (channels, samples) = (h.channels as usize, h.samples as usize);
    crate::check_channels(channels, bank.channels(), "the filter")?;
    bank.process(data, channels, samples);
    cx.emit(pkt);
    Ok(())
}

impl<P: Design + 'static> Stage for Butterworth<P> {
    fn process(&mut self, _: usize, pkt: Packet, cx: &mut Context<'_>) -> Result<(), StageError> {
        filter_packet(&mut self.bank, &mut self.meta, pkt, cx)
    }
}

impl<P> StageType for Butterworth<P>
where
    P: Design + serde::de::DeserializeOwned + Serialize + JsonSchema + Clone + Send + Sync + 'static,
{
    type Params = P;
    const NAME: &'static str = P::NAME;
    const ROLE: Role = Role::Transform;
    const ACCEPTS: &'static [Kind] = &[Kind::Voltage];
    const DOC: &'static str = P::DOC;
    const EXAMPLE: &'static str = P::EXAMPLE;

    fn check(p: &Self::Params) -> Vec<ParamError> {
        p.check()
    }

    fn build(
        p: &Self::Params,
        inputs: &[StreamInfo],
        _: &BuildCx<'_>,
    ) -> Result<(Self, Option<StreamInfo>), ParamError> {
        Self::build_for(p, inputs)
    }

    fn reconfigure(&mut self, p: &Self::Params) -> Result<(), ParamError> {
        self.redesign(p)
    }
}

pipeline::register_stage!(Lowpass);
pipeline::register_stage!(Highpass);
pipeline::register_stage!(Bandpass);
pipeline::register_stage!(Bandstop);

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::testing::Harness;
    use pipeline::StreamMeta;
    use serde_json::json;
    use std::f64::consts::PI;
    use std::sync::Arc;

    fn voltage(channels: usize, rate: f64, max_samples: usize) -> StreamInfo {
        let meta = Arc::new(StreamMeta { units: "uV".into(), group_delay_s: 0.001, ..Default::default() });
        StreamInfo { kind: Kind::Voltage, rate, channels, max_samples, meta }
    }

    use pipeline::testing::voltage_header as header;

    /// `channels × samples` planar values of sines at 2 Hz and 60 Hz plus an offset per channel.
    fn signal(channels: usize, from: usize, samples: usize, rate: f64) -> Vec<f32> {
        (0..channels)
            .flat_map(|c| {
                (from..from + samples).map(move |i| {
                    let t = i as f64 / rate;
                    (10.0 * (2.0 * PI * 2.0 * t).sin() + 5.0 * (2.0 * PI * 60.0 * t).sin() + c as f64) as f32
                })
            })
            .collect()
    }

    #[test]
    fn bandpass_filters_each_channel_like_the_dsp_bank_across_packets() {
        let (channels, n, rate) = (3, 16, 250.0);
        let mut h =
            Harness::new("bandpass", json!({"low_hz": 1, "high_hz": 40}), &[voltage(channels, rate, n)], 8)
                .unwrap();
        let sos = butter(4, BandKind::Bandpass(1.0, 40.0), rate).unwrap();
        let mut reference = SosBank::new(&sos, channels);
        for k in 0..5 {
            let mut x = signal(channels, k * n, n, rate);
            let out = h.push(0, h.packet_f32(header(channels, n, rate), &x)).unwrap();
            reference.process(&mut x, channels, n);
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].f32s(), &x[..], "packet {k}");
        }
    }

    #[test]
    fn group_delay_is_added_to_the_stream() {
        let rate = 250.0;
        let h =
            Harness::new("bandpass", json!({"low_hz": 1, "high_hz": 40}), &[voltage(2, rate, 8)], 4).unwrap();
        let sos = butter(4, BandKind::Bandpass(1.0, 40.0), rate).unwrap();
        let want = 0.001 + group_delay_s(&sos, 40f64.sqrt(), rate);
        let out = h.output.as_ref().unwrap();
        assert!((out.meta.group_delay_s - want).abs() < 1e-12);
        assert!(out.meta.group_delay_s > 0.001);
        assert_eq!(out.meta.units, "uV");
        assert_eq!((out.rate, out.channels, out.max_samples), (rate, 2, 8));
    }

    #[test]
    fn packets_carry_the_cumulative_group_delay_and_follow_live_changes() {
        let (n, rate) = (8, 250.0);
        let input = voltage(1, rate, n);
        let mut h =
            Harness::new("bandpass", json!({"low_hz": 1, "high_hz": 40}), std::slice::from_ref(&input), 8)
                .unwrap();
        let delay = |lo: f64, hi: f64, order: usize| {
            let sos = butter(order, BandKind::Bandpass(lo, hi), rate).unwrap();
            group_delay_s(&sos, (lo * hi).sqrt(), rate)
        };
        let push = |h: &mut Harness, upstream: &Arc<StreamMeta>| {
            let hdr = pipeline::Header { meta: upstream.clone(), ..header(1, n, rate) };
            let out = h.push(0, h.packet_f32(hdr, &[0.5; 8])).unwrap();
            out[0].header().meta.clone()
        };
        let m = push(&mut h, &input.meta);
        assert!((m.group_delay_s - (0.001 + delay(1.0, 40.0, 4))).abs() < 1e-12);
        assert_eq!(m, h.output.as_ref().unwrap().meta, "packets carry the stream's metadata");
        assert!(Arc::ptr_eq(&m, &push(&mut h, &input.meta)), "one record, shared packet to packet");
        // A live change: the delay follows the new design.
        h.stage().patch(&json!({"low_hz": 8, "high_hz": 13, "order": 2})).unwrap();
        let m = push(&mut h, &input.meta);
        assert!((m.group_delay_s - (0.001 + delay(8.0, 13.0, 2))).abs() < 1e-12);
        // The upstream delay changes (an upstream filter was redesigned): it adds up.
        let upstream = Arc::new(StreamMeta { group_delay_s: 0.005, ..(*input.meta).clone() });
        let m = push(&mut h, &upstream);
        assert!((m.group_delay_s - (0.005 + delay(8.0, 13.0, 2))).abs() < 1e-12);
        assert_eq!(m.units, "uV");
    }

    #[test]
    fn lowpass_passes_the_slow_sine_and_stops_the_fast_one() {
        let (n, rate) = (2000, 1000.0);
        let mut h =
            Harness::new("lowpass", json!({"hz": 10, "order": 6}), &[voltage(1, rate, n)], 4).unwrap();
        let x: Vec<f32> = signal(1, 0, n, rate);
        let out = h.push(0, h.packet_f32(header(1, n, rate), &x)).unwrap();
        // After settling: the 2 Hz sine (amplitude 10, gain ~1) on the offset 0 of channel 0;
        // with the 60 Hz sine (amplitude 5) still in, the peak would be near 15.
        let y = out[0].f32s();
        let peak = y[n / 2..].iter().fold(0.0f32, |a, v| a.max(v.abs()));
        assert!((peak - 10.0).abs() < 0.1, "peak {peak}");
    }

    #[test]
    fn highpass_and_bandstop_build_and_remove_what_they_should() {
        let (n, rate) = (4000, 1000.0);
        let mut hp = Harness::new("highpass", json!({"hz": 20}), &[voltage(1, rate, n)], 4).unwrap();
        let out = hp.push(0, hp.packet_f32(header(1, n, rate), &signal(1, 0, n, rate))).unwrap();
        let peak = out[0].f32s()[n / 2..].iter().fold(0.0f32, |a, v| a.max(v.abs()));
        assert!((peak - 5.0).abs() < 0.1, "only the 60 Hz sine is left: {peak}");

        let mut bs = Harness::new(
            "bandstop",
            json!({"low_hz": 55, "high_hz": 65, "order": 2}),
            &[voltage(1, rate, n)],
            4,
        )
        .unwrap();
        let out = bs.push(0, bs.packet_f32(header(1, n, rate), &signal(1, 0, n, rate))).unwrap();
        let peak = out[0].f32s()[n / 2..].iter().fold(0.0f32, |a, v| a.max(v.abs()));
        assert!((peak - 10.0).abs() < 0.2, "only the 2 Hz sine is left: {peak}");
    }

    #[test]
    fn a_shared_packet_is_copied_not_changed() {
        let (n, rate) = (8, 250.0);
        let mut h = Harness::new("highpass", json!({"hz": 1}), &[voltage(1, rate, n)], 4).unwrap();
        let x = signal(1, 0, n, rate);
        let pkt = h.packet_f32(header(1, n, rate), &x);
        let kept = pkt.clone();
        let out = h.push(0, pkt).unwrap();
        assert_eq!(kept.f32s(), &x[..]);
        assert_ne!(out[0].f32s(), &x[..]);
    }

    #[test]
    fn refuses_edges_at_or_above_nyquist_naming_the_parameter() {
        let e = Harness::new("bandpass", json!({"low_hz": 1, "high_hz": 125}), &[voltage(1, 250.0, 8)], 4)
            .err()
            .unwrap();
        assert!(e.starts_with("high_hz") && e.contains("Nyquist"), "{e}");
        let e = Harness::new("lowpass", json!({"hz": 200}), &[voltage(1, 250.0, 8)], 4).err().unwrap();
        assert!(e.starts_with("hz") && e.contains("125 Hz"), "{e}");
        let e = Harness::new("bandstop", json!({"low_hz": 130, "high_hz": 140}), &[voltage(1, 250.0, 8)], 4)
            .err()
            .unwrap();
        assert!(e.starts_with("low_hz"), "{e}");
    }

    #[test]
    fn check_refuses_a_reversed_band_and_the_schema_an_order_of_nine() {
        let e = Harness::new("bandpass", json!({"low_hz": 40, "high_hz": 1}), &[voltage(1, 250.0, 8)], 4)
            .err()
            .unwrap();
        assert!(e.contains("high_hz") && e.contains("above"), "{e}");
        let e =
            Harness::new("lowpass", json!({"hz": 10, "order": 9}), &[voltage(1, 250.0, 8)], 4).err().unwrap();
        assert!(e.contains("order"), "{e}");
        assert!(Harness::new("highpass", json!({"hz": 0}), &[voltage(1, 250.0, 8)], 4).is_err());
    }

    #[test]
    fn live_changes_redesign_and_bad_ones_change_nothing() {
        let (n, rate) = (32, 250.0);
        let mut h = Harness::new("lowpass", json!({"hz": 10}), &[voltage(1, rate, n)], 4).unwrap();
        let mut reference = SosBank::new(&butter(4, BandKind::Lowpass(10.0), rate).unwrap(), 1);
        let run = |h: &mut Harness, reference: &mut SosBank, k: usize| {
            let mut x = signal(1, k * n, n, rate);
            let out = h.push(0, h.packet_f32(header(1, n, rate), &x)).unwrap();
            reference.process(&mut x, 1, n);
            assert_eq!(out[0].f32s(), &x[..], "packet {k}");
        };
        run(&mut h, &mut reference, 0);
        // Same order: state carries on with the new coefficients.
        h.stage().patch(&json!({"hz": 20})).unwrap();
        reference.set_sections(&butter(4, BandKind::Lowpass(20.0), rate).unwrap());
        run(&mut h, &mut reference, 1);
        // Beyond Nyquist: refused, the filter runs on unchanged.
        let e = h.stage().patch(&json!({"hz": 130})).unwrap_err();
        assert!(e.contains("Nyquist"), "{e}");
        assert_eq!(h.stage().params_json()["hz"], json!(20.0));
        run(&mut h, &mut reference, 2);
        // Another order: a fresh state.
        h.stage().patch(&json!({"order": 2})).unwrap();
        reference = SosBank::new(&butter(2, BandKind::Lowpass(20.0), rate).unwrap(), 1);
        run(&mut h, &mut reference, 3);
    }

    #[test]
    fn a_packet_with_other_channels_is_an_error_not_a_panic() {
        let mut h = Harness::new("lowpass", json!({"hz": 10}), &[voltage(2, 250.0, 8)], 4).unwrap();
        let pkt = h.packet_f32(header(1, 8, 250.0), &[0.0; 8]);
        assert!(h.push(0, pkt).is_err());
    }
}
