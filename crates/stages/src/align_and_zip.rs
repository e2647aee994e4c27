//! `align_and_zip`: joins streams of one rate, sample by sample, into one stream with the
//! channels of all.
//!
//! Each input keeps its recent samples in a ring sized when the graph is built. Samples are
//! matched by time: when every input has samples, the inputs whose oldest sample is more than
//! `tolerance_samples` older than the newest head are trimmed (those samples had no partner),
//! and then the samples all inputs have are copied, side by side, into one packet stamped with
//! the time of the first input's sample. Packets whose samples found no partner (trimmed, pushed
//! out of a full ring, cut off by a gap in their stream's timestamps, or left over at the end)
//! are counted as drops. Nothing allocates after the build.
use crate::select::label_of;
use pipeline::stage::{BuildCx, ParamError};
use pipeline::{Context, Header, Kind, Packet, Role, Stage, StageError, StageType, StreamInfo, StreamMeta};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;

fn one() -> u32 {
    1
}

fn thousand() -> u32 {
    1000
}

/// Parameters of `align_and_zip`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlignAndZipParams {
    /// Samples whose timestamps differ by at most this many sample periods are joined (default 1).
    #[serde(default = "one")]
    #[schemars(range(max = 100000))]
    pub tolerance_samples: u32,
    /// How much of each stream waits for its partners, in ms of samples (default 1000): a stream
    /// that runs further ahead of the others than this loses its oldest samples.
    #[serde(default = "thousand")]
    #[schemars(range(min = 1, max = 60000))]
    pub buffer_ms: u32,
}

/// One input packet's place in its ring: where it ends, and whether any of its samples was
/// thrown away.
#[derive(Debug, Clone, Copy)]
struct Span {
    end: u64,
    lost: bool,
}

/// One input's ring of samples.
struct Lane {
    channels: usize,
    cap: usize,
    /// `channels × cap`, channel-major; sample `k` of channel `c` at `c * cap + k % cap`.
    buf: Vec<u32>,
    /// Absolute index of the oldest buffered sample, and of the next one to arrive.
    head: u64,
    tail: u64,
    /// Sample `k` is at `base_ns + (k - base_index) × period`.
    base_index: u64,
    base_ns: i64,
    /// The input packets with samples in the ring, oldest first (never more than `cap`).
    spans: VecDeque<Span>,
    ready_ns: u64,
}

impl Lane {
    fn len(&self) -> usize {
        (self.tail - self.head) as usize
    }

    fn time_of(&self, k: u64, period_ns: f64) -> i64 {
        self.base_ns + ((k as f64 - self.base_index as f64) * period_ns).round() as i64
    }

    /// Consumes `k` samples from the head; `lost` when they found no partner. Returns the
    /// number of packets that end here having lost samples.
    fn consume(&mut self, k: usize, lost: bool) -> u64 {
        let new_head = self.head + k as u64;
        let mut start = self.head;
        let mut dropped = 0;
        while let Some(s) = self.spans.front_mut() {
            if lost && start < new_head {
                s.lost = true;
            }
            if s.end > new_head {
                break;
            }
            dropped += u64::from(s.lost);
            start = s.end;
            self.spans.pop_front();
        }
        self.head = new_head;
        dropped
    }

    /// Appends a packet of `n` samples stamped `ts`; returns the packets dropped to make room
    /// or because the stream's timestamps jumped.
    fn push(&mut self, pkt: &Packet, n: usize, period_ns: f64) -> u64 {
        let ts = pkt.header().timestamp_ns;
        let mut dropped = 0;
        if self.len() > 0 {
            let expected = self.time_of(self.tail, period_ns);
            if ((ts - expected) as f64).abs() > period_ns / 2.0 {
                // A gap or a step back in this stream's clock: what waits can no longer be
                // placed against the new samples.
                dropped += self.consume(self.len(), true);
            }
        }
        if self.len() + n > self.cap {
            dropped += self.consume(self.len() + n - self.cap, true);
        }
        (self.base_index, self.base_ns) = (self.tail, ts);
        let words = pkt.words();
        let at = (self.tail % self.cap as u64) as usize;
        let first = n.min(self.cap - at);
        for (c, row) in self.buf.chunks_exact_mut(self.cap).enumerate().take(self.channels) {
            let src = &words[c * n..(c + 1) * n];
            row[at..at + first].copy_from_slice(&src[..first]);
            row[..n - first].copy_from_slice(&src[first..]);
        }
        self.tail += n as u64;
        self.spans.push_back(Span { end: self.tail, lost: false });
        self.ready_ns = pkt.header().ready_ns;
        dropped
    }

