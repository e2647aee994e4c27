//! Filtering throughput: `cargo bench -p dsp --bench filters`.
//!
//! The case that matters is the default pipeline's band-pass: order 4 (4 sections) over 32
//! channels × 16 samples per call. Throughput is reported per channel-sample-section, so
//! `1000 / (Melem/s)` is the cost in ns of one section on one sample of one channel.
//!
//! Layouts of the same arithmetic (f64, DF-II transposed), each call copying the same input
//! block first:
//! - `channels_inner` — [`dsp::SosBank::process`]: tiles of 4 channels × 4 samples transposed
//!   into registers, each section's state held in registers across a tile, tiles of different
//!   channels back to back; AVX2 + FMA when the CPU has them (chosen at run time);
//! - `channels_inner_portable` — the same loop with plain multiplies and adds (SSE2);
//! - `channel_outer` — each channel's contiguous samples in turn, all sections per sample, state
//!   `[channel][section][k]` (a serial chain of dependent multiply-adds per channel);
//! - `chunked8` — channels in chunks of 8 kept in locals, all samples of a chunk before the next.
//!
//! Time is the thread's CPU time (see [`ThreadCpu`]). Figures and the machine: BENCHMARKS.md,
//! "DSP kernels".
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dsp::{butter, BandKind, Decimator, Psd, Sos, SosBank};
use nix::time::{clock_gettime, ClockId};
use std::hint::black_box;
use std::time::Duration;

/// Criterion measuring the benchmark thread's CPU time rather than wall time: on a machine
/// shared with other jobs, time spent descheduled does not count.
struct ThreadCpu(WallTime);

fn thread_cpu_now() -> Duration {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map(Duration::from).unwrap_or_default()
}

impl Measurement for ThreadCpu {
    type Intermediate = Duration;
    type Value = Duration;
    fn start(&self) -> Duration {
        thread_cpu_now()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu_now().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self.0.formatter()
    }
}

type Crit = Criterion<ThreadCpu>;

const CHANNELS: usize = 32;
const SAMPLES: usize = 16;
const FS: f64 = 4000.0;

/// The alternative layout, kept here so the comparison can be re-run.
struct ChannelOuter {
    coef: Vec<Sos>,
    /// `[channel][section]`: `(z0, z1)`.
    state: Vec<[f64; 2]>,
}

impl ChannelOuter {
    fn new(sos: &[Sos], channels: usize) -> Self {
        ChannelOuter { coef: sos.to_vec(), state: vec![[0.0; 2]; sos.len() * channels] }
    }

    fn process(&mut self, data: &mut [f32], channels: usize, samples: usize) {
        let n_sec = self.coef.len();
        for ch in 0..channels {
            let st = &mut self.state[ch * n_sec..(ch + 1) * n_sec];
            for v in &mut data[ch * samples..(ch + 1) * samples] {
                let mut x = f64::from(*v);
                for (c, z) in self.coef.iter().zip(st.iter_mut()) {
                    let y = c[0] * x + z[0];
                    z[0] = c[1] * x - c[4] * y + z[1];
                    z[1] = c[2] * x - c[5] * y;
                    x = y;
                }
                *v = x as f32;
            }
        }
    }
}

/// Channels in chunks of `W`, each chunk running all its samples before the next, the chunk's
/// state in locals (registers) across the block.
struct Chunked<const W: usize> {
    coef: Vec<Sos>,
    /// `[chunk][section][k]` of `[f64; W]`.
    state: Vec<[[f64; W]; 2]>,
}

impl<const W: usize> Chunked<W> {
    fn new(sos: &[Sos], channels: usize) -> Self {
        assert_eq!(channels % W, 0);
        Chunked { coef: sos.to_vec(), state: vec![[[0.0; W]; 2]; sos.len() * channels / W] }
    }

    fn process(&mut self, data: &mut [f32], channels: usize, samples: usize) {
        let n_sec = self.coef.len();
        for (k, st) in self.state.chunks_exact_mut(n_sec).enumerate().take(channels / W) {
            let block = &mut data[k * W * samples..(k + 1) * W * samples];
            for i in 0..samples {
                let mut x = [0.0f64; W];
                for (j, v) in x.iter_mut().enumerate() {
                    *v = f64::from(block[j * samples + i]);
                }
                for (c, z) in self.coef.iter().zip(st.iter_mut()) {
                    for j in 0..W {
                        let y = c[0] * x[j] + z[0][j];
                        z[0][j] = c[1] * x[j] - c[4] * y + z[1][j];
                        z[1][j] = c[2] * x[j] - c[5] * y;
                        x[j] = y;
                    }
                }
                for (j, v) in x.iter().enumerate() {
                    block[j * samples + i] = *v as f32;
                }
            }
        }
    }
}

fn input(channels: usize, samples: usize) -> Vec<f32> {
    (0..channels * samples).map(|i| ((i * 7919) % 1000) as f32 * 0.01 - 5.0).collect()
}

fn bandpass(c: &mut Crit) {
    let sos = butter(4, BandKind::Bandpass(1.0, 40.0), FS).unwrap();
    let src = input(CHANNELS, SAMPLES);
    let mut data = src.clone();
    let mut g = c.benchmark_group("bandpass4_32chx16");
    g.throughput(Throughput::Elements((CHANNELS * SAMPLES * sos.len()) as u64));

    let mut bank = SosBank::new(&sos, CHANNELS);
    g.bench_function("channels_inner", |b| {
        b.iter(|| {
            data.copy_from_slice(&src);
            bank.process(black_box(&mut data), CHANNELS, SAMPLES);
        })
    });
    let mut portable = SosBank::new(&sos, CHANNELS);
    g.bench_function("channels_inner_portable", |b| {
        b.iter(|| {
            data.copy_from_slice(&src);
            portable.process_portable(black_box(&mut data), CHANNELS, SAMPLES);
        })
    });
    let mut outer = ChannelOuter::new(&sos, CHANNELS);
    g.bench_function("channel_outer", |b| {
        b.iter(|| {
            data.copy_from_slice(&src);
            outer.process(black_box(&mut data), CHANNELS, SAMPLES);
        })
    });
    let mut ch8 = Chunked::<8>::new(&sos, CHANNELS);
    g.bench_function("chunked8", |b| {
        b.iter(|| {
            data.copy_from_slice(&src);
            ch8.process(black_box(&mut data), CHANNELS, SAMPLES);
        })
    });
    g.finish();
}

fn other(c: &mut Crit) {
    // Downsample 4000 -> 250 S/s, 32 channels × 64 samples per call (8 sections).
    let mut d = Decimator::new(16, FS, CHANNELS, 64).unwrap();
    let src = input(CHANNELS, 64);
    let mut data = src.clone();
    let mut g = c.benchmark_group("decimate16_32chx64");
    g.throughput(Throughput::Elements((CHANNELS * 64 * d.sections().len()) as u64));
    g.bench_function("in_place", |b| {
        b.iter(|| {
            data.copy_from_slice(&src);
            black_box(d.process_in_place(black_box(&mut data), CHANNELS, 64));
        })
    });
    g.finish();

    let mut psd = Psd::new(256, 250.0).unwrap();
    let x = input(1, 256);
    let mut out = vec![0.0; psd.bins()];
    c.bench_function("psd256_one_channel", |b| b.iter(|| psd.compute(black_box(&x), &mut out)));
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu(WallTime));
    targets = bandpass, other
}
criterion_main!(benches);
