"""Recordings through the real `eegd` binary, opened by MNE and edfio.

- BDF+, EDF+ and CSV sinks on one stream: labels, rate, units and length right in MNE and
  edfio, values equal to the CSV within one step of each file's quantisation, and a marker in
  `raw.annotations` at the sample the CSV markers file gives.
- `kill -9` mid-recording: the file still opens and lacks at most the last second.
- A sink whose disk is full stops by its policy; the other branches go on; the session meta
  says what happened.
- A session (`eegd run --record`): folder, metadata, exact pipeline text.
- BDF written → replayed by `file_source` → written again: identical samples.
- No padding: MNE's duration is exactly the samples written (`samples_written` in the meta).
- A gap in the input (a CSV replayed with 100 ms missing): edfio sees a discontinuous file, MNE
  and edfio the `gap: …` annotation where the samples are missing; the CSV markers file says it.
- `eegd serve`: 30 markers a second for 6 s all in the file, none lengthening it; markers
  outside the recording refused with 422; `kill -9` keeps every marker sent in the meta, and the
  next start-up marks the session `interrupted`; a full disk (a file-size limit) shows as
  `failed` in the API, the metrics and the session list, and stopping it answers 200 and leaves
  the pipeline running.
"""
import resource
import json
import math
import os
import pathlib
import signal
import subprocess
import time

import edfio
import mne
import numpy as np
import pytest

RATE = 250

STREAM = f"""stages:
  - emulator: {{ channels: 4, rate: {RATE}, batch: 10 }}
  - to_voltage: {{}}
"""


def read_csv(path: pathlib.Path):
    """(labels, timestamp strings, values[channels, samples]) of a csv_sink time series."""
    lines = path.read_text().splitlines()
    labels = lines[0].split(",")[1:]
    stamps = [ln.split(",", 1)[0] for ln in lines[1:]]
    values = np.array([[float(v) for v in ln.split(",")[1:]] for ln in lines[1:]]).T
    return labels, stamps, values


def read_markers(path: pathlib.Path):
    rows = path.read_text().splitlines()[1:]
    return [(r.split(",", 1)[0], r.split(",", 1)[1].strip('"')) for r in rows]


def steps_uv(path: pathlib.Path, reader):
    """Physical value of one digital step of each data signal, µV (from the header)."""
    f = reader(path)
    out = []
    for s in f.signals:
        lo, hi = s.physical_range
        dlo, dhi = s.digital_range
        out.append((hi - lo) / (dhi - dlo))
    return np.array(out)


