"""Browser tests of the eegd UI in Debian's Chromium, driven by Playwright.

    EEGD_BIN=target/debug/eegd pytest interop/test_ui.py -s    (-s shows the measured frame rate)

They run the real `eegd serve` (the `eegd_bin` fixture of interop/conftest.py) on a free
loopback port.

Needs /usr/bin/chromium (`apt-get install chromium`) and `playwright==1.65.2` (its driver only:
the browser is Debian's, never a downloaded one). Skipped when Chromium is missing.
"""

from __future__ import annotations

import signal
import socket
import statistics
import subprocess
import time
from pathlib import Path

import pytest
import requests

playwright_api = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1600, "height": 1000}

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pipeline(channels: int, rate: int) -> dict:
    """The default pipeline with another channel count and rate (JSON is a valid pipeline file)."""
    return {"stages": [
        {"emulator": {"channels": channels, "rate": rate, "gain": 24, "line_hz": 50}},
        {"to_voltage": {}},
        {"notch": {"hz": 50}},
        {"bandpass": {"low_hz": 1, "high_hz": 40, "order": 4}},
        {"websocket_sink": {"topic": "eeg", "max_rate_hz": 60}},
        {"downsample": {"inputs": ["bandpass"], "factor": 16}},
        {"fft": {"size": 256, "hop": 64}},
        {"websocket_sink": {"name": "spectrum_ws", "topic": "spectrum"}},
        {"band_power": {"inputs": ["fft"]}},
        {"websocket_sink": {"name": "bands_ws", "topic": "bands"}},
    ]}


class Server:
    """`eegd serve` on a free loopback port, which can be killed and started again."""

    def __init__(self, exe: Path, data_dir: Path):
        self.exe = exe
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        return [str(self.exe), "serve", "--bind", f"127.0.0.1:{self.port}", "--data-dir", str(self.data_dir)]

    def start(self):
        self.log = self.data_dir.parent / "server.log"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.command(), cwd=self.data_dir.parent,
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log.read_text(errors='replace')[-4000:]}")
            try:
                if requests.get(f"{self.url}/api/health", timeout=1).ok:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not answer /api/health within 30 s")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def api(self, method: str, path: str, **kw) -> requests.Response:
        return requests.request(method, f"{self.url}{path}", timeout=10, **kw)


