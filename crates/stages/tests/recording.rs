//! The recording sinks: BDF+/EDF+ and CSV of one stream agree, markers land at their sample, a
//! file holds exactly the samples fed (never padded, whatever the markers), gaps keep time true,
//! clipping is counted, a recording input never drops, and a failing disk stops only the sink
//! that writes to it.
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

    for (path, range) in [(&bdf, 187_500.0), (&edf, 3000.0)] {
        let mut r = Reader::open(File::open(path).unwrap()).unwrap();
        let h = r.header().clone();
        assert_eq!(
            h.records_in_header,
            62,
            "{}: one record per packet, count fixed on finish",
            path.display()
        );
        assert_eq!(h.start_ns(), T0);
        assert_eq!(h.signals[0].label, "Fp1");
        assert_eq!(h.signals[1].unit, "uV");
        assert_eq!(h.signals[0].physical_max, range, "BDF: the ADC's full scale; EDF: ±3000 µV");
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
                    let want = want.clamp(-range, range);
                    let s = &h.signals[c];
                    let v = f64::from(rec.digital[c][k]) * s.gain() + s.offset();
                    assert!((v - want).abs() <= s.gain(), "{} ch {c} sample {}", path.display(), i + k);
                }
            }
            i += rec.digital[0].len();
        }
        assert_eq!(i, 620, "exactly the samples fed: no padding");
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
            "stages:\n  - file_source: {{ path: {}, realtime: false, batch: 5 }}\n  - {ext}_sink: {{ path: {} }}\n",
            first.display(),
            second.display()
        );
        let p = Pipeline::start(plan("replay.yaml", &src).unwrap()).unwrap();
        assert!(p.shared().wait_finished(Some(Duration::from_secs(30))), "the replay ends");
        assert_eq!(p.join(), PipelineState::Stopped);

        let (a, a_ann, a_t0) = contents(&first);
        let (b, b_ann, b_t0) = contents(&second);
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].len(), 620);
        assert_eq!(a, b, "{ext}: identical samples");
        assert_eq!(a_ann, [(1_204_000_000, "stim".to_string())]);
        assert_eq!(a_ann, b_ann, "{ext}: annotations become markers and annotations again");
        assert_eq!(a_t0, b_t0, "{ext}: the same start time");
    }
}

/// One packet of `n` samples of both channels starting at sample `first` of the signal, stamped
/// `ts`.
fn packet(h: &Harness, s: &StreamInfo, seq: u64, first: usize, n: usize, ts: i64) -> pipeline::Packet {
    let hdr = Header {
        kind: Kind::Voltage,
        channels: 2,
        samples: n as u32,
        rate: RATE,
        seq,
        timestamp_ns: ts,
        meta: s.meta.clone(),
        ..Header::default()
    };
    let mut v = Vec::with_capacity(2 * n);
    for c in 0..2 {
        v.extend((0..n).map(|k| value(c, first + k) / 100.0));
    }
    h.packet_f32(hdr, &v)
}

/// A BDF/EDF file read back: samples of channel 0 (physical), record onsets, annotations.
struct Back {
    ch0: Vec<f64>,
    onsets: Vec<i64>,
    anns: Vec<formats::Annotation>,
    records_in_header: i64,
    /// The file's start, ns after `T0`.
    start: i64,
}

fn read_back(path: &std::path::Path) -> Back {
    let mut r = Reader::open(File::open(path).unwrap()).unwrap();
    let s = r.header().signals[0].clone();
    let mut rec = Record::default();
    let start = r.header().start_ns() - T0;
    let mut b = Back { ch0: Vec::new(), onsets: Vec::new(), anns: Vec::new(), records_in_header: 0, start };
    while r.read_record(&mut rec).unwrap() {
        b.onsets.push(rec.onset_ns);
        b.ch0.extend(rec.digital[0].iter().map(|&d| f64::from(d) * s.gain() + s.offset()));
        b.anns.extend(rec.annotations.iter().cloned());
    }
    b.records_in_header = r.header().records_in_header;
    b
}

