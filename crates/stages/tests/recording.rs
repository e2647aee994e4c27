//! The recording sinks: BDF+/EDF+ and CSV of one stream agree, markers land at their sample, a
//! recording input never drops, and a failing disk stops only the sink that writes to it.
use formats::csv::{read_markers, CsvReader};
use formats::edf::{Reader, Record};
use pipeline::exec::{Pipeline, PipelineState};
use pipeline::stats::StageState;
use pipeline::testing::Harness;
use pipeline::topology::graph::plan;
use pipeline::{Header, Kind, StreamInfo, StreamMeta};
use stages::markers::{Marker, MarkerHub};
use std::fs::File;
use std::io::BufReader;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

const RATE: f64 = 250.0;
const T0: i64 = 1_750_000_000_100_000_000;

fn stream() -> StreamInfo {
    let meta = Arc::new(StreamMeta {
        labels: vec!["Fp1".into(), "Fp2".into()],
        units: "uV".into(),
        gains: vec![24.0, 24.0],
        vref: 4.5,
        ..Default::default()
    });
    StreamInfo { kind: Kind::Voltage, rate: RATE, channels: 2, max_samples: 10, meta }
}

fn value(c: usize, i: usize) -> f32 {
    (((i * 7919 + c * 104_729) % 20_001) as f32 - 10_000.0) * 1.5
}

/// Feeds 62 packets of 10 samples (2.48 s) to a harness.
fn feed(h: &mut Harness, s: &StreamInfo) {
    for p in 0..62 {
        let hdr = Header {
            kind: Kind::Voltage,
            channels: 2,
            samples: 10,
            rate: RATE,
            seq: p as u64,
            timestamp_ns: T0 + (p as i64 * 10 * 4_000_000),
            meta: s.meta.clone(),
            ..Header::default()
        };
        let mut v = Vec::new();
        for c in 0..2 {
            v.extend((0..10).map(|k| value(c, p * 10 + k)));
        }
        let pkt = h.packet_f32(hdr, &v);
        h.push(0, pkt).unwrap();
    }
}

/// Markers go to every recording sink in the process: the tests that post them take turns.
static MARKERS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn file_and_csv_sinks_agree_and_place_markers_at_their_sample() {
    stages::link();
    let _turn = MARKERS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let s = stream();
    let bdf = dir.path().join("r.bdf");
    let edf = dir.path().join("r.edf");
    let csv = dir.path().join("r.csv");
    let mut hb =
        Harness::new("bdf_sink", serde_json::json!({"path": bdf}), std::slice::from_ref(&s), 8).unwrap();
    let mut he =
        Harness::new("edf_sink", serde_json::json!({"path": edf}), std::slice::from_ref(&s), 8).unwrap();
    let mut hc =
        Harness::new("csv_sink", serde_json::json!({"path": csv}), std::slice::from_ref(&s), 8).unwrap();
    for h in [&mut hb, &mut he, &mut hc] {
        assert!(!h.stage().is_locked());
        h.start().unwrap();
        assert!(h.stage().is_locked(), "a recorder locks what feeds it while it records");
    }
    // Sample 130 is at T0 + 520 ms; a marker 1 ms later still falls on it. Sample 600 is in the
    // partial last record.
    MarkerHub::global().post(Marker::new(T0 + 521_000_000, "stim"));
    MarkerHub::global().post(Marker::new(T0 + 2_400_000_000, "end, \"quoted\""));
    for h in [&mut hb, &mut he, &mut hc] {
        feed(h, &s);
        h.finish().unwrap();
        assert!(!h.stage().is_locked());
    }

    let mut rows = CsvReader::new(BufReader::new(File::open(&csv).unwrap())).unwrap();
    assert_eq!(rows.labels(), ["Fp1", "Fp2"]);
    let mut csv_vals: Vec<[f64; 2]> = Vec::new();
    let mut row = [0.0; 2];
    let mut first_ts = None;
    while let Some(ts) = rows.next_row(&mut row).unwrap() {
        first_ts.get_or_insert(ts);
        csv_vals.push(row);
    }
    assert_eq!(csv_vals.len(), 620);
    assert_eq!(first_ts, Some(T0));
    let marks = read_markers(BufReader::new(File::open(dir.path().join("r.markers.csv")).unwrap())).unwrap();
    assert_eq!(
        marks,
        vec![(T0 + 520_000_000, "stim".to_string()), (T0 + 2_400_000_000, "end, \"quoted\"".to_string())]
    );

    for path in [&bdf, &edf] {
        let mut r = Reader::open(File::open(path).unwrap()).unwrap();
        let h = r.header().clone();
        assert_eq!(h.records_in_header, 3, "{}: count fixed on finish", path.display());
        assert_eq!(h.start_ns(), T0);
        assert_eq!(h.signals[0].label, "Fp1");
        assert_eq!(h.signals[1].unit, "uV");
        assert_eq!(h.signals[0].physical_max, 187_500.0);
        let mut rec = Record::default();
        let mut anns = Vec::new();
        let mut i = 0;
        while r.read_record(&mut rec).unwrap() {
            anns.extend(rec.annotations.clone());
            for k in 0..rec.digital[0].len() {
                if i + k >= csv_vals.len() {
                    break;
                }
                for (c, want) in csv_vals[i + k].iter().enumerate() {
                    let s = &h.signals[c];
                    let v = f64::from(rec.digital[c][k]) * s.gain() + s.offset();
                    assert!((v - want).abs() <= s.gain(), "{} ch {c} sample {}", path.display(), i + k);
                }
            }
            i += rec.digital[0].len();
        }
        assert_eq!(i, 750, "three records of 250");
        let got: Vec<(i64, &str)> = anns.iter().map(|a| (a.onset_ns, a.text.as_str())).collect();
        assert_eq!(got, [(520_000_000, "stim"), (2_400_000_000, "end, \"quoted\"")]);
    }
}

