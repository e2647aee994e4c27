//! Recording allocates nothing in steady state: 10,000 packets through emulator (unpaced) →
//! to_voltage → `bdf_sink`, `edf_sink` and `csv_sink` (each on the `io` thread, writing and
//! flushing real files), with a marker posted while it runs and hardware triggers firing (the
//! simulated chip's GPIO1 pulsing every 20 ms, each rise a marker every sink writes), counted
//! by a global allocator.
//!
//! One test in this binary, so nothing else allocates while it measures.
use pipeline::alloc_count::{allocations, CountingAlloc};
use pipeline::exec::{Pipeline, PipelineState};
use pipeline::stats::StageStats;
use pipeline::testing::wait_packets_in;
use pipeline::topology::graph::plan;
use stages::markers::{Marker, MarkerHub};
use std::sync::atomic::Ordering;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[test]
fn recording_ten_thousand_packets_allocates_nothing() {
    stages::link();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let src = format!(
        "stages:
  - emulator: {{ channels: 8, rate: 4000, batch: 16, realtime: false,
      trigger_signal: {{ gpio: 1, period_ms: 20, width_ms: 5 }}, triggers: {{ gpio1: stim }} }}
  - to_voltage: {{}}
  - bdf_sink: {{ path: {d}/a.bdf }}
  - edf_sink: {{ path: {d}/a.edf, inputs: [to_voltage] }}
  - csv_sink: {{ path: {d}/a.csv, inputs: [to_voltage] }}
"
    );
    let p = Pipeline::start(plan("zero_alloc_recording", &src).expect("valid pipeline")).expect("starts");
    let shared = p.shared().clone();
    let sinks: Vec<_> =
        ["bdf_sink", "edf_sink", "csv_sink"].iter().map(|n| shared.stage(n).unwrap().stats.clone()).collect();
    let watched: Vec<&StageStats> = sinks.iter().map(|s| &**s).collect();
    let wait_for = |n: u64| wait_packets_in(&watched, n);
    wait_for(1_000);
    // The first post from a thread registers it with the hub's lock-free list (allocates once).
    MarkerHub::global().post(Marker::new(0, "warm-up"));
    let marker = Marker::new(0, "made before the measurement");
    let posted = || MarkerHub::global().posted.load(Ordering::Relaxed);
    let before = allocations();
    let posted_before = posted();
    let start = sinks[0].packets_in.load(Ordering::Relaxed);
    MarkerHub::global().post(marker);
    wait_for(start + 10_000);
    let after = allocations();
    // 10,000 packets of 16 samples at 4000 SPS are 40 s of signal: a trigger every 20 ms.
    let triggers = posted() - posted_before - 1;
    assert!(triggers >= 1900, "{triggers} trigger markers while measuring");
    assert_eq!(p.join(), PipelineState::Stopped);
    assert_eq!(after - before, 0, "allocations while recording in steady state");
    for s in &sinks {
        assert_eq!(s.errors.load(Ordering::Relaxed), 0);
    }
}
