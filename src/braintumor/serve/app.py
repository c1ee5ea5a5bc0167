"""The REST service and web page: ``create_app(predictor, settings)``, one router per route group.

``braintumor serve`` (loading the model, uvicorn, worker processes) is in :mod:`.command`.

The model is loaded once, before the first request, and shared by every request. Routes
that run the model are plain ``def`` functions, so FastAPI runs them in its thread pool:
requests are served concurrently while the event loop stays free to accept more. The
:class:`~braintumor.inference.predictor.Predictor` is safe for that (plain predictions share
no mutable state; Grad-CAM runs one at a time on a private copy of the model).
"""

from __future__ import annotations

import base64
import html
import json
import logging
import time
from importlib import resources
from typing import Any, NamedTuple

from fastapi import APIRouter, Depends, FastAPI, File, Query, Request, Security, UploadFile
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader

from braintumor import DISCLAIMER, __version__
from braintumor.data.errors import ImageReadError
from braintumor.data.readers import LoadedImage
from braintumor.inference.predictor import Prediction, Predictor
from braintumor.serve.errors import ApiError, ContainFailures, install_error_handlers
from braintumor.serve.guard import (
    UploadGuard,
    key_matches,
    single_file_field,
    too_large_error,
    unauthorized_error,
)
from braintumor.serve.imaging import decode_upload, heatmap_rgba, png_bytes, upload_name
from braintumor.serve.large_uploads import LargeUploadLane
from braintumor.serve.limits import DecodeSlots, decode_reservation
from braintumor.serve.outline import tumour_body
from braintumor.serve.schemas import (
    ErrorResponse,
    ExplanationResponse,
    HealthResponse,
    ModelCardResponse,
    PredictionResponse,
)
from braintumor.serve.settings import API_KEY_HEADER, ServeSettings

log = logging.getLogger("braintumor.serve")

# Headers that carry the prediction when /v1/explain answers with a bare PNG.
RESULT_HEADERS = ("X-Braintumor-Label", "X-Braintumor-Confidence", "X-Braintumor-Probabilities",
                  "X-Braintumor-Model", "X-Braintumor-Checksum", "X-Braintumor-Disclaimer",
                  "X-Braintumor-Warning", "X-Braintumor-OOD-Score")
# The page is self-contained: it may talk to this server and show data:/blob: images, and
# nothing else. A CSP that forbids other origins keeps it that way.
PAGE_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
            "img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; "
            "form-action 'none'; frame-ancestors 'none'")

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "API key missing or wrong"},
    413: {"model": ErrorResponse, "description": "upload larger than --max-upload-mb"},
    415: {"model": ErrorResponse, "description": "not an image format this service reads"},
    422: {"model": ErrorResponse,
          "description": "no 'file' field, empty file, or an image that cannot be used"},
}

API_DESCRIPTION = f"""
**{DISCLAIMER}**

Classifies a brain MRI slice (JPEG, PNG or DICOM) as glioma, meningioma, pituitary tumour or
no tumour, and explains the decision with a Grad-CAM heatmap. Upload the scan as
`multipart/form-data` in a field named `file`. Every error is JSON:
`{{"error": code, "detail": message, "status": http_status}}`.
"""


class _Classified(NamedTuple):
    prediction: Prediction
    loaded: LoadedImage
    body: dict  # the JSON answer, "seconds" still to fill in
    started: float  # perf_counter() when the upload had arrived


def _page_html() -> str:
    text = (resources.files("braintumor.serve") / "static" / "index.html").read_text("utf-8")
    return (text.replace("__DISCLAIMER__", html.escape(DISCLAIMER))
                .replace("__VERSION__", html.escape(__version__)))


