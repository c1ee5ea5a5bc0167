"""The model shipped in the package loads, matches its card, and a tampered copy is refused."""

from __future__ import annotations

import shutil

import pytest
import torch

from braintumor.models import ModelIntegrityError, load_bundle
from braintumor.models.bundle import CARD_NAME, WEIGHTS_NAME, bundled_model_path


@pytest.fixture(scope="module")
def bundled():
    if not (bundled_model_path() / WEIGHTS_NAME).is_file():
        pytest.fail("the package ships no model: run `make train`")
    return load_bundle()


def test_bundled_model_loads_with_a_complete_card(bundled):
    card = bundled.card
    assert bundled.classes == ["glioma", "meningioma", "notumor", "pituitary"]
    assert (bundled_model_path() / WEIGHTS_NAME).stat().st_size <= 20 * 1024 * 1024
    assert card["weights"]["sha256"] == bundled.checksum
    assert bundled.temperature > 0
    for key in ("command", "seed", "config", "wall_seconds", "hardware"):
        assert key in card["training"], key
    assert card["metrics"]["test"]["images"] == 1311
    assert card["preprocess"]["image_size"] == bundled.preprocess.image_size
    size = bundled.preprocess.image_size
    with torch.no_grad():
        out = bundled.model(torch.rand(2, 1, size, size))
    assert out.shape == (2, len(bundled.classes))


def test_tampered_weights_are_refused(tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(bundled_model_path(), copy)
    weights = copy / WEIGHTS_NAME
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF  # one flipped byte in the tensor data
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="SHA-256"):
        load_bundle(copy)


def test_weights_from_another_model_are_refused(tmp_path):
    """A card edited to match foreign weights still fails: the shapes do not fit."""
    import json

    from braintumor.data.preprocess import PreprocessConfig
    from braintumor.models import create_model, save_bundle

    other = save_bundle(create_model("paper-cnn", image_size=64), tmp_path / "other",
                        model_name="paper-cnn", classes=["a", "b", "c", "d"],
                        preprocess=PreprocessConfig(image_size=64))
    card = json.loads((other / CARD_NAME).read_text())
    card["model"]["name"] = "braintumor-net"
    (other / CARD_NAME).write_text(json.dumps(card))
    with pytest.raises(ModelIntegrityError, match="do not fit"):
        load_bundle(other)


def test_builder_arguments_travel_with_the_bundle(tmp_path):
    """A model built with non-default arguments (deeper stages) loads back from its card."""
    from braintumor.data.preprocess import PreprocessConfig
    from braintumor.models import create_model, save_bundle

    model = create_model("braintumor-net", depths=(1, 2, 2, 2)).eval()
    folder = save_bundle(model, tmp_path / "deep", model_name="braintumor-net",
                         classes=["glioma", "meningioma", "notumor", "pituitary"],
                         preprocess=PreprocessConfig(image_size=64),
                         model_kwargs={"depths": [1, 2, 2, 2]})
    loaded = load_bundle(folder)
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))
