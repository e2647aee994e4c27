#!/usr/bin/env python3
"""Send event markers to eegd (or any LSL recorder) over Lab Streaming Layer.

This is what a stimulus program does: it publishes a marker stream (type `Markers`, one string
channel, irregular rate) and pushes one sample per event, stamped with `pylsl.local_clock()` at
the moment the event happened. eegd picks the stream up with

    - lsl_source: { name: eegd-markers, kind: markers }

and every recording of that pipeline gets the marker on the sample it fell on; LabRecorder
records the same stream beside eegd's `lsl_sink` outlets.

    pip install pylsl
    python scripts/lsl_markers.py                       # 10 markers, one a second
    python scripts/lsl_markers.py --stdin               # one marker per line typed
    python scripts/lsl_markers.py --name stim --count 3 --interval 0.5
"""
import argparse
import sys
import time

import pylsl


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", default="eegd-markers", help="the stream's name (what eegd resolves)")
    ap.add_argument("--type", default="Markers", help="the stream's type")
    ap.add_argument("--source-id", default=None, help="stable id, so a restarted script is the same stream")
    ap.add_argument("--count", type=int, default=10, help="markers to send")
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between markers")
    ap.add_argument("--wait", type=float, default=30.0, help="seconds to wait for a recorder to connect")
    ap.add_argument("--stdin", action="store_true", help="send each line read on stdin instead")
    a = ap.parse_args()

    info = pylsl.StreamInfo(a.name, a.type, 1, pylsl.IRREGULAR_RATE, pylsl.cf_string, a.source_id or a.name)
    outlet = pylsl.StreamOutlet(info)
    print(f"marker stream `{a.name}` is up; waiting for a consumer", file=sys.stderr)
    if not outlet.wait_for_consumers(a.wait):
        print("nobody connected", file=sys.stderr)
        return 1
    if a.stdin:
        for line in sys.stdin:
            if line.strip():
                outlet.push_sample([line.strip()], pylsl.local_clock())
        return 0
    for k in range(a.count):
        time.sleep(a.interval)
        # Stamp the event when it happens; eegd corrects it onto its own clock.
        outlet.push_sample([f"marker {k + 1}"], pylsl.local_clock())
        print(f"sent marker {k + 1}", file=sys.stderr)
    time.sleep(0.5)  # let the last marker leave before the outlet closes
    return 0


if __name__ == "__main__":
    sys.exit(main())
