"""Shared fixtures of the interop tests: the eegd binary, run from the repository root."""
import os
import pathlib
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
