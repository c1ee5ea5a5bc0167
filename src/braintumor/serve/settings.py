"""What an operator can configure about the service, gathered in one frozen object.

The app factory takes a ``ServeSettings`` rather than reading the environment itself, so
tests build apps with any limits side by side, and ``braintumor serve`` is the only place
that turns command-line flags and ``$BRAINTUMOR_API_KEY`` into settings.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class ServeSettings:
    """Limits and access rules of one running service."""

    max_upload_bytes: int = 20 * 1024 * 1024
    api_key: str | None = None  # None: /v1 routes are open (fine on 127.0.0.1)
    cors_origins: tuple[str, ...] = field(default_factory=tuple)  # empty: no CORS headers
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
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
        return cls(
            max_upload_bytes=int(mb * 1024 * 1024),
            api_key=key,
            cors_origins=tuple(getattr(args, "cors_origin", None) or ()),
        )