    /// Copies `n` samples from the head into rows of `dst` (stride `n`).
    fn copy_out(&self, n: usize, dst: &mut [u32]) {
        let at = (self.head % self.cap as u64) as usize;
        let first = n.min(self.cap - at);
        for (row, out) in self.buf.chunks_exact(self.cap).zip(dst.chunks_exact_mut(n.max(1))) {
            out[..first].copy_from_slice(&row[at..at + first]);
            out[first..n].copy_from_slice(&row[..n - first]);
        }
    }
}

/// Joins several streams of one rate into one.
pub struct AlignAndZip {
    lanes: Vec<Lane>,
    kind: Kind,
    rate: f64,
    period_ns: f64,
    tolerance_samples: u32,
    channels: usize,
    max_out: usize,
    seq: u64,
    meta: Arc<StreamMeta>,
}

impl AlignAndZip {
    /// Emits every run of samples that all inputs have, trimming what has no partner.
    fn emit_matched(&mut self, cx: &mut Context<'_>) -> Result<(), StageError> {
        // One ns of slack for the rounding of timestamps to whole ns.
        let tol_ns = f64::from(self.tolerance_samples) * self.period_ns + 1.0;
        loop {
            if self.lanes.iter().any(|l| l.len() == 0) {
                return Ok(());
            }
            let period = self.period_ns;
            let newest = self.lanes.iter().map(|l| l.time_of(l.head, period)).max().unwrap_or(0);
            let mut trimmed = false;
            for lane in &mut self.lanes {
                let late = (newest - lane.time_of(lane.head, period)) as f64;
                // Move to the sample nearest the newest head, then one further if even that
                // one is outside the tolerance (it has no partner).
                let mut k =
                    if late > period / 2.0 + 1.0 { (late / period).round().max(1.0) as usize } else { 0 };
                if late - k as f64 * period > tol_ns {
                    k += 1;
                }
                if k > 0 {
                    let dropped = lane.consume(k.min(lane.len()), true);
                    cx.count_drop(dropped);
                    trimmed = true;
                }
            }
            if trimmed {
                continue;
            }
            let n = self.lanes.iter().map(Lane::len).min().unwrap_or(0).min(self.max_out);
            let header = Header {
                stream_id: self.meta.stream_id,
                kind: self.kind,
                seq: self.seq,
                timestamp_ns: self.lanes[0].time_of(self.lanes[0].head, period),
                rate: self.rate,
                channels: self.channels as u32,
                samples: n as u32,
                ready_ns: self.lanes.iter().map(|l| l.ready_ns).max().unwrap_or(0),
                meta: self.meta.clone(),
            };
            let mut out = cx.alloc(header)?;
            let mut w = out.make_mut()?;
            let mut dst = w.words_mut();
            let mut dropped = 0;
            for lane in &mut self.lanes {
                let (mine, rest) = dst.split_at_mut(lane.channels * n);
                lane.copy_out(n, mine);
                dst = rest;
                // A packet that lost its first samples earlier is counted once its last is out.
                dropped += lane.consume(n, false);
            }
            cx.count_drop(dropped);
            self.seq += 1;
            cx.emit(out);
        }
    }
}

