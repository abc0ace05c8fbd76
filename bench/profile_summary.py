"""Where a flow's time goes, from a py-spy profile in raw (collapsed) form: the share of samples
in each category, by the innermost frame that names one. py-spy samples a thread only while it
runs Python, so waiting on Redis or Kafka does not show.

    py-spy record -r 250 -f raw -o flow.txt -- python -m bytewax.run flows.alert
    python -m bench.profile_summary [--flow converge] flow.txt [more.txt ...]

The converge flow's categories separate its own pure engine (what the benchmark's engine loop
also does) from what only the flow does; start-up (imports, building the dataflow) is a
category of its own there, as the benchmark nets it out.
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
    ("Redis script (packing, call)", ("redis/", "hiredis", "OncePusher.push", "CommandPacker")),
    ("metrics", ("prometheus_client", "alarmflow/metrics.py")),
    ("Kafka (source, records, DLQ)", ("connectors/kafka", "kafka_io.py", "cimpl")),
    ("Bytewax and the rest", ("",)),
)
CONVERGE_CATEGORIES = (
    ("start-up (imports, building the flow)", ("_locate_dataflow", "<frozen importlib")),
    ("engine: parse and plan", ("converge/context.py", "converge/plan.py", "converge/config.py")),
    ("engine: dimension and business state", ("converge/engine.py", "converge/biz.py")),
    ("engine: shields, converge functions", ("converge/shields", "converge/functions")),
    ("decode, bounds", ("operators/bounds.py",)),
    ("building writes", ("converge_writes.py", "keys.py")),
    ("decision and audit messages", ("converge/audit.py", "outputs.<locals>.make")),
    (
        "Redis script (packing, call)",
        (
            "redis/",
            "hiredis",
            "OncePusher.push",
            "CommandPacker",
            "redis_sink.py",
            "write_behind.py",
        ),
    ),
    ("metrics", ("prometheus_client", "alarmflow/metrics.py")),
    ("Kafka (source, sinks)", ("connectors/kafka", "kafka_io.py", "cimpl")),
    (
        "the flow's steps (flows/converge*.py, intake)",
        (
            "flows/converge.py",
            "flows/converge_logic.py",
            "converge_outputs.py",
            "converge/intake.py",
        ),
    ),
    ("Bytewax and the rest", ("",)),
)


Categories = tuple[tuple[str, tuple[str, ...]], ...]


def category(stack: str, categories: Categories = CATEGORIES) -> str:
    """The first category whose needle is in the innermost frame naming one; converge's
    start-up wins wherever it is in the stack."""
    frames = stack.split(";")
    first, needles = categories[0]
    if categories is CONVERGE_CATEGORIES and any(n in f for f in frames for n in needles):
        return first
    for frame in reversed(frames):
        for name, needles in categories[:-1]:
            if any(needle in frame for needle in needles):
                return name
    return categories[-1][0]


def summary(path: Path, categories: Categories = CATEGORIES) -> Counter[str]:
    shares: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if count.isdigit():
            shares[category(stack, categories)] += int(count)
    return shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flow", choices=("alert", "converge"), default="alert")
    parser.add_argument("--rate", type=int, default=250, help="py-spy's samples per second")
    parser.add_argument("profiles", nargs="+", type=Path)
    args = parser.parse_args()
    categories = CONVERGE_CATEGORIES if args.flow == "converge" else CATEGORIES
    tables = {path.name: summary(path, categories) for path in args.profiles}
    print("| category | " + " | ".join(tables) + " |")
    print("|---|" + "---:|" * len(tables))
    for name, _ in categories:
        cells = [
            f"{100 * t[name] / max(1, sum(t.values())):.0f} % ({t[name] / args.rate:.2f} s)"
            for t in tables.values()
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("| samples | " + " | ".join(str(sum(t.values())) for t in tables.values()) + " |")


if __name__ == "__main__":
    main()
