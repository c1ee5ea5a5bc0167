"""Duplicate-aware stratified splits: groups never straddle, classes stay balanced, seeds repeat."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from braintumor.data.duplicates import duplicate_groups
from braintumor.data.splits import stratified_group_split


def _toy(n_groups: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Groups of 1-4 copies sharing a label; class shares 40/30/20/10 %."""
    rng = np.random.default_rng(seed)
    group_labels = rng.choice(4, size=n_groups, p=[0.4, 0.3, 0.2, 0.1])
    sizes = rng.integers(1, 5, size=n_groups)
    groups = np.repeat(np.arange(n_groups), sizes)
    return group_labels[groups], groups


def test_no_group_straddles_and_every_sample_is_placed_once():
    labels, groups = _toy()
    train, val = stratified_group_split(labels, groups, val_fraction=0.2, seed=3)
    assert not set(groups[train]) & set(groups[val])
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(len(labels)))


def test_classes_keep_their_share_and_the_size_is_near_the_target():
    labels, groups = _toy(n_groups=600)
    train, val = stratified_group_split(labels, groups, val_fraction=0.2, seed=0)
    assert abs(len(val) / len(labels) - 0.2) < 0.03
    overall = np.bincount(labels, minlength=4) / len(labels)
    in_val = np.bincount(labels[val], minlength=4) / len(val)
    assert np.abs(in_val - overall).max() < 0.03


def test_same_seed_same_split_other_seed_other_split():
    labels, groups = _toy()
    a = stratified_group_split(labels, groups, 0.25, seed=7)
    b = stratified_group_split(labels, groups, 0.25, seed=7)
    c = stratified_group_split(labels, groups, 0.25, seed=8)
    assert np.array_equal(a[1], b[1]) and np.array_equal(a[0], b[0])
    assert not np.array_equal(a[1], c[1])


def test_string_labels_and_group_ids_work():
    labels, groups = _toy(n_groups=80)
    names = np.array(["glioma", "meningioma", "notumor", "pituitary"])[labels]
    train, val = stratified_group_split(names.tolist(), [f"g{g}" for g in groups], 0.2, seed=1)
    assert len(train) + len(val) == len(names) and len(val) > 0


@pytest.mark.parametrize(
    ("labels", "groups", "fraction", "message"),
    [
        ([0, 1, 0, 1], [0, 1, 2, 3], 0.0, "strictly between"),
        ([0, 1, 0, 1], [0, 1, 2, 3], 1.0, "strictly between"),
        ([0, 1, 0], [0, 1], 0.5, "equally long"),
        ([0, 1, 0, 1], [0, 0, 0, 0], 0.5, "only 1 groups"),
    ],
)
def test_bad_arguments_are_explained(labels, groups, fraction, message):
    with pytest.raises(ValueError, match=message):
        stratified_group_split(labels, groups, fraction, seed=0)


def test_planted_copies_stay_together_end_to_end(tmp_path, synthetic_slice):
    """Groups from the real duplicate finder keep a slice and its mirrored copy together."""
    blobs = [(0.35, 0.35), (0.35, 0.68), (0.68, 0.5), None]
    paths, labels = [], []
    for k in range(24):
        label = k % 4
        img = synthetic_slice(48, 500 + k, blobs[label])
        for suffix, pixels in (("", img), ("_mirror", img[:, ::-1])):
            path = tmp_path / f"s{k}{suffix}.png"
            Image.fromarray(pixels).save(path)
            paths.append(str(path))
            labels.append(label)
    groups = duplicate_groups(paths, workers=1)
    assert len(set(groups.tolist())) == 24
    train, val = stratified_group_split(labels, groups, 0.25, seed=0)
    val_set = set(val.tolist())
    for k in range(0, len(paths), 2):
        assert (k in val_set) == (k + 1 in val_set), f"{paths[k]} split from its mirror"


def _fake_cache(labels: list[str], splits: list[str | None]):
    from braintumor.data.cache import CachedDataset
    from braintumor.data.preprocess import PreprocessConfig

    n = len(labels)
    return CachedDataset(images=np.zeros((n, 4, 4), np.uint8), labels=labels,
                         paths=[f"/d/{i}.png" for i in range(n)], splits=splits,
                         crops=[None] * n, content_hashes=[""] * n,
                         config=PreprocessConfig(), key="k")


