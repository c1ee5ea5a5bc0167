"""``braintumor train``: the handler behind the flags (cli.py parses, this runs)."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from braintumor.data.datasets import DatasetError
from braintumor.data.splits import TrainingDataError
from braintumor.training.checkpoint_io import CheckpointWriteError
from braintumor.training.config import ConfigError, load_config, overrides_from_args
from braintumor.training.run import TrainingError, train


def train_command(args: argparse.Namespace) -> int:
    """Handler of ``braintumor train``; returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config_path = args.config
    out = args.out
    if args.resume and not config_path and out and (Path(out) / "config.yaml").is_file():
        config_path = str(Path(out) / "config.yaml")  # continue with the run's own settings
    try:
        cfg = load_config(config_path, overrides_from_args(args))
        if args.resume and not config_path and not out:
            raise TrainingError("--resume needs --out RUN_DIR (or the run's --config)")
        command = "braintumor " + shlex.join(sys.argv[1:]) if sys.argv[1:] else None
        summary = train(cfg, resume=args.resume, command=command)
    except (ConfigError, DatasetError, TrainingDataError, TrainingError,
            CheckpointWriteError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if not isinstance(exc, CheckpointWriteError) else 1
    except KeyboardInterrupt as exc:
        print(f"\n{exc or 'training interrupted'}", file=sys.stderr)
        return 130
    if not summary:
        return 0
    m = summary["metrics"]
    line = (f"done in {summary['wall_seconds']:.0f} s: validation accuracy "
            f"{m['validation']['accuracy']:.4f}, macro-F1 {m['validation']['macro_f1']:.4f}")
    if "test" in m:
        line += (f"; test accuracy {m['test']['accuracy']:.4f}, "
                 f"macro-F1 {m['test']['macro_f1']:.4f}")
    print(line + f"\nbundle: {summary['bundle']}"
          + (f" and {summary['exported_bundle']}" if summary["exported_bundle"] else ""),
          file=sys.stderr)
    return 0
