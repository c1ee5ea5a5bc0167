"""Silencing warnings in a threaded server without serialising the work that warns.

``warnings.catch_warnings`` saves and restores the process-wide filter list; two threads of
the server doing it at once (a DICOM read beside a Grad-CAM) can restore each other's state
and leave "ignore" filters on for good. So every ``catch_warnings`` block in the package
holds :data:`WARNINGS_LOCK`, and such blocks must stay short (a header parse): a lock held
across a decode or a backward pass makes every other request wait for it (four DICOMs in
flight once turned a 0.17 s ``/v1/explain`` into 4.8 s).

Long work uses :func:`ignoring_warnings_from` instead: it adds one "ignore" filter for a
named module while at least one thread is inside, and removes that same entry when the last
one leaves, taking the lock only for the list edit.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

WARNINGS_LOCK = threading.Lock()
_users: dict[str, int] = {}
_entries: dict[str, tuple] = {}


@contextmanager
def ignoring_warnings_from(module_regex: str) -> Iterator[None]:
    """Ignore warnings raised from modules matching ``module_regex`` while inside.

    Other threads' warnings from those modules are ignored too during that time, which is
    why it is meant for one library's notes (pydicom's), never for everything.
    """
    with WARNINGS_LOCK:
        if _users.get(module_regex, 0) == 0:
            warnings.filterwarnings("ignore", module=module_regex)
            _entries[module_regex] = warnings.filters[0]
        _users[module_regex] = _users.get(module_regex, 0) + 1
    try:
        yield
    finally:
        with WARNINGS_LOCK:
            _users[module_regex] -= 1
            if _users[module_regex] == 0:
                entry = _entries.pop(module_regex)
                # By identity: an equal filter the user added themselves stays in place.
                kept = [f for f in warnings.filters if f is not entry]
                if len(kept) != len(warnings.filters):
                    warnings.filters[:] = kept  # type: ignore[index]  # a list at run time
                    # What filterwarnings itself calls (private in CPython, untyped).
                    warnings._filters_mutated()  # type: ignore[attr-defined]