fn sink(kind: &str, path: &std::path::Path, s: &StreamInfo) -> Harness {
    let mut h = Harness::new(kind, serde_json::json!({ "path": path }), std::slice::from_ref(s), 16).unwrap();
    h.start().unwrap();
    h
}

#[test]
fn a_file_holds_exactly_the_samples_fed_and_says_so() {
    stages::link();
    let _turn = MARKERS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let s = stream();
    for kind in ["bdf_sink", "edf_sink"] {
        let path = dir.path().join(format!("{kind}.x"));
        let mut h = sink(kind, &path, &s);
        // 4279 samples (17.116 s): not a whole number of seconds.
        let mut at = 0;
        for p in 0..428u64 {
            let n = if p == 427 { 9 } else { 10 };
            h.push(0, packet(&h, &s, p, at, n, T0 + at as i64 * 4_000_000)).unwrap();
            at += n;
        }
        let report = stages::recorder::report_for(&path).unwrap();
        h.finish().unwrap();
        let b = read_back(&path);
        let written = report.samples.load(Ordering::Relaxed);
        let unwritten = report.samples_unwritten.load(Ordering::Relaxed);
        assert_eq!(b.ch0.len() as u64, written, "{kind}: samples_written is the file");
        assert_eq!(written + unwritten, 4279, "{kind}: every sample written or counted");
        assert!(unwritten < 10, "{kind}: only a last short packet's record can be left out");
        assert_eq!(b.records_in_header as u64 * 10, written);
        for (i, v) in b.ch0.iter().enumerate() {
            assert!((v - f64::from(value(0, i) / 100.0)).abs() < 0.1, "{kind} sample {i}: never invented");
        }
    }
}

#[test]
fn thirty_markers_a_second_and_future_markers_neither_lengthen_nor_hide() {
    stages::link();
    let _turn = MARKERS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let s = stream();
    for kind in ["bdf_sink", "edf_sink", "csv_sink"] {
        let path = dir.path().join(format!("{kind}.x"));
        let mut h = sink(kind, &path, &s);
        // 6 s at 250 Hz in packets of 10 (40 ms): 30 markers a second is 6 every 5 packets.
        let mut posted = 0;
        for p in 0..150usize {
            let ts = T0 + p as i64 * 40_000_000;
            if p == 1 {
                // A full queue of markers stamped an hour ahead: they must hide nothing.
                for _ in 0..stages::markers::QUEUE_CAPACITY {
                    MarkerHub::global().post(Marker::new(T0 + 3_600_000_000_000, "future"));
                }
            }
            if p % 5 == 0 {
                for k in 0..6 {
                    MarkerHub::global().post(Marker::new(ts + k * 4_000_000, &format!("m{posted}")));
                    posted += 1;
                }
            }
            h.push(0, packet(&h, &s, p as u64, p * 10, 10, ts)).unwrap();
        }
        let report = stages::recorder::report_for(&path).unwrap();
        h.finish().unwrap();
        assert_eq!(report.samples.load(Ordering::Relaxed), 1500, "{kind}");
        assert_eq!(report.markers_dropped.load(Ordering::Relaxed), 0, "{kind}");
        let texts: Vec<String> = if kind == "csv_sink" {
            let m = read_markers(BufReader::new(
                File::open(dir.path().join(format!("{kind}.markers.csv"))).unwrap(),
            ))
            .unwrap();
            m.into_iter().map(|(_, t)| t).collect()
        } else {
            let b = read_back(&path);
            assert_eq!(b.ch0.len(), 1500, "{kind}: 6 s of samples, not a record more");
            assert_eq!(*b.onsets.last().unwrap(), 5_960_000_000);
            b.anns.into_iter().map(|a| a.text).collect()
        };
        let real: Vec<&String> = texts.iter().filter(|t| *t != "future").collect();
        assert_eq!(real.len(), 180, "{kind}: every real marker is in the file");
        assert_eq!(real[179], "m179");
    }
}

