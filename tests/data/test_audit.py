"""The dataset audit: counts, unreadable files, leakage, cross-label copies, CLI and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from braintumor.cli import main
from braintumor.data.audit import AuditConfig, audit_dataset
from braintumor.data.datasets import discover

BLOBS = {"glioma": (0.35, 0.35), "meningioma": (0.35, 0.68), "pituitary": (0.68, 0.5),
         "notumor": None}


@pytest.fixture
def leaky(tmp_path, synthetic_slice) -> dict:
    """A Kaggle-layout set with planted leaks, a cross-label copy and broken files."""
    root = tmp_path / "leaky"
    files: dict[str, Path] = {}

    def put(split: str, label: str, name: str, pixels: np.ndarray) -> None:
        d = root / split / label
        d.mkdir(parents=True, exist_ok=True)
        files[name] = d / f"{name}.png"
        Image.fromarray(pixels).save(files[name])

    seed = 0
    originals: dict[str, np.ndarray] = {}
    for label, n in (("glioma", 4), ("meningioma", 3), ("notumor", 3), ("pituitary", 3)):
        for k in range(n):
            seed += 1
            originals[f"{label}{k}"] = synthetic_slice(64, seed, BLOBS[label])
            put("Training", label, f"{label}{k}", originals[f"{label}{k}"])
    put("Training", "meningioma", "cross_label", originals["glioma0"])  # same slice, 2 classes
    put("Testing", "glioma", "leak_mirror", originals["glioma1"][:, ::-1])
    brighter = np.clip(originals["meningioma0"] * 0.8 + 40, 0, 255).astype(np.uint8)
    put("Testing", "meningioma", "leak_bright", brighter)
    for label in BLOBS:
        seed += 1
        put("Testing", label, f"clean_{label}", synthetic_slice(64, 100 + seed, BLOBS[label]))
    put("Testing", "notumor", "test_twin", synthetic_slice(64, 100 + seed, None))  # exact
    files["broken"] = root / "Testing" / "notumor" / "broken.jpg"
    files["broken"].write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    (root / "Testing" / "pituitary" / "notes.txt").write_text("not an image")
    return {"root": root, "files": {k: str(v) for k, v in files.items()}}


@pytest.fixture
def report(leaky):
    return audit_dataset(discover(leaky["root"]), AuditConfig(workers=1))


def test_counts_geometry_and_unreadable(report, leaky):
    d = report.to_dict()
    assert d["counts"] == {
        "train": {"glioma": 4, "meningioma": 4, "notumor": 3, "pituitary": 3},
        "test": {"glioma": 2, "meningioma": 2, "notumor": 3, "pituitary": 1},
    }
    assert d["n_images"] == 22 and d["n_readable"] == 21
    assert d["image_sizes"] == {"64x64": 21} and d["pixel_modes"] == {"L": 21}
    assert [u["path"] for u in d["unreadable"]] == [leaky["files"]["broken"]]
    assert d["unreadable"][0]["reason"]
    assert [s["path"].endswith("notes.txt") for s in d["skipped"]] == [True]


def test_leakage_names_exactly_the_planted_test_copies(report, leaky):
    f = leaky["files"]
    assert report.leaked_test_paths == {f["leak_mirror"], f["leak_bright"]}
    lk = report.to_dict()["leakage"]
    assert lk["test_with_train_duplicate"] == 2
    assert lk["test_paths_with_train_duplicate"] == sorted([f["leak_mirror"], f["leak_bright"]])
    assert lk["test_with_train_exact_duplicate"] == 0
    assert lk["test_images"] == 7 and lk["leak_free_test"] == 5
    assert report.groups[f["leak_mirror"]] == report.groups[f["glioma1"]]
    assert report.groups[f["leak_bright"]] == report.groups[f["meningioma0"]]
    assert report.groups[f["clean_glioma"]] != report.groups[f["glioma1"]]


def test_within_split_and_cross_label_duplicates(report, leaky):
    d = report.to_dict()
    cl = d["cross_label"]
    assert cl["groups"] == 1 and cl["exact_groups"] == 1 and cl["images"] == 2
    assert {m["label"] for m in cl["group_list"][0]} == {"glioma", "meningioma"}
    assert d["within_split"]["test"]["images_with_exact_copy"] == 2
    assert d["within_split"]["test"]["redundant_images"] == 1
    assert d["within_split"]["train"]["images_with_exact_copy"] == 2
    across = d["across_splits"]["train/test"]
    assert across["exact_pairs"] == 0 and across["near_pairs"] == 2
    assert {p["kind"] for p in d["pairs"]} == {"exact", "mirrored", "near"}
    json.dumps(d)  # the whole report must be JSON-able


def test_leak_free_samples_skip_leaked_and_unreadable(report, leaky):
    kept = {str(s.path) for s in report.leak_free_test_samples()}
    f = leaky["files"]
    assert kept == {f["clean_glioma"], f["clean_meningioma"], f["clean_notumor"],
                    f["clean_pituitary"], f["test_twin"]}


def test_table_mentions_the_key_numbers(report):
    table = report.format_table()
    assert "Leakage: 2 of 7 test images" in table
    assert "leak-free test images: 5" in table
    assert "unreadable files: 1" in table


def test_cli_audit_writes_json_and_manifest(leaky, tmp_path, capsys):
    out, csv = tmp_path / "out" / "audit.json", tmp_path / "out" / "leak_free.csv"
    rc = main(["audit", str(leaky["root"]), "--json", str(out), "--leak-free-manifest",
               str(csv), "--workers", "1"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "Leakage: 2 of 7" in printed
    d = json.loads(out.read_text())
    assert d["leakage"]["test_with_train_duplicate"] == 2
    assert d["counts"]["train"]["glioma"] == 4
    manifest = discover(csv)
    assert len(manifest.samples) == 5 and {s.split for s in manifest.samples} == {"test"}
    assert leaky["files"]["leak_mirror"] not in {str(s.path) for s in manifest.samples}


def test_cli_audit_thresholds_are_applied(leaky, tmp_path):
    out = tmp_path / "strict.json"
    assert main(["audit", str(leaky["root"]), "--json", str(out), "--min-agreement", "0.999",
                 "--workers", "1"]) == 0
    d = json.loads(out.read_text())
    assert d["thresholds"]["min_agreement"] == 0.999
    assert d["leakage"]["test_with_train_duplicate"] < 2  # the brightened copy no longer counts


def test_cli_audit_errors_are_clear(tmp_path, capsys, synthetic_dataset):
    assert main(["audit", str(tmp_path / "nowhere")]) == 2
    assert "no such dataset" in capsys.readouterr().err
    root = synthetic_dataset(n_per_class=2, size=32, splits=("Training",))
    assert main(["audit", str(root), "--min-correlation", "3"]) == 2
    assert "min_correlation" in capsys.readouterr().err
    assert main(["audit", str(root), "--leak-free-manifest", str(tmp_path / "m.csv"),
                 "--workers", "1"]) == 2
    assert "no test split" in capsys.readouterr().err
