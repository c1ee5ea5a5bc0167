"""``braintumor evaluate``: score a model on a dataset split and write metrics.json + report.html.

The work is split in two so that ``compare`` can reuse the first half without drawing
anything: :func:`run_evaluation` (decode via the cache, one batched forward pass, every
number of ``metrics.json``) and :func:`write_outputs` (figures, gallery, report, files).
"""

from __future__ import annotations

import csv
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from sklearn.metrics import log_loss

from braintumor.data.cache import CachedDataset, build_cache
from braintumor.data.datasets import SPLIT_NAMES, DatasetError, DatasetIndex, discover
from braintumor.evaluation.bootstrap import bootstrap_ci
from braintumor.evaluation.calibration import (
    expected_calibration_error,
    reliability_bins,
)
from braintumor.evaluation.leakage import Leakage, leakage_from_audit, split_by_leakage
from braintumor.evaluation.metrics import classification_metrics
from braintumor.models import LoadedModel, load_bundle, model_info
from braintumor.models.runtime import predict_logits, softmax

ECE_BINS = 15
GALLERY_CAP = 24
# Same weights, same cached pixels: the card's test figures must come back. The slack (about
# one image in a thousand) absorbs float rounding that differs with batch composition.
CARD_TOLERANCE = 0.001


@dataclass
class Evaluation:
    """Everything one evaluation computed; ``metrics`` is what goes to metrics.json."""

    metrics: dict
    loaded: LoadedModel
    cached: CachedDataset
    labels: np.ndarray  # (N,) class indices in ``loaded.classes`` order
    logits: np.ndarray  # (N, C)
    probs: np.ndarray  # (N, C), softmax at the stored temperature
    run_dir: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)


def resolve_model(path: str | Path | None) -> tuple[Path | None, Path | None]:
    """(bundle folder or None for the bundled model, training run directory if known).

    Accepts a bundle folder, its weights file, or a training run directory (``RUN/bundle``).
    """
    if path is None:
        return None, None
    p = Path(path)
    if p.is_dir() and (p / "bundle" / "card.json").is_file():
        return p / "bundle", p
    if p.suffix == ".ckpt":
        raise FileNotFoundError(
            f"{p}: evaluate takes a model bundle or a training run directory, not a Lightning "
            "checkpoint (the run directory's bundle/ holds the exported model)")
    folder = p if p.is_dir() else p.parent
    if (folder.parent / "metrics.csv").is_file():  # RUN/bundle given directly
        return p, folder.parent
    return p, None


def _run_dir_from_card(card: dict) -> Path | None:
    """The run directory ``braintumor train`` recorded (its config's ``out``), if it is here.

    Relative paths are as the training command saw them (the repository root), so they only
    resolve when evaluation runs from there too; otherwise there are simply no curves.
    """
    training = card.get("training") or {}
    config = training.get("config") or {}
    for value in (training.get("run_dir"), config.get("out")):
        if value and (Path(value) / "metrics.csv").is_file():
            return Path(value)
    return None


def _select_split(index: DatasetIndex, split: str | None) -> tuple[list, str]:
    if not index.splits:  # one pool of class folders: evaluate all of it
        return index.samples, "all"
    name = SPLIT_NAMES.get((split or "Testing").lower())
    if name is None or name not in index.splits:
        raise DatasetError(f"{index.root}: no split {split!r} (found: {', '.join(index.splits)})")
    return index.split(name), name


def card_agreement(card: dict, measured: dict, split: str) -> list[dict]:
    """Rows (metric, card value, measured value, agrees) for the test figures the card states.

    ``braintumor train`` writes its test-split figures under ``metrics.test``; they must be
    reproduced here from the same weights and preprocessing, so a disagreement flags a
    changed dataset, preprocessing or evaluation code.
    """
    stated = (card.get("metrics") or {}).get("test")
    if split != "test" or not isinstance(stated, dict):
        return []
    rows = []
    for key, card_key, tolerance in (("n_images", "images", 0),
                                     ("accuracy", "accuracy", CARD_TOLERANCE),
                                     ("macro_f1", "macro_f1", CARD_TOLERANCE),
                                     ("weighted_f1", "weighted_f1", CARD_TOLERANCE),
                                     ("roc_auc_macro", "roc_auc_macro", CARD_TOLERANCE)):
        value = stated.get(card_key)
        if isinstance(value, (int, float)) and measured.get(key) is not None:
            rows.append({"metric": key, "card": value, "measured": measured[key],
                         "agrees": abs(value - measured[key]) <= tolerance})
    return rows


