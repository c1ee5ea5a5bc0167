"""Flower's FedAvg / FedProx, wrapped to keep the per-round log and the latest global model.

The wrapper delegates every decision to Flower's strategy and only records: global
validation accuracy (evaluated at the server when it holds validation images), each site's
metrics, failures, and the bytes of weights sent down and up in each round.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from flwr.common import Parameters, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.strategy import FedAvg, FedProx, Strategy

STRATEGIES = ("fedavg", "fedprox")


def _bytes(parameters: Parameters) -> int:
    return int(sum(len(t) for t in parameters.tensors))


def round_lr(peak: float, server_round: int, rounds: int, floor: float = 0.05) -> float:
    """The learning rate a site trains with in ``server_round`` (1-based) of ``rounds``.

    Cosine decay across rounds from ``peak`` to ``floor * peak``, sent by the server in each
    round's fit config. A site's optimizer is rebuilt every round, so a per-site schedule
    would restart at its peak each time; central training decays its rate (one-cycle), and a
    federation held at the peak rate ends on noisy weights that the average does not smooth.
    """
    if rounds <= 1:
        return peak
    t = min(max(server_round - 1, 0), rounds - 1) / (rounds - 1)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))


def build_strategy(name: str, initial: list[np.ndarray], fit_config: dict, *,
                   min_fit_clients: int, proximal_mu: float = 0.0,
                   rounds: int | None = None) -> Strategy:
    """Flower's strategy: every connected site trains each round (fraction_fit 1), a round
    starts once ``min_fit_clients`` are connected, and a site that fails or drops out
    mid-round is left out of that round's average instead of stopping it
    (``accept_failures``). With ``rounds``, ``fit_config["lr"]`` is the peak of
    :func:`round_lr`; without, every round gets it unchanged."""
    if name not in STRATEGIES:
        raise ValueError(f"strategy {name!r}: expected one of {', '.join(STRATEGIES)}")
    common: dict[str, Any] = dict(
        fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=min_fit_clients,
        min_evaluate_clients=0, min_available_clients=min_fit_clients, accept_failures=True,
        initial_parameters=ndarrays_to_parameters(initial),
        on_fit_config_fn=lambda rnd: {**fit_config, "round": rnd, "lr": (
            round_lr(fit_config["lr"], rnd, rounds) if rounds else fit_config["lr"])})
    if name == "fedprox":
        return FedProx(proximal_mu=proximal_mu, **common)
    return FedAvg(**common)


class RecordingStrategy(Strategy):
    """Flower's strategy plus a round log; ``latest`` is the current global model."""

    def __init__(self, inner: Strategy,
                 evaluate_global: Callable[[list[np.ndarray]], dict] | None = None,
                 on_round: Callable[[dict], None] | None = None):
        self.inner = inner
        self.evaluate_global = evaluate_global
        self.on_round = on_round
        self.rounds: list[dict] = []
        self.latest: list[np.ndarray] | None = None
        self._pending: dict = {}
        self._t0 = time.perf_counter()

    def initialize_parameters(self, client_manager):
        params = self.inner.initialize_parameters(client_manager)
        if params is not None:
            self.latest = parameters_to_ndarrays(params)
        return params

    def configure_fit(self, server_round, parameters, client_manager):
        instructions = self.inner.configure_fit(server_round, parameters, client_manager)
        self._t0 = time.perf_counter()
        self._pending = {"round": server_round, "sites_asked": len(instructions),
                         "bytes_down": sum(_bytes(ins.parameters) for _, ins in instructions)}
        return instructions

    def aggregate_fit(self, server_round, results, failures):
        params, metrics = self.inner.aggregate_fit(server_round, results, failures)
        if params is not None:
            self.latest = parameters_to_ndarrays(params)
        self._pending.update({
            "sites_ok": len(results), "failures": len(failures),
            "failure_reasons": [repr(f) if isinstance(f, BaseException) else "no result"
                                for f in failures],
            "bytes_up": sum(_bytes(res.parameters) for _, res in results),
            "sites": [dict(res.metrics, examples=res.num_examples) for _, res in results],
        })
        return params, metrics

    def configure_evaluate(self, server_round, parameters, client_manager):
        return self.inner.configure_evaluate(server_round, parameters, client_manager)

    def aggregate_evaluate(self, server_round, results, failures):
        return self.inner.aggregate_evaluate(server_round, results, failures)

    def evaluate(self, server_round, parameters):
        """Global validation after each round (round 0: the initial model); logs the round."""
        global_metrics = {}
        if self.evaluate_global is not None:
            global_metrics = self.evaluate_global(parameters_to_ndarrays(parameters))
        row = {"round": server_round, **self._pending, **global_metrics}
        if server_round > 0:
            row["seconds"] = round(time.perf_counter() - self._t0, 2)
            row["bytes_total"] = row.get("bytes_down", 0) + row.get("bytes_up", 0)
        self.rounds.append(row)
        self._pending = {}
        if self.on_round is not None:
            self.on_round(row)
        if "val_loss" in global_metrics:
            return float(global_metrics["val_loss"]), {
                k: v for k, v in global_metrics.items() if isinstance(v, (int, float))}
        return None
