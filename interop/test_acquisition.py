"""The emulator through `to_voltage` to `csv_sink`, read back with numpy: row count, exact
timestamp spacing, amplitude and spectral peak (issue 3's acceptance, checked from outside)."""
import numpy as np
import pytest


@pytest.mark.parametrize("rate", [250, 4000, 16000])
def test_emulated_sine_is_recorded_with_exact_timestamps(run_pipeline, tmp_path, rate):
    run_pipeline(
        f"""
stages:
  - emulator: {{ channels: 8, rate: {rate}, gain: 24, signal: sine, sine_hz: 10, amplitude_uv: 100 }}
  - to_voltage: {{}}
  - csv_sink: {{ path: out.csv }}
""",
        "--duration",
        "3",
    )
    data = np.loadtxt(tmp_path / "out.csv", delimiter=",", skiprows=1, dtype=np.float64)
    header = (tmp_path / "out.csv").read_text().splitlines()[0].split(",")
    assert header[0] == "timestamp" and len(header) == 9
    rows = data.shape[0]
    assert abs(rows - 3 * rate) <= 0.05 * 3 * rate, f"{rows} rows in 3 s at {rate} SPS"

    # Timestamps: the first DRDY, then exactly k / rate (printed truncated to 1 µs).
    text_ts = [line.split(",", 1)[0] for line in (tmp_path / "out.csv").read_text().splitlines()[1:]]
    us = np.array([int(t.replace(".", "")) for t in text_ts], dtype=np.int64)
    k = np.arange(rows, dtype=np.int64)
    nominal_ns = k * 1_000_000_000 // rate
    deviation_us = us - us[0] - nominal_ns // 1000
    assert deviation_us.min() >= -1 and deviation_us.max() <= 1, "timestamps leave the n/rate clock"
    if 1_000_000 % rate == 0:
        assert set(np.diff(us)) == {1_000_000 // rate}

    # 100 µV ± 5 %, peak at 10 Hz on every channel.
    x = data[:, 1:]
    amplitude = np.sqrt(2) * x.std(axis=0)
    assert np.all(np.abs(amplitude - 100) <= 5), amplitude
    spectrum = np.abs(np.fft.rfft(x - x.mean(axis=0), axis=0))
    freqs = np.fft.rfftfreq(rows, 1 / rate)
    peaks = freqs[spectrum.argmax(axis=0)]
    assert np.all(np.abs(peaks - 10) <= 1 / 3 + 1e-9), peaks
