//! `downsample`: anti-aliasing low-pass, then every `factor`-th sample.
use crate::filter::DelayedMeta;
use dsp::{group_delay_s, Decimator};
use pipeline::stage::{BuildCx, ParamError};
use pipeline::{Context, Header, Kind, Packet, Role, Stage, StageError, StageType, StreamInfo};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Parameters of `downsample`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DownsampleParams {
    /// Keep one sample in `factor` (required): the output rate is the input rate / `factor`.
    #[schemars(range(min = 2, max = 64))]
    pub factor: u32,
}

/// Decimates a voltage stream, packet by packet, with continuous sample positions.
pub struct Downsample {
    decimator: Decimator,
    in_rate: f64,
    out_rate: f64,
    max_in: usize,
    /// Sequence number of the next output packet (this stage numbers its own packets).
    seq: u64,
    meta: DelayedMeta,
}

impl Stage for Downsample {
    fn process(&mut self, _: usize, mut pkt: Packet, cx: &mut Context<'_>) -> Result<(), StageError> {
        let h = pkt.header();
        let (channels, samples) = (h.channels as usize, h.samples as usize);
        if channels != self.decimator.channels() || samples > self.max_in {
            return Err(StageError::msg(format!(
                "packet of {channels} channels × {samples} samples; `downsample` was built for {} × at most {}",
                self.decimator.channels(),
                self.max_in
            )));
        }
        // The first kept sample's time: the packet's, advanced by its position in the packet.
        let offset_ns = (self.decimator.phase() as f64 * 1e9 / self.in_rate).round() as i64;
        let (seq, timestamp_ns, rate) = (self.seq, h.timestamp_ns + offset_ns, self.out_rate);
        let m = if pkt.is_unique() {
            // In place: the output is a prefix of the packet's own block.
            let mut w = pkt.make_mut()?;
            let m = self.decimator.process_in_place(w.f32s_mut(), channels, samples);
            let hm = w.header_mut();
            (hm.seq, hm.timestamp_ns, hm.rate) = (seq, timestamp_ns, rate);
            self.meta.stamp(hm);
            w.set_shape(channels, m)?;
            m
        } else if self.decimator.output_len(samples) == 0 {
            // Shared, and nothing to emit: run the filter state on with no output.
            self.decimator.process(pkt.f32s(), channels, samples, &mut [])
        } else {
            // Shared: decimate into a fresh, shorter packet rather than copying the whole block.
            let samples_out = self.decimator.output_len(samples) as u32;
            let mut header = Header { seq, timestamp_ns, rate, samples: samples_out, ..h.clone() };
            self.meta.stamp(&mut header);
            let mut out = cx.alloc(header)?;
            let m = self.decimator.process(pkt.f32s(), channels, samples, out.make_mut()?.f32s_mut());
            pkt = out;
            m
        };
        if m > 0 {
            self.seq += 1;
            cx.emit(pkt);
        }
        Ok(())
    }
}

impl StageType for Downsample {
    type Params = DownsampleParams;
    const NAME: &'static str = "downsample";
    const ROLE: Role = Role::Transform;
    const ACCEPTS: &'static [Kind] = &[Kind::Voltage];
    const DOC: &'static str = "Lowers the sample rate by `factor`: an order-12 Chebyshev type II low-pass \
        against aliasing (everything at or above the output's Nyquist frequency at least 70 dB down; flat \
        pass band, -3 dB at ~0.8 × the output Nyquist frequency; equals `scipy.signal.cheby2(12, 70, \
        rate / (2 × factor), fs=rate, output='sos')`), then every `factor`-th sample, counted across \
        packets so that the kept samples are evenly spaced whatever the packet sizes.\n\n\
        Inputs: voltage.\nOutputs: voltage at rate / `factor`, at most ceil(batch / `factor`) samples per \
        packet (packets that keep no sample are not sent); each packet is stamped with the time of its first \
        kept sample and numbered by this stage. The stream's `group_delay_s` grows by the low-pass's delay \
        at 0 Hz.";
    const EXAMPLE: &'static str =
        "stages:\n  - emulator: { rate: 4000 }\n  - to_voltage: {}\n  - downsample: { factor: 16 }\n  - null_sink: {}\n";

    fn build(
        p: &Self::Params,
        inputs: &[StreamInfo],
        _: &BuildCx<'_>,
    ) -> Result<(Self, Option<StreamInfo>), ParamError> {
        let input = &inputs[0];
        let factor = p.factor as usize;
        let decimator = Decimator::new(factor, input.rate, input.channels, input.max_samples)
            .map_err(|e| ParamError::new("factor", e.to_string()))?;
        let meta = DelayedMeta::new(&input.meta, group_delay_s(decimator.sections(), 0.0, input.rate));
        let out = StreamInfo {
            rate: input.rate / factor as f64,
            max_samples: Decimator::max_output_len(input.max_samples, factor),
            meta: meta.output().clone(),
            ..input.clone()
        };
        let stage = Downsample {
            decimator,
            in_rate: input.rate,
            out_rate: out.rate,
            max_in: input.max_samples,
            seq: 0,
            meta,
        };
        Ok((stage, Some(out)))
    }

    /// The factor sets the output rate, fixed when the graph is built: only the same one passes.
    fn reconfigure(&mut self, p: &Self::Params) -> Result<(), ParamError> {
        if p.factor as usize == self.decimator.factor() {
            Ok(())
        } else {
            Err(ParamError::new("factor", "changes the output rate; restart the pipeline to change it"))
        }
    }
}

