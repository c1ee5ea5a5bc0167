import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from braintumor.evaluation.bootstrap import accuracy_and_macro_f1, bootstrap_ci, confusion_matrices


def predictions(n: int, accuracy: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    wrong = rng.random(n) > accuracy
    preds = np.where(wrong, (labels + rng.integers(1, 4, n)) % 4, labels)
    return labels, preds


def test_vectorised_resample_statistics_equal_scikit_learn():
    labels, preds = predictions(60, 0.7)
    rng = np.random.default_rng(3)
    idx = rng.integers(0, 60, (25, 60))  # 25 resamples at once, as scipy passes them
    cms = confusion_matrices(labels[idx], preds[idx], 4)
    acc, f1 = accuracy_and_macro_f1(cms)
    for b in range(25):
        y, p = labels[idx[b]], preds[idx[b]]
        assert (cms[b] == confusion_matrix(y, p, labels=range(4))).all()
        assert acc[b] == pytest.approx(accuracy_score(y, p))
        assert f1[b] == pytest.approx(f1_score(y, p, labels=range(4), average="macro",
                                               zero_division=0))


def test_interval_contains_the_point_estimate_and_is_seeded():
    labels, preds = predictions(300, 0.85)
    ci = bootstrap_ci(labels, preds, 4, n_resamples=1000, seed=7)
    acc = accuracy_score(labels, preds)
    f1 = f1_score(labels, preds, average="macro")
    assert ci["accuracy"][0] < acc < ci["accuracy"][1]
    assert ci["macro_f1"][0] < f1 < ci["macro_f1"][1]
    assert ci["method"] == "percentile" and ci["n_resamples"] == 1000
    assert bootstrap_ci(labels, preds, 4, n_resamples=1000, seed=7) == ci
    assert bootstrap_ci(labels, preds, 4, n_resamples=1000, seed=8) != ci


def test_interval_narrows_with_more_images():
    small = bootstrap_ci(*predictions(100, 0.8), 4, n_resamples=500)
    large = bootstrap_ci(*predictions(2000, 0.8), 4, n_resamples=500)
    width = lambda ci: ci["accuracy"][1] - ci["accuracy"][0]  # noqa: E731
    assert width(large) < width(small) / 2


def test_too_few_images_for_an_interval():
    assert bootstrap_ci(np.array([1]), np.array([1]), 4) is None
