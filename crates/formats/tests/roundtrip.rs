//! Files written by the writers read back through the reader: samples within one step of the
//! quantisation, annotations at their sample, a partial last record left out (never padded),
//! gaps at their true time, annotations that never lengthen a file, and a writer that was never
//! finished (as after a kill).
use formats::edf::{
    annotation_bytes_for, record_samples_for, Format, Reader, Record, SignalSpec, Unwritten, Writer,
    WriterConfig,
};
use std::fs::File;
use std::io::{BufWriter, Write};

const START_NS: i64 = 1_700_000_000_250_000_000; // a quarter second past a whole second

fn config(format: Format, rate: f64, channels: usize, range: f64) -> WriterConfig {
    WriterConfig {
        format,
        patient: "P01 X X X".into(),
        recording: "eegd test".into(),
        start_ns: START_NS,
        rate,
        record_samples: record_samples_for(rate, 1.0).unwrap(),
        signals: (0..channels)
            .map(|c| SignalSpec {
                label: format!("Ch{}", c + 1),
                unit: "uV".into(),
                physical_min: -range,
                physical_max: range,
                prefilter: String::new(),
                transducer: String::new(),
            })
            .collect(),
        annotation_bytes: formats::edf::ANNOTATION_BYTES,
        max_pending_annotations: 16,
    }
}

/// A test signal: a ramp over the whole range plus a per-channel offset.
fn value(c: usize, i: usize, range: f64) -> f32 {
    let x = ((i * 37 + c * 1001) % 2000) as f64 / 1000.0 - 1.0;
    (x * range * 0.999) as f32
}

fn physical(r: &Reader<File>, rec: &Record, k: usize) -> Vec<f64> {
    let s = &r.header().signals[r.header().data_signals()[k]];
    rec.digital[k].iter().map(|&d| f64::from(d) * s.gain() + s.offset()).collect()
}

fn write_file(
    format: Format,
    total: usize,
    batch: usize,
    finish: bool,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.bdf");
    let (rate, ch, range) = (250.0, 3, 187_500.0);
    let cfg = config(format, rate, ch, range);
    let mut w = Writer::create(BufWriter::new(File::create(&path).unwrap()), &cfg).unwrap();
    let mut buf = vec![0f32; ch * batch];
    let mut i = 0;
    while i < total {
        let n = batch.min(total - i);
        for c in 0..ch {
            for k in 0..n {
                buf[c * n + k] = value(c, i + k, range);
            }
        }
        w.write_planar(&buf[..ch * n], n).unwrap();
        if i <= 300 && 300 < i + n {
            let at = w.sample_onset_ns(300);
            w.annotate(at, None, "stimulus \"A\"").unwrap();
            w.annotate(w.sample_onset_ns(301), Some(500_000_000), "long one").unwrap();
        }
        i += n;
    }
    if finish {
        let (_, unwritten) = w.finish().unwrap();
        assert_eq!(unwritten.samples, (total % 250) as u64, "the partial last record is left out");
    } else {
        w.flush().unwrap();
        drop(w); // as if killed: no finish, the header still says -1
    }
    (dir, path)
}

fn check_round_trip(format: Format) {
    let total = 250 * 3 + 100; // three whole records and a partial one
    let (_d, path) = write_file(format, total, 16, true);
    let mut r = Reader::open(File::open(&path).unwrap()).unwrap();
    let h = r.header().clone();
    assert_eq!(h.format, format);
    assert_eq!(h.records_in_header, 3);
    assert_eq!(h.records, 3);
    assert_eq!(h.record_duration_s, 1.0);
    assert_eq!(h.start_ns(), START_NS);
    assert_eq!(h.patient, "P01 X X X");
    let labels: Vec<&str> = h.data_signals().iter().map(|&k| h.signals[k].label.as_str()).collect();
    assert_eq!(labels, ["Ch1", "Ch2", "Ch3"]);
    assert!(h.signals.iter().all(|s| s.is_annotations() || s.unit == "uV"));
    let lsb = h.signals[0].gain();
    let mut rec = Record::default();
    let mut got: Vec<Vec<f64>> = vec![Vec::new(); 3];
    let mut anns = Vec::new();
    let mut onsets = Vec::new();
    while r.read_record(&mut rec).unwrap() {
        onsets.push(rec.onset_ns);
        for (k, g) in got.iter_mut().enumerate() {
            g.extend(physical(&r, &rec, k));
        }
        anns.extend(rec.annotations.iter().cloned());
    }
    assert_eq!(onsets, [0, 1_000_000_000, 2_000_000_000]);
    for (c, g) in got.iter().enumerate() {
        assert_eq!(g.len(), 750, "whole records only: nothing padded");
        for (i, v) in g.iter().enumerate() {
            let want = f64::from(value(c, i, 187_500.0));
            assert!((v - want).abs() <= lsb / 2.0 + 1e-9, "ch {c} sample {i}: {v} vs {want} (lsb {lsb})");
        }
    }
    assert_eq!(anns.len(), 2);
    assert_eq!(anns[0].text, "stimulus \"A\"");
    assert_eq!(anns[0].onset_ns, 300 * 4_000_000, "at sample 300");
    assert_eq!(anns[0].duration_ns, None);
    assert_eq!((anns[1].onset_ns, anns[1].duration_ns), (301 * 4_000_000, Some(500_000_000)));
}

