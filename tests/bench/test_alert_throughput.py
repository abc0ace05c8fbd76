"""The alert benchmark's tables, from made-up timings (the benchmark itself runs the services)."""

from __future__ import annotations

from bench.alert_throughput import FLOW, Runner, Timing, print_rounds


def test_each_round_compares_the_runs_of_that_round(capsys):
    """Round 1: the flow 2 s net (3 - 1), the limit 1 s (1.5 - 0.5): the flow is 0.50x.
    Round 2: 4 s against 3 s: 0.75x. Not a ratio of medians over rounds."""
    chosen = [Runner(FLOW, []), Runner("limit", [])]
    runs = {FLOW: [Timing(3.0, 0), Timing(5.0, 0)], "limit": [Timing(1.5, 0), Timing(3.5, 0)]}
    startup = {FLOW: [Timing(1.0, 0), Timing(1.0, 0)], "limit": [Timing(0.5, 0), Timing(0.5, 0)]}
    print_rounds(chosen, runs, startup, FLOW)
    assert "| limit | 0.50x | 0.75x |" in capsys.readouterr().out
