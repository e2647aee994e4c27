//! Files written by the writers read back through the reader: samples within one step of the
//! quantisation, annotations at their sample, the partial last record, and a writer that was
//! never finished (as after a kill).
use formats::edf::{record_samples_for, Format, Reader, Record, SignalSpec, Writer, WriterConfig};
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
        w.finish().unwrap();
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
    assert_eq!(h.records_in_header, 4);
    assert_eq!(h.records, 4);
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
    assert_eq!(onsets, [0, 1_000_000_000, 2_000_000_000, 3_000_000_000]);
    for (c, g) in got.iter().enumerate() {
        assert_eq!(g.len(), 1000, "whole records, the last one padded");
        for (i, v) in g.iter().enumerate().take(total) {
            let want = f64::from(value(c, i, 187_500.0));
            assert!((v - want).abs() <= lsb / 2.0 + 1e-9, "ch {c} sample {i}: {v} vs {want} (lsb {lsb})");
        }
        let last = g[total - 1];
        assert!(g[total..].iter().all(|&v| v == last), "padding repeats the last value");
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
    w.finish().unwrap();
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
