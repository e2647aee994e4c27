"""A stand-in for `eegd serve` that the browser UI can be developed and tested against.

It serves `ui/` and implements the HTTP and WebSocket API of DESIGN §7 with synthetic data in the
exact binary frame format (docs/protocol.md). Only the Python standard library, numpy and the
`websockets` package (its sans-I/O protocol) are used.

    python interop/mock_daemon.py --port 8080 [--channels 32 --rate 4000]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import math
import mimetypes
import os
import struct
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
from websockets.datastructures import Headers
from websockets.frames import Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

ROOT = Path(__file__).resolve().parent.parent
UI = ROOT / "ui"

PRESETS = {
    "default": {
        "stages": [
            {"emulator": {"channels": 8, "rate": 4000, "gain": 24, "line_hz": 50}},
            {"to_voltage": {}},
            {"notch": {"hz": 50}},
            {"bandpass": {"low_hz": 1, "high_hz": 40, "order": 4}},
            {"websocket_sink": {"topic": "eeg", "max_rate_hz": 60}},
            {"downsample": {"inputs": ["bandpass"], "factor": 16}},
            {"fft": {"size": 256, "hop": 64}},
            {"websocket_sink": {"name": "spectrum_ws", "topic": "spectrum"}},
            {"band_power": {"inputs": ["fft"]}},
            {"websocket_sink": {"name": "bands_ws", "topic": "bands"}},
        ]
    },
}
RESERVED = {"name", "inputs", "group", "on_error", "queue"}
LABELS_10_20 = "Fp1 Fp2 F3 F4 C3 C4 P3 P4 O1 O2 F7 F8 T7 T8 P7 P8 Fz Cz Pz Oz FC1 FC2 CP1 CP2 FC5 FC6 CP5 CP6 TP9 TP10 POz FCz".split()


def load_catalogue() -> list[dict]:
    """The real stage catalogue (`eegd stages --json`) when a binary is at hand, else a minimal one."""
    exe = os.environ.get("EEGD_BIN")
    if exe and Path(exe).exists():
        out = subprocess.run([exe, "stages", "--json"], capture_output=True, check=True, text=True)
        return json.loads(out.stdout)
    num = {"type": "number"}
    return [
        {"type": t, "role": r, "params_schema": {"type": "object", "additionalProperties": False, "properties": p}}
        for t, r, p in [
            ("emulator", "source", {"channels": {"type": "integer", "minimum": 1, "maximum": 32, "default": 8},
                                    "rate": {"type": "integer", "default": 4000}, "gain": {"type": "integer"},
                                    "line_hz": num, "signal": {"type": "string", "enum": ["eeg", "sine", "test"]}}),
            ("to_voltage", "transform", {"vref": {"type": ["number", "null"]}}),
            ("notch", "transform", {"hz": num, "q": num, "harmonics": {"type": "integer"}}),
            ("bandpass", "transform", {"low_hz": num, "high_hz": num, "order": {"type": "integer", "minimum": 1, "maximum": 8}}),
            ("downsample", "transform", {"factor": {"type": "integer", "minimum": 1}}),
            ("fft", "transform", {"size": {"type": "integer"}, "hop": {"type": ["integer", "null"]}}),
            ("band_power", "transform", {"bands": {"type": "array"}}),
            ("websocket_sink", "sink", {"topic": {"type": "string"}, "max_rate_hz": {"type": ["number", "null"]}}),
        ]
    ]


def iso(ns: int) -> str:
    """RFC 3339 with milliseconds, UTC."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000 // 1_000_000:03d}Z"


def frame(kind: int, rate: float, seq: int, ts_ns: int, data: np.ndarray) -> bytes:
    """One binary data frame: `EEGD`, version 1, kind, channels, samples, rate, seq, timestamp, f32s."""
    ch, n = data.shape
    head = struct.pack("<4sHHIIdQq", b"EEGD", 1, kind, ch, n, float(rate), seq, ts_ns)
    return head + np.ascontiguousarray(data, dtype="<f4").tobytes()


