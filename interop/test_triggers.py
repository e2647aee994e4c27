"""Hardware triggers end to end, with the simulated chip's TTL pulse train (`trigger_signal`).

The emulator at 1000 SPS pulses its GPIO1 every 500 ms for 10 ms, the first rise 500 ms after
the start: the pin rises on samples 500, 1000, 1500, ... With `triggers: {gpio1: stim}` each rise
is a `stim` marker on that sample:

- recorded 4 s to BDF+ (read by MNE) and CSV (its markers side file): exactly 500 samples
  apart, on the samples where the pin rose;
- through `eegd serve`: a `marker` event with `origin: "trigger"` on `/ws/control` whose
  timestamp is that sample's timestamp in the `/ws/data` frames;
- in the browser: drawn on the traces at those samples (skipped without Chromium).
"""
import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path

import mne
import numpy as np
import pytest
import websockets

RATE = 1000
PERIOD = 500  # samples between rises (500 ms at 1000 SPS)
BATCH = 10
SOURCE = (
    f"emulator: {{ channels: 4, rate: {RATE}, batch: {BATCH}, signal: sine, "
    "trigger_signal: { gpio: 1, period_ms: 500, width_ms: 10 }, triggers: { gpio1: stim }"
)
# Where the simulated pin rises within the first 4 s (the first rise is one period in).
RISES = list(range(PERIOD, 4 * RATE, PERIOD))


def test_bdf_and_csv_have_stim_on_the_samples_the_pin_rose(run_pipeline, tmp_path):
    run_pipeline(f"""stages:
  - {SOURCE}, realtime: false, samples: {4 * RATE} }}
  - to_voltage: {{}}
  - bdf_sink: {{ path: {tmp_path}/t.bdf }}
  - csv_sink: {{ path: {tmp_path}/t.csv, inputs: [to_voltage] }}
""")
    raw = mne.io.read_raw_bdf(tmp_path / "t.bdf", preload=False, verbose="error")
    assert raw.info["sfreq"] == RATE
    stim = [o for o, d in zip(raw.annotations.onset, raw.annotations.description) if d == "stim"]
    samples = np.array(stim) * RATE
    # Zero sample error: every onset is a whole sample, and that sample is where the pin rose.
    assert np.abs(samples - np.round(samples)).max() < 1e-6, samples
    samples = np.round(samples).astype(int)
    assert samples.tolist() == RISES
    assert set(np.diff(samples)) == {PERIOD}
    assert all(s < raw.n_times for s in samples)

    # The CSV: each marker's timestamp is the timestamp of the data row of that sample.
    stamps = [ln.split(",", 1)[0] for ln in (tmp_path / "t.csv").read_text().splitlines()[1:]]
    marks = [ln.split(",", 1) for ln in (tmp_path / "t.markers.csv").read_text().splitlines()[1:]]
    assert [t.strip('"') for _, t in marks] == ["stim"] * len(RISES)
    rows = [stamps.index(ts) for ts, _ in marks]
    assert rows == RISES


@pytest.fixture
def daemon(eegd_bin, tmp_path):
    """`eegd serve` on a free port with the trigger pipeline, paced (live); yields the base URL."""
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text(f"""stages:
  - {SOURCE} }}
  - to_voltage: {{}}
  - websocket_sink: {{ topic: eeg }}
""")
    env = {k: v for k, v in os.environ.items() if k != "EEGD_TOKEN"}
    proc = subprocess.Popen(
        [str(eegd_bin), "serve", "--config", str(cfg), "--bind", "127.0.0.1:0", "--data-dir", str(tmp_path / "d")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )
    line = proc.stdout.readline()
    assert line.startswith("eegd listening on "), line
    yield line.split()[-1]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def test_control_events_carry_each_trigger_on_its_sample(daemon):
    ws_base = daemon.replace("http://", "ws://")

    async def run():
        frames, marks = {}, []
        async with websockets.connect(f"{ws_base}/ws/control") as ctl, websockets.connect(
            f"{ws_base}/ws/data?topic=eeg"
        ) as data:

            async def read_data():
                while True:
                    f = await data.recv()
                    seq = int.from_bytes(f[24:32], "little")
                    frames[seq] = int.from_bytes(f[32:40], "little", signed=True)

            reader = asyncio.create_task(read_data())
            while len(marks) < 3:
                e = json.loads(await asyncio.wait_for(ctl.recv(), 10))
                if e.get("event") == "marker":
                    marks.append(e["marker"])
            # The frames holding the last marker's sample arrive just after its event.
            await asyncio.sleep(0.2)
            reader.cancel()
        return frames, marks

    frames, marks = asyncio.run(run())
    assert all(m["label"] == "stim" and m["origin"] == "trigger" for m in marks), marks
    # Sample k of the stream is in frame k // BATCH (one packet per frame, BATCH samples each),
    # at that frame's timestamp + (k % BATCH) / rate.
    assert frames, "no data frames"
    seq0, ts0 = min(frames.items())
    t_first = ts0 - seq0 * BATCH * 1_000_000  # sample 0's timestamp (1 ms per sample)
    for m in marks:
        k, rem = divmod(m["timestamp_ns"] - t_first, 1_000_000)
        assert rem == 0, f"{m} is not on a sample"
        assert k % PERIOD == 0 and k > 0, f"sample {k} is not where the pin rose"
        seq, i = divmod(k, BATCH)
        if seq in frames:
            assert frames[seq] + i * 1_000_000 == m["timestamp_ns"]
    ks = [(m["timestamp_ns"] - t_first) // 1_000_000 for m in marks]
    assert set(np.diff(ks)) == {PERIOD}, ks


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)")
def test_the_live_view_draws_triggers_on_their_samples(daemon):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(daemon)
        page.wait_for_function("window.eegdTriggers && window.eegdTriggers.drawn.length >= 2", timeout=20_000)
        drawn = page.evaluate("window.eegdTriggers.drawn.map(d => ({label: d.label, sample: d.sample}))")
        browser.close()
    assert all(d["label"] == "stim" for d in drawn), drawn
    # Samples counted from the first sample the page received: every trigger 500 samples after
    # the previous one.
    samples = sorted(d["sample"] for d in drawn)
    assert set(np.diff(samples)) == {PERIOD}, samples
