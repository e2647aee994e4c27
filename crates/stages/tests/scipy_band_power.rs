//! `fft` → `band_power` on a mix of tones with known band powers equals scipy's `welch` summed
//! over each band (1e-4) and the tones' powers `A²/2` (1e-3). Data:
//! `scripts/reference/make_dsp_reference.py` (crates/dsp/tests/data/spectra.json).
use pipeline::testing::{voltage_header, voltage_stream, Harness};
use serde_json::{json, Value};

#[test]
fn band_powers_of_a_known_mix_equal_welch_and_the_tones_powers() {
    stages::link();
    let path = format!("{}/../dsp/tests/data/spectra.json", env!("CARGO_MANIFEST_DIR"));
    let data: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mix = &data["mix"];
    let (fs, n) = (mix["fs"].as_f64().unwrap(), mix["n"].as_u64().unwrap() as usize);
    let x: Vec<f32> = mix["input"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();

    let input = voltage_stream(1, fs, n);
    let mut fft = Harness::new("fft", json!({"size": n, "hop": n}), &[input], 4).unwrap();
    let spectrum_info = fft.output.clone().unwrap();
    let mut bands = Harness::new("band_power", json!({}), &[spectrum_info], 4).unwrap();
    let spectra = fft.push(0, fft.packet_f32(voltage_header(1, n, fs), &x)).unwrap();
    assert_eq!(spectra.len(), 1);
    let spectrum = bands.packet_f32(spectra[0].header().clone(), spectra[0].f32s());
    let out = bands.push(0, spectrum).unwrap();
    let got = out[0].f32s();

    let want = mix["bands"].as_array().unwrap();
    assert_eq!(bands.output.as_ref().unwrap().meta.bands.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        let name = w["name"].as_str().unwrap();
        assert_eq!(bands.output.as_ref().unwrap().meta.bands.iter().filter(|b| *b == name).count(), 1);
        let scipy = w["scipy_power"].as_f64().unwrap();
        let expected = w["expected_power"].as_f64().unwrap();
        let g = f64::from(*g);
        assert!((g - scipy).abs() < 1e-4 * scipy, "{name}: {g} vs welch {scipy}");
        assert!((g - expected).abs() < 1e-3 * expected, "{name}: {g} vs A²/2 = {expected}");
    }
}