#[test]
fn a_gap_in_the_input_keeps_the_file_time_true() {
    stages::link();
    let _turn = MARKERS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let s = stream();
    for kind in ["bdf_sink", "edf_sink", "csv_sink"] {
        let path = dir.path().join(format!("{kind}.x"));
        let mut h = sink(kind, &path, &s);
        // Packets 0..50, then 25 samples (100 ms) missing, then 50 more packets.
        for p in 0..100usize {
            let skip = if p >= 50 { 25 } else { 0 };
            h.push(0, packet(&h, &s, p as u64, p * 10, 10, T0 + (p * 10 + skip) as i64 * 4_000_000)).unwrap();
        }
        let report = stages::recorder::report_for(&path).unwrap();
        h.finish().unwrap();
        assert_eq!(report.gap_samples.load(Ordering::Relaxed), 25, "{kind}");
        assert_eq!(report.gaps.load(Ordering::Relaxed), 1, "{kind}");
        assert_eq!(report.samples.load(Ordering::Relaxed), 1000, "{kind}");
        if kind == "csv_sink" {
            let mut rows = CsvReader::new(BufReader::new(File::open(&path).unwrap())).unwrap();
            let mut row = [0.0; 2];
            let mut ts = Vec::new();
            while let Some(t) = rows.next_row(&mut row).unwrap() {
                ts.push(t);
            }
            assert_eq!((ts[499], ts[500]), (T0 + 499 * 4_000_000, T0 + 525 * 4_000_000));
            let m =
                read_markers(BufReader::new(File::open(dir.path().join("csv_sink.markers.csv")).unwrap()))
                    .unwrap();
            assert_eq!(m, [(T0 + 500 * 4_000_000, "gap: 25 samples not acquired".to_string())]);
            continue;
        }
        let b = read_back(&path);
        assert_eq!(b.ch0.len(), 1000);
        assert_eq!((b.onsets[49], b.onsets[50]), (49 * 40_000_000, 2_100_000_000), "{kind}: true onset");
        assert_eq!(b.anns.len(), 1);
        assert_eq!(b.anns[0].text, "gap: 25 samples not acquired");
        assert_eq!((b.anns[0].onset_ns, b.anns[0].duration_ns), (2_000_000_000, Some(100_000_000)));
    }
}

#[test]
fn a_railed_channel_counts_as_clipped() {
    stages::link();
    let dir = tempfile::tempdir().unwrap();
    let s = stream();
    for (kind, rail) in [("bdf_sink", 187_500.0f32), ("edf_sink", 187_500.0), ("edf_sink", 3000.0)] {
        let path = dir.path().join(format!("{kind}.x"));
        let mut h = sink(kind, &path, &s);
        // Channel 0 railed at +full scale half the time; channel 1 quiet.
        for p in 0..10u64 {
            let hdr = Header {
                kind: Kind::Voltage,
                channels: 2,
                samples: 10,
                rate: RATE,
                seq: p,
                timestamp_ns: T0 + p as i64 * 40_000_000,
                meta: s.meta.clone(),
                ..Header::default()
            };
            let mut v = vec![0.0f32; 20];
            for (k, x) in v[..10].iter_mut().enumerate() {
                *x = if k % 2 == 0 { rail } else { 10.0 };
            }
            h.push(0, h.packet_f32(hdr, &v)).unwrap();
        }
        let report = stages::recorder::report_for(&path).unwrap();
        h.finish().unwrap();
        assert_eq!(report.clipped.load(Ordering::Relaxed), 50, "{kind} at {rail} µV");
    }
}

mod property {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

