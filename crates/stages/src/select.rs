//! `select`: keeps some channels, in the order given.
use pipeline::stage::{BuildCx, ParamError};
use pipeline::{Context, Header, Kind, Packet, Role, Stage, StageError, StageType, StreamInfo, StreamMeta};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A channel named by its label (`Fp1`) or by its index (0 = the first channel).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ChannelRef {
    Index(u32),
    Label(String),
}

impl std::fmt::Display for ChannelRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChannelRef::Index(i) => write!(f, "index {i}"),
            ChannelRef::Label(l) => write!(f, "`{l}`"),
        }
    }
}

/// The label of channel `ch` of a stream: its metadata's, or `Ch<n>` when it has none.
pub(crate) fn label_of(meta: &StreamMeta, ch: usize) -> String {
    meta.labels.get(ch).cloned().unwrap_or_else(|| format!("Ch{}", ch + 1))
}

/// The index of channel `r` in a stream of `channels` channels, or a message naming the
/// channels there are.
pub(crate) fn resolve(r: &ChannelRef, meta: &StreamMeta, channels: usize) -> Result<usize, String> {
    match r {
        ChannelRef::Index(i) if (*i as usize) < channels => Ok(*i as usize),
        ChannelRef::Index(i) => Err(format!(
            "channel index {i} is out of range: the input has {channels} channels (0–{})",
            channels.saturating_sub(1)
        )),
        ChannelRef::Label(l) => (0..channels).find(|&c| label_of(meta, c) == *l).ok_or_else(|| {
            let all: Vec<String> = (0..channels).map(|c| label_of(meta, c)).collect();
            format!("no channel labelled `{l}`; the input has {}", all.join(", "))
        }),
    }
}

/// Parameters of `select`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectParams {
    /// The channels to keep, in output order: labels (`Fp1`) or indices (0 = the first channel).
    /// Required; a channel may appear more than once.
    #[schemars(length(min = 1, max = 1024))]
    pub channels: Vec<ChannelRef>,
}

/// Copies the chosen channels of each packet into the output, in place when it can.
pub struct Select {
    /// Input channel of each output channel.
    picks: Vec<usize>,
    in_channels: usize,
    /// The picks only move rows forward (strictly increasing), so a packet this stage owns
    /// alone is rewritten in place.
    in_place: bool,
    input_meta: Arc<StreamMeta>,
    meta: Arc<StreamMeta>,
}

/// The picks of `p` and the output metadata, for an input stream `input`.
fn plan(p: &SelectParams, input: &StreamInfo) -> Result<(Vec<usize>, StreamMeta), ParamError> {
    let picks = p
        .channels
        .iter()
        .map(|r| resolve(r, &input.meta, input.channels))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ParamError::new("channels", e))?;
    let mut meta = (*input.meta).clone();
    meta.labels = picks.iter().map(|&c| label_of(&input.meta, c)).collect();
    if !input.meta.gains.is_empty() {
        meta.gains = picks.iter().map(|&c| input.meta.gains.get(c).copied().unwrap_or(1.0)).collect();
    }
    Ok((picks, meta))
}

impl Stage for Select {
    fn process(&mut self, _: usize, mut pkt: Packet, cx: &mut Context<'_>) -> Result<(), StageError> {
        let h = pkt.header();
        let (channels, n) = (h.channels as usize, h.samples as usize);
        crate::check_channels(channels, self.in_channels, "`select`")?;
        let out_channels = self.picks.len();
        if self.in_place && pkt.is_unique() {
            let mut w = pkt.make_mut()?;
            let words = w.words_mut();
            for (k, &c) in self.picks.iter().enumerate() {
                if c != k {
                    words.copy_within(c * n..(c + 1) * n, k * n);
                }
            }
            w.set_shape(out_channels, n)?;
            w.header_mut().meta = self.meta.clone();
            cx.emit(pkt);
        } else {
            let header = Header { channels: out_channels as u32, meta: self.meta.clone(), ..h.clone() };
            let mut out = cx.alloc(header)?;
            let mut w = out.make_mut()?;
            let (src, dst) = (pkt.words(), w.words_mut());
            for (k, &c) in self.picks.iter().enumerate() {
                dst[k * n..(k + 1) * n].copy_from_slice(&src[c * n..(c + 1) * n]);
            }
            cx.emit(out);
        }
        Ok(())
    }
}

impl StageType for Select {
    type Params = SelectParams;
    const NAME: &'static str = "select";
    const ROLE: Role = Role::Transform;
    const ACCEPTS: &'static [Kind] = &[Kind::Raw, Kind::Voltage, Kind::Spectrum];
    const DOC: &'static str = "Keeps the channels listed in `channels` (labels or 0-based indices), in \
        that order; the stream metadata's labels and gains follow. Takes live changes that keep the \
        number of channels.\n\n\
        Inputs: raw counts, voltage or spectrum.\nOutputs: the same kind with `channels` channels.";
    const EXAMPLE: &'static str = "stages:\n  - emulator: { channels: 8 }\n  - to_voltage: {}\n  - select: { channels: [Fp1, Fp2, 5] }\n  - null_sink: {}\n";

    fn check(p: &Self::Params) -> Vec<ParamError> {
        if p.channels.is_empty() {
            vec![ParamError::new("channels", "list at least one channel")]
        } else {
            Vec::new()
        }
    }

