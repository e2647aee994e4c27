//! `eegd bench`: the reference pipeline (BENCHMARKS.md), paced and unpaced, beside a naive baseline
//! built the way the original system was (a fresh `Vec` per packet, unbounded channels, 1 ms
//! sleep polling, deep copies on fan-out), in one process run.
mod baseline;

use anyhow::{bail, Result};
use pipeline::alloc_count::allocations;
use pipeline::exec::Pipeline;
use pipeline::rt::monotonic_ns;
use pipeline::stats::Histogram;
use pipeline::topology::graph::plan;
use serde::Serialize;
use stages::broker::Broker;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args, Clone)]
pub struct BenchArgs {
    #[arg(long, default_value_t = 32)]
    pub channels: usize,
    #[arg(long, default_value_t = 4000)]
    pub rate: u32,
    /// Samples per packet (default rate / 250).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Seconds of paced measurement (after a warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Wake once per packet (`batch`) or once per sample (`drdy`).
    #[arg(long, default_value = "batch", value_parser = ["batch", "drdy"])]
    pub pace: String,
    #[arg(long)]
    pub json: bool,
    /// Add an `lsl_sink` (a real LSL outlet, stream `eegd-bench`) after the band-pass; needs
    /// liblsl (docs/lsl.md).
    #[arg(long)]
    pub lsl: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Quantiles {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Quantiles {
    pub fn from_ns(h: &Histogram) -> Quantiles {
        let p = h.percentiles();
        let us = |v: u64| (v as f64 / 1000.0 * 10.0).round() / 10.0;
        Quantiles { p50: us(p.p50), p99: us(p.p99), p999: us(p.p999), max: us(p.max) }
    }
}

#[derive(Debug, Serialize)]
pub struct Side {
    pub latency_us: Quantiles,
    pub cpu_percent_of_one_core: f64,
    pub allocations_steady_state: u64,
    pub throughput_samples_per_s: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    channels: usize,
    rate: u32,
    batch: usize,
    seconds: f64,
    pace: String,
    /// True when the reference pipeline carried an `lsl_sink` (`--lsl`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    lsl: bool,
    latency_us: Quantiles,
    wake_late_us: Quantiles,
    cpu_percent_of_one_core: f64,
    allocations_steady_state: u64,
    throughput_samples_per_s: f64,
    baseline: Side,
}

/// User + system CPU time of the process, ns.
pub fn cpu_ns() -> u64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_SELF)
        .map(|u| {
            let t =
                |tv: nix::sys::time::TimeVal| tv.tv_sec() as u64 * 1_000_000_000 + tv.tv_usec() as u64 * 1000;
            t(u.user_time()) + t(u.system_time())
        })
        .unwrap_or(0)
}

/// Counters at the start of a measurement window.
pub struct Window {
    wall: u64,
    cpu: u64,
    allocs: u64,
}

impl Window {
    pub fn open() -> Window {
        Window { wall: monotonic_ns(), cpu: cpu_ns(), allocs: allocations() }
    }
    /// (wall seconds, CPU % of one core, allocations) since `open`.
    pub fn close(&self) -> (f64, f64, u64) {
        let wall = (monotonic_ns() - self.wall) as f64 / 1e9;
        let cpu = (cpu_ns() - self.cpu) as f64 / 1e9;
        (wall, 100.0 * cpu / wall, allocations() - self.allocs)
    }
}

/// The reference pipeline as a pipeline file.
pub fn reference_yaml(a: &BenchArgs, batch: usize, realtime: bool, topic: &str) -> String {
    let factor = (a.rate / 250).max(2);
    format!(
        "stages:\n\
         \x20 - emulator: {{ channels: {}, rate: {}, batch: {batch}, signal: sine, sine_hz: 10, amplitude_uv: 100, realtime: {realtime}, pace: {} }}\n\
         \x20 - to_voltage: {{}}\n\
         \x20 - notch: {{ hz: 50 }}\n\
         \x20 - bandpass: {{ low_hz: 1, high_hz: 40, order: 4 }}\n\
         \x20 - null_sink: {{}}\n\
         \x20 - downsample: {{ inputs: [bandpass], factor: {factor} }}\n\
         \x20 - websocket_sink: {{ topic: {topic} }}\n{}",
        a.channels,
        a.rate,
        a.pace,
        if a.lsl {
            format!("\x20 - lsl_sink: {{ inputs: [bandpass], stream_name: eegd-{topic}, source_id: eegd-{topic} }}\n")
        } else {
            String::new()
        }
    )
}

/// A stand-in for the daemon's broker task: one subscribed reader that takes every frame.
struct Reader {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
    waker: Arc<pipeline::wake::Waker>,
}

impl Reader {
    fn start(topic: &str) -> Reader {
        let topic = Broker::global().topic(topic);
        let waker = Arc::new(pipeline::wake::Waker::new());
        let stop = Arc::new(AtomicBool::new(false));
        let (t, w, s) = (topic.clone(), waker.clone(), stop.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            w.bind_current();
            t.subscribe(Some(w.clone()));
            let _ = ready_tx.send(());
            let mut n = 0u64;
            while !s.load(Ordering::Relaxed) {
                while t.pop().is_some() {
                    n += 1;
                }
                w.wait_until(|| s.load(Ordering::Relaxed) || t.has_packets());
            }
            t.unsubscribe();
            n
        });
        let _ = ready_rx.recv();
        Reader { stop, thread: Some(thread), waker }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.waker.wake();
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or(0)
    }
}

