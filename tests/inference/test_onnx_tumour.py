"""ONNX export of a model with a tumour head: both outputs, parity with PyTorch, the outline.

Tolerance: logits and tumour logits agree to ``atol=1e-4`` (float32 kernels of two runtimes;
observed differences are ~1e-6), the traced masks on the input grid to an IoU of 0.99 (a
pixel whose probability sits within rounding of the threshold may fall either way).
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from braintumor.cli import main
from braintumor.data.preprocess import preprocess, to_model_input
from braintumor.inference.onnx_export import (
    FEATURES_OUTPUT_NAME,
    OUTPUT_NAME,
    TUMOUR_OUTPUT_NAME,
    sidecar_path,
)
from braintumor.inference.onnx_runtime import OnnxModel
from braintumor.inference.ood import FeatureExtractor
from braintumor.inference.predictor import Predictor
from braintumor.models import load_bundle

ATOL = 1e-4


@pytest.fixture(scope="module")
def tumour_onnx(tumour_bundle, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx-tumour") / "tumour.onnx"
    assert main(["export", "--model", str(tumour_bundle), "--format", "onnx",
                 "--out", str(out)]) == 0
    return out


def test_export_has_both_outputs(tumour_onnx):
    # logits and tumour_logits keep their places; the OOD features come after them.
    graph = onnx.load(str(tumour_onnx)).graph
    assert [o.name for o in graph.output] == [OUTPUT_NAME, TUMOUR_OUTPUT_NAME,
                                              FEATURES_OUTPUT_NAME]
    side = json.loads(sidecar_path(tumour_onnx).read_text())
    assert side["onnx"]["outputs"] == [OUTPUT_NAME, TUMOUR_OUTPUT_NAME, FEATURES_OUTPUT_NAME]


def test_onnx_runtime_returns_both_and_matches_pytorch(tumour_onnx, tumour_bundle,
                                                       synthetic_slice):
    loaded = load_bundle(tumour_bundle)
    cfg = loaded.preprocess
    batch = np.stack([preprocess(synthetic_slice(90 + 10 * i, seed=i, blob=(0.35, 0.68)),
                                 cfg).image for i in range(3)])
    with torch.no_grad():
        ref_logits, ref_tumour = loaded.model.eval().forward_with_tumour(to_model_input(batch))
    runtime = OnnxModel.load(tumour_onnx)
    assert runtime.has_tumour_head
    logits, tumour = runtime.logits_and_tumour(batch)
    assert tumour.shape == tuple(ref_tumour.shape) and tumour.shape[1] == 1
    np.testing.assert_allclose(logits, ref_logits.numpy(), atol=ATOL)
    np.testing.assert_allclose(tumour, ref_tumour.numpy(), atol=ATOL)
    assert float(ref_tumour.std()) > 0.1  # a varied map, so the comparison means something
    np.testing.assert_allclose(runtime.logits(batch), logits, atol=1e-6)
    # All three from one run: the same logits and maps, plus the OOD features.
    logits3, tumour3, feats = runtime.logits_and_features(batch, tumour=True)
    np.testing.assert_allclose(logits3, logits, atol=1e-6)
    np.testing.assert_allclose(tumour3, tumour, atol=1e-6)
    _, ref_feats = FeatureExtractor(loaded.model)(batch)
    np.testing.assert_allclose(feats, ref_feats, atol=ATOL)


def test_predictor_on_the_onnx_file_gives_the_outline(tumour_onnx, tumour_bundle,
                                                      synthetic_slice):
    pixels = [synthetic_slice(100, seed=7, blob=(0.35, 0.35)),
              synthetic_slice(130, seed=8, blob=(0.68, 0.5), pad=10)]
    on_torch = Predictor.load(tumour_bundle).predict(pixels, outline=True)
    on_onnx = Predictor.load(tumour_onnx).predict(pixels, outline=True)
    for a, b in zip(on_torch, on_onnx, strict=True):
        assert b.tumour_mask is not None and b.tumour_mask.shape == a.tumour_mask.shape
        iou = (a.tumour_mask & b.tumour_mask).sum() / max((a.tumour_mask | b.tumour_mask).sum(), 1)
        assert iou >= 0.99
        assert b.tumour_area_percent == pytest.approx(a.tumour_area_percent, abs=0.5)
        assert len(b.tumour_outline) == len(a.tumour_outline)
        assert b.label == a.label


def test_plain_export_has_no_tumour_output(tiny_bundle, tmp_path, synthetic_slice):
    out = tmp_path / "plain.onnx"
    assert main(["export", "--model", str(tiny_bundle), "--out", str(out)]) == 0
    assert [o.name for o in onnx.load(str(out)).graph.output] == [OUTPUT_NAME,
                                                                   FEATURES_OUTPUT_NAME]
    predictor = Predictor.load(out)
    assert not predictor.has_tumour_head
    pred = predictor.predict(synthetic_slice(80, seed=1), outline=True)[0]
    assert pred.ok and pred.tumour_mask is None
    with pytest.raises(ValueError, match="no 'tumour_logits' output"):
        OnnxModel.load(out).logits_and_tumour(np.zeros((1, 64, 64), np.uint8))
