//! `align_and_zip` in a running pipeline: two recordings at one rate, replayed by two
//! `file_source`s on their own threads, joined into one CSV. Samples that meet within the
//! tolerance come out side by side with the first input's exact timestamps; the rest is dropped
//! and counted.
use pipeline::exec::{Pipeline, PipelineState};
use pipeline::topology::graph::plan;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

const T0_US: i64 = 1_700_000_000_000_000;
const N: i64 = 200;

/// A CSV of `N` samples at 1000 S/s starting `offset_us` after `T0`, channel `c` of sample `k`
/// holding `base + 1000 c + k`.
fn write_csv(path: &Path, labels: &[&str], offset_us: i64, base: i64) {
    let mut s = format!("timestamp,{}\n", labels.join(","));
    for k in 0..N {
        let us = T0_US + offset_us + k * 1000;
        s += &format!("{}.{:06}", us / 1_000_000, us % 1_000_000);
        for c in 0..labels.len() as i64 {
            s += &format!(",{}", base + 1000 * c + k);
        }
        s += "\n";
    }
    std::fs::write(path, s).unwrap();
}

/// Runs the join with input B `offset_us` behind A; returns the output rows and the drops.
fn join(offset_us: i64, tolerance: u32) -> (Vec<Vec<String>>, String, u64) {
    stages::link();
    let dir = tempfile::tempdir().unwrap();
    write_csv(&dir.path().join("a.csv"), &["A1", "A2"], 0, 0);
    write_csv(&dir.path().join("b.csv"), &["B1"], offset_us, 100_000);
    let yaml = format!(
        "stages:
  - file_source: {{ name: a, path: {a}, realtime: false }}
  - file_source: {{ name: b, path: {b}, realtime: false }}
  - align_and_zip: {{ inputs: [a, b], tolerance_samples: {tolerance} }}
  - csv_sink: {{ path: {out} }}
",
        a = dir.path().join("a.csv").display(),
        b = dir.path().join("b.csv").display(),
        out = dir.path().join("out.csv").display(),
    );
    let p = Pipeline::start(plan("join", &yaml).expect("valid")).expect("starts");
    let shared = p.shared().clone();
    assert!(shared.wait_finished(Some(Duration::from_secs(60))), "the sources end by themselves");
    assert_eq!(p.join(), PipelineState::Stopped);
    let drops = shared.stage("align_and_zip").unwrap().stats.drops.load(Ordering::Relaxed);
    let text = std::fs::read_to_string(dir.path().join("out.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default().to_string();
    let rows = lines.map(|l| l.split(',').map(str::to_string).collect()).collect();
    (rows, header, drops)
}

#[test]
fn two_recordings_three_samples_apart_join_on_exact_timestamps() {
    let (rows, header, drops) = join(3000, 1);
    assert_eq!(header, "timestamp,A1,A2,B1");
    // A's samples 3 … 199 meet B's 0 … 196.
    assert_eq!(rows.len(), 197);
    for (j, row) in rows.iter().enumerate() {
        let k = 3 + j as i64;
        let us = T0_US + k * 1000;
        assert_eq!(row[0], format!("{}.{:06}", us / 1_000_000, us % 1_000_000), "A's time, exactly");
        let v: Vec<i64> = row[1..].iter().map(|v| v.parse().unwrap()).collect();
        assert_eq!(v, [k, 1000 + k, 100_000 + k - 3]);
    }
    // A's first packet lost samples 0 … 2, B's last packet samples 197 … 199.
    assert_eq!(drops, 2);
}

#[test]
fn an_offset_beyond_the_tolerance_joins_nothing_and_counts_every_packet() {
    let (rows, header, drops) = join(500, 0);
    assert_eq!(header, "timestamp,A1,A2,B1");
    assert!(rows.is_empty(), "{} rows", rows.len());
    // file_source's default batch at 1000 S/s is 4: 50 packets from each recording.
    assert_eq!(drops, 100);
}
