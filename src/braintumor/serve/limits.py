"""Memory per upload, bounded before decoding: a cost from the header, a shared budget.

A 49 KB PNG can declare 4096 x 4096 16-bit pixels and cost about 500 MB once decoded and
scaled (the intensity mapping works in float64), so neither the upload limit nor the pixel
limit bounds memory. Each request therefore:

1. reads its image *header* only (:func:`probe_header`) and prices the decode in bytes
   (:func:`decode_cost_bytes`), knowing that rasters above ``max_side`` are decoded reduced;
2. reserves that many bytes of the server's decode budget and one of its decode slots
   (:class:`DecodeSlots`) before a pixel is decoded, holding them until the model is done;
   when the budget is taken it waits up to ``decode_wait_seconds`` in line, then gets a
   503 with ``Retry-After``; a scan that could never fit gets a 422 at once.

Peak memory is then about the idle server plus the budget, however many clients post.
"""

from __future__ import annotations

import io
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from braintumor.data.readers.shrink import shrink_factor
from braintumor.serve.errors import ApiError

MB = 1024 * 1024
# Bytes per pixel Pillow keeps while decoding (it stores every multi-band mode in 4).
_STORED_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2,
                 "I": 4, "F": 4}
_DEEP_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
# Working bytes per *output* pixel of the conversion to uint8 and the checks after it,
# measured with ru_maxrss on 4096 x 4096 files: about 31 for 16-bit data (float64
# temporaries), 10-13 for 8-bit grey or colour. Rounded up.
_CONVERT_DEEP, _CONVERT_8BIT = 34, 12
# Preprocessing and the model's answer per output pixel: the crop and resize for a
# prediction; for an explanation also the heatmap (float32), overlay and RGBA layer.
_PREDICT, _EXPLAIN = 4, 16
_FIXED = 8 * MB  # decoder state, the header parse, Python objects
# Requests priced at most this (a 1024 px 8-bit slice, explained) need no decode slot.
SMALL_REQUEST_BYTES = 32 * MB


@dataclass(frozen=True)
class ImageHeader:
    """What a header says about the pixels, before any of them is decoded."""

    format: str
    width: int
    height: int
    mode: str  # Pillow's mode, or "DICOM-<bits>x<samples>"
    stored_bytes: int  # per pixel while decoded
    deep: bool  # more than 8 bits per sample: scaled in float64


def probe_header(data: bytes, name: str) -> ImageHeader | None:
    """The header of an upload, or None when none can be read (the decoder then refuses
    it with the precise reason, at no cost: an unreadable header allocates nothing)."""
    from braintumor.data.readers import READERS

    head = data[:512]
    for reader in READERS:
        if reader.can_read(head, None if not name else _path(name)):
            if reader.name == "dicom":
                return _dicom_header(data, name)
            break
    return _pil_header(data)


def _path(name: str):
    from pathlib import Path

    return Path(name)


def _pil_header(data: bytes) -> ImageHeader | None:
    from PIL import Image

    from braintumor.data.readers.pil import SUPPORTED_FORMATS

    try:
        with Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS) as img:
            mode, (width, height), fmt = img.mode, img.size, img.format or "image"
    except Exception:  # noqa: BLE001 - unreadable: the reader names the problem
        return None
    return ImageHeader(fmt, width, height, mode, _STORED_BYTES.get(mode, 4),
                       mode in _DEEP_MODES)


def _dicom_header(data: bytes, name: str) -> ImageHeader | None:
    from braintumor.data.errors import ImageReadError
    from braintumor.data.readers.dicom import _read_header

    try:
        ds = _read_header(data, name, force=data[128:132] != b"DICM")
        rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
        bits = int(ds.get("BitsAllocated") or 16)
        samples = int(ds.get("SamplesPerPixel") or 1)
    except (ImageReadError, TypeError, ValueError):
        return None
    if not rows or not cols:
        return None
    stored = max(1, math.ceil(bits / 8)) * max(1, samples)
    # Monochrome DICOM always goes through the float64 modality LUT and windowing.
    return ImageHeader("DICOM", cols, rows, f"DICOM-{bits}x{samples}", stored, True)


def decode_cost_bytes(header: ImageHeader, max_side: int | None, explain: bool) -> int:
    """Peak bytes to decode, convert and classify the image ``header`` describes."""
    src = header.width * header.height
    factor = 1 if header.format == "DICOM" else shrink_factor(header.width, header.height,
                                                              max_side)
    out = math.ceil(header.width / factor) * math.ceil(header.height / factor)
    if header.format == "JPEG":
        decoded = out * 4  # decoded straight at the reduced scale (draft)
    else:
        decoded = src * header.stored_bytes
        if factor > 1 and header.mode.startswith("I;16"):
            decoded += src * 4  # widened to 32-bit for the reduction
    convert = _CONVERT_DEEP if header.deep else _CONVERT_8BIT
    return _FIXED + decoded + out * (convert + (_EXPLAIN if explain else _PREDICT))


