//! The library against scipy: coefficients to 1e-9, filter outputs on f32 data to a relative
//! RMS error below 1e-4, and Welch spectra to 1e-4. The data is made by
//! `scripts/reference/make_dsp_reference.py` (numpy and scipy versions recorded in each file).
use dsp::{butter, cheby2, iirnotch, BandKind, Psd, Sos, SosBank};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array().expect("an array").iter().map(|x| x.as_f64().expect("a number")).collect()
}

/// The stored inputs are f32 values written as f64: exact.
fn f32s(v: &Value) -> Vec<f32> {
    f64s(v).into_iter().map(|x| x as f32).collect()
}

fn sos_of(v: &Value) -> Vec<Sos> {
    v.as_array()
        .expect("sections")
        .iter()
        .map(|row| f64s(row).try_into().expect("six coefficients"))
        .collect()
}

fn band(btype: &str, edges: &[f64]) -> BandKind {
    match (btype, edges) {
        ("lowpass", [f]) => BandKind::Lowpass(*f),
        ("highpass", [f]) => BandKind::Highpass(*f),
        ("bandpass", [lo, hi]) => BandKind::Bandpass(*lo, *hi),
        ("bandstop", [lo, hi]) => BandKind::Bandstop(*lo, *hi),
        other => panic!("unknown band {other:?}"),
    }
}

/// Every coefficient within 1e-9 (absolute, or relative for coefficients above 1).
fn assert_sos_equal(got: &[Sos], want: &[Sos], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: section count");
    for (g, w) in got.iter().zip(want) {
        for (a, b) in g.iter().zip(w) {
            assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{what}:\n got {got:?}\nwant {want:?}");
        }
    }
}

/// `sqrt(mean((got - want)²)) / sqrt(mean(want²))` over every `stride`-th sample of `got`.
fn relative_rms(got: &[f32], want: &[f64], stride: usize) -> f64 {
    let (mut err, mut power) = (0.0, 0.0);
    for (g, w) in got.iter().step_by(stride).zip(want) {
        err += (f64::from(*g) - w).powi(2);
        power += w * w;
    }
    assert_eq!(got.len().div_ceil(stride), want.len());
    (err / power).sqrt()
}

/// Filters `x` (one channel) through `sos` in uneven blocks, as a stage would.
fn filter(sos: &[Sos], x: &[f32]) -> Vec<f32> {
    let mut bank = SosBank::new(sos, 1);
    let mut y = x.to_vec();
    let mut at = 0;
    for block in [16, 1, 47, 200].iter().cycle() {
        let n = (*block).min(y.len() - at);
        if n == 0 {
            break;
        }
        bank.process(&mut y[at..at + n], 1, n);
        at += n;
    }
    y
}

#[test]
fn butterworth_coefficients_and_outputs_equal_scipy_for_every_type_order_and_rate() {
    let mut checked = 0;
    for rate in [250, 1000, 4000] {
        let data = load(&format!("butter_{rate}.json"));
        let fs = data["rate"].as_f64().unwrap();
        let stride = data["stride"].as_u64().unwrap() as usize;
        let x = f32s(&data["input"]);
        for case in data["cases"].as_array().unwrap() {
            let btype = case["btype"].as_str().unwrap();
            let order = case["order"].as_u64().unwrap() as usize;
            let kind = band(btype, &f64s(&case["edges"]));
            let what = format!("{btype} order {order} at {fs} S/s");
            let sos = butter(order, kind, fs).unwrap();
            assert_sos_equal(&sos, &sos_of(&case["sos"]), &what);
            let err = relative_rms(&filter(&sos, &x), &f64s(&case["output"]), stride);
            assert!(err < 1e-4, "{what}: relative RMS error {err:e}");
            checked += 1;
        }
    }
    assert_eq!(checked, 3 * 4 * 8, "every type, orders 1-8, three rates");
}

#[test]
fn notch_coefficients_and_outputs_equal_scipy() {
    let data = load("notch.json");
    let stride = data["stride"].as_u64().unwrap() as usize;
    for case in data["cases"].as_array().unwrap() {
        let fs = case["rate"].as_f64().unwrap();
        let (hz, q) = (case["hz"].as_f64().unwrap(), case["q"].as_f64().unwrap());
        let harmonics = case["harmonics"].as_u64().unwrap() as usize;
        let sos: Vec<Sos> = (1..=harmonics)
            .map(|k| k as f64 * hz)
            .filter(|&f| f < fs / 2.0)
            .map(|f| iirnotch(f, q, fs).unwrap())
            .collect();
        let what = format!("notch {hz} Hz q {q} × {harmonics} at {fs} S/s");
        assert_sos_equal(&sos, &sos_of(&case["sos"]), &what);
        let x = f32s(&data["inputs"][(fs as u64).to_string()]);
        let err = relative_rms(&filter(&sos, &x), &f64s(&case["output"]), stride);
        assert!(err < 1e-4, "{what}: relative RMS error {err:e}");
    }
}

#[test]
fn chebyshev_ii_coefficients_equal_scipy_including_the_anti_aliasing_filter() {
    let data = load("cheby2.json");
    let mut anti_alias = 0;
    for case in data["cases"].as_array().unwrap() {
        let fs = case["rate"].as_f64().unwrap();
        let order = case["order"].as_u64().unwrap() as usize;
        let rs = case["rs"].as_f64().unwrap();
        let kind = band(case["btype"].as_str().unwrap(), &f64s(&case["edges"]));
        let what = format!("cheby2 {order} {rs} dB {kind:?} at {fs} S/s");
        assert_sos_equal(&cheby2(order, rs, kind, fs).unwrap(), &sos_of(&case["sos"]), &what);
        if let Some(factor) = case["decimation_factor"].as_u64() {
            let design = dsp::Decimator::design(factor as usize, fs).unwrap();
            assert_sos_equal(&design, &sos_of(&case["sos"]), &format!("decimator by {factor}: {what}"));
            anti_alias += 1;
        }
    }
    assert_eq!(anti_alias, 12);
}

#[test]
fn psd_of_a_sine_equals_welch_with_its_peak_in_the_right_bin() {
    let data = load("spectra.json");
    let sine = &data["sine"];
    let (fs, n) = (sine["fs"].as_f64().unwrap(), sine["n"].as_u64().unwrap() as usize);
    let want = f64s(&sine["psd"]);
    let mut psd = Psd::new(n, fs).unwrap();
    let mut got = vec![0.0f32; psd.bins()];
    psd.compute(&f32s(&sine["input"]), &mut got);
    assert_eq!(psd.frequencies(), f64s(&sine["freqs"]));
    let peak = (0..got.len()).max_by(|&a, &b| got[a].total_cmp(&got[b])).unwrap();
    assert_eq!(peak as u64, sine["peak_bin"].as_u64().unwrap());
    let rel = (f64::from(got[peak]) - want[peak]).abs() / want[peak];
    assert!(rel < 1e-4, "peak power {} vs welch {}", got[peak], want[peak]);
    // Every bin with power of note agrees too, and the total power.
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        if *w > 1e-6 * want[peak] {
            assert!((f64::from(*g) - w).abs() < 1e-4 * w, "bin {k}: {g} vs {w}");
        }
    }
    let total = |v: &mut dyn Iterator<Item = f64>| v.sum::<f64>();
    let (tg, tw) = (total(&mut got.iter().map(|&v| f64::from(v))), total(&mut want.iter().copied()));
    assert!((tg - tw).abs() < 1e-4 * tw);
}
