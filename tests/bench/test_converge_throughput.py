"""The converge benchmark's table, from made-up timings (the benchmark itself runs the
services)."""

from __future__ import annotations

from bench.alert_throughput import Timing
from bench.converge_throughput import table


def test_each_round_compares_the_flow_with_the_engine_run_of_that_round():
    """Round 1: the flow 2 s net (2.5 - 0.5) against the engine's 1.2 s: 0.60. Round 2: 2.5 s
    against 1.0 s: 0.40."""
    timings = {
        "flow storm": [Timing(2.5, 2.0), Timing(3.0, 2.5)],
        "flow empty topic": [Timing(0.5, 0.4), Timing(0.5, 0.4)],
    }
    engine = [Timing(1.2, 1.2), Timing(1.0, 1.0)]
    text = table(10_000, 11_000, timings, engine, 2)
    assert "flow, round by round against the engine's run of the same round" in text
    assert text.endswith(": 0.60, 0.40")