class DecodeSlots:
    """At most ``max_decodes`` large requests decoding at once, all costs within ``budget_bytes``.

    A counting semaphore alone would bound requests, not bytes (a 4096 x 4096 16-bit scan
    costs 50 times a 512 px JPEG); a byte budget alone would let hundreds of tiny requests
    thrash the two cores. Large waiters are served in arrival order so a large scan is not
    starved by a stream of others; small requests (at most ``SMALL_REQUEST_BYTES``, the usual
    512 px slice) skip the line and the slots, so a Grad-CAM of a normal scan never waits
    for four big DICOMs to decode (it did: 0.2 s became 3.8 s).
    """

    def __init__(self, max_decodes: int, budget_bytes: int, wait_seconds: float):
        self.max_decodes = max_decodes
        self.budget_bytes = budget_bytes
        self.wait_seconds = wait_seconds
        self._cond = threading.Condition()
        self._active = 0
        self._used = 0
        self._queue: list[object] = []

    @contextmanager
    def reserve(self, cost: int, what: str) -> Iterator[None]:
        if cost > self.budget_bytes:
            raise ApiError(
                422, "image_too_large_to_decode",
                f"Decoding this {what} would need about {cost / MB:.0f} MB, more than this "
                f"server's decode budget of {self.budget_bytes / MB:.0f} MB "
                "(--decode-budget-mb); export the slice at a smaller size.")
        ticket = object()
        deadline = time.monotonic() + self.wait_seconds
        # A typical slice (512 px: a few MB) must not queue behind large decodes: it takes
        # its bytes from the budget but no slot, and does not wait its turn in the line.
        small = cost <= SMALL_REQUEST_BYTES
        with self._cond:
            if not small:
                self._queue.append(ticket)
            try:
                while not ((small or (self._queue[0] is ticket
                                      and self._active < self.max_decodes))
                           and self._used + cost <= self.budget_bytes):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise ApiError(
                            503, "busy",
                            "The server is decoding as many scans as its memory budget "
                            "allows; try again in a few seconds.",
                            headers={"Retry-After": str(max(1, math.ceil(self.wait_seconds
                                                                         / 4)))})
                    self._cond.wait(left)
            finally:
                if not small:
                    self._queue.remove(ticket)
                self._cond.notify_all()  # the next in line may fit now
            self._active += not small
            self._used += cost
        try:
            yield
        finally:
            with self._cond:
                self._active -= not small
                self._used -= cost
                self._cond.notify_all()

    @property
    def in_use(self) -> tuple[int, int]:
        """(requests decoding, bytes reserved) right now."""
        with self._cond:
            return self._active, self._used


def describe(header: ImageHeader | None) -> str:
    """"4096x4096 PNG (I;16)" for messages: geometry and format only, nothing from the file
    name or the DICOM header beyond them."""
    if header is None:
        return "scan"
    return f"{header.width}x{header.height} {header.format} ({header.mode})"


@dataclass(frozen=True)
class Reservation:
    """An upload's header (None when unreadable), its price, and whether it is large
    (more than ``SMALL_REQUEST_BYTES``: it took a decode slot and decodes on the lane)."""

    header: ImageHeader | None
    cost: int

    @property
    def large(self) -> bool:
        return self.cost > SMALL_REQUEST_BYTES


@contextmanager
def decode_reservation(slots: DecodeSlots, data: bytes, name: str, max_side: int | None,
                       explain: bool) -> Iterator[Reservation]:
    """Price an upload from its header and hold its share of ``slots`` while inside."""
    header = probe_header(data, name)
    cost = decode_cost_bytes(header, max_side, explain) if header else _FIXED
    with slots.reserve(cost, describe(header)):
        yield Reservation(header, cost)


# glibc mallopt parameters (malloc.h): M_MMAP_THRESHOLD and M_ARENA_MAX.
_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8


def bound_allocator(mmap_threshold: int = 1 * MB, arenas: int = 2) -> bool:
    """Make freed decode buffers go back to the OS, so the budget bounds resident memory.

    glibc's defaults keep freed memory: each of the thread pool's threads gets its own malloc
    arena, and the mmap threshold grows to 32 MB after the first large free, so a 30 MB
    buffer is later carved from an arena that never shrinks. Under a flood of 4096 px
    uploads that doubled the peak (1.67 GB against 0.85 GB with these two settings, the
    same as ``MALLOC_MMAP_THRESHOLD_=1048576 MALLOC_ARENA_MAX=2``). A no-op (False)
    outside glibc.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok_threshold = mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)) == 1
    ok_arenas = mallopt(_M_ARENA_MAX, int(arenas)) == 1
    return ok_threshold and ok_arenas