def start(eegd_bin, tmp_path, yaml, *args, stdin=None):
    p = tmp_path / "pipeline.yaml"
    p.write_text(yaml)
    return subprocess.Popen(
        [str(eegd_bin), "run", str(p), *args],
        cwd=tmp_path,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_bdf_edf_and_csv_of_one_stream_agree_in_mne_and_edfio(eegd_bin, tmp_path):
    yaml = STREAM + f"""  - bdf_sink: {{ path: {tmp_path}/r.bdf }}
  - edf_sink: {{ path: {tmp_path}/r.edf, inputs: [to_voltage] }}
  - csv_sink: {{ path: {tmp_path}/r.csv, inputs: [to_voltage] }}
"""
    proc = start(eegd_bin, tmp_path, yaml, "--duration", "2.5", "--stdin-markers", stdin=subprocess.PIPE)
    time.sleep(1.0)
    proc.stdin.write("stimulus A\n")
    proc.stdin.flush()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err

    labels, stamps, csv = read_csv(tmp_path / "r.csv")
    n = csv.shape[1]
    assert n >= 2 * RATE
    marks = read_markers(tmp_path / "r.markers.csv")
    assert [m[1] for m in marks] == ["stimulus A"]
    marker_sample = stamps.index(marks[0][0])

    for ext, mne_read, edfio_read in [
        ("bdf", mne.io.read_raw_bdf, edfio.read_bdf),
        ("edf", mne.io.read_raw_edf, edfio.read_edf),
    ]:
        path = tmp_path / f"r.{ext}"
        raw = mne_read(path, preload=True, verbose="error")
        assert raw.ch_names == labels
        assert raw.info["sfreq"] == RATE
        # MNE scales µV files to volts: the values compared below in µV prove the unit.
        assert all(ch["unit"] == mne.io.constants.FIFF.FIFF_UNIT_V for ch in raw.info["chs"])
        # Exactly the samples acquired: no padding.
        assert raw.n_times == n
        data_uv = raw.get_data() * 1e6
        step = steps_uv(path, edfio_read)
        lo, hi = edfio_read(path).signals[0].physical_range
        err_uv = np.abs(data_uv - np.clip(csv, lo, hi)).max(axis=1)
        assert np.all(err_uv <= step), f"{ext}: error {err_uv} µV exceeds one step {step}"

        onsets = [o for o, d in zip(raw.annotations.onset, raw.annotations.description) if d == "stimulus A"]
        assert len(onsets) == 1, raw.annotations
        assert round(onsets[0] * RATE) == marker_sample
        assert abs(onsets[0] * RATE - marker_sample) < 1e-3

        e = edfio_read(path)
        assert [s.label for s in e.signals] == labels
        assert all(s.sampling_frequency == RATE for s in e.signals)
        assert all(s.physical_dimension == "uV" for s in e.signals)
        assert e.num_data_records * e.data_record_duration * RATE == n
        assert e.is_continuous
        assert [a.text for a in e.annotations] == ["stimulus A"]


@pytest.mark.filterwarnings("ignore:BDF header indicates -1 data records")
def test_kill_9_leaves_a_readable_file_missing_at_most_a_second(eegd_bin, tmp_path):
    yaml = STREAM + f"  - bdf_sink: {{ path: {tmp_path}/k.bdf }}\n"
    proc = start(eegd_bin, tmp_path, yaml)
    time.sleep(2.5)
    killed_at = time.time()
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    path = tmp_path / "k.bdf"
    assert path.read_bytes()[236:244].strip() == b"-1", "the record count is unknown until a clean stop"
    raw = mne.io.read_raw_bdf(path, preload=True, verbose="error")
    assert raw.ch_names == ["Fp1", "Fp2", "C3", "C4"]
    first_sample = edfio.read_bdf(path)
    start_s = raw.info["meas_date"].timestamp() + (first_sample.starttime.microsecond / 1e6)
    held = raw.n_times / RATE
    lost = killed_at - start_s - held
    assert raw.n_times >= RATE, "at least one whole record reached the disk"
    print(f"kill -9 after {killed_at - start_s:.3f} s of stream: {held} s held, {lost:.3f} s lost")
    assert lost <= 1.0 + 0.25, f"{lost:.3f} s lost (held {held} s)"


def test_a_full_disk_stops_only_its_sink_and_the_session_says_so(eegd_bin, tmp_path):
    data = tmp_path / "data"
    yaml = STREAM + f"""  - bdf_sink: {{ name: full_disk, path: /dev/full }}
  - csv_sink: {{ path: {tmp_path}/ok.csv, inputs: [to_voltage] }}
"""
    proc = start(eegd_bin, tmp_path, yaml, "--duration", "2.5", "--record", str(data), "--participant", "S9")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "full_disk" in err and "No space left on device" in err

    # The other branches ran to the end: the CSV and the session's recording hold the 2.5 s.
    _, _, csv = read_csv(tmp_path / "ok.csv")
    assert csv.shape[1] >= 2 * RATE
    session = pathlib.Path(out.strip().splitlines()[-1])
    meta = json.loads((session / "session_meta.json").read_text())
    assert meta["status"] == "complete"
    assert meta["samples_written"] >= 2 * RATE
    failed = {s["stage"]: s for s in meta["other_sinks"]}
    assert failed["full_disk"]["state"] == "stopped"
    assert "No space left on device" in failed["full_disk"]["error"]
    assert failed["csv_sink"]["state"] == "finished"


def test_a_session_folder_holds_the_file_the_meta_and_the_exact_pipeline(eegd_bin, tmp_path):
    data = tmp_path / "data"
    yaml = STREAM + "  - notch: {}\nrecording: { format: edf }\n"
    proc = start(
        eegd_bin, tmp_path, yaml, "--duration", "2", "--record", str(data), "--participant", "P01",
        "--notes", "resting, eyes open", "--stdin-markers", stdin=subprocess.PIPE,
    )
    time.sleep(1.0)
    proc.stdin.write("eyes closed\n")
    proc.stdin.flush()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    session = pathlib.Path(out.strip().splitlines()[-1])
    assert session.parent == data and session.name.endswith("Z_P01")
    assert (session / "pipeline.yaml").read_text() == yaml
    meta = json.loads((session / "session_meta.json").read_text())
    assert meta["participant"] == "P01" and meta["notes"] == "resting, eyes open"
    assert meta["format"] == "edf" and meta["input"] == "to_voltage"
    assert meta["rate"] == RATE and meta["channels"] == 4
    assert meta["labels"] == ["Fp1", "Fp2", "C3", "C4"]
    assert meta["samples_dropped_upstream"] == 0 and meta["packets_dropped_upstream"] == 0
    assert meta["recorder"]["state"] == "finished" and meta["recorder"]["closed"]
    assert [m["text"] for m in meta["markers"]] == ["eyes closed"]
    assert meta["stop_ns"] > meta["start_ns"]
    raw = mne.io.read_raw_edf(session / "recording.edf", preload=False, verbose="error")
    assert raw.n_times == meta["samples_written"], "the file is exactly what the meta says"
    assert meta["samples_unwritten"] == 0
    assert list(raw.annotations.description) == ["eyes closed"]


def test_bdf_replayed_and_written_again_has_identical_samples(eegd_bin, tmp_path):
    first = tmp_path / "first.bdf"
    proc = start(
        eegd_bin, tmp_path, STREAM + f"  - bdf_sink: {{ path: {first} }}\n", "--duration", "2.2",
        "--stdin-markers", stdin=subprocess.PIPE,
    )
    time.sleep(1.0)
    proc.stdin.write("replayed marker\n")
    proc.stdin.flush()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err

    second = tmp_path / "second.bdf"
    replay = f"""stages:
  - file_source: {{ path: {first}, realtime: false }}
  - bdf_sink: {{ path: {second} }}
"""
    (tmp_path / "replay.yaml").write_text(replay)
    done = subprocess.run([str(eegd_bin), "run", str(tmp_path / "replay.yaml")], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr

    a, b = edfio.read_bdf(first), edfio.read_bdf(second)
    assert [s.label for s in a.signals] == [s.label for s in b.signals]
    for sa, sb in zip(a.signals, b.signals):
        assert np.array_equal(sa.digital, sb.digital)
    assert a.starttime == b.starttime and a.startdate == b.startdate
    assert [(x.onset, x.text) for x in a.annotations] == [(x.onset, x.text) for x in b.annotations]
    assert [x.text for x in a.annotations] == ["replayed marker"]


def test_a_gap_in_the_input_keeps_time_true_in_mne_and_edfio(eegd_bin, tmp_path):
    # 2 s at 250 Hz, 25 samples (100 ms) missing, 2 s more.
    t0 = 1_750_000_000
    rows = ["timestamp,Fp1,Fp2"]
    for i in range(1000):
        k = i + (25 if i >= 500 else 0)
        us = t0 * 1_000_000 + k * 4000
        rows.append(f"{us // 1_000_000}.{us % 1_000_000:06d},{math.sin(i / 10) * 50:.3f},{i % 7}")
    (tmp_path / "in.csv").write_text("\n".join(rows) + "\n")
    yaml = f"""stages:
  - file_source: {{ path: {tmp_path}/in.csv, realtime: false, batch: 10, rate: 250 }}
  - bdf_sink: {{ path: {tmp_path}/g.bdf, range_uv: 1000 }}
  - edf_sink: {{ path: {tmp_path}/g.edf, inputs: [file_source], range_uv: 100 }}
  - csv_sink: {{ path: {tmp_path}/g.csv, inputs: [file_source] }}
"""
    proc = start(eegd_bin, tmp_path, yaml)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err

    marks = read_markers(tmp_path / "g.markers.csv")
    assert marks == [(f"{t0 + 2}.000000", "gap: 25 samples not acquired")]
    for ext, mne_read, edfio_read in [
        ("bdf", mne.io.read_raw_bdf, edfio.read_bdf),
        ("edf", mne.io.read_raw_edf, edfio.read_edf),
    ]:
        path = tmp_path / f"g.{ext}"
        assert path.read_bytes()[192:197] == f"{ext.upper()}+D".encode()
        e = edfio_read(path)
        assert not e.is_continuous, "record onsets keep the gap"
        gaps = [(a.onset, a.duration, a.text) for a in e.annotations]
        assert gaps == [(2.0, 0.1, "gap: 25 samples not acquired")]
        raw = mne_read(path, preload=True, verbose="error")
        assert raw.n_times == 1000, "every sample, none invented for the gap"
        # MNE lays records end to end: the gap annotation starts where the missing samples would.
        ann = [(o, d) for o, d, t in zip(raw.annotations.onset, raw.annotations.duration,
                                         raw.annotations.description) if t.startswith("gap")]
        assert ann == [(2.0, 0.1)]
        # The record after the gap starts at its true time, 2.1 s: each record's own onset.
        onsets = record_onsets(path, 3 if ext == "bdf" else 2)
        assert len(onsets) == 100 and onsets[49:51] == [1.96, 2.1]
        assert onsets == [round(0.04 * k + (0.1 if k >= 50 else 0), 9) for k in range(100)]
        assert raw.get_data()[0, 500] * 1e6 == pytest.approx(math.sin(50) * 50, abs=0.01 if ext == "bdf" else 0.005)


def record_onsets(path: pathlib.Path, bps: int):
    """Each data record's onset (s after the first), from its time-keeping TAL."""
    b = path.read_bytes()
    ns = int(b[252:256])
    spr = [int(b[256 + ns * 216 + 8 * i: 256 + ns * 216 + 8 * i + 8]) for i in range(ns)]
    size = sum(spr) * bps
    ann_at = sum(spr[:-1]) * bps
    out = []
    for k in range((len(b) - 256 * (ns + 1)) // size):
        rec = b[256 * (ns + 1) + k * size:][:size]
        out.append(float(rec[ann_at:].split(b"\x14", 1)[0].decode()))
    first = out[0]
    return [round(o - first, 9) for o in out]


def serve(eegd_bin, tmp_path, yaml, data, preexec_fn=None):
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(yaml)
    env = {k: v for k, v in os.environ.items() if k != "EEGD_TOKEN"}
    proc = subprocess.Popen(
        [str(eegd_bin), "serve", "--config", str(cfg), "--bind", "127.0.0.1:0", "--data-dir", str(data)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, preexec_fn=preexec_fn,
    )
    line = proc.stdout.readline()
    assert line.startswith("eegd listening on "), line
    return proc, line.split()[-1]


def wait_for(what, check, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = check()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


SERVE = f"""stages:
  - emulator: {{ channels: 4, rate: {RATE}, batch: 10 }}
  - to_voltage: {{}}
  - null_sink: {{}}
recording: {{ format: bdf }}
"""


def test_thirty_markers_a_second_are_all_in_the_file_and_none_lengthens_it(eegd_bin, tmp_path):
    import requests
    proc, base = serve(eegd_bin, tmp_path, SERVE, tmp_path / "data")
    try:
        r = requests.post(f"{base}/api/markers", json={"label": "nobody records"})
        assert r.status_code == 200 and r.json()["recorded"] is False
        assert requests.post(f"{base}/api/recording/start", json={"participant": "m30"}).status_code == 200
        sent = []
        t_start = time.monotonic()
        while len(sent) < 180:
            time.sleep(max(0.0, t_start + len(sent) / 30 - time.monotonic()))
            r = requests.post(f"{base}/api/markers", json={"label": f"m{len(sent)}"})
            assert r.status_code == 200, r.text
            assert r.json()["recorded"] is True
            sent.append(r.json()["timestamp_ns"])
        assert (sent[-1] - sent[0]) / 1e9 < 6.5, "about 30 markers a second"
        now = sent[-1]
        for ts in [-5, now - 3600 * 10**9, now + 10 * 10**9]:
            r = requests.post(f"{base}/api/markers", json={"label": "outside", "timestamp_ns": ts})
            assert r.status_code == 422, (ts, r.text)
            assert "error" in r.json()
        r = requests.post(f"{base}/api/recording/stop")
        assert r.status_code == 200, r.text
        meta = r.json()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert meta["status"] == "complete"
    assert meta["markers_dropped"] == 0 and len(meta["markers"]) == len(sent) == 180
    assert all(m["text"] != "outside" for m in meta["markers"])
    session = pathlib.Path(meta["path"])
    raw = mne.io.read_raw_bdf(session / "recording.bdf", preload=False, verbose="error")
    assert raw.n_times == meta["samples_written"], "no record added for annotations"
    assert raw.n_times / RATE == pytest.approx(raw.times[-1] + 1 / RATE)
    got = {d: o for o, d in zip(raw.annotations.onset, raw.annotations.description)}
    assert len(got) == len(sent), "every marker intact"
    first = meta["first_sample_ns"]
    for i, ts in enumerate(sent):
        assert round(got[f"m{i}"] * RATE) == round((ts - first) * RATE / 1e9), f"m{i} at its sample"


def test_kill_9_keeps_the_markers_and_start_up_finds_the_session_interrupted(eegd_bin, tmp_path):
    import requests
    data = tmp_path / "data"
    proc, base = serve(eegd_bin, tmp_path, SERVE, data)
    r = requests.post(f"{base}/api/recording/start", json={"participant": "k9"})
    assert r.status_code == 200, r.text
    folder = data / r.json()["session"]
    for i in range(5):
        assert requests.post(f"{base}/api/markers", json={"label": f"before kill {i}"}).json()["recorded"]
    time.sleep(1.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    meta = json.loads((folder / "session_meta.json").read_text())
    assert meta["status"] == "recording"
    assert [m["text"] for m in meta["markers"]] == [f"before kill {i}" for i in range(5)]

    proc, base = serve(eegd_bin, tmp_path, SERVE, data)
    try:
        listed = requests.get(f"{base}/api/recordings").json()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    meta = json.loads((folder / "session_meta.json").read_text())
    assert meta["status"] == "interrupted" and meta["error"]
    assert listed[0]["session"] == folder.name and listed[0]["status"] == "interrupted"
    raw = mne.io.read_raw_bdf(folder / "recording.bdf", preload=False, verbose="error")
    assert raw.n_times == meta["samples_written"] >= RATE


def test_a_full_disk_fails_the_session_everywhere_and_stop_answers_cleanly(eegd_bin, tmp_path):
    import requests

    def small_disk():
        # Files may not grow past 40 kB: writes beyond fail with EFBIG, as on a full disk.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))

    yaml = SERVE.replace(f"channels: 4, rate: {RATE}", "channels: 8, rate: 1000")
    proc, base = serve(eegd_bin, tmp_path, yaml, tmp_path / "data", preexec_fn=small_disk)
    try:
        assert requests.post(f"{base}/api/recording/start", json={}).status_code == 200
        rec = wait_for("the recording to fail",
                       lambda: (requests.get(f"{base}/api/pipeline").json()["recording"] or {}).get("status") == "failed"
                       and requests.get(f"{base}/api/pipeline").json()["recording"])
        assert "too large" in rec["error"].lower(), rec
        p = requests.get(f"{base}/api/pipeline").json()
        assert p["state"] == "running"
        metrics = requests.get(f"{base}/metrics").text
        assert "eegd_recording_active 0" in metrics and "eegd_recording_failed 1" in metrics
        assert requests.get(f"{base}/api/recordings").json()[0]["status"] == "failed"
        r = requests.post(f"{base}/api/markers", json={"label": "after"})
        assert r.status_code == 200 and r.json()["recorded"] is False
        r = requests.post(f"{base}/api/recording/stop")
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "failed" and "too large" in r.json()["error"].lower()
        assert requests.get(f"{base}/api/pipeline").json()["state"] == "running", "the pipeline goes on"
        assert "eegd_recording_active 0" in requests.get(f"{base}/metrics").text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