@pytest.fixture()
def server(eegd_bin, tmp_path):
    s = Server(eegd_bin, tmp_path / "data")
    s.start()
    yield s
    s.kill()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser, server):
    ctx = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    pg = ctx.new_page()
    pg.problems = []
    pg.on("console", lambda m: pg.problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    pg.on("pageerror", lambda e: pg.problems.append(f"page error: {e}"))
    pg.goto(server.url)
    pg.wait_for_selector('#conn[data-state="live"]', timeout=15000)
    wait_paints(pg, 3)
    yield pg
    ctx.close()


def paints(pg) -> int:
    return pg.evaluate("window.eegdPerf.paints")


def wait_paints(pg, n: int, timeout_ms: int = 15000):
    """Waits until the trace view has painted `n` more times."""
    start = paints(pg)
    pg.wait_for_function(f"window.eegdPerf.paints >= {start + n}", timeout=timeout_ms)


def trace_pixels(pg) -> dict:
    """How many pixels of the trace canvas are painted, and a digest of them."""
    return pg.evaluate("""() => {
        const cv = document.getElementById('trace-canvas');
        const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
        let painted = 0, hash = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i]) { painted++; hash = (hash * 31 + i + d[i - 3]) | 0; }
        return {painted, hash, total: d.length / 4};
    }""")


def select_stage(pg, name: str):
    pg.click(f'#graph [data-stage="{name}"]')
    pg.wait_for_selector(f'#editor[data-stage="{name}"]')


def test_page_loads_without_console_errors(page):
    wait_paints(page, 20)
    assert page.locator("#pipeline-state").inner_text() == "running"
    assert page.locator("#graph [data-stage]").count() == 10
    assert page.locator(".trace-label").count() == 8
    assert page.problems == []


def test_traces_are_drawn_and_move(page):
    deadline = time.monotonic() + 15
    while (before := trace_pixels(page))["painted"] <= 0.005 * before["total"] and time.monotonic() < deadline:
        page.wait_for_timeout(250)   # the first seconds of the stream fill the window from the right
    wait_paints(page, 10)
    page.wait_for_timeout(300)
    after = trace_pixels(page)
    assert before["painted"] > 0.005 * before["total"], before
    assert after["painted"] > 0.005 * after["total"], after
    assert after["hash"] != before["hash"], "the traces did not move"

    page.click("#pause")
    frozen = trace_pixels(page)
    page.wait_for_timeout(600)
    assert trace_pixels(page)["hash"] == frozen["hash"], "paused traces changed"
    page.click("#pause")
    wait_paints(page, 5)
    assert trace_pixels(page)["hash"] != frozen["hash"]

    # hiding a channel takes its lane away
    page.click('.trace-label[data-channel="0"]')
    page.wait_for_function("document.querySelectorAll('.trace-label').length === 7")


def test_param_change_in_editor_shows_in_api(page, server):
    select_stage(page, "bandpass")
    field = page.locator('#editor [data-param="high_hz"]')
    assert field.is_enabled()
    field.fill("31.5")
    field.press("Enter")
    page.wait_for_selector("#editor .form-msg:has-text('applied')")
    stages = {s["name"]: s for s in server.api("GET", "/api/pipeline").json()["stages"]}
    assert stages["bandpass"]["params"]["high_hz"] == 31.5

    # an invalid value is refused with the daemon's reason, and nothing changes
    field.fill("0.5")
    field.press("Enter")
    page.wait_for_selector("#editor .form-msg.error")
    stages = {s["name"]: s for s in server.api("GET", "/api/pipeline").json()["stages"]}
    assert stages["bandpass"]["params"]["high_hz"] == 31.5


def test_recording_from_page_creates_session_and_locks_params(page, server):
    page.fill("#rec-participant", "P-ui-test")
    page.fill("#rec-notes", "browser test")
    page.click("#rec-toggle")
    page.wait_for_selector("#rec-dot.on")
    page.wait_for_function("document.getElementById('marker-btn').disabled === false")

    # while recording, the recorded stage and everything upstream are locked, with the reason
    state = server.api("GET", "/api/pipeline").json()
    locked = {s["name"] for s in state["stages"] if s.get("locked")}
    assert "emulator" in locked
    select_stage(page, "emulator")
    page.wait_for_selector("#editor .lock-note:not([hidden])")
    fields = page.locator("#editor [data-param]")
    assert fields.count() > 0
    for i in range(fields.count()):
        assert fields.nth(i).is_disabled()
    assert "Locked while recording" in page.locator("#editor .lock-note").inner_text()
    # a stage downstream of the recorded one stays editable
    unlocked = [s["name"] for s in state["stages"] if not s.get("locked") and s["type"] == "bandpass"]
    select_stage(page, unlocked[0])
    assert page.locator('#editor [data-param="high_hz"]').is_enabled()

    page.fill("#marker-label", "eyes closed")
    page.click("#marker-btn")
    page.wait_for_function("document.getElementById('rec-markers').textContent === '1'")
    page.wait_for_function("document.getElementById('rec-elapsed').textContent !== '—'")

    page.click("#rec-toggle")
    page.wait_for_selector("#rec-dot:not(.on)")
    page.wait_for_selector("#sessions li[data-session]")
    sessions = server.api("GET", "/api/recordings").json()
    assert len(sessions) == 1
    name = page.locator("#sessions li[data-session]").first.get_attribute("data-session")
    assert name in str(sessions[0])
    assert "P-ui-test" in str(sessions[0])
    folder = next(server.data_dir.iterdir())
    assert (folder / "session_meta.json").exists()

    # after the recording the lock is gone
    select_stage(page, "emulator")
    page.wait_for_function("!document.querySelector('#editor [data-param]').disabled")


def test_session_download_links(page, server):
    """Each past session lists its files, and the links download them."""
    assert server.api("POST", "/api/recording/start", json={"participant": "P-dl"}).ok
    time.sleep(1.0)
    assert server.api("POST", "/api/recording/stop").ok
    page.click("#sessions-refresh")
    links = page.locator("#sessions li[data-session] a")
    links.first.wait_for()
    names = [links.nth(i).get_attribute("download") for i in range(links.count())]
    if server.api("GET", links.first.get_attribute("href")).status_code == 404:
        pytest.skip("the daemon does not serve session files yet (GET /api/recordings/{session}/{file})")
    assert "session_meta.json" in names
    for i in range(links.count()):
        with page.expect_download() as dl:
            links.nth(i).click()
        assert Path(dl.value.path()).stat().st_size > 0, names[i]


def test_disconnect_then_live_again(page, server):
    server.kill()
    page.wait_for_selector('#conn[data-state="disconnected"]', timeout=10000)
    assert "disconnected" in page.locator("#conn").inner_text()
    server.start()
    page.wait_for_selector('#conn[data-state="live"]', timeout=15000)
    wait_paints(page, 10)


def test_screenshot_for_readme(page, server):
    assert server.api("POST", "/api/recording/start", json={"participant": "P014", "notes": "eyes open"}).ok
    time.sleep(1.5)
    assert server.api("POST", "/api/recording/stop").ok
    page.click("#sessions-refresh")
    page.wait_for_timeout(10500)  # fill the 10 s window and let the spectrum settle
    out = ROOT / "docs" / "screenshot.png"
    out.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(out))
    assert out.stat().st_size > 20_000


