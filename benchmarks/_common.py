"""Helpers shared by the benchmark scripts (run as ``python benchmarks/<name>.py``)."""

from __future__ import annotations


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
