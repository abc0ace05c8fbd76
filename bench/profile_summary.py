"""Where a flow's time goes, from a py-spy profile in raw (collapsed) form: the share of samples
in each category, by the innermost frame that names one.

    py-spy record -r 250 -f raw -o flow.txt -- python -m bytewax.run flows.alert
    python -m bench.profile_summary flow.txt [more.txt ...]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

CATEGORIES = (
    ("count_md5", ("operators/md5.py",)),
    ("cleaning (Event.clean)", ("clean_alert", "validate_alert", "_clean_")),
    ("decode, bounds, time window", ("decode_object", "bounds.py")),
    ("routing", ("routing.py", "conditions.py")),
    ("building writes", ("state/writes.py", "idempotent.py:write", "keys.py", "(state/idempotent.py:6")),
    ("Redis script: packing", ("redis/connection.py", "redis/commands", "hiredis", "OncePusher.push")),
    ("Redis script: waiting", ("recv_into", "_read_from_socket", "read_response")),
    ("metrics", ("prometheus_client", "metrics.py")),
    ("garbage collector", ("(garbage collection)",)),
    ("Kafka (source, DLQ)", ("connectors/kafka", "kafka_io.py", "cimpl")),
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