def test_plan_split_keeps_groups_whole_and_the_test_split_apart(monkeypatch):
    import braintumor.data.splits as splits

    # No files to read: call every 3 consecutive training rows one duplicate group.
    monkeypatch.setattr(splits, "duplicate_group_ids",
                        lambda cached, rows: np.arange(len(rows)) // 3)
    classes = ["a", "b"]
    labels = [classes[(i // 3) % 2] for i in range(60)] + ["a", "b"] * 5
    cached = _fake_cache(labels, ["train"] * 60 + ["test"] * 10)
    plan = splits.plan_split(cached, classes, val_fraction=0.2, seed=0)
    assert plan.test_rows.tolist() == list(range(60, 70))
    assert sorted(plan.train_rows.tolist() + plan.val_rows.tolist()) == list(range(60))
    val_groups = set((plan.val_rows // 3).tolist())
    assert val_groups.isdisjoint((plan.train_rows // 3).tolist())
    assert plan.train_groups.tolist() == (plan.train_rows // 3).tolist()
    assert "duplicate-aware: 20 duplicate groups" in plan.method
    again = splits.plan_split(cached, classes, val_fraction=0.2, seed=0)
    assert again.val_rows.tolist() == plan.val_rows.tolist()  # a pure function of its inputs


def test_plan_split_names_a_class_too_small_to_validate():
    from braintumor.data.splits import TrainingDataError, plan_split

    cached = _fake_cache(["a"] * 10 + ["b"], ["train"] * 11)
    with pytest.raises(TrainingDataError, match=r"\['b'\] have fewer than 2 training images"):
        plan_split(cached, ["a", "b"], val_fraction=0.2, seed=0)


def test_plan_split_train_fraction_and_relabelled_rows(monkeypatch):
    """``train_fraction`` thins the training part by whole groups and leaves validation as it
    was; ``row_labels`` (a --custom-classes relabelling) replaces the folder classes."""
    import braintumor.data.splits as splits

    monkeypatch.setattr(splits, "duplicate_group_ids",
                        lambda cached, rows: np.arange(len(rows)) // 3)
    folders = ["glioma", "meningioma", "notumor"]
    labels = [folders[(i // 3) % 3] for i in range(90)]
    cached = _fake_cache(labels, ["train"] * 90)
    full = splits.plan_split(cached, folders, val_fraction=0.2, seed=0)
    part = splits.plan_split(cached, folders, val_fraction=0.2, seed=0, train_fraction=0.5)
    assert part.val_rows.tolist() == full.val_rows.tolist()
    assert set(part.train_rows.tolist()) < set(full.train_rows.tolist())
    assert abs(len(part.train_rows) - 0.5 * len(full.train_rows)) <= 3  # one group
    assert set((part.train_rows // 3).tolist()).isdisjoint(
        set((np.setdiff1d(full.train_rows, part.train_rows) // 3).tolist()))
    assert part.train_groups.tolist() == (part.train_rows // 3).tolist()

    mapping = {"glioma": "tumour", "meningioma": "tumour", "notumor": "notumor"}
    rows = splits.training_labels(labels, ["tumour", "notumor"], mapping, "/d")
    two = splits.plan_split(cached, ["tumour", "notumor"], val_fraction=0.2, seed=0,
                            row_labels=rows)
    assert two.labels.tolist() == [0 if lbl != "notumor" else 1 for lbl in labels]
    with pytest.raises(splits.TrainingDataError, match=r"\['notumor'\].*does not map"):
        splits.training_labels(labels, ["tumour"], {"glioma": "tumour",
                                                    "meningioma": "tumour"}, "/d")


def test_card_split_settings_carry_train_fraction_and_custom_classes():
    from braintumor.data.splits import card_split_settings

    config = {"image_size": 64, "val_fraction": 0.2, "seed": 1, "max_train_images": None,
              "train_fraction": 0.25, "custom_classes": "a,b"}
    assert card_split_settings({"training": {"config": config}}) == (64, 0.2, 1, None, 0.25,
                                                                     "a,b")
    old = {k: v for k, v in config.items() if k not in ("train_fraction", "custom_classes")}
    assert card_split_settings({"training": {"config": old}}) == (64, 0.2, 1, None, None, None)
