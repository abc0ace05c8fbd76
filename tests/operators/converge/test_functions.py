"""The ten converge functions (``converge/converge_func.py``), one table each."""

from __future__ import annotations

import pytest

from operators.converge.functions import FUNCTIONS, View


def view(executed=(), is_new=False, has_converge=True, count=1, biz_exists=False) -> View:
    return View(is_new, has_converge, tuple(executed), count, biz_exists)


CASES = {
    "skip_when_success": [
        (view(), None),
        (view(["failure", "success"]), "skipped"),
        (view(["running"]), "sleep"),
        (view(["failure", "sleep"]), None),
    ],
    "approve_when_failed": [
        # converge_func.approve_when_failed: skip_when_success False (nothing executed) -> WAITING
        (view(is_new=True), "waiting"),
        (view(), "waiting"),
        (view(["success"]), "skipped"),
        (view(["running"]), "sleep"),
        (view(["failure"]), "waiting"),
    ],
    "skip_when_proceed": [
        (view(), None),
        (view(["running"]), "skipped"),
        (view(["failure"]), None),
        # bkmonitor compares the status with the whole END list, so this never skips there
        (view(["success"]), "skipped"),
        (view(["partial_failure", "failure"]), None),
    ],
    "wait_when_proceed": [
        (view(), None),
        (view(["converging"]), "sleep"),
        (view(["success"]), None),
    ],
    "defense": [
        (view(["running"], is_new=True), None),
        (view(["running"], count=2), None),
        (view(["running", "success"], count=2), "waiting"),
    ],
    "skip_when_exceed": [
        (view(["running"] * 3, is_new=True, count=3), None),
        (view(has_converge=False), None),
        (view(["running"] * 2, count=3), None),
        (view(["running"] * 3, count=3), "skipped"),
    ],
    "collect": [
        (view(is_new=True), None),
        (view(is_new=True, biz_exists=True), "skipped"),
        (view(["running"], biz_exists=True), "skipped"),
        (view(has_converge=False), None),
        (view([], count=1), None),
        (view(["running"], count=1), "skipped"),
    ],
    "collect_alarm": [(view(is_new=True), "skipped"), (view(), "skipped")],
    "trigger": [(view(is_new=True), None), (view(["running"]), "skipped")],
    "relevance": [(view(is_new=True), None), (view(["running"] * 5), None)],
}


def test_every_function_has_a_table():
    assert set(CASES) == set(FUNCTIONS)


@pytest.mark.parametrize(
    ("func", "given", "expected"),
    [(func, given, expected) for func, rows in CASES.items() for given, expected in rows],
)
def test_function(func, given, expected):
    assert FUNCTIONS[func](given) == expected
