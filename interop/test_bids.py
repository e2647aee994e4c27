"""Recording format `bids` through the daemon's API: two runs with markers make a BIDS-EEG
dataset that the BIDS validator (npm `bids-validator`, pinned in interop/package.json) passes
with no errors, and that `mne_bids.read_raw_bids` loads run by run with the right channels,
types, units, rate, duration and events."""
import json
import os
import pathlib
import signal
import subprocess
import time

import mne
import mne_bids
import pytest
import requests

ROOT = pathlib.Path(__file__).resolve().parent
VALIDATOR = ROOT / "node_modules" / ".bin" / "bids-validator"
RATE = 250
PIPELINE = f"""stages:
  - emulator: {{ channels: 4, rate: {RATE}, signal: sine, sine_hz: 10, amplitude_uv: 100 }}
  - to_voltage: {{}}
  - notch: {{ hz: 50 }}
  - websocket_sink: {{ topic: eeg }}
recording: {{ format: bids, task: oddball }}
"""


@pytest.fixture
def daemon(eegd_bin, tmp_path):
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text(PIPELINE)
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k != "EEGD_TOKEN"}
    proc = subprocess.Popen(
        [str(eegd_bin), "serve", "--config", str(cfg), "--bind", "127.0.0.1:0", "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    line = proc.stdout.readline()
    assert line.startswith("eegd listening on "), line
    yield line.split()[-1], data
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def wait_samples(base, n):
    """Waits until the running recording has written `n` samples per channel."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rec = requests.get(f"{base}/api/pipeline").json()["recording"]
        if rec and rec["samples_written"] >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"the recording never reached {n} samples")


def wait_quality(base):
    """Waits until the sources' signal quality has been measured once."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if requests.get(f"{base}/api/signal-quality").json().get("measured_ns"):
            return
        time.sleep(0.05)
    raise AssertionError("the signal quality was never measured")


def record_run(base, body, labels):
    r = requests.post(f"{base}/api/recording/start", json=body)
    assert r.status_code == 200, r.text
    markers = []
    for k, label in enumerate(labels, start=1):
        wait_samples(base, k * RATE // 2)
        r = requests.post(f"{base}/api/markers", json={"label": label})
        assert r.status_code == 200, r.text
        markers.append(r.json()["timestamp_ns"])
    wait_samples(base, (len(labels) + 1) * RATE // 2)
    r = requests.post(f"{base}/api/recording/stop")
    assert r.status_code == 200, r.text
    return r.json(), markers


def test_two_runs_make_a_valid_bids_dataset_that_mne_bids_reads(daemon):
    base, data = daemon
    runs = [
        ({"participant": "p01", "format": "bids", "session": "01", "run": 1}, ["stim", "resp"]),
        ({"participant": "p01", "format": "bids", "session": "01", "task": "oddball"}, ["stim", "resp", "stim"]),
    ]
    done = []
    for body, labels in runs:
        # Each recording restarts the pipeline; wait for a measured quality, which the session
        # keeps for `_channels.tsv`.
        wait_quality(base)
        meta, marker_ns = record_run(base, body, labels)
        assert meta["status"] == "complete", meta
        assert meta["format"] == "bids" and meta["bids"]["task"] == "oddball", meta
        done.append((meta, labels, marker_ns))
    assert [m["bids"]["run"] for m, _, _ in done] == [1, 2], "the second run numbers on"

    # The same run again is refused, and the pipeline goes on.
    r = requests.post(f"{base}/api/recording/start", json=runs[0][0])
    assert r.status_code == 409, r.text
    assert requests.get(f"{base}/api/pipeline").json()["state"] == "running"

    root = data / "bids"
    # Every file the API names is in the dataset, and downloadable.
    for meta, _, _ in done:
        for f in meta["bids"]["files"]:
            assert (data / f).is_file(), f
        r = requests.get(f"{base}/api/recordings/{meta['bids']['files'][0]}")
        assert r.status_code == 200 and r.content[:8] == b"\xffBIOSEMI"
    listed = {s["path"]: s for s in requests.get(f"{base}/api/recordings").json()}
    for meta, _, _ in done:
        s = listed[f"bids/sourcedata/eegd/sub-p01_ses-01_task-oddball_run-{meta['bids']['run']}"]
        assert s["bids"]["files"] == meta["bids"]["files"]
        assert s["bytes"] == (data / meta["bids"]["files"][0]).stat().st_size
    assert (root / "participants.tsv").read_text() == "participant_id\nsub-p01\n"

    # The BIDS validator: no errors (warnings, such as no Authors, are allowed).
    assert VALIDATOR.exists(), "bids-validator is not installed: run scripts/setup-interop.sh"
    out = subprocess.run([str(VALIDATOR), str(root), "--json"], capture_output=True, text=True, timeout=300)
    report = json.loads(out.stdout)
    errors = [(i["key"], i["reason"]) for i in report["issues"]["errors"]]
    assert errors == [], errors
    assert report["summary"]["subjects"] == ["p01"] and report["summary"]["tasks"] == ["oddball"]

    # MNE-BIDS reads each run as recorded.
    mne.set_log_level("ERROR")
    for meta, labels, marker_ns in done:
        path = mne_bids.BIDSPath(
            subject="p01", session="01", task="oddball", run=meta["bids"]["run"], datatype="eeg", root=root
        )
        raw = mne_bids.read_raw_bids(path, verbose="ERROR")
        assert raw.ch_names == meta["labels"] == ["Fp1", "Fp2", "C3", "C4"]
        assert raw.get_channel_types() == ["eeg"] * 4
        # `_channels.tsv` status: the signal quality the session kept (fair counts as good).
        kept = {c["label"]: c["status"] for c in meta["signal_quality"]["at_start"]["channels"]}
        channels_tsv = path.copy().update(suffix="channels", extension=".tsv").fpath.read_text().splitlines()
        rows = [dict(zip(channels_tsv[0].split("\t"), line.split("\t"))) for line in channels_tsv[1:]]
        assert [r["status"] for r in rows] == ["bad" if kept[r["name"]] == "bad" else "good" for r in rows]
        assert all(r["status_description"].startswith("signal quality at the start: ") for r in rows), rows
        assert raw.info["bads"] == [r["name"] for r in rows if r["status"] == "bad"]
        assert all(ch["unit"] == mne.io.constants.FIFF.FIFF_UNIT_V for ch in raw.info["chs"])
        assert raw.info["sfreq"] == RATE and raw.info["line_freq"] == 50
        # The measurement date (`_scans.tsv`'s acq_time: the first sample) lies in the session.
        start = raw.info["meas_date"].timestamp()
        assert meta["start_ns"] / 1e9 - 1 <= start <= meta["stop_ns"] / 1e9, (start, meta["start_time"])
        sidecar = json.loads(path.copy().update(suffix="eeg", extension=".json").fpath.read_text())
        assert raw.n_times / RATE == pytest.approx(sidecar["RecordingDuration"])
        assert raw.n_times >= meta["samples_written"] > 0
        # A 100 µV sine, in volts.
        peak = abs(raw.get_data()).max()
        assert 90e-6 < peak < 110e-6, peak
        # Events: the markers, in order, each on the sample the recording placed it on (the
        # file's own annotations), and as far apart as they were posted (to a sample).
        assert list(raw.annotations.description) == labels
        onsets = list(raw.annotations.onset)
        in_file = mne.io.read_raw_bdf(path.fpath, verbose="ERROR").annotations
        assert onsets == pytest.approx(list(in_file.onset), abs=1e-9)
        posted = [(t - marker_ns[0]) / 1e9 for t in marker_ns]
        assert [o - onsets[0] for o in onsets] == pytest.approx(posted, abs=1.0 / RATE)