pipeline::register_stage!(Downsample);

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::testing::Harness;
    use serde_json::json;
    use std::f64::consts::PI;

    use pipeline::testing::{voltage_header, voltage_stream as voltage};

    /// Channel `c`, sample `i` of a test stream.
    fn value(c: usize, i: usize, rate: f64) -> f32 {
        ((2.0 * PI * 3.0 * i as f64 / rate).sin() * (c + 1) as f64) as f32
    }

    fn packet(h: &Harness, channels: usize, from: usize, n: usize, rate: f64, seq: u64) -> Packet {
        let x: Vec<f32> =
            (0..channels).flat_map(|c| (from..from + n).map(move |i| value(c, i, rate))).collect();
        let hdr = Header {
            seq,
            timestamp_ns: 1_000_000_000 + (from as f64 * 1e9 / rate).round() as i64,
            ..voltage_header(channels, n, rate)
        };
        h.packet_f32(hdr, &x)
    }

    #[test]
    fn output_stream_has_the_new_rate_and_batch() {
        let h = Harness::new("downsample", json!({"factor": 4}), &[voltage(2, 1000.0, 10)], 4).unwrap();
        let out = h.output.as_ref().unwrap();
        assert_eq!((out.rate, out.max_samples, out.channels), (250.0, 3, 2));
        let sos = Decimator::design(4, 1000.0).unwrap();
        assert!((out.meta.group_delay_s - group_delay_s(&sos, 0.0, 1000.0)).abs() < 1e-15);
        assert!(Harness::new("downsample", json!({}), &[voltage(2, 1000.0, 10)], 4).is_err());
        assert!(Harness::new("downsample", json!({"factor": 65}), &[voltage(2, 1000.0, 10)], 4).is_err());
    }

    /// Packets of 10 samples by 4: 3, 2, 3, 2 … samples, continuous in values and in time, in
    /// place or from shared packets alike.
    fn decimates_a_stream(shared: bool) {
        let (channels, n, rate, factor) = (2, 10, 1000.0, 4);
        let mut h =
            Harness::new("downsample", json!({"factor": factor}), &[voltage(channels, rate, n)], 8).unwrap();
        let mut whole = Decimator::new(factor, rate, channels, 10 * n).unwrap();
        let all: Vec<f32> = (0..channels).flat_map(|c| (0..10 * n).map(move |i| value(c, i, rate))).collect();
        let mut want = vec![0.0; all.len()];
        let m_all = whole.process(&all, channels, 10 * n, &mut want);
        assert_eq!(m_all, 25);

        let mut got = vec![Vec::new(); channels];
        let mut stamps = Vec::new();
        for k in 0..10 {
            let pkt = packet(&h, channels, k * n, n, rate, k as u64);
            let keep = shared.then(|| pkt.clone());
            let out = h.push(0, pkt).unwrap();
            assert_eq!(out.len(), 1);
            let o = &out[0];
            let hd = o.header();
            assert_eq!(hd.samples as usize, if k % 2 == 0 { 3 } else { 2 }, "packet {k}");
            assert_eq!((hd.seq, hd.rate, hd.channels), (k as u64, 250.0, channels as u32));
            let m = hd.samples as usize;
            for (c, g) in got.iter_mut().enumerate() {
                g.extend_from_slice(&o.f32s()[c * m..(c + 1) * m]);
            }
            stamps.push((hd.timestamp_ns, m));
            if let Some(p) = keep {
                assert_eq!(p.header().samples as usize, n, "the shared input is left alone");
            }
        }
        for (c, g) in got.iter().enumerate() {
            assert_eq!(&g[..], &want[c * m_all..(c + 1) * m_all], "channel {c}");
        }
        // Output sample j of the stream is input sample 4j, at 1 s + 4j ms.
        let mut j = 0i64;
        for (ts, m) in stamps {
            assert_eq!(ts, 1_000_000_000 + 4 * j * 1_000_000);
            j += m as i64;
        }
    }

    #[test]
    fn decimates_in_place_continuously_across_packets() {
        decimates_a_stream(false);
    }

    #[test]
    fn decimates_shared_packets_into_fresh_ones() {
        decimates_a_stream(true);
    }

    #[test]
    fn emits_nothing_for_a_packet_that_keeps_no_sample() {
        let (rate, factor) = (1000.0, 8);
        let mut h = Harness::new("downsample", json!({"factor": factor}), &[voltage(1, rate, 3)], 8).unwrap();
        // Samples 0..3 keep 0; 3..6 keep none; 6..9 keep 8.
        let mut sizes = Vec::new();
        let mut seqs = Vec::new();
        for k in 0..3 {
            let pkt = packet(&h, 1, 3 * k, 3, rate, k as u64);
            let keep = (k == 1).then(|| pkt.clone()); // the shared path too
            let out = h.push(0, pkt).unwrap();
            drop(keep);
            sizes.push(out.len());
            seqs.extend(out.iter().map(|o| (o.header().seq, o.header().timestamp_ns)));
        }
        assert_eq!(sizes, [1, 0, 1]);
        assert_eq!(seqs, [(0, 1_000_000_000), (1, 1_008_000_000)]);
    }

    /// By 4, 8 and 16 from 4000 S/s in packets of 12: tones above the new Nyquist frequency
    /// (just above, 1.5 ×, 3 ×) come out at least 60 dB down, a tone in the pass band
    /// unchanged; every header has the new rate, its batch and the time of its first sample.
    #[test]
    fn by_4_8_and_16_stops_what_would_alias_with_right_headers() {
        let (rate, batch, seconds) = (4000.0, 12, 4);
        let t0 = 1_700_000_000_000_000_000i64;
        for factor in [4usize, 8, 16] {
            let nyquist = rate / (2.0 * factor as f64);
            let tones = [1.02 * nyquist, 1.5 * nyquist, 3.0 * nyquist, 0.25 * nyquist];
            let channels = tones.len();
            let mut h =
                Harness::new("downsample", json!({"factor": factor}), &[voltage(channels, rate, batch)], 8)
                    .unwrap();
            let out_info = h.output.clone().unwrap();
            assert_eq!((out_info.rate, out_info.max_samples), (rate / factor as f64, batch.div_ceil(factor)));
            let total = seconds * rate as usize / batch * batch;
            let mut got = vec![Vec::new(); channels];
            let mut next_out = 0usize;
            for (k, from) in (0..total).step_by(batch).enumerate() {
                let x: Vec<f32> = tones
                    .iter()
                    .flat_map(|&f| {
                        (from..from + batch).map(move |i| (2.0 * PI * f * i as f64 / rate).sin() as f32)
                    })
                    .collect();
                let hdr = Header {
                    seq: k as u64,
                    timestamp_ns: t0 + (from as f64 * 1e9 / rate).round() as i64,
                    ..voltage_header(channels, batch, rate)
                };
                // Samples `from`, … kept: those at multiples of `factor`.
                let keep = (from..from + batch).filter(|i| i % factor == 0).count();
                let out = h.push(0, h.packet_f32(hdr, &x)).unwrap();
                assert_eq!(out.len(), usize::from(keep > 0), "factor {factor}, packet {k}");
                for o in &out {
                    let hd = o.header();
                    assert_eq!(
                        (hd.rate, hd.samples as usize, hd.channels as usize),
                        (rate / factor as f64, keep, channels)
                    );
                    let first_in = next_out * factor;
                    assert_eq!(hd.timestamp_ns, t0 + (first_in as f64 * 1e9 / rate).round() as i64);
                    for (c, g) in got.iter_mut().enumerate() {
                        g.extend_from_slice(&o.f32s()[c * keep..(c + 1) * keep]);
                    }
                    next_out += keep;
                }
            }
            assert_eq!(next_out, total.div_ceil(factor));
            // After the filter has settled (the first second), peak amplitudes.
            let settled = |g: &Vec<f32>| g[g.len() / seconds..].iter().fold(0.0f32, |a, v| a.max(v.abs()));
            for (c, &f) in tones.iter().enumerate() {
                let peak = settled(&got[c]);
                if f > nyquist {
                    let db = 20.0 * f64::from(peak).log10();
                    assert!(db <= -60.0, "factor {factor}: {f} Hz only {db:.1} dB down");
                } else {
                    assert!((peak - 1.0).abs() < 0.01, "factor {factor}: pass band tone at {peak}");
                }
            }
        }
    }

    #[test]
    fn refuses_a_live_change_of_factor() {
        let mut h = Harness::new("downsample", json!({"factor": 4}), &[voltage(1, 1000.0, 8)], 4).unwrap();
        assert!(h.stage().patch(&json!({"factor": 4})).is_ok());
        let e = h.stage().patch(&json!({"factor": 8})).unwrap_err();
        assert!(e.contains("restart"), "{e}");
    }
}
