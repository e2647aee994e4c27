//! What the simulated electrodes carry: the analog signal, in µV, that a simulated ADS1299
//! digitises. Deterministic for a given seed.
use std::f64::consts::{PI, TAU};

/// The kind of signal on the electrodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Waveform {
    /// 1/f background, 8–12 Hz alpha, line noise, blinks on the first two (frontal) channels.
    #[default]
    Eeg,
    /// The same sine on every channel.
    Sine,
    /// Nothing (0 µV): for channels that are shorted or show the chip's own test signal.
    Flat,
}

/// Parameters of the signal model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignalParams {
    pub waveform: Waveform,
    /// Line-noise frequency for `Eeg`, Hz.
    pub line_hz: f64,
    /// Frequency of `Sine`, Hz.
    pub sine_hz: f64,
    /// Amplitude of `Sine`, µV.
    pub amplitude_uv: f64,
    pub seed: u64,
}

impl Default for SignalParams {
    fn default() -> Self {
        SignalParams { waveform: Waveform::Eeg, line_hz: 50.0, sine_hz: 10.0, amplitude_uv: 50.0, seed: 0 }
    }
}

/// The signal model of `channels` electrodes. Allocation-free per sample.
#[derive(Debug, Clone)]
pub struct SignalModel {
    p: SignalParams,
    rng: u64,
    /// Per channel, three one-pole low-passes of white noise (poles at 2, 20, 200 Hz): their sum
    /// has an approximately 1/f spectrum over the EEG band.
    pink: Vec<[f64; 3]>,
    /// Per channel phase of the alpha rhythm.
    phase: Vec<f64>,
    /// Pole coefficients and input scales for the current rate.
    poles: [(f64, f64); 3],
    rate: u32,
    blink_until: u64,
}

/// xorshift64*: small, fast and deterministic; its statistical quality is ample for test
/// signals (a dependency would buy nothing here).
fn next_u64(s: &mut u64) -> u64 {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    s.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

fn uniform(s: &mut u64) -> f64 {
    (next_u64(s) >> 11) as f64 / (1u64 << 53) as f64
}

fn gaussian(s: &mut u64) -> f64 {
    // Irwin–Hall with 4 terms: bounded and cheap, close enough to normal for a background.
    (uniform(s) + uniform(s) + uniform(s) + uniform(s) - 2.0) * 1.732
}

impl SignalModel {
    pub fn new(p: SignalParams, channels: usize) -> Self {
        let mut rng = p.seed ^ 0x9E37_79B9_7F4A_7C15;
        let phase = (0..channels).map(|_| uniform(&mut rng) * TAU).collect();
        SignalModel {
            p,
            rng,
            pink: vec![[0.0; 3]; channels],
            phase,
            poles: [(0.0, 0.0); 3],
            rate: 0,
            blink_until: 0,
        }
    }

    pub fn params(&self) -> &SignalParams {
        &self.p
    }

    pub fn channels(&self) -> usize {
        self.phase.len()
    }

    /// The electrode signal of every channel at sample `n` of a `rate` Hz stream, µV, into
    /// `out` (one value per channel; extra entries are left alone).
    pub fn sample(&mut self, n: u64, rate: u32, out: &mut [f64]) {
        let rate_f = rate.max(1) as f64;
        let t = n as f64 / rate_f;
        match self.p.waveform {
            Waveform::Flat => out.iter_mut().for_each(|v| *v = 0.0),
            Waveform::Sine => {
                let v = self.p.amplitude_uv * (TAU * self.p.sine_hz * t).sin();
                out.iter_mut().take(self.channels()).for_each(|o| *o = v);
            }
            Waveform::Eeg => {
                if rate != self.rate {
                    self.rate = rate;
                    for (k, fc) in [2.0, 20.0, 200.0].into_iter().enumerate() {
                        let a = (-TAU * fc / rate_f).exp();
                        self.poles[k] = (a, (1.0 - a) * (rate_f / fc).sqrt());
                    }
                }
                if n > self.blink_until + 2 * rate as u64 && uniform(&mut self.rng) < 1.0 / (4.0 * rate_f) {
                    // A blink every few seconds on average, 300 ms long.
                    self.blink_until = n + (0.3 * rate_f) as u64;
                }
                let line = 5.0 * (TAU * self.p.line_hz * t).sin();
                let blink = if n < self.blink_until {
                    150.0 * (PI * (self.blink_until - n) as f64 / (0.3 * rate_f)).sin()
                } else {
                    0.0
                };
                for (ch, o) in out.iter_mut().enumerate().take(self.channels()) {
                    let w = gaussian(&mut self.rng);
                    let st = &mut self.pink[ch];
                    for (s, (a, g)) in st.iter_mut().zip(self.poles) {
                        *s = a * *s + g * w;
                    }
                    let background = 4.0 * (st[0] + st[1] + st[2]);
                    let ph = self.phase[ch];
                    let alpha_env = 0.6 + 0.4 * (TAU * 0.1 * t + ph).sin();
                    let alpha = 20.0 * alpha_env * (TAU * 10.0 * t + ph).sin();
                    *o = background + alpha + line + if ch < 2 { blink } else { 0.0 };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sine_has_its_amplitude_and_the_same_seed_repeats() {
        let p = SignalParams {
            waveform: Waveform::Sine,
            sine_hz: 10.0,
            amplitude_uv: 100.0,
            ..Default::default()
        };
        let mut m = SignalModel::new(p, 2);
        let mut out = [0.0; 2];
        m.sample(25, 1000, &mut out); // a quarter period of 10 Hz
        assert!((out[0] - 100.0).abs() < 1e-9 && out[1] == out[0]);
        let run = |seed| {
            let mut m = SignalModel::new(SignalParams { seed, ..Default::default() }, 4);
            let mut v = vec![0.0; 4 * 500];
            for n in 0..500 {
                m.sample(n, 250, &mut v[4 * n as usize..4 * n as usize + 4]);
            }
            v
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
        let v = run(3);
        let rms = (v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64).sqrt();
        assert!(rms > 5.0 && rms < 200.0, "EEG-like amplitude: {rms} µV rms");
    }
}
