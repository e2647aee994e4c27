//! `to_voltage`: ADC counts to microvolts.
use pipeline::stage::{BuildCx, ParamError};
use pipeline::{Context, Kind, Packet, Role, Stage, StageError, StageType, StreamInfo};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Parameters of `to_voltage`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToVoltageParams {
    /// Reference voltage in volts; default: the stream's (4.5 V for an ADS1299).
    #[serde(default)]
    #[schemars(range(min = 0.1, max = 10.0))]
    pub vref: Option<f64>,
}

/// Converts raw ADC counts to microvolts in place.
pub struct ToVoltage {
    vref: Option<f64>,
}

/// µV per count of a 24-bit ADC at `vref` and `gain`: `2 × vref / gain / 2^24 × 1e6`.
pub fn uv_per_count(vref: f64, gain: f64) -> f64 {
    2.0 * vref / gain / (1u64 << 24) as f64 * 1e6
}

impl Stage for ToVoltage {
    fn process(&mut self, _: usize, mut pkt: Packet, cx: &mut Context<'_>) -> Result<(), StageError> {
        let mut m = pkt.make_mut()?;
        let h = m.header_mut();
        h.kind = Kind::Voltage;
        let meta = h.meta.clone();
        let n = h.samples as usize;
        let vref = self.vref.unwrap_or(meta.vref);
        for (ch, block) in m.words_mut().chunks_exact_mut(n.max(1)).enumerate() {
            // Gain from the packet's metadata, so a live gain change stays correct.
            let scale = uv_per_count(vref, meta.gains.get(ch).copied().unwrap_or(1.0)) as f32;
            for w in block {
                *w = (*w as i32 as f32 * scale).to_bits();
            }
        }
        cx.emit(pkt);
        Ok(())
    }
}

impl StageType for ToVoltage {
    type Params = ToVoltageParams;
    const NAME: &'static str = "to_voltage";
    const ROLE: Role = Role::Transform;
    const ACCEPTS: &'static [Kind] = &[Kind::Raw];
    const DOC: &'static str = "ADC counts to microvolts: uV = counts × (2 × vref / gain / 2^24) × 1e6, \
        with the gain of each channel from the stream metadata.\n\nInputs: raw counts. Outputs: voltage (uV).";
    const EXAMPLE: &'static str = "stages:\n  - emulator: {}\n  - to_voltage: {}\n  - null_sink: {}\n";

    fn build(
        p: &Self::Params,
        inputs: &[StreamInfo],
        _: &BuildCx<'_>,
    ) -> Result<(Self, Option<StreamInfo>), ParamError> {
        let out =
            StreamInfo { kind: Kind::Voltage, ..inputs[0].clone() }.with_meta(|m| m.units = "uV".into());
        Ok((ToVoltage { vref: p.vref }, Some(out)))
    }

    fn reconfigure(&mut self, p: &Self::Params) -> Result<(), ParamError> {
        self.vref = p.vref;
        Ok(())
    }
}

pipeline::register_stage!(ToVoltage);

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::testing::Harness;
    use pipeline::{Header, StreamMeta};
    use std::sync::Arc;

    #[test]
    fn converts_full_scale_and_negative_counts() {
        let meta = Arc::new(StreamMeta { gains: vec![24.0, 1.0], vref: 4.5, ..Default::default() });
        let input =
            StreamInfo { kind: Kind::Raw, rate: 250.0, channels: 2, max_samples: 2, meta: meta.clone() };
        let mut h = Harness::new("to_voltage", serde_json::json!({}), &[input], 4).unwrap();
        let hdr = Header { kind: Kind::Raw, channels: 2, samples: 2, meta, ..Header::default() };
        let pkt = h.packet_i32(hdr, &[8_388_607, -8_388_608, 1, -1]);
        let out = h.push(0, pkt).unwrap();
        let v = out[0].f32s();
        let full = 4.5 / 24.0 * 1e6; // full scale in uV at gain 24
        assert_eq!(out[0].header().kind, Kind::Voltage);
        assert!((v[0] as f64 - full).abs() < 0.1, "{}", v[0]);
        assert!((v[1] as f64 + full).abs() < 0.1, "{}", v[1]);
        assert!((v[2] as f64 - uv_per_count(4.5, 1.0)).abs() < 1e-6);
        assert!((v[3] as f64 + uv_per_count(4.5, 1.0)).abs() < 1e-6);
    }
}
