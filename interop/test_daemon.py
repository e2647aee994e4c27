"""`eegd serve` driven by a Python client: `requests` for the HTTP API, `websockets` for the
binary data frames and the control socket (docs/protocol.md)."""
import asyncio
import json
import pathlib
import struct

import pytest
import requests
import websockets

PIPELINE = """stages:
  - emulator: { channels: 4, rate: 1000, batch: 10 }
  - to_voltage: {}
  - notch: { hz: 50 }
  - bandpass: { low_hz: 1, high_hz: 40, order: 2 }
  - websocket_sink: { topic: eeg }
recording: { format: csv }
"""

HEADER = struct.Struct("<4sHHIIdQq")  # magic, version, kind, channels, samples, rate, seq, t0


@pytest.fixture
def daemon(serve):
    """A running `eegd serve` on a free port; returns (base URL, data dir)."""
    return serve(PIPELINE)


def stage(p, name):
    return next(s for s in p["stages"] if s["name"] == name)


def test_api_essentials(daemon):
    base, data = daemon
    assert requests.get(f"{base}/api/health").json() == {"status": "ok"}
    p = requests.get(f"{base}/api/pipeline").json()
    assert p["state"] == "running"
    assert stage(p, "to_voltage")["output"]["channels"] == 4
    assert any(s["type"] == "bandpass" for s in requests.get(f"{base}/api/stages").json())

    r = requests.patch(f"{base}/api/stages/bandpass/params", json={"high_hz": 30})
    assert r.status_code == 200, r.text
    assert stage(requests.get(f"{base}/api/pipeline").json(), "bandpass")["params"]["high_hz"] == 30
    assert requests.patch(f"{base}/api/stages/bandpass/params", json={"high_hz": -1}).status_code == 400
    assert requests.patch(f"{base}/api/stages/nope/params", json={"hz": 1}).status_code == 404

    r = requests.post(f"{base}/api/recording/start", json={"participant": "py01"})
    assert r.status_code == 200, r.text
    assert requests.patch(f"{base}/api/stages/to_voltage/params", json={"vref": 2.5}).status_code == 409
    assert requests.post(f"{base}/api/markers", json={"label": "go"}).status_code == 200
    r = requests.post(f"{base}/api/recording/stop")
    assert r.status_code == 200, r.text
    folder = data / r.json()["session"]
    assert {p.name for p in folder.iterdir()} >= {"session_meta.json", "pipeline.yaml", "recording.csv"}
    meta = json.loads((folder / "session_meta.json").read_text())
    assert meta["participant"] == "py01" and meta["markers"][0]["text"] == "go"

    r = requests.post(f"{base}/api/pipeline/start", data="stages:\n  - emulater: {}\n")
    assert r.status_code == 400
    assert (r.json()["errors"][0]["line"], r.json()["errors"][0]["column"]) == (2, 5)
    assert requests.get(f"{base}/api/pipeline").json()["state"] == "running"
    assert requests.post(f"{base}/api/pipeline/stop").json()["state"] == "stopped"
    assert requests.post(f"{base}/api/pipeline/restart").json()["state"] == "running"
    assert "eegd_stage_packets_total" in requests.get(f"{base}/metrics").text


def test_binary_frames_and_control_pushes(daemon):
    base, _ = daemon
    ws_base = base.replace("http://", "ws://")

    async def run():
        async with websockets.connect(f"{ws_base}/ws/data?topic=eeg") as ws:
            frames = [await asyncio.wait_for(ws.recv(), 10) for _ in range(3)]
        for f in frames:
            magic, version, kind, ch, n, rate, seq, t0 = HEADER.unpack_from(f)
            assert (magic, version, kind, ch, n, rate) == (b"EEGD", 1, 1, 4, 10, 1000.0)
            assert len(f) == HEADER.size + ch * n * 4
        seqs = [HEADER.unpack_from(f)[6] for f in frames]
        assert seqs == sorted(seqs)

        async with websockets.connect(f"{ws_base}/ws/control") as a, websockets.connect(
            f"{ws_base}/ws/control"
        ) as b:
            assert json.loads(await a.recv())["event"] == "state"
            assert json.loads(await b.recv())["event"] == "state"
            await a.send(json.dumps({"stage_id": "bandpass", "cmd": "UpdateParam", "key": "high_hz", "value": 25}))
            pushed = json.loads(await asyncio.wait_for(b.recv(), 10))
            assert pushed["event"] == "params" and pushed["params"]["high_hz"] == 25

    asyncio.run(run())
