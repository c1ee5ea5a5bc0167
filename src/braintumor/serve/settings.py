"""What an operator can configure about the service, gathered in one frozen object.

The app factory takes a ``ServeSettings`` rather than reading the environment itself, so
tests build apps with any limits side by side, and ``braintumor serve`` is the only place
that turns command-line flags and ``$BRAINTUMOR_API_KEY`` into settings.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

API_KEY_ENV = "BRAINTUMOR_API_KEY"
API_KEY_HEADER = "X-API-Key"
# Room for the multipart envelope (boundaries, part headers) on top of the file itself, so
# that a file of exactly the limit is accepted while the body as a whole stays bounded.
MULTIPART_OVERHEAD_BYTES = 16 * 1024
# Larger than any MRI slice (a 4096 x 4096 scan is already unusual) and small enough that
# the PNGs returned by /v1/explain stay quick to encode.
DEFAULT_MAX_PIXELS = 4096 * 4096
# Twice the longest side of any training image (512 px): the model sees a 224 px crop, so
# a larger slice gains nothing from its extra pixels but costs memory in proportion.
DEFAULT_MAX_SIDE = 2048
# With the idle server (~0.5 GB with the model) this keeps a flood of 4096 x 4096 16-bit
# uploads under 1.5 GB (benchmarks/serve_memory.py); three such scans decode at once.
DEFAULT_DECODE_BUDGET_MB = 1024
DEFAULT_MAX_DECODES = 4
DEFAULT_DECODE_WAIT_S = 60.0
# Nice increment of the thread that decodes and classifies large uploads
# (serve/large_uploads.py): the most there is, so that a normal scan's explanation keeps the
# cores (0: normal priority, more large uploads per second under load).
DEFAULT_LARGE_UPLOAD_NICE = 19
DEFAULT_BODY_TIMEOUT_S = 120.0
DEFAULT_BODY_IDLE_S = 20.0


@dataclass(frozen=True)
class ServeSettings:
    """Limits and access rules of one running service."""

    max_upload_bytes: int = 20 * 1024 * 1024
    api_key: str | None = None  # None: /v1 routes are open (fine on 127.0.0.1)
    cors_origins: tuple[str, ...] = field(default_factory=tuple)  # empty: no CORS headers
    max_pixels: int = DEFAULT_MAX_PIXELS
    # Memory per upload (serve/limits.py): rasters with a longer side are decoded reduced
    # (None: never); the decode costs of all requests in flight stay within the budget;
    # at most max_decodes decode at once; a request waits this long for room, then 503.
    max_side: int | None = DEFAULT_MAX_SIDE
    decode_budget_bytes: int = DEFAULT_DECODE_BUDGET_MB * 1024 * 1024
    max_decodes: int = DEFAULT_MAX_DECODES
    decode_wait_seconds: float = DEFAULT_DECODE_WAIT_S
    large_upload_nice: int = DEFAULT_LARGE_UPLOAD_NICE
    # A body must arrive within body_timeout_seconds, with no gap longer than
    # body_idle_seconds between its chunks, else 408: a slow client cannot hold a worker.
    body_timeout_seconds: float = DEFAULT_BODY_TIMEOUT_S
    body_idle_seconds: float = DEFAULT_BODY_IDLE_S

    def __post_init__(self) -> None:
        for name in ("decode_budget_bytes", "max_decodes", "decode_wait_seconds",
                     "body_timeout_seconds", "body_idle_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.large_upload_nice <= 19:
            raise ValueError("large_upload_nice must be within 0..19, got "
                             f"{self.large_upload_nice}")
        if self.max_side is not None and self.max_side < 64:
            raise ValueError(f"max_side must be at least 64 px (or None), got {self.max_side}")
        if self.max_upload_bytes < 1:
            raise ValueError(f"max_upload_bytes must be positive, got {self.max_upload_bytes}")
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be positive, got {self.max_pixels}")
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("an API key cannot be empty or blank")

    @property
    def max_body_bytes(self) -> int:
        """The cap on the whole request body: the file limit plus the multipart envelope."""
        return self.max_upload_bytes + MULTIPART_OVERHEAD_BYTES

    @classmethod
    def from_args(cls, args) -> ServeSettings:
        """Settings from ``braintumor serve`` flags; the key falls back to the environment.

        An empty ``$BRAINTUMOR_API_KEY`` counts as unset, so ``BRAINTUMOR_API_KEY=`` in a
        service file does not lock everyone out with a key nobody can send.
        """
        key = getattr(args, "api_key", None) or os.environ.get(API_KEY_ENV) or None
        mb = float(getattr(args, "max_upload_mb", 20.0))
        if mb <= 0:
            raise ValueError(f"--max-upload-mb must be positive, got {mb}")
        max_side = getattr(args, "max_side", DEFAULT_MAX_SIDE)
        return cls(
            max_upload_bytes=int(mb * 1024 * 1024),
            api_key=key,
            cors_origins=tuple(getattr(args, "cors_origin", None) or ()),
            max_side=max_side if max_side else None,  # --max-side 0: never reduce
            decode_budget_bytes=int(float(getattr(args, "decode_budget_mb",
                                                  DEFAULT_DECODE_BUDGET_MB)) * 1024 * 1024),
            max_decodes=int(getattr(args, "max_decodes", DEFAULT_MAX_DECODES)),
            decode_wait_seconds=float(getattr(args, "decode_wait", DEFAULT_DECODE_WAIT_S)),
            large_upload_nice=int(getattr(args, "large_upload_nice",
                                          DEFAULT_LARGE_UPLOAD_NICE)),
            body_timeout_seconds=float(getattr(args, "body_timeout", DEFAULT_BODY_TIMEOUT_S)),
        )

    def to_json(self) -> dict:
        """Everything but the API key (it travels in its own environment variable), for
        the worker processes of ``--workers > 1``."""
        data = dataclasses.asdict(self)
        data.pop("api_key")
        data["cors_origins"] = list(self.cors_origins)
        return data

    @classmethod
    def from_json(cls, data: dict, api_key: str | None) -> ServeSettings:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["cors_origins"] = tuple(values.get("cors_origins", ()))
        return cls(api_key=api_key, **values)
