"""The REST service and web page: ``create_app(predictor, settings)`` and ``braintumor serve``.

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
import os
import sys
import time
from importlib import resources
from typing import NamedTuple

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, File, Query, Request, Security, UploadFile
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader

from braintumor import DISCLAIMER, __version__
from braintumor.data.errors import ImageReadError
from braintumor.data.readers import LoadedImage
from braintumor.inference.predictor import Prediction, Predictor
from braintumor.serve.errors import ApiError, ContainFailures, install_error_handlers
from braintumor.serve.guard import UploadGuard, key_matches, too_large_error, unauthorized_error
from braintumor.serve.imaging import decode_upload, heatmap_rgba, png_bytes, upload_name
from braintumor.serve.outline import tumour_body
from braintumor.serve.schemas import (
    ErrorResponse,
    ExplanationResponse,
    HealthResponse,
    ModelCardResponse,
    PredictionResponse,
)
from braintumor.serve.settings import API_KEY_ENV, API_KEY_HEADER, ServeSettings

log = logging.getLogger("braintumor.serve")

# Headers that carry the prediction when /v1/explain answers with a bare PNG.
RESULT_HEADERS = ("X-Braintumor-Label", "X-Braintumor-Confidence", "X-Braintumor-Probabilities",
                  "X-Braintumor-Model", "X-Braintumor-Checksum", "X-Braintumor-Disclaimer")
# The page is self-contained: it may talk to this server and show data:/blob: images, and
# nothing else. A CSP that forbids other origins keeps it that way.
PAGE_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
            "img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; "
            "form-action 'none'; frame-ancestors 'none'")

_ERRORS = {
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


def create_app(predictor, settings: ServeSettings | None = None) -> FastAPI:
    """A FastAPI app serving ``predictor`` (a loaded ``Predictor``) under ``settings``."""
    settings = settings or ServeSettings()
    app = FastAPI(title="braintumor", version=__version__, description=API_DESCRIPTION)
    app.state.predictor = predictor
    app.state.settings = settings
    install_error_handlers(app)
    page = _page_html()

    api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False,
                                  description="required when the server has an API key")

    def require_key(provided: str | None = Security(api_key_header)) -> None:
        # UploadGuard already refused bad keys before the body was read; checking again
        # here keeps a route safe even if it is ever mounted without the middleware.
        if settings.api_key is not None and not key_matches(provided, settings.api_key):
            raise unauthorized_error(missing=provided is None)

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_key)], responses=_ERRORS)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_CSP,
                                           "X-Content-Type-Options": "nosniff",
                                           "Cache-Control": "no-cache"})

    @app.get("/health", response_model=HealthResponse, tags=["service"])
    def health() -> dict:
        """Liveness and what the page needs before its first request (is a key required?)."""
        return {"status": "ok", "version": __version__, "model": predictor.name,
                "api_key_required": settings.api_key is not None,
                "max_upload_bytes": settings.max_upload_bytes, "disclaimer": DISCLAIMER}

    @v1.get("/model", response_model=ModelCardResponse, tags=["model"])
    def model_card() -> dict:
        """The model card: architecture, classes, preprocessing, calibration, metrics."""
        return {"name": predictor.name, "checksum": predictor.checksum,
                "classes": list(predictor.classes), "card": predictor.card,
                "has_tumour_head": predictor.has_tumour_head,
                "tumour_threshold": predictor.tumour_threshold,
                "disclaimer": DISCLAIMER}

    def classify(file: UploadFile, explain: bool) -> _Classified:
        """Read, decode and run the model; every refusal raises the ApiError that says why."""
        t0 = time.perf_counter()
        if file.size is not None and file.size > settings.max_upload_bytes:
            raise too_large_error(settings.max_upload_bytes, declared=file.size)
        data = file.file.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            raise too_large_error(settings.max_upload_bytes)
        loaded = decode_upload(data, upload_name(file.filename), settings.max_pixels)
        try:
            pred = predictor.predict_one(loaded, explain=explain)
        except ImageReadError as exc:
            raise ApiError(422, "unreadable_image", f"The scan cannot be used: {exc.reason}.") \
                from None
        h, w = loaded.meta.original_size
        body = {"label": pred.label, "confidence": pred.confidence,
                "probabilities": pred.probabilities, "model": pred.model,
                "checksum": pred.checksum, "seconds": 0.0, "image_size": [h, w],
                "image_format": loaded.meta.format, "warnings": list(loaded.meta.warnings),
                "disclaimer": DISCLAIMER}
        return _Classified(pred, loaded, body, t0)

    def finish(body: dict, t0: float, route: str) -> dict:
        body["seconds"] = round(time.perf_counter() - t0, 6)
        # Class and timing only: never the file name, never anything read from the file.
        log.info("%s %s (%.0f%%) in %.1f ms", route, body["label"],
                 100 * (body["confidence"] or 0), 1000 * body["seconds"])
        return body

    @v1.post("/predict", response_model=PredictionResponse, tags=["predict"])
    def predict(file: UploadFile = File(..., description="the scan: JPEG, PNG or DICOM")) -> dict:
        """Classify one scan. Research use only: not a diagnosis."""
        result = classify(file, explain=False)
        return finish(result.body, result.started, "predict")

    @v1.post(
        "/explain", response_model=ExplanationResponse, tags=["predict"],
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
    ):
        """Classify one scan and show the evidence: a Grad-CAM heatmap over it."""
        result = classify(file, explain=True)
        body = result.body
        overlay = png_bytes(result.prediction.overlay)
        if _wants_png(format, request.headers.get("accept", "")):
            finish(body, result.started, "explain")
            return Response(overlay, media_type="image/png", headers=_result_headers(body))
        heatmap = png_bytes(heatmap_rgba(result.prediction.heatmap))
        body["overlay_png"] = base64.b64encode(overlay).decode("ascii")
        body["heatmap_png"] = base64.b64encode(heatmap).decode("ascii")
        body["scan_png"] = base64.b64encode(png_bytes(result.loaded.pixels)).decode("ascii")
        body["tumour"] = tumour_body(result.prediction, predictor.tumour_threshold)
        return JSONResponse(finish(body, result.started, "explain"))

    app.include_router(v1)
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


def _wants_png(format: str | None, accept: str) -> bool:
    if format is not None:
        return format == "png"
    accept = accept.lower()
    return "image/png" in accept and "application/json" not in accept


def _result_headers(body: dict) -> dict[str, str]:
    return {
        "X-Braintumor-Label": str(body["label"]),
        "X-Braintumor-Confidence": f"{body['confidence']:.6f}",
        "X-Braintumor-Probabilities": json.dumps(body["probabilities"], separators=(",", ":")),
        "X-Braintumor-Model": body["model"],
        "X-Braintumor-Checksum": body["checksum"],
        "X-Braintumor-Disclaimer": DISCLAIMER,
    }


SERVE_CONFIG_ENV = "BRAINTUMOR_SERVE_CONFIG"


def _warm_up(predictor) -> None:
    """One explained prediction on noise before the port opens, so the first clinician's
    request does not also pay for building the Grad-CAM model copy and the colour tables."""
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    heatmap_rgba(predictor.predict_one(noise, explain=True).heatmap)


def app_from_env() -> FastAPI:
    """App factory for ``--workers > 1``: uvicorn starts each worker process from an import
    string, so the model path and settings travel in the environment (the API key in
    ``$BRAINTUMOR_API_KEY``), and every worker loads its own copy of the model once."""
    config = json.loads(os.environ[SERVE_CONFIG_ENV])
    settings = ServeSettings(max_upload_bytes=config["max_upload_bytes"],
                             api_key=os.environ.get(API_KEY_ENV) or None,
                             cors_origins=tuple(config["cors_origins"]),
                             max_pixels=config["max_pixels"])
    predictor = Predictor.load(config["model"])
    _warm_up(predictor)
    return create_app(predictor, settings)


def serve_command(args) -> int:
    """``braintumor serve``: load the model once, then run uvicorn until interrupted."""
    import uvicorn

    try:
        settings = ServeSettings.from_args(args)
    except ValueError as exc:
        print(f"braintumor serve: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        predictor = Predictor.load(args.model)  # fail here, not in a worker, on a bad path
    except (FileNotFoundError, ValueError) as exc:
        print(f"braintumor serve: cannot load the model: {exc}", file=sys.stderr)
        return 1
    _warm_up(predictor)
    if args.host not in ("127.0.0.1", "localhost", "::1") and settings.api_key is None:
        print(f"warning: listening on {args.host} without an API key: anyone who can reach "
              "this port can use the service (set --api-key or $BRAINTUMOR_API_KEY)",
              file=sys.stderr)
    print(f"braintumor {__version__}: model {predictor.name} ({predictor.checksum[:12]}), "
          f"http://{args.host}:{args.port}/\n{DISCLAIMER}", file=sys.stderr)
    workers = max(1, int(getattr(args, "workers", 1) or 1))
    common = {"host": args.host, "port": args.port, "log_level": "info",
              "server_header": False}
    if workers == 1:
        uvicorn.run(create_app(predictor, settings), **common)
        return 0
    os.environ[SERVE_CONFIG_ENV] = json.dumps({
        "model": str(predictor.path) if predictor.path else None,
        "max_upload_bytes": settings.max_upload_bytes,
        "cors_origins": list(settings.cors_origins), "max_pixels": settings.max_pixels})
    if settings.api_key is not None:
        os.environ[API_KEY_ENV] = settings.api_key
    del predictor  # each worker loads its own
    uvicorn.run("braintumor.serve.app:app_from_env", factory=True, workers=workers, **common)
    return 0
