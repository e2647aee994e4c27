#!/usr/bin/env python3
"""The same Butterworth band-pass on the same data through BrainFlow and through eegd, in one run.

    python scripts/bench/brainflow_bandpass.py [--channels 32] [--rate 4000] [--seconds 10]
                                               [--order 4] [--batch 16] [--repeats 5]

Needs `brainflow` (pip, pinned in interop/requirements.txt) and cargo. Data: `--channels` of a
deterministic EEG-like f32 signal. BrainFlow: `DataFilter.perform_bandpass` (Butterworth, zero
ripple), one call per channel over the whole recording, in float64 as its API requires. eegd:
`dsp::SosBank` run packet by packet (`--batch` samples, all channels), as the pipeline runs it,
timed inside a release build of `crates/dsp/examples/bandpass_timing.rs`. Both are timed in
thread CPU time (so other jobs on a shared machine do not count) and take the best of `--repeats`; the outputs are compared too (relative RMS). Prints a JSON summary.
"""
import argparse
import json
import pathlib
import subprocess
import tempfile
import time

import numpy as np
from brainflow.data_filter import DataFilter, FilterTypes

ROOT = pathlib.Path(__file__).resolve().parents[2]


def make_data(channels: int, n: int, rate: float) -> np.ndarray:
    rng = np.random.default_rng(7)
    t = np.arange(n) / rate
    x = np.cumsum(rng.normal(0, 1, (channels, n)), axis=1) * 0.5  # 1/f-like background
    x += 20 * np.sin(2 * np.pi * 10 * t + np.arange(channels)[:, None])  # alpha
    x += 15 * np.sin(2 * np.pi * 50 * t)  # line noise
    return x.astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--rate", type=int, default=4000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--low", type=float, default=1.0)
    ap.add_argument("--high", type=float, default=40.0)
    ap.add_argument("--order", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    n = int(a.rate * a.seconds)
    x = make_data(a.channels, n, a.rate)
    sections = a.order  # a band-pass of order N: 2N poles, N second-order sections (both sides)

    # BrainFlow: whole channels, float64, in place.
    best_bf = float("inf")
    out_bf = None
    for _ in range(a.repeats):
        data = x.astype(np.float64)
        t = time.thread_time_ns()
        for ch in range(a.channels):
            DataFilter.perform_bandpass(data[ch], a.rate, a.low, a.high, a.order,
                                        FilterTypes.BUTTERWORTH.value, 0.0)
        best_bf = min(best_bf, time.thread_time_ns() - t)
        out_bf = data

    # eegd: a release build of the timing example, on the same f32 values.
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "dsp", "--example", "bandpass_timing"],
                   cwd=ROOT, check=True)
    exe = ROOT / "target" / "release" / "examples" / "bandpass_timing"
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = pathlib.Path(tmp) / "in.f32", pathlib.Path(tmp) / "out.f32"
        x.astype("<f4").tofile(src)
        res = subprocess.run([str(exe), str(src), str(a.channels), str(a.rate), str(a.low), str(a.high),
                              str(a.order), str(a.batch), str(a.repeats), str(dst)],
                             check=True, capture_output=True, text=True)
        ours = json.loads(res.stdout)
        out_ours = np.fromfile(dst, dtype="<f4").reshape(a.channels, n).astype(np.float64)

    elements = a.channels * n * sections
    diff = float(np.sqrt(np.mean((out_ours - out_bf) ** 2) / np.mean(out_bf ** 2)))
    summary = {
        "channels": a.channels, "rate": a.rate, "samples": n, "order": a.order, "sections": sections,
        "band_hz": [a.low, a.high], "batch": a.batch, "repeats": a.repeats,
        "brainflow_ms": best_bf / 1e6,
        "brainflow_ns_per_channel_sample_section": best_bf / elements,
        "eegd_ms": ours["ns"] / 1e6,
        "eegd_ns_per_channel_sample_section": ours["ns_per_channel_sample_section"],
        "speedup_eegd_over_brainflow": best_bf / ours["ns"],
        "outputs_relative_rms_difference": diff,
    }
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
