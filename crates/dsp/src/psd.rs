//! Power spectral density of one window: Hann window, real FFT, one-sided density scaling.
use crate::design::DesignError;
use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};
use std::f64::consts::PI;
use std::sync::Arc;

/// One-sided power spectral density of a window of `n` samples, equal to
/// `scipy.signal.welch(x, fs, window='hann', nperseg=n, noverlap=0, detrend=…, scaling='density')`
/// for a single segment:
/// `P[k] = c_k |FFT(w · (x - x̄))[k]|² / (fs Σ w²)` with `w` the periodic Hann window
/// (`scipy.signal.get_window('hann', n)`, i.e. `sym=False`), `c_k = 2` except at 0 Hz and
/// (for even `n`) at Nyquist, where `c_k = 1`. Units: the input's unit squared per Hz.
///
/// **Detrend**: like welch's default `detrend='constant'`, the window's mean is subtracted
/// before windowing unless [`Psd::set_detrend`] turns it off (welch's `detrend=False`).
///
/// Computed in `f64`; [`Psd::compute`] never allocates.
pub struct Psd {
    n: usize,
    fs: f64,
    detrend: bool,
    window: Vec<f64>,
    scale: f64,
    fft: Arc<dyn RealToComplex<f64>>,
    buf: Vec<f64>,
    spectrum: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
}

impl std::fmt::Debug for Psd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Psd")
            .field("n", &self.n)
            .field("fs", &self.fs)
            .field("detrend", &self.detrend)
            .finish()
    }
}

impl Psd {
    /// A PSD over windows of `n ≥ 2` samples at `fs` Hz, detrending on.
    pub fn new(n: usize, fs: f64) -> Result<Psd, DesignError> {
        if n < 2 {
            return Err(DesignError::Param { what: "window length", value: n as f64, range: "2.." });
        }
        if !(fs.is_finite() && fs > 0.0) {
            return Err(DesignError::Rate(fs));
        }
        let window = hann_periodic(n);
        let scale = 1.0 / (fs * window.iter().map(|w| w * w).sum::<f64>());
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n);
        Ok(Psd {
            n,
            fs,
            detrend: true,
            window,
            scale,
            buf: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
        })
    }

    /// Subtract the window's mean before windowing (`true`, welch's default) or not.
    pub fn set_detrend(&mut self, on: bool) {
        self.detrend = on;
    }

    pub fn detrend(&self) -> bool {
        self.detrend
    }

    /// Window length.
    pub fn size(&self) -> usize {
        self.n
    }

    /// Number of output bins, `n / 2 + 1`.
    pub fn bins(&self) -> usize {
        self.n / 2 + 1
    }

    /// Frequency of bin `k` in Hz: `k · fs / n`.
    pub fn bin_hz(&self, k: usize) -> f64 {
        k as f64 * self.fs / self.n as f64
    }

    /// The frequency of every bin (allocates; for metadata).
    pub fn frequencies(&self) -> Vec<f64> {
        (0..self.bins()).map(|k| self.bin_hz(k)).collect()
    }

    /// The PSD of `input` (`n` samples) into `out` (`n / 2 + 1` bins).
    ///
    /// # Panics
    /// If the slices have other lengths.
    pub fn compute(&mut self, input: &[f32], out: &mut [f32]) {
        assert_eq!(input.len(), self.n, "PSD input is not one window long");
        assert_eq!(out.len(), self.bins(), "PSD output is not one spectrum long");
        let mean =
            if self.detrend { input.iter().map(|&v| f64::from(v)).sum::<f64>() / self.n as f64 } else { 0.0 };
        for ((b, &x), &w) in self.buf.iter_mut().zip(input).zip(&self.window) {
            *b = (f64::from(x) - mean) * w;
        }
        // Cannot fail: every buffer came from this plan.
        let _ = self.fft.process_with_scratch(&mut self.buf, &mut self.spectrum, &mut self.scratch);
        let last = self.bins() - 1;
        let nyquist_bin = self.n & 1 == 0;
        for (k, (o, c)) in out.iter_mut().zip(&self.spectrum).enumerate() {
            let single = k == 0 || (nyquist_bin && k == last);
            let factor = if single { 1.0 } else { 2.0 };
            *o = (c.norm_sqr() * self.scale * factor) as f32;
        }
    }
}

