"""Signal quality end to end: the real `eegd serve`, an emulator with simulated electrodes, the
HTTP API (`/api/signal-quality`, `/api/impedance/start|stop`, `/api/selftest`, `/metrics`) and the
browser UI (Debian's Chromium through Playwright).

    cargo build -p eegd && EEGD_BIN=$PWD/target/debug/eegd .venv/bin/python -m pytest \
        interop/test_signal_quality.py -q -p no:cacheprovider

The emulator's simulated chip passes its lead-off current through each electrode's impedance plus
the board's 2.2 kΩ series resistor; the daemon must give the impedance back within 10 %.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]

ELECTRODES = {"Fp1": 5.0, "Fp2": 20.0, "C3": 50.0, "C4": 200.0}
DISCONNECTED = "P7"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, exe: Path, tmp: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data = tmp / "data"
        self.log = tmp / "server.log"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(exe), "serve", "--bind", f"127.0.0.1:{self.port}", "--data-dir", str(self.data)],
                cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
        self.wait(self.healthy, "the server to answer")

    def healthy(self) -> bool:
        try:
            return requests.get(self.url + "/api/health", timeout=1).ok
        except requests.ConnectionError:
            return False

    def get(self, path: str) -> requests.Response:
        return requests.get(self.url + path, timeout=10)

    def post(self, path: str, body=None) -> requests.Response:
        return requests.post(self.url + path, data=json.dumps(body) if body is not None else None, timeout=120)

    def wait(self, cond, what: str, timeout: float = 30.0):
        """Polls `cond` until it holds (a condition, not a fixed sleep)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log.read_text(errors='replace')[-3000:]}")
            v = cond()
            if v:
                return v
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    def start(self, pipeline: dict):
        r = self.post("/api/pipeline/start", pipeline)
        assert r.ok, r.text
        self.wait(lambda: self.get("/api/signal-quality").json()["measured_ns"], "a first quality window")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture()
def server(eegd_bin, tmp_path):
    s = Server(eegd_bin, tmp_path)
    yield s
    s.stop()


def electrodes_pipeline(**emulator) -> dict:
    electrodes = {k: {"impedance_kohm": v} for k, v in ELECTRODES.items()}
    electrodes[DISCONNECTED] = {"disconnected": True}
    params = {"channels": 5, "rate": 250, "electrodes": electrodes, **emulator}
    return {"stages": [
        {"emulator": params},
        {"to_voltage": {}},
        {"websocket_sink": {"topic": "eeg", "max_rate_hz": 30}},
    ]}


def status_for(z: float | None, ch: dict, th: dict) -> str:
    """The documented status rule (docs/hardware.md), from the figures the daemon reports."""
    if ch["lead_off"] or ch["railed"] or ch["flat"] or (z is not None and z >= th["fair_below_kohm"]):
        return "bad"
    if z is not None and z >= th["good_below_kohm"]:
        return "fair"
    return "good"


def impedances(server: Server, after_ns: int) -> dict:
    """Waits for an impedance measurement made after `after_ns` and returns the quality."""
    def ready():
        q = server.get("/api/signal-quality").json()
        return q if (q["impedance_measured_ns"] or 0) > after_ns else None
    return server.wait(ready, "an impedance measurement", timeout=20)


def test_impedance_of_each_electrode_within_10_percent_and_the_disconnected_one_flagged(server):
    server.start(electrodes_pipeline())
    before = server.get("/api/signal-quality").json()
    assert all(c["impedance_kohm"] is None for c in before["channels"]), "no impedance without AC lead-off"
    start = time.time_ns()
    r = server.post("/api/impedance/start")
    assert r.ok, r.text
    q = impedances(server, start)
    chans = {c["label"]: c for c in q["channels"]}
    for label, want in ELECTRODES.items():
        z = chans[label]["impedance_kohm"]
        assert z is not None and abs(z - want) <= 0.1 * want, f"{label}: {z} kΩ, want {want}"
        assert chans[label]["status"] == status_for(z, chans[label], q["thresholds"]), chans[label]
        assert not chans[label]["lead_off"] and not chans[label]["railed"]
    assert chans["Fp1"]["status"] == "good" and chans["C4"]["status"] == "bad"
    off = chans[DISCONNECTED]
    assert off["lead_off"] and off["railed"] and off["status"] == "bad" and off["impedance_kohm"] is None, off

    metrics = server.get("/metrics").text
    assert 'eegd_channel_impedance_kohm{stage="emulator",channel="C4"}' in metrics
    assert f'eegd_channel_lead_off{{stage="emulator",channel="{DISCONNECTED}"}} 1' in metrics

    # The live path: the source's params show AC lead-off; stopping restores them.
    params = server.get("/api/pipeline").json()["stages"][0]["params"]
    assert params["lead_off"]["mode"] == "ac"
    assert server.post("/api/impedance/stop").ok
    params = server.get("/api/pipeline").json()["stages"][0]["params"]
    assert params["lead_off"]["mode"] == "off"

    # Not while recording: the current would be in the data.
    assert server.post("/api/recording/start", {"participant": "P1"}).ok
    r = server.post("/api/impedance/start")
    assert r.status_code == 409 and "recording" in r.json()["error"], r.text
    assert server.post("/api/recording/stop").ok
    meta = json.loads(next(server.data.glob("*/session_meta.json")).read_text())
    at_start = {c["label"]: c for c in meta["signal_quality"]["at_start"]["channels"]}
    assert at_start[DISCONNECTED]["lead_off"] and at_start[DISCONNECTED]["status"] == "bad"


