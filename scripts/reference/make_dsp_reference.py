#!/usr/bin/env python3
"""Writes the scipy reference data that crates/dsp/tests/scipy_reference.rs checks against.

    python scripts/reference/make_dsp_reference.py        # rewrites crates/dsp/tests/data/*.json

Each file records the numpy and scipy versions that made it. The inputs are f32 values stored in
the files themselves, so both sides filter exactly the same numbers; scipy filters them in
float64 (`sosfilt` promotes to the coefficients' type), as eegd does.

- butter_<rate>.json: for 250, 1000 and 4000 samples/s, every filter type and orders 1-8:
  `butter(order, edges, btype, output='sos', fs=rate)` and `sosfilt(sos, x)` of a 512-sample
  f32 test signal (every 4th output sample stored, to keep the file small).
- notch.json: `iirnotch(k * hz, q, fs=rate)` for harmonics k, and the cascade's `sosfilt`.
- cheby2.json: `cheby2(order, rs, edges, btype, output='sos', fs=rate)`, among them the
  anti-aliasing low-pass of `downsample` (order 12, 70 dB, stop band at the new Nyquist).
- spectra.json: `welch(x, fs, window='hann', nperseg=n, noverlap=0, scaling='density')` of one
  segment of a sine on an offset, and of a mix of tones with known band powers.
"""
import json
import pathlib
import platform

import numpy as np
import scipy
from scipy import signal

OUT = pathlib.Path(__file__).resolve().parents[2] / "crates" / "dsp" / "tests" / "data"
N = 512
STRIDE = 4
RATES = [250.0, 1000.0, 4000.0]


def versions():
    return {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__}


def test_signal(rate, n=N, seed=1):
    """Tones across the band (as fractions of the rate), an offset and uniform noise, as f32."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    x = 7.5 + rng.uniform(-5.0, 5.0, n)
    for frac, amp in [(0.0007, 40.0), (0.004, 30.0), (0.02, 20.0), (0.05, 15.0), (0.2, 10.0), (0.41, 5.0)]:
        x += amp * np.sin(2 * np.pi * frac * rate * t + amp)
    return x.astype(np.float32)


def floats(a):
    return [float(v) for v in np.asarray(a, dtype=np.float64).ravel()]


def sos_list(sos):
    return [floats(row) for row in sos]


# Edges per rate, chosen for EEG use and to cover narrow and wide bands; none symmetric about
# rate / 4 (where scipy's section order depends on the last bit of numpy's tan).
BANDS = {
    250.0: {"lowpass": 40.0, "highpass": 1.0, "bandpass": [1.0, 40.0], "bandstop": [45.0, 55.0]},
    1000.0: {"lowpass": 100.0, "highpass": 0.5, "bandpass": [8.0, 13.0], "bandstop": [48.0, 52.0]},
    4000.0: {"lowpass": 300.0, "highpass": 0.1, "bandpass": [0.5, 45.0], "bandstop": [90.0, 110.0]},
}


def butter_file(rate):
    x = test_signal(rate)
    cases = []
    for btype, edges in BANDS[rate].items():
        for order in range(1, 9):
            sos = signal.butter(order, edges, btype, output="sos", fs=rate)
            y = signal.sosfilt(sos, x)
            cases.append({"btype": btype, "edges": edges if isinstance(edges, list) else [edges],
                          "order": order, "sos": sos_list(sos), "output": floats(y[::STRIDE])})
    return {"versions": versions(), "rate": rate, "stride": STRIDE, "input": floats(x), "cases": cases}


def notch_file():
    cases, inputs = [], {}
    for rate in RATES:
        x = test_signal(rate, seed=2)
        inputs[str(int(rate))] = floats(x)
        for hz, q, harmonics in [(50.0, 30.0, 1), (60.0, 30.0, 3), (50.0, 10.0, 2), (50.0, 35.0, 5)]:
            sections = [signal.iirnotch(k * hz, q, fs=rate) for k in range(1, harmonics + 1) if k * hz < rate / 2]
            sos = np.array([np.concatenate([b, a]) for b, a in sections])
            y = signal.sosfilt(sos, x)
            cases.append({"rate": rate, "hz": hz, "q": q, "harmonics": harmonics, "sos": sos_list(sos),
                          "output": floats(y[::STRIDE])})
    return {"versions": versions(), "stride": STRIDE, "inputs": inputs, "cases": cases}


def cheby2_file():
    cases = []
    for rate in RATES:
        for factor in [2, 4, 8, 16]:
            stop = rate / (2 * factor)
            sos = signal.cheby2(12, 70.0, stop, "lowpass", output="sos", fs=rate)
            cases.append({"rate": rate, "order": 12, "rs": 70.0, "btype": "lowpass", "edges": [stop],
                          "decimation_factor": factor, "sos": sos_list(sos)})
        for order, rs, btype, edges in [(4, 40.0, "highpass", [rate / 100]), (5, 60.0, "lowpass", [rate / 7]),
                                        (3, 50.0, "bandpass", [rate / 40, rate / 8]),
                                        (4, 60.0, "bandstop", [rate / 30, rate / 20])]:
            wn = edges[0] if len(edges) == 1 else edges
            sos = signal.cheby2(order, rs, wn, btype, output="sos", fs=rate)
            cases.append({"rate": rate, "order": order, "rs": rs, "btype": btype, "edges": edges,
                          "sos": sos_list(sos)})
    return {"versions": versions(), "cases": cases}


def spectra_file():
    fs, n = 250.0, 256
    t = np.arange(n) / fs
    df = fs / n
    # One sine 3 bins off a bin centre's neighbour, amplitude 4, on an offset of 100.
    sine = (100.0 + 4.0 * np.sin(2 * np.pi * 10.0 * t)).astype(np.float32)
    f, p = signal.welch(sine, fs=fs, window="hann", nperseg=n, noverlap=0, scaling="density")
    # Tones on bin centres, each with its main lobe inside one default band: band power A^2 / 2.
    bands = [("delta", 1.0, 4.0, 3, 6.0), ("theta", 4.0, 8.0, 6, 5.0), ("alpha", 8.0, 13.0, 11, 8.0),
             ("beta", 13.0, 30.0, 20, 3.0), ("gamma", 30.0, 45.0, 40, 1.5)]
    mix = np.zeros(n)
    for _, _, _, k, amp in bands:
        mix += amp * np.sin(2 * np.pi * k * df * t + k)
    mix = mix.astype(np.float32)
    fm, pm = signal.welch(mix, fs=fs, window="hann", nperseg=n, noverlap=0, scaling="density")
    powers = [float(np.sum(pm[(fm >= lo) & (fm < hi)]) * df) for _, lo, hi, _, _ in bands]
    return {
        "versions": versions(),
        "sine": {"fs": fs, "n": n, "input": floats(sine), "freqs": floats(f), "psd": floats(p),
                 "peak_bin": int(np.argmax(p))},
        "mix": {"fs": fs, "n": n, "input": floats(mix), "psd": floats(pm),
                "bands": [{"name": b[0], "low_hz": b[1], "high_hz": b[2], "amplitude": b[4],
                           "expected_power": b[4] ** 2 / 2, "scipy_power": pw} for b, pw in zip(bands, powers)]},
    }


def write(name, data):
    path = OUT / name
    path.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    print(f"{path.relative_to(OUT.parents[3])}: {path.stat().st_size // 1024} KiB")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for rate in RATES:
        write(f"butter_{int(rate)}.json", butter_file(rate))
    write("notch.json", notch_file())
    write("cheby2.json", cheby2_file())
    write("spectra.json", spectra_file())


if __name__ == "__main__":
    main()