def create_app(predictor: Predictor, settings: ServeSettings | None = None) -> FastAPI:
    """A FastAPI app serving ``predictor`` (a loaded ``Predictor``) under ``settings``."""
    settings = settings or ServeSettings()
    app = FastAPI(title="braintumor", version=__version__, description=API_DESCRIPTION)
    app.state.predictor = predictor
    app.state.settings = settings
    install_error_handlers(app)
    # Memory per upload is bounded by one budget shared by every decoding request
    # (serve/limits.py): priced from the image header before anything is decoded.
    slots = app.state.decode_slots = DecodeSlots(
        settings.max_decodes, settings.decode_budget_bytes, settings.decode_wait_seconds)
    # Large uploads yield the CPU to everyone else (serve/large_uploads.py).
    lane = app.state.large_upload_lane = LargeUploadLane(settings.large_upload_nice)
    app.include_router(page_router())
    app.include_router(service_router(predictor, settings))
    app.include_router(api_router(predictor, settings, slots, lane))
    # Added innermost first: CORS (when configured) must be outermost so that even the
    # guard's 401/413 answers carry the headers a browser needs to read them.
    app.add_middleware(UploadGuard, settings=settings)
    app.add_middleware(ContainFailures)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "POST"],
                           allow_headers=[API_KEY_HEADER, "Content-Type", "Accept"],
                           expose_headers=list(RESULT_HEADERS))
    return app


def page_router() -> APIRouter:
    """``/``: the self-contained web page."""
    router = APIRouter()
    page = _page_html()

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_CSP,
                                           "X-Content-Type-Options": "nosniff",
                                           "Cache-Control": "no-cache"})

    return router


def service_router(predictor: Predictor, settings: ServeSettings) -> APIRouter:
    """``/health``: open to all (no key), so that the page and monitors can ask."""
    router = APIRouter()

    @router.get("/health", response_model=HealthResponse, tags=["service"])
    def health() -> dict:
        """Liveness and what the page needs before its first request (is a key required?)."""
        return {"status": "ok", "version": __version__, "model": predictor.name,
                "api_key_required": settings.api_key is not None,
                "max_upload_bytes": settings.max_upload_bytes, "disclaimer": DISCLAIMER}

    return router


def api_router(predictor: Predictor, settings: ServeSettings, slots: DecodeSlots,
               lane: LargeUploadLane) -> APIRouter:
    """``/v1``: the model card and the routes that run the model, behind the API key."""
    api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False,
                                  description="required when the server has an API key")

    def require_key(provided: str | None = Security(api_key_header)) -> None:
        # UploadGuard already refused bad keys before the body was read; checking again
        # here keeps a route safe even if it is ever mounted without the middleware.
        if settings.api_key is not None and not key_matches(provided, settings.api_key):
            raise unauthorized_error(missing=provided is None)

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_key)], responses=_ERRORS)

    @v1.get("/model", response_model=ModelCardResponse, tags=["model"])
    def model_card() -> dict:
        """The model card: architecture, classes, preprocessing, calibration, metrics."""
        return {"name": predictor.name, "checksum": predictor.checksum,
                "classes": list(predictor.classes), "card": predictor.card,
                "has_tumour_head": predictor.has_tumour_head,
                "tumour_threshold": predictor.tumour_threshold,
                "ood": predictor.ood_status, "disclaimer": DISCLAIMER}

    one_file = [Depends(single_file_field)]

    @v1.post("/predict", response_model=PredictionResponse, tags=["predict"],
             dependencies=one_file)
    def predict(file: UploadFile = File(..., description="the scan: JPEG, PNG or DICOM")) -> dict:
        """Classify one scan. Research use only: not a diagnosis."""
        result = _classify(predictor, settings, slots, lane, file, explain=False)
        return _finish(result.body, result.started, "predict")

    @v1.post(
        "/explain", response_model=ExplanationResponse, tags=["predict"], dependencies=one_file,
        responses={200: {"content": {"image/png": {}},
                         "description": "JSON, or the overlay PNG with the prediction in "
                                        "X-Braintumor-* headers (?format=png or "
                                        "Accept: image/png)"}},
    )
    def explain(
        request: Request,
        file: UploadFile = File(..., description="the scan: JPEG, PNG or DICOM"),
        format: str | None = Query(None, pattern="^(json|png)$",
                                   description="png: answer with the overlay PNG itself"),
    ) -> Response:
        """Classify one scan and show the evidence: a Grad-CAM heatmap over it."""
        result = _classify(predictor, settings, slots, lane, file, explain=True)
        body = result.body
        pred = result.prediction
        assert pred.overlay is not None and pred.heatmap is not None  # explain=True made them
        overlay = png_bytes(pred.overlay)
        if _wants_png(format, request.headers.get("accept", "")):
            _finish(body, result.started, "explain")
            return Response(overlay, media_type="image/png", headers=_result_headers(body))
        heatmap = png_bytes(heatmap_rgba(pred.heatmap))
        body["overlay_png"] = base64.b64encode(overlay).decode("ascii")
        body["heatmap_png"] = base64.b64encode(heatmap).decode("ascii")
        body["scan_png"] = base64.b64encode(png_bytes(result.loaded.pixels)).decode("ascii")
        body["tumour"] = tumour_body(pred, predictor.tumour_threshold)
        return JSONResponse(_finish(body, result.started, "explain"))

    return v1


