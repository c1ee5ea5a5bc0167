"""Dataset discovery: folder layouts, CSV manifests, hidden files and class spellings."""

from __future__ import annotations

from pathlib import Path

import pytest

from braintumor.data.datasets import DatasetError, discover, write_manifest
from braintumor.data.labels import UnknownClassError

CLASSES = ("glioma", "meningioma", "notumor", "pituitary")


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _layout(root: Path, splits: dict[str, int], classes=CLASSES, ext=".jpg") -> Path:
    """``root/<split>/<class>/i.jpg`` (discovery goes by name, so the bytes do not matter)."""
    for split, n in splits.items():
        for c in classes:
            for i in range(n):
                _touch(root / split / c / f"{c}_{i}{ext}" if split else root / c / f"{c}_{i}{ext}")
    return root


def test_kaggle_layout(synthetic_dataset):
    root = synthetic_dataset(n_per_class=2, size=32)  # Training/ and Testing/
    idx = discover(root)
    assert idx.root == root and idx.classes == CLASSES
    assert idx.splits == ["train", "test"]
    assert idx.counts() == {"train": dict.fromkeys(CLASSES, 2), "test": dict.fromkeys(CLASSES, 2)}
    for s in idx.samples:  # the label is the folder, whatever the file is called
        assert s.path.parent.name == s.label and s.path.is_file()
    assert len(idx.split("train")) == 8 and idx.skipped == []


@pytest.mark.parametrize(
    "names,expected",
    [
        (("train", "test"), ["train", "test"]),
        (("train", "val", "test"), ["train", "val", "test"]),
        (("TRAINING", "Validation", "testing"), ["train", "val", "test"]),
        (("Train", "valid"), ["train", "val"]),
    ],
)
def test_split_folder_spellings(tmp_path, names, expected):
    idx = discover(_layout(tmp_path / "d", dict.fromkeys(names, 1)))
    assert idx.splits == expected
    assert all(len(idx.split(s)) == 4 for s in expected)


def test_single_pool_layout(tmp_path):
    idx = discover(_layout(tmp_path / "pool", {"": 3}))
    assert idx.splits == [] and {s.split for s in idx.samples} == {None}
    assert idx.counts() == {"all": dict.fromkeys(CLASSES, 3)}


def test_hidden_files_and_folders_are_skipped(tmp_path):
    root = _layout(tmp_path / "d", {"Training": 1})
    _touch(root / "Training" / "glioma" / ".ipynb_checkpoints" / "glioma_0-checkpoint.jpg")
    _touch(root / "Training" / "glioma" / ".DS_Store")
    _touch(root / "Training" / ".ipynb_checkpoints" / "x.jpg")
    _touch(root / ".DS_Store")
    _touch(root / "Training" / ".DS_Store")
    _touch(root / "Training" / "pituitary" / "__MACOSX" / "._pituitary_0.jpg")
    (root / ".ipynb_checkpoints").mkdir()
    idx = discover(root)
    assert len(idx.samples) == 4
    assert not any(part.startswith((".", "__")) for s in idx.samples for part in s.path.parts[-3:])
    assert idx.skipped == []  # hidden files are not even worth a mention


def test_non_image_files_are_reported_not_indexed(tmp_path):
    root = _layout(tmp_path / "d", {"Training": 1})
    notes = _touch(root / "Training" / "glioma" / "notes.txt")
    idx = discover(root)
    assert len(idx.samples) == 4
    assert idx.skipped == [(str(notes), "not an image file (by extension)")]


def test_extensionless_dicom_is_found_by_its_magic(tmp_path):
    root = _layout(tmp_path / "d", {"": 1})
    dcm = _touch(root / "glioma" / "IM0001", b"\0" * 128 + b"DICM" + b"\0" * 16)
    _touch(root / "glioma" / "README", b"just text")
    idx = discover(root)
    assert dcm in [s.path for s in idx.samples]
    assert [p for p, _ in idx.skipped] == [str(root / "glioma" / "README")]


