"""Data that cannot train a classifier is refused with a message; a bad file is skipped."""

from __future__ import annotations

import shutil

import pytest

from braintumor.cli import main
from braintumor.data.splits import TrainingDataError
from braintumor.models import load_bundle
from braintumor.training.run import TrainingError, train


def test_empty_class_folder_is_refused(tiny_data, tiny_config, tmp_path):
    d = tiny_data / "Training" / "meningioma"
    shutil.rmtree(d)
    d.mkdir()
    with pytest.raises(TrainingDataError, match="meningioma"):
        train(tiny_config(tiny_data, tmp_path / "run"))
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_class_too_small_for_validation_is_refused(tiny_data, tiny_config, tmp_path):
    for p in sorted((tiny_data / "Training" / "pituitary").iterdir())[1:]:
        p.unlink()
    with pytest.raises(TrainingDataError, match="pituitary"):
        train(tiny_config(tiny_data, tmp_path / "run"))


def test_too_small_validation_fraction_is_refused(tiny_data, tiny_config, tmp_path):
    with pytest.raises(TrainingDataError, match="validation"):
        train(tiny_config(tiny_data, tmp_path / "run", val_fraction=0.05))


def test_corrupt_file_is_skipped_with_a_warning(tiny_data, tiny_config, tmp_path):
    bad = tiny_data / "Training" / "glioma" / "glioma_broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")
    with pytest.warns(UserWarning, match="glioma_broken.png"):
        train(tiny_config(tiny_data, tmp_path / "run", epochs=1))
    card = load_bundle(tmp_path / "run" / "bundle").card
    assert card["data"]["skipped_unreadable"] == [str(bad)]
    assert card["data"]["counts"]["train"]["glioma"] + card["data"]["counts"]["val"][
        "glioma"] == 8


def test_resume_without_checkpoint_and_overwrite_are_refused(tiny_data, tiny_config, tmp_path):
    with pytest.raises(TrainingError, match="nothing to resume"):
        train(tiny_config(tiny_data, tmp_path / "run"), resume=True)
    train(tiny_config(tiny_data, tmp_path / "run", epochs=1))
    with pytest.raises(TrainingError, match="already holds checkpoints"):
        train(tiny_config(tiny_data, tmp_path / "run", epochs=1))


def test_cli_reports_missing_dataset(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path)]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_mask_settings_that_cannot_work_are_refused(tiny_data, tiny_config, tmp_path):
    with pytest.raises(TrainingDataError, match="masks folder .*nowhere does not exist"):
        train(tiny_config(tiny_data, tmp_path / "run", masks=str(tmp_path / "nowhere")))
    (tmp_path / "masks").mkdir()
    with pytest.raises(TrainingDataError, match=r"mask_empty_classes \['no-tumour'\]"):
        train(tiny_config(tiny_data, tmp_path / "run", masks=str(tmp_path / "masks"),
                          mask_empty_classes=["no-tumour"]))
    with pytest.raises(TrainingDataError, match="no training image has a usable mask"):
        train(tiny_config(tiny_data, tmp_path / "run", masks=str(tmp_path / "masks")))
    assert not (tmp_path / "run").exists()
