//! The data path allocates nothing in steady state: 10,000 packets through emulator (unpaced,
//! with AC lead-off on, so the signal-quality checks and the impedance lock-in run)
//! → to_voltage → gain → fan-out to two null sinks, one on the source's thread and one across a
//! queue on another thread, counted by a global allocator. A third branch, on a thread of its
//! own, runs the DSP stages (notch, band-pass, downsample, FFT, band power, rereference, select)
//! under the same rule, and joins a second emulator's stream with `align_and_zip`.
//!
//! One test in this binary, so nothing else allocates while it measures.
use pipeline::alloc_count::{allocations, CountingAlloc};
use pipeline::exec::{Pipeline, PipelineState};
use pipeline::testing::wait_packets_in;
use pipeline::topology::graph::plan;
use std::sync::atomic::Ordering;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const PIPELINE: &str = "
stages:
  - emulator: { channels: 32, rate: 4000, batch: 16, realtime: false, lead_off: { mode: ac } }
  - to_voltage: {}
  - gain: { factor: 2 }
  - null_sink: { name: local_sink }
  - null_sink: { name: remote_sink, inputs: [gain], group: sinks }
  - notch: { inputs: [gain], group: dsp }
  - bandpass: { low_hz: 1, high_hz: 40 }
  - downsample: { factor: 16 }
  - fft: { size: 64, hop: 16 }
  - band_power: {}
  - null_sink: { name: bands_sink }
  - rereference: { inputs: [bandpass] }
  - select: { channels: [0, 2, Ch32, 1] }
  - emulator: { name: right, channels: 4, rate: 4000, batch: 16, realtime: false }
  - to_voltage: { name: right_uv }
  - align_and_zip: { inputs: [select, right_uv], group: dsp }
  - null_sink: { name: zipped_sink }
";

#[test]
fn ten_thousand_packets_allocate_nothing() {
    stages::link();
    let plan = plan("zero_alloc", PIPELINE).expect("valid pipeline");
    let p = Pipeline::start(plan).expect("starts");
    let shared = p.shared().clone();
    let local = shared.stage("local_sink").unwrap().stats.clone();
    let remote = shared.stage("remote_sink").unwrap().stats.clone();
    let wait_for = |n: u64| wait_packets_in(&[&local, &remote], n);
    wait_for(1_000);
    let before = allocations();
    let start = remote.packets_in.load(Ordering::Relaxed);
    wait_for(start + 10_000);
    let after = allocations();
    let state = p.join();
    assert_eq!(state, PipelineState::Stopped);
    assert_eq!(after - before, 0, "allocations on the data path in steady state");
    let edges = shared.edge_snapshots();
    assert_eq!(edges.len(), 3, "one queue to each other thread");
    assert!(edges.iter().all(|e| e.dropped == 0), "a block edge loses nothing");
    let zipped = shared.stage("zipped_sink").unwrap().stats.packets_in.load(Ordering::Relaxed);
    assert!(zipped > 0, "the fan-in ran");
    let bands = shared.stage("bands_sink").unwrap().stats.packets_in.load(Ordering::Relaxed);
    assert!(bands > 0, "the DSP branch ran");
    assert_eq!(
        local.packets_in.load(Ordering::Relaxed),
        remote.packets_in.load(Ordering::Relaxed),
        "both branches saw every packet after the drain"
    );
}