def test_frame_rate_at_32_channels_4000_sps(page, server):
    """Prints the page's frame rate at 32 ch × 4000 SPS (BENCHMARKS.md); asserts only that it ran."""
    r = server.api("POST", "/api/pipeline/start", json=pipeline(32, 4000))
    assert r.ok, r.text
    page.wait_for_function("document.querySelectorAll('.trace-label').length === 32", timeout=15000)
    page.select_option("#window", "20")
    wait_paints(page, 10)
    page.evaluate("window.eegdPerf.paintMs.length = 0")
    frames = page.evaluate("""() => new Promise(done => {
        const t = [];
        const step = now => { t.push(now); if (now - t[0] < 10000) requestAnimationFrame(step); else done(t); };
        requestAnimationFrame(step);
    })""")
    paint = page.evaluate("window.eegdPerf.paintMs.slice()")
    gaps = [b - a for a, b in zip(frames, frames[1:])]
    fps = 1000 * len(gaps) / (frames[-1] - frames[0])
    paint.sort()
    p50 = statistics.median(paint)
    p99 = paint[int(0.99 * (len(paint) - 1))]
    print(f"\nUI at 32 ch x 4000 SPS, 20 s window, {VIEWPORT['width']}x{VIEWPORT['height']}: "
          f"{fps:.1f} fps over {len(gaps)} frames (frame gap p99 {sorted(gaps)[int(0.99 * (len(gaps) - 1))]:.1f} ms); "
          f"trace paint p50 {p50:.2f} ms, p99 {p99:.2f} ms over {len(paint)} paints")
    assert len(paint) > 0 and len(gaps) > 0


def test_frame_parser_reads_the_wire_format(page):
    """`ui/assets/frame.js` decodes a frame built here byte by byte from docs/protocol.md."""
    import struct
    values = [1.5, -2.25, 3.0, 1e-3, -40.0, 7.0]   # 2 channels × 3 samples, channel-major
    head = struct.pack("<4sHHIIdQq", b"EEGD", 1, 1, 2, 3, 4000.0, 2**40 + 7, 1_795_000_000_123_456_789)
    frame = list(head + struct.pack("<6f", *values))
    got = page.evaluate("""async bytes => {
        const { parseFrame } = await import('/assets/frame.js');
        const f = parseFrame(new Uint8Array(bytes).buffer);
        let bad = null;
        try { parseFrame(new Uint8Array(bytes.slice(0, 40 + 8)).buffer); } catch (e) { bad = e.message; }
        return { ...f, tsNs: String(f.tsNs), data: Array.from(f.data), bad };
    }""", frame)
    assert (got["kind"], got["channels"], got["samples"], got["rate"]) == (1, 2, 3, 4000.0)
    assert got["seq"] == 2**40 + 7
    assert got["tsNs"] == "1795000000123456789"
    assert got["data"] == pytest.approx(values)
    assert got["bad"] and "header says" in got["bad"]


