"""``braintumor federated simulate``: every site in this process, over Flower's own server loop.

Flower's ``start_simulation`` / ``run_simulation`` need Ray (the ``flwr[simulation]`` extra,
a ~200 MB dependency that starts a local cluster). Instead, each site is wrapped in a
:class:`InProcessProxy` (a ``ClientProxy`` whose ``fit`` calls the site's Flower client
directly) and handed to Flower's ``Server``: sampling, the strategy (FedAvg / FedProx),
failure handling and aggregation are Flower's, exactly as over the network; only the
transport is a function call. Sites run one at a time (``max_workers=1``): on a CPU
machine concurrent sites would only contend for the same cores.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Set as AbstractSet
from pathlib import Path

import numpy as np
from flwr.common import Code, DisconnectRes, GetParametersRes, GetPropertiesRes, Status
from flwr.server import Server
from flwr.server.client_manager import SimpleClientManager
from flwr.server.client_proxy import ClientProxy

from braintumor.federated.client import SiteClient
from braintumor.federated.federation import (
    GlobalEvaluator,
    initial_model,
    spec_of,
    write_global_bundle,
    write_round_log,
)
from braintumor.federated.partition import class_mix, parse_scheme, partition_sites
from braintumor.federated.site import SiteTrainer
from braintumor.federated.strategy import RecordingStrategy, build_strategy
from braintumor.federated.weights import model_arrays
from braintumor.training.config import TrainConfig
from braintumor.training.data import CacheDataModule


class SiteDropped(RuntimeError):
    """A simulated site that leaves mid-round (``drop``): Flower counts it as a failure."""


class InProcessProxy(ClientProxy):
    """A site reached by a function call instead of gRPC."""

    def __init__(self, cid: str, client: SiteClient, drop_rounds: AbstractSet[int] = frozenset()):
        super().__init__(cid)
        self.client = client.to_client()
        self.drop_rounds = set(drop_rounds)

    def get_properties(self, ins, timeout, group_id):
        return GetPropertiesRes(status=Status(Code.OK, ""), properties={})

    def get_parameters(self, ins, timeout, group_id):
        return GetParametersRes(status=Status(Code.OK, ""),
                                parameters=self.client.get_parameters(ins).parameters)

    def fit(self, ins, timeout, group_id):
        if int(ins.config.get("round", 0)) in self.drop_rounds:
            raise SiteDropped(f"site {self.cid} dropped out of round {ins.config['round']}")
        return self.client.fit(ins)

    def evaluate(self, ins, timeout, group_id):
        return self.client.evaluate(ins)

    def reconnect(self, ins, timeout, group_id):
        return DisconnectRes(reason="")


def simulate(cfg: TrainConfig, *, sites: int, partition: str, rounds: int, local_epochs: int,
             strategy: str = "fedavg", proximal_mu: float = 0.01,
             min_fit_clients: int | None = None, drop: dict[int, set[int]] | None = None,
             command: str | None = None) -> dict:
    """Partition Training into ``sites``, federate for ``rounds``; returns the summary.

    Global validation is the split a central run with the same config holds out (duplicate
    aware), so federated and central figures are measured on the same images; the sites
    share the rest. ``drop`` maps a site index to rounds it drops out of (tests, drills).
    """
    t0 = time.perf_counter()
    if cfg.data is None:
        raise ValueError("no dataset: pass --data DIR (or set DATA)")
    scheme = parse_scheme(partition)
    out = Path(cfg.out)
    dm = CacheDataModule(cfg.data, cfg.image_size, cfg.batch_size, cfg.val_fraction, cfg.seed,
                         cfg.max_train_images, custom_classes=cfg.custom_classes)
    split = dm.prepare()
    classes = split.classes
    images = np.asarray(dm.cached.images)
    train_rows = dm.train_rows
    site_rows = partition_sites(dm.labels[train_rows], dm.train_groups, sites, scheme, cfg.seed)
    val = (images[dm.val_rows], dm.labels[dm.val_rows])
    spec = spec_of(cfg, classes)
    model, parent = initial_model(cfg, classes)
    fit_config = {"local_epochs": local_epochs, "lr": cfg.lr, "spec": spec.to_json()}
    inner = build_strategy(strategy, model_arrays(model), fit_config,
                           min_fit_clients=min_fit_clients or sites, proximal_mu=proximal_mu,
                           rounds=rounds)
    recorder = RecordingStrategy(inner, GlobalEvaluator(spec, model, *val),
                                 on_round=lambda row: _print_round(row, rounds))
    manager = SimpleClientManager()
    for i, rows in enumerate(site_rows):
        r = train_rows[rows]
        trainer = SiteTrainer(f"site-{i}", cfg, classes, images[r], dm.labels[r], *val)
        manager.register(InProcessProxy(f"site-{i}", SiteClient(trainer),
                                        (drop or {}).get(i, set())))
    server = Server(client_manager=manager, strategy=recorder)
    server.set_max_workers(1)
    server.fit(num_rounds=rounds, timeout=None)
    write_round_log(recorder.rounds, out)
    mix = class_mix(dm.labels[train_rows], site_rows, len(classes))
    federated = {
        "mode": "simulation (in-process Flower server loop)", "sites": sites,
        "partition": str(scheme), "rounds": rounds, "local_epochs": local_epochs,
        "strategy": strategy, "proximal_mu": proximal_mu if strategy == "fedprox" else None,
        "min_fit_clients": min_fit_clients or sites,
        "site_class_counts": {f"site-{i}": dict(zip(classes, map(int, row), strict=True))
                              for i, row in enumerate(mix)},
        "bytes_total": int(sum(r.get("bytes_total", 0) for r in recorder.rounds)),
        "parent": parent,
    }
    test = (images[dm.test_rows], dm.labels[dm.test_rows])
    wall = round(time.perf_counter() - t0, 1)
    training = {"command": command, "seed": cfg.seed, "config": cfg.to_dict(),
                "wall_seconds": wall, "counts": split.counts,
                "validation_split": split.split_method}
    assert recorder.latest is not None  # the initial parameters at least
    bundle = write_global_bundle(model, recorder.latest, spec, cfg, out / "bundle", federated,
                                 validation=val, test=test, training=training)
    card = json.loads((bundle / "card.json").read_text())
    summary = {"run_dir": str(out), "bundle": str(bundle), "wall_seconds": wall,
               "federated": federated, "metrics": card["metrics"],
               "rounds": [{k: v for k, v in r.items() if k != "sites"} for r in recorder.rounds]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    return summary


def _print_round(row: dict, rounds: int) -> None:
    acc = row.get("val_accuracy")
    line = f"round {row['round']}/{rounds}: global validation accuracy " + (
        f"{acc:.4f}" if acc is not None else "n/a")
    if row["round"] > 0:
        line += (f", {row.get('sites_ok', 0)} site(s) ok, {row.get('failures', 0)} failed, "
                 f"{row.get('bytes_total', 0) / 1e6:.1f} MB moved, {row.get('seconds', 0)} s")
    print(line, file=sys.stderr)
