"""The real size of a compressed DICOM frame, read from its own header before decoding.

A DICOM header's Rows/Columns are only a claim: the encapsulated JPEG or JPEG 2000 frame
carries its own size, and the decoder allocates for *that* one. A 2.6 MB file declaring
512 x 512 but holding a 13000 x 13000 JPEG passes a Rows x Columns check and costs about
1.5 GB when decoded. :func:`check_encapsulated_frame` reads the first frame's size from
its SOF (JPEG, JPEG-LS) or SIZ (JPEG 2000) marker and refuses a frame that is larger than
the limit or differs from what the header declares, so the decoder never sees it.

The markers are parsed here rather than by Pillow, which cannot open lossless JPEG or
JPEG-LS frames, or by pydicom, whose parser for them is private.
"""

from __future__ import annotations

import struct

from braintumor.data.errors import ImageReadError

# Start-of-frame markers: SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC), plus SOF55
# (JPEG-LS). Their segment is: length (2), precision (1), height (2), width (2), ...
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7}
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # markers without a length field (TEM, RSTn)
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"


def frame_size(frame: bytes) -> tuple[int, int] | None:
    """(height, width) from a JPEG / JPEG-LS / JPEG 2000 frame's header; None if unknown."""
    if frame[:2] == b"\xff\xd8":
        return _jpeg_size(frame)
    if frame.startswith(_JP2_SIGNATURE):
        frame = _jp2_codestream(frame)
    if frame[:4] == b"\xff\x4f\xff\x51" and len(frame) >= 24:
        # SIZ: marker, Lsiz, Rsiz, then Xsiz, Ysiz, XOsiz, YOsiz (4 bytes each)
        xsiz, ysiz, xosiz, yosiz = struct.unpack(">4I", frame[8:24])
        return ysiz - yosiz, xsiz - xosiz
    return None


def _jpeg_size(frame: bytes) -> tuple[int, int] | None:
    offset = 2
    while offset + 4 <= len(frame):
        if frame[offset] != 0xFF:
            return None
        marker = frame[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        if marker in _STANDALONE:
            offset += 2
            continue
        (length,) = struct.unpack(">H", frame[offset + 2:offset + 4])
        if marker in _SOF:
            if offset + 9 > len(frame):
                return None
            height, width = struct.unpack(">HH", frame[offset + 5:offset + 9])
            return height, width
        if marker == 0xDA:  # start of scan before any SOF: not a valid frame
            return None
        offset += 2 + length
    return None


def _jp2_codestream(data: bytes) -> bytes:
    offset = 0
    while offset + 8 <= len(data):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        if data[offset + 4:offset + 8] == b"jp2c":
            return data[offset + 8:]
        if length < 8:
            return b""
        offset += length
    return b""


def check_encapsulated_frame(ds, source: str, max_pixels: int, n_frames: int) -> None:
    """Refuse a compressed first frame whose own size is above ``max_pixels`` or differs
    from the header's Rows x Columns. Native (uncompressed) pixel data needs no check: its
    size is the header's. A frame whose header cannot be read is left to the decoder,
    which then fails on it (with no large allocation: the size is unknown to it as well).
    """
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts is None or not getattr(ts, "is_compressed", False) or "PixelData" not in ds:
        return
    from pydicom.encaps import get_frame

    try:
        frame = get_frame(ds.PixelData, 0, number_of_frames=max(n_frames, 1))
    except Exception:
        return  # not readable as encapsulated fragments: the decoder reports that
    size = frame_size(bytes(frame[:65536]))
    if size is None:
        return
    height, width = size
    rows, cols = int(ds.Rows), int(ds.Columns)
    if height * width > max_pixels:
        raise ImageReadError(
            source,
            f"the compressed DICOM frame is {width}x{height} pixels ({width * height:,}), above "
            f"the limit of {max_pixels:,} pixels (max_pixels), while the header declares "
            f"{cols}x{rows}; refusing to decode a possible decompression bomb",
        )
    if (height, width) != (rows, cols):
        raise ImageReadError(
            source,
            f"the compressed DICOM frame is {width}x{height} pixels but the header declares "
            f"{cols}x{rows} (Columns x Rows); refusing to decode a frame the header "
            "misdescribes",
        )
