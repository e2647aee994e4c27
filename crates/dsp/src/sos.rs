//! Causal filtering of planar multichannel blocks through a cascade of second-order sections.
use crate::design::{Sos, MAX_ORDER};

/// States smaller than this are flushed to zero after each block: far below anything an `f32`
/// output can show, and it keeps decaying states out of the subnormal range, where the FPU
/// slows down by two orders of magnitude.
const FLUSH_BELOW: f64 = 1e-150;

/// One section's coefficients, normalised so that `a0 = 1`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Coef {
    b0: f64,
    b1: f64,
    b2: f64,
    a1: f64,
    a2: f64,
}

impl Coef {
    fn of(s: &Sos) -> Coef {
        let a0 = s[3];
        Coef { b0: s[0] / a0, b1: s[1] / a0, b2: s[2] / a0, a1: s[4] / a0, a2: s[5] / a0 }
    }
}

/// A cascade of second-order sections with one direct-form-II-transposed state per channel and
/// section, starting at zero: `scipy.signal.sosfilt(sos, x)` per channel, block by block.
///
/// Data is planar (channel-major, `data[ch * samples + i]`), `f32`; arithmetic and state are
/// `f64`. [`SosBank::process`] never allocates.
///
/// # Layout
/// State is kept as `state[section][k][channel]` and the block is run sample by sample, all
/// sections, with the channels innermost. The recursion of one channel is a serial chain of
/// multiply-adds (latency-bound); running channels side by side makes the inner loop
/// independent work the compiler vectorises. On x86-64 CPUs with AVX2 and FMA (chosen at run
/// time) the loop runs 4 channels per instruction with fused multiply-adds; aarch64 always
/// fuses. Measured with `cargo bench -p dsp --bench filters` (4 sections, 32 channels × 16
/// samples per call; BENCHMARKS.md): 0.63 ns per channel-sample-section with AVX2/FMA, 1.29 ns
/// portable, against 1.59 ns for channels in register-held chunks of 8 and 2.00 ns for the
/// channel-outer layout (all on a loaded machine).
#[derive(Debug, Clone)]
pub struct SosBank {
    sections: Vec<Sos>,
    coef: Vec<Coef>,
    channels: usize,
    /// `[section][k][channel]`, `k` = 0, 1: the two delay elements.
    state: Vec<f64>,
    /// One sample of every channel on its way through the cascade.
    lane: Vec<f64>,
}

impl SosBank {
    /// A bank running `sections` for `channels` channels, state zero, with room for
    /// [`MAX_ORDER`] sections (or as many as given, if more): a live redesign up to that many
    /// allocates nothing.
    pub fn new(sections: &[Sos], channels: usize) -> SosBank {
        SosBank::with_capacity(sections, channels, MAX_ORDER)
    }

    /// As [`SosBank::new`], with room for `max_sections` sections.
    pub fn with_capacity(sections: &[Sos], channels: usize, max_sections: usize) -> SosBank {
        let room = max_sections.max(sections.len());
        let mut bank = SosBank {
            sections: Vec::with_capacity(room),
            coef: Vec::with_capacity(room),
            channels,
            state: vec![0.0; room * 2 * channels],
            lane: vec![0.0; channels],
        };
        bank.load(sections);
        bank
    }

