"""Large uploads are decoded and classified on one thread of their own, at a low priority.

A lock is not the only way a DICOM can slow an explanation: on a two-core server, four
large uploads and one Grad-CAM share the cores fairly, so the explanation gets a fifth of
them (measured: /v1/explain p99 x5 under four clients posting 1024 px DICOMs, no lock
shared). Their decode is only part of it; their model pass costs as much. So the requests
that :class:`~braintumor.serve.limits.DecodeSlots` prices as large (more than a 1024 px
8-bit slice, explained) run decode *and* model on this lane, whose thread carries a higher
nice value; the scheduler runs everyone else first and large uploads in the time left
over. A typical slice, a 512 px DICOM included, runs in its own request thread at normal
priority and never waits for the lane.

- **One thread**, not one per decode slot: with four low-priority requests at once their
  model passes (two OpenMP threads each, created by the lane thread and so inheriting its
  nice value) and their Python work, which holds the GIL however low the thread's priority,
  still cost an explanation x2.3 at p99; one at a time, x1.3 (docs/serve.md).
- **Threads, not processes**: the decoded array would have to be copied back and the
  model loaded twice; the byte budget is this process's memory.
- **A thread of its own**: on Linux the nice value belongs to a thread and cannot be
  lowered back without privileges, so a request thread (reused afterwards) must not carry
  it. Elsewhere the nice value is per process: the lane then runs at normal priority
  (``lowered`` is False).
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


class LargeUploadLane:
    """``run(fn, ...)`` calls ``fn`` on one of ``workers`` low-priority threads and waits.

    Exceptions (an ``ApiError`` naming what is wrong with the file) reach the caller as if
    it had called ``fn`` itself. Requests wait for the thread in arrival order, holding the
    decode slot and budget :class:`~braintumor.serve.limits.DecodeSlots` gave them.
    """

    def __init__(self, nice: int, workers: int = 1):
        self.nice = nice
        self.lowered = nice > 0 and sys.platform.startswith("linux")
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers),
                                        thread_name_prefix="braintumor-large-upload",
                                        initializer=lower_thread_priority, initargs=(nice,))

    def run(self, fn: Callable[..., T], *args, **kwargs) -> T:
        return self._pool.submit(fn, *args, **kwargs).result()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
