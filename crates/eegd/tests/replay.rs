//! `file_source` end to end: a CSV written by `csv_sink`, replayed and written again, is the
//! same file — at every ADS1299 rate, across a gap in the timestamps, and for raw counts.
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// A CSV as `csv_sink` writes it: sample `k` at `origin + round(k × 1e9 / rate)` ns, printed
/// truncated to µs; values printed as `f32` (or integers for counts).
fn recording(origin_ns: i64, rate: f64, rows: usize, gap_at: Option<usize>, counts: bool) -> String {
    let mut s = String::from("timestamp,Fp1,Fp2,O1\n");
    for k in 0..rows {
        let mut t = origin_ns + (k as f64 * 1e9 / rate).round() as i64;
        if gap_at.is_some_and(|g| k >= g) {
            t += 1_234_567_891; // a jump of the clock: the file says so, the replay keeps it
        }
        let us = t.div_euclid(1000);
        write!(s, "{}.{:06}", us.div_euclid(1_000_000), us.rem_euclid(1_000_000)).unwrap();
        for c in 0..3 {
            let x = ((k * 7 + c * 13) % 101) as f32 - 50.0;
            if counts {
                write!(s, ",{}", (x as i32) * 1000 - 8_388_000 * (c as i32 % 2)).unwrap();
            } else {
                write!(s, ",{}", x * 0.37).unwrap();
            }
        }
        s.push('\n');
    }
    s
}

/// Runs `file_source` (unpaced) → `csv_sink` on `input`; returns the written file.
fn replay(dir: &Path, input: &Path, extra: &str) -> String {
    let out = dir.join("out.csv");
    let yaml = format!(
        "stages:\n  - file_source: {{ path: {}, realtime: false, batch: 37{extra} }}\n  - csv_sink: {{ path: {} }}\n",
        input.display(),
        out.display()
    );
    let pipeline = dir.join("replay.yaml");
    std::fs::write(&pipeline, yaml).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_eegd")).arg("run").arg(&pipeline).output().unwrap();
    assert!(o.status.success(), "eegd run failed: {}", String::from_utf8_lossy(&o.stderr));
    std::fs::read_to_string(out).unwrap()
}

fn assert_same(a: &str, b: &str) {
    if a != b {
        let (la, lb): (Vec<_>, Vec<_>) = (a.lines().collect(), b.lines().collect());
        let first = la.iter().zip(&lb).position(|(x, y)| x != y);
        panic!(
            "files differ ({} vs {} lines); first differing line {:?}: {:?} vs {:?}",
            la.len(),
            lb.len(),
            first,
            first.map(|i| la[i]),
            first.map(|i| lb[i])
        );
    }
}

#[test]
fn replayed_csv_is_written_again_identically_at_every_rate() {
    let dir = tempfile::tempdir().unwrap();
    for rate in [250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0] {
        let original = recording(1_700_000_000_123_456_789, rate, 3000, None, false);
        let input = dir.path().join("in.csv");
        std::fs::write(&input, &original).unwrap();
        let once = replay(dir.path(), &input, "");
        assert_same(&original, &once);
        // And again from the copy.
        std::fs::write(&input, &once).unwrap();
        assert_same(&original, &replay(dir.path(), &input, ""));
    }
}

#[test]
fn a_gap_in_the_timestamps_survives_the_replay() {
    let dir = tempfile::tempdir().unwrap();
    let original = recording(1_700_000_000_000_000_321, 16000.0, 2000, Some(1234), false);
    let input = dir.path().join("in.csv");
    std::fs::write(&input, &original).unwrap();
    assert_same(&original, &replay(dir.path(), &input, ""));
}

#[test]
fn raw_counts_replay_as_counts() {
    let dir = tempfile::tempdir().unwrap();
    let original = recording(1_600_000_000_000_000_000, 1000.0, 500, None, true);
    let input = dir.path().join("in.csv");
    std::fs::write(&input, &original).unwrap();
    assert_same(&original, &replay(dir.path(), &input, ", units: counts"));
}

#[test]
fn looping_runs_the_clock_on() {
    let dir = tempfile::tempdir().unwrap();
    let original = recording(1_700_000_000_000_000_000, 250.0, 100, None, false);
    let input = dir.path().join("in.csv");
    std::fs::write(&input, &original).unwrap();
    let out = dir.path().join("out.csv");
    let yaml = format!(
        "stages:\n  - file_source: {{ path: {}, realtime: false, loop: true, batch: 10 }}\n  - csv_sink: {{ path: {} }}\n",
        input.display(),
        out.display()
    );
    let pipeline = dir.path().join("loop.yaml");
    std::fs::write(&pipeline, yaml).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_eegd"))
        .args(["run", "--duration", "0.5"])
        .arg(&pipeline)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(out).unwrap();
    let ts: Vec<f64> = text.lines().skip(1).map(|l| l.split(',').next().unwrap().parse().unwrap()).collect();
    assert!(ts.len() > 300, "only {} rows in 0.5 s of unpaced looping", ts.len());
    for w in ts.windows(2) {
        assert!((w[1] - w[0] - 0.004).abs() < 2e-6, "step {} → {}", w[0], w[1]);
    }
    // The values repeat with the file.
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows[0].split_once(',').unwrap().1, rows[100].split_once(',').unwrap().1);
}

#[test]
fn a_spectrum_file_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("spec.csv");
    std::fs::write(&input, "timestamp,channel,0,1\n1.000000,Fp1,3,4\n").unwrap();
    let pipeline = dir.path().join("p.yaml");
    std::fs::write(
        &pipeline,
        format!("stages:\n  - file_source: {{ path: {} }}\n  - null_sink: {{}}\n", input.display()),
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_eegd")).arg("validate").arg(&pipeline).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("p.yaml:2:") && err.contains("only time series can be replayed"), "{err}");
}