#[test]
fn recording_sinks_refuse_a_dropping_queue() {
    stages::link();
    for sink in ["bdf_sink", "edf_sink", "csv_sink"] {
        let src = format!(
            "stages:\n  - emulator: {{}}\n  - to_voltage: {{}}\n  - {sink}: {{ path: /tmp/x, queue: {{ overflow: drop_oldest }} }}\n"
        );
        let err = plan("t.yaml", &src).err().expect("refused").to_string();
        assert!(err.contains("never drops"), "{sink}: {err}");
    }
}

#[test]
fn flush_ms_is_at_most_a_second() {
    stages::link();
    let err = plan(
        "t.yaml",
        "stages:\n  - emulator: {}\n  - to_voltage: {}\n  - bdf_sink: { path: /tmp/x, flush_ms: 5000 }\n",
    )
    .err()
    .expect("refused")
    .to_string();
    assert!(err.contains("flush_ms"), "{err}");
}

#[test]
fn a_full_disk_stops_the_sink_by_its_policy_and_other_branches_go_on() {
    stages::link();
    let src = "stages:
  - emulator: { channels: 4, rate: 250, batch: 10, realtime: false }
  - to_voltage: {}
  - bdf_sink: { path: /dev/full }
  - null_sink: { inputs: [to_voltage] }
";
    let p = Pipeline::start(plan("t.yaml", src).unwrap()).unwrap();
    let shared = p.shared().clone();
    let sink = shared.stage("bdf_sink").unwrap().stats.clone();
    let other = shared.stage("null_sink").unwrap().stats.clone();
    while sink.state() == StageState::Running {
        std::thread::sleep(Duration::from_millis(5));
    }
    let seen = other.packets_in.load(Ordering::Relaxed);
    while other.packets_in.load(Ordering::Relaxed) < seen + 500 {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(sink.state(), StageState::Stopped, "drain_then_stop");
    let err = sink.last_error().unwrap_or_default();
    assert!(err.contains("/dev/full") && err.contains("No space left"), "{err}");
    assert_eq!(p.join(), PipelineState::Stopped, "the pipeline did not fail");
}

/// Every record of a BDF/EDF file: digital values and annotations.
fn contents(path: &std::path::Path) -> (Vec<Vec<i32>>, Vec<(i64, String)>, i64) {
    let mut r = Reader::open(File::open(path).unwrap()).unwrap();
    let mut rec = Record::default();
    let mut data: Vec<Vec<i32>> = Vec::new();
    let mut anns = Vec::new();
    while r.read_record(&mut rec).unwrap() {
        data.resize_with(rec.digital.len(), Vec::new);
        for (d, s) in data.iter_mut().zip(&rec.digital) {
            d.extend_from_slice(s);
        }
        anns.extend(rec.annotations.iter().map(|a| (a.onset_ns, a.text.clone())));
    }
    (data, anns, r.header().start_ns())
}

#[test]
fn a_file_replayed_and_written_again_is_the_same_file() {
    stages::link();
    let _turn = MARKERS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    for ext in ["bdf", "edf"] {
        let first = dir.path().join(format!("first.{ext}"));
        let s = stream();
        let mut h = Harness::new(
            &format!("{ext}_sink"),
            serde_json::json!({"path": first}),
            std::slice::from_ref(&s),
            8,
        )
        .unwrap();
        h.start().unwrap();
        MarkerHub::global().post(Marker::new(T0 + 1_204_000_000, "stim"));
        feed(&mut h, &s);
        h.finish().unwrap();

        let second = dir.path().join(format!("second.{ext}"));
        let src = format!(
            "stages:\n  - file_source: {{ path: {}, realtime: false, batch: 7 }}\n  - {ext}_sink: {{ path: {} }}\n",
            first.display(),
            second.display()
        );
        let p = Pipeline::start(plan("replay.yaml", &src).unwrap()).unwrap();
        assert!(p.shared().wait_finished(Some(Duration::from_secs(30))), "the replay ends");
        assert_eq!(p.join(), PipelineState::Stopped);

        let (a, a_ann, a_t0) = contents(&first);
        let (b, b_ann, b_t0) = contents(&second);
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].len(), 750);
        assert_eq!(a, b, "{ext}: identical samples");
        assert_eq!(a_ann, [(1_204_000_000, "stim".to_string())]);
        assert_eq!(a_ann, b_ann, "{ext}: annotations become markers and annotations again");
        assert_eq!(a_t0, b_t0, "{ext}: the same start time");
    }
}
