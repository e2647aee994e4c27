//! The naive baseline: the same work as the reference pipeline, built the way the original
//! system was. A thread per stage group, unbounded `std::sync::mpsc` channels, consumers that
//! `try_recv` and sleep 1 ms when empty, a fresh `Vec` for every stage's output, and a deep copy
//! for each branch of a fan-out. Measured in the same run as eegd so the ratio is fair.
use super::{BenchArgs, Quantiles, Side, Window};
use dsp::{Decimator, SosBank};
use pipeline::rt::{monotonic_ns, sleep_until_ns};
use pipeline::stats::Histogram;
use std::f64::consts::TAU;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{channel, Receiver, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

struct Msg {
    seq: u64,
    ready_ns: u64,
    channels: usize,
    samples: usize,
    raw: Vec<i32>,
    uv: Vec<f32>,
}

/// Per-packet "last sink has it": the second of the two sinks to see a packet records it.
struct Arrivals {
    seen: Vec<AtomicU8>,
    latency: Histogram,
    sink_packets: AtomicU64,
}

const RING: usize = 1 << 16;

impl Arrivals {
    fn arrive(&self, seq: u64, ready_ns: u64) {
        let slot = &self.seen[seq as usize % RING];
        if slot.fetch_add(1, Ordering::AcqRel) == 1 {
            slot.store(0, Ordering::Release);
            self.latency.record(monotonic_ns().saturating_sub(ready_ns));
            self.sink_packets.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The old system's wait: poll, sleep 1 ms, poll again.
fn recv_polling<T>(rx: &Receiver<T>, stop: &AtomicBool) -> Option<T> {
    while !stop.load(Ordering::Relaxed) {
        match rx.try_recv() {
            Ok(v) => return Some(v),
            Err(TryRecvError::Empty) => std::thread::sleep(Duration::from_millis(1)),
            Err(TryRecvError::Disconnected) => return None,
        }
    }
    None
}

fn design(rate: f64, channels: usize) -> (SosBank, SosBank) {
    let notch = SosBank::new(&[dsp::iirnotch(50.0, 30.0, rate).expect("reference notch design")], channels);
    let band = dsp::butter(4, dsp::BandKind::Bandpass(1.0, 40.0), rate).expect("reference band-pass design");
    (notch, SosBank::new(&band, channels))
}

/// Runs the baseline paced for `a.seconds` (after `warmup`) and unpaced for `unpaced` seconds.
pub fn run(a: &BenchArgs, batch: usize, warmup: f64, unpaced: f64) -> Side {
    let paced = run_once(a, batch, true, warmup, a.seconds);
    let fast = run_once(a, batch, false, 0.3, unpaced);
    Side {
        latency_us: paced.0,
        cpu_percent_of_one_core: paced.1,
        allocations_steady_state: paced.2,
        throughput_samples_per_s: fast.3,
    }
}

fn run_once(
    a: &BenchArgs,
    batch: usize,
    realtime: bool,
    warmup: f64,
    seconds: f64,
) -> (Quantiles, f64, u64, f64) {
    let (channels, rate) = (a.channels, a.rate as f64);
    let factor = (a.rate / 250).max(2) as usize;
    let stop = Arc::new(AtomicBool::new(false));
    let arrivals = Arc::new(Arrivals {
        seen: (0..RING).map(|_| AtomicU8::new(0)).collect(),
        latency: Histogram::new(),
        sink_packets: AtomicU64::new(0),
    });
    let (to_dsp, dsp_rx) = channel::<Msg>();
    let (to_null, null_rx) = channel::<Msg>();
    let (to_ds, ds_rx) = channel::<Msg>();

    let s = stop.clone();
    let source = std::thread::spawn(move || {
        let uv_per_count = 2.0 * 4.5 / 24.0 / (1u64 << 24) as f64 * 1e6;
        let start = monotonic_ns();
        let mut n = 0u64;
        let mut seq = 0u64;
        while !s.load(Ordering::Relaxed) {
            let deadline = start + (n + batch as u64) * 1_000_000_000 / rate as u64;
            if realtime {
                sleep_until_ns(deadline);
            } else if seq.is_multiple_of(64) {
                // Unpaced, the old system still yielded to its consumers now and then; without
                // it the unbounded channel would take all memory.
                std::thread::yield_now();
            }
            let mut raw = Vec::new();
            for c in 0..channels {
                for i in 0..batch {
                    let t = (n + i as u64) as f64 / rate;
                    let uv = 100.0 * (TAU * 10.0 * t).sin() * (1.0 + c as f64 * 0.01);
                    raw.push((uv / uv_per_count).round() as i32);
                }
            }
            n += batch as u64;
            let msg = Msg { seq, ready_ns: monotonic_ns(), channels, samples: batch, raw, uv: Vec::new() };
            seq += 1;
            if to_dsp.send(msg).is_err() {
                break;
            }
        }
    });

    let s = stop.clone();
    let dsp_thread = std::thread::spawn(move || {
        let (mut notch, mut band) = design(rate, channels);
        let uv_per_count = 2.0 * 4.5 / 24.0 / (1u64 << 24) as f64 * 1e6;
        while let Some(m) = recv_polling(&dsp_rx, &s) {
            let uv: Vec<f32> = m.raw.iter().map(|&c| (c as f64 * uv_per_count) as f32).collect();
            let mut notched = uv.clone();
            notch.process(&mut notched, m.channels, m.samples);
            let mut filtered = notched.clone();
            band.process(&mut filtered, m.channels, m.samples);
            let copy = Msg { raw: m.raw.clone(), uv: filtered.clone(), ..m };
            let other = Msg {
                seq: copy.seq,
                ready_ns: copy.ready_ns,
                channels: copy.channels,
                samples: copy.samples,
                raw: copy.raw.clone(),
                uv: filtered,
            };
            if to_null.send(copy).is_err() || to_ds.send(other).is_err() {
                break;
            }
        }
    });

    let (arr, s) = (arrivals.clone(), stop.clone());
    let null_thread = std::thread::spawn(move || {
        while let Some(m) = recv_polling(&null_rx, &s) {
            arr.arrive(m.seq, m.ready_ns);
        }
    });

    let (arr, s) = (arrivals.clone(), stop.clone());
    let ds_thread = std::thread::spawn(move || {
        let mut dec = Decimator::new(factor, rate, channels, batch).expect("reference decimator design");
        let mut frames: Vec<Vec<f32>> = Vec::new();
        while let Some(m) = recv_polling(&ds_rx, &s) {
            let mut out = vec![0f32; m.channels * m.samples.div_ceil(factor)];
            let k = dec.process(&m.uv, m.channels, m.samples, &mut out);
            out.truncate(m.channels * k);
            // The "websocket" hand-off: the frame is kept for a client, then replaced.
            frames.push(out);
            if frames.len() > 4 {
                frames.remove(0);
            }
            arr.arrive(m.seq, m.ready_ns);
        }
    });

    std::thread::sleep(Duration::from_secs_f64(warmup));
    arrivals.latency.reset();
    let n0 = arrivals.sink_packets.load(Ordering::Relaxed);
    let w = Window::open();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let (wall, cpu, allocs) = w.close();
    let n1 = arrivals.sink_packets.load(Ordering::Relaxed);
    let latency = Quantiles::from_ns(&arrivals.latency);
    stop.store(true, Ordering::Relaxed);
    let _ = source.join();
    let _ = dsp_thread.join();
    let _ = null_thread.join();
    let _ = ds_thread.join();
    let throughput = (n1 - n0) as f64 * batch as f64 / wall;
    (latency, cpu, allocs, throughput)
}
