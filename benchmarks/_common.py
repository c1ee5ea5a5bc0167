"""Helpers shared by the benchmark scripts (run as ``python benchmarks/<name>.py``)."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path


def host_info() -> dict:
    """What a timing depends on: cores, load at the end of the run, platform, Python."""
    return {"cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()],
            "platform": platform.platform(), "python": platform.python_version()}


def write_result(result: dict, out: str | Path) -> Path:
    """Write a benchmark's result as indented JSON, creating its folder."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def model_source(model: str | None) -> tuple[str, str]:
    """The bundle to measure and a note naming it: ``--model``, else the bundled model.

    A benchmark of a model that does not exist measures nothing worth quoting, so a missing
    bundled model is an error rather than a silent stand-in.
    """
    from braintumor.models.bundle import CARD_NAME, bundled_model_path

    if model:
        return model, f"bundle {model}"
    if not (bundled_model_path() / CARD_NAME).is_file():
        raise SystemExit("no bundled model in src/braintumor/weights: run `make train` or "
                         "pass --model BUNDLE")
    return str(bundled_model_path()), "the bundled model"


def test_scores(bundle: str, data: str, leak_free: bool = True) -> dict:
    """Accuracy of a bundle on the Testing split, all of it and leak-free.

    Leak-free: the test images with no near-duplicate in Training (the audit's list, cached
    after its first run). A bundle trained on relabelled classes (its card's
    ``custom_classes``) is scored on the Testing images relabelled the same way.
    """
    import numpy as np

    from braintumor.data.cache import build_cache
    from braintumor.data.datasets import discover
    from braintumor.data.labels import parse_class_spec
    from braintumor.evaluation.leakage import leakage_from_audit, split_by_leakage
    from braintumor.models import load_bundle
    from braintumor.models.runtime import predict_logits

    loaded = load_bundle(bundle)
    index = discover(data)
    cached = build_cache(index.split("test"), loaded.preprocess)
    labels = list(cached.labels)
    spec = ((loaded.card.get("training") or {}).get("config") or {}).get("custom_classes")
    if spec:
        _, mapping = parse_class_spec(spec)
        labels = [mapping[lbl] for lbl in labels] if mapping else labels
    y = np.array([loaded.classes.index(lbl) for lbl in labels])
    pred = predict_logits(loaded.model, cached.images).argmax(1)
    out = {"test_accuracy": float((pred == y).mean()), "test_images": int(len(y))}
    if not leak_free:  # the audit of a whole dataset takes minutes on a busy CPU
        return {**out, "leak_free_accuracy": None, "leak_free_images": None}
    keep = ~split_by_leakage(cached.paths, leakage_from_audit(index))
    return {**out, "leak_free_accuracy": float((pred[keep] == y[keep]).mean()),
            "leak_free_images": int(keep.sum())}
