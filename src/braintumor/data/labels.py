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


class ClassSpecError(ValueError):
    """A ``--custom-classes`` value that cannot be read; the message says what is wrong."""


def parse_class_spec(spec: str) -> tuple[list[str], dict[str, str] | None]:
    """(classes in order, folder class -> training class, or None) from a ``--custom-classes``.

    Two forms, because fine-tuning asks two things of the data: ``glioma,meningioma,x`` names
    the class list itself (folders of other names, e.g. a new tumour type, are then accepted
    and must be exactly these); ``tumour=glioma+meningioma+pituitary,notumor=notumor``
    relabels, pooling folder classes into new ones (a two-class tumour/no-tumour task) without
    copying a single image. Folder names on the right go through :func:`canonical_label`, so
    ``no_tumor`` and ``notumor`` are the same class.
    """
    parts = [p.strip() for p in str(spec).split(",") if p.strip()]
    if not parts:
        raise ClassSpecError(f"custom classes {spec!r}: no class names")
    if not any("=" in p for p in parts):
        named = [canonical_label(p, custom=True) for p in parts]
        if len(set(named)) != len(named):
            raise ClassSpecError(f"custom classes {spec!r}: a class is named twice")
        if len(named) < 2:
            raise ClassSpecError(f"custom classes {spec!r}: a classifier needs >= 2 classes")
        return named, None
    classes: list[str] = []
    mapping: dict[str, str] = {}
    for part in parts:
        target, sep, sources = part.partition("=")
        target = target.strip()
        if not sep or not target or not sources.strip():
            raise ClassSpecError(f"custom classes {spec!r}: {part!r} is not NEW=OLD+OLD "
                                 "(every entry needs '=' once one has it)")
        if target in classes:
            raise ClassSpecError(f"custom classes {spec!r}: class {target!r} defined twice")
        classes.append(target)
        for src in sources.split("+"):
            src = canonical_label(src.strip(), custom=True)
            if src in mapping:
                raise ClassSpecError(f"custom classes {spec!r}: folder class {src!r} is "
                                     f"mapped to both {mapping[src]!r} and {target!r}")
            mapping[src] = target
    if len(classes) < 2:
        raise ClassSpecError(f"custom classes {spec!r}: a classifier needs >= 2 classes")
    return classes, mapping