/// `scipy.signal.get_window('hann', n)`: the periodic Hann window, `0.5 - 0.5 cos(2πi/n)`.
pub fn hann_periodic(n: usize) -> Vec<f64> {
    (0..n).map(|i| 0.5 - 0.5 * (2.0 * PI * i as f64 / n as f64).cos()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(n: usize, f: f64, fs: f64, amp: f64, offset: f64) -> Vec<f32> {
        (0..n).map(|i| (offset + amp * (2.0 * PI * f * i as f64 / fs).sin()) as f32).collect()
    }

    #[test]
    fn window_is_periodic_hann() {
        let w = hann_periodic(8);
        assert_eq!(w[0], 0.0);
        assert!((w[4] - 1.0).abs() < 1e-15);
        assert!((w[2] - 0.5).abs() < 1e-15);
        assert!((w[1] - w[7]).abs() < 1e-15);
    }

    #[test]
    fn sine_peaks_at_its_bin_with_its_power() {
        let (n, fs) = (256, 256.0);
        let mut psd = Psd::new(n, fs).unwrap();
        let mut out = vec![0.0; psd.bins()];
        // A 10 Hz sine of amplitude 4 (power A²/2 = 8) on a DC offset that detrend removes.
        psd.compute(&sine(n, 10.0, fs, 4.0, 100.0), &mut out);
        let peak = (0..out.len()).max_by(|&a, &b| out[a].total_cmp(&out[b])).unwrap();
        assert_eq!(peak, 10);
        assert_eq!(psd.bin_hz(peak), 10.0);
        // Parseval for a density with a Hann window: Σ P·Δf over the main lobe = the power.
        let df = fs / n as f64;
        let power: f64 = out.iter().map(|&p| f64::from(p) * df).sum();
        assert!((power - 8.0).abs() < 1e-4, "power {power}");
        assert!(out[0] < 1e-6, "detrended DC {}", out[0]);
    }

    #[test]
    fn without_detrend_the_offset_shows_at_dc() {
        let (n, fs) = (64, 100.0);
        let mut psd = Psd::new(n, fs).unwrap();
        psd.set_detrend(false);
        let mut out = vec![0.0; psd.bins()];
        psd.compute(&vec![3.0; n], &mut out);
        // |Σ 3w|² / (fs Σw²) with Σw = n/2, Σw² = 3n/8, no doubling at DC.
        let want = (3.0 * n as f64 / 2.0).powi(2) / (fs * 3.0 * n as f64 / 8.0);
        assert!((f64::from(out[0]) - want).abs() < 1e-4 * want);
        assert!(out[2..].iter().all(|&p| p.abs() < 1e-9));
    }

    #[test]
    fn nyquist_tone_power_is_counted_once() {
        // An alternating ±1 has all its power (1) at Nyquist, a bin counted once; summed with
        // the neighbours the window leaks it into, P·Δf gives that power back.
        let (n, fs) = (128, 500.0);
        let mut psd = Psd::new(n, fs).unwrap();
        let mut out = vec![0.0; psd.bins()];
        let x: Vec<f32> = (0..n).map(|i| if i % 2 == 0 { 1.0 } else { -1.0 }).collect();
        psd.compute(&x, &mut out);
        let df = fs / n as f64;
        let power: f64 = out.iter().map(|&p| f64::from(p) * df).sum();
        assert!((power - 1.0).abs() < 1e-6, "power {power}");
        assert_eq!((0..out.len()).max_by(|&a, &b| out[a].total_cmp(&out[b])).unwrap(), n / 2);
    }
}
