"""``braintumor predict``: folders, formats, failures and exit codes."""

from __future__ import annotations

import csv
import io
import json

import pytest
from PIL import Image

from braintumor import DISCLAIMER
from braintumor.cli import main

from .conftest import CLASSES


@pytest.fixture
def folder(tmp_path, images):
    """Two good scans in nested folders, a hidden file, a non-image and a corrupt JPEG."""
    root = tmp_path / "scans"
    (root / "a" / "b").mkdir(parents=True)
    Image.fromarray(images[1]).save(root / "a" / "one.png")
    Image.fromarray(images[3]).save(root / "a" / "b" / "two.jpg")
    Image.fromarray(images[0]).save(root / ".hidden.png")
    (root / "readme.txt").write_text("not a scan")
    (root / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return root


def test_table_reports_good_and_bad_files_and_exits_1(tiny_bundle, folder, capsys):
    code = main(["predict", str(folder), "--model", str(tiny_bundle)])
    out = capsys.readouterr().out
    assert code == 1
    assert "one.png" in out and "two.jpg" in out
    assert ".hidden" not in out and "readme.txt" not in out
    broken_line = next(line for line in out.splitlines() if "broken.jpg" in line)
    assert "ERROR" in broken_line and "broken.jpg: " in broken_line
    assert "2 predicted, 1 failed" in out
    assert out.rstrip().endswith(DISCLAIMER)


def test_all_good_exits_0(tiny_bundle, folder, capsys):
    code = main(["predict", str(folder / "a" / "one.png"), str(folder / "a" / "b"),
                 "--model", str(tiny_bundle)])
    assert code == 0
    assert "2 predicted, 0 failed" in capsys.readouterr().out


def test_json_parses_and_carries_provenance(tiny_bundle, folder, capsys):
    code = main(["predict", str(folder), "--model", str(tiny_bundle), "--format", "json",
                 "--batch-size", "1"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    assert doc["disclaimer"] == DISCLAIMER and doc["classes"] == CLASSES
    rows = {r["source"].rsplit("/", 1)[-1]: r for r in doc["predictions"]}
    assert set(rows) == {"one.png", "two.jpg", "broken.jpg"}
    assert rows["broken.jpg"]["label"] is None and "broken.jpg" in rows["broken.jpg"]["error"]
    good = rows["one.png"]
    assert good["label"] in CLASSES and sum(good["probabilities"].values()) == pytest.approx(1)
    assert good["checksum"] == doc["checksum"] and good["model"] == "braintumor-net"


def test_csv_parses_and_disclaimer_goes_to_stderr(tiny_bundle, folder, capsys):
    code = main(["predict", str(folder), "--model", str(tiny_bundle), "--format", "csv"])
    captured = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(captured.out)))
    assert code == 1 and len(rows) == 3
    assert DISCLAIMER in captured.err and DISCLAIMER not in captured.out
    for row in rows:
        if row["error"]:
            assert row["label"] == "" and "broken.jpg" in row["error"]
        else:
            assert row["label"] in CLASSES
            assert sum(float(row[f"p_{c}"]) for c in CLASSES) == pytest.approx(1, abs=1e-5)


def test_missing_file_and_empty_folder_are_failed_rows(tiny_bundle, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = main(["predict", str(tmp_path / "nope.png"), str(tmp_path / "empty"),
                 "--model", str(tiny_bundle), "--format", "json"])
    errors = [r["error"] for r in json.loads(capsys.readouterr().out)["predictions"]]
    assert code == 1
    assert any("nope.png: no such file" in e for e in errors)
    assert any("empty: folder holds no image files" in e for e in errors)


def test_missing_model_is_a_usage_error(tmp_path, folder, capsys):
    code = main(["predict", str(folder), "--model", str(tmp_path / "no-such-bundle")])
    assert code == 2
    assert "cannot load model" in capsys.readouterr().err


def test_explain_writes_one_overlay_per_good_file(tiny_bundle, folder, tmp_path, capsys):
    out_dir = tmp_path / "overlays"
    code = main(["predict", str(folder), "--model", str(tiny_bundle), "--format", "json",
                 "--explain", str(out_dir)])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1  # broken.jpg still fails; the others are explained
    written = sorted(p.name for p in out_dir.iterdir())
    assert len(written) == 2 and all(n.endswith(".gradcam.png") for n in written)
    for row in doc["predictions"]:
        if row["error"]:
            assert row["overlay_path"] is None
        else:
            with Image.open(row["overlay_path"]) as im, Image.open(row["source"]) as src:
                assert im.size == src.size and im.mode == "RGB"
