"""The process's heap while a flow runs: Python's collector and glibc's allocator, both set once
after start-up by :func:`settle_heap`.

A flow allocates and frees a few megabytes per batch: decoded messages, cleaned alerts, their
JSON, the script call's arguments. glibc's defaults hand freed memory back to the kernel as soon
as 128 KiB lie free at the top of the heap, and map each block over 128 KiB on its own, so the
next batch takes page faults on the same memory again, and faults are dear on virtual
machines. So freed memory is kept (``bench/gc_settings.py`` measures both settings).
"""

from __future__ import annotations

import ctypes
import gc
import platform

GC_THRESHOLDS = (50_000, 20, 100)
"""The collector's thresholds while a flow runs (Python's are 700, 10, 10): a flow allocates
and frees many short-lived objects per record and keeps few. With ``gc.freeze`` they changed the
alert work's CPU per alert by 0.96, 1.01 and 0.87 in three runs of ``bench/gc_settings.py``:
a small gain at best, within this machine's noise."""

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
"""``mallopt`` parameters (glibc's ``malloc.h``)."""

MALLOC_SETTINGS = (
    (M_MMAP_THRESHOLD, 32 << 20),
    (M_TRIM_THRESHOLD, 128 << 20),
    (M_TOP_PAD, 16 << 20),
)
"""glibc's allocator while a flow runs: blocks up to 32 MiB come from the heap (a batch's
script call of 5,000 alerts is a few MiB), the heap gives memory back to the kernel only when
128 MiB lie free at its top, and grows 16 MiB at a time. A flow's resident memory then stays
near its peak instead of falling between batches. ``bench/gc_settings.py``: the alert work
took 1.66 page faults per alert with glibc's defaults, 0.06 with these."""


def settle_heap() -> None:
    """After start-up: :func:`settle_collector` and :func:`keep_freed_memory`."""
    settle_collector()
    keep_freed_memory()


def settle_collector() -> None:
    """Move what start-up built (modules, strategies, routers) out of the collector's sight
    (``gc.freeze``) and collect less often (:data:`GC_THRESHOLDS`)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def keep_freed_memory() -> bool:
    """Set :data:`MALLOC_SETTINGS`; whether glibc took them all (False on any other C library,
    which keeps its own behaviour)."""
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    return all(libc.mallopt(param, value) == 1 for param, value in MALLOC_SETTINGS)
