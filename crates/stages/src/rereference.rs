//! `rereference`: re-references every channel to the common average or to one channel.
use crate::select::{resolve, ChannelRef};
use dsp::{rereference, Reference};
use pipeline::stage::{BuildCx, ParamError};
use pipeline::{Context, Kind, Packet, Role, Stage, StageError, StageType, StreamInfo, StreamMeta};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The new reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Common average reference: subtract, sample by sample, the mean of all channels.
    #[default]
    Average,
    /// Subtract one channel (`channel`) from every channel; that channel becomes zero.
    Channel,
}

/// Parameters of `rereference`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RereferenceParams {
    /// `average` (default) or `channel`.
    #[serde(default)]
    pub mode: Mode,
    /// The reference channel for `mode: channel`: its label (`Cz`, `A1`) or 0-based index.
    #[serde(default)]
    pub channel: Option<ChannelRef>,
}

/// Subtracts a per-sample reference from every channel, in place.
pub struct Rereference {
    /// `None`: the common average; `Some(c)`: channel `c`.
    reference: Option<usize>,
    channels: usize,
    meta: Arc<StreamMeta>,
    /// One reference value per sample (`max_samples`), so the channel loop runs over contiguous rows.
    scratch: Vec<f64>,
}

fn reference_of(
    p: &RereferenceParams,
    meta: &StreamMeta,
    channels: usize,
) -> Result<Option<usize>, ParamError> {
    match (p.mode, &p.channel) {
        (Mode::Average, _) => Ok(None),
        (Mode::Channel, Some(r)) => {
            resolve(r, meta, channels).map(Some).map_err(|e| ParamError::new("channel", e))
        }
        (Mode::Channel, None) => {
            Err(ParamError::new("channel", "`mode: channel` needs a `channel` (label or index)"))
        }
    }
}

impl Stage for Rereference {
    fn process(&mut self, _: usize, mut pkt: Packet, cx: &mut Context<'_>) -> Result<(), StageError> {
        let mut m = pkt.make_mut()?;
        let (h, data) = m.parts_f32();
        let (channels, n) = (h.channels as usize, h.samples as usize);
        if channels != self.channels || n > self.scratch.len() {
            return Err(StageError::msg(format!(
                "packet of {channels} channels × {n} samples; `rereference` was built for {} × at most {}",
                self.channels,
                self.scratch.len()
            )));
        }
        let reference = match self.reference {
            None => Reference::Average,
            Some(c) => Reference::Channel(c),
        };
        rereference(data, channels, n, reference, &mut self.scratch);
        cx.emit(pkt);
        Ok(())
    }
}

impl StageType for Rereference {
    type Params = RereferenceParams;
    const NAME: &'static str = "rereference";
    const ROLE: Role = Role::Transform;
    const ACCEPTS: &'static [Kind] = &[Kind::Voltage];
    const DOC: &'static str = "Changes the reference of every channel: `mode: average` subtracts, sample by \
        sample, the mean of all channels (common average reference); `mode: channel` subtracts the \
        channel named by `channel` (label or 0-based index), which then reads zero. Takes live changes.\n\n\
        Inputs: voltage.\nOutputs: voltage, same shape and labels.";
    const EXAMPLE: &'static str = "stages:\n  - emulator: { channels: 8 }\n  - to_voltage: {}\n  - rereference: { mode: channel, channel: C3 }\n  - null_sink: {}\n";

    fn check(p: &Self::Params) -> Vec<ParamError> {
        match (p.mode, &p.channel) {
            (Mode::Channel, None) => {
                vec![ParamError::new("mode", "`mode: channel` needs a `channel` (label or index)")]
            }
            _ => Vec::new(),
        }
    }

    fn build(
        p: &Self::Params,
        inputs: &[StreamInfo],
        _: &BuildCx<'_>,
    ) -> Result<(Self, Option<StreamInfo>), ParamError> {
        let input = &inputs[0];
        let reference = reference_of(p, &input.meta, input.channels)?;
        let stage = Rereference {
            reference,
            channels: input.channels,
            meta: input.meta.clone(),
            scratch: vec![0.0; input.max_samples],
        };
        Ok((stage, Some(input.clone())))
    }

    fn reconfigure(&mut self, p: &Self::Params) -> Result<(), ParamError> {
        self.reference = reference_of(p, &self.meta, self.channels)?;
        Ok(())
    }
}

pipeline::register_stage!(Rereference);

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::testing::{voltage_header, Harness};
    use serde_json::json;

    fn stream() -> StreamInfo {
        let meta = StreamMeta { labels: vec!["Fz".into(), "Cz".into(), "Pz".into()], ..Default::default() };
        StreamInfo { kind: Kind::Voltage, rate: 250.0, channels: 3, max_samples: 2, meta: Arc::new(meta) }
    }

    const X: [f32; 6] = [1.0, 10.0, 2.0, 20.0, 6.0, 60.0];

    fn push(h: &mut Harness, shared: bool) -> Vec<f32> {
        let pkt = h.packet_f32(voltage_header(3, 2, 250.0), &X);
        let keep = shared.then(|| pkt.clone());
        let out = h.push(0, pkt).unwrap();
        if let Some(k) = keep {
            assert_eq!(k.f32s(), &X);
        }
        out[0].f32s().to_vec()
    }

    #[test]
    fn average_reference_subtracts_the_mean_of_all_channels() {
        for shared in [false, true] {
            let mut h = Harness::new("rereference", json!({}), &[stream()], 4).unwrap();
            // Means: sample 0 (1 + 2 + 6) / 3 = 3, sample 1 (10 + 20 + 60) / 3 = 30.
            assert_eq!(push(&mut h, shared), [-2.0, -20.0, -1.0, -10.0, 3.0, 30.0]);
        }
    }

    #[test]
    fn channel_reference_by_label_or_index() {
        for channel in [json!("Cz"), json!(1)] {
            let mut h =
                Harness::new("rereference", json!({"mode": "channel", "channel": channel}), &[stream()], 4)
                    .unwrap();
            assert_eq!(push(&mut h, false), [-1.0, -10.0, 0.0, 0.0, 4.0, 40.0]);
        }
    }

    #[test]
    fn refuses_a_missing_or_unknown_reference_channel() {
        let e = Harness::new("rereference", json!({"mode": "channel"}), &[stream()], 4).err().unwrap();
        assert!(e.contains("needs a `channel`"), "{e}");
        let e = Harness::new("rereference", json!({"mode": "channel", "channel": "A1"}), &[stream()], 4)
            .err()
            .unwrap();
        assert!(e.starts_with("channel") && e.contains("Fz, Cz, Pz"), "{e}");
        assert!(Harness::new("rereference", json!({"mode": "bipolar"}), &[stream()], 4).is_err());
    }

    #[test]
    fn live_change_of_reference() {
        let mut h = Harness::new("rereference", json!({}), &[stream()], 4).unwrap();
        h.stage().patch(&json!({"mode": "channel", "channel": "Pz"})).unwrap();
        assert_eq!(push(&mut h, false), [-5.0, -50.0, -4.0, -40.0, 0.0, 0.0]);
        assert!(h.stage().patch(&json!({"channel": "A2"})).is_err());
        assert_eq!(
            push(&mut h, false),
            [-5.0, -50.0, -4.0, -40.0, 0.0, 0.0],
            "a refused change changes nothing"
        );
    }
}
