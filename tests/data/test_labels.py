"""Class names: the four canonical ones and the folder spellings found in public copies."""

from __future__ import annotations

import pytest

from braintumor.data.labels import CANONICAL_CLASSES, UnknownClassError, canonical_label


def test_canonical_order_is_alphabetical_and_fixed():
    # Model heads, confusion matrices and bundles all index classes in this order.
    assert CANONICAL_CLASSES == ("glioma", "meningioma", "notumor", "pituitary")


@pytest.mark.parametrize(
    "name,label",
    [
        ("glioma", "glioma"),
        ("glioma_tumor", "glioma"),
        ("Glioma-Tumor", "glioma"),
        ("meningioma_tumor", "meningioma"),
        ("no_tumor", "notumor"),
        ("No Tumour", "notumor"),
        ("notumor", "notumor"),
        ("normal", "notumor"),
        ("pituitary_tumor", "pituitary"),
        ("PITUITARY", "pituitary"),
        ("pituitary tumour", "pituitary"),
    ],
)
def test_spellings_map_to_canonical(name, label):
    assert canonical_label(name) == label
    assert canonical_label(name, custom=True) == label  # custom mode still maps known names


def test_every_canonical_name_maps_to_itself():
    assert [canonical_label(c) for c in CANONICAL_CLASSES] == list(CANONICAL_CLASSES)


@pytest.mark.parametrize("name", ["astrocytoma", "gliomaa", "tumor", ""])
def test_unknown_names_are_errors_unless_custom(name):
    with pytest.raises(UnknownClassError, match="unknown class") as info:
        canonical_label(name)
    assert "glioma, meningioma, notumor, pituitary" in str(info.value)
    assert isinstance(info.value, ValueError)
    assert canonical_label(name, custom=True) == name  # kept exactly as given