impl Stage for AlignAndZip {
    fn process(&mut self, input: usize, pkt: Packet, cx: &mut Context<'_>) -> Result<(), StageError> {
        let h = pkt.header();
        let n = h.samples as usize;
        let Some(lane) = self.lanes.get_mut(input) else {
            return Err(StageError::msg(format!("`align_and_zip` has no input {input}")));
        };
        if h.channels as usize != lane.channels || n > lane.cap {
            return Err(StageError::msg(format!(
                "input {input}: packet of {} channels × {n} samples; built for {} × at most {}",
                h.channels, lane.channels, lane.cap
            )));
        }
        if n == 0 {
            return Ok(());
        }
        let dropped = lane.push(&pkt, n, self.period_ns);
        cx.count_drop(dropped);
        drop(pkt);
        self.emit_matched(cx)
    }

    /// Emits what still matches; what is left had no partner.
    fn finish(&mut self, cx: &mut Context<'_>) -> Result<(), StageError> {
        self.emit_matched(cx)?;
        for lane in &mut self.lanes {
            let left = lane.len();
            let dropped = lane.consume(left, true);
            cx.count_drop(dropped);
        }
        Ok(())
    }
}

/// The joined stream's metadata: the labels and gains of all inputs in input order (a label
/// already taken gets `-<input number>` appended), the first input's units and reference.
fn joined_meta(inputs: &[StreamInfo]) -> StreamMeta {
    let first = &inputs[0].meta;
    let mut labels: Vec<String> = Vec::new();
    let mut gains = Vec::new();
    let any_gains = inputs.iter().any(|s| !s.meta.gains.is_empty());
    for (k, s) in inputs.iter().enumerate() {
        for c in 0..s.channels {
            let label = label_of(&s.meta, c);
            let label = if labels.contains(&label) { format!("{label}-{}", k + 1) } else { label };
            labels.push(label);
            if any_gains {
                gains.push(s.meta.gains.get(c).copied().unwrap_or(1.0));
            }
        }
    }
    let sensors: Vec<&str> = inputs.iter().map(|s| s.meta.sensor_id.as_str()).collect();
    StreamMeta {
        labels,
        gains,
        sensor_id: sensors.join("+"),
        group_delay_s: inputs.iter().map(|s| s.meta.group_delay_s).fold(0.0, f64::max),
        axis: Vec::new(),
        bands: Vec::new(),
        ..(**first).clone()
    }
}

impl StageType for AlignAndZip {
    type Params = AlignAndZipParams;
    const NAME: &'static str = "align_and_zip";
    const ROLE: Role = Role::Transform;
    const ACCEPTS: &'static [Kind] = &[Kind::Raw, Kind::Voltage];
    const MULTI_INPUT: bool = true;
    const DOC: &'static str = "Joins two or more streams of one rate and kind into one stream with the \
        channels of all, in input order. Samples are matched by timestamp: samples of different inputs \
        within `tolerance_samples` sample periods of each other go into one output sample, stamped with the \
        first input's time; samples that find no partner (an input that started earlier or has a gap, or \
        runs more than `buffer_ms` ahead of the others) are dropped, and each input packet that lost samples \
        counts as one drop. Takes live changes of `tolerance_samples`.\n\n\
        Inputs: two or more, all raw counts or all voltage, at one rate.\nOutputs: the same kind, with the \
        sum of the inputs' channels; labels and gains of all inputs (a repeated label gets `-<input number>` \
        appended); `group_delay_s` the largest of the inputs'.";
    const EXAMPLE: &'static str = "stages:\n  - emulator: { name: left, channels: 8, seed: 1 }\n  - emulator: { name: right, channels: 8, seed: 2 }\n  - align_and_zip: { inputs: [left, right], tolerance_samples: 1 }\n  - to_voltage: {}\n  - null_sink: {}\n";