def test_every_spike_shows_after_decimation(page):
    """One sample of 100 µV among 80 000 zeros (20 s at 4000 SPS) still reaches its height on screen."""
    got = page.evaluate("""async () => {
        const { TraceView } = await import('/assets/traces.js');
        const area = document.createElement('div');
        area.style.cssText = 'position:fixed;left:0;top:0;width:800px;height:200px';
        const mk = t => area.appendChild(document.createElement(t));
        const [grid, canvas, labels, empty] = [mk('canvas'), mk('canvas'), mk('div'), mk('div')];
        document.body.appendChild(area);
        const tv = new TraceView({ area, grid, canvas, labels, empty });
        tv.setWindow(20);
        tv.setScale(400);                       // one lane = 400 µV
        const rate = 4000, n = rate * 20, data = new Float32Array(n);
        data[54321] = 100;                      // the spike
        tv.ingest({ channels: 1, samples: n, rate, tsNs: 0n, data });
        tv.draw();
        const ctx = canvas.getContext('2d');
        const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
        const W = canvas.width;
        let top = canvas.height, topX = -1;
        const right = tv.gx + tv.W - 60;        // left of the scale bar
        for (let y = 0; y < canvas.height; y++) for (let x = 0; x < right; x++) {
            if (px[(y * W + x) * 4 + 3] === 0) continue;
            if (y < top) { top = y; topX = x; }
        }
        area.remove();
        return { top, topX, W, laneH: tv.laneH, spp: tv.spp, gx: tv.gx, plotW: tv.W, centre: tv.laneH / 2 };
    }""")
    # the baseline sits mid-lane; the spike rises a quarter lane (100 µV at 400 µV/div) above it
    expected_top = round(got["centre"] - got["laneH"] / 4)
    assert got["spp"] > 50, got                     # many samples per pixel: decimation is at work
    assert abs(got["top"] - expected_top) <= 1, got
    expected_x = got["gx"] + got["plotW"] - (80000 - 54321) / got["spp"]
    assert abs(got["topX"] - expected_x) <= 2, got


# ---- errors where the user looks, and the layout at 1280×720 -------------------------------------

