"""Where a flow's time goes, from a py-spy profile in raw (collapsed) form: the share of samples
in each category, by the innermost frame that names one. py-spy samples a thread only while it
runs Python, so waiting on Redis or Kafka does not show.

    py-spy record -r 250 -f raw -o flow.txt -- python -m bytewax.run flows.alert
    python -m bench.profile_summary flow.txt [more.txt ...]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

CATEGORIES = (
    ("count_md5", ("operators/md5.py",)),
    ("cleaning (Event.clean)", ("operators/alert.py",)),
    ("decode, bounds, time window", ("operators/bounds.py", "decode_object")),
    ("routing", ("operators/routing.py", "operators/conditions.py")),
    ("building writes", ("state/writes.py", "write (state/idempotent.py", "_full_key", "keys.py")),
    ("Redis script (packing, call)", ("redis/", "hiredis", "OncePusher.push")),
    ("metrics", ("prometheus_client", "alarmflow/metrics.py")),
    ("Kafka (source, records, DLQ)", ("connectors/kafka", "kafka_io.py", "cimpl")),
    ("Bytewax and the rest", ("",)),
)


def category(stack: str) -> str:
    frames = stack.split(";")
    for frame in reversed(frames):
        for name, needles in CATEGORIES[:-1]:
            if any(needle in frame for needle in needles):
                return name
    return CATEGORIES[-1][0]


def summary(path: Path) -> Counter[str]:
    shares: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if count.isdigit():
            shares[category(stack)] += int(count)
    return shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profiles", nargs="+", type=Path)
    args = parser.parse_args()
    tables = {path.name: summary(path) for path in args.profiles}
    print("| category | " + " | ".join(tables) + " |")
    print("|---|" + "---:|" * len(tables))
    for name, _ in CATEGORIES:
        cells = [f"{100 * t[name] / max(1, sum(t.values())):.0f} %" for t in tables.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("| samples | " + " | ".join(str(sum(t.values())) for t in tables.values()) + " |")


if __name__ == "__main__":
    main()