def _model_entry(loaded: LoadedModel, run_dir: Path | None) -> dict:
    spec = loaded.card.get("model", {})
    params, flops = spec.get("parameters"), spec.get("flops_per_image")
    if not (params and flops):
        # ``braintumor train`` records both in the card; counting FLOPs costs seconds (torch's
        # FlopCounterMode warms up on first use), so only cards without them pay for it.
        info = model_info(loaded.model, loaded.preprocess.image_size, spec.get("in_channels", 1))
        params, flops = info.parameters, info.flops
    return {"name": loaded.name, "checksum": loaded.checksum, "path": str(loaded.path),
            "classes": list(loaded.classes), "temperature": loaded.temperature,
            "image_size": loaded.preprocess.image_size, "parameters": int(params),
            "gflops": flops / 1e9, "run_dir": str(run_dir) if run_dir else None,
            "card": loaded.card}


def _calibration(logits: np.ndarray, labels: np.ndarray, temperature: float) -> dict:
    before, after = softmax(logits, 1.0), softmax(logits, temperature)
    n_classes = logits.shape[1]
    out = {"temperature": temperature, "n_bins": ECE_BINS,
           "ece_before": expected_calibration_error(before, labels, ECE_BINS),
           "ece_after": expected_calibration_error(after, labels, ECE_BINS),
           "nll_before": None, "nll_after": None,
           "reliability_before": reliability_bins(before, labels, ECE_BINS),
           "reliability_after": reliability_bins(after, labels, ECE_BINS)}
    if len(labels):
        out["nll_before"] = float(log_loss(labels, before, labels=list(range(n_classes))))
        out["nll_after"] = float(log_loss(labels, after, labels=list(range(n_classes))))
    return out


def _score(loaded: LoadedModel, samples: list, split_name: str, data, cache_root, batch_size: int,
           n_resamples: int, seed: int, progress: bool, timings: dict):
    """Decode (through the cache), predict, and compute every metric but the leak-free ones."""
    t = time.perf_counter()
    cached = build_cache(samples, loaded.preprocess, cache_root=cache_root, progress=progress)
    timings["decode"] = time.perf_counter() - t
    if len(cached) == 0:
        first = f" (first: {cached.failed[0][0]}: {cached.failed[0][1]})" if cached.failed else ""
        raise DatasetError(f"{data}: none of the {len(samples)} images of split {split_name!r} "
                           f"could be read{first}")

    t = time.perf_counter()
    # A private in-memory copy: torch refuses to wrap the read-only memmap without a warning.
    logits = predict_logits(loaded.model, np.array(cached.images), batch_size)
    logits = logits.reshape(len(cached), len(loaded.classes))
    labels = cached.label_indices(loaded.classes)
    probs = softmax(logits, loaded.temperature)
    timings["inference"] = time.perf_counter() - t

    t = time.perf_counter()
    m = classification_metrics(labels, probs, loaded.classes)
    m["ci95"] = bootstrap_ci(labels, probs.argmax(axis=1), len(loaded.classes), n_resamples,
                             seed)
    m["calibration"] = _calibration(logits, labels, loaded.temperature)
    timings["metrics"] = time.perf_counter() - t
    return m, cached, labels, logits, probs


