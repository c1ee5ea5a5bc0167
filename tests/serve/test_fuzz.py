"""1000+ malformed or random uploads: every answer is a 4xx JSON message, never a 5xx.

The cases are generated from a fixed seed, so a failure reproduces exactly; the message
names the case. A few kinds may legitimately decode (a 16-bit PNG, a JPEG with a flipped
byte in its entropy data): those may answer 200, never 5xx.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from .conftest import dicom_bytes, encode

N_CASES = 1200
SEED = 20240531
MAX_UPLOAD = 256 * 1024


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png(width: int, height: int, bit_depth: int, colour: int, raw: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw))
            + _chunk(b"IEND", b""))


def _jpeg_sof(width: int, height: int) -> bytes:
    """A JPEG header whose start-of-frame declares the given size, then garbage."""
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    app0 = struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    return b"\xff\xd8\xff\xe0" + app0 + sof


class Corpus:
    """Seeds the mutations start from: real encodings of synthetic slices."""

    def __init__(self, make_slice: Callable, rng: np.random.Generator):
        self.rng = rng
        slices = [make_slice(int(rng.integers(48, 120)), seed=i,
                             blob=[None, (0.35, 0.35), (0.35, 0.68), (0.68, 0.5)][i % 4])
                  for i in range(6)]
        self.png = [encode(s) for s in slices]
        self.jpeg = [encode(s, "JPEG", quality=int(rng.integers(40, 95))) for s in slices]
        self.dicom = [dicom_bytes(s) for s in slices[:3]]
        self.dicom_empty = dicom_bytes(None)
        # a real 16-bit grayscale PNG (Pillow mode I;16)
        deep = (slices[0].astype(np.uint16) * 257).astype(">u2")
        self.png16 = [_png(deep.shape[1], deep.shape[0], 16, 0,
                           b"".join(b"\x00" + row.tobytes() for row in deep))]
        # decompression bomb: 6000 x 6000 zeros compress to a few kB, decode to 36 MP
        self.bomb = _png(6000, 6000, 8, 0, b"\x00" * (6001 * 6000))

    def pick(self, items: list[bytes]) -> bytes:
        return items[int(self.rng.integers(len(items)))]


# Each generator returns (description, request kwargs, may_succeed).
def _random_bytes(c: Corpus):
    n = int(c.rng.choice([0, 1, 7, 64, 512, 4096, 60_000]))
    return "random bytes", {"files": {"file": ("x.png", c.rng.bytes(n), "image/png")}}, False


def _truncated(c: Corpus):
    data = c.pick(c.png + c.jpeg + c.dicom)
    cut = int(c.rng.integers(1, len(data)))
    return f"truncated at {cut}", {"files": {"file": ("t", data[:cut], "image/png")}}, False


def _bit_flips(c: Corpus):
    data = bytearray(c.pick(c.png + c.jpeg + c.dicom))
    for _ in range(int(c.rng.integers(1, 20))):
        data[int(c.rng.integers(len(data)))] ^= 1 << int(c.rng.integers(8))
    # a JPEG or DICOM with a flipped byte in its pixel data still decodes
    return "bit flips", {"files": {"file": ("f.jpg", bytes(data), "image/jpeg")}}, True


def _huge_png(c: Corpus):
    w, h = int(c.rng.choice([100_000, 65_535, 30_000])), int(c.rng.choice([100_000, 50_000]))
    data = _png(w, h, 8, 0, b"\x00" * 64)
    return f"png header {w}x{h}", {"files": {"file": ("h.png", data)}}, False


def _huge_jpeg(c: Corpus):
    return "jpeg header 65000x65000", {"files": {"file": ("h.jpg", _jpeg_sof(65000, 65000)
                                                          + c.rng.bytes(200))}}, False


def _bomb(c: Corpus):
    return "decompression bomb", {"files": {"file": ("b.png", c.bomb)}}, False


def _png16(c: Corpus):
    data = c.pick(c.png16)
    if c.rng.random() < 0.5:
        data = data[: int(c.rng.integers(40, len(data)))]
    return "16-bit png", {"files": {"file": ("d.png", data, "image/png")}}, True


def _dicom_without_pixels(c: Corpus):
    return "dicom without pixel data", {"files": {"file": ("n.dcm", c.dicom_empty)}}, False


def _tiny_or_blank(c: Corpus):
    side = int(c.rng.choice([1, 2, 5, 64]))
    pixels = np.full((side, side), int(c.rng.integers(256)), np.uint8)
    return f"constant {side}x{side}", {"files": {"file": ("c.png", encode(pixels))}}, False


def _empty_body(c: Corpus):
    return "empty body", {}, False


def _wrong_content_type(c: Corpus):
    data = c.pick(c.png + c.jpeg)
    ctype = str(c.rng.choice(["image/png", "application/json", "text/plain",
                              "application/octet-stream", "multipart/form-data"]))
    return f"raw body as {ctype}", {"content": data, "headers": {"content-type": ctype}}, False


def _wrong_field(c: Corpus):
    name = str(c.rng.choice(["image", "files", "File", "upload", "scan"]))
    return f"field {name!r}", {"files": {name: ("s.png", c.pick(c.png))}}, False


def _text_field(c: Corpus):
    return "file as text field", {"data": {"file": c.rng.bytes(30).hex()}}, False


def _broken_multipart(c: Corpus):
    body = b"--b\r\n" + c.rng.bytes(int(c.rng.integers(0, 300)))
    boundary = c.pick([b"b", b"", b"x" * 200, b"\xe9\xff"])
    return "broken multipart", {"content": body, "headers": {
        "content-type": b"multipart/form-data; boundary=" + boundary}}, False


def _magic_then_garbage(c: Corpus):
    magic = c.pick([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"BM", b"II*\x00",
                    b"MM\x00*", b"RIFF", b"\x00" * 128 + b"DICM", b"P5\n"])
    data = magic + c.rng.bytes(int(c.rng.integers(0, 2000)))
    return "magic then garbage", {"files": {"file": ("m", data)}}, False


def _too_large(c: Corpus):
    return "over the limit", {"files": {"file": ("l.png", c.rng.bytes(MAX_UPLOAD + 1))}}, False


def _many_files(c: Corpus):
    files = [("file", (f"{i}.png", c.rng.bytes(50))) for i in range(int(c.rng.integers(2, 40)))]
    return "many parts", {"files": files}, False


GENERATORS = [_random_bytes, _truncated, _bit_flips, _huge_png, _huge_jpeg, _bomb, _png16,
              _dicom_without_pixels, _tiny_or_blank, _empty_body, _wrong_content_type,
              _wrong_field, _text_field, _broken_multipart, _magic_then_garbage, _too_large,
              _many_files]


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # Pillow, on mangled TIFFs
def test_fuzzed_uploads_never_get_a_5xx(make_client, synthetic_slice):
    client = make_client(max_upload_bytes=MAX_UPLOAD)
    rng = np.random.default_rng(SEED)
    corpus = Corpus(synthetic_slice, rng)
    statuses: Counter = Counter()
    kinds: Counter = Counter()
    for i in range(N_CASES):
        gen = GENERATORS[i % len(GENERATORS)]
        what, kwargs, may_succeed = gen(corpus)
        draw = rng.random()
        route = ("/v1/explain?format=png" if draw < 0.05 else
                 "/v1/explain" if draw < 0.1 else "/v1/predict")
        response = client.post(route, **kwargs)
        case = f"case {i} ({gen.__name__}: {what}) on {route}"
        assert response.status_code < 500, f"{case}: {response.status_code} {response.text}"
        if response.status_code == 200:
            assert may_succeed, f"{case} was accepted"
            label = (response.headers["x-braintumor-label"] if route.endswith("png")
                     else response.json()["label"])
            assert label in ("glioma", "meningioma", "notumor", "pituitary")
        else:
            assert 400 <= response.status_code < 500, case
            body = response.json()
            assert body["status"] == response.status_code and body["error"], case
            assert isinstance(body["detail"], str) and body["detail"], case
        statuses[response.status_code] += 1
        kinds[gen.__name__] += 1
    assert sum(statuses.values()) == N_CASES >= 1000
    # the corpus really exercised the documented codes, not one path over and over
    assert {400, 413, 415, 422} <= set(statuses), statuses
    assert client.get("/health").json()["status"] == "ok"
    # and the model still answers correctly after all that
    ok = client.post("/v1/predict", files={"file": ("ok.png", corpus.png[0])})
    assert ok.status_code == 200


@pytest.mark.parametrize("mode", ["I;16", "I;16B"])
def test_decodable_16_bit_png_is_classified(client, synthetic_slice, mode):
    """A real 16-bit PNG is a valid scan: 200, not a refusal."""
    pixels = synthetic_slice(80, seed=9).astype(np.uint16) * 200
    buf = io.BytesIO()
    img = Image.fromarray(pixels.astype("<u2" if mode == "I;16" else ">u2"))
    assert img.mode == mode
    img.save(buf, "PNG")
    response = client.post("/v1/predict", files={"file": ("d.png", buf.getvalue())})
    assert response.status_code == 200, response.text
