"""``braintumor explain`` end to end: files and folders in, labelled PNGs out, failures listed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from braintumor import DISCLAIMER
from braintumor.cli import main
from tests.explain.test_explainer import off_centre, right_side_up, write_dicom


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "scans"
    (folder / "sub").mkdir(parents=True)
    images = {}
    for i, (name, label) in enumerate([("a.png", "glioma"), ("b.jpg", "meningioma"),
                                       ("sub/c.dcm", "pituitary")]):
        img, mask = off_centre(300 + i, label)
        path = folder / name
        if name.endswith(".dcm"):
            write_dicom(path, img)
        else:
            Image.fromarray(img).save(path, quality=95)
        images[path] = (img, mask, label)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "notes.txt").write_text("not an image")
    return folder, images


def test_folder_is_explained_and_failures_reported(tiny_bundle, inputs, tmp_path, capsys):
    folder, images = inputs
    out = tmp_path / "out"
    code = main(["explain", str(folder), "--model", str(tiny_bundle), "--out", str(out),
                 "--save-npy", "--batch-size", "2"])
    captured = capsys.readouterr()
    assert code == 1  # broken.png failed; the others were still written
    assert "broken.png" in captured.err and "failed" in captured.err
    assert "notes.txt" not in captured.err  # not an image by extension: not an input
    assert DISCLAIMER in captured.out
    index = json.loads((out / "explanations.json").read_text())
    assert index["disclaimer"] == DISCLAIMER
    assert [f["input"] for f in index["failures"]] == [str(folder / "broken.png")]
    rows = {r["input"]: r for r in index["explanations"]}
    assert set(rows) == {str(p) for p in images}
    for path, (img, mask, label) in images.items():
        row = rows[str(path)]
        assert row["predicted"] == row["explained"] == label
        assert row["method"] == "gradcam" and row["size"] == list(img.shape)
        panel = np.asarray(Image.open(row["png"]))
        h, w = img.shape
        assert panel.shape[1] >= 3 * w and panel.shape[0] > h  # three panels + caption
        heat = np.load(row["npy"])
        assert heat.shape == img.shape
        if label == "pituitary":
            # The tiny model's pituitary map is nearly symmetric up-down (blob at row 0.68,
            # its mirror at 0.32): mean heat on the blob vs on its mirror was 0.830 vs 0.820
            # with bilinear upsampling and 0.814 vs 0.818 with bicubic (issue 22), a margin
            # that tests no orientation. Left-right (the padding moves the mirror off the
            # blob) still must hold; glioma and meningioma check both axes.
            assert heat[mask].mean() > heat[mask[:, ::-1]].mean()
        else:
            assert right_side_up(heat, mask)
        assert f"predicted {label} (p = {row['probability']:.3f})" in captured.out


def test_single_files_other_method_and_target(tiny_bundle, inputs, tmp_path):
    folder, images = inputs
    files = [str(p) for p in images][:2]
    out = tmp_path / "out"
    code = main(["explain", *files, "--model", str(tiny_bundle), "--out", str(out),
                 "--method", "gradcam++", "--target-class", "notumor", "--colormap", "inferno",
                 "--alpha", "0.3"])
    assert code == 0
    rows = json.loads((out / "explanations.json").read_text())["explanations"]
    assert [r["explained"] for r in rows] == ["notumor", "notumor"]
    assert sorted(p.name for p in out.glob("*.png")) == ["a_gradcampp.png", "b_gradcampp.png"]
    assert not list(out.glob("*.npy"))


def test_same_stem_in_two_folders_gets_two_files(tiny_bundle, tmp_path):
    img, _ = off_centre(5)
    for d in ("x", "y"):
        (tmp_path / d).mkdir()
        Image.fromarray(img).save(tmp_path / d / "scan.png")
    out = tmp_path / "out"
    assert main(["explain", str(tmp_path / "x"), str(tmp_path / "y"), "--model",
                 str(tiny_bundle), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["scan_gradcam.png",
                                                          "scan_gradcam_2.png"]


@pytest.mark.parametrize("extra, message", [
    (["--method", "lime"], "unknown explanation method"),
    (["--colormap", "nope"], "unknown colormap"),
    (["--alpha", "2"], "--alpha"),
    (["--target-class", "astrocytoma"], "unknown class"),
    (["--layer", "nope"], "no layer named"),
])
def test_bad_options_exit_2_with_a_message(tiny_bundle, tmp_path, capsys, extra, message):
    img, _ = off_centre(5)
    Image.fromarray(img).save(tmp_path / "s.png")
    code = main(["explain", str(tmp_path / "s.png"), "--model", str(tiny_bundle), "--out",
                 str(tmp_path / "out"), *extra])
    assert code == 2
    assert message in capsys.readouterr().err


def test_missing_input_and_missing_model(tiny_bundle, tmp_path, capsys):
    code = main(["explain", str(tmp_path / "nothing.png"), "--model", str(tiny_bundle),
                 "--out", str(tmp_path / "out")])
    assert code == 1
    assert "no such file or folder" in capsys.readouterr().err
    code = main(["explain", str(tmp_path), "--model", str(tmp_path / "no-model"), "--out",
                 str(tmp_path / "out")])
    assert code == 2
    assert "cannot load the model" in capsys.readouterr().err
