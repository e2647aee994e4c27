//! Decimation: an anti-aliasing low-pass, then every `factor`-th sample.
use crate::design::{cheby2, BandKind, DesignError, Sos};
use crate::sos::SosBank;

/// Order of the anti-aliasing Chebyshev type II low-pass (6 sections).
pub const ANTI_ALIAS_ORDER: usize = 12;
/// Its stop-band attenuation, in dB, from the output's Nyquist frequency up.
///
/// A Chebyshev type II filter rather than a Butterworth: everything that would alias (any
/// frequency at or above the new Nyquist) must be at least 60 dB down, and a Butterworth low-pass
/// of order 8 is only ~15 dB down a quarter above its cut-off. Order 12 with its stop band at the
/// new Nyquist keeps the pass band flat (monotonic, no ripple) to -3 dB at ~0.78–0.80 of the new
/// Nyquist, the same pass band as a Butterworth cut-off at 0.8.
pub const ANTI_ALIAS_STOP_DB: f64 = 70.0;

/// Low-pass filters a planar multichannel stream and keeps every `factor`-th sample.
///
/// The kept samples are the stream's samples `0, factor, 2·factor, …` counted from the first
/// block: a phase carries across blocks, so any split of the stream into blocks gives the same
/// output. Filtering is that of a [`SosBank`] running the Chebyshev type II low-pass of order
/// [`ANTI_ALIAS_ORDER`] whose stop band, [`ANTI_ALIAS_STOP_DB`] down, starts at the output's
/// Nyquist frequency. Neither `process` method allocates.
#[derive(Debug, Clone)]
pub struct Decimator {
    factor: usize,
    bank: SosBank,
    /// Index, in the next block, of the next sample to keep.
    phase: usize,
    /// The filtered block when the output goes elsewhere (`channels × max_samples`).
    scratch: Vec<f32>,
    max_samples: usize,
}

impl Decimator {
    /// The anti-aliasing sections for decimating a stream at `fs` by `factor`.
    pub fn design(factor: usize, fs: f64) -> Result<Vec<Sos>, DesignError> {
        if factor == 0 {
            return Err(DesignError::Param { what: "decimation factor", value: 0.0, range: "1.." });
        }
        let stop = fs / (2.0 * factor as f64);
        cheby2(ANTI_ALIAS_ORDER, ANTI_ALIAS_STOP_DB, BandKind::Lowpass(stop), fs)
    }

    /// A decimator by `factor` for `channels` channels at `fs`, taking blocks of up to
    /// `max_samples` samples per channel.
    pub fn new(
        factor: usize,
        fs: f64,
        channels: usize,
        max_samples: usize,
    ) -> Result<Decimator, DesignError> {
        let sos = Decimator::design(factor, fs)?;
        Ok(Decimator {
            factor,
            bank: SosBank::new(&sos, channels),
            phase: 0,
            scratch: vec![0.0; channels * max_samples],
            max_samples,
        })
    }

    pub fn factor(&self) -> usize {
        self.factor
    }

    pub fn channels(&self) -> usize {
        self.bank.channels()
    }

    /// The anti-aliasing sections.
    pub fn sections(&self) -> &[Sos] {
        self.bank.sections()
    }

    /// Index, within the next block, of the first sample that will be kept (it may lie beyond
    /// that block if the block is short). A block's first output sample has the time of its
    /// input sample `phase()`.
    pub fn phase(&self) -> usize {
        self.phase
    }

    /// Output samples per channel that a block of `samples` will give.
    pub fn output_len(&self, samples: usize) -> usize {
        if self.phase < samples {
            (samples - self.phase - 1) / self.factor + 1
        } else {
            0
        }
    }

    /// The most output samples a block of `samples` can give: `ceil(samples / factor)`.
    pub fn max_output_len(samples: usize, factor: usize) -> usize {
        samples.div_ceil(factor.max(1))
    }

    /// Restarts: zero filter state, and the next sample is kept.
    pub fn reset(&mut self) {
        self.bank.reset();
        self.phase = 0;
    }

    fn advance(&mut self, samples: usize) -> (usize, usize) {
        let first = self.phase;
        let m = self.output_len(samples);
        self.phase = first + m * self.factor - samples;
        (first, m)
    }

    /// Decimates `channels × samples` planar values of `input` into `output`, which receives
    /// `m` samples per channel, planar with stride `m` (`output[ch * m + j]`); returns `m`.
    ///
    /// # Panics
    /// If `channels` is not the decimator's, `samples` exceeds its `max_samples`, or a slice is
    /// too short.
    pub fn process(&mut self, input: &[f32], channels: usize, samples: usize, output: &mut [f32]) -> usize {
        assert!(samples <= self.max_samples, "block longer than the decimator was built for");
        let len = channels * samples;
        let (first, m) = self.advance(samples);
        let scratch = &mut self.scratch[..len];
        scratch.copy_from_slice(&input[..len]);
        self.bank.process(scratch, channels, samples);
        for ch in 0..channels {
            let src = &scratch[ch * samples..(ch + 1) * samples];
            let dst = &mut output[ch * m..(ch + 1) * m];
            for (d, s) in dst.iter_mut().zip(src[first.min(samples)..].iter().step_by(self.factor)) {
                *d = *s;
            }
        }
        m
    }

