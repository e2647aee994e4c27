//! `fft`: power spectral density per channel over a sliding window.
use dsp::Psd;
use pipeline::stage::{BuildCx, ParamError};
use pipeline::{Context, Header, Kind, Packet, Role, Stage, StageError, StageType, StreamInfo, StreamMeta};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

fn d_size() -> u32 {
    256
}

fn yes() -> bool {
    true
}

/// The window applied before the FFT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    /// Periodic Hann, `scipy.signal.get_window('hann', size)`.
    #[default]
    Hann,
}

/// Parameters of `fft`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FftParams {
    /// Window length in samples, a power of two (default 256); the bins are rate / `size` apart.
    #[serde(default = "d_size")]
    #[schemars(range(min = 16, max = 8192))]
    pub size: u32,
    /// New samples between spectra (default `size` / 2, half-overlapping windows). Above `size`,
    /// the samples between windows are skipped.
    #[serde(default)]
    #[schemars(range(min = 1, max = 1048576))]
    pub hop: Option<u32>,
    /// Window function (default and only choice: `hann`).
    #[serde(default)]
    pub window: Window,
    /// Subtract each window's mean before windowing (default true, like `scipy.signal.welch`'s
    /// `detrend='constant'`).
    #[serde(default = "yes")]
    pub detrend: bool,
}

impl FftParams {
    fn hop(&self) -> usize {
        self.hop.map_or(self.size as usize / 2, |h| h as usize)
    }
}

/// Sliding-window PSD of every channel.
///
/// Each channel keeps its last `size` samples in a linear buffer; after a spectrum the newest
/// `size - hop` samples move to the front (a `copy_within` per channel per spectrum, cheaper
/// than unrolling a ring into the FFT's input, which must be contiguous anyway).
pub struct Fft {
    psd: Psd,
    size: usize,
    hop: usize,
    bins: usize,
    channels: usize,
    /// `channels × size`, channel-major.
    buf: Vec<f32>,
    /// Samples of the current window already in `buf`.
    fill: usize,
    /// Samples still to skip before the next window starts (`hop > size`).
    skip: usize,
    out_rate: f64,
    seq: u64,
    meta: Arc<StreamMeta>,
}

impl Fft {
    /// Emits the spectra of the full window, whose first sample has time `timestamp_ns`.
    fn emit(&mut self, like: &Header, timestamp_ns: i64, cx: &mut Context<'_>) -> Result<(), StageError> {
        let header = Header {
            kind: Kind::Spectrum,
            seq: self.seq,
            timestamp_ns,
            rate: self.out_rate,
            channels: self.channels as u32,
            samples: self.bins as u32,
            meta: self.meta.clone(),
            ..like.clone()
        };
        let mut out = cx.alloc(header)?;
        let mut w = out.make_mut()?;
        let dst = w.f32s_mut();
        for (window, spectrum) in self.buf.chunks_exact(self.size).zip(dst.chunks_exact_mut(self.bins)) {
            self.psd.compute(window, spectrum);
        }
        self.seq += 1;
        cx.emit(out);
        Ok(())
    }
}

impl Stage for Fft {
    fn process(&mut self, _: usize, pkt: Packet, cx: &mut Context<'_>) -> Result<(), StageError> {
        let h = pkt.header();
        let (channels, n) = (h.channels as usize, h.samples as usize);
        crate::check_channels(channels, self.channels, "`fft`")?;
        let data = pkt.f32s();
        let mut pos = 0;
        while pos < n {
            if self.skip > 0 {
                let k = self.skip.min(n - pos);
                self.skip -= k;
                pos += k;
                continue;
            }
            let take = (self.size - self.fill).min(n - pos);
            for (c, window) in self.buf.chunks_exact_mut(self.size).enumerate() {
                window[self.fill..self.fill + take].copy_from_slice(&data[c * n + pos..c * n + pos + take]);
            }
            self.fill += take;
            pos += take;
            if self.fill == self.size {
                // The window ends at packet sample `pos - 1`, so it starts at `pos - size`
                // (possibly in an earlier packet).
                let first = pos as f64 - self.size as f64;
                let ts = h.timestamp_ns + (first * 1e9 / h.rate).round() as i64;
                self.emit(h, ts, cx)?;
                if self.hop < self.size {
                    for window in self.buf.chunks_exact_mut(self.size) {
                        window.copy_within(self.hop.., 0);
                    }
                    self.fill = self.size - self.hop;
                } else {
                    self.fill = 0;
                    self.skip = self.hop - self.size;
                }
            }
        }
        Ok(())
    }
}

