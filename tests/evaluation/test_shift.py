"""The shift suite: perturbations of image files, scored through the real prediction path."""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from braintumor.data.datasets import discover
from braintumor.data.readers import read_image
from braintumor.evaluation.shift import (
    CLEAN,
    PERTURBATIONS,
    Score,
    perturbation,
    run_shift_suite,
    stratified_subset,
)
from braintumor.inference.predictor import Predictor
from tests.conftest import make_dataset, make_slice

REPO = Path(__file__).resolve().parents[2]


def _suite_script():
    spec = importlib.util.spec_from_file_location("shift_suite",
                                                  REPO / "benchmarks" / "shift_suite.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_issues_perturbations_are_named_and_only_inversion_is_exempt():
    names = [p.name for p in PERTURBATIONS]
    for wanted in ("clean", "gamma 0.6", "gamma 0.8", "gamma 1.25", "gamma 1.6", "contrast low",
                   "contrast high", "16-bit PNG", "JPEG q30", "scale 96 px", "scale 128 px",
                   "scale 512 px", "scale 1024 px", "aspect 1.3x wide", "blur sigma 1",
                   "noise rician 0.03", "bias field 0.35", "inversion"):
        assert wanted in names
    assert [p.name for p in PERTURBATIONS if not p.target] == ["inversion"]
    with pytest.raises(KeyError, match="unknown perturbation 'gamma 9'"):
        perturbation("gamma 9")


@pytest.mark.parametrize("p", [p for p in PERTURBATIONS if p is not CLEAN], ids=str)
def test_each_perturbation_makes_a_readable_deterministic_file(p):
    pixels = make_slice(64, seed=1, blob=(0.35, 0.35))
    a = p.make(pixels, np.random.default_rng(0))
    assert a == p.make(pixels, np.random.default_rng(0))  # seeded: the same bytes
    loaded = read_image(a, name=p.name)
    assert loaded.pixels.dtype == np.uint8 and loaded.pixels.ndim == 2
    assert not np.array_equal(loaded.pixels, pixels) or p.name == "16-bit PNG"


def test_file_formats_and_geometry_are_those_named():
    pixels = make_slice(64, seed=2)
    rng = np.random.default_rng(0)
    sixteen = Image.open(io.BytesIO(perturbation("16-bit PNG").make(pixels, rng)))
    assert sixteen.format == "PNG" and sixteen.mode.startswith("I")
    assert np.array_equal(np.asarray(sixteen), pixels.astype(np.uint16) * 257)
    assert Image.open(io.BytesIO(perturbation("JPEG q30").make(pixels, rng))).format == "JPEG"
    assert Image.open(io.BytesIO(perturbation("scale 1024 px").make(pixels, rng))).size == (
        1024, 1024)
    assert Image.open(io.BytesIO(perturbation("aspect 1.3x wide").make(pixels, rng))).size == (
        83, 64)
    inverted = read_image(perturbation("inversion").make(pixels, rng)).pixels
    assert inverted[0, 0] == 0 and inverted[32, 32] == 255 - pixels[32, 32]


def test_stratified_subset_keeps_class_shares_and_order():
    class S:
        def __init__(self, i, label):
            self.i, self.label = i, label
    samples = [S(i, "notumor" if i % 4 == 0 else "glioma") for i in range(100)]
    sub = stratified_subset(samples, 10, seed=0)
    assert len(sub) == 10 and sum(s.label == "notumor" for s in sub) == 2
    assert [s.i for s in sub] == sorted(s.i for s in sub)
    assert stratified_subset(samples, 10, seed=0) == sub
    assert stratified_subset(samples, None) == samples


def test_score_counts_tumours_called_any_tumour_class():
    s = Score()
    for truth, pred in [("glioma", "meningioma"), ("glioma", "notumor"), ("pituitary", None),
                        ("notumor", "notumor"), ("meningioma", "meningioma")]:
        s.add(truth, pred)
    assert (s.n, s.correct, s.unreadable, s.tumours, s.tumours_called_tumour) == (5, 2, 1, 4, 2)
    assert s.accuracy == 40.0 and s.tumour_recall == 50.0 and s.no_tumour_specificity == 100.0
    assert s.confusion["glioma"] == {"meningioma": 1, "notumor": 1}
    assert s.confusion["pituitary"] == {"unreadable": 1}


def test_one_perturbation_end_to_end_with_two_models(tmp_path, make_bundle):
    data = make_dataset(tmp_path / "data", n_per_class=2, size=48, splits=("Testing",))
    samples = discover(data).split("test")
    old, new = (Predictor.load(make_bundle(tmp_path / f"b{i}", seed=i)) for i in (0, 1))
    chosen = [CLEAN, perturbation("gamma 0.6")]
    result = run_shift_suite(samples, [old, new], ["old", "new"], chosen, batch_size=3)
    rows = result.rows()
    assert len(rows) == 4
    for r in rows:
        assert r["n"] == 8 and r["unreadable"] == 0
        assert 0 <= r["accuracy"] <= 100 and 0 <= r["tumour_recall"] <= 100
    clean = {r["model"]: r for r in rows if r["perturbation"] == "clean"}
    gamma = {r["model"]: r for r in rows if r["perturbation"] == "gamma 0.6"}
    for m in ("old", "new"):
        assert clean[m]["accuracy_drop"] == 0
        assert gamma[m]["accuracy_drop"] == pytest.approx(
            clean[m]["accuracy"] - gamma[m]["accuracy"])
        # the clean row matches the plain prediction of the files
        preds = (old if m == "old" else new).predict([str(s.path) for s in samples])
        correct = sum(p.label == s.label for p, s in zip(preds, samples, strict=True))
        assert clean[m]["accuracy"] == pytest.approx(100 * correct / 8)
    table = result.markdown()
    assert table.splitlines()[0].count("accuracy %") == 2
    assert len(table.splitlines()) == 2 + len(chosen)


def test_the_benchmark_script_writes_json_and_markdown(tmp_path, make_bundle, capsys):
    data = make_dataset(tmp_path / "data", n_per_class=2, size=48, splits=("Testing",))
    bundle = make_bundle(tmp_path / "bundle")
    out = tmp_path / "shift.json"
    rc = _suite_script().main(["--data", str(data), str(bundle), "--only", "inversion",
                               "--limit", "6", "--out", str(out)])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["n"] == 6 and sum(report["classes"].values()) == 6
    assert [r["perturbation"] for r in report["rows"]] == ["clean", "inversion"]
    assert report["rows"][1]["meets_target"] is None  # inversion: reported, not a target
    assert report["targets"]["exempt"] == ["inversion"]
    assert set(report["rows"][0]) >= {"accuracy", "tumour_recall", "accuracy_drop",
                                      "tumour_recall_drop", "meets_target", "errors",
                                      "no_tumour_specificity", "confusion"}
    md = out.with_suffix(".md").read_text()
    assert "inversion (not a target)" in md and "| clean |" in md
    assert "inversion (not a target)" in capsys.readouterr().out
