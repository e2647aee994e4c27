//! The EDF/BDF reader against hostile files: whatever the header claims and whatever the data
//! holds, `Reader::open` and `read_record` return an error or records, never panic, never
//! allocate more than the file could hold.
//!
//! Property tests (proptest): random bytes, and headers built field by field from random
//! values (signal counts, samples per record, sizes, dates, durations, annotation text) over
//! random data. A few hundred cases each, so the test command stays fast.
use formats::edf::{Reader, Record};
use proptest::prelude::*;
use std::io::Cursor;

/// Reads every record of `bytes`; the error, if any, is the answer, a panic the failure.
fn read_all(bytes: &[u8]) {
    let Ok(mut r) = Reader::open(Cursor::new(bytes)) else { return };
    let mut rec = Record::default();
    let mut n = 0u64;
    while let Ok(true) = r.read_record(&mut rec) {
        n += 1;
        assert!(n <= r.header().records);
    }
}

/// `s` cut or padded with spaces to `width` bytes, as a header field.
fn field(s: &str, width: usize) -> Vec<u8> {
    let mut b: Vec<u8> = s.bytes().take(width).collect();
    b.resize(width, b' ');
    b
}

#[derive(Debug, Clone)]
struct Spec {
    bdf: bool,
    date: String,
    time: String,
    recording: String,
    header_bytes: Option<String>,
    records: String,
    duration: String,
    signals: Vec<Signal>,
    data: Vec<u8>,
}

/// A signal's label, physical min/max, digital min/max and samples per record, as written.
type Signal = (String, String, String, String, String, String);

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..100_000_000).prop_map(|n| n.to_string()),
        (-100_000_000i64..0).prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        Just("-1".to_string()),
        Just("0".to_string()),
        Just("nan".to_string()),
        Just("inf".to_string()),
        "[ -~]{0,8}",
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    let signal = (
        prop_oneof![Just("EDF Annotations".to_string()), Just("BDF Annotations".to_string()), "[ -~]{0,16}"],
        number(),
        number(),
        number(),
        number(),
        prop_oneof![(0u32..64).prop_map(|n| n.to_string()), number()],
    );
    (
        any::<bool>(),
        prop_oneof![Just("01.02.24".to_string()), "[0-9.]{0,8}"],
        prop_oneof![Just("10.20.30".to_string()), "[0-9.]{0,8}"],
        prop_oneof![Just("Startdate 01-FEB-2024 X X X".to_string()), "[ -~]{0,80}"],
        proptest::option::of(number()),
        number(),
        number(),
        proptest::collection::vec(signal, 1..5),
        proptest::collection::vec(any::<u8>(), 0..2048),
    )
        .prop_map(|(bdf, date, time, recording, header_bytes, records, duration, signals, data)| Spec {
            bdf,
            date,
            time,
            recording,
            header_bytes,
            records,
            duration,
            signals,
            data,
        })
}

fn file(s: &Spec) -> Vec<u8> {
    let ns = s.signals.len();
    let mut b = Vec::new();
    if s.bdf {
        b.push(0xFF);
        b.extend_from_slice(b"BIOSEMI");
    } else {
        b.extend(field("0", 8));
    }
    b.extend(field("X X X X", 80));
    b.extend(field(&s.recording, 80));
    b.extend(field(&s.date, 8));
    b.extend(field(&s.time, 8));
    let hb = s.header_bytes.clone().unwrap_or_else(|| (256 * (ns + 1)).to_string());
    b.extend(field(&hb, 8));
    b.extend(field("EDF+C", 44));
    b.extend(field(&s.records, 8));
    b.extend(field(&s.duration, 8));
    b.extend(field(&ns.to_string(), 4));
    type Column = (usize, Box<dyn Fn(&Signal) -> String>);
    let cols: [Column; 10] = [
        (16, Box::new(|x| x.0.clone())),
        (80, Box::new(|_| String::new())),
        (8, Box::new(|_| "uV".into())),
        (8, Box::new(|x| x.1.clone())),
        (8, Box::new(|x| x.2.clone())),
        (8, Box::new(|x| x.3.clone())),
        (8, Box::new(|x| x.4.clone())),
        (80, Box::new(|_| String::new())),
        (8, Box::new(|x| x.5.clone())),
        (32, Box::new(|_| String::new())),
    ];
    for (width, get) in &cols {
        for sig in &s.signals {
            b.extend(field(&get(sig), *width));
        }
    }
    b.extend_from_slice(&s.data);
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        read_all(&bytes);
    }

    #[test]
    fn random_headers_never_panic(s in spec()) {
        read_all(&file(&s));
    }

}

proptest! {
    // Fewer cases: each reads whole records of annotations.
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn annotation_records_never_panic(
        spr in 1usize..40,
        records in 1usize..4,
        tal in proptest::collection::vec(prop_oneof![Just(0u8), Just(0x14), Just(0x15), Just(b'+'), Just(b'-'), Just(b'.'), 0x30u8..0x3a, any::<u8>()], 0..256),
    ) {
        let s = Spec {
            bdf: false,
            date: "01.02.24".into(),
            time: "10.20.30".into(),
            recording: "Startdate 01-FEB-2024 X X X".into(),
            header_bytes: None,
            records: records.to_string(),
            duration: "1".into(),
            signals: vec![
                ("EEG".into(), "-100".into(), "100".into(), "-32768".into(), "32767".into(), "4".into()),
                ("EDF Annotations".into(), "-1".into(), "1".into(), "-32768".into(), "32767".into(), spr.to_string()),
            ],
            data: {
                let per = (4 + spr) * 2;
                let mut d = Vec::new();
                for _ in 0..records {
                    let mut r = vec![0u8; 8];
                    let mut t = tal.clone();
                    t.resize(per - 8, 0);
                    r.extend(t);
                    d.extend(r);
                }
                d
            },
        };
        read_all(&file(&s));
    }
}

#[test]
fn a_header_claiming_huge_records_allocates_nothing_for_them() {
    // 9999 signals of 99,999,999 samples per record claim records of ~3 TB; the file has none.
    let s = Spec {
        bdf: true,
        date: "01.02.24".into(),
        time: "10.20.30".into(),
        recording: String::new(),
        header_bytes: None,
        records: "-1".into(),
        duration: "1".into(),
        signals: vec![
            (
                "A".into(),
                "-1".into(),
                "1".into(),
                "-8388608".into(),
                "8388607".into(),
                "99999999".into()
            );
            9999
        ],
        data: vec![0; 16],
    };
    read_all(&file(&s));
}
