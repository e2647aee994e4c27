//! Causal filtering of planar multichannel blocks through a cascade of second-order sections.
use crate::design::{Sos, MAX_ORDER};

/// States smaller than this are flushed to zero: far below anything an `f32` output can show,
/// and it keeps decaying states out of the subnormal range (below about 1e-308), where the FPU
/// slows down by two orders of magnitude.
const FLUSH_BELOW: f64 = 1e-150;

/// Samples between two flushes. A state that decays from [`FLUSH_BELOW`] to a subnormal in
/// fewer samples than this decays by more than 0.6 decades per sample, so it crosses the
/// subnormal range (16 decades) to zero within a few dozen samples: no lasting slowdown.
/// Flushing every block instead cost 8 % of the filtering time.
const FLUSH_EVERY: usize = 256;

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

/// Channels per tile: one AVX2 register of `f64` (two NEON registers on aarch64).
const LANES: usize = 4;
/// Samples per tile: a tile of [`LANES`] × [`DEPTH`] values is transposed in registers.
const DEPTH: usize = 4;

/// A cascade of second-order sections with one direct-form-II-transposed state per channel and
/// section, starting at zero: `scipy.signal.sosfilt(sos, x)` per channel, block by block.
///
/// Data is planar (channel-major, `data[ch * samples + i]`), `f32`; arithmetic and state are
/// `f64`. [`SosBank::process`] never allocates.
///
/// # Layout
/// The block is cut into tiles of [`LANES`] channels × [`DEPTH`] samples. A tile is read from
/// the planar rows into registers (transposed, so that one register holds one sample of four
/// channels), run through every section in turn, each section's state held in registers
/// across the tile (`state[section][k][channel]` in memory, channels padded to a multiple of
/// [`LANES`]), and written back. One channel's recursion is a serial chain of multiply-adds,
/// so the loop runs the tiles of all channel groups for samples `i..i + 4` before any tile of
/// `i + 4..`: neighbouring tiles are independent chains, which the CPU overlaps. On x86-64 CPUs
/// with AVX2 and FMA (chosen at run time) the registers and the transpose are explicit and the
/// arithmetic fused; elsewhere the same body runs on arrays the compiler vectorises, fused on
/// aarch64. `cargo bench -p dsp --bench filters` (4 sections, 32 channels × 16 samples per
/// call): 0.40 ns per channel·sample·section with AVX2, against 0.70 ns for the earlier
/// sample-by-sample loop over all channels, which was bound by loading and storing every state
/// on every sample (BENCHMARKS.md, "DSP kernels").
#[derive(Debug, Clone)]
pub struct SosBank {
    sections: Vec<Sos>,
    coef: Vec<Coef>,
    channels: usize,
    /// `[section][k][channel]`, `k` = 0, 1: the two delay elements; `channels` rounded up to a
    /// multiple of [`LANES`] (the padding lanes filter zeros and stay zero).
    state: Vec<f64>,
    /// Samples filtered since the states were last flushed (see [`FLUSH_EVERY`]).
    unflushed: usize,
}