class Mock:
    def __init__(self, data_dir: Path, channels: int | None, rate: int | None):
        self.catalogue = load_catalogue()
        self.schemas = {c["type"]: c.get("params_schema", {}) for c in self.catalogue}
        self.data_dir = data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.control: set = set()
        self.data_clients: dict[str, set] = {}
        self.recording: dict | None = None
        self.markers: list = []
        self.rng = np.random.default_rng(0)
        self.state = "stopped"
        self.stages: list[dict] = []
        self.config: dict = {}
        self.tree: dict = {}
        pre = copy.deepcopy(PRESETS["default"])
        if channels or rate:
            emu = pre["stages"][0]["emulator"]
            emu["channels"] = channels or emu["channels"]
            emu["rate"] = rate or emu["rate"]
        err = self.start(pre)
        assert err is None, err

    # --- pipeline -------------------------------------------------------------------------------
    def start(self, cfg: dict) -> str | None:
        stages, names = [], set()
        entries = cfg.get("stages")
        if not isinstance(entries, list) or not entries:
            return "`stages` must be a non-empty list"
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or len(entry) != 1:
                return f"stage {i + 1}: expected a single-key map"
            (typ, params), = entry.items()
            params = dict(params or {})
            if typ not in self.schemas:
                return f"unknown stage type `{typ}`"
            name = params.pop("name", typ)
            if name in names:
                return f"duplicate stage name `{name}`"
            inputs = params.pop("inputs", [stages[-1]["name"]] if stages else [])
            for k in RESERVED:
                params.pop(k, None)
            err = self.check(typ, params)
            if err:
                return f"`{name}`: {err}"
            names.add(name)
            stages.append({"name": name, "type": typ, "params": params, "inputs": inputs,
                           "packets_in": 0, "packets_out": 0, "drops": 0, "errors": 0})
        self.tree, self.stages, self.state = cfg, stages, "running"
        self.config = {"name": "request", "source": json.dumps(cfg, indent=1), "tree": cfg}
        self.t0_ns, self.sent = time.time_ns(), 0
        self.spec_next = self.t0_ns
        return None

    def check(self, typ: str, params: dict) -> str | None:
        props = self.schemas[typ].get("properties", {})
        for k, v in params.items():
            if k not in props:
                return f"unknown field `{k}`"
            s = props[k]
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if "minimum" in s and v < s["minimum"]:
                    return f"`{k}` must be at least {s['minimum']}"
                if "maximum" in s and v > s["maximum"]:
                    return f"`{k}` must be at most {s['maximum']}"
                if "exclusiveMinimum" in s and v <= s["exclusiveMinimum"]:
                    return f"`{k}` must be above {s['exclusiveMinimum']}"
        if typ == "bandpass" and params.get("low_hz", 1) >= params.get("high_hz", 40):
            return "`low_hz` must be below `high_hz`"
        return None

    def stage(self, name: str) -> dict | None:
        return next((s for s in self.stages if s["name"] == name), None)

    def locked(self) -> set[str]:
        """The recording input and everything upstream of it."""
        if not self.recording:
            return set()
        todo, seen = [self.record_input()], set()
        while todo:
            n = todo.pop()
            if n in seen:
                continue
            seen.add(n)
            s = self.stage(n)
            todo.extend(s["inputs"] if s else [])
        return seen

    def record_input(self) -> str:
        for s in self.stages:
            if s["type"] == "to_voltage":
                return s["name"]
        return self.stages[0]["name"]

    def emulator(self) -> dict:
        return next((s["params"] for s in self.stages if s["type"] == "emulator"), {})

    def labels(self) -> list[str]:
        ch = int(self.emulator().get("channels", 8))
        return [LABELS_10_20[i] if i < len(LABELS_10_20) else f"Ch{i + 1}" for i in range(ch)]

    def snapshot(self) -> dict:
        locked = self.locked()
        emu = self.emulator()
        rate = float(emu.get("rate", 4000))
        out = []
        for s in self.stages:
            item = {k: s[k] for k in ("name", "type", "params", "inputs", "packets_in", "packets_out", "drops", "errors")}
            item.update(locked=s["name"] in locked, locked_by="recorder" if s["name"] in locked else None,
                        state="running" if self.state == "running" else "stopped", group="acquire",
                        packets=s["packets_out"], process_us={"p50": 3, "p99": 9, "p999": 14, "max": 20, "mean": 3.5})
            if s["type"] in ("emulator", "to_voltage", "notch", "bandpass"):
                item["output"] = {"kind": "voltage" if s["type"] != "emulator" else "raw", "rate": rate,
                                  "channels": len(self.labels()), "labels": self.labels(),
                                  "units": ["uV"] * len(self.labels())}
            out.append(item)
        rec = None
        if self.recording:
            r = self.recording
            out.append({"name": "recorder", "type": f"{r['format']}_sink", "inputs": [self.record_input()],
                        "params": {"path": r["data_file"]}, "locked": True, "locked_by": "recorder",
                        "packets_in": 0, "packets_out": 0, "drops": 0, "errors": 0})
            rec = {"session": r["session"], "path": r["session"], "data_file": r["data_file"], "format": r["format"],
                   "started_at": iso(r["started_ns"]),
                   "bytes": self.rec_bytes()}
        return {"state": self.state, "error": None, "config": self.config, "stages": out, "recording": rec}

    def metrics(self) -> str:
        """Prometheus text: a latency histogram and the process's CPU time."""
        bounds = [10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 1.0]
        n = self.sent // 16
        cum = [0, int(0.2 * n), int(0.9 * n), int(0.995 * n), n, n]
        lines = [f'eegd_latency_seconds_bucket{{le="{b}"}} {c}' for b, c in zip(bounds, cum)]
        lines.append(f'eegd_latency_seconds_bucket{{le="+Inf"}} {n}')
        cpu = os.times()
        lines.append(f"process_cpu_seconds_total {cpu.user + cpu.system}")
        return "\n".join(lines) + "\n"

    def rec_bytes(self) -> int:
        r = self.recording
        secs = (time.time_ns() - r["started_ns"]) / 1e9
        return int(256 * (len(self.labels()) + 1) + secs * float(self.emulator().get("rate", 4000)) * 3 * len(self.labels()))

    # --- synthetic data ------------------------------------------------------------------------
    def eeg_block(self, start: int, n: int, ch: int, rate: float) -> np.ndarray:
        t = (start + np.arange(n)) / rate
        k = np.arange(ch)[:, None]
        alpha = 20 * np.sin(2 * math.pi * (9.5 + 0.15 * k) * t + k) * (0.6 + 0.4 * np.sin(2 * math.pi * 0.1 * t + k))
        slow = 15 * np.sin(2 * math.pi * 1.3 * t + 0.7 * k)
        noise = self.rng.normal(0, 1.5, (ch, n))
        x = alpha + slow + noise
        # a blink on the frontal channels every 4 s
        ph = (t % 4.0) - 2.0
        x[: min(2, ch)] += 120 * np.exp(-(ph / 0.08) ** 2)
        return x.astype(np.float32)

    async def produce(self):
        """Streams frames to subscribers at about 60 frames/s, spectra and bands at 4/s."""
        seq = {"eeg": 0, "spectrum": 0, "bands": 0}
        while True:
            await asyncio.sleep(1 / 60)
            now = time.time_ns()
            if self.state != "running":
                continue
            emu = self.emulator()
            rate, ch = float(emu.get("rate", 4000)), int(emu.get("channels", 8))
            due = int((now - self.t0_ns) / 1e9 * rate)
            n = due - self.sent
            if n <= 0:
                continue
            ts = self.t0_ns + int(self.sent * 1e9 / rate)
            block = self.eeg_block(self.sent, n, ch, rate)
            self.sent = due
            for s in self.stages:
                s["packets_in"] += max(1, n // 16)
                s["packets_out"] += max(1, n // 16)
            if self.data_clients.get("eeg"):
                seq["eeg"] += 1
                await self.publish("eeg", frame(1, rate, seq["eeg"], ts, block))
            if now >= self.spec_next:
                self.spec_next = now + 250_000_000
                df = 250 / 256
                f = np.arange(129) * df
                psd = 40 / (1 + f) + 30 * np.exp(-((f - 10) / 1.5) ** 2) + 0.05
                psd = psd[None, :] * self.rng.uniform(0.7, 1.3, (ch, 129))
                seq["spectrum"] += 1
                await self.publish("spectrum", frame(2, df, seq["spectrum"], now, psd))
                edges = [(1, 4), (4, 8), (8, 13), (13, 30), (30, 45)]
                bp = np.stack([psd[:, (f >= lo) & (f < hi)].sum(axis=1) * df for lo, hi in edges], axis=1)
                seq["bands"] += 1
                await self.publish("bands", frame(3, 4.0, seq["bands"], now, bp))

    async def publish(self, topic: str, data: bytes):
        for ws in list(self.data_clients.get(topic, ())):
            try:
                await ws.send(data)
            except ConnectionError:
                self.data_clients[topic].discard(ws)

    async def push_control(self, msg: dict):
        for ws in list(self.control):
            try:
                await ws.send(json.dumps(msg))
            except ConnectionError:
                self.control.discard(ws)

    # --- HTTP -----------------------------------------------------------------------------------
    async def handle_api(self, method: str, path: str, body: bytes, query: str = "") -> tuple[int, object]:
        def parse():
            return json.loads(body or b"{}")

        if method == "GET" and path == "/api/health":
            return 200, {"status": "ok"}
        if method == "GET" and path == "/api/pipeline":
            return 200, self.snapshot()
        if method == "GET" and path == "/api/stages":
            return 200, self.catalogue
        if method == "GET" and path == "/api/presets":
            return 200, [{"name": k, "description": "The default pipeline.", "source": json.dumps(v)}
                         for k, v in sorted(PRESETS.items())]
        if method == "POST" and path == "/api/pipeline/start":
            try:
                cfg = parse()
            except json.JSONDecodeError as e:
                return 400, {"error": f"line {e.lineno}, column {e.colno}: {e.msg}"}
            preset = parse_qs(query).get("preset", [None])[0]
            if preset:
                cfg = {"preset": preset}
            if "preset" in cfg:
                if cfg["preset"] not in PRESETS:
                    return 404, {"error": f"no preset `{cfg['preset']}`"}
                cfg = copy.deepcopy(PRESETS[cfg["preset"]])
            if self.recording:
                return 409, {"error": "a recording is running; stop it first"}
            err = self.start(cfg)
            if err:
                return 400, {"error": err}
            await self.push_control({"event": "pipeline", "state": self.state})
            return 200, {"state": self.state}
        if method == "POST" and path == "/api/pipeline/stop":
            if self.recording:
                self.stop_recording()
            self.state = "stopped"
            await self.push_control({"event": "pipeline", "state": self.state})
            return 200, {"state": self.state}
        if method == "PATCH" and path.startswith("/api/stages/") and path.endswith("/params"):
            name = unquote(path[len("/api/stages/"):-len("/params")])
            s = self.stage(name)
            if not s:
                return 404, {"error": f"no stage `{name}`"}
            if name in self.locked():
                return 409, {"error": f"`{name}` is locked by the recording"}
            try:
                patch = parse()
            except json.JSONDecodeError as e:
                return 400, {"error": e.msg}
            merged = dict(s["params"])
            for k, v in patch.items():
                if v is None:
                    merged.pop(k, None)
                else:
                    merged[k] = v
            err = self.check(s["type"], merged)
            if err:
                return 400, {"error": err}
            s["params"] = merged
            await self.push_control({"event": "params", "stage": name, "params": merged})
            return 200, {"params": merged}
        if method == "POST" and path == "/api/recording/start":
            if self.recording:
                return 409, {"error": "already recording"}
            if self.state != "running":
                return 409, {"error": "the pipeline is not running"}
            req = parse()
            fmt = req.get("format") or "bdf"
            if fmt not in ("bdf", "edf", "csv"):
                return 400, {"error": f"unknown format `{fmt}`"}
            session = time.strftime("%Y%m%dT%H%M%S") + f"-{int(time.time_ns() % 1e6):06d}"
            self.recording = {"session": session, "participant": req.get("participant", ""),
                              "notes": req.get("notes", ""), "format": fmt, "started_ns": time.time_ns(),
                              "data_file": f"data.{fmt}"}
            self.markers = []
            await self.push_control({"event": "recording", "active": True, "session": session})
            return 200, {"session": session}
        if method == "POST" and path == "/api/recording/stop":
            if not self.recording:
                return 409, {"error": "not recording"}
            folder = self.stop_recording()
            await self.push_control({"event": "recording", "recording": None})
            return 200, json.loads((folder / "session_meta.json").read_text())
        if method == "GET" and path == "/api/recordings":
            out = []
            for d in sorted(self.data_dir.iterdir(), reverse=True):
                meta_p = d / "session_meta.json"
                if not meta_p.exists():
                    continue
                meta = json.loads(meta_p.read_text())
                out.append({**meta, "path": d.name, "bytes": (d / meta["data_file"]).stat().st_size})
            return 200, out
        if method == "POST" and path == "/api/markers":
            m = parse()
            if not self.recording:
                return 409, {"error": "not recording"}
            self.markers.append({"label": m.get("label", "marker"), "timestamp_ns": time.time_ns()})
            return 200, {"count": len(self.markers)}
        return 404, {"error": "not found"}

    def stop_recording(self) -> Path:
        r, self.recording = self.recording, None
        folder = self.data_dir / r["session"]
        folder.mkdir()
        secs = (time.time_ns() - r["started_ns"]) / 1e9
        meta = {"session": r["session"], "participant": r["participant"], "notes": r["notes"], "format": r["format"],
                "data_file": r["data_file"], "started_at": iso(r["started_ns"]),
                "stopped_at": iso(r["started_ns"] + int(secs * 1e9)), "markers": self.markers}
        (folder / "session_meta.json").write_text(json.dumps(meta, indent=1))
        (folder / "pipeline.yaml").write_text(json.dumps(self.config, indent=1))
        (folder / r["data_file"]).write_bytes(b"\0" * 1024)
        return folder

    async def serve_http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = Headers()
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip()] = v.strip()
                body = b""
                if int(headers.get("Content-Length", "0")):
                    body = await reader.readexactly(int(headers["Content-Length"]))
                url = urlsplit(target)
                if headers.get("Upgrade", "").lower() == "websocket":
                    await self.serve_ws(Request(target, headers), url, reader, writer)
                    return
                status, ctype, payload, extra = self.route(method, url.path, url.query, body)
                if asyncio.iscoroutine(status):
                    status, payload = await status
                    ctype, payload = "application/json", json.dumps(payload).encode()
                reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 409: "Conflict"}.get(status, "X")
                hdr = f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(payload)}\r\nCache-Control: no-store\r\n{extra}\r\n"
                writer.write(hdr.encode() + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    def route(self, method: str, path: str, query: str, body: bytes):
        if path == "/metrics":
            return 200, "text/plain; version=0.0.4", self.metrics().encode(), ""
        if path.startswith("/api/recordings/") and method == "GET":
            rel = unquote(path[len("/api/recordings/"):])
            f = (self.data_dir / rel).resolve()
            if self.data_dir.resolve() in f.parents and f.is_file():
                return 200, "application/octet-stream", f.read_bytes(), f"Content-Disposition: attachment; filename=\"{f.name}\"\r\n"
        if path.startswith("/api/"):
            return self.handle_api(method, path, body, query), None, None, ""
        rel = "index.html" if path == "/" else path.lstrip("/")
        f = (UI / rel).resolve()
        if method == "GET" and (UI.resolve() in f.parents) and f.is_file():
            ctype = mimetypes.guess_type(f.name)[0] or "application/octet-stream"
            if f.suffix == ".js":
                ctype = "text/javascript"
            return 200, ctype, f.read_bytes(), ""
        return 404, "text/plain", b"not found", ""

    async def serve_ws(self, request: Request, url, reader, writer):
        proto = ServerProtocol()
        proto.send_response(proto.accept(request))
        writer.write(b"".join(proto.data_to_send()))
        ws = WsConn(proto, writer)
        if url.path == "/ws/data":
            topic = parse_qs(url.query).get("topic", ["eeg"])[0]
            self.data_clients.setdefault(topic, set()).add(ws)
            registry = self.data_clients[topic]
        elif url.path == "/ws/control":
            self.control.add(ws)
            registry = self.control
            await ws.send(json.dumps({"event": "hello", "state": self.state}))
        else:
            return
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                proto.receive_data(chunk)
                for ev in proto.events_received():
                    if ev.opcode == Opcode.TEXT and registry is self.control:
                        msg = json.loads(ev.data)
                        if msg.get("cmd") == "UpdateParam":
                            await self.handle_api("PATCH", f"/api/stages/{msg['stage_id']}/params",
                                                  json.dumps({msg["key"]: msg["value"]}).encode())
                writer.write(b"".join(proto.data_to_send()))
        except ConnectionError:
            pass
        finally:
            registry.discard(ws)


class WsConn:
    def __init__(self, proto: ServerProtocol, writer: asyncio.StreamWriter):
        self.proto, self.writer = proto, writer

    async def send(self, data):
        if self.writer.is_closing():
            raise ConnectionError("closed")
        if isinstance(data, bytes):
            self.proto.send_binary(data)
        else:
            self.proto.send_text(data.encode())
        self.writer.write(b"".join(self.proto.data_to_send()))
        # a slow reader loses frames rather than holding up the stream (like the daemon)
        if self.writer.transport.get_write_buffer_size() > 8 << 20:
            raise ConnectionError("client too slow")


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--data-dir", default="/tmp/eegd-mock-data")
    ap.add_argument("--channels", type=int)
    ap.add_argument("--rate", type=int)
    a = ap.parse_args()
    mock = Mock(Path(a.data_dir), a.channels, a.rate)
    server = await asyncio.start_server(mock.serve_http, "127.0.0.1", a.port)
    print(f"listening on http://127.0.0.1:{a.port}", flush=True)
    async with server:
        await asyncio.gather(server.serve_forever(), mock.produce())


if __name__ == "__main__":
    asyncio.run(main())
