"""When a flow process counts as stopping (``flows/input_end.py``): a sink closing before a
clean end of the process's input."""

from __future__ import annotations

import pytest

from flows import input_end


@pytest.mark.parametrize(
    ("opened", "ended", "failed", "stopping"),
    [
        (3, 3, False, False),  # every partition reached its end: the flow ends, not stops
        (0, 0, False, False),  # no partition here (more workers than partitions)
        (3, 2, False, True),  # a partition still reading: an error elsewhere, an interrupt
        (3, 3, True, True),  # the input ended, but something failed
    ],
)
def test_a_sink_closing_before_a_clean_end_of_the_input_means_the_flow_is_stopping(
    monkeypatch, opened, ended, failed, stopping
):
    monkeypatch.setattr(input_end, "_opened", opened)
    monkeypatch.setattr(input_end, "_ended", ended)
    monkeypatch.setattr(input_end, "_failed", failed)
    input_end.sink_closing()
    assert input_end.stopping().is_set() == stopping
