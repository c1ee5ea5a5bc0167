"""Handlers of ``braintumor federated {simulate,server,client,partition}``."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

from braintumor.federated import FederatedUnavailable, require_flwr

_CONFIG_FLAGS = ("data", "model", "out", "batch_size", "lr", "weight_decay", "image_size", "seed",
                 "val_fraction", "max_train_images", "num_threads", "init_from",
                 "custom_classes")


def _config(args):
    from braintumor.training.config import load_config

    overrides = {n: getattr(args, n, None) for n in _CONFIG_FLAGS}
    cfg = load_config(args.config, overrides)
    if cfg.num_threads:
        import torch

        torch.set_num_threads(cfg.num_threads)
    return cfg


def _drops(specs: list[str]) -> dict[int, set[int]]:
    """``--drop SITE@ROUND`` (repeatable) -> {site: {rounds}}."""
    out: dict[int, set[int]] = {}
    for s in specs or []:
        site, _, rnd = s.partition("@")
        try:
            out.setdefault(int(site), set()).add(int(rnd))
        except ValueError:
            raise ValueError(f"--drop {s!r}: expected SITE@ROUND, e.g. 1@2") from None
    return out


def federated_command(args) -> int:
    from braintumor.data.datasets import DatasetError
    from braintumor.data.labels import ClassSpecError
    from braintumor.training.config import ConfigError
    from braintumor.training.data import TrainingDataError
    from braintumor.training.init_from import InitFromError

    expected = (ConfigError, DatasetError, TrainingDataError, InitFromError, ClassSpecError,
                FederatedUnavailable, ValueError, FileNotFoundError)
    command = "braintumor " + shlex.join(sys.argv[1:]) if sys.argv[1:] else None
    try:
        if args.fed_command != "partition":
            require_flwr()
        return _run(args, command)
    except expected as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args, command: str | None) -> int:
    cfg = _config(args)
    if args.fed_command == "simulate":
        from braintumor.federated.simulate import simulate

        summary = simulate(cfg, sites=args.sites, partition=args.partition, rounds=args.rounds,
                           local_epochs=args.local_epochs, strategy=args.strategy,
                           proximal_mu=args.proximal_mu, min_fit_clients=args.min_fit_clients,
                           drop=_drops(args.drop), command=command)
        m = summary["metrics"]
        print(f"done in {summary['wall_seconds']:.0f} s: global validation accuracy "
              f"{m['validation']['accuracy']:.4f}" + (
                  f"; test accuracy {m['test']['accuracy']:.4f}" if "test" in m else "")
              + f"\nbundle: {summary['bundle']}\nround log: {Path(cfg.out) / 'rounds.csv'}",
              file=sys.stderr)
    elif args.fed_command == "server":
        from braintumor.federated.server import run_server

        summary = run_server(cfg, address=args.address, rounds=args.rounds,
                             local_epochs=args.local_epochs, strategy=args.strategy,
                             proximal_mu=args.proximal_mu, min_fit_clients=args.min_fit_clients,
                             val_data=args.val_data, tls_dir=args.tls_dir,
                             round_timeout=args.round_timeout, command=command)
        print(f"bundle: {summary['bundle']}", file=sys.stderr)
    elif args.fed_command == "client":
        from braintumor.federated.client_run import run_client
        from braintumor.federated.weights import FederationMismatchError

        try:
            run_client(cfg, data=args.site_data, address=args.address, name=args.name,
                       ca_file=args.ca_file)
        except FederationMismatchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 3
    else:
        write_site_folders(cfg, args.sites, args.partition, Path(args.out_dir))
    return 0


def write_site_folders(cfg, sites: int, partition: str, out: Path) -> dict:
    """Site folders of symbolic links (no image is copied) for a deployment drill.

    ``site-K/Training/<class>/`` per site, from the part of Training a central run with this
    config trains on, and ``server-validation/Training/<class>/`` from the part it validates
    on (for ``server --val-data``).
    """
    from braintumor.federated.partition import class_mix, partition_sites
    from braintumor.training.data import CacheDataModule

    dm = CacheDataModule(cfg.data, cfg.image_size, cfg.batch_size, cfg.val_fraction, cfg.seed,
                         cfg.max_train_images)
    dm.prepare()
    rows = dm.train_rows
    site_rows = partition_sites(dm.labels[rows], dm.train_groups, sites, partition, cfg.seed)
    folders = {f"site-{i}": rows[r] for i, r in enumerate(site_rows)}
    folders["server-validation"] = dm.val_rows
    for name, idx in folders.items():
        for r in idx:
            src = Path(dm.cached.paths[r]).resolve()
            dst = out / name / "Training" / dm.cached.labels[r] / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not dst.exists():
                os.symlink(src, dst)
    mix = class_mix(dm.labels[rows], site_rows, len(dm.classes))
    info = {"partition": partition, "seed": cfg.seed, "classes": dm.classes,
            "site_class_counts": {f"site-{i}": row.tolist() for i, row in enumerate(mix)},
            "server_validation_images": int(len(dm.val_rows))}
    (out / "partition.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info["site_class_counts"]), file=sys.stderr)
    return info