@pytest.fixture()
def small_page(browser, server):
    """The page in a 1280×720 window, the smallest laptop screen it must serve."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 720})
    pg = ctx.new_page()
    pg.goto(server.url)
    pg.wait_for_selector('#conn[data-state="live"]', timeout=15000)
    pg.wait_for_selector('#pipeline-state[data-state="running"]', timeout=15000)
    yield pg
    ctx.close()


def wait_polls(pg, n: int = 2):
    """Waits for `n` more polls of the pipeline state (each rewrites the banner and panels)."""
    for _ in range(n):
        with pg.expect_response(lambda r: r.url.endswith("/api/pipeline") and r.request.method == "GET", timeout=10000):
            pass


def in_view_and_on_top(pg, selector: str) -> bool:
    """True if the element is inside the window and is what a click at its centre would hit."""
    return pg.evaluate("""sel => {
        const el = document.querySelector(sel);
        if (!el) return false;
        const r = el.getBoundingClientRect();
        if (r.width === 0 || r.height === 0) return false;
        if (r.top < 0 || r.left < 0 || r.bottom > innerHeight || r.right > innerWidth) return false;
        const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
        return hit !== null && (hit === el || el.contains(hit));
    }""", selector)


def test_a_broken_file_load_shows_its_errors_and_they_stay(small_page, server, tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("stages:\n  - emulator: { channels: 4 }\n  - notch: { hzz: 50 }\n")
    small_page.set_input_files("#pipeline-file", str(bad))
    small_page.wait_for_selector("#notice:not([hidden])")
    text = small_page.locator("#notice-text").inner_text()
    assert "broken.yaml" in text and ":3:" in text and "hzz" in text, text
    assert in_view_and_on_top(small_page, "#notice-text")
    wait_polls(small_page)        # the state polls that used to hide it
    assert small_page.locator("#notice").is_visible()
    assert server.api("GET", "/api/pipeline").json()["state"] == "running", "the running pipeline was kept"
    small_page.click("#notice-close")
    assert small_page.locator("#notice").is_hidden()


def test_start_while_recording_says_why(small_page, server):
    assert server.api("POST", "/api/recording/start", json={"participant": "P-ui"}).ok
    small_page.wait_for_selector("#rec-pill:not([hidden])")
    # Another source (a 1000 SPS emulator) needs a restart, which a recording refuses; the same
    # sources would be applied live.
    small_page.select_option("#preset", "record-csv")
    small_page.click("#pipeline-start")
    small_page.wait_for_selector("#notice:not([hidden])")
    assert "recording" in small_page.locator("#notice-text").inner_text()
    wait_polls(small_page)
    assert small_page.locator("#notice").is_visible()
    assert server.api("POST", "/api/recording/stop").ok


def test_recording_status_is_visible_at_1280x720(small_page, server):
    for sel in ["#rec-toggle", "#rec-elapsed", "#rec-participant"]:
        assert in_view_and_on_top(small_page, sel), f"{sel} is hidden or covered at 1280×720"
    small_page.click("#rec-toggle")
    small_page.wait_for_selector("#rec-dot.on")
    small_page.wait_for_function("document.getElementById('rec-elapsed').textContent !== '—'")
    for sel in ["#rec-toggle", "#rec-elapsed", "#rec-pill"]:
        assert in_view_and_on_top(small_page, sel), f"{sel} is hidden or covered while recording"
    assert "REC" in small_page.locator("#rec-pill").inner_text()
    small_page.click("#rec-toggle")
    small_page.wait_for_selector("#rec-pill[hidden]", state="attached")


def test_top_bar_stop_asks_before_ending_a_recording(small_page, server):
    assert server.api("POST", "/api/recording/start", json={"participant": "P-stop"}).ok
    small_page.wait_for_selector("#rec-pill:not([hidden])")
    asked = []
    small_page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    small_page.click("#pipeline-stop")
    assert asked and "recording" in asked[0]
    state = server.api("GET", "/api/pipeline").json()
    assert state["state"] == "running" and state["recording"], "cancelling kept the recording"
    small_page.once("dialog", lambda d: d.accept())
    small_page.click("#pipeline-stop")
    small_page.wait_for_selector('#pipeline-state[data-state="stopped"]')
    assert not server.api("GET", "/api/pipeline").json()["recording"]


def test_editor_errors_show_at_the_top_of_the_editor(small_page, server):
    select_stage(small_page, "bandpass")
    field = small_page.locator('#editor [data-param="high_hz"]')
    field.fill("0.5")
    field.press("Enter")
    small_page.wait_for_selector("#editor .form-msg.error")
    assert in_view_and_on_top(small_page, "#editor .form-msg.error"), "the editor's error is below the fold"


def test_stale_panels_look_stale_after_a_stop(small_page, server):
    assert small_page.locator("#stale-note").is_hidden()
    assert server.api("POST", "/api/pipeline/stop").ok
    small_page.wait_for_selector("#stale-note:not([hidden])")
    assert small_page.evaluate("document.body.classList.contains('stopped')")
    opacity = small_page.evaluate("Number(getComputedStyle(document.querySelector('.trace-area')).opacity)")
    assert opacity < 1
    small_page.click("#pipeline-start")
    small_page.wait_for_selector("#stale-note[hidden]", state="attached")