#[test]
fn bdf_round_trips_samples_and_annotations() {
    check_round_trip(Format::Bdf);
}

#[test]
fn edf_round_trips_samples_and_annotations() {
    check_round_trip(Format::Edf);
}

#[test]
fn bdf_step_is_the_adc_step() {
    // ±vref/gain at 24 bits: one file step is (almost exactly) one ADC count.
    let (_d, path) = write_file(Format::Bdf, 10, 10, true);
    let r = Reader::open(File::open(&path).unwrap()).unwrap();
    let adc_lsb = 2.0 * 4.5 / 24.0 / f64::from(1u32 << 24) * 1e6;
    let step = r.header().signals[0].gain();
    assert!((step - adc_lsb).abs() / adc_lsb < 1e-6, "{step} vs {adc_lsb}");
}

#[test]
fn an_unfinished_file_keeps_every_complete_record() {
    for format in [Format::Bdf, Format::Edf] {
        let (_d, path) = write_file(format, 250 * 2 + 120, 25, false);
        let mut r = Reader::open(File::open(&path).unwrap()).unwrap();
        assert_eq!(r.header().records_in_header, -1, "the count is only written on finish");
        assert_eq!(r.header().records, 2, "the two complete records, not the partial one");
        let mut rec = Record::default();
        let mut n = 0;
        while r.read_record(&mut rec).unwrap() {
            n += rec.digital[0].len();
        }
        assert_eq!(n, 500);
    }
}

#[test]
fn a_torn_record_at_the_end_is_ignored() {
    let (_d, path) = write_file(Format::Bdf, 250 * 2, 25, false);
    let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&[1, 2, 3, 4, 5]).unwrap();
    let r = Reader::open(File::open(&path).unwrap()).unwrap();
    assert_eq!(r.header().records, 2);
}

#[test]
fn values_beyond_the_range_clip_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.edf");
    let cfg = config(Format::Edf, 100.0, 1, 100.0);
    let mut w = Writer::create(BufWriter::new(File::create(&path).unwrap()), &cfg).unwrap();
    w.write_planar(&[0.0f32, 150.0, -150.0, 99.0], 4).unwrap();
    assert_eq!(w.clipped(), 2);
    // A railed channel sits exactly at full scale: the file cannot tell it from a clipped value.
    w.write_planar(&[100.0f32, -100.0, 100.0, 0.0], 4).unwrap();
    assert_eq!(w.clipped(), 5);
    w.finish().unwrap();
}

/// A file of 1-s records at 250 Hz, 1 channel, fed `samples` as they come.
fn writer(dir: &std::path::Path, name: &str, markers_per_s: f64) -> Writer<BufWriter<File>> {
    let mut cfg = config(Format::Bdf, 250.0, 1, 1000.0);
    cfg.annotation_bytes = annotation_bytes_for(1.0, markers_per_s);
    cfg.max_pending_annotations = 256;
    Writer::create(BufWriter::new(File::create(dir.join(name)).unwrap()), &cfg).unwrap()
}

fn read_all(path: &std::path::Path) -> (formats::edf::Header, Vec<i64>, usize, Vec<formats::Annotation>) {
    let mut r = Reader::open(File::open(path).unwrap()).unwrap();
    let (mut rec, mut onsets, mut n, mut anns) = (Record::default(), Vec::new(), 0, Vec::new());
    while r.read_record(&mut rec).unwrap() {
        onsets.push(rec.onset_ns);
        n += rec.digital[0].len();
        anns.extend(rec.annotations.iter().cloned());
    }
    (r.header().clone(), onsets, n, anns)
}

#[test]
fn thirty_markers_a_second_never_lengthen_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = writer(dir.path(), "m.bdf", 64.0);
    let data = [0.5f32; 25];
    for p in 0..60 {
        // 10 packets a second, 3 markers each: 30 a second for 6 s.
        for k in 0..3 {
            let at = w.sample_onset_ns(p * 25 + k * 8);
            w.annotate(at, None, &format!("stim {p}.{k}")).unwrap();
        }
        w.write_planar(&data, 25).unwrap();
    }
    let (_, unwritten) = w.finish().unwrap();
    assert_eq!(unwritten, Unwritten::default());
    let (h, onsets, n, anns) = read_all(&dir.path().join("m.bdf"));
    assert_eq!((h.records, n), (6, 1500), "six seconds of samples, six records");
    assert_eq!(onsets, (0..6).map(|s| s * 1_000_000_000).collect::<Vec<_>>());
    assert_eq!(anns.len(), 180, "every marker in the file");
    assert_eq!(anns[179].text, "stim 59.2");
}

