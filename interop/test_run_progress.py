"""`eegd run` headless: a progress line on a terminal, quiet when piped, and a summary at the end
either way. The terminal is a pseudo-terminal (Python's `pty`), as a user's shell would give."""
import os
import pty
import re
import select
import subprocess

PIPELINE = """\
stages:
  - emulator: { channels: 4, rate: 1000 }
  - to_voltage: {}
  - null_sink: {}
"""

# What every summary says, and a progress line: `\r`, clear-line, elapsed seconds, samples.
SUMMARY = re.compile(
    r"Summary: ran \d+\.\d s\n"
    r"  stream emulator: (\d+) samples × 4 channels at 1000 Hz \((\d+\.\d) s of data\), overruns 0\n"
    r"  drops: 0 \(stages 0, queues 0\); overruns: 0; errors: 0\n"
    r"  latency \(source → sinks\): p50 [\d.]+ µs, p99 [\d.]+ µs over \d+ packets\n"
)
PROGRESS = re.compile(r"\r\x1b\[2K +(\d+\.\d) s  (\d+) samples  0 drops( +recording [\d.]+ k?M?B)?")


def write_pipeline(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE)
    return path


def run_on_terminal(cmd, cwd):
    """Runs `cmd` with its stdin, stdout and stderr on a pseudo-terminal; returns its exit code
    and everything it wrote there."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    out = bytearray()
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            proc.kill()
            raise AssertionError(f"no output for 60 s; so far: {out!r}")
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal (EIO on Linux)
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return proc.wait(timeout=60), out.decode("utf-8", "replace").replace("\r\n", "\n")


def test_terminal_shows_progress_then_the_summary(eegd_bin, tmp_path):
    code, out = run_on_terminal(
        [str(eegd_bin), "run", str(write_pipeline(tmp_path)), "--duration", "5", "--record", str(tmp_path)],
        tmp_path,
    )
    assert code == 0, out
    ticks = PROGRESS.findall(out)
    # A line every half second (about ten over 5 s); elapsed and samples only grow.
    assert len(ticks) >= 2, out
    elapsed = [float(t[0]) for t in ticks]
    samples = [int(t[1]) for t in ticks]
    assert elapsed == sorted(elapsed) and samples == sorted(samples), ticks
    assert samples[-1] > samples[0] > 0, ticks
    assert all(t[2] for t in ticks), "recording size missing from the progress line"
    # The summary comes last, after the progress line was cleared.
    m = SUMMARY.search(out)
    assert m, out
    assert m.start() > out.rfind("samples  0 drops"), out
    assert int(m.group(1)) >= samples[-1], (m.group(0), ticks)
    assert m.group(2) == f"{int(m.group(1)) / 1000:.1f}", m.group(0)
    assert "files written:\n" in out and "recording.bdf (" in out, out


def test_piped_prints_only_the_summary(eegd_bin, tmp_path):
    proc = subprocess.run(
        [str(eegd_bin), "run", str(write_pipeline(tmp_path)), "--duration", "5"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and not PROGRESS.search(proc.stderr), proc.stderr
    assert SUMMARY.search(proc.stderr), proc.stderr
    assert "files written: none" in proc.stderr
    assert proc.stdout == "", proc.stdout
