"""Out-of-distribution warnings through the Python API, the CLI and the calibration command.

The calibration is made here from tiny synthetic data (head-like slices, the tiny bundle), so
the tests need neither the dataset nor the bundled model.
"""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image, ImageDraw

from braintumor.cli import main
from braintumor.inference.ood import (
    CARD_SECTION,
    OOD_FILE,
    WARNING_TEXT,
    joint_thresholds,
)
from braintumor.inference.predictor import Predictor
from braintumor.models import ModelIntegrityError, load_bundle

from ..conftest import (
    CLASSES,
    calibrate_on_synthetic_slices,
    make_dataset,
    synthetic_slices,
)


def text_page(size=(300, 400)) -> np.ndarray:
    img = Image.new("L", size, 255)
    draw = ImageDraw.Draw(img)
    for y in range(20, size[1] - 20, 18):
        draw.text((20, y), "findings: the report of the study follows on this page", fill=0)
    return np.asarray(img)


def colour_photo() -> np.ndarray:
    img = Image.new("RGB", (160, 120), (90, 160, 230))
    draw = ImageDraw.Draw(img)
    draw.ellipse((20, 40, 90, 110), fill=(230, 200, 30))
    draw.rectangle((100, 20, 150, 100), fill=(40, 150, 60))
    return np.asarray(img)


def non_brain() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"noise": rng.integers(0, 256, (128, 128), dtype=np.uint8),
            "document": text_page(), "photo": colour_photo()}


@pytest.fixture(scope="module")
def calibrated_bundle(tiny_bundle, tmp_path_factory):
    """A copy of the tiny bundle with a calibration from 96 + 64 synthetic slices."""
    folder = tmp_path_factory.mktemp("calibrated")
    shutil.copytree(tiny_bundle, folder, dirs_exist_ok=True)
    return calibrate_on_synthetic_slices(folder)


@pytest.fixture(scope="module")
def predictor(calibrated_bundle) -> Predictor:
    return Predictor.load(calibrated_bundle)


def test_brain_like_slices_get_no_warning(predictor):
    fresh, _ = synthetic_slices(range(5000, 5004))
    preds = predictor.predict(fresh)
    assert all(p.ok for p in preds)
    assert [p.warning for p in preds] == [None] * 4
    assert all(p.ood_score is not None and p.ood_score <= 1 for p in preds)


@pytest.mark.parametrize("kind", ["noise", "document", "photo"])
def test_non_brain_inputs_warn_through_the_api(predictor, kind):
    pred = predictor.predict(non_brain()[kind])[0]
    assert pred.ok and pred.label in CLASSES  # still answered, but flagged
    assert pred.warning == WARNING_TEXT
    assert pred.ood_score > 1 and pred.ood_reasons
    row = pred.to_dict()
    assert row["warning"] == WARNING_TEXT and row["ood_reasons"] == list(pred.ood_reasons)


def test_colour_photo_is_caught_by_saturation(predictor):
    assert "saturation" in predictor.predict(colour_photo())[0].ood_reasons


def test_bundle_without_calibration_predicts_with_no_warning(tiny_bundle):
    plain = Predictor.load(tiny_bundle)
    assert plain.ood is None and plain.ood_status["calibrated"] is False
    pred = plain.predict(non_brain()["noise"])[0]
    assert pred.ok and pred.warning is None and pred.ood_score is None


def test_warning_does_not_change_the_prediction(tiny_bundle, predictor):
    plain = Predictor.load(tiny_bundle)
    img = non_brain()["noise"]
    a, b = plain.predict(img)[0], predictor.predict(img)[0]
    assert a.label == b.label
    assert a.probabilities == pytest.approx(b.probabilities, abs=1e-6)


def test_onnx_backend_warns_too(calibrated_bundle):
    pytest.importorskip("onnxruntime")
    onnx = Predictor.load(calibrated_bundle, backend="onnx")
    assert onnx.predict(non_brain()["noise"])[0].warning == WARNING_TEXT


def test_calibration_file_is_checksummed(calibrated_bundle, tmp_path):
    folder = tmp_path / "b"
    shutil.copytree(calibrated_bundle, folder)
    card = json.loads((folder / "card.json").read_text())
    assert card[CARD_SECTION]["file"] == OOD_FILE and card["weights"]["sha256"]
    load_bundle(folder)  # the weights checksum still holds
    with (folder / OOD_FILE).open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelIntegrityError, match="ood section"):
        Predictor.load(folder)


def test_joint_thresholds_keep_the_union_at_the_target():
    rng = np.random.default_rng(0)
    values = {k: rng.normal(size=2000) for k in "abcd"}
    th = joint_thresholds(values, 0.01)
    warned = np.any([values[k] > th[k] for k in values], axis=0).mean()
    assert 0.005 <= warned <= 0.01


def test_cli_table_csv_and_json_carry_the_warning(calibrated_bundle, tmp_path, capsys):
    Image.fromarray(non_brain()["noise"]).save(tmp_path / "noise.png")
    Image.fromarray(synthetic_slices([7000])[0][0]).save(tmp_path / "brain.png")
    args = [str(tmp_path / "noise.png"), str(tmp_path / "brain.png"),
            "--model", str(calibrated_bundle)]
    assert main(["predict", *args, "--format", "csv"]) == 0
    rows = {r["source"].rsplit("/", 1)[-1]: r
            for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert rows["noise.png"]["warning"] == WARNING_TEXT and rows["brain.png"]["warning"] == ""
    assert float(rows["noise.png"]["ood_score"]) > 1
    assert main(["predict", *args, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ood"]["calibrated"] is True
    assert [p["warning"] for p in doc["predictions"]] == [WARNING_TEXT, None]
    assert main(["predict", *args]) == 0
    table = capsys.readouterr().out
    noise_line = next(line for line in table.splitlines() if "noise.png" in line)
    assert noise_line.rstrip().endswith("!") and WARNING_TEXT in table


def test_calibrate_ood_command_end_to_end(tiny_bundle, tmp_path, cache_root, capsys):
    data = make_dataset(tmp_path / "data", n_per_class=12, size=64, splits=("Training",))
    folder = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, folder)
    card = json.loads((folder / "card.json").read_text())
    assert main(["calibrate-ood", "--bundle", str(folder), "--data", str(data)]) == 2
    assert "no training config" in capsys.readouterr().err
    card["training"] = {"config": {"image_size": 64, "val_fraction": 0.25, "seed": 0}}
    (folder / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    assert main(["calibrate-ood", "--bundle", str(folder), "--data", str(data),
                 "--target-rate", "0.05"]) == 0
    assert "validation scans warned" in capsys.readouterr().out
    section = json.loads((folder / "card.json").read_text())[CARD_SECTION]
    assert section["validation_images"] == 12 and section["fit_images"] == 36
    assert section["validation_warned"] <= 1  # 5 % of 12
    assert Predictor.load(folder).ood is not None
