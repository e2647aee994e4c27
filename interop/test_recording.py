"""Recordings through the real `eegd` binary, opened by MNE and edfio.

- BDF+, EDF+ and CSV sinks on one stream: labels, rate, units and length right in MNE and
  edfio, values equal to the CSV within one step of each file's quantisation, and a marker in
  `raw.annotations` at the sample the CSV markers file gives.
- `kill -9` mid-recording: the file still opens and lacks at most the last second.
- A sink whose disk is full stops by its policy; the other branches go on; the session meta
  says what happened.
- A session (`eegd run --record`): folder, metadata, exact pipeline text.
- BDF written → replayed by `file_source` → written again: identical samples.
"""
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
        # Whole 1 s records: the last one padded.
        assert raw.n_times == math.ceil(n / RATE) * RATE
        data_uv = raw.get_data()[:, :n] * 1e6
        step = steps_uv(path, edfio_read)
        err_uv = np.abs(data_uv - csv).max(axis=1)
        assert np.all(err_uv <= step), f"{ext}: error {err_uv} µV exceeds one step {step}"

        onsets = [o for o, d in zip(raw.annotations.onset, raw.annotations.description) if d == "stimulus A"]
        assert len(onsets) == 1, raw.annotations
        assert round(onsets[0] * RATE) == marker_sample
        assert abs(onsets[0] * RATE - marker_sample) < 1e-3

        e = edfio_read(path)
        assert [s.label for s in e.signals] == labels
        assert all(s.sampling_frequency == RATE for s in e.signals)
        assert all(s.physical_dimension == "uV" for s in e.signals)
        assert e.num_data_records == math.ceil(n / RATE)
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
    assert raw.n_times == math.ceil(meta["samples_written"] / RATE) * RATE
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
