"""The heap settings a flow takes after start-up, each checked in a fresh process."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

GLIBC = platform.libc_ver()[0] == "glibc"

# Two rounds of a batch's worth of values (2,000 of 4 KB, kept, then freed): the page faults of
# the second round.
ROUNDS = """
import resource, sys
from alarmflow.heap import keep_freed_memory
if sys.argv[1] == "kept":
    assert keep_freed_memory()
for _ in range(2):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    batch = [bytes(4000) + b"%d" % i for i in range(2000)]
    del batch
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def second_round_faults(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", ROUNDS, mode], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


@pytest.mark.skipif(not GLIBC, reason="the allocator's settings are glibc's")
def test_freed_memory_is_used_again_without_page_faults():
    default, kept = second_round_faults("default"), second_round_faults("kept")
    assert default > 1000  # glibc gave the first round's memory back and faults it in again
    assert kept < default / 10


def test_settle_heap_freezes_start_up_and_collects_less_often():
    code = (
        "import gc; from alarmflow.heap import GC_THRESHOLDS, settle_heap; settle_heap(); "
        "print(gc.get_freeze_count() > 0, gc.get_threshold() == GC_THRESHOLDS)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "True"]