#[test]
fn annotations_beyond_the_room_wait_then_are_counted_never_padded() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = writer(dir.path(), "full.bdf", 1.0);
    let data = [0.5f32; 250];
    for i in 0..40 {
        w.annotate(w.sample_onset_ns(i), None, "x").unwrap();
    }
    w.write_planar(&data, 250).unwrap();
    w.write_planar(&data, 250).unwrap();
    let left = w.annotations_pending() as u64;
    assert!(left > 0, "more than two records hold");
    let (_, unwritten) = w.finish().unwrap();
    assert_eq!(unwritten.annotations, left);
    let (h, _, n, anns) = read_all(&dir.path().join("full.bdf"));
    assert_eq!((h.records, n), (2, 500), "no record of annotations only");
    assert_eq!(anns.len() as u64 + left, 40, "each written or counted");
}

#[test]
fn a_gap_keeps_time_true_and_is_annotated() {
    for format in [Format::Bdf, Format::Edf] {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(format, 250.0, 1, 1000.0);
        cfg.record_samples = 25;
        let path = dir.path().join("g.bdf");
        let mut w = Writer::create(BufWriter::new(File::create(&path).unwrap()), &cfg).unwrap();
        let data: Vec<f32> = (0..50).map(|i| i as f32).collect();
        w.write_planar(&data, 50).unwrap();
        assert_eq!(w.next_onset_ns(), 200_000_000);
        // 30 samples (120 ms) never arrived.
        assert_eq!(w.resume_at(320_000_000).unwrap(), 0, "the gap fell between records");
        w.write_planar(&data, 50).unwrap();
        assert_eq!(w.nearest_sample_ns(329_000_000), 328_000_000, "on the new stretch's grid");
        let (_, unwritten) = w.finish().unwrap();
        assert_eq!(unwritten, Unwritten::default());
        let (h, onsets, n, anns) = read_all(&path);
        assert_eq!(n, 100);
        assert_eq!(onsets, [0, 100_000_000, 320_000_000, 420_000_000]);
        let reserved = std::fs::read(&path).unwrap()[192..197].to_vec();
        assert_eq!(&reserved[3..], b"+D", "{:?}", h.format);
        assert_eq!(anns.len(), 1);
        assert_eq!(anns[0].text, "gap: 30 samples not acquired");
        assert_eq!((anns[0].onset_ns, anns[0].duration_ns), (200_000_000, Some(120_000_000)));
    }
}

#[test]
fn a_gap_inside_a_record_leaves_the_cut_record_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(Format::Bdf, 250.0, 1, 1000.0);
    cfg.record_samples = 25;
    let path = dir.path().join("cut.bdf");
    let mut w = Writer::create(BufWriter::new(File::create(&path).unwrap()), &cfg).unwrap();
    let data = [1.0f32; 40];
    w.write_planar(&data, 40).unwrap();
    assert_eq!(w.resume_at(400_000_000).unwrap(), 15, "the record the gap cut short");
    assert!(w.resume_at(0).is_err(), "time never runs back");
    w.write_planar(&data, 25).unwrap();
    let (_, unwritten) = w.finish().unwrap();
    assert_eq!(unwritten.samples, 15);
    let (_, onsets, n, _) = read_all(&path);
    assert_eq!((n, onsets), (50, vec![0, 400_000_000]));
}

#[test]
fn a_contiguous_file_is_plus_c_once_finished() {
    let (_d, path) = write_file(Format::Edf, 500, 25, true);
    assert_eq!(&std::fs::read(&path).unwrap()[192..197], b"EDF+C");
    let (_d, path) = write_file(Format::Bdf, 500, 25, false);
    assert_eq!(&std::fs::read(&path).unwrap()[192..197], b"BDF+D", "unknown until finished");
}

#[test]
fn writing_samples_allocates_no_record_buffers() {
    // The writer's buffers are sized at creation: their capacity never changes while writing.
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(Format::Bdf, 250.0, 2, 1000.0);
    let file = BufWriter::new(File::create(dir.path().join("a.bdf")).unwrap());
    let mut w = Writer::create(file, &cfg).unwrap();
    let data = vec![1.0f32; 2 * 10];
    let before = w.resolution().as_ptr();
    for _ in 0..100 {
        w.write_planar(&data, 10).unwrap();
    }
    assert_eq!(w.records(), 4);
    assert_eq!(w.samples(), 1000);
    assert_eq!(before, w.resolution().as_ptr());
}
