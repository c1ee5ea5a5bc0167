"""Class names: the canonical four and the spellings people give their folders."""

from __future__ import annotations

import re

CANONICAL_CLASSES: tuple[str, ...] = ("glioma", "meningioma", "notumor", "pituitary")

# Folder names seen in public copies of this data, normalised by `_key` below.
_ALIASES: dict[str, str] = {
    "glioma": "glioma",
    "gliomatumor": "glioma",
    "gl": "glioma",
    "meningioma": "meningioma",
    "meningiomatumor": "meningioma",
    "me": "meningioma",
    "notumor": "notumor",
    "notumour": "notumor",
    "no": "notumor",
    "none": "notumor",
    "normal": "notumor",
    "healthy": "notumor",
    "pituitary": "pituitary",
    "pituitarytumor": "pituitary",
    "pituitarytumour": "pituitary",
    "pi": "pituitary",
}


class UnknownClassError(ValueError):
    """A class name that maps to none of the canonical four."""


def _key(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.lower())


def canonical_label(name: str, custom: bool = False) -> str:
    """Map a folder or CSV label to a canonical class name.

    With ``custom=True`` unknown names are kept as they are (for users training on other
    classes); otherwise they are an error, because a typo in a folder name would silently
    create a fifth class.
    """
    key = _key(name)
    if key in _ALIASES:
        return _ALIASES[key]
    if custom:
        return name
    raise UnknownClassError(
        f"unknown class {name!r}: expected one of {', '.join(CANONICAL_CLASSES)} "
        "(or a common spelling such as no_tumor, pituitary_tumor); pass custom classes to keep it"
    )
