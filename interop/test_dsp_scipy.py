"""Filters through the real pipeline equal scipy: a CSV recording replayed by `file_source`
through each filter stage into `csv_sink`, compared with `scipy.signal.sosfilt` of the same f32
values (issue 4's acceptance: every filter type, orders 1-8, at 250, 1000 and 4000 samples/s,
relative RMS error below 1e-4)."""
import numpy as np
import pytest
from scipy import signal

N = 3000
ORDERS = [1, 2, 3, 4, 5, 6, 7, 8]
T0_S = 1_700_000_000.0
# Edges per rate, as in scripts/reference/make_dsp_reference.py.
BANDS = {
    250: {"lowpass": [40.0], "highpass": [1.0], "bandpass": [1.0, 40.0], "bandstop": [45.0, 55.0]},
    1000: {"lowpass": [100.0], "highpass": [0.5], "bandpass": [8.0, 13.0], "bandstop": [48.0, 52.0]},
    4000: {"lowpass": [300.0], "highpass": [0.1], "bandpass": [0.5, 45.0], "bandstop": [90.0, 110.0]},
}


def make_input(rate: int) -> np.ndarray:
    """Two channels of f32 microvolts: tones across the band, an offset and noise."""
    rng = np.random.default_rng(rate)
    t = np.arange(N) / rate
    chans = []
    for ch in range(2):
        x = 10.0 * ch - 3.0 + rng.uniform(-5.0, 5.0, N)
        for frac, amp in [(0.0007, 40.0), (0.004, 30.0), (0.02, 20.0), (0.05, 15.0), (0.2, 10.0), (0.41, 5.0)]:
            x += amp * np.sin(2 * np.pi * frac * rate * t + amp + ch)
        chans.append(x)
    return np.array(chans).astype(np.float32)


def write_csv(path, rate: int, x: np.ndarray) -> None:
    """csv_sink's layout: `timestamp,<labels>`, seconds with 6 decimals, values in µV."""
    lines = ["timestamp,A,B"]
    for k in range(N):
        ts = f"{T0_S + k / rate:.6f}"
        lines.append(ts + "," + ",".join(repr(float(v)) for v in x[:, k]))
    path.write_text("\n".join(lines) + "\n")


def stage_yaml(btype: str, edges, order: int) -> str:
    if btype in ("lowpass", "highpass"):
        return f"{btype}: {{ name: {btype}_{order}, inputs: [file_source], hz: {edges[0]}, order: {order} }}"
    return (f"{btype}: {{ name: {btype}_{order}, inputs: [file_source], low_hz: {edges[0]}, "
            f"high_hz: {edges[1]}, order: {order} }}")


def relative_rms(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.sqrt(np.mean((got - want) ** 2) / np.mean(want ** 2)))


@pytest.mark.parametrize("rate", [250, 1000, 4000])
def test_filters_through_the_pipeline_equal_sosfilt(run_pipeline, tmp_path, rate):
    x = make_input(rate)
    write_csv(tmp_path / "in.csv", rate, x)
    lines = ["stages:", "  - file_source: { path: in.csv, realtime: false }"]
    outputs = {}
    for btype, edges in BANDS[rate].items():
        for order in ORDERS:
            name = f"{btype}_{order}"
            lines.append("  - " + stage_yaml(btype, edges, order))
            lines.append(f"  - csv_sink: {{ name: out_{name}, path: {name}.csv }}")
            outputs[name] = signal.butter(order, edges if len(edges) > 1 else edges[0], btype,
                                          output="sos", fs=rate)
    lines.append("  - notch: { name: notch_3, inputs: [file_source], hz: 50, q: 30, harmonics: 3 }")
    lines.append("  - csv_sink: { name: out_notch_3, path: notch_3.csv }")
    notches = [signal.iirnotch(k * 50.0, 30.0, fs=rate) for k in (1, 2, 3) if k * 50.0 < rate / 2]
    outputs["notch_3"] = np.array([np.concatenate([b, a]) for b, a in notches])
    run_pipeline("\n".join(lines) + "\n", timeout=300)

    text_in = (tmp_path / "in.csv").read_text().splitlines()
    for name, sos in outputs.items():
        path = tmp_path / f"{name}.csv"
        text = path.read_text().splitlines()
        assert text[0] == "timestamp,A,B", name
        assert len(text) == N + 1, f"{name}: {len(text) - 1} rows"
        assert [r.split(",", 1)[0] for r in text[1:]] == [r.split(",", 1)[0] for r in text_in[1:]], \
            f"{name}: timestamps changed"
        got = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64)[:, 1:].T
        want = signal.sosfilt(sos, x, axis=1)
        for ch in range(2):
            err = relative_rms(got[ch], want[ch])
            assert err < 1e-4, f"{name} at {rate} S/s, channel {ch}: relative RMS error {err:.2e}"
