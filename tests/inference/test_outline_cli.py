"""``braintumor predict --explain`` and ``braintumor explain`` with a tumour-head model: the
outline PNG (overlay | outline, legend, caveat) and the area columns; plain models unchanged."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

from braintumor import DISCLAIMER
from braintumor.cli import main
from braintumor.explain.outline import OUTLINE_CAVEAT, OUTLINE_COLOUR


@pytest.fixture
def scans(tmp_path, synthetic_slice):
    root = tmp_path / "scans"
    root.mkdir()
    Image.fromarray(synthetic_slice(100, seed=1, blob=(0.35, 0.35))).save(root / "one.png")
    Image.fromarray(synthetic_slice(120, seed=2, blob=(0.68, 0.5), pad=8)).save(root / "two.png")
    return root


def _outline_pixels(png) -> int:
    """Pixels drawn in the outline's colour."""
    arr = np.asarray(Image.open(png).convert("RGB")).astype(int)
    return int((np.abs(arr - np.array(OUTLINE_COLOUR)).sum(axis=2) == 0).sum())


def test_predict_explain_writes_outline_panels_and_area_columns(tumour_bundle, scans, tmp_path,
                                                                capsys):
    out = tmp_path / "overlays"
    code = main(["predict", str(scans), "--model", str(tumour_bundle), "--explain", str(out),
                 "--format", "csv"])
    captured = capsys.readouterr()
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(captured.out)))
    assert len(rows) == 2
    for row in rows:
        assert int(row["tumour_area_px"]) > 0 and float(row["tumour_area_percent"]) > 0
        outline = row["outline"]
        assert outline.endswith(".outline.png") and row["overlay"].endswith(".gradcam.png")
        panel = Image.open(outline)
        scan = Image.open(scans / row["source"].split("/")[-1])
        assert panel.width > 2 * scan.width  # overlay | outline, side by side
        assert _outline_pixels(outline) > 20  # the contour (and the legend's swatch)
    assert DISCLAIMER in captured.err

    code = main(["predict", str(scans), "--model", str(tumour_bundle), "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    assert "tumour_area_px" not in doc["predictions"][0]  # no --explain: plain prediction

    code = main(["predict", str(scans), "--model", str(tumour_bundle), "--explain", str(out),
                 "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    row = doc["predictions"][0]
    assert row["tumour_area_px"] > 0 and row["tumour_outline"] and row["outline_path"]
    assert doc["tumour_outline_note"] == OUTLINE_CAVEAT and doc["tumour_threshold"] == 0.4

    main(["predict", str(scans), "--model", str(tumour_bundle), "--explain", str(out)])
    table = capsys.readouterr().out
    assert "tumour_px" in table and OUTLINE_CAVEAT in table
    assert table.rstrip().endswith(DISCLAIMER)


def test_plain_model_csv_and_files_are_unchanged(tiny_bundle, scans, tmp_path, capsys):
    out = tmp_path / "overlays"
    assert main(["predict", str(scans), "--model", str(tiny_bundle), "--explain", str(out),
                 "--format", "csv"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.endswith(",overlay,error,ood_score,warning") and "tumour" not in header
    assert sorted(p.name.split(".")[-2] for p in out.iterdir()) == ["gradcam", "gradcam"]


def test_explain_command_adds_the_outline_panel(tumour_bundle, scans, tmp_path, capsys):
    out = tmp_path / "explained"
    assert main(["explain", str(scans / "one.png"), "--model", str(tumour_bundle),
                 "--out", str(out)]) == 0
    index = json.loads((out / "explanations.json").read_text())
    (row,) = index["explanations"]
    assert row["tumour_area_px"] > 0 and row["tumour_outline"]
    assert row["tumour_outline_note"] == OUTLINE_CAVEAT
    panel = Image.open(row["png"])
    assert panel.width > 4 * 100  # input | heatmap | overlay | outline
    assert _outline_pixels(row["png"]) > 20
