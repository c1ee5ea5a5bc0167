"""Command-line inputs: the files and folders a user names, turned into files to read, and
output names that never overwrite one another.

``braintumor predict`` and ``braintumor explain`` both read through these, so a path means
the same to both: a folder is searched, a named file is always tried (the reader judges it by
content), and a path that does not exist or a folder without images is reported by name
while the rest of the batch goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from braintumor.data.datasets import IMAGE_EXTENSIONS, image_files_in


def expand_inputs(inputs: Sequence[str | Path]) -> tuple[list[str], list[tuple[str, str]]]:
    """``(files, failures)``: the files to read, and ``(argument, reason)`` for each argument
    that gives none.

    Folders are walked recursively for image files (hidden files and folders skipped, sorted so
    that output order is stable). A file named explicitly is kept as given, whatever its
    extension. A file reached twice (named, and inside a named folder) is read once.
    """
    files: dict[Path, str] = {}
    failures: list[tuple[str, str]] = []
    for arg in inputs:
        p = Path(arg)
        if p.is_dir():
            found = image_files_in(p)
            if not found:
                failures.append((str(arg), "folder holds no image files "
                                           f"({', '.join(sorted(IMAGE_EXTENSIONS))})"))
            for f in found:
                files.setdefault(f, str(f))
        elif p.is_file():
            files.setdefault(p, str(arg))
        else:
            failures.append((str(arg), "no such file or folder"))
    return list(files.values()), failures


class OutputNames:
    """Unique output file names in one folder: ``<stem><suffix>``, or ``<stem>_<k><suffix>``
    (k = 2, 3, ...) when two inputs in different folders share a stem."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, stem: str, suffix: str) -> str:
        name, k = f"{stem}{suffix}", 2
        while name in self.used:
            name = f"{stem}_{k}{suffix}"
            k += 1
        self.used.add(name)
        return name
