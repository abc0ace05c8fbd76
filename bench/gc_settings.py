"""What the collector settings of ``flows.common.settle_heap`` save: the alert flow's per-batch
work (``AlertAccess``) over sample alerts, CPU time per alert, in fresh processes alternating
between Python's default collector settings and the flow's.

    python -m bench.gc_settings [--alerts 40000] [--repeat 4]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from alarmflow.config import load_settings
from alarmflow.samples import sample_messages
from flows.common import settle_heap
from operators.alert_access import AlertAccess
from operators.rejects import SourceRecord
from operators.strategy import load_strategy_file


def cpu_per_alert(alerts: int, settle: bool) -> float:
    settings = load_settings({})
    access = AlertAccess.from_settings(settings, load_strategy_file(settings.strategies))
    now = time.time()
    records = [SourceRecord("t", 0, i, m) for i, m in enumerate(sample_messages(alerts, int(now)))]
    if settle:
        settle_heap()
    started = time.process_time()
    for start in range(0, alerts, 1000):
        access(records[start : start + 1000], now)
    return (time.process_time() - started) / alerts * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=40_000)
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--one", choices=("default", "settled"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(cpu_per_alert(args.alerts, args.one == "settled"))
        return
    results: dict[str, list[float]] = {"default": [], "settled": []}
    for _ in range(args.repeat):
        for mode in results:
            command = [sys.executable, "-m", "bench.gc_settings", "--one", mode]
            done = subprocess.run(
                [*command, "--alerts", str(args.alerts)], capture_output=True, text=True, check=True
            )
            results[mode].append(float(done.stdout))
    default, settled = (statistics.median(results[m]) for m in ("default", "settled"))
    print("| collector | CPU µs per alert (median) |\n|---|---:|")
    print(f"| Python's default | {default:.1f} |\n| settle_heap() | {settled:.1f} |")
    print(f"\nsettled / default: {settled / default:.2f}")


if __name__ == "__main__":
    main()
