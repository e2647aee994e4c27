//! `notch`: IIR notch filters at the line frequency and its harmonics.
use crate::filter::{filter_packet, DelayedMeta};
use dsp::{group_delay_s, iirnotch, DesignError, Sos, SosBank};
use pipeline::stage::{BuildCx, ParamError};
use pipeline::{Context, Kind, Packet, Role, Stage, StageError, StageType, StreamInfo};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

fn fifty() -> f64 {
    50.0
}

fn thirty() -> f64 {
    30.0
}

fn one() -> u8 {
    1
}

/// Parameters of `notch`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotchParams {
    /// Frequency to remove in Hz (default 50, the mains frequency in most of the world).
    #[serde(default = "fifty")]
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub hz: f64,
    /// Quality factor: the -3 dB width of each notch is its frequency / `q` (default 30).
    #[serde(default = "thirty")]
    #[schemars(extend("exclusiveMinimum" = 0))]
    #[schemars(range(max = 1000))]
    pub q: f64,
    /// Number of notches: at `hz`, 2 × `hz`, … (default 1); those at or above half the input
    /// rate are left out.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 32))]
    pub harmonics: u8,
}

/// One `iirnotch` section per harmonic below Nyquist, the fundamental first.
pub fn sections(p: &NotchParams, rate: f64) -> Result<Vec<Sos>, ParamError> {
    let nyquist = rate / 2.0;
    if !p.hz.is_finite() || p.hz >= nyquist {
        return Err(ParamError::new(
            "hz",
            format!("{} Hz must be below the Nyquist frequency of the input stream ({nyquist} Hz at {rate} samples/s)", p.hz),
        ));
    }
    (1..=p.harmonics)
        .map(|k| f64::from(k) * p.hz)
        .take_while(|&f| f < nyquist)
        .map(|f| {
            iirnotch(f, p.q, rate).map_err(|e| match e {
                DesignError::Q(_) => ParamError::new("q", e.to_string()),
                _ => ParamError::new("hz", e.to_string()),
            })
        })
        .collect()
}

/// Cascaded notches over every channel of a voltage stream.
pub struct Notch {
    bank: SosBank,
    rate: f64,
    meta: DelayedMeta,
}

/// Most harmonics `notch` takes (the schema's maximum): the filter bank is sized for them.
const MAX_HARMONICS: usize = 32;

impl Stage for Notch {
    fn process(&mut self, _: usize, pkt: Packet, cx: &mut Context<'_>) -> Result<(), StageError> {
        filter_packet(&mut self.bank, &mut self.meta, pkt, cx)
    }
}

impl StageType for Notch {
    type Params = NotchParams;
    const NAME: &'static str = "notch";
    const ROLE: Role = Role::Transform;
    const ACCEPTS: &'static [Kind] = &[Kind::Voltage];
    const DOC: &'static str = "Removes line noise: a second-order IIR notch at `hz` and at each harmonic \
        up to `harmonics` × `hz` (those below Nyquist), each equal to `scipy.signal.iirnotch(k × hz, q, fs=rate)`, \
        run in cascade as `scipy.signal.sosfilt` would. Takes live changes.\n\n\
        Inputs: voltage.\nOutputs: voltage, same shape; the stream's `group_delay_s` grows by the notches' \
        group delay at 0 Hz.";
    const EXAMPLE: &'static str =
        "stages:\n  - emulator: { line_hz: 50 }\n  - to_voltage: {}\n  - notch: { hz: 50, harmonics: 3 }\n  - null_sink: {}\n";

    fn build(
        p: &Self::Params,
        inputs: &[StreamInfo],
        _: &BuildCx<'_>,
    ) -> Result<(Self, Option<StreamInfo>), ParamError> {
        let input = &inputs[0];
        let sos = sections(p, input.rate)?;
        let meta = DelayedMeta::new(&input.meta, group_delay_s(&sos, 0.0, input.rate));
        let out = StreamInfo { meta: meta.output().clone(), ..input.clone() };
        let bank = SosBank::with_capacity(&sos, input.channels, MAX_HARMONICS);
        Ok((Notch { bank, rate: input.rate, meta }, Some(out)))
    }

    fn reconfigure(&mut self, p: &Self::Params) -> Result<(), ParamError> {
        let sos = sections(p, self.rate)?;
        self.bank.set_sections(&sos);
        self.meta.set_delay(group_delay_s(&sos, 0.0, self.rate));
        Ok(())
    }
}

pipeline::register_stage!(Notch);

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::testing::Harness;
    use serde_json::json;
    use std::f64::consts::PI;

    use pipeline::testing::voltage_stream as voltage;

    use pipeline::testing::voltage_header as header;

    fn params(v: serde_json::Value) -> NotchParams {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn defaults_are_one_notch_at_50_hz_with_q_30() {
        let p = params(json!({}));
        assert_eq!((p.hz, p.q, p.harmonics), (50.0, 30.0, 1));
        assert_eq!(sections(&p, 250.0).unwrap(), vec![iirnotch(50.0, 30.0, 250.0).unwrap()]);
    }

    #[test]
    fn harmonics_stop_below_nyquist() {
        let s = sections(&params(json!({"hz": 50, "harmonics": 10})), 250.0).unwrap();
        assert_eq!(s, vec![iirnotch(50.0, 30.0, 250.0).unwrap(), iirnotch(100.0, 30.0, 250.0).unwrap()]);
        let e = sections(&params(json!({"hz": 125})), 250.0).unwrap_err();
        assert_eq!(e.param, "hz");
    }

    #[test]
    fn removes_the_line_and_its_harmonics_and_keeps_alpha() {
        let (n, rate) = (4000, 1000.0);
        let mut h =
            Harness::new("notch", json!({"hz": 50, "harmonics": 3}), &[voltage(2, rate, n)], 4).unwrap();
        let tone = |f: f64, i: usize| (2.0 * PI * f * i as f64 / rate).sin();
        let x: Vec<f32> = (0..2)
            .flat_map(|_| {
                (0..n).map(|i| (tone(50.0, i) + tone(100.0, i) + tone(150.0, i) + 2.0 * tone(10.0, i)) as f32)
            })
            .collect();
        let out = h.push(0, h.packet_f32(header(2, n, rate), &x)).unwrap();
        let y = out[0].f32s();
        for c in 0..2 {
            // Once settled, what is left is the 10 Hz sine (shifted by the notches' small phase).
            let peak = y[c * n + n / 2..(c + 1) * n].iter().fold(0.0f32, |a, v| a.max(v.abs()));
            assert!((peak - 2.0).abs() < 0.02, "channel {c}: peak {peak}");
        }
    }

    #[test]
    fn live_change_of_harmonics_takes_effect() {
        let (n, rate) = (4000, 1000.0);
        let mut h = Harness::new("notch", json!({}), &[voltage(1, rate, n)], 4).unwrap();
        h.stage().patch(&json!({"hz": 60, "harmonics": 2})).unwrap();
        let x: Vec<f32> = (0..n).map(|i| (2.0 * PI * 120.0 * i as f64 / rate).sin() as f32).collect();
        let out = h.push(0, h.packet_f32(header(1, n, rate), &x)).unwrap();
        let peak = out[0].f32s()[n / 2..].iter().fold(0.0f32, |a, v| a.max(v.abs()));
        assert!(peak < 0.01, "120 Hz left: {peak}");
        assert!(h.stage().patch(&json!({"hz": 600})).is_err());
    }
}