    fn load(&mut self, new: &[Sos]) {
        self.sections.clear();
        self.sections.extend_from_slice(new);
        self.coef.clear();
        self.coef.extend(new.iter().map(Coef::of));
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The sections as given (before normalisation by `a0`).
    pub fn sections(&self) -> &[Sos] {
        &self.sections
    }

    /// The most sections a redesign can bring without allocating.
    pub fn capacity(&self) -> usize {
        self.state.len() / (2 * self.channels.max(1))
    }

    /// Replaces the coefficients between blocks (a live redesign). With as many sections as
    /// before, the filter state carries on (the new filter continues from the old one's memory,
    /// so the output has no step); with another count the state restarts at zero, since the
    /// sections no longer correspond. Allocates nothing up to [`SosBank::capacity`] sections.
    pub fn set_sections(&mut self, new: &[Sos]) {
        if new.len() != self.sections.len() {
            if new.len() > self.capacity() {
                self.state = vec![0.0; new.len() * 2 * self.channels];
            }
            self.state.fill(0.0);
        }
        self.load(new);
    }

    /// Sets every state to zero.
    pub fn reset(&mut self) {
        self.state.fill(0.0);
    }

    /// Filters `channels × samples` planar values of `data` in place.
    ///
    /// # Panics
    /// If `channels` is not the bank's channel count or `data` is shorter than
    /// `channels × samples`: the caller's shapes are fixed when the graph is built.
    pub fn process(&mut self, data: &mut [f32], channels: usize, samples: usize) {
        self.run(data, channels, samples, true)
    }

    /// As [`SosBank::process`] without choosing instructions at run time: plain multiplies and
    /// adds, SSE2 on x86-64, so the results are the same bit for bit on every x86-64 machine.
    /// (On aarch64 it is [`SosBank::process`].) Kept for that and for the comparison in
    /// `benches/filters.rs`.
    pub fn process_portable(&mut self, data: &mut [f32], channels: usize, samples: usize) {
        self.run(data, channels, samples, false)
    }

    fn run(&mut self, data: &mut [f32], channels: usize, samples: usize, dispatch: bool) {
        assert_eq!(channels, self.channels, "SosBank built for another channel count");
        let data = &mut data[..channels * samples];
        if channels == 0 || samples == 0 {
            return;
        }
        let used = self.coef.len() * 2 * channels;
        let mut block = Block {
            coef: &self.coef,
            state: &mut self.state[..used],
            lane: &mut self.lane[..channels],
            data,
            samples,
        };
        #[cfg(target_arch = "x86_64")]
        {
            if let Some(simd) = pulp::x86::V3::try_new().filter(|_| dispatch) {
                // AVX2 and FMA, detected at run time: 4 channels per instruction, and one
                // rounding per multiply-add (results differ from the SSE2 path in the last bits).
                simd.vectorize(FusedRun(&mut block));
            } else {
                block.run(false);
            }
        }
        // aarch64 (the Raspberry Pi) always has NEON and fused multiply-add.
        #[cfg(target_arch = "aarch64")]
        {
            let _ = dispatch;
            block.run(true);
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        {
            let _ = dispatch;
            block.run(false);
        }
        for s in &mut self.state[..used] {
            if s.abs() < FLUSH_BELOW {
                *s = 0.0;
            }
        }
    }
}

/// One call's work, so that it can be run inside a function compiled for wider vectors.
struct Block<'a> {
    coef: &'a [Coef],
    state: &'a mut [f64],
    lane: &'a mut [f64],
    data: &'a mut [f32],
    samples: usize,
}

/// Runs a [`Block`] with fused multiply-adds, inlined into `pulp`'s AVX2/FMA entry point.
#[cfg(target_arch = "x86_64")]
struct FusedRun<'a, 'b>(&'a mut Block<'b>);

#[cfg(target_arch = "x86_64")]
impl pulp::NullaryFnOnce for FusedRun<'_, '_> {
    type Output = ();
    #[inline(always)]
    fn call(self) {
        self.0.run(true)
    }
}

impl Block<'_> {
    /// Sample by sample, each through every section, the channels innermost.
    #[inline(always)]
    fn run(&mut self, fused: bool) {
        let (channels, samples) = (self.lane.len(), self.samples);
        for i in 0..samples {
            for (x, row) in self.lane.iter_mut().zip(self.data.chunks_exact(samples)) {
                *x = f64::from(row[i]);
            }
            for (c, st) in self.coef.iter().zip(self.state.chunks_exact_mut(2 * channels)) {
                let (z0, z1) = st.split_at_mut(channels);
                if fused {
                    section_fused(c, self.lane, z0, z1);
                } else {
                    section(c, self.lane, z0, z1);
                }
            }
            for (&y, row) in self.lane.iter().zip(self.data.chunks_exact_mut(samples)) {
                row[i] = y as f32;
            }
        }
    }
}

/// One section on one sample of every channel. Separate slices (and a separate function, so
/// that they are `noalias` to the optimiser) let the loop vectorise across channels without
/// run-time overlap checks.
#[inline(always)]
fn section(c: &Coef, lane: &mut [f64], z0: &mut [f64], z1: &mut [f64]) {
    let n = lane.len();
    let (z0, z1) = (&mut z0[..n], &mut z1[..n]);
    for ((x, s0), s1) in lane.iter_mut().zip(z0.iter_mut()).zip(z1.iter_mut()) {
        let xin = *x;
        let y = c.b0 * xin + *s0;
        *s0 = c.b1 * xin - c.a1 * y + *s1;
        *s1 = c.b2 * xin - c.a2 * y;
        *x = y;
    }
}

