"""Duplicate detection: every planted copy is found, and similar-looking distinct slices are not.

Copies are planted the way they occur in public MRI sets: lossless re-encodings, mirrored,
re-brightened, contrast-stretched, gamma-changed, resized and JPEG-recompressed versions.
Distinct slices come from ``make_slice`` with other seeds: same kind of head, texture and blob.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from braintumor.data.datasets import Sample
from braintumor.data.duplicates import (
    DuplicateConfig,
    compute_fingerprints,
    correlation_vectors,
    duplicate_groups,
    find_duplicate_groups,
)

GLIOMA = (0.35, 0.35)


def _jpeg(pixels: np.ndarray, quality: int = 90) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("L"))


def _save(pixels: np.ndarray, path, mode: str = "L") -> str:
    Image.fromarray(pixels).convert(mode).save(path)
    return str(path)


def _copies(base: np.ndarray) -> dict[str, np.ndarray]:
    """Near copies of ``base`` (each must land in base's group)."""
    f = base.astype(np.float64)
    return {
        "mirrored": base[:, ::-1],
        "brighter": np.clip(f * 0.7 + 50, 0, 255).astype(np.uint8),
        "contrast": np.clip(f * 1.4 - 30, 0, 255).astype(np.uint8),
        "gamma": (255 * (f / 255) ** 0.6).astype(np.uint8),
        "larger": np.asarray(Image.fromarray(base).resize((128, 128), Image.BILINEAR)),
        "smaller": np.asarray(Image.fromarray(base).resize((72, 72), Image.BILINEAR)),
        "jpeg": _jpeg(base),
        "mirrored_darker_jpeg": _jpeg(np.clip(f[:, ::-1] * 0.8 + 20, 0, 255).astype(np.uint8)),
    }


@pytest.fixture
def planted(tmp_path, synthetic_slice):
    """Files: two originals with all kinds of copies, plus six distinct look-alikes."""
    files: dict[str, str] = {}
    for name, seed, blob in (("a", 1, GLIOMA), ("b", 2, (0.68, 0.5))):
        base = synthetic_slice(96, seed, blob)
        files[f"{name}"] = _save(base, tmp_path / f"{name}.png")
        # Lossless re-encodings: other container, RGB instead of grey -> identical pixels.
        files[f"{name}_bmp"] = _save(base, tmp_path / f"{name}_copy.bmp")
        files[f"{name}_rgb"] = _save(base, tmp_path / f"{name}_rgb.png", mode="RGB")
        for kind, pixels in _copies(base).items():
            files[f"{name}_{kind}"] = _save(pixels, tmp_path / f"{name}_{kind}.png")
    for seed in range(10, 16):  # same blob position as "a": the hardest look-alikes
        files[f"other{seed}"] = _save(synthetic_slice(96, seed, GLIOMA),
                                      tmp_path / f"other{seed}.png")
    return files


def test_every_planted_copy_is_grouped_and_no_lookalike_is(planted):
    names = list(planted)
    groups = duplicate_groups([planted[n] for n in names], workers=1)
    gid = dict(zip(names, groups.tolist(), strict=True))
    for original in ("a", "b"):
        members = {n for n in names if n == original or n.startswith(original + "_")}
        assert {gid[n] for n in members} == {gid[original]}, f"copies of {original} split up"
        assert sum(g == gid[original] for g in groups) == len(members), "a stranger joined"
    assert gid["a"] != gid["b"]
    others = [gid[n] for n in names if n.startswith("other")]
    assert len(set(others)) == len(others), "distinct slices were paired"


def test_pair_kinds_exact_mirrored_and_near(planted):
    names = list(planted)
    fp = compute_fingerprints([planted[n] for n in names], workers=1)
    pairs = find_duplicate_groups(fp).pairs
    kinds = {}
    for i, j, exact, mirrored in zip(pairs.i, pairs.j, pairs.exact, pairs.mirrored,
                                     strict=True):
        kinds[frozenset((names[i], names[j]))] = ("exact" if exact else
                                                 "mirrored" if mirrored else "near")
    assert kinds[frozenset(("a", "a_bmp"))] == "exact"
    assert kinds[frozenset(("a", "a_rgb"))] == "exact"
    assert kinds[frozenset(("a", "a_mirrored"))] == "mirrored"
    assert kinds[frozenset(("a", "a_mirrored_darker_jpeg"))] == "mirrored"
    assert kinds[frozenset(("a", "a_gamma"))] == "near"
    assert kinds[frozenset(("a", "a_jpeg"))] == "near"
    assert np.all(pairs.agreement[~pairs.exact] >= DuplicateConfig().min_agreement)


def test_lookalikes_that_pass_the_correlation_stage_are_rejected_by_agreement(planted):
    """With a permissive first stage the look-alikes become candidates; stage two stops them."""
    others = [planted[n] for n in planted if n.startswith("other")] + [planted["a"]]
    cfg = DuplicateConfig(min_correlation=0.5)
    result = find_duplicate_groups(compute_fingerprints(others, cfg, workers=1), cfg)
    assert result.pairs.candidates >= 10
    assert len(result.pairs) == 0
    assert len(set(result.groups.tolist())) == len(others)


def test_unreadable_files_get_their_own_group_and_a_reason(tmp_path, synthetic_slice):
    good = _save(synthetic_slice(64, 3, GLIOMA), tmp_path / "good.png")
    twin = _save(synthetic_slice(64, 3, GLIOMA), tmp_path / "twin.bmp")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    paths = [good, str(broken), str(empty), twin]
    fp = compute_fingerprints(paths, workers=1)
    errors = {r.path: r.error for r in fp.records}
    assert errors[str(broken)] and "empty" in errors[str(empty)]
    assert errors[good] is None and errors[twin] is None
    groups = find_duplicate_groups(fp).groups
    assert groups[0] == groups[3]
    assert len({groups[0], groups[1], groups[2]}) == 3


def test_exact_copies_are_grouped_whatever_the_thresholds(planted):
    paths = [planted["a"], planted["a_bmp"], planted["a_rgb"], planted["a_gamma"]]
    cfg = DuplicateConfig(min_correlation=1.0, min_agreement=1.0)
    groups = find_duplicate_groups(compute_fingerprints(paths, cfg, workers=1), cfg).groups
    assert groups[0] == groups[1] == groups[2] != groups[3]


def test_duplicate_groups_accepts_samples_and_rejects_a_bare_path(planted):
    samples = [Sample(planted["a"], "glioma", "train"), Sample(planted["a_mirrored"], "glioma",
                                                              "test"),
               Sample(planted["other10"], "glioma", "test")]
    groups = duplicate_groups(samples, workers=1)
    assert groups.shape == (3,) and groups.dtype == np.int64
    assert groups[0] == groups[1] != groups[2]
    with pytest.raises(TypeError, match="list of samples or paths"):
        duplicate_groups(planted["a"])


@pytest.mark.parametrize("kwargs", [{"min_correlation": 1.5}, {"min_correlation": 0.0},
                                    {"min_agreement": -2}, {"thumb_size": 2}])
def test_config_rejects_nonsense(kwargs):
    with pytest.raises(ValueError):
        DuplicateConfig(**kwargs)


def test_decoded_arrays_can_be_grouped_without_files(synthetic_slice):
    base = synthetic_slice(64, 42, GLIOMA)
    arrays = [base, base[:, ::-1], _jpeg(base), synthetic_slice(64, 43, GLIOMA)]
    fp = compute_fingerprints(arrays, workers=1)
    assert [r.path for r in fp.records] == [f"<array {k}>" for k in range(4)]
    groups = find_duplicate_groups(fp).groups
    assert groups[0] == groups[1] == groups[2] != groups[3]


def test_parallel_decoding_gives_the_same_answer(tmp_path, synthetic_slice):
    paths = []
    for k in range(70):  # above the 64-file threshold for a process pool
        img = synthetic_slice(32, 900 + k // 2, GLIOMA)
        paths.append(_save(img if k % 2 else img[:, ::-1], tmp_path / f"p{k}.png"))
    serial = compute_fingerprints(paths, workers=1)
    parallel = compute_fingerprints(paths, workers=2)
    assert [r.pixel_hash for r in serial.records] == [r.pixel_hash for r in parallel.records]
    assert np.array_equal(serial.fields, parallel.fields)
    groups = find_duplicate_groups(parallel).groups
    assert len(set(groups.tolist())) == 35


@pytest.mark.dataset
def test_known_pairs_of_the_kaggle_set(data_root):
    """Regression check of the default thresholds on pairs inspected by eye (docs/audit.md)."""
    tr, te = data_root / "Training", data_root / "Testing"
    pairs = {  # (a, b): same slice?
        (te / "notumor/Te-no_0349.jpg", tr / "notumor/Tr-no_1329.jpg"): True,  # re-contrasted
        (te / "notumor/Te-no_0381.jpg", tr / "notumor/Tr-no_0620.jpg"): True,  # mirrored+contrast
        (te / "meningioma/Te-me_0156.jpg", te / "pituitary/Te-piTr_0002.jpg"): True,  # 2 labels
        (tr / "glioma/Tr-gl_0124.jpg", tr / "glioma/Tr-gl_0125.jpg"): False,  # adjacent slices
        (tr / "pituitary/Tr-pi_1006.jpg", tr / "pituitary/Tr-pi_1007.jpg"): False,
        (te / "glioma/Te-gl_0286.jpg", tr / "glioma/Tr-gl_1279.jpg"): False,
    }
    for (a, b), same in pairs.items():
        groups = duplicate_groups([a, b], workers=1)
        assert (groups[0] == groups[1]) == same, f"{a.name} vs {b.name}"


def test_correlation_vectors_dot_to_pearson_and_leave_flat_images_zero():
    rng = np.random.default_rng(0)
    a, b = rng.random((2, 6, 6))
    v = correlation_vectors(np.stack([a, b, np.full((6, 6), 3.0)]))
    assert np.isclose(v[0] @ v[1], np.corrcoef(a.ravel(), b.ravel())[0, 1], atol=1e-5)
    assert np.isclose(v[0] @ v[0], 1.0, atol=1e-5) and not v[2].any()