    fn build(
        p: &Self::Params,
        inputs: &[StreamInfo],
        _: &BuildCx<'_>,
    ) -> Result<(Self, Option<StreamInfo>), ParamError> {
        let input = &inputs[0];
        let (picks, meta) = plan(p, input)?;
        let meta = Arc::new(meta);
        let out = StreamInfo { channels: picks.len(), meta: meta.clone(), ..input.clone() };
        let stage = Select {
            in_place: picks.windows(2).all(|w| w[0] < w[1]),
            picks,
            in_channels: input.channels,
            input_meta: input.meta.clone(),
            meta,
        };
        Ok((stage, Some(out)))
    }

    /// Another choice of as many channels applies between packets; the labels follow.
    fn reconfigure(&mut self, p: &Self::Params) -> Result<(), ParamError> {
        let input = StreamInfo {
            kind: Kind::Voltage,
            rate: 0.0,
            channels: self.in_channels,
            max_samples: 0,
            meta: self.input_meta.clone(),
        };
        let (picks, meta) = plan(p, &input)?;
        if picks.len() != self.picks.len() {
            return Err(ParamError::new(
                "channels",
                format!(
                    "changes the number of channels ({} to {}); restart the pipeline to change it",
                    self.picks.len(),
                    picks.len()
                ),
            ));
        }
        self.in_place = picks.windows(2).all(|w| w[0] < w[1]);
        self.picks = picks;
        self.meta = Arc::new(meta);
        Ok(())
    }
}

pipeline::register_stage!(Select);

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::testing::{voltage_header, Harness};
    use serde_json::json;

    fn stream(channels: usize) -> StreamInfo {
        let meta = StreamMeta {
            labels: ["Fp1", "Fp2", "C3", "C4"].iter().take(channels).map(|s| s.to_string()).collect(),
            gains: (0..channels).map(|c| (c + 1) as f64).collect(),
            units: "uV".into(),
            ..Default::default()
        };
        StreamInfo { kind: Kind::Voltage, rate: 250.0, channels, max_samples: 3, meta: Arc::new(meta) }
    }

    /// Channel `c` holds `10c, 10c + 1, 10c + 2`.
    fn values(channels: usize) -> Vec<f32> {
        (0..channels).flat_map(|c| (0..3).map(move |i| (10 * c + i) as f32)).collect()
    }

    fn run(params: serde_json::Value, shared: bool) -> (Harness, Vec<f32>, Arc<StreamMeta>) {
        let mut h = Harness::new("select", params, &[stream(4)], 4).unwrap();
        let pkt = h.packet_f32(voltage_header(4, 3, 250.0), &values(4));
        let keep = shared.then(|| pkt.clone());
        let out = h.push(0, pkt).unwrap();
        if let Some(k) = keep {
            assert_eq!(k.f32s(), &values(4)[..], "a shared input is left alone");
        }
        assert_eq!(out.len(), 1);
        let (hd, v) = (out[0].header(), out[0].f32s().to_vec());
        assert_eq!(hd.samples, 3);
        (h, v, hd.meta.clone())
    }

    #[test]
    fn keeps_channels_by_label_and_index_in_the_order_given() {
        for shared in [false, true] {
            let (h, v, meta) = run(json!({"channels": ["C4", 0]}), shared);
            assert_eq!(v, [30.0, 31.0, 32.0, 0.0, 1.0, 2.0]);
            assert_eq!(meta.labels, ["C4", "Fp1"]);
            assert_eq!(meta.gains, [4.0, 1.0]);
            let out = h.output.as_ref().unwrap();
            assert_eq!((out.channels, out.kind), (2, Kind::Voltage));
            assert_eq!(out.meta, meta);
        }
    }

    #[test]
    fn increasing_picks_run_in_place() {
        for shared in [false, true] {
            let (_, v, meta) = run(json!({"channels": [1, "C4"]}), shared);
            assert_eq!(v, [10.0, 11.0, 12.0, 30.0, 31.0, 32.0]);
            assert_eq!(meta.labels, ["Fp2", "C4"]);
        }
    }

    #[test]
    fn refuses_unknown_channels_naming_the_ones_there_are() {
        let e = Harness::new("select", json!({"channels": ["Cz"]}), &[stream(4)], 4).err().unwrap();
        assert!(e.starts_with("channels") && e.contains("Fp1, Fp2, C3, C4"), "{e}");
        let e = Harness::new("select", json!({"channels": [4]}), &[stream(4)], 4).err().unwrap();
        assert!(e.contains("out of range"), "{e}");
        assert!(Harness::new("select", json!({"channels": []}), &[stream(4)], 4).is_err());
        assert!(Harness::new("select", json!({}), &[stream(4)], 4).is_err());
    }

    #[test]
    fn live_change_keeps_the_channel_count() {
        let mut h = Harness::new("select", json!({"channels": [0, 1]}), &[stream(4)], 4).unwrap();
        h.stage().patch(&json!({"channels": ["C3", "C4"]})).unwrap();
        let out = h.push(0, h.packet_f32(voltage_header(4, 3, 250.0), &values(4))).unwrap();
        assert_eq!(out[0].f32s(), &[20.0, 21.0, 22.0, 30.0, 31.0, 32.0]);
        assert_eq!(out[0].header().meta.labels, ["C3", "C4"]);
        let e = h.stage().patch(&json!({"channels": [0]})).unwrap_err();
        assert!(e.contains("restart"), "{e}");
    }
}