        /// Random packet sizes, gaps and marker times: the file never holds more samples than
        /// were fed, every sample in it is one that was fed (at its true time), and
        /// `samples_written` is what the file holds.
        #[test]
        fn never_pads_and_samples_written_is_the_file(
            packets in proptest::collection::vec((1usize..=10, prop_oneof![4 => Just(0usize), 1 => 1usize..40]), 1..60),
            markers in proptest::collection::vec(-2_000i64..20_000, 0..40),
            format in prop_oneof![Just("bdf_sink"), Just("edf_sink")],
        ) {
            stages::link();
            let _turn = MARKERS.lock().unwrap_or_else(|e| e.into_inner());
            let dir = tempfile::tempdir().unwrap();
            let s = stream();
            let path = dir.path().join("p.x");
            let mut h = sink(format, &path, &s);
            // Sample index in the signal (time = index × 4 ms) of every sample fed.
            let mut fed: Vec<usize> = Vec::new();
            let mut at = 0;
            for (p, &(n, gap)) in packets.iter().enumerate() {
                at += if p == 0 { 0 } else { gap };
                if let Some(&m) = markers.get(p) {
                    MarkerHub::global().post(Marker::new(T0 + m * 1_000_000, "m"));
                }
                h.push(0, packet(&h, &s, p as u64, at, n, T0 + at as i64 * 4_000_000)).unwrap();
                fed.extend(at..at + n);
                at += n;
            }
            for &m in markers.iter().skip(packets.len()) {
                MarkerHub::global().post(Marker::new(T0 + m * 1_000_000, "m"));
            }
            let report = stages::recorder::report_for(&path).unwrap();
            h.finish().unwrap();
            let b = read_back(&path);
            let written = report.samples.load(Ordering::Relaxed);
            prop_assert_eq!(b.ch0.len() as u64, written);
            prop_assert_eq!(written + report.samples_unwritten.load(Ordering::Relaxed), fed.len() as u64);
            // Each record's samples are fed samples, at the record's onset.
            let spr = b.ch0.len() / b.onsets.len().max(1);
            for (r, &onset) in b.onsets.iter().enumerate() {
                let first = ((b.start + onset) / 4_000_000) as usize;
                for k in 0..spr {
                    prop_assert!(fed.contains(&(first + k)), "record {} sample {} was never fed", r, k);
                    let want = f64::from(value(0, first + k) / 100.0);
                    prop_assert!((b.ch0[r * spr + k] - want).abs() < 0.1, "record {} sample {}: {} vs {} onsets {:?}", r, k, b.ch0[r * spr + k], want, b.onsets);
                }
            }
            let placed = report.markers.load(Ordering::Relaxed);
            let dropped = report.markers_dropped.load(Ordering::Relaxed);
            prop_assert_eq!(placed + dropped, markers.len() as u64, "every marker placed or counted");
            let in_file = b.anns.iter().filter(|a| a.text == "m").count() as u64;
            prop_assert_eq!(in_file, placed);
        }
    }
}

#[test]
fn source_labels_reach_the_stream_and_every_file() {
    stages::link();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let src = format!(
        "stages:
  - emulator: {{ channels: 3, rate: 250, batch: 10, realtime: false, samples: 500, labels: [Cz, Pz, Oz] }}
  - to_voltage: {{}}
  - bdf_sink: {{ path: {d}/l.bdf }}
  - edf_sink: {{ path: {d}/l.edf, inputs: [to_voltage] }}
  - csv_sink: {{ path: {d}/l.csv, inputs: [to_voltage] }}
"
    );
    let p = Pipeline::start(plan("l.yaml", &src).unwrap()).unwrap();
    let tv = p.shared().stage("to_voltage").unwrap();
    let labels = &tv.output.as_ref().unwrap().meta.labels;
    assert_eq!(labels, &["Cz", "Pz", "Oz"]);
    assert!(p.shared().wait_finished(Some(Duration::from_secs(30))));
    p.join();
    for ext in ["bdf", "edf"] {
        let r = Reader::open(File::open(dir.path().join(format!("l.{ext}"))).unwrap()).unwrap();
        let h = r.header();
        let got: Vec<&str> = h.data_signals().iter().map(|&k| h.signals[k].label.as_str()).collect();
        assert_eq!(got, ["Cz", "Pz", "Oz"], "{ext}");
    }
    let rows = CsvReader::new(BufReader::new(File::open(dir.path().join("l.csv")).unwrap())).unwrap();
    assert_eq!(rows.labels(), ["Cz", "Pz", "Oz"]);
    let err =
        plan("l.yaml", "stages:\n  - emulator: { channels: 2, labels: [Cz] }\n").err().unwrap().to_string();
    assert!(err.contains("1 labels for 2 channels"), "{err}");
}
