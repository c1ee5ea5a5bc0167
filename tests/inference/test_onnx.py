"""ONNX export and the onnxruntime backend: parity with PyTorch, metadata, integrity."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from braintumor.cli import main
from braintumor.data.preprocess import preprocess
from braintumor.inference.onnx_export import (
    FEATURES_OUTPUT_NAME,
    OPSET,
    OUTPUT_NAME,
    sidecar_path,
)
from braintumor.inference.onnx_runtime import OnnxModel
from braintumor.inference.ood import FeatureExtractor
from braintumor.inference.predictor import Predictor
from braintumor.models import ModelIntegrityError, load_bundle

from .conftest import CLASSES, TEMPERATURE


@pytest.fixture(scope="module")
def exported(tiny_bundle, tmp_path_factory):
    """One export through the CLI (exporting costs seconds; the tests share it)."""
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    assert main(["export", "--model", str(tiny_bundle), "--format", "onnx", "--out", str(out)]) == 0
    return out


def test_export_writes_a_checked_file_with_metadata(exported, tiny_bundle):
    model = onnx.load(str(exported))
    onnx.checker.check_model(model)
    assert max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")) >= 17
    assert OPSET >= 17
    batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.dim_value  # dynamic batch axis
    props = {p.key: p.value for p in model.metadata_props}
    card = json.loads((tiny_bundle / "card.json").read_text())
    assert props["braintumor.model"] == "braintumor-net"
    assert props["braintumor.checksum"] == card["weights"]["sha256"]
    assert json.loads(props["braintumor.classes"]) == CLASSES
    assert float(props["braintumor.temperature"]) == pytest.approx(TEMPERATURE)
    side = json.loads(sidecar_path(exported).read_text())
    assert side["onnx"]["file"] == "model.onnx" and side["classes"] == CLASSES


def test_export_has_the_ood_features_output(exported, tiny_bundle):
    """``features`` (the classifier's input, which the OOD check scores) comes after
    ``logits``, which stays first; its width is the last linear layer's input."""
    graph = onnx.load(str(exported)).graph
    assert [o.name for o in graph.output] == [OUTPUT_NAME, FEATURES_OUTPUT_NAME]
    width = load_bundle(tiny_bundle).model.head[-1].in_features
    dims = graph.output[1].type.tensor_type.shape.dim
    assert dims[0].dim_param and dims[1].dim_value == width
    assert json.loads(sidecar_path(exported).read_text())["onnx"]["outputs"] == [
        OUTPUT_NAME, FEATURES_OUTPUT_NAME]
    assert OnnxModel.load(exported).has_features


def test_onnx_features_match_pytorch(exported, tiny_bundle, images):
    """Parity of the OOD features, as of the logits (float32 kernels of two runtimes)."""
    loaded = load_bundle(tiny_bundle)
    batch = np.stack([preprocess(im, loaded.preprocess).image for im in images])
    ref_logits, ref_feats = FeatureExtractor(loaded.model)(batch)
    logits, tumour, feats = OnnxModel.load(exported).logits_and_features(batch)
    assert tumour is None and feats.dtype == np.float32 and feats.shape == ref_feats.shape
    np.testing.assert_allclose(feats, ref_feats, atol=1e-4)
    np.testing.assert_allclose(logits, ref_logits, atol=1e-4)
    assert float(ref_feats.std()) > 0.05  # varied features, so the comparison means something
    # One image at a time (the dynamic batch axis) gives the same rows.
    one = OnnxModel.load(exported).logits_and_features(batch[1:2])[2]
    np.testing.assert_allclose(one, feats[1:2], atol=1e-5)


def test_onnx_and_torch_probabilities_agree(exported, tiny_bundle, images):
    torch_pred = Predictor.load(tiny_bundle)
    onnx_pred = Predictor.load(exported, backend="onnx")
    assert onnx_pred.backend == "onnx"
    assert (onnx_pred.name, onnx_pred.checksum, onnx_pred.classes) == (
        torch_pred.name, torch_pred.checksum, torch_pred.classes)
    # batch_size 3 over 4 images: batches of 3 and 1 exercise the dynamic axis.
    a = torch_pred.predict(images, batch_size=3)
    b = onnx_pred.predict(images, batch_size=3)
    pa = np.array([[p.probabilities[c] for c in CLASSES] for p in a])
    pb = np.array([[p.probabilities[c] for c in CLASSES] for p in b])
    np.testing.assert_allclose(pb, pa, atol=1e-4)
    assert pa.max(axis=1).min() < 0.99  # not saturated, so the comparison means something
    assert [p.label for p in a] == [p.label for p in b]


def test_embedded_metadata_suffices_without_sidecar(exported, tmp_path, images):
    lone = tmp_path / "lone.onnx"
    lone.write_bytes(exported.read_bytes())
    pred = Predictor.load(lone)  # the .onnx suffix selects onnxruntime
    assert pred.backend == "onnx" and pred.classes == CLASSES
    assert pred.temperature == pytest.approx(TEMPERATURE)
    assert pred.predict(images[0])[0].ok


def test_tampered_export_is_refused(exported, tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(exported.read_bytes() + b"\0")
    sidecar_path(bad).write_text(sidecar_path(exported).read_text())
    with pytest.raises(ModelIntegrityError, match="does not match"):
        Predictor.load(bad)


def test_predict_cli_on_onnx_backend(exported, tmp_path, images, capsys):
    from PIL import Image

    Image.fromarray(images[2]).save(tmp_path / "x.png")
    code = main(["predict", str(tmp_path / "x.png"), "--model", str(exported),
                 "--backend", "onnx", "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["backend"] == "onnx"
    assert doc["predictions"][0]["label"] in CLASSES


def test_explain_needs_pytorch_weights(exported, images):
    with pytest.raises(ValueError, match="Grad-CAM needs the PyTorch weights"):
        Predictor.load(exported).predict(images[0], explain=True)


def test_bundle_on_onnx_backend_exports_in_memory(tiny_bundle, images):
    torch_pred = Predictor.load(tiny_bundle)
    onnx_pred = Predictor.load(tiny_bundle, backend="onnx", threads=1)
    assert onnx_pred.backend == "onnx" and onnx_pred.checksum == torch_pred.checksum
    a = torch_pred.predict(images)
    b = onnx_pred.predict(images)
    for x, y in zip(a, b, strict=True):
        assert y.probabilities == pytest.approx(x.probabilities, abs=1e-4)
