//! Live edits keep the data threads allocation-free and leave untouched branches whole: 200
//! times a branch (`fft` on the source's thread, a sink on a thread of its own) is added and
//! removed while a 32 ch × 4000 SPS pipeline runs; the pipeline threads allocate nothing
//! meanwhile (a counting global allocator, counting per thread), and the untouched branch gets
//! every packet the source made.
//!
//! One test in this binary, so nothing else allocates while it measures.
use pipeline::alloc_count::{data_thread_allocations, CountingAlloc};
use pipeline::edit::stage_from_text;
use pipeline::exec::{Pipeline, PipelineState};
use pipeline::testing::wait_packets_in;
use pipeline::topology::graph::plan;
use std::sync::atomic::Ordering;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const PIPELINE: &str = "
stages:
  - emulator: { channels: 32, rate: 4000, batch: 16, realtime: false }
  - to_voltage: {}
  - bandpass: { low_hz: 1, high_hz: 40, order: 4 }
  - null_sink: { name: untouched }
";

#[test]
fn two_hundred_edits_allocate_nothing_on_the_data_threads() {
    stages::link();
    let p = Pipeline::start(plan("zero_alloc_edits", PIPELINE).expect("valid pipeline")).expect("starts");
    let shared = p.shared().clone();
    let untouched = shared.stage("untouched").unwrap().stats.clone();
    let source = shared.stage("emulator").unwrap().stats.clone();
    wait_packets_in(&[&untouched], 500);
    let fft = stage_from_text("edit", "fft: { size: 256, hop: 64, inputs: [bandpass] }").unwrap();
    let sink = stage_from_text("edit", "null_sink: { name: spectra, inputs: [fft], group: edits }").unwrap();

    // The first round makes what later rounds reuse (the fft plan cache, thread-local state).
    shared.add_stage(&fft).unwrap();
    shared.add_stage(&sink).unwrap();
    shared.remove_stage("fft", true).unwrap();

    let before = data_thread_allocations();
    for _ in 0..200 {
        shared.add_stage(&fft).unwrap();
        shared.add_stage(&sink).unwrap();
        let spectra = shared.stage("spectra").unwrap().stats.clone();
        let fed = untouched.packets_in.load(Ordering::Relaxed);
        // Wait until the branch has carried packets, so each round exercises it.
        wait_packets_in(&[&spectra], 1);
        assert!(untouched.packets_in.load(Ordering::Relaxed) >= fed);
        let removed = shared.remove_stage("fft", true).unwrap();
        assert_eq!(
            removed,
            pipeline::edit::Applied::Remove {
                stage: "fft".into(),
                removed: vec!["fft".into(), "spectra".into()]
            }
        );
    }
    let after = data_thread_allocations();
    assert_eq!(p.join(), PipelineState::Stopped);
    assert_eq!(after - before, 0, "allocations on pipeline threads during 200 add/remove rounds");
    let made = source.packets_out.load(Ordering::Relaxed);
    assert!(made > 0);
    assert_eq!(untouched.packets_in.load(Ordering::Relaxed), made, "the untouched branch lost packets");
    assert_eq!(untouched.drops.load(Ordering::Relaxed), 0);
    assert_eq!(shared.stages().len(), 4, "every added stage is gone");
}
