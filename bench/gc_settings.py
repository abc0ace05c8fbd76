"""What the heap settings of ``alarmflow.heap.settle_heap`` save: the alert flow's per-batch
work (``AlertAccess``) over sample alerts, CPU time and page faults per alert, in fresh processes
alternating between Python's and glibc's defaults, the collector's settings alone, and both the
collector's and the allocator's.

    python -m bench.gc_settings [--alerts 40000] [--repeat 4]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time

from alarmflow.config import load_settings
from alarmflow.heap import keep_freed_memory, settle_collector
from alarmflow.samples import sample_messages
from operators.alert_access import AlertAccess
from operators.rejects import SourceRecord
from operators.strategy import load_strategy_file

MODES = {
    "defaults": (),
    "collector (settle_collector)": (settle_collector,),
    "collector and allocator (settle_heap)": (settle_collector, keep_freed_memory),
}


def per_alert(alerts: int, mode: str) -> tuple[float, float]:
    """CPU µs and page faults per alert of the alert work in batches of 1,000."""
    settings = load_settings({})
    access = AlertAccess.from_settings(settings, load_strategy_file(settings.strategies))
    now = time.time()
    records = [SourceRecord("t", 0, i, m) for i, m in enumerate(sample_messages(alerts, int(now)))]
    for settle in MODES[mode]:
        settle()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    started = time.process_time()
    for start in range(0, alerts, 1000):
        access(records[start : start + 1000], now)
    cpu = (time.process_time() - started) / alerts * 1e6
    return cpu, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / alerts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=40_000)
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--one", choices=tuple(MODES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(*per_alert(args.alerts, args.one))
        return
    results: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
    for _ in range(args.repeat):
        for mode, runs in results.items():
            command = [sys.executable, "-m", "bench.gc_settings", "--one", mode]
            done = subprocess.run(
                [*command, "--alerts", str(args.alerts)], capture_output=True, text=True, check=True
            )
            cpu, faults = done.stdout.split()
            runs.append((float(cpu), float(faults)))
    print("| heap settings | CPU µs per alert (median) | page faults per alert (median) |")
    print("|---|---:|---:|")
    for mode, runs in results.items():
        cpu = statistics.median(c for c, _ in runs)
        faults = statistics.median(f for _, f in runs)
        print(f"| {mode} | {cpu:.1f} | {faults:.2f} |")


if __name__ == "__main__":
    main()