    fn build(
        p: &Self::Params,
        inputs: &[StreamInfo],
        _: &BuildCx<'_>,
    ) -> Result<(Self, Option<StreamInfo>), ParamError> {
        let Some(first) = inputs.first() else {
            return Err(ParamError::new("", "`align_and_zip` needs two or more `inputs`"));
        };
        for (k, s) in inputs.iter().enumerate().skip(1) {
            if s.kind != first.kind {
                return Err(ParamError::new(
                    "",
                    format!(
                        "input {} gives {} but input 1 gives {}: join streams of one kind",
                        k + 1,
                        s.kind.name(),
                        first.kind.name()
                    ),
                ));
            }
            if (s.rate - first.rate).abs() > 1e-9 * first.rate {
                return Err(ParamError::new(
                    "",
                    format!(
                        "input {} runs at {} samples/s but input 1 at {}: join streams of one rate (add a `downsample`)",
                        k + 1,
                        s.rate,
                        first.rate
                    ),
                ));
            }
            if s.meta.units != first.meta.units {
                return Err(ParamError::new(
                    "",
                    format!("input {} is in `{}` but input 1 in `{}`", k + 1, s.meta.units, first.meta.units),
                ));
            }
        }
        if !(first.rate.is_finite() && first.rate > 0.0) {
            return Err(ParamError::new("", format!("the inputs' rate {} must be positive", first.rate)));
        }
        let max_in = inputs.iter().map(|s| s.max_samples).max().unwrap_or(1).max(1);
        let window = (first.rate * f64::from(p.buffer_ms) / 1000.0).ceil() as usize;
        let cap = window.max(2 * max_in) + max_in;
        let lanes = inputs
            .iter()
            .map(|s| Lane {
                channels: s.channels,
                cap,
                buf: vec![0; s.channels * cap],
                head: 0,
                tail: 0,
                base_index: 0,
                base_ns: 0,
                spans: VecDeque::with_capacity(cap),
                ready_ns: 0,
            })
            .collect();
        let channels = inputs.iter().map(|s| s.channels).sum();
        let meta = Arc::new(joined_meta(inputs));
        let out = StreamInfo {
            kind: first.kind,
            rate: first.rate,
            channels,
            max_samples: max_in,
            meta: meta.clone(),
        };
        let stage = AlignAndZip {
            lanes,
            kind: first.kind,
            rate: first.rate,
            period_ns: 1e9 / first.rate,
            tolerance_samples: p.tolerance_samples,
            channels,
            max_out: max_in,
            seq: 0,
            meta,
        };
        Ok((stage, Some(out)))
    }

    fn reconfigure(&mut self, p: &Self::Params) -> Result<(), ParamError> {
        let cap = self.lanes.first().map_or(0, |l| l.cap);
        let max_in = self.max_out;
        let window = (self.rate * f64::from(p.buffer_ms) / 1000.0).ceil() as usize;
        if window.max(2 * max_in) + max_in != cap {
            return Err(ParamError::new("buffer_ms", "sizes the buffers; restart the pipeline to change it"));
        }
        self.tolerance_samples = p.tolerance_samples;
        Ok(())
    }
}

