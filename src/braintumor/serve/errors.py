"""Every failure the service can report, as one JSON shape: ``{"error", "detail", "status"}``.

``error`` is a stable code for scripts, ``detail`` a sentence a clinician can act on. The
handlers here replace FastAPI's defaults so that no answer is HTML or plain text, and so that
no message quotes what a client sent: a rejected field's value could be anything, including
a patient's name. Unexpected exceptions are contained by :class:`ContainFailures`, which
answers a generic 500 and logs the traceback *without* the exception's message (the frames
say where the bug is; the message might carry data from the upload).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("braintumor.serve")

# Codes for statuses raised by Starlette/FastAPI themselves (unknown route, wrong method...).
_DEFAULT_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "upload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    500: "internal_error",
}
_DEFAULT_DETAILS = {
    404: "There is no such page or API route; the API is described at /docs.",
    405: "This route does not accept that HTTP method; see /docs for the API.",
}
INTERNAL_ERROR_DETAIL = (
    "The server failed while handling this request. This is a bug in braintumor, not a "
    "problem with your scan; the server keeps running and has logged where it failed."
)


class ApiError(StarletteHTTPException):
    """A client error with a stable code and a plain-words message.

    A subclass of Starlette's ``HTTPException`` on purpose: FastAPI re-raises those
    unchanged when they come out of body parsing, which is how an upload that grows past
    the size limit mid-stream still ends as a 413 rather than a generic 400.
    """

    def __init__(self, status_code: int, code: str, detail: str,
                 headers: dict[str, str] | None = None):
        super().__init__(status_code=status_code, detail=detail, headers=headers)
        self.code = code


def error_payload(status: int, code: str, detail: str) -> dict:
    return {"error": code, "detail": detail, "status": status}


def error_response(status: int, code: str, detail: str,
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_payload(status, code, detail), status_code=status, headers=headers)


async def _http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    status = exc.status_code
    code = getattr(exc, "code", None) or _DEFAULT_CODES.get(status, "error")
    detail = exc.detail if isinstance(exc, ApiError) else _DEFAULT_DETAILS.get(status)
    if detail is None:
        # Starlette's own details are short fixed phrases ("Missing boundary in multipart.").
        detail = f"The request could not be processed: {exc.detail}"
    return error_response(status, code, str(detail), getattr(exc, "headers", None))


def describe_validation_errors(errors: list[dict]) -> str:
    """A sentence for FastAPI's validation errors, never echoing the rejected input."""
    for err in errors:
        loc = tuple(err.get("loc", ()))
        if loc[-1:] == ("file",):
            if err.get("type") == "missing":
                return ("No file in the request: send the scan as multipart/form-data in a "
                        "field named 'file'.")
            return "The 'file' field must be a file upload (multipart/form-data), not text."
    parts = [f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', 'invalid')}"
             for err in errors[:3]]
    return "Invalid request (" + "; ".join(parts) + ")."


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return error_response(422, "invalid_request", describe_validation_errors(list(exc.errors())))


def install_error_handlers(app: FastAPI) -> None:
    # Starlette types a handler's exception as Exception; each of ours takes its own class.
    app.add_exception_handler(StarletteHTTPException, _http_exception)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]


def log_exception(what: str, exc: BaseException, level: int = logging.ERROR) -> None:
    """Log where an exception happened (type and frames) but not its message."""
    frames = "".join(traceback.format_tb(exc.__traceback__))
    log.log(level, "%s: %s (message withheld: it may quote the upload)\n%s",
            what, type(exc).__name__, frames.rstrip())


class ContainFailures:
    """ASGI middleware: an exception that escapes the app becomes a JSON 500, not a crash.

    Starlette's own last-resort handler re-raises after answering, which makes uvicorn log
    the exception *with* its message; this one stops the exception here instead.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log_exception(f"unhandled error on {scope.get('method')} {scope.get('path')}", exc)
            if started:  # too late for a clean answer; the server drops this connection
                return
            response = error_response(500, "internal_error", INTERNAL_ERROR_DETAIL)
            await response(scope, receive, send)
