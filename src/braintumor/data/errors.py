"""Errors raised while reading images: each names the file and what is wrong with it."""

from __future__ import annotations


class ImageReadError(ValueError):
    """An input that cannot be turned into a grayscale slice.

    ``source`` is the path (or ``<bytes>``/``<array>``) and ``reason`` a short, specific
    description; the message combines both so a batch report can print it as is.
    """

    def __init__(self, source: object, reason: str):
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")