impl StageType for Fft {
    type Params = FftParams;
    const NAME: &'static str = "fft";
    const ROLE: Role = Role::Transform;
    const ACCEPTS: &'static [Kind] = &[Kind::Voltage];
    const DOC: &'static str = "Power spectral density of each channel over the last `size` samples, every \
        `hop` new samples: Hann window (periodic), real FFT, one-sided density scaling, equal to \
        `scipy.signal.welch(x, fs=rate, window='hann', nperseg=size, noverlap=0, detrend='constant')` \
        (or `detrend=False` with `detrend: false`) on that window. The first spectrum comes once `size` \
        samples have arrived. Takes live changes of `detrend`.\n\n\
        Inputs: voltage.\nOutputs: spectrum, one packet per window: `size`/2 + 1 bins per channel in \
        uV^2/Hz, at rate / `hop` spectra per second, stamped with the time of the window's first sample; \
        the bin frequencies (k × rate / `size` Hz) are the stream metadata's `axis`.";
    const EXAMPLE: &'static str =
        "stages:\n  - emulator: { rate: 250 }\n  - to_voltage: {}\n  - fft: { size: 256, hop: 64 }\n  - null_sink: {}\n";

    fn check(p: &Self::Params) -> Vec<ParamError> {
        let mut e = Vec::new();
        if !p.size.is_power_of_two() {
            e.push(ParamError::new(
                "size",
                format!("must be a power of two (16, 32, … 8192), got {}", p.size),
            ));
        }
        e
    }

    fn build(
        p: &Self::Params,
        inputs: &[StreamInfo],
        _: &BuildCx<'_>,
    ) -> Result<(Self, Option<StreamInfo>), ParamError> {
        let input = &inputs[0];
        let (size, hop) = (p.size as usize, p.hop());
        let mut psd = Psd::new(size, input.rate).map_err(|e| ParamError::new("size", e.to_string()))?;
        psd.set_detrend(p.detrend);
        let bins = psd.bins();
        let out = StreamInfo {
            kind: Kind::Spectrum,
            rate: input.rate / hop as f64,
            max_samples: bins,
            ..input.with_meta(|m| {
                m.units = "uV^2/Hz".into();
                m.axis = psd.frequencies();
            })
        };
        let stage = Fft {
            psd,
            size,
            hop,
            bins,
            channels: input.channels,
            buf: vec![0.0; input.channels * size],
            fill: 0,
            skip: 0,
            out_rate: out.rate,
            seq: 0,
            meta: out.meta.clone(),
        };
        Ok((stage, Some(out)))
    }

    /// `detrend` changes live; `size`, `hop` and `window` shape the output stream and need a
    /// restart.
    fn reconfigure(&mut self, p: &Self::Params) -> Result<(), ParamError> {
        if p.size as usize != self.size {
            return Err(ParamError::new(
                "size",
                "sets the spectrum's bins; restart the pipeline to change it",
            ));
        }
        if p.hop() != self.hop {
            return Err(ParamError::new("hop", "sets the spectrum rate; restart the pipeline to change it"));
        }
        self.psd.set_detrend(p.detrend);
        Ok(())
    }
}

