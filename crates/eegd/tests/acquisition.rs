//! The emulator end to end through the real binary: the ADS1299 driver reading a simulated
//! chip, `to_voltage`, `csv_sink`. Three seconds of a 100 µV, 10 Hz sine at 250, 4000 and
//! 16000 SPS: every sample once, timestamps on the n / rate grid, the amplitude and the
//! spectral peak where they belong.
use std::path::Path;
use std::process::Command;

const SECONDS: u32 = 3;

/// Runs the pipeline at `rate`; returns the timestamps (µs, as written) and channel values.
fn run(dir: &Path, rate: u32) -> (Vec<i64>, Vec<Vec<f64>>) {
    let csv = dir.join(format!("sine-{rate}.csv"));
    let yaml = format!(
        "stages:\n  - emulator: {{ channels: 8, rate: {rate}, gain: 24, signal: sine, sine_hz: 10, \
         amplitude_uv: 100, realtime: false, samples: {} }}\n  - to_voltage: {{}}\n  - csv_sink: {{ path: {} }}\n",
        SECONDS * rate,
        csv.display()
    );
    let file = dir.join(format!("sine-{rate}.yaml"));
    std::fs::write(&file, yaml).unwrap();
    // The duration is a backstop: the source ends after `samples`.
    let out = Command::new(env!("CARGO_BIN_EXE_eegd"))
        .arg("run")
        .arg(&file)
        .args(["--duration", "120"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("timestamp,Fp1,Fp2,C3,C4,P7,P8,O1,O2"));
    let (mut ts, mut ch) = (Vec::new(), vec![Vec::new(); 8]);
    for l in lines {
        let cols: Vec<&str> = l.split(',').collect();
        assert_eq!(cols.len(), 9, "{l}");
        let (s, us) = cols[0].split_once('.').unwrap();
        ts.push(s.parse::<i64>().unwrap() * 1_000_000 + us.parse::<i64>().unwrap());
        for (c, v) in ch.iter_mut().zip(&cols[1..]) {
            c.push(v.parse::<f64>().unwrap());
        }
    }
    (ts, ch)
}

/// Power of `x` at `hz` (Goertzel).
fn power_at(x: &[f64], hz: f64, rate: f64) -> f64 {
    let w = std::f64::consts::TAU * hz / rate;
    let (mut s1, mut s2) = (0.0, 0.0);
    for v in x {
        let s = v + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2
}

fn check(rate: u32) {
    let dir = tempfile::tempdir().unwrap();
    let (ts, ch) = run(dir.path(), rate);
    assert_eq!(ts.len(), (SECONDS * rate) as usize, "every sample once");
    for (k, t) in ts.iter().enumerate() {
        // Written with 6 decimals: within the last microsecond of first + k / rate, no drift.
        let nominal_ns = k as i64 * 1_000_000_000 / rate as i64;
        let err_ns = (t - ts[0]) * 1000 - nominal_ns;
        assert!(err_ns.abs() < 1000, "row {k}: {t} µs is {err_ns} ns off the grid");
        if 1_000_000 % rate == 0 && k > 0 {
            assert_eq!(t - ts[k - 1], (1_000_000 / rate) as i64, "row {k}");
        }
    }
    for (c, x) in ch.iter().enumerate() {
        let rms = (x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64).sqrt();
        let amplitude = rms * 2f64.sqrt();
        assert!((amplitude - 100.0).abs() <= 5.0, "channel {c}: {amplitude} µV");
        let peak = (1..=(rate / 2).min(500))
            .map(|f| (f, power_at(x, f as f64, rate as f64)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        assert_eq!(peak.0, 10, "channel {c}: the spectrum peaks at {} Hz", peak.0);
    }
}

#[test]
fn sine_at_250_sps() {
    check(250);
}

#[test]
fn sine_at_4000_sps() {
    check(4000);
}

#[test]
fn sine_at_16000_sps() {
    check(16000);
}