/// [`section`] with fused multiply-adds: 5 instructions per channel instead of 9. Only called
/// where the target has FMA (otherwise `mul_add` is a slow library call).
#[inline(always)]
fn section_fused(c: &Coef, lane: &mut [f64], z0: &mut [f64], z1: &mut [f64]) {
    let n = lane.len();
    let (z0, z1) = (&mut z0[..n], &mut z1[..n]);
    let (na1, na2) = (-c.a1, -c.a2);
    for ((x, s0), s1) in lane.iter_mut().zip(z0.iter_mut()).zip(z1.iter_mut()) {
        let xin = *x;
        let y = c.b0.mul_add(xin, *s0);
        *s0 = na1.mul_add(y, c.b1.mul_add(xin, *s1));
        *s1 = na2.mul_add(y, c.b2 * xin);
        *x = y;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::design::{butter, iirnotch, BandKind};

    /// Direct-form-II-transposed, one channel, one section at a time: the textbook `sosfilt`.
    fn reference(sos: &[Sos], x: &[f64]) -> Vec<f64> {
        let mut y = x.to_vec();
        for s in sos {
            let (mut z0, mut z1) = (0.0, 0.0);
            for v in &mut y {
                let xin = *v;
                let out = s[0] * xin + z0;
                z0 = s[1] * xin - s[4] * out + z1;
                z1 = s[2] * xin - s[5] * out;
                *v = out;
            }
        }
        y
    }

    fn test_signal(ch: usize, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let t = i as f64 / 250.0;
                (10.0 * (2.0 * std::f64::consts::PI * (3.0 + ch as f64) * t).sin()
                    + 3.0 * (2.0 * std::f64::consts::PI * 50.0 * t).cos()
                    + ch as f64) as f32
            })
            .collect()
    }

    #[test]
    fn matches_sosfilt_per_channel_across_blocks() {
        let sos = butter(4, BandKind::Bandpass(1.0, 40.0), 250.0).unwrap();
        let (channels, n) = (5, 400);
        let signals: Vec<Vec<f32>> = (0..channels).map(|c| test_signal(c, n)).collect();
        let mut bank = SosBank::new(&sos, channels);
        let mut out = vec![Vec::new(); channels];
        // Uneven blocks, including an empty one.
        let mut at = 0;
        for block in [1, 16, 0, 7, 100, 276] {
            let mut data: Vec<f32> =
                (0..channels).flat_map(|c| signals[c][at..at + block].to_vec()).collect();
            bank.process(&mut data, channels, block);
            for c in 0..channels {
                out[c].extend_from_slice(&data[c * block..(c + 1) * block]);
            }
            at += block;
        }
        assert_eq!(at, n);
        for c in 0..channels {
            let x: Vec<f64> = signals[c].iter().map(|&v| f64::from(v)).collect();
            let want = reference(&sos, &x);
            // Equal to the f32 rounding (the FMA path rounds once per multiply-add).
            for (g, w) in out[c].iter().zip(&want) {
                assert!((f64::from(*g) - w).abs() <= 1e-6 * w.abs().max(1.0), "channel {c}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn lowpass_passes_dc_after_settling() {
        let sos = butter(4, BandKind::Lowpass(10.0), 250.0).unwrap();
        let mut bank = SosBank::new(&sos, 2);
        let mut data = vec![1.0f32; 2 * 2000];
        data[2000..].fill(-3.0);
        bank.process(&mut data, 2, 2000);
        assert!((data[1999] - 1.0).abs() < 1e-6);
        assert!((data[3999] + 3.0).abs() < 1e-5);
    }

    #[test]
    fn notch_removes_its_frequency() {
        let fs = 1000.0;
        let sos = [iirnotch(50.0, 30.0, fs).unwrap()];
        let mut bank = SosBank::new(&sos, 1);
        let n = 4000;
        let mut data: Vec<f32> =
            (0..n).map(|i| (2.0 * std::f64::consts::PI * 50.0 * i as f64 / fs).sin() as f32).collect();
        bank.process(&mut data, 1, n);
        let tail = data[n - 500..].iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(tail < 1e-3, "residual {tail}");
    }

    #[test]
    fn set_sections_keeps_state_when_the_count_is_unchanged() {
        let a = butter(2, BandKind::Lowpass(10.0), 250.0).unwrap();
        let b = butter(2, BandKind::Lowpass(20.0), 250.0).unwrap();
        let mut bank = SosBank::new(&a, 1);
        let mut data = vec![1.0f32; 10];
        bank.process(&mut data, 1, 10);
        let before = bank.state.clone();
        bank.set_sections(&b);
        assert_eq!(bank.state, before);
        assert_eq!(bank.sections(), &b[..]);
        let c = butter(4, BandKind::Lowpass(20.0), 250.0).unwrap();
        let room = bank.state.as_ptr();
        bank.set_sections(&c);
        assert!(bank.state.iter().all(|&s| s == 0.0));
        assert_eq!(bank.sections().len(), 2);
        bank.process(&mut data, 1, 10);
        let d = butter(MAX_ORDER, BandKind::Bandpass(1.0, 20.0), 250.0).unwrap();
        bank.set_sections(&d);
        assert_eq!(bank.sections().len(), MAX_ORDER);
        assert_eq!(bank.state.as_ptr(), room, "up to MAX_ORDER sections, the state is not reallocated");
        bank.process(&mut data, 1, 10);
        let many = vec![d[0]; MAX_ORDER + 3];
        bank.set_sections(&many);
        assert_eq!(bank.capacity(), MAX_ORDER + 3);
        bank.process(&mut data, 1, 10);
    }

    #[test]
    fn decaying_state_is_flushed_before_it_turns_subnormal() {
        let sos = butter(2, BandKind::Lowpass(10.0), 250.0).unwrap();
        let mut bank = SosBank::new(&sos, 1);
        let mut data = vec![1.0f32; 1];
        bank.process(&mut data, 1, 1);
        let mut zeros = vec![0.0f32; 250];
        for _ in 0..400 {
            zeros.fill(0.0);
            bank.process(&mut zeros, 1, 250);
            assert!(bank.state.iter().all(|s| *s == 0.0 || s.abs() >= FLUSH_BELOW), "{:?}", bank.state);
        }
        assert!(bank.state.iter().all(|s| *s == 0.0), "{:?}", bank.state);
    }
}
