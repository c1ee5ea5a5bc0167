"""Errors and warnings raised while reading images: each names the file and what is wrong."""

from __future__ import annotations


class ImageReadError(ValueError):
    """An input that cannot be turned into a grayscale slice.

    ``source`` is the path (or ``<bytes>``/``<array>``) and ``reason`` a short, specific
    description; the message combines both so a batch report can print it as is. Readers
    write the reason themselves rather than forwarding a library's message, so that nothing
    read from a file header (a DICOM patient name, say) can reach a log through it.
    """

    def __init__(self, source: object, reason: str):
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")

    def __reduce__(self):
        # Rebuild from (source, reason): the default would pass the combined message as
        # ``source`` alone, and errors cross process boundaries in the cache's worker pool.
        return (type(self), (self.source, self.reason))


class ImageReadWarning(UserWarning):
    """An input that was read, with a caveat (e.g. only the first of several frames).

    Its own category so that a batch job can silence or collect these without touching
    other warnings; the same text is kept in ``ImageMeta.warnings``.
    """