pipeline::register_stage!(Fft);

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::testing::Harness;
    use serde_json::json;
    use std::f64::consts::PI;

    use pipeline::testing::{voltage_header, voltage_stream as voltage};

    /// Channel `c`, sample `i`: a sine at 4 Hz (channel 0) or 8 Hz (channel 1) on an offset.
    fn value(c: usize, i: usize, rate: f64) -> f32 {
        (3.0 + (2.0 * PI * 4.0 * (c + 1) as f64 * i as f64 / rate).sin()) as f32
    }

    fn packet(h: &Harness, channels: usize, from: usize, n: usize, rate: f64) -> Packet {
        let x: Vec<f32> =
            (0..channels).flat_map(|c| (from..from + n).map(move |i| value(c, i, rate))).collect();
        let hdr = Header {
            seq: from as u64,
            timestamp_ns: 5_000_000_000 + (from as f64 * 1e9 / rate).round() as i64,
            ..voltage_header(channels, n, rate)
        };
        h.packet_f32(hdr, &x)
    }

    #[test]
    fn output_stream_is_a_spectrum_with_its_axis() {
        let h = Harness::new("fft", json!({"size": 64}), &[voltage(2, 128.0, 10)], 4).unwrap();
        let out = h.output.as_ref().unwrap();
        assert_eq!((out.kind, out.channels, out.max_samples, out.rate), (Kind::Spectrum, 2, 33, 4.0));
        assert_eq!(out.meta.units, "uV^2/Hz");
        assert_eq!(out.meta.axis.len(), 33);
        assert_eq!((out.meta.axis[1], out.meta.axis[32]), (2.0, 64.0));
    }

    #[test]
    fn emits_every_hop_samples_the_psd_of_the_last_window() {
        let (channels, rate, size, hop, n) = (2, 64.0, 32, 8, 12);
        let mut h = Harness::new("fft", json!({"size": size, "hop": hop}), &[voltage(channels, rate, n)], 16)
            .unwrap();
        let mut psd = Psd::new(size, rate).unwrap();
        let mut spectra = Vec::new();
        for k in 0..10 {
            spectra.extend(h.push(0, packet(&h, channels, k * n, n, rate)).unwrap());
        }
        // 120 samples: windows end at samples 32, 40, … 120.
        assert_eq!(spectra.len(), 12);
        for (j, s) in spectra.iter().enumerate() {
            let hd = s.header();
            assert_eq!((hd.kind, hd.seq, hd.samples, hd.channels), (Kind::Spectrum, j as u64, 17, 2));
            assert_eq!(hd.rate, rate / hop as f64);
            let first = j * hop;
            assert_eq!(hd.timestamp_ns, 5_000_000_000 + (first as f64 * 1e9 / rate).round() as i64);
            for c in 0..channels {
                let window: Vec<f32> = (first..first + size).map(|i| value(c, i, rate)).collect();
                let mut want = vec![0.0; 17];
                psd.compute(&window, &mut want);
                assert_eq!(&s.f32s()[c * 17..(c + 1) * 17], &want[..], "spectrum {j} channel {c}");
            }
        }
        // Channel 0 peaks at 4 Hz (bin 2), channel 1 at 8 Hz (bin 4); the offset is detrended.
        let last = spectra.last().unwrap().f32s();
        let argmax = |v: &[f32]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap();
        assert_eq!((argmax(&last[..17]), argmax(&last[17..])), (2, 4));
        assert!(last[0] < 1e-3);
    }

    #[test]
    fn a_hop_longer_than_the_window_skips_samples() {
        let (rate, size, hop, n) = (64.0, 16, 40, 10);
        let mut h =
            Harness::new("fft", json!({"size": size, "hop": hop}), &[voltage(1, rate, n)], 16).unwrap();
        let mut stamps = Vec::new();
        for k in 0..10 {
            stamps.extend(
                h.push(0, packet(&h, 1, k * n, n, rate)).unwrap().iter().map(|s| s.header().timestamp_ns),
            );
        }
        // Windows start at samples 0, 40, 80.
        let at = |i: f64| 5_000_000_000 + (i * 1e9 / rate).round() as i64;
        assert_eq!(stamps, [at(0.0), at(40.0), at(80.0)]);
    }

    #[test]
    fn refuses_sizes_that_are_not_powers_of_two_and_live_size_changes() {
        assert!(Harness::new("fft", json!({"size": 100}), &[voltage(1, 250.0, 10)], 4).is_err());
        assert!(Harness::new("fft", json!({"size": 8}), &[voltage(1, 250.0, 10)], 4).is_err());
        assert!(Harness::new("fft", json!({"window": "hamming"}), &[voltage(1, 250.0, 10)], 4).is_err());
        let mut h = Harness::new("fft", json!({}), &[voltage(1, 250.0, 10)], 4).unwrap();
        assert!(h.stage().patch(&json!({"detrend": false})).is_ok());
        assert!(h.stage().patch(&json!({"size": 512})).is_err());
        assert!(h.stage().patch(&json!({"hop": 128})).is_ok(), "the default hop, spelled out");
        assert!(h.stage().patch(&json!({"hop": 64})).is_err());
    }
}
