"""Command line: parses arguments and hands each subcommand to the package that owns it.

Each subcommand has its own ``_add_<name>`` function below; the work lives in the function
named by its ``handler`` (``module:function`` taking the parsed args, returning an exit code),
in the owning package's ``command.py`` (``audit`` alone still in ``data/audit.py``), imported
only when that subcommand runs so ``braintumor --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from braintumor import DISCLAIMER, __version__


def _handler(parser: argparse.ArgumentParser, target: str) -> None:
    parser.set_defaults(handler=target)


def _data_default() -> str | None:
    return os.environ.get("DATA")


def _add_audit(sub) -> None:
    p = sub.add_parser("audit", help="count, check and find duplicates/leakage in a dataset")
    p.add_argument("data", nargs="?", default=_data_default(),
                   help="dataset folder or CSV (default: $DATA)")
    p.add_argument("--json", dest="json_out", help="write the full report as JSON here")
    p.add_argument("--leak-free-manifest",
                   help="write test images with no duplicate in training (CSV)")
    p.add_argument("--min-correlation", type=float, default=None,
                   help="32x32 thumbnail correlation that makes a candidate pair (default 0.90)")
    p.add_argument("--min-agreement", type=float, default=None,
                   help="gradient-orientation agreement that confirms a pair (default 0.87)")
    p.add_argument("--workers", type=int, default=None, help="decoding processes (default: CPUs)")
    p.add_argument("--custom-classes", action="store_true",
                   help="accept class names beyond the canonical four")
    _handler(p, "braintumor.data.audit:audit_command")


def _add_train(sub) -> None:
    # The flags are the TrainConfig fields marked as such (training/config.py): a new training
    # option is written once, in the dataclass. config.py imports only the standard library
    # and (lazily) yaml: about 25 ms more for ``braintumor --help``.
    from braintumor.training.config import train_flags

    p = sub.add_parser("train", help="train a model from scratch or fine-tune one")
    p.add_argument("--config", help="YAML or TOML file with any of the options below")
    for flag in train_flags():
        p.add_argument(flag.name, dest=flag.dest, **flag.kwargs)
    p.set_defaults(data=_data_default())
    p.add_argument("--resume", action="store_true",
                   help="continue from RUN_DIR/checkpoints/last.ckpt")
    _handler(p, "braintumor.training.command:train_command")


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="metrics, figures and an HTML report on a dataset split")
    p.add_argument("--model", help="model bundle or training run directory "
                                    "(default: the bundled model)")
    p.add_argument("--data", default=_data_default(), help="dataset folder or CSV (default: $DATA)")
    p.add_argument("--split", default="Testing", help="which split to evaluate (default: Testing)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--audit", help="audit JSON to take leakage from (computed when absent)")
    p.add_argument("--no-gallery", action="store_true", help="skip the misclassified-image gallery")
    _handler(p, "braintumor.evaluation.command:evaluate_command")


def _add_compare(sub) -> None:
    p = sub.add_parser("compare", help="headline metrics of several models on the same data")
    p.add_argument("models", nargs="+", help="run directories, bundles or evaluation folders")
    p.add_argument("--data", default=_data_default(), help="dataset folder or CSV (default: $DATA)")
    p.add_argument("--split", default="Testing", help="split to compare on (default: Testing)")
    p.add_argument("--format", choices=["table", "markdown", "json"], default="table",
                   help="output format (default: table)")
    _handler(p, "braintumor.evaluation.command:compare_command")


def _add_explain(sub) -> None:
    p = sub.add_parser("explain", help="Grad-CAM (and other) heatmaps over scans")
    p.add_argument("inputs", nargs="+", help="image files or folders")
    p.add_argument("--model", help="model bundle (default: the bundled model)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--method", default="gradcam",
                   help="gradcam, gradcam++, guided-gradcam, occlusion, integrated-gradients")
    p.add_argument("--target-class", help="class to explain (default: the predicted one)")
    p.add_argument("--layer", help="layer name to explain (default: the model's last conv)")
    p.add_argument("--colormap", default="jet", help="matplotlib colour map (default: jet)")
    p.add_argument("--alpha", type=float, default=0.45, help="overlay opacity")
    p.add_argument("--save-npy", action="store_true", help="also save the raw map as .npy")
    p.add_argument("--batch-size", type=int, default=16, help="images per batch (default: 16)")
    _handler(p, "braintumor.explain.command:explain_command")


def _add_explain_check(sub) -> None:
    p = sub.add_parser("explain-check", help="sanity, faithfulness and localisation of heatmaps")
    p.add_argument("--model", help="model bundle (default: the bundled model)")
    p.add_argument("--data", default=_data_default(), help="dataset folder (default: $DATA)")
    p.add_argument("--split", default="Testing", help="split to check (default: Testing)")
    p.add_argument("--masks", help="folder of binary tumour masks mirroring the dataset layout")
    p.add_argument("--methods", default="gradcam", help="comma-separated methods")
    p.add_argument("--limit", type=int, default=200, help="images per check")
    p.add_argument("--layer", help="layer the CAM methods explain (default: the model's last conv)")
    p.add_argument("--out", help="write the figures as JSON here")
    p.add_argument("--write-card", action="store_true",
                   help="record the figures in the model bundle's card.json (`evidence`)")
    _handler(p, "braintumor.explain.command:explain_check_command")


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="classify scans (research use, not a diagnosis)")
    p.add_argument("inputs", nargs="+", help="image files or folders")
    p.add_argument("--model", help="model bundle or .onnx file (default: the bundled model)")
    p.add_argument("--backend", choices=["torch", "onnx"], default="torch",
                   help="run the model with PyTorch or onnxruntime (default: torch)")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table",
                   help="output format on stdout (default: table)")
    p.add_argument("--explain", metavar="DIR", help="also write Grad-CAM overlays here")
    p.add_argument("--batch-size", type=int, default=32, help="images per batch (default: 32)")
    _handler(p, "braintumor.inference.command:predict_command")


def _add_calibrate_ood(sub) -> None:
    p = sub.add_parser("calibrate-ood",
                       help="(re)compute a bundle's 'not a brain MRI' warnings on its split")
    p.add_argument("--bundle", help="model bundle folder (default: the bundled model)")
    p.add_argument("--data", default=_data_default(),
                   help="the dataset the bundle was trained on (default: $DATA)")
    p.add_argument("--target-rate", type=float, default=0.005,
                   help="share of validation scans allowed to warn (default 0.005)")
    _handler(p, "braintumor.training.ood_calibration:calibrate_ood_command")


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export a model to ONNX")
    p.add_argument("--model", help="model bundle (default: the bundled model)")
    p.add_argument("--format", choices=["onnx"], default="onnx", help="export format (onnx)")
    p.add_argument("--out", required=True, help="file to write, e.g. model.onnx")
    _handler(p, "braintumor.inference.command:export_command")


def _add_serve(sub) -> None:
    from braintumor.serve import settings as limits  # light: the defaults live there

    p = sub.add_parser("serve", help="REST API and web page")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")
    p.add_argument("--model", help="model bundle (default: the bundled model)")
    p.add_argument("--api-key", default=None, help="require this key (or $BRAINTUMOR_API_KEY)")
    p.add_argument("--max-upload-mb", type=float, default=20.0,
                   help="largest upload accepted, in MB (default: 20)")
    p.add_argument("--cors-origin", action="append", default=[],
                   help="allow this origin (repeatable)")
    p.add_argument("--workers", type=int, default=1,
                   help="server processes, each with its own model copy (default: 1)")
    # Memory and time per request (serve/limits.py, docs/serve.md); defaults in settings.py.
    p.add_argument("--max-side", type=int, default=limits.DEFAULT_MAX_SIDE,
                   help="decode larger images reduced to this many pixels per side; 0: never "
                        "(default: %(default)s)")
    p.add_argument("--decode-budget-mb", type=float, default=limits.DEFAULT_DECODE_BUDGET_MB,
                   help="memory all requests decoding at once may use, estimated from the "
                        "image headers (default: %(default)s)")
    p.add_argument("--max-decodes", type=int, default=limits.DEFAULT_MAX_DECODES,
                   help="requests decoding at once (default: %(default)s)")
    p.add_argument("--decode-wait", type=float, default=limits.DEFAULT_DECODE_WAIT_S,
                   help="seconds a request waits for decode room before a 503 "
                        "(default: %(default)s)")
    p.add_argument("--large-upload-nice", type=int, default=limits.DEFAULT_LARGE_UPLOAD_NICE,
                   help="nice increment (0-19) of the thread that decodes and classifies "
                        "large uploads, so that normal scans keep the CPU; 0: normal "
                        "priority (default: %(default)s)")
    p.add_argument("--body-timeout", type=float, default=limits.DEFAULT_BODY_TIMEOUT_S,
                   help="seconds a request body may take to arrive before a 408 "
                        "(default: %(default)s)")
    _handler(p, "braintumor.serve.command:serve_command")


def _add_federated(sub) -> None:
    p = sub.add_parser("federated", help="federated training across sites on Flower "
                                         "(needs the 'federated' extra)")
    fed = p.add_subparsers(dest="fed_command", metavar="MODE", required=True,
                           help="simulate, server, client or partition")

    def model_options(q, out_default: str | None = "runs/federated") -> None:
        q.add_argument("--config", help="training config (YAML/TOML): model, image size, "
                                        "batch size, lr, augmentation, seed")
        q.add_argument("--model", help="model name from the registry (default: braintumor-net)")
        q.add_argument("--image-size", type=int, help="model input size in pixels (square)")
        q.add_argument("--batch-size", type=int, help="images per local training step")
        q.add_argument("--lr", type=float, help="local learning rate (constant within a round)")
        q.add_argument("--weight-decay", type=float, help="decoupled weight decay (AdamW) or L2")
        q.add_argument("--seed", type=int, help="random seed (split, initialisation, order)")
        q.add_argument("--custom-classes", help="class list or relabelling, as for train")
        q.add_argument("--num-threads", type=int, help="torch CPU threads")
        if out_default is not None:
            q.add_argument("--out", default=out_default,
                           help="run folder (round log, bundle; default: %(default)s)")

    def rounds_options(q) -> None:
        q.add_argument("--rounds", type=int, default=10,
                       help="federated rounds (default: %(default)s)")
        q.add_argument("--local-epochs", type=int, default=1,
                       help="epochs per site per round (default: %(default)s)")
        q.add_argument("--strategy", choices=["fedavg", "fedprox"], default="fedavg",
                       help="aggregation: fedavg or fedprox (default: %(default)s)")
        q.add_argument("--proximal-mu", type=float, default=0.01,
                       help="FedProx's proximal weight (fedprox only; default: %(default)s)")
        q.add_argument("--init-from", help="start the global model from a bundle/checkpoint "
                                           "or 'bundled' (as train --init-from)")

    q = fed.add_parser("simulate", help="all sites in this process, drawn from Training")
    q.add_argument("--data", default=_data_default(), help="dataset folder (default: $DATA)")
    model_options(q)
    rounds_options(q)
    q.add_argument("--sites", type=int, default=3, help="how many sites (default: %(default)s)")
    q.add_argument("--partition", default="iid", help="iid, by-class or dirichlet:ALPHA "
                                                      "(default: %(default)s)")
    q.add_argument("--min-fit-clients", type=int, help="sites a round needs (default: all)")
    q.add_argument("--max-train-images", type=int, help="use a subset (for quick checks)")
    q.add_argument("--val-fraction", type=float,
                   help="share of Training held out for validating the global model")
    q.add_argument("--drop", action="append", metavar="SITE@ROUND",
                   help="drill: site SITE drops out of round ROUND (repeatable)")

    q = fed.add_parser("server", help="the aggregating server (Flower gRPC)")
    model_options(q)
    rounds_options(q)
    q.add_argument("--address", default="127.0.0.1:9092",
                   help="host:port to listen on (non-loopback only with --tls-dir)")
    q.add_argument("--min-fit-clients", type=int, default=2,
                   help="a round starts once this many sites are connected")
    q.add_argument("--val-data", help="dataset folder the server validates the global model on")
    q.add_argument("--round-timeout", type=float, help="seconds a round waits for sites")
    q.add_argument("--tls-dir", help="folder with ca.crt, server.pem, server.key")

    q = fed.add_parser("client", help="one site: trains on --data when the server asks")
    q.add_argument("--data", dest="site_data", required=True, help="the site's dataset folder")
    model_options(q, out_default=None)
    q.add_argument("--address", default="127.0.0.1:9092", help="the server's host:port")
    q.add_argument("--name", help="site name in the server's log (default: the folder's)")
    q.add_argument("--val-fraction", type=float, help="share of the site's images it "
                                                      "validates on locally")
    q.add_argument("--max-train-images", type=int, help="use a subset (for quick checks)")
    q.add_argument("--ca-file", help="CA certificate of a TLS server")

    q = fed.add_parser("partition", help="write site folders (symbolic links) from Training")
    q.add_argument("--data", default=_data_default(), help="dataset folder (default: $DATA)")
    model_options(q, out_default=None)
    q.add_argument("--sites", type=int, default=3, help="how many sites (default: %(default)s)")
    q.add_argument("--partition", default="iid", help="iid, by-class or dirichlet:ALPHA "
                                                      "(default: %(default)s)")
    q.add_argument("--val-fraction", type=float,
                   help="share of Training put in server-validation/ (as train's validation)")
    q.add_argument("--max-train-images", type=int, help="use a subset (for quick checks)")
    q.add_argument("--out", dest="out_dir", required=True, help="folder for the site folders")
    _handler(p, "braintumor.federated.command:federated_command")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="braintumor",
        description="Brain MRI slice classification with Grad-CAM evidence. " + DISCLAIMER,
    )
    parser.add_argument("--version", action="version", version=f"braintumor {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_add_audit, _add_train, _add_evaluate, _add_compare, _add_explain,
                _add_explain_check, _add_predict, _add_calibrate_ood, _add_export, _add_serve,
                _add_federated):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    module_name, func_name = args.handler.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
