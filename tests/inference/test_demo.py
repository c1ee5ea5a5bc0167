"""``make demo`` (scripts/demo.py) on a synthetic dataset with the tiny bundle."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

from braintumor import DISCLAIMER

DEMO = Path(__file__).resolve().parents[2] / "scripts" / "demo.py"


@pytest.fixture(scope="module")
def demo():
    spec = importlib.util.spec_from_file_location("braintumor_demo", DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_prints_true_vs_predicted_and_writes_overlays(demo, synthetic_dataset, tiny_bundle,
                                                           tmp_path, capsys):
    data = synthetic_dataset(n_per_class=3, splits=("Training", "Testing"))
    out = tmp_path / "demo"
    code = demo.main(["--data", str(data), "--out", str(out), "--model", str(tiny_bundle)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "true" in printed and "predicted" in printed
    assert printed.rstrip().endswith(DISCLAIMER)
    assert str(out.resolve()) in printed
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(rows) == 8 and sorted({r["true"] for r in rows}) == [
        "glioma", "meningioma", "notumor", "pituitary"]
    assert all("/Testing/" in r["path"] and Path(r["overlay"]).is_file() for r in rows)


def test_demo_without_data_says_how_to_set_it(demo, tmp_path, capsys):
    code = demo.main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert "nowhere: no such dataset folder" in err and "make demo DATA=" in err
