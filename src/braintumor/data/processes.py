"""Worker-process pools that are safe to start from any thread.

The default start method on Linux (up to Python 3.13) is ``fork``: the child is a copy of the
parent taken while *other* threads may hold locks (the import lock of a module half-imported
by the main thread, a logging or allocator lock). Those locks stay held forever in the child,
whose only thread never releases them. ``braintumor evaluate`` starts the duplicate audit's
pool from a background thread while the main thread imports and decodes, and about 3 cold
runs in 8 hung at 0 % CPU that way. ``spawn`` starts each worker as a fresh interpreter that
imports what it needs, so no lock state crosses over; it costs about a second of imports per
worker, small beside the decoding it parallelises.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

START_METHOD = "spawn"


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A ``ProcessPoolExecutor`` of ``workers`` spawned (never forked) processes."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(START_METHOD))