def _classify(predictor: Predictor, settings: ServeSettings, slots: DecodeSlots,
              lane: LargeUploadLane, file: UploadFile, explain: bool) -> _Classified:
    """Read, decode and run the model; every refusal raises the ApiError that says why."""
    t0 = time.perf_counter()
    if file.size is not None and file.size > settings.max_upload_bytes:
        raise too_large_error(settings.max_upload_bytes, declared=file.size)
    data = file.file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise too_large_error(settings.max_upload_bytes)
    name = upload_name(file.filename)
    # Priced from the header and held until the model is done: bounds memory per upload.
    with decode_reservation(slots, data, name, settings.max_side, explain) as reservation:
        # A large scan is decoded *and* classified on the low-priority lane: on a small
        # server its model pass competes for the same cores as everyone else's.
        work = (data, name, settings, predictor, explain)
        loaded, pred = lane.run(_decode_and_predict, *work) if reservation.large \
            else _decode_and_predict(*work)
    h, w = loaded.meta.original_size
    body = {"label": pred.label, "confidence": pred.confidence,
            "probabilities": pred.probabilities, "model": pred.model,
            "checksum": pred.checksum, "seconds": 0.0, "image_size": [h, w],
            "image_format": loaded.meta.format, "warnings": list(loaded.meta.warnings),
            "warning": pred.warning, "ood_score": pred.ood_score,
            "ood_reasons": list(pred.ood_reasons), "disclaimer": DISCLAIMER}
    return _Classified(pred, loaded, body, t0)


def _decode_and_predict(data: bytes, name: str, settings: ServeSettings, predictor: Predictor,
                        explain: bool) -> tuple[LoadedImage, Prediction]:
    loaded = decode_upload(data, name, settings.max_pixels, settings.max_side)
    try:
        return loaded, predictor.predict_one(loaded, explain=explain)
    except ImageReadError as exc:
        raise ApiError(422, "unreadable_image",
                       f"The scan cannot be used: {exc.reason}.") from None


def _finish(body: dict, t0: float, route: str) -> dict:
    body["seconds"] = round(time.perf_counter() - t0, 6)
    # Class and timing only: never the file name, never anything read from the file.
    log.info("%s %s (%.0f%%) in %.1f ms", route, body["label"],
             100 * (body["confidence"] or 0), 1000 * body["seconds"])
    return body


def _wants_png(format: str | None, accept: str) -> bool:
    if format is not None:
        return format == "png"
    accept = accept.lower()
    return "image/png" in accept and "application/json" not in accept


def _result_headers(body: dict) -> dict[str, str]:
    ood = {} if body.get("ood_score") is None else {
        "X-Braintumor-OOD-Score": f"{body['ood_score']:.4f}"}
    if body.get("warning"):
        ood["X-Braintumor-Warning"] = body["warning"]
    return ood | {
        "X-Braintumor-Label": str(body["label"]),
        "X-Braintumor-Confidence": f"{body['confidence']:.6f}",
        "X-Braintumor-Probabilities": json.dumps(body["probabilities"], separators=(",", ":")),
        "X-Braintumor-Model": body["model"],
        "X-Braintumor-Checksum": body["checksum"],
        "X-Braintumor-Disclaimer": DISCLAIMER,
    }