def run_evaluation(model: str | Path | None, data: str | Path, split: str | None = "Testing",
                   *, audit: str | Path | None = None, leakage: Leakage | None = None,
                   cache_root: str | Path | None = None, batch_size: int = 128,
                   n_resamples: int = 1000, seed: int = 0,
                   progress: bool = False) -> Evaluation:
    """Evaluate one model; ``leakage`` (precomputed) wins over ``audit`` (a JSON path)."""
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    bundle_path, run_dir = resolve_model(model)
    loaded = load_bundle(bundle_path)
    run_dir = run_dir or _run_dir_from_card(loaded.card)
    index = discover(data)
    samples, split_name = _select_split(index, split)
    unknown = sorted({s.label for s in samples} - set(loaded.classes))
    if unknown:
        raise DatasetError(f"{data}: classes {unknown} are not among the model's "
                           f"{loaded.classes}")
    timings["load"] = time.perf_counter() - t0

    # The audit decodes the whole dataset and compares every pair of images: the slowest
    # step. It runs in a background thread while this one decodes and predicts; both spend
    # their time in worker processes and in numpy/torch code that releases the GIL, so on a
    # multi-core machine they overlap instead of adding up.
    with ThreadPoolExecutor(1, thread_name_prefix="audit") as background:
        pending = None
        if split_name == "test" and leakage is None:
            pending = background.submit(leakage_from_audit, index, audit, cache_root)
        m, cached, labels, logits, probs = _score(loaded, samples, split_name, data, cache_root,
                                                  batch_size, n_resamples, seed, progress,
                                                  timings)
        t = time.perf_counter()
        if split_name == "test":
            leakage = pending.result() if pending is not None else leakage
            assert leakage is not None  # given, or measured in the background above
            m["leak_free"] = _leak_free(leakage, cached, labels, probs, loaded, n_resamples,
                                        seed)
        else:
            m["leak_free"] = {"available": False, "reason": "leakage is measured for the test "
                                                            f"split, not {split_name!r}"}
        timings["leakage_wait"] = time.perf_counter() - t

    t = time.perf_counter()
    m["model"] = _model_entry(loaded, run_dir)
    m["model"]["card_agreement"] = card_agreement(loaded.card, m, split_name)
    m["failed"] = [list(f) for f in cached.failed]
    m["skipped"] = [list(s) for s in index.skipped]
    m["data"] = str(Path(data).resolve())
    m["split"] = split_name
    m["created"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    timings["model_info"] = time.perf_counter() - t
    return Evaluation(m, loaded, cached, labels, logits, probs, run_dir, timings)


def _leak_free(leakage: Leakage, cached: CachedDataset, labels: np.ndarray, probs: np.ndarray,
               loaded: LoadedModel, n_resamples: int, seed: int) -> dict:
    if not leakage.available:
        return {"available": False, "reason": leakage.reason, "source": leakage.source}
    clean = ~split_by_leakage(cached.paths, leakage)
    sub = classification_metrics(labels[clean], probs[clean], loaded.classes)
    sub["ci95"] = bootstrap_ci(labels[clean], probs[clean].argmax(axis=1), len(loaded.classes),
                               n_resamples, seed)
    return {"available": True, "source": leakage.source, "n_excluded": int((~clean).sum()),
            "n_reported_by_audit": leakage.n_reported, **sub}


def write_outputs(ev: Evaluation, out: str | Path, gallery: bool = True,
                  gallery_cap: int = GALLERY_CAP) -> dict[str, Path]:
    """Figures (PNG), predictions.csv, metrics.json and report.html under ``out``."""
    from braintumor.evaluation import figures as F
    from braintumor.evaluation.report import ReportFigure, render_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    m, classes = ev.metrics, ev.loaded.classes
    cal = m["calibration"]
    drawn: list[ReportFigure] = []

    def add(key: str, title: str, fig, caption: str = "") -> None:
        if fig is not None:
            drawn.append(ReportFigure(key, title, F.to_png(fig), caption))

    add("confusion_matrix", "Confusion matrix", F.confusion_matrix_figure(
        m["confusion_matrix"], classes), "Rows: true class; columns: predicted class.")
    if len(ev.labels):
        add("roc", "ROC curves", F.roc_figure(ev.labels, ev.probs, classes))
        add("precision_recall", "Precision-recall curves",
            F.pr_figure(ev.labels, ev.probs, classes))
        add("reliability", "Reliability diagram", F.reliability_figure(
            cal["reliability_before"], cal["reliability_after"], cal["ece_before"],
            cal["ece_after"], cal["temperature"]),
            "Points on the diagonal are calibrated; below it, over-confident.")
    if ev.run_dir and (ev.run_dir / "metrics.csv").is_file():
        add("training_curves", "Training curves",
            F.training_curves_figure(F.read_metrics_csv(ev.run_dir / "metrics.csv")),
            f"From {ev.run_dir / 'metrics.csv'}.")
    ev.timings["figures"] = time.perf_counter() - t

    t = time.perf_counter()
    items: list = []
    if gallery:
        # Imported here: the explain package (captum) is only needed when there is a gallery.
        from braintumor.evaluation.gallery import misclassified_gallery

        items, m["gallery"] = misclassified_gallery(ev.loaded, ev.cached, ev.labels, ev.probs,
                                                    out, gallery_cap)
    else:
        m["gallery"] = {"enabled": False}
    ev.timings["gallery"] = time.perf_counter() - t

    written = {}
    for f in drawn:
        written[f.key] = out / f"{f.key}.png"
        written[f.key].write_bytes(f.png)
    written["predictions"] = _write_predictions(ev, out / "predictions.csv")
    m["timings_s"] = {k: round(v, 3) for k, v in ev.timings.items()}
    written["metrics"] = out / "metrics.json"
    written["metrics"].write_text(json.dumps(m, indent=2) + "\n")
    written["report"] = out / "report.html"
    written["report"].write_text(render_report(m, drawn, items), encoding="utf-8")
    return written


def _write_predictions(ev: Evaluation, path: Path) -> Path:
    classes = ev.loaded.classes
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "predicted", *[f"p_{c}" for c in classes]])
        for p, y, row in zip(ev.cached.paths, ev.labels, ev.probs, strict=True):
            w.writerow([p, classes[y], classes[int(row.argmax())], *[f"{v:.6f}" for v in row]])
    return path
