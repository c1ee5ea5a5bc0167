"""The Predictor API: every input kind, calibration, errors, thread safety."""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from braintumor.data.errors import ImageReadError
from braintumor.data.preprocess import preprocess
from braintumor.inference.predictor import Prediction, Predictor
from braintumor.models import load_bundle
from braintumor.models.runtime import predict_logits, softmax

from .conftest import CLASSES, TEMPERATURE


@pytest.fixture(scope="module")
def predictor(tiny_bundle) -> Predictor:
    return Predictor.load(tiny_bundle)


def _png_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def test_metadata_comes_from_the_card(predictor, tiny_bundle):
    card = json.loads((tiny_bundle / "card.json").read_text())
    assert predictor.name == "braintumor-net"
    assert predictor.checksum == card["weights"]["sha256"]
    assert predictor.classes == CLASSES
    assert predictor.temperature == pytest.approx(TEMPERATURE)
    assert predictor.backend == "torch"


def test_every_input_kind_gives_the_same_answer(predictor, images, tmp_path):
    pixels = images[1]
    path = tmp_path / "slice.png"
    Image.fromarray(pixels).save(path)
    inputs = [str(path), path, _png_bytes(pixels), pixels, Image.fromarray(pixels)]
    preds = predictor.predict(inputs)
    assert [p.source for p in preds] == [str(path), str(path), "<bytes 2>", "<array 3>",
                                         "<PIL image 4>"]
    ref = preds[0].probabilities
    for p in preds:
        assert p.ok and p.label in CLASSES
        assert p.model == "braintumor-net" and p.checksum == predictor.checksum
        assert p.probabilities == pytest.approx(ref, abs=1e-6)
        assert p.seconds > 0


def test_single_item_gives_a_list(predictor, images):
    preds = predictor.predict(images[0])
    assert len(preds) == 1 and isinstance(preds[0], Prediction)


def test_probabilities_are_calibrated_with_the_card_temperature(predictor, tiny_bundle, images):
    loaded = load_bundle(tiny_bundle)
    batch = np.stack([preprocess(im, loaded.preprocess).image for im in images])
    logits = predict_logits(loaded.model, batch)
    expected = softmax(logits, TEMPERATURE)
    preds = predictor.predict(images, batch_size=3)  # crosses a batch boundary
    got = np.array([[p.probabilities[c] for c in CLASSES] for p in preds])
    # fp32 convolutions differ in the last digits between batch sizes (oneDNN picks other
    # kernels: 1.2e-6 seen on an AVX2-only AMD EPYC), so not tighter than 1e-5.
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-9)
    # The temperature really matters for these logits (otherwise the check above is vacuous).
    assert np.abs(softmax(logits, 1.0) - expected).max() > 1e-3
    assert [p.label for p in preds] == [CLASSES[i] for i in logits.argmax(axis=1)]


def test_bad_inputs_are_reported_and_the_rest_predicted(predictor, images, tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(images[2]).save(good)
    text = tmp_path / "notes.png"
    text.write_text("not an image at all")
    blank = np.full((64, 64), 7, np.uint8)
    preds = predictor.predict([str(good), str(text), str(tmp_path / "gone.jpg"), blank, b"",
                               np.zeros((3, 4, 5, 6))])
    assert preds[0].ok and preds[0].label in CLASSES
    for p in preds[1:]:
        assert not p.ok and p.label is None and p.probabilities == {}
        assert p.error.startswith(p.source + ": ")
    assert "gone.jpg: no such file" in preds[2].error
    assert "blank" in preds[3].error
    assert json.loads(json.dumps([p.to_dict() for p in preds]))[1]["error"] == preds[1].error


def test_predict_one_raises_on_bad_input(predictor, images):
    assert predictor.predict_one(images[0], name="upload.png").source == "upload.png"
    with pytest.raises(ImageReadError, match="upload.bin"):
        predictor.predict_one(b"\x00\x01garbage", name="upload.bin")


def test_names_label_the_results(predictor, images):
    preds = predictor.predict(images[:2], names=["a", "b"])
    assert [p.source for p in preds] == ["a", "b"]
    with pytest.raises(ValueError, match="2 names for 1 images"):
        predictor.predict(images[:1], names=["a", "b"])


def test_concurrent_calls_agree_with_sequential_ones(predictor, images):
    sequential = [predictor.predict_one(im).probabilities for im in images]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda im: predictor.predict_one(im).probabilities, images * 3))
    for i, probs in enumerate(parallel):
        assert probs == pytest.approx(sequential[i % len(images)], abs=1e-6)


def test_unknown_backend_is_refused(tiny_bundle):
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        Predictor.load(tiny_bundle, backend="tensorrt")


def test_explain_gives_maps_in_the_original_geometry(predictor, images):
    preds = predictor.predict(images[:3], explain=True)
    plain = predictor.predict(images[:3])
    for im, p, q in zip(images, preds, plain, strict=False):
        assert p.heatmap.shape == im.shape and p.heatmap.dtype == np.float32
        assert p.overlay.shape == (*im.shape, 3) and p.overlay.dtype == np.uint8
        assert 0.0 <= p.heatmap.min() and p.heatmap.max() <= 1.0 and p.heatmap.max() > 0
        assert p.probabilities == pytest.approx(q.probabilities, abs=1e-6)
        assert p.to_dict()["has_heatmap"] and "heatmap" not in p.to_dict()
    assert plain[0].heatmap is None and plain[0].overlay is None


def test_concurrent_explanations_match_sequential_ones(predictor, images):
    """Grad-CAM hooks must not leak between threads, nor into plain predictions."""
    expected = [predictor.predict_one(im, explain=True).heatmap for im in images]

    def job(k: int):
        im = images[k % len(images)]
        if k % 2:
            return k, predictor.predict_one(im).heatmap
        return k, predictor.predict_one(im, explain=True).heatmap

    with ThreadPoolExecutor(4) as pool:
        for k, heat in pool.map(job, range(40)):
            if k % 2:
                assert heat is None
            else:
                np.testing.assert_allclose(heat, expected[k % len(images)], atol=1e-5)


def test_progress_bar_stays_off_when_stderr_is_not_a_terminal(predictor, images, capsys):
    # capsys puts a plain buffer (no terminal) in sys.stderr, as a redirect to a log does.
    predictor.predict(images, progress=True)
    assert capsys.readouterr().err == ""