pipeline::register_stage!(AlignAndZip);

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::testing::Harness;
    use serde_json::json;

    const RATE: f64 = 1000.0;
    const T0: i64 = 1_700_000_000_000_000_000;

    fn stream(channels: usize, labels: &[&str]) -> StreamInfo {
        let meta = StreamMeta {
            labels: labels.iter().map(|s| s.to_string()).collect(),
            units: "uV".into(),
            ..Default::default()
        };
        StreamInfo { kind: Kind::Voltage, rate: RATE, channels, max_samples: 4, meta: Arc::new(meta) }
    }

    /// Sample `k` of input `input`, channel `c`: a value that names all three.
    fn value(input: usize, c: usize, k: i64) -> f32 {
        (input * 100_000 + c * 10_000) as f32 + k as f32
    }

    /// A packet of `n` samples from input `input` starting at stream sample `k`, whose time is
    /// `T0 + k ms + offset_ns`.
    fn packet(h: &Harness, input: usize, channels: usize, k: i64, n: usize, offset_ns: i64) -> Packet {
        let x: Vec<f32> =
            (0..channels).flat_map(|c| (0..n as i64).map(move |i| value(input, c, k + i))).collect();
        let hdr = Header {
            kind: Kind::Voltage,
            timestamp_ns: T0 + k * 1_000_000 + offset_ns,
            rate: RATE,
            channels: channels as u32,
            samples: n as u32,
            ..Header::default()
        };
        h.packet_f32(hdr, &x)
    }

    fn harness(params: serde_json::Value) -> Harness {
        Harness::new("align_and_zip", params, &[stream(2, &["C3", "C4"]), stream(1, &["C3"])], 32).unwrap()
    }

    /// Every output sample: its time and, per output channel, the stream sample it came from.
    fn samples(out: &[Packet]) -> Vec<(i64, Vec<f32>)> {
        let mut v = Vec::new();
        for p in out {
            let h = p.header();
            let n = h.samples as usize;
            for i in 0..n {
                let t = h.timestamp_ns + i as i64 * 1_000_000;
                v.push((t, (0..h.channels as usize).map(|c| p.f32s()[c * n + i]).collect()));
            }
        }
        v
    }

    #[test]
    fn joins_channels_of_streams_that_start_apart_sample_by_sample() {
        let mut h = harness(json!({}));
        let info = h.output.clone().unwrap();
        assert_eq!((info.channels, info.rate, info.max_samples), (3, RATE, 4));
        assert_eq!(info.meta.labels, ["C3", "C4", "C3-2"]);
        // Input 1 starts 3 samples later, with other packet sizes, and 0.3 sample off.
        let mut out = Vec::new();
        for k in 0..6 {
            out.extend(h.push(0, packet(&h, 0, 2, 4 * k, 4, 0)).unwrap());
            out.extend(h.push(1, packet(&h, 1, 1, 3 + 3 * k, 3, 300_000)).unwrap());
        }
        let got = samples(&out);
        // Stream 0 samples 3 … 20 meet stream 1 samples 3 … 20.
        assert_eq!(got.len(), 18);
        for (j, (t, v)) in got.iter().enumerate() {
            let k = 3 + j as i64;
            assert_eq!(*t, T0 + k * 1_000_000, "stamped with the first input's time");
            assert_eq!(v, &[value(0, 0, k), value(0, 1, k), value(1, 0, k)]);
        }
        assert!(out.iter().all(|p| p.header().channels == 3 && p.header().samples <= 4));
        let seqs: Vec<u64> = out.iter().map(|p| p.header().seq).collect();
        assert_eq!(seqs, (0..out.len() as u64).collect::<Vec<_>>());
        // Input 0's first packet (samples 0 … 3) lost samples 0 … 2: one drop.
        assert_eq!(h.stats().drops.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[test]
    fn an_offset_beyond_the_tolerance_is_dropped_and_counted() {
        let mut h = harness(json!({"tolerance_samples": 1}));
        let mut out = Vec::new();
        // Input 1 is 1.5 samples late throughout: each of its samples is joined with the
        // input-0 sample nearest in time, half a sample away, within the tolerance.
        for k in 0..4 {
            out.extend(h.push(0, packet(&h, 0, 2, 4 * k, 4, 0)).unwrap());
            out.extend(h.push(1, packet(&h, 1, 1, 4 * k, 4, 1_500_000)).unwrap());
        }
        assert_eq!(samples(&out).len(), 14);
        for (t, v) in samples(&out) {
            let k0 = (t - T0) / 1_000_000;
            assert_eq!(v[0], value(0, 0, k0));
            let k1 = (v[2] - value(1, 0, 0)) as i64;
            let t1 = T0 + k1 * 1_000_000 + 1_500_000;
            assert!((t1 - t).abs() <= 1_000_000, "joined samples lie within the tolerance");
        }
        // With no tolerance, nothing matches: everything is dropped and counted.
        let mut h = harness(json!({"tolerance_samples": 0}));
        let mut out = Vec::new();
        for k in 0..4 {
            out.extend(h.push(0, packet(&h, 0, 2, 4 * k, 4, 0)).unwrap());
            out.extend(h.push(1, packet(&h, 1, 1, 4 * k, 4, 500_000)).unwrap());
        }
        out.extend(h.finish().unwrap());
        assert!(out.is_empty());
        assert_eq!(h.stats().drops.load(std::sync::atomic::Ordering::Relaxed), 8);
    }

    #[test]
    fn exact_timestamps_join_packet_for_packet() {
        let mut h = harness(json!({"tolerance_samples": 0}));
        for k in 0..5 {
            assert!(h.push(0, packet(&h, 0, 2, 4 * k, 4, 0)).unwrap().is_empty());
            let out = h.push(1, packet(&h, 1, 1, 4 * k, 4, 0)).unwrap();
            assert_eq!(out.len(), 1);
            let hd = out[0].header();
            assert_eq!((hd.timestamp_ns, hd.samples, hd.seq), (T0 + 4 * k * 1_000_000, 4, k as u64));
        }
        assert_eq!(h.stats().drops.load(std::sync::atomic::Ordering::Relaxed), 0);
    }

    #[test]
    fn a_stream_running_ahead_is_bounded_by_the_buffer() {
        // buffer 10 ms = 10 samples, at least 2 × 4, plus 4: a ring of 14.
        let mut h = harness(json!({"buffer_ms": 10}));
        for k in 0..10 {
            assert!(h.push(0, packet(&h, 0, 2, 4 * k, 4, 0)).unwrap().is_empty());
        }
        // 40 samples into 14: the first 26 are gone (packets 0 … 5 lost samples; 6 lost 2 of 4).
        assert_eq!(h.stats().drops.load(std::sync::atomic::Ordering::Relaxed), 6);
        let out = h.push(1, packet(&h, 1, 1, 28, 4, 0)).unwrap();
        let got = samples(&out);
        assert_eq!(
            got.iter().map(|s| s.1[0]).collect::<Vec<_>>(),
            (28..32).map(|k| value(0, 0, k)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_gap_in_one_stream_restarts_its_alignment() {
        let mut h = harness(json!({}));
        h.push(0, packet(&h, 0, 2, 0, 4, 0)).unwrap();
        // Input 0 jumps from sample 4 to sample 12: samples 0 … 3 wait, then can no longer be
        // placed before the new ones.
        h.push(0, packet(&h, 0, 2, 12, 4, 0)).unwrap();
        assert_eq!(h.stats().drops.load(std::sync::atomic::Ordering::Relaxed), 1);
        let out = h.push(1, packet(&h, 1, 1, 12, 4, 0)).unwrap();
        assert_eq!(samples(&out).len(), 4);
    }

    #[test]
    fn refuses_streams_of_other_rates_or_kinds() {
        let other_rate = StreamInfo { rate: 500.0, ..stream(1, &[]) };
        let e = Harness::new("align_and_zip", json!({}), &[stream(2, &[]), other_rate], 4).err().unwrap();
        assert!(e.contains("one rate"), "{e}");
        let raw = StreamInfo { kind: Kind::Raw, ..stream(1, &[]) };
        let e = Harness::new("align_and_zip", json!({}), &[stream(2, &[]), raw], 4).err().unwrap();
        assert!(e.contains("one kind"), "{e}");
    }

    #[test]
    fn live_change_of_tolerance() {
        let mut h = harness(json!({"tolerance_samples": 0}));
        h.stage().patch(&json!({"tolerance_samples": 2})).unwrap();
        h.push(0, packet(&h, 0, 2, 0, 4, 0)).unwrap();
        let out = h.push(1, packet(&h, 1, 1, 0, 4, 1_500_000)).unwrap();
        // Input 1's samples 0, 1 join input 0's 2, 3 (half a sample apart, the nearest).
        assert_eq!(samples(&out).len(), 2, "1.5 samples apart, within 2");
        assert!(h.stage().patch(&json!({"buffer_ms": 5})).is_err());
    }
}
