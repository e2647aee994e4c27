"""Shared fixtures of the interop tests: the eegd binary, run from the repository root."""
import os
import pathlib
import signal
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def eegd_bin() -> pathlib.Path:
    """Path to an `eegd` binary: `$EEGD_BIN`, else the debug build (built here if missing)."""
    if os.environ.get("EEGD_BIN"):
        return pathlib.Path(os.environ["EEGD_BIN"])
    subprocess.run(["cargo", "build", "-q", "-p", "eegd"], cwd=ROOT, check=True)
    return ROOT / "target" / "debug" / "eegd"


@pytest.fixture
def run_pipeline(eegd_bin, tmp_path):
    """Writes `yaml` to a file and runs `eegd run` on it; returns the completed process."""

    def run(yaml: str, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
        path = tmp_path / "pipeline.yaml"
        path.write_text(yaml)
        proc = subprocess.run(
            [str(eegd_bin), "run", str(path), *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert proc.returncode == 0, f"eegd run failed:\n{proc.stderr}"
        return proc

    return run


@pytest.fixture
def serve(eegd_bin, tmp_path):
    """Starts `eegd serve` on a pipeline (YAML text) on a free loopback port, without
    `EEGD_TOKEN`, data under `tmp_path/data`; returns (base URL, data dir). At teardown each
    daemon started is sent SIGTERM and must exit 0."""
    procs = []

    def start(pipeline: str) -> tuple[str, pathlib.Path]:
        cfg = tmp_path / "pipeline.yaml"
        cfg.write_text(pipeline)
        data = tmp_path / "data"
        env = {k: v for k, v in os.environ.items() if k != "EEGD_TOKEN"}
        proc = subprocess.Popen(
            [str(eegd_bin), "serve", "--config", str(cfg), "--bind", "127.0.0.1:0", "--data-dir", str(data)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        procs.append(proc)
        line = proc.stdout.readline()
        assert line.startswith("eegd listening on "), line
        return line.split()[-1], data

    yield start
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