    /// As [`Decimator::process`], in place: afterwards the first `channels × m` values of `data`
    /// hold the output, planar with stride `m`; returns `m`. Needs no scratch.
    pub fn process_in_place(&mut self, data: &mut [f32], channels: usize, samples: usize) -> usize {
        self.bank.process(data, channels, samples);
        let (first, m) = self.advance(samples);
        // Output value `ch·m + j` comes from input `ch·samples + first + j·factor`, never an
        // earlier position, so a forward pass reads every input before it is overwritten.
        for ch in 0..channels {
            for j in 0..m {
                data[ch * m + j] = data[ch * samples + first + j * self.factor];
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::gain_at;
    use std::f64::consts::PI;

    fn sine(n: usize, f: f64, fs: f64, offset: usize) -> Vec<f32> {
        (0..n).map(|i| (2.0 * PI * f * (i + offset) as f64 / fs).sin() as f32).collect()
    }

    #[test]
    fn anti_alias_filter_passes_the_band_and_stops_everything_that_would_alias() {
        for (fs, factor) in [(1000.0, 4), (4000.0, 8), (4000.0, 16), (250.0, 2)] {
            let sos = Decimator::design(factor, fs).unwrap();
            assert_eq!(sos.len(), ANTI_ALIAS_ORDER / 2);
            let nyquist = fs / (2.0 * factor as f64);
            assert!(gain_at(&sos, 0.0, fs) > 0.999_999);
            assert!(gain_at(&sos, 0.5 * nyquist, fs) > 0.99, "flat pass band");
            assert!(gain_at(&sos, 0.75 * nyquist, fs) > std::f64::consts::FRAC_1_SQRT_2);
            let floor = 10f64.powf(-ANTI_ALIAS_STOP_DB / 20.0) * (1.0 + 1e-6);
            for k in 0..=2000 {
                let f = nyquist + (fs / 2.0 - nyquist) * k as f64 / 2000.0;
                assert!(gain_at(&sos, f, fs) <= floor, "{f} Hz at {fs} S/s / {factor}");
            }
        }
    }

    #[test]
    fn block_splits_do_not_change_the_output() {
        let (fs, factor, channels, n) = (1000.0, 3, 2, 200);
        let input: Vec<f32> = (0..channels).flat_map(|c| sine(n, 7.0 + c as f64, fs, 0)).collect();
        let mut whole = Decimator::new(factor, fs, channels, n).unwrap();
        let mut out_whole = vec![0.0; channels * n];
        let m = whole.process(&input, channels, n, &mut out_whole);
        assert_eq!(m, 67);

        let mut split = Decimator::new(factor, fs, channels, n).unwrap();
        let mut got = vec![Vec::new(); channels];
        let mut at = 0;
        for block in [5, 1, 0, 2, 64, 128] {
            let mut data: Vec<f32> =
                (0..channels).flat_map(|c| input[c * n + at..c * n + at + block].to_vec()).collect();
            let expect = split.output_len(block);
            let k = split.process_in_place(&mut data, channels, block);
            assert_eq!(k, expect);
            for (c, g) in got.iter_mut().enumerate() {
                g.extend_from_slice(&data[c * k..(c + 1) * k]);
            }
            at += block;
        }
        assert_eq!(at, n);
        for (c, g) in got.iter().enumerate() {
            assert_eq!(&g[..], &out_whole[c * m..(c + 1) * m], "channel {c}");
        }
    }

    #[test]
    fn phase_names_the_first_kept_sample_of_the_next_block() {
        let mut d = Decimator::new(4, 1000.0, 1, 16).unwrap();
        let mut out = [0.0; 16];
        assert_eq!(d.phase(), 0);
        assert_eq!(d.process(&[0.0; 6], 1, 6, &mut out), 2); // keeps 0, 4
        assert_eq!(d.phase(), 2); // next kept: stream sample 8 = this block's 2
        assert_eq!(d.process(&[0.0; 1], 1, 1, &mut out), 0);
        assert_eq!(d.phase(), 1);
        assert_eq!(d.process(&[0.0; 2], 1, 2, &mut out), 1); // keeps stream sample 8
        assert_eq!(d.phase(), 3);
    }

    #[test]
    fn keeps_an_in_band_sine_and_removes_an_out_of_band_one() {
        let (fs, factor, n) = (1000.0, 4, 4000);
        let mut d = Decimator::new(factor, fs, 2, n).unwrap();
        let mut data = sine(n, 10.0, fs, 0);
        data.extend(sine(n, 130.0, fs, 0)); // just above the new Nyquist: would alias to 120 Hz
        let m = d.process_in_place(&mut data, 2, n);
        assert_eq!(m, n / factor);
        let peak = |v: &[f32]| v.iter().fold(0.0f32, |a, x| a.max(x.abs()));
        assert!((peak(&data[m / 2..m]) - 1.0).abs() < 0.01);
        assert!(peak(&data[m + m / 2..2 * m]) < 1e-3, "at least 60 dB down");
    }
}
