"""Worker pools must survive being started while another thread holds a lock.

The deadlock behind the hanging ``braintumor evaluate``: a pool forked while the main
thread is half-way through an import leaves that module's import lock held forever in the
child. The test recreates it deterministically: a background thread starts importing a
module whose body waits, and a worker must then import the same module.
"""

from __future__ import annotations

import builtins
import re
import threading
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

from braintumor.data import processes
from braintumor.data.processes import process_pool

SRC = Path(processes.__file__).resolve().parents[1]


def test_pool_worker_imports_a_module_another_thread_is_still_importing(tmp_path, monkeypatch):
    name = "braintumor_half_imported_module"
    (tmp_path / f"{name}.py").write_text(
        "import builtins\n"
        "gate = getattr(builtins, '_braintumor_test_gate', None)\n"
        "if gate is not None:\n"
        "    gate.wait(30)  # only the test's own process waits here\n"
        "VALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    gate = threading.Event()
    monkeypatch.setattr(builtins, "_braintumor_test_gate", gate, raising=False)
    importer = threading.Thread(target=__import__, args=(name,), daemon=True)
    importer.start()  # holds the module's import lock until the gate opens
    pool = process_pool(1)
    try:
        future = pool.submit(_resolve, f"{name}:VALUE")
        try:
            # A forked worker inherits the held import lock and blocks for ever.
            assert future.result(timeout=60) == 42
        except FutureTimeout:
            raise AssertionError("the worker deadlocked on a lock held at fork time") from None
    finally:
        gate.set()
        importer.join(10)
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.kill()  # only matters when the assertion failed: no stuck child is left
        pool.shutdown(wait=False, cancel_futures=True)


def _resolve(target: str):
    import pkgutil

    return pkgutil.resolve_name(target)


def test_no_module_starts_a_pool_without_the_spawn_context():
    pattern = re.compile(r"ProcessPoolExecutor\(|multiprocessing\.Pool\(|\bPool\(")
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
                 if p.name != "processes.py" and pattern.search(p.read_text("utf-8"))]
    assert offenders == [], f"use braintumor.data.processes.process_pool in {offenders}"
