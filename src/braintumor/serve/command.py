"""``braintumor serve``: load the model once, then run uvicorn (one process or several)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

import numpy as np
from fastapi import FastAPI

from braintumor import DISCLAIMER, __version__
from braintumor.inference.predictor import Predictor
from braintumor.serve.app import create_app
from braintumor.serve.imaging import heatmap_rgba
from braintumor.serve.limits import bound_allocator
from braintumor.serve.settings import API_KEY_ENV, ServeSettings

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
    bound_allocator()
    config = json.loads(os.environ[SERVE_CONFIG_ENV])
    settings = ServeSettings.from_json(config["settings"], os.environ.get(API_KEY_ENV) or None)
    predictor = Predictor.load(config["model"])
    _warm_up(predictor)
    return create_app(predictor, settings)


def serve_command(args: argparse.Namespace) -> int:
    """``braintumor serve``: load the model once, then run uvicorn until interrupted."""
    import uvicorn

    try:
        settings = ServeSettings.from_args(args)
    except ValueError as exc:
        print(f"braintumor serve: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    bound_allocator()  # before the model and the thread pool allocate anything
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
        "settings": settings.to_json()})
    if settings.api_key is not None:
        os.environ[API_KEY_ENV] = settings.api_key
    del predictor  # each worker loads its own
    uvicorn.run("braintumor.serve.command:app_from_env", factory=True, workers=workers, **common)
    return 0
