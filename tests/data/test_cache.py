"""The decoded cache: hits without decoding, rebuilds on any change, survives bad files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from braintumor.data import cache as cache_mod
from braintumor.data.cache import build_cache
from braintumor.data.datasets import Sample, discover
from braintumor.data.preprocess import PreprocessConfig, preprocess
from braintumor.data.readers import read_image

CFG = PreprocessConfig(image_size=32)
DAY_NS = 86_400 * 10**9


def _age(paths, ns: int = DAY_NS) -> None:
    """Backdate files: the hash memo only trusts files older than its racy window."""
    for p in paths:
        st = os.stat(p)
        os.utime(p, ns=(st.st_atime_ns - ns, st.st_mtime_ns - ns))


@pytest.fixture
def samples(synthetic_dataset) -> list[Sample]:
    return discover(synthetic_dataset(n_per_class=2, size=48, splits=("Training",))).samples


@pytest.fixture
def count_decodes(monkeypatch):
    calls: list[str] = []
    real = cache_mod._decode_one

    def counting(job):
        calls.append(job[0])
        return real(job)

    monkeypatch.setattr(cache_mod, "_decode_one", counting)
    return calls


def _forbid(monkeypatch, name: str) -> None:
    def fail(*a, **k):
        raise AssertionError(f"{name} was called on a cache hit")

    monkeypatch.setattr(cache_mod, name, fail)


def test_images_are_memory_mapped_uint8_under_braintumor_cache(samples, cache_root):
    ds = build_cache(samples, CFG, workers=1)  # no cache_root: BRAINTUMOR_CACHE decides
    assert isinstance(ds.images, np.memmap) and ds.images.dtype == np.uint8
    assert ds.images.shape == (len(samples), 32, 32) and not ds.images.flags.writeable
    assert ds.directory.parent == cache_root and (ds.directory / "images.npy").is_file()
    assert len(ds) == len(samples) and ds.failed == []
    assert ds.labels == [s.label for s in samples] and ds.splits == [s.split for s in samples]


def test_cached_rows_equal_what_inference_computes(samples, cache_root):
    ds = build_cache(samples, CFG, workers=1)
    for row, s in enumerate(samples):
        expected = preprocess(read_image(s.path).pixels, CFG)
        np.testing.assert_array_equal(ds.images[row], expected.image)
        assert ds.crops[row] == expected.crop


def test_second_build_is_a_hit_without_decoding_or_hashing(samples, cache_root, monkeypatch):
    _age(s.path for s in samples)
    first = build_cache(samples, CFG, workers=1)
    first_images = np.array(first.images)
    _forbid(monkeypatch, "_decode_one")
    _forbid(monkeypatch, "_hash_file")  # unchanged (size, mtime): the memo answers
    second = build_cache(samples, CFG, workers=1)
    assert second.key == first.key and second.directory == first.directory
    np.testing.assert_array_equal(second.images, first_images)


def test_fresh_files_are_rehashed_but_still_hit(samples, cache_root, monkeypatch):
    first = build_cache(samples, CFG, workers=1)  # files just written: inside racy window
    _forbid(monkeypatch, "_decode_one")
    assert build_cache(samples, CFG, workers=1).key == first.key


def test_rebuilt_when_a_file_changes(samples, cache_root, count_decodes, synthetic_slice):
    _age(s.path for s in samples)
    first = build_cache(samples, CFG, workers=1)
    assert len(count_decodes) == len(samples)
    Image.fromarray(synthetic_slice(48, seed=999)).save(samples[3].path)
    second = build_cache(samples, CFG, workers=1)
    assert second.key != first.key and len(count_decodes) == 2 * len(samples)
    assert not np.array_equal(second.images[3], first.images[3])
    np.testing.assert_array_equal(second.images[2], first.images[2])


def test_same_size_same_mtime_rewrite_of_a_fresh_file_is_noticed(tmp_path, cache_root):
    """The racy case: rewritten within one mtime tick, same size. Content decides."""
    paths = []
    for i in range(3):
        arr = np.random.default_rng(i).integers(0, 256, (32, 32)).astype(np.uint8)
        paths.append(tmp_path / f"{i}.bmp")  # BMP: same dimensions, same byte size
        Image.fromarray(arr).save(paths[-1])
    samples = [Sample(p, "glioma") for p in paths]
    first = build_cache(samples, CFG, workers=1)
    st = os.stat(paths[0])
    Image.fromarray(255 - np.asarray(Image.open(paths[0]))).save(paths[0])
    os.utime(paths[0], ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(paths[0]).st_size == st.st_size
    second = build_cache(samples, CFG, workers=1)
    assert second.key != first.key
    np.testing.assert_array_equal(second.images[0], 255 - np.asarray(first.images[0]))


def test_rebuilt_when_a_file_is_added(samples, cache_root, synthetic_slice):
    first = build_cache(samples, CFG, workers=1)
    extra = samples[0].path.parent / "added.png"
    Image.fromarray(synthetic_slice(48, seed=4242)).save(extra)
    more = [*samples, Sample(extra, samples[0].label, samples[0].split)]
    second = build_cache(more, CFG, workers=1)
    assert second.key != first.key and len(second) == len(first) + 1
    assert second.paths[-1] == str(extra)


def test_rebuilt_when_preprocessing_changes(samples, cache_root):
    small = build_cache(samples, CFG, workers=1)
    large = build_cache(samples, PreprocessConfig(image_size=40), workers=1)
    uncropped = build_cache(samples, PreprocessConfig(image_size=32, crop=False), workers=1)
    assert len({small.key, large.key, uncropped.key}) == 3
    assert large.images.shape[1:] == (40, 40)
    assert not np.array_equal(small.images, uncropped.images)


def test_rebuilt_when_the_reader_version_changes(samples, cache_root, monkeypatch):
    first = build_cache(samples, CFG, workers=1)
    monkeypatch.setattr(cache_mod, "READER_VERSION", cache_mod.READER_VERSION + 1)
    assert build_cache(samples, CFG, workers=1).key != first.key


def test_rebuilt_when_a_label_changes(samples, cache_root):
    first = build_cache(samples, CFG, workers=1)
    relabelled = [Sample(samples[0].path, "pituitary", samples[0].split), *samples[1:]]
    assert build_cache(relabelled, CFG, workers=1).key != first.key


def test_corrupt_file_in_the_middle_is_reported_and_skipped(samples, cache_root):
    bad = samples[len(samples) // 2]
    bad.path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 50)  # a PNG signature, then junk
    ds = build_cache(samples, CFG, workers=1)
    assert len(ds) == len(samples) - 1 and str(bad.path) not in ds.paths
    assert len(ds.failed) == 1 and ds.failed[0][0] == str(bad.path)
    assert "PNG" in ds.failed[0][1] or "header" in ds.failed[0][1]
    good = [s for s in samples if s is not bad]
    for row, s in enumerate(good):  # everything else is cached, in order
        np.testing.assert_array_equal(
            ds.images[row], preprocess(read_image(s.path).pixels, CFG).image
        )
    assert ds.labels == [s.label for s in good]


def test_vanished_file_is_reported_not_fatal(samples, cache_root):
    ghost = Sample(Path(samples[0].path).with_name("deleted.png"), "glioma", "train")
    ds = build_cache([*samples, ghost], CFG, workers=1)
    assert len(ds) == len(samples)
    assert ds.failed == [(str(ghost.path), "cannot read file (No such file or directory)")]


def test_moved_dataset_hits_the_entry_and_reports_new_paths(samples, cache_root, tmp_path):
    first = build_cache(samples, CFG, workers=1)
    old_root = Path(samples[0].path).parents[2]
    new_root = old_root.rename(tmp_path / "moved")
    moved = [
        Sample(new_root / Path(s.path).relative_to(old_root), s.label, s.split) for s in samples
    ]
    second = build_cache(moved, CFG, workers=1)
    assert second.key == first.key
    assert second.paths == [str(s.path) for s in moved]


def test_parallel_build_matches_serial_build(synthetic_dataset, tmp_path):
    root = synthetic_dataset(n_per_class=9, size=32)  # 72 images: above the pool threshold
    samples = discover(root).samples
    serial = build_cache(samples, CFG, cache_root=tmp_path / "a", workers=1)
    parallel = build_cache(samples, CFG, cache_root=tmp_path / "b", workers=2)
    assert serial.key == parallel.key
    np.testing.assert_array_equal(serial.images, parallel.images)
    assert serial.crops == parallel.crops


def test_interrupted_build_leaves_no_entry(samples, cache_root, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(np.lib.format, "open_memmap", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_cache(samples, CFG, workers=1)
    leftovers = [p.name for p in cache_root.iterdir() if p.is_dir()]
    assert leftovers == []


def test_label_indices_and_select(samples, cache_root):
    ds = build_cache(samples, CFG, workers=1)
    classes = ("glioma", "meningioma", "notumor", "pituitary")
    idx = ds.label_indices(classes)
    assert idx.tolist() == [classes.index(s.label) for s in samples]
    rows, imgs = ds.select(idx == 2)
    assert rows.tolist() == [i for i, s in enumerate(samples) if s.label == "notumor"]
    assert imgs.shape == (len(rows), 32, 32)


def test_real_dataset_slice_is_cached(data_root, cache_root):
    samples = [s for s in discover(data_root).split("test")][::150]  # 9 images
    ds = build_cache(samples, PreprocessConfig(), workers=1)
    assert len(ds) == len(samples) and ds.failed == []
    assert ds.images.shape == (len(samples), 128, 128)
    assert all(c.original_size == (224, 224) for c in ds.crops)
