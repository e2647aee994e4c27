"""What a web page or a hostile client can do to `eegd serve`, tried from outside with the
clients users have (`requests`, `websockets`): foreign origins, DNS rebinding, oversized bodies,
and a pipeline file that would write into a recorded session (docs/protocol.md, "Hosts and
origins" and "Limits"; README.md, "Limits")."""
import asyncio
import os
import signal
import subprocess

import pytest
import requests
import websockets
from websockets.exceptions import InvalidStatus

PIPELINE = """stages:
  - emulator: { channels: 4, rate: 1000, batch: 10 }
  - to_voltage: {}
  - websocket_sink: { topic: eeg }
recording: { format: csv }
"""


@pytest.fixture
def daemon(eegd_bin, tmp_path):
    """A running `eegd serve` on a free port; yields (base URL, data dir)."""
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text(PIPELINE)
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k not in ("EEGD_TOKEN", "EEGD_ALLOW_ORIGIN")}
    proc = subprocess.Popen(
        [str(eegd_bin), "serve", "--config", str(cfg), "--bind", "127.0.0.1:0", "--data-dir", str(data),
         "--allow-origin", "http://lab.example:3000"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )
    line = proc.stdout.readline()
    assert line.startswith("eegd listening on "), line
    yield line.split()[-1], data
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def state(base):
    return requests.get(f"{base}/api/pipeline", timeout=10).json()["state"]


def test_a_page_elsewhere_cannot_stop_the_pipeline(daemon):
    base, _ = daemon
    # What a form or fetch() on evil.example sends: text/plain needs no CORS preflight.
    r = requests.post(f"{base}/api/pipeline/stop", data="x", timeout=10,
                      headers={"Origin": "http://evil.example", "Content-Type": "text/plain"})
    assert r.status_code == 403
    assert r.headers["Content-Type"] == "application/json"
    assert "evil.example" in r.json()["error"]
    assert state(base) == "running"
    # The allowed origin may.
    r = requests.post(f"{base}/api/pipeline/stop", timeout=10, headers={"Origin": "http://lab.example:3000"})
    assert r.status_code == 200, r.text
    assert state(base) == "stopped"


def test_dns_rebinding_is_refused(daemon):
    base, _ = daemon
    port = base.rsplit(":", 1)[1]
    r = requests.get(f"{base}/api/recordings", timeout=10, headers={"Host": f"evil.example:{port}"})
    assert r.status_code == 403
    assert "does not name this daemon" in r.json()["error"]
    r = requests.get(f"{base}/api/recordings", timeout=10, headers={"Host": f"localhost:{port}"})
    assert r.status_code == 200


def test_websockets_from_a_foreign_origin_are_refused(daemon):
    base, _ = daemon
    ws = base.replace("http://", "ws://")

    async def main():
        for path in ("/ws/control", "/ws/data?topic=eeg"):
            with pytest.raises(InvalidStatus) as e:
                async with websockets.connect(ws + path, origin="http://evil.example"):
                    pass
            assert e.value.response.status_code == 403
        async with websockets.connect(ws + "/ws/data?topic=eeg", origin=base) as c:
            frame = await asyncio.wait_for(c.recv(), 10)
            assert frame[:4] == b"EEGD"

    asyncio.run(main())


def test_an_oversized_body_is_the_json_error(daemon):
    base, _ = daemon
    r = requests.post(f"{base}/api/pipeline/start", data=b"x" * (2 << 20), timeout=30)
    assert r.status_code == 413
    assert r.headers["Content-Type"] == "application/json"
    assert r.json()["error"]
    assert state(base) == "running"


def test_a_pipeline_cannot_overwrite_a_recorded_session(daemon):
    base, data = daemon
    assert requests.post(f"{base}/api/recording/start", json={"participant": "p1"}, timeout=10).ok
    session = requests.post(f"{base}/api/recording/stop", timeout=30).json()["session"]
    before = (data / session / "recording.csv").read_bytes()
    evil = f"stages:\n  - emulator: {{}}\n  - csv_sink: {{ path: {session}/recording.csv }}\n"
    r = requests.post(f"{base}/api/pipeline/start", data=evil, timeout=10)
    assert r.status_code == 400
    err = r.json()["errors"][0]
    assert (err["line"], "recorded session" in err["message"]) == (3, True), err
    assert (data / session / "recording.csv").read_bytes() == before
    assert state(base) == "running"