@pytest.mark.parametrize(
    "folder,label",
    [
        ("no_tumor", "notumor"),
        ("No Tumour", "notumor"),
        ("pituitary_tumor", "pituitary"),
        ("Glioma_Tumor", "glioma"),
        ("MENINGIOMA", "meningioma"),
        ("healthy", "notumor"),
    ],
)
def test_class_spellings_are_mapped(tmp_path, folder, label):
    root = tmp_path / "d"
    _touch(root / "Training" / folder / "a.png")
    idx = discover(root)
    assert idx.classes == (label,) and idx.samples[0].label == label


def test_unknown_class_is_an_error_unless_custom(tmp_path):
    root = _layout(tmp_path / "d", {"Training": 1}, classes=("glioma", "astrocytoma"))
    with pytest.raises(UnknownClassError, match="astrocytoma") as info:
        discover(root)
    assert str(root / "Training" / "astrocytoma") in str(info.value)  # names the folder
    idx = discover(root, custom_classes=True)
    assert idx.classes == ("glioma", "astrocytoma")  # canonical first, then the others


def test_csv_manifest_with_relative_and_absolute_paths(tmp_path):
    a = _touch(tmp_path / "imgs" / "a.png")
    b = _touch(tmp_path / "elsewhere" / "b.png")
    c = _touch(tmp_path / "imgs" / "c.png")
    csv = tmp_path / "list.csv"
    csv.write_text(
        f"path,label,split\nimgs/a.png,glioma,train\n{b},no_tumor,Testing\nimgs/c.png,Pituitary,\n"
        "imgs/missing.png,glioma,train\n"
    )
    idx = discover(csv)
    assert [(s.path, s.label, s.split) for s in idx.samples] == [
        (a, "glioma", "train"),
        (b, "notumor", "test"),
        (c, "pituitary", None),
    ]
    assert idx.skipped == [
        (str(tmp_path / "imgs" / "missing.png"), "listed on line 5 of list.csv but missing")
    ]


def test_csv_manifest_without_split_column_and_with_bom(tmp_path):
    _touch(tmp_path / "a.png")
    csv = tmp_path / "m.csv"
    csv.write_bytes("\ufeffPath, Label\na.png,meningioma\n".encode())  # as Excel saves it
    idx = discover(csv)
    assert [(s.label, s.split) for s in idx.samples] == [("meningioma", None)]


@pytest.mark.parametrize(
    "text,error,match",
    [
        ("file,class\na.png,glioma\n", DatasetError, "needs a header with path,label"),
        ("path,label\na.png,astrocytoma\n", UnknownClassError, "line 2: unknown class"),
        ("path,label,split\na.png,glioma,holdout\n", DatasetError, "line 2: unknown split"),
        ("path,label\nnope.png,glioma\n", DatasetError, "lists no existing image"),
    ],
)
def test_bad_manifests(tmp_path, text, error, match):
    _touch(tmp_path / "a.png")
    csv = tmp_path / "m.csv"
    csv.write_text(text)
    with pytest.raises(error, match=match):
        discover(csv)


def test_manifest_round_trip(synthetic_dataset, tmp_path):
    idx = discover(synthetic_dataset(n_per_class=1, size=32))
    back = discover(write_manifest(idx.samples, tmp_path / "out" / "manifest.csv"))
    assert [(s.path.resolve(), s.label, s.split) for s in back.samples] == [
        (s.path.resolve(), s.label, s.split) for s in idx.samples
    ]


def test_missing_or_empty_dataset(tmp_path):
    with pytest.raises(DatasetError, match="no such dataset folder"):
        discover(tmp_path / "nowhere")
    (tmp_path / "empty" / "Training" / "glioma").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no images found"):
        discover(tmp_path / "empty")


def test_real_dataset_is_indexed_as_documented(data_root):
    idx = discover(data_root)
    assert idx.classes == CLASSES and idx.splits == ["train", "test"]
    assert len(idx.split("train")) == 5708 and len(idx.split("test")) == 1311
    assert idx.counts()["test"] == {
        "glioma": 300,
        "meningioma": 306,
        "notumor": 405,
        "pituitary": 300,
    }
