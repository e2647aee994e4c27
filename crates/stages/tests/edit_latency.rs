//! The cost of live edits to the branch they do not touch: per-packet latency (source ready →
//! the untouched sink has it) of a 32 ch × 4000 SPS paced pipeline, over a quiet stretch and
//! then during 300 edits (an `fft` branch and a sink on a thread of its own, added and removed
//! 100 times). Prints both; asserts only that nothing was lost.
//!
//! `cargo test --release -p stages --test edit_latency -- --ignored --nocapture`
use pipeline::edit::stage_from_text;
use pipeline::exec::{Pipeline, PipelineState};
use pipeline::stats::Percentiles;
use pipeline::testing::wait_packets_in;
use pipeline::topology::graph::plan;
use std::sync::atomic::Ordering;

const PIPELINE: &str = "
stages:
  - emulator: { channels: 32, rate: 4000, batch: 16 }
  - to_voltage: {}
  - notch: { hz: 50 }
  - bandpass: { low_hz: 1, high_hz: 40, order: 4 }
  - null_sink: { name: untouched }
";

fn us(p: &Percentiles) -> String {
    let f = |v: u64| v as f64 / 1e3;
    format!("p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs ({} packets)", f(p.p50), f(p.p99), f(p.max), p.count)
}

#[test]
#[ignore = "a measurement: run it in release, by hand"]
fn untouched_branch_latency_before_and_during_edits() {
    stages::link();
    let p = Pipeline::start(plan("edit_latency", PIPELINE).expect("valid")).expect("starts");
    let sh = p.shared().clone();
    let sink = sh.stage("untouched").unwrap().stats;
    let source = sh.stage("emulator").unwrap().stats;
    wait_packets_in(&[&sink], 250);
    sink.latency_ns.reset();
    let quiet_from = sink.packets_in.load(Ordering::Relaxed);
    wait_packets_in(&[&sink], quiet_from + 2500);
    let quiet = sink.latency_ns.percentiles();

    let fft = stage_from_text("edit", "fft: { size: 256, hop: 64, inputs: [bandpass] }").unwrap();
    let spectra =
        stage_from_text("edit", "null_sink: { name: spectra, inputs: [fft], group: edits }").unwrap();
    sink.latency_ns.reset();
    let t0 = std::time::Instant::now();
    for _ in 0..100 {
        sh.add_stage(&fft).unwrap();
        sh.add_stage(&spectra).unwrap();
        sh.remove_stage("fft", true).unwrap();
    }
    let took = t0.elapsed();
    let during = sink.latency_ns.percentiles();
    assert_eq!(p.join(), PipelineState::Stopped);
    assert_eq!(sink.packets_in.load(Ordering::Relaxed), source.packets_out.load(Ordering::Relaxed));
    println!("quiet:              {}", us(&quiet));
    println!("during 300 edits:   {} — the edits took {:.2} s", us(&during), took.as_secs_f64());
}