/// `channels` rounded up to whole tiles.
fn padded(channels: usize) -> usize {
    channels.div_ceil(LANES) * LANES
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
            state: vec![0.0; room * 2 * padded(channels)],
            unflushed: 0,
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
        self.state.len() / (2 * padded(self.channels).max(1))
    }

    /// Replaces the coefficients between blocks (a live redesign). With as many sections as
    /// before, the filter state carries on (the new filter continues from the old one's memory,
    /// so the output has no step); with another count the state restarts at zero, since the
    /// sections no longer correspond. Allocates nothing up to [`SosBank::capacity`] sections.
    pub fn set_sections(&mut self, new: &[Sos]) {
        if new.len() != self.sections.len() {
            if new.len() > self.capacity() {
                self.state = vec![0.0; new.len() * 2 * padded(self.channels)];
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
        let used = self.coef.len() * 2 * padded(channels);
        self.unflushed += samples;
        let flush = self.unflushed >= FLUSH_EVERY;
        if flush {
            self.unflushed = 0;
        }
        let block =
            Block { coef: &self.coef, state: &mut self.state[..used], data, channels, samples, flush };
        #[cfg(target_arch = "x86_64")]
        {
            if let Some(simd) = pulp::x86::V3::try_new().filter(|_| dispatch) {
                // AVX2 and FMA, detected at run time: 4 channels per instruction, and one
                // rounding per multiply-add (results differ from the SSE2 path in the last bits).
                simd.vectorize(Avx2Run(simd, block));
            } else {
                block.run(Portable::<false>);
            }
        }
        // aarch64 (the Raspberry Pi) always has NEON and fused multiply-add.
        #[cfg(target_arch = "aarch64")]
        {
            let _ = dispatch;
            block.run(Portable::<true>);
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        {
            let _ = dispatch;
            block.run(Portable::<false>);
        }
    }
}

/// The arithmetic of a tile on one register of [`LANES`] channels, so that one body serves
/// the explicit AVX2 path and the portable one (which the compiler vectorises by itself).
trait Lanes: Copy {
    /// One sample of [`LANES`] channels.
    type V: Copy;
    fn splat(self, v: f64) -> Self::V;
    /// The register holding `v`, lane `l` for channel `l` of the tile.
    fn pack(self, v: [f64; LANES]) -> Self::V;
    /// The inverse of [`Lanes::pack`].
    fn unpack(self, v: Self::V) -> [f64; LANES];
    /// `a * b`.
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a * b + c`.
    fn madd(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `c - a * b`.
    fn nmadd(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;

    /// [`DEPTH`] samples of [`LANES`] rows, transposed: register `j` holds sample `j` of
    /// every row.
    #[inline(always)]
    fn load_tile(self, rows: [&[f32; DEPTH]; LANES]) -> [Self::V; DEPTH] {
        std::array::from_fn(|j| self.pack(std::array::from_fn(|l| f64::from(rows[l][j]))))
    }

    /// The inverse of [`Lanes::load_tile`].
    #[inline(always)]
    fn store_tile(self, x: [Self::V; DEPTH], rows: [&mut [f32; DEPTH]; LANES]) {
        let x = x.map(|v| self.unpack(v));
        for (l, row) in rows.into_iter().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = x[j][l] as f32;
            }
        }
    }
}

/// Plain arrays, fused (one rounding per multiply-add) where `FUSED`; only fused where the
/// target has FMA, otherwise `mul_add` is a slow library call.
#[derive(Clone, Copy)]
struct Portable<const FUSED: bool>;

impl<const FUSED: bool> Lanes for Portable<FUSED> {
    type V = [f64; LANES];
    #[inline(always)]
    fn splat(self, v: f64) -> Self::V {
        [v; LANES]
    }
    #[inline(always)]
    fn pack(self, v: [f64; LANES]) -> Self::V {
        v
    }
    #[inline(always)]
    fn unpack(self, v: Self::V) -> [f64; LANES] {
        v
    }
    #[inline(always)]
    fn mul(self, a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|l| a[l] * b[l])
    }
    #[inline(always)]
    fn madd(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        if FUSED {
            std::array::from_fn(|l| a[l].mul_add(b[l], c[l]))
        } else {
            std::array::from_fn(|l| a[l] * b[l] + c[l])
        }
    }
    #[inline(always)]
    fn nmadd(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        if FUSED {
            std::array::from_fn(|l| (-a[l]).mul_add(b[l], c[l]))
        } else {
            std::array::from_fn(|l| c[l] - a[l] * b[l])
        }
    }
}

/// AVX2 and FMA registers, with the tile transposed by shuffles (the optimiser, left to
/// itself, builds the same transpose from twice as many).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Block, Lanes, DEPTH, LANES};
    use pulp::bytemuck::cast;
    use pulp::x86::V3;
    use std::arch::x86_64::{__m128, __m256d};

    impl Lanes for V3 {
        type V = __m256d;
        #[inline(always)]
        fn splat(self, v: f64) -> __m256d {
            self.avx._mm256_set1_pd(v)
        }
        #[inline(always)]
        fn pack(self, v: [f64; LANES]) -> __m256d {
            cast(v)
        }
        #[inline(always)]
        fn unpack(self, v: __m256d) -> [f64; LANES] {
            cast(v)
        }
        #[inline(always)]
        fn mul(self, a: __m256d, b: __m256d) -> __m256d {
            self.avx._mm256_mul_pd(a, b)
        }
        #[inline(always)]
        fn madd(self, a: __m256d, b: __m256d, c: __m256d) -> __m256d {
            self.fma._mm256_fmadd_pd(a, b, c)
        }
        #[inline(always)]
        fn nmadd(self, a: __m256d, b: __m256d, c: __m256d) -> __m256d {
            self.fma._mm256_fnmadd_pd(a, b, c)
        }

        #[inline(always)]
        fn load_tile(self, rows: [&[f32; DEPTH]; LANES]) -> [__m256d; DEPTH] {
            let [r0, r1, r2, r3] = rows.map(|r| cast::<[f32; DEPTH], __m128>(*r));
            // 4 × 4 transpose of single-precision rows, then widening.
            let (sse, avx) = (self.sse, self.avx);
            let (t0, t1) = (sse._mm_unpacklo_ps(r0, r1), sse._mm_unpacklo_ps(r2, r3));
            let (t2, t3) = (sse._mm_unpackhi_ps(r0, r1), sse._mm_unpackhi_ps(r2, r3));
            [
                sse._mm_movelh_ps(t0, t1),
                sse._mm_movehl_ps(t1, t0),
                sse._mm_movelh_ps(t2, t3),
                sse._mm_movehl_ps(t3, t2),
            ]
            .map(|c| avx._mm256_cvtps_pd(c))
        }

        #[inline(always)]
        fn store_tile(self, x: [__m256d; DEPTH], rows: [&mut [f32; DEPTH]; LANES]) {
            let (sse, avx) = (self.sse, self.avx);
            let [c0, c1, c2, c3] = x.map(|v| avx._mm256_cvtpd_ps(v));
            let (t0, t1) = (sse._mm_unpacklo_ps(c0, c1), sse._mm_unpacklo_ps(c2, c3));
            let (t2, t3) = (sse._mm_unpackhi_ps(c0, c1), sse._mm_unpackhi_ps(c2, c3));
            let out = [
                sse._mm_movelh_ps(t0, t1),
                sse._mm_movehl_ps(t1, t0),
                sse._mm_movelh_ps(t2, t3),
                sse._mm_movehl_ps(t3, t2),
            ];
            for (row, v) in rows.into_iter().zip(out) {
                *row = cast(v);
            }
        }
    }

    /// Runs a [`Block`] inside `pulp`'s AVX2/FMA entry point.
    pub(super) struct Avx2Run<'a>(pub V3, pub Block<'a>);

    impl pulp::NullaryFnOnce for Avx2Run<'_> {
        type Output = ();
        #[inline(always)]
        fn call(self) {
            let Avx2Run(simd, block) = self;
            block.run(simd)
        }
    }
}
#[cfg(target_arch = "x86_64")]
use avx2::Avx2Run;

/// One call's work.
struct Block<'a> {
    coef: &'a [Coef],
    /// `[section][k][padded channel]`.
    state: &'a mut [f64],
    data: &'a mut [f32],
    channels: usize,
    samples: usize,
    /// Flush small states to zero afterwards.
    flush: bool,
}

impl Block<'_> {
    /// Tile by tile: [`DEPTH`] samples at a time (then one at a time for the rest of the
    /// block), and within those, [`LANES`] channels at a time (the last tile padded with
    /// zeros when the channels are not a multiple of [`LANES`]). Consecutive tiles belong to
    /// different channels, so their chains of multiply-adds are independent and the CPU runs
    /// them side by side; a channel's next samples come only after every other channel's.
    #[inline(always)]
    fn run<S: Lanes>(self, simd: S) {
        let Block { coef, state, data, channels, samples, flush } = self;
        let stride = 2 * padded(channels);
        let mut i = 0;
        while i + DEPTH <= samples {
            for (g, rows) in data.chunks_mut(LANES * samples).enumerate() {
                if rows.len() == LANES * samples {
                    let x = simd.load_tile(std::array::from_fn(|l| {
                        rows[l * samples + i..][..DEPTH].try_into().expect("DEPTH samples")
                    }));
                    let x = sections(simd, coef, state, stride, g * LANES, x);
                    let mut rows = rows.chunks_exact_mut(samples);
                    simd.store_tile(
                        x,
                        std::array::from_fn(|_| {
                            (&mut rows.next().expect("LANES rows")[i..i + DEPTH])
                                .try_into()
                                .expect("DEPTH samples")
                        }),
                    );
                } else {
                    // The last channels, fewer than LANES: through a tile padded with zeros
                    // (which their states filter into zeros).
                    let mut tile = [[0.0f32; DEPTH]; LANES];
                    for (t, row) in tile.iter_mut().zip(rows.chunks_exact(samples)) {
                        t.copy_from_slice(&row[i..i + DEPTH]);
                    }
                    let x = simd.load_tile(std::array::from_fn(|l| &tile[l]));
                    let x = sections(simd, coef, state, stride, g * LANES, x);
                    simd.store_tile(x, tile.each_mut());
                    for (t, row) in tile.iter().zip(rows.chunks_exact_mut(samples)) {
                        row[i..i + DEPTH].copy_from_slice(t);
                    }
                }
            }
            i += DEPTH;
        }
        // The samples after the last whole tile, one at a time.
        for i in i..samples {
            for (g, rows) in data.chunks_mut(LANES * samples).enumerate() {
                let mut x = [0.0; LANES];
                for (v, row) in x.iter_mut().zip(rows.chunks_exact(samples)) {
                    *v = f64::from(row[i]);
                }
                let [y] = sections(simd, coef, state, stride, g * LANES, [simd.pack(x)]);
                for (v, row) in simd.unpack(y).iter().zip(rows.chunks_exact_mut(samples)) {
                    row[i] = *v as f32;
                }
            }
        }
        if flush {
            for s in state.iter_mut() {
                // A multiply by 1 or 0 rather than a conditional store, which the optimiser
                // would turn into a masked store (microcoded and slow on some CPUs).
                *s *= f64::from(u8::from(s.abs() >= FLUSH_BELOW));
            }
        }
    }
}

/// `D` samples of the [`LANES`] channels from `first`, through every section in turn, each
/// section's state held in registers across the `D` samples.
#[inline(always)]
fn sections<S: Lanes, const D: usize>(
    simd: S,
    coef: &[Coef],
    state: &mut [f64],
    stride: usize,
    first: usize,
    mut x: [S::V; D],
) -> [S::V; D] {
    for (c, st) in coef.iter().zip(state.chunks_exact_mut(stride)) {
        let (z0, z1) = st.split_at_mut(stride / 2);
        let z0: &mut [f64; LANES] = (&mut z0[first..first + LANES]).try_into().expect("a lane");
        let z1: &mut [f64; LANES] = (&mut z1[first..first + LANES]).try_into().expect("a lane");
        let (mut s0, mut s1) = (simd.pack(*z0), simd.pack(*z1));
        let [b0, b1, b2, a1, a2] = [c.b0, c.b1, c.b2, c.a1, c.a2].map(|v| simd.splat(v));
        for xj in &mut x {
            // Direct form II transposed.
            let y = simd.madd(b0, *xj, s0);
            s0 = simd.nmadd(a1, y, simd.madd(b1, *xj, s1));
            s1 = simd.nmadd(a2, y, simd.mul(b2, *xj));
            *xj = y;
        }
        (*z0, *z1) = (simd.unpack(s0), simd.unpack(s1));
    }
    x
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
        let n = 400;
        // Whole tiles of channels and samples, and every kind of remainder: fewer channels than
        // a tile, a partial last tile, blocks shorter than a tile or ending mid-tile.
        for channels in [1, 3, 4, 5, 8, 9, 32] {
            for portable in [false, true] {
                let signals: Vec<Vec<f32>> = (0..channels).map(|c| test_signal(c, n)).collect();
                let mut bank = SosBank::new(&sos, channels);
                let mut out = vec![Vec::new(); channels];
                // Uneven blocks, including an empty one.
                let mut at = 0;
                for block in [1, 16, 0, 7, 3, 4, 5, 88, 276] {
                    let mut data: Vec<f32> =
                        (0..channels).flat_map(|c| signals[c][at..at + block].to_vec()).collect();
                    if portable {
                        bank.process_portable(&mut data, channels, block);
                    } else {
                        bank.process(&mut data, channels, block);
                    }
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
                    for (i, (g, w)) in out[c].iter().zip(&want).enumerate() {
                        assert!(
                            (f64::from(*g) - w).abs() <= 1e-6 * w.abs().max(1.0),
                            "{channels} channels, portable {portable}, channel {c}, sample {i}: {g} vs {w}"
                        );
                    }
                }
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
        // About 1.2 decades of decay per block of 16: the states would spend a dozen blocks in
        // the subnormal range on their way to zero if nothing flushed them.
        let mut zeros = vec![0.0f32; 16];
        for _ in 0..1000 {
            zeros.fill(0.0);
            bank.process(&mut zeros, 1, 16);
            assert!(bank.state.iter().all(|s| *s == 0.0 || s.is_normal()), "{:?}", bank.state);
        }
        assert!(bank.state.iter().all(|s| *s == 0.0), "{:?}", bank.state);
    }
}
