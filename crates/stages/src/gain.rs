//! `gain`: multiplies every value by a factor.
use pipeline::stage::{BuildCx, ParamError};
use pipeline::{Context, Kind, Packet, Role, Stage, StageError, StageType, StreamInfo};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Parameters of `gain`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GainParams {
    /// The factor every value is multiplied by.
    #[schemars(range(min = -1e6, max = 1e6))]
    pub factor: f32,
}

/// Scales a voltage stream; takes live changes.
pub struct Gain {
    factor: f32,
}

impl Stage for Gain {
    fn process(&mut self, _: usize, mut pkt: Packet, cx: &mut Context<'_>) -> Result<(), StageError> {
        pkt.make_mut()?.f32s_mut().iter_mut().for_each(|v| *v *= self.factor);
        cx.emit(pkt);
        Ok(())
    }
}

impl StageType for Gain {
    type Params = GainParams;
    const NAME: &'static str = "gain";
    const ROLE: Role = Role::Transform;
    const ACCEPTS: &'static [Kind] = &[Kind::Voltage];
    const DOC: &'static str = "Multiplies every value by `factor`.\n\nInputs: voltage. Outputs: voltage.";
    const EXAMPLE: &'static str =
        "stages:\n  - emulator: {}\n  - to_voltage: {}\n  - gain: { factor: 2 }\n  - null_sink: {}\n";

    fn build(
        p: &Self::Params,
        inputs: &[StreamInfo],
        _: &BuildCx<'_>,
    ) -> Result<(Self, Option<StreamInfo>), ParamError> {
        Ok((Gain { factor: p.factor }, Some(inputs[0].clone())))
    }

    fn reconfigure(&mut self, p: &Self::Params) -> Result<(), ParamError> {
        self.factor = p.factor;
        Ok(())
    }
}

pipeline::register_stage!(Gain);

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::testing::Harness;
    use pipeline::Header;

    #[test]
    fn scales_in_place_and_takes_live_changes() {
        let input = StreamInfo {
            kind: Kind::Voltage,
            rate: 250.0,
            channels: 1,
            max_samples: 3,
            meta: Default::default(),
        };
        let mut h = Harness::new("gain", serde_json::json!({"factor": 2.0}), &[input], 4).unwrap();
        let hdr = Header { kind: Kind::Voltage, channels: 1, samples: 3, ..Header::default() };
        let out = h.push(0, h.packet_f32(hdr.clone(), &[1.0, -2.0, 0.5])).unwrap();
        assert_eq!(out[0].f32s(), &[2.0, -4.0, 1.0]);
        h.stage().patch(&serde_json::json!({"factor": -1.0})).unwrap();
        assert!(h.stage().patch(&serde_json::json!({"factr": 3})).is_err());
        let out = h.push(0, h.packet_f32(hdr, &[1.0, -2.0, 0.5])).unwrap();
        assert_eq!(out[0].f32s(), &[-1.0, 2.0, -0.5]);
    }
}
