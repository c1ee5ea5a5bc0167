"""Large decodes on threads of their own, at a lower CPU priority than the model.

A lock is not the only way a DICOM can slow an explanation: on a two-core server, four
large decodes and one Grad-CAM share the cores fairly, so the explanation gets a fifth of
them (measured: /v1/explain p99 x5 under four DICOM clients, with no lock shared). The
requests that :class:`~braintumor.serve.limits.DecodeSlots` prices as large therefore decode
on this lane, whose threads carry a higher nice value; the scheduler then runs the model's
threads first and the decodes in the time left over. A typical slice (priced small) decodes
in its own request thread, at normal priority, and never waits for the lane.

Why threads and not processes: the decoded array would have to be copied back (16 MB for a
4096 px slice), and the byte budget is this process's memory. Why a pool of its own: on
Linux the nice value belongs to a thread and cannot be lowered back without privileges, so
a request thread (reused for the model afterwards) must not carry it. Elsewhere the nice
value is per process: the lane then runs at normal priority (``lowered`` is False).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
MAX_NICE = 19


def lower_thread_priority(increment: int) -> bool:
    """Raise the calling thread's nice value by ``increment`` (Linux: that thread only)."""
    if increment <= 0 or not sys.platform.startswith("linux"):
        return False
    tid = threading.get_native_id()
    try:
        now = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(MAX_NICE, now + increment))
    except OSError:  # a sandbox without setpriority: run at normal priority
        return False
    return True


class DecodeLane:
    """``run(fn, ...)`` calls ``fn`` on one of ``workers`` low-priority threads and waits.

    Exceptions (an ``ApiError`` naming what is wrong with the file) reach the caller as if
    it had called ``fn`` itself. ``workers`` matches the decode slots, so a request holding
    a slot never waits for a lane thread.
    """

    def __init__(self, workers: int, nice: int):
        self.nice = nice
        self.lowered = nice > 0 and sys.platform.startswith("linux")
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers),
                                        thread_name_prefix="braintumor-decode",
                                        initializer=lower_thread_priority, initargs=(nice,))

    def run(self, fn: Callable[..., T], *args, **kwargs) -> T:
        return self._pool.submit(fn, *args, **kwargs).result()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