struct Ours {
    latency: Quantiles,
    wake_late: Quantiles,
    cpu: f64,
    allocs: u64,
}

fn run_ours_paced(a: &BenchArgs, batch: usize) -> Result<Ours> {
    let yaml = reference_yaml(a, batch, true, "bench");
    let plan = plan("bench", &yaml).map_err(|d| anyhow::anyhow!("{d}"))?;
    let reader = Reader::start("bench");
    let p = Pipeline::start(plan)?;
    let shared = p.shared().clone();
    std::thread::sleep(Duration::from_secs_f64(warmup(a.seconds)));
    let source = shared.stages()[0].stats.clone();
    shared.latency_ns.reset();
    source.wake_late_ns.reset();
    let w = Window::open();
    std::thread::sleep(Duration::from_secs_f64(a.seconds));
    let (_, cpu, allocs) = w.close();
    let latency = Quantiles::from_ns(&shared.latency_ns);
    let wake_late = Quantiles::from_ns(&source.wake_late_ns);
    let state = p.join();
    reader.finish();
    if let pipeline::exec::PipelineState::Failed(e) = state {
        bail!("the reference pipeline failed: {e}");
    }
    Ok(Ours { latency, wake_late, cpu, allocs })
}

fn run_ours_unpaced(a: &BenchArgs, batch: usize) -> Result<f64> {
    let yaml = reference_yaml(a, batch, false, "bench-unpaced");
    let plan = plan("bench", &yaml).map_err(|d| anyhow::anyhow!("{d}"))?;
    let reader = Reader::start("bench-unpaced");
    let p = Pipeline::start(plan)?;
    let shared = p.shared().clone();
    let sink = shared.stage("null_sink").map(|s| s.stats.clone()).expect("reference has a null_sink");
    std::thread::sleep(Duration::from_millis(300));
    let (n0, t0) = (sink.packets_in.load(Ordering::Relaxed), monotonic_ns());
    std::thread::sleep(Duration::from_secs_f64(unpaced_seconds(a.seconds)));
    let (n1, t1) = (sink.packets_in.load(Ordering::Relaxed), monotonic_ns());
    p.join();
    reader.finish();
    Ok((n1 - n0) as f64 * batch as f64 / ((t1 - t0) as f64 / 1e9))
}

fn warmup(seconds: f64) -> f64 {
    (seconds / 5.0).clamp(0.2, 2.0)
}

fn unpaced_seconds(seconds: f64) -> f64 {
    (seconds / 3.0).clamp(0.5, 3.0)
}

pub fn run(a: BenchArgs) -> Result<ExitCode> {
    if !(1..=32).contains(&a.channels) {
        bail!("--channels must be 1 to 32");
    }
    let batch = a.batch.unwrap_or((a.rate / 250) as usize).max(1);
    if a.lsl {
        lsl::available().map_err(|e| anyhow::anyhow!("--lsl: {e}"))?;
    }
    let ours = run_ours_paced(&a, batch)?;
    let throughput = run_ours_unpaced(&a, batch)?;
    let base = baseline::run(&a, batch, warmup(a.seconds), unpaced_seconds(a.seconds));
    let report = Report {
        channels: a.channels,
        rate: a.rate,
        batch,
        seconds: a.seconds,
        pace: a.pace.clone(),
        lsl: a.lsl,
        latency_us: ours.latency,
        wake_late_us: ours.wake_late,
        cpu_percent_of_one_core: round2(ours.cpu),
        allocations_steady_state: ours.allocs,
        throughput_samples_per_s: throughput.round(),
        baseline: Side {
            cpu_percent_of_one_core: round2(base.cpu_percent_of_one_core),
            throughput_samples_per_s: base.throughput_samples_per_s.round(),
            ..base
        },
    };
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let r = &report;
        println!(
            "eegd bench: {} ch × {} SPS, batch {}, {} s paced ({}){}",
            r.channels,
            r.rate,
            r.batch,
            r.seconds,
            r.pace,
            if r.lsl { ", with an lsl_sink" } else { "" }
        );
        println!("                      {:>12} {:>12}", "eegd", "baseline");
        println!("latency p50 (µs)      {:>12} {:>12}", r.latency_us.p50, r.baseline.latency_us.p50);
        println!("latency p99 (µs)      {:>12} {:>12}", r.latency_us.p99, r.baseline.latency_us.p99);
        println!("latency p99.9 (µs)    {:>12} {:>12}", r.latency_us.p999, r.baseline.latency_us.p999);
        println!("latency max (µs)      {:>12} {:>12}", r.latency_us.max, r.baseline.latency_us.max);
        println!(
            "CPU (% of one core)   {:>12} {:>12}",
            r.cpu_percent_of_one_core, r.baseline.cpu_percent_of_one_core
        );
        println!(
            "allocations (steady)  {:>12} {:>12}",
            r.allocations_steady_state, r.baseline.allocations_steady_state
        );
        println!(
            "throughput (S/s/ch)   {:>12} {:>12}",
            r.throughput_samples_per_s, r.baseline.throughput_samples_per_s
        );
        println!(
            "  = × real time       {:>12.1} {:>12.1}",
            r.throughput_samples_per_s / r.rate as f64,
            r.baseline.throughput_samples_per_s / r.rate as f64
        );
        println!("wake late p50/p99 (µs) {} / {}", r.wake_late_us.p50, r.wake_late_us.p99);
    }
    Ok(ExitCode::SUCCESS)
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}
