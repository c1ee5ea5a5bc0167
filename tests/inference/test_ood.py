"""Out-of-distribution warnings through the Python API, the CLI and the calibration command.

The calibration is made here from tiny synthetic data (head-like slices, the tiny bundle), so
the tests need neither the dataset nor the bundled model.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from braintumor.cli import main
from braintumor.inference.onnx_export import FEATURES_OUTPUT_NAME, export_model_proto
from braintumor.inference.ood import (
    CARD_SECTION,
    OOD_FILE,
    WARNING_TEXT,
    joint_thresholds,
)
from braintumor.inference.predictor import Predictor
from braintumor.models import ModelIntegrityError, load_bundle
from braintumor.models.braintumor_net import BrainTumorNet

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


@pytest.fixture(scope="module")
def onnx_predictor(calibrated_bundle) -> Predictor:
    pytest.importorskip("onnxruntime")
    return Predictor.load(calibrated_bundle, backend="onnx")


def test_onnx_backend_warns_too(onnx_predictor):
    assert onnx_predictor.predict(non_brain()["noise"])[0].warning == WARNING_TEXT


def ood_inputs() -> list[np.ndarray]:
    """Four brain-like slices that pass, then noise, a document and a photo that warn."""
    return [*synthetic_slices(range(5000, 5004))[0], *non_brain().values()]


def no_pytorch_forward(monkeypatch) -> None:
    """Make any PyTorch module call fail (every forward pass goes through Module.__call__)."""
    def refuse(*args, **kwargs):
        raise AssertionError("a PyTorch forward pass ran")

    monkeypatch.setattr(torch.nn.Module, "__call__", refuse)


def assert_same_decisions(expected, got) -> None:
    for a, b in zip(expected, got, strict=True):
        assert b.ok and b.label == a.label
        assert (b.warning, b.ood_reasons) == (a.warning, a.ood_reasons)
        assert b.ood_score == pytest.approx(a.ood_score, rel=1e-4)


def test_onnx_backend_scores_ood_from_one_run_without_pytorch(onnx_predictor, predictor,
                                                             monkeypatch):
    """The graph's ``features`` output feeds the check: no PyTorch pass, no PyTorch copy,
    and the same warnings, reasons and (to float rounding) scores as PyTorch."""
    expected = predictor.predict(ood_inputs())
    assert [p.warning is not None for p in expected] == [False] * 4 + [True] * 3
    assert onnx_predictor.ood is not None and onnx_predictor.ood.extract is None
    assert "ONNX" in onnx_predictor.ood_status["features_from"]
    no_pytorch_forward(monkeypatch)
    got = onnx_predictor.predict(ood_inputs(), batch_size=3)  # batches of 3, 3 and 1
    assert_same_decisions(expected, got)
    assert_same_decisions(expected[-1:], [onnx_predictor.predict_one(ood_inputs()[-1])])


@pytest.fixture(scope="module")
def export_proto(calibrated_bundle):
    pytest.importorskip("onnxruntime")
    return export_model_proto(load_bundle(calibrated_bundle))


def without_features(proto):
    """The graph as exported before the ``features`` output existed."""
    old = copy.deepcopy(proto)
    keep = [o for o in old.graph.output if o.name != FEATURES_OUTPUT_NAME]
    del old.graph.output[:]
    old.graph.output.extend(keep)
    return old


def test_old_export_without_features_still_loads_and_falls_back(calibrated_bundle, predictor,
                                                                export_proto, tmp_path):
    from braintumor.inference.onnx_runtime import OnnxModel

    old = without_features(export_proto)
    assert [o.name for o in old.graph.output] == ["logits"]
    runtime = OnnxModel.from_bytes(old.SerializeToString(), "old.onnx")
    assert not runtime.has_features
    with pytest.raises(ValueError, match="no 'features' output"):
        runtime.logits_and_features(np.zeros((1, 64, 64), np.uint8))
    # With the weights at hand (a bundle on the ONNX backend): an extra PyTorch pass, as before.
    loaded = load_bundle(calibrated_bundle)
    fallback = Predictor._from_onnx(runtime, loaded_model=loaded, path=loaded.path).attach_ood()
    assert fallback.ood is not None and fallback.ood.extract is not None
    assert "extra PyTorch pass" in fallback.ood_status["features_from"]
    assert_same_decisions(predictor.predict(ood_inputs()), fallback.predict(ood_inputs()))
    # The file alone predicts with no warning and says why; a calibration cannot help it.
    path = tmp_path / "old.onnx"
    path.write_bytes(old.SerializeToString())
    lone = Predictor.load(path)
    pred = lone.predict(non_brain()["noise"])[0]
    assert lone.ood is None and pred.ok and pred.warning is None
    assert "alone" in lone.ood_status["note"]
    with pytest.raises(ValueError, match="no features output"):
        lone.attach_ood(predictor.ood.calibration)


def test_onnx_file_alone_warns_when_given_the_calibration(predictor, export_proto, tmp_path,
                                                          monkeypatch):
    path = tmp_path / "model.onnx"
    path.write_bytes(export_proto.SerializeToString())
    lone = Predictor.load(path)
    assert lone.ood is None and lone.ood_status["calibrated"] is False
    lone.attach_ood(predictor.ood.calibration)
    expected = predictor.predict(ood_inputs())
    no_pytorch_forward(monkeypatch)
    assert_same_decisions(expected, lone.predict(ood_inputs()))


def test_outline_and_ood_come_from_one_forward_pass(tumour_bundle, tmp_path, synthetic_slice,
                                                    monkeypatch):
    """A tumour-head model traced with OOD on: one backbone pass on PyTorch (it was two),
    one onnxruntime run and no PyTorch on ONNX; outlines as without the check."""
    folder = tmp_path / "calibrated-tumour"
    shutil.copytree(tumour_bundle, folder)
    calibrate_on_synthetic_slices(folder)
    pixels = [synthetic_slice(100, seed=7, blob=(0.35, 0.35)), non_brain()["noise"]]
    plain = Predictor.load(tumour_bundle).predict(pixels, outline=True)
    on_torch = Predictor.load(folder)
    on_onnx = Predictor.load(folder, backend="onnx")
    passes = []
    backbone = BrainTumorNet._features
    monkeypatch.setattr(BrainTumorNet, "_features",
                        lambda self, x: passes.append(len(x)) or backbone(self, x))
    traced = on_torch.predict(pixels, outline=True)
    assert passes == [2]
    for a, b in zip(plain, traced, strict=True):
        assert b.label == a.label and np.array_equal(b.tumour_mask, a.tumour_mask)
    assert traced[0].warning is None and traced[1].warning == WARNING_TEXT
    no_pytorch_forward(monkeypatch)
    from_onnx = on_onnx.predict(pixels, outline=True)
    assert_same_decisions(traced, from_onnx)
    for a, b in zip(traced, from_onnx, strict=True):
        union = (a.tumour_mask | b.tumour_mask).sum()
        assert union == 0 or (a.tumour_mask & b.tumour_mask).sum() / union >= 0.99
    assert traced[0].tumour_mask.any()  # an outline, so the comparison means something


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