def test_a_railed_stream_is_flagged_in_the_api_and_the_metrics(server):
    server.start({"stages": [
        {"emulator": {"channels": 2, "rate": 500, "signal": "sine", "sine_hz": 10, "amplitude_uv": 250000}},
        {"null_sink": {}},
    ]})
    # Each quarter-second window is judged on its own: the first one published is railed.
    q = server.get("/api/signal-quality").json()
    assert all(c["railed"] and c["status"] == "bad" for c in q["channels"]), q["channels"]
    metrics = server.get("/metrics").text
    assert 'eegd_channel_railed{stage="emulator",channel="Fp1"} 1' in metrics


def test_selftest_passes_and_fails_a_broken_channel_with_figures(server):
    server.start(electrodes_pipeline(broken_channels=["C3"]))
    r = server.post("/api/selftest", {"test_seconds": 2.5, "noise_seconds": 1})
    assert r.ok, r.text
    res = r.json()
    chans = {c["label"]: c for c in res["channels"]}
    assert not res["pass"] and not chans["C3"]["pass"]
    assert chans["C3"]["test_signal"]["amplitude_uv"] == 0
    for label in ["Fp1", "Fp2", "C4", DISCONNECTED]:
        c = chans[label]
        assert c["pass"], c
        assert abs(c["test_signal"]["amplitude_uv"] - 1875) < 20, c
        assert abs(c["test_signal"]["frequency_hz"] - 0.9766) < 0.05, c
        assert 0 < c["shorted"]["rms_uv"] <= 1.5 * c["shorted"]["datasheet_rms_uv"], c
    # The configuration came back.
    params = server.get("/api/pipeline").json()["stages"][0]["params"]
    assert params["input"] == "normal" and params["lead_off"]["mode"] == "off"
    # Mended live, every channel passes.
    r = requests.patch(f"{server.url}/api/stages/emulator/params", json={"broken_channels": []}, timeout=10)
    assert r.ok, r.text
    res = server.post("/api/selftest", {"test_seconds": 2.5, "noise_seconds": 1}).json()
    assert res["pass"], res


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)")
def test_the_ui_shows_impedance_badges_and_marks_railed_traces(server):
    playwright_api = pytest.importorskip("playwright.sync_api")
    server.start(electrodes_pipeline())
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        problems = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(server.url)
        page.wait_for_selector(f'#quality-table tr[data-label="{DISCONNECTED}"]')
        page.click("#impedance-btn")
        page.wait_for_selector('#impedance-btn[aria-pressed="true"]')
        for label, want in ELECTRODES.items():
            cell = f'#quality-table tr[data-label="{label}"] .q-z'
            page.wait_for_function(
                f"() => parseFloat(document.querySelector('{cell}')?.textContent) > 0", timeout=20000)
            z = float(page.locator(cell).inner_text().split()[0])
            assert abs(z - want) <= 0.1 * want, f"{label}: {z} kΩ shown, want {want}"
        row = page.locator(f'#quality-table tr[data-label="{DISCONNECTED}"]')
        assert row.get_attribute("data-status") == "bad"
        badges = row.locator(".badge").all_inner_texts()
        assert "railed" in [b.lower() for b in badges] and "lead-off" in [b.lower() for b in badges], badges
        assert page.locator('#quality-table tr[data-label="Fp1"] .q-z.good').count() == 1
        assert page.locator('#quality-table tr[data-label="C4"] .q-z.bad').count() == 1
        # The railed channel's trace label is marked.
        page.wait_for_selector(f'.trace-label.railed:text("{DISCONNECTED}")', timeout=15000)
        assert page.locator(".trace-label.railed").count() == 1
        page.click("#impedance-btn")
        page.wait_for_selector('#impedance-btn[aria-pressed="false"]')
        # The self-test button: 3 s of test signal, 10 s of shorted inputs, then the verdict.
        page.click("#selftest-btn")
        page.wait_for_selector("#selftest-verdict", timeout=60000)
        assert "passed" in page.locator("#selftest-verdict").inner_text()
        assert page.locator(".selftest-list li.good").count() == 5
        browser.close()
        assert problems == []
