//! Live parameter changes keep the data path allocation-free: after filters are redesigned in
//! a running pipeline (order 4 → 8, new edges, more notch harmonics), 10,000 further packets
//! allocate nothing, counted by a global allocator.
//!
//! One test in this binary, so nothing else allocates while it measures.
use pipeline::alloc_count::{allocations, CountingAlloc};
use pipeline::exec::{Pipeline, PipelineState};
use pipeline::testing::wait_packets_in;
use pipeline::topology::graph::plan;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const PIPELINE: &str = "
stages:
  - emulator: { channels: 32, rate: 4000, batch: 16, realtime: false }
  - to_voltage: {}
  - notch: { hz: 50 }
  - bandpass: { low_hz: 1, high_hz: 40, order: 4 }
  - highpass: { hz: 0.5, order: 2 }
  - rereference: {}
  - null_sink: {}
";

#[test]
fn redesigned_filters_allocate_nothing_per_packet() {
    stages::link();
    let p = Pipeline::start(plan("zero_alloc_live", PIPELINE).expect("valid pipeline")).expect("starts");
    let shared = p.shared().clone();
    let sink = shared.stage("null_sink").unwrap().stats.clone();
    let wait_for = |n: u64| wait_packets_in(&[&sink], n);
    wait_for(1_000);
    let t = Duration::from_secs(10);
    shared.patch_stage("bandpass", serde_json::json!({"order": 8, "low_hz": 8, "high_hz": 13}), t).unwrap();
    shared.patch_stage("notch", serde_json::json!({"harmonics": 5}), t).unwrap();
    shared.patch_stage("highpass", serde_json::json!({"hz": 1}), t).unwrap();
    shared.patch_stage("rereference", serde_json::json!({"mode": "channel", "channel": 0}), t).unwrap();
    // Past the first packets after the change (a filter's new metadata record is made once).
    let start = sink.packets_in.load(Ordering::Relaxed) + 100;
    wait_for(start);
    let before = allocations();
    wait_for(start + 10_000);
    let after = allocations();
    assert_eq!(p.join(), PipelineState::Stopped);
    assert_eq!(after - before, 0, "allocations on the data path after live redesigns");
}
