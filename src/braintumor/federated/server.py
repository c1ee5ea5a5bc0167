"""``braintumor federated server``: the aggregator, one process, Flower's gRPC transport.

flwr 1.32's ``start_server`` (deprecated since 1.13 in favour of the SuperLink, but
self-contained and offline: the SuperLink route runs Flower apps packaged as FABs through
a third process and Flower's CLI, for the same averaging). By default it binds to
127.0.0.1; any other address needs TLS (``--tls-dir`` with ``ca.crt``, ``server.pem`` and
``server.key``), because the weights would otherwise cross the network in clear text.
"""

from __future__ import annotations

import ipaddress
import sys
import time
from pathlib import Path

import numpy as np

from braintumor.data.cache import build_cache
from braintumor.data.datasets import discover
from braintumor.data.labels import CANONICAL_CLASSES, parse_class_spec
from braintumor.data.preprocess import PreprocessConfig
from braintumor.federated.federation import (
    GlobalEvaluator,
    initial_model,
    spec_of,
    write_global_bundle,
    write_round_log,
)
from braintumor.federated.strategy import RecordingStrategy, build_strategy
from braintumor.federated.weights import FederationMismatchError, model_arrays
from braintumor.training.config import TrainConfig

TLS_FILES = ("ca.crt", "server.pem", "server.key")


def check_address(address: str, tls: bool) -> None:
    host = address.rsplit(":", 1)[0].strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not tls:
        raise ValueError(f"--address {address}: binding beyond this machine without TLS would "
                         "send the weights in clear text; use 127.0.0.1:PORT or pass --tls-dir")


def server_certificates(tls_dir: str | None) -> tuple[bytes, bytes, bytes] | None:
    if not tls_dir:
        return None
    d = Path(tls_dir)
    missing = [n for n in TLS_FILES if not (d / n).is_file()]
    if missing:
        raise ValueError(f"--tls-dir {d}: missing {', '.join(missing)} (see docs/federated.md)")
    return tuple((d / n).read_bytes() for n in TLS_FILES)  # type: ignore[return-value]


def _classes(cfg: TrainConfig) -> list[str]:
    return parse_class_spec(cfg.custom_classes)[0] if cfg.custom_classes \
        else list(CANONICAL_CLASSES)


def _validation(val_data: str, spec_classes: list[str], image_size: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Every image of a dataset folder the server holds, as global validation."""
    index = discover(val_data)
    extra = sorted(set(index.classes) - set(spec_classes))
    if extra:
        raise FederationMismatchError(f"--val-data {val_data} has classes {extra} that the "
                                      f"federation ({', '.join(spec_classes)}) does not train")
    cached = build_cache(index.samples, PreprocessConfig(image_size=image_size), progress=False)
    return np.asarray(cached.images), cached.label_indices(spec_classes)


def run_server(cfg: TrainConfig, *, address: str, rounds: int, local_epochs: int,
               strategy: str, proximal_mu: float, min_fit_clients: int,
               val_data: str | None = None, tls_dir: str | None = None,
               round_timeout: float | None = None, command: str | None = None) -> dict:
    t0 = time.perf_counter()
    from flwr.server import ServerConfig, start_server

    certificates = server_certificates(tls_dir)
    check_address(address, certificates is not None)
    classes = _classes(cfg)
    spec = spec_of(cfg, classes)
    model, parent = initial_model(cfg, classes)
    val = _validation(val_data, classes, cfg.image_size) if val_data else None
    fit_config = {"local_epochs": local_epochs, "lr": cfg.lr, "spec": spec.to_json()}
    inner = build_strategy(strategy, model_arrays(model), fit_config,
                           min_fit_clients=min_fit_clients, proximal_mu=proximal_mu,
                           rounds=rounds)
    evaluator = GlobalEvaluator(spec, model, *val) if val is not None else None
    recorder = RecordingStrategy(inner, evaluator, on_round=lambda r: print(
        f"round {r['round']}: " + ", ".join(f"{k} {r[k]}" for k in (
            "val_accuracy", "sites_ok", "failures", "bytes_total") if k in r),
        file=sys.stderr, flush=True))
    print(f"federated server on {address} ({'TLS' if certificates else 'insecure, loopback'})"
          f": {spec.describe()}, {strategy}, {rounds} rounds, waiting for {min_fit_clients} "
          "site(s)", file=sys.stderr, flush=True)
    start_server(server_address=address, strategy=recorder, certificates=certificates,
                 config=ServerConfig(num_rounds=rounds, round_timeout=round_timeout))
    out = Path(cfg.out)
    write_round_log(recorder.rounds, out)
    done = [r for r in recorder.rounds if r["round"] > 0 and r.get("sites_ok")]
    federated = {
        "mode": "server (Flower gRPC)", "address": address, "tls": certificates is not None,
        "sites": sorted({s.get("site") for r in done for s in r.get("sites", [])}),
        "rounds": rounds, "rounds_with_results": len(done), "local_epochs": local_epochs,
        "strategy": strategy, "proximal_mu": proximal_mu if strategy == "fedprox" else None,
        "min_fit_clients": min_fit_clients, "partition": "by site (each client's own data)",
        "bytes_total": int(sum(r.get("bytes_total", 0) for r in recorder.rounds)),
        "parent": parent,
    }
    if not done:
        raise RuntimeError("no round got a result from any site: no model was written "
                           f"(round log in {out})")
    training = {"command": command, "seed": cfg.seed,
                "wall_seconds": round(time.perf_counter() - t0, 1)}
    assert recorder.latest is not None  # the initial parameters at least
    bundle = write_global_bundle(model, recorder.latest, spec, cfg, out / "bundle", federated,
                                 validation=val, training=training)
    return {"run_dir": str(out), "bundle": str(bundle), "federated": federated}
