"""The checks that must happen before a single byte of an upload is read.

An ASGI middleware rather than FastAPI dependencies, because FastAPI parses a multipart body
*before* it runs any dependency: a wrong API key or a 2 GB upload would otherwise be read
(and spooled to disk) first and refused afterwards. Here the key and ``Content-Length`` are
checked from the headers alone, and the body is counted as it streams in, so a client that
sends no length (chunked encoding) or lies about it is still cut off at the limit.
"""

from __future__ import annotations

import asyncio
import hmac
import time

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from braintumor.serve.errors import ApiError, error_response
from braintumor.serve.settings import API_KEY_HEADER, ServeSettings

# Everything else needs the key when one is set: an allowlist, so that a route added later
# (or a path spelled oddly) is protected by default rather than by remembering to.
OPEN_PATHS = frozenset({"/", "/health", "/docs", "/docs/oauth2-redirect", "/openapi.json",
                        "/redoc", "/favicon.ico"})


def key_matches(provided: str | bytes | None, expected: str) -> bool:
    """Constant-time comparison, so response timing does not reveal how much of a guess
    was right."""
    if provided is None:
        return False
    got = provided.encode("utf-8") if isinstance(provided, str) else bytes(provided)
    return hmac.compare_digest(got, expected.encode("utf-8"))


def unauthorized_error(missing: bool) -> ApiError:
    detail = (f"This server requires an API key: send it in the {API_KEY_HEADER} header."
              if missing else f"The API key in the {API_KEY_HEADER} header is not valid.")
    return ApiError(401, "unauthorized", detail,
                    headers={"WWW-Authenticate": f'ApiKey header="{API_KEY_HEADER}"'})


def megabytes(n: int) -> str:
    """Sizes in the unit of ``--max-upload-mb`` (MiB), so the limit reads back as set."""
    return f"{n / (1024 * 1024):.3g} MB"


def too_large_error(limit_bytes: int, declared: int | None = None) -> ApiError:
    size = f" ({megabytes(declared)})" if declared is not None else ""
    return ApiError(413, "upload_too_large",
                    f"The upload{size} is larger than this server's limit of "
                    f"{megabytes(limit_bytes)} per scan (see --max-upload-mb).")


def body_timeout_error(settings: ServeSettings) -> ApiError:
    return ApiError(408, "request_timeout",
                    f"The upload arrived too slowly: a request body must arrive within "
                    f"{settings.body_timeout_seconds:g} s, with no pause longer than "
                    f"{settings.body_idle_seconds:g} s (see --body-timeout).",
                    headers={"Connection": "close"})


async def single_file_field(request: Request) -> None:
    """Refuse a form with several ``file`` fields: FastAPI would silently take the last,
    and a client that sent two scans would get an answer about one it cannot tell apart.
    The form is already parsed (and cached on the request) when this runs."""
    files = (await request.form()).getlist("file")
    if len(files) > 1:
        raise ApiError(422, "several_files",
                       f"The form has {len(files)} fields named 'file'; send one scan per "
                       "request.")


class UploadGuard:
    """ASGI middleware: API key on every route but the open ones, a cap on every body."""

    def __init__(self, app: ASGIApp, settings: ServeSettings):
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refuse_from_headers(scope, headers)
        if refusal is not None:
            await error_response(refusal.status_code, refusal.code, refusal.detail,
                                 refusal.headers)(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, self._counting(receive), tracking_send)
        except ApiError as exc:
            # Normally FastAPI's handlers answer the 413 raised while the route reads the
            # body; this catches a body read anywhere else (a middleware, a plain route).
            if started:
                raise
            await error_response(exc.status_code, exc.code, exc.detail,
                                 exc.headers)(scope, receive, send)

    def _refuse_from_headers(self, scope: Scope, headers: Headers) -> ApiError | None:
        key = self.settings.api_key
        if key is not None and scope.get("path", "") not in OPEN_PATHS:
            provided = headers.get(API_KEY_HEADER)
            if not key_matches(provided, key):
                return unauthorized_error(missing=provided is None)
        raw_length = headers.get("content-length")
        if raw_length is not None:
            try:
                length = int(raw_length)
            except ValueError:
                length = -1
            if length < 0:
                return ApiError(400, "bad_request", "The Content-Length header is not a number.")
            if length > self.settings.max_body_bytes:
                return too_large_error(self.settings.max_upload_bytes, declared=length)
        return None

    def _counting(self, receive: Receive) -> Receive:
        limit = self.settings.max_body_bytes
        received = 0
        # uvicorn bounds the wait for headers and between requests, not for a body: a client
        # that sends a byte a minute would hold its connection (and the upload buffer) for
        # ever. Every chunk must come within the idle limit, the whole body within the total.
        deadline = time.monotonic() + self.settings.body_timeout_seconds
        idle = self.settings.body_idle_seconds
        body_done = False

        async def counting_receive() -> Message:
            nonlocal received, body_done
            if body_done:  # later calls wait for a disconnect: no deadline for those
                return await receive()
            wait = min(idle, deadline - time.monotonic())
            try:
                message = await asyncio.wait_for(receive(), timeout=max(wait, 0.0))
            except asyncio.TimeoutError:
                raise body_timeout_error(self.settings) from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large_error(self.settings.max_upload_bytes)
            return message

        return counting_receive
