"""Sites drawn from the Training split, whole duplicate groups at one site.

A near-duplicate group (the same slice re-exported, mirrored, re-contrasted; found by
``data/duplicates.py``) stands for one patient's scan: it must sit in one hospital, or a site
would validate on another site's training images and federated figures would be inflated the
way a leaky split inflates central ones. So every scheme assigns groups, never images:

- ``iid``: groups shuffled and dealt to the currently smallest site (sizes within one group);
- ``by-class``: each class lives at one site (round-robin over classes; with more sites than
  classes, a class's groups are shared by the sites it is dealt to): the most skewed mix;
- ``dirichlet:ALPHA``: per class, site shares drawn from Dirichlet(ALPHA) (Hsu et al. 2019);
  small ALPHA (0.3) gives a few dominant classes per site, large ALPHA approaches IID.

Pure numpy and seeded: the same (labels, groups, scheme, seed) always gives the same sites.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class PartitionError(ValueError):
    """A partition that cannot be drawn (unknown scheme, too few groups for the sites)."""


@dataclass(frozen=True)
class Scheme:
    kind: str  # iid | by-class | dirichlet
    alpha: float | None = None

    def __str__(self) -> str:
        return f"dirichlet:{self.alpha:g}" if self.kind == "dirichlet" else self.kind


def parse_scheme(text: str) -> Scheme:
    text = str(text).strip().lower()
    if text in ("iid", "by-class"):
        return Scheme(text)
    if text.startswith("dirichlet:"):
        try:
            alpha = float(text.split(":", 1)[1])
        except ValueError:
            alpha = -1.0
        if alpha <= 0:
            raise PartitionError(f"partition {text!r}: ALPHA must be a number > 0, "
                                 "e.g. dirichlet:0.3")
        return Scheme("dirichlet", alpha)
    raise PartitionError(f"partition {text!r}: expected iid, by-class or dirichlet:ALPHA")


def partition_sites(labels: np.ndarray, groups: np.ndarray | None, n_sites: int,
                    scheme: Scheme | str, seed: int = 0, max_tries: int = 50
                    ) -> list[np.ndarray]:
    """Row indices (into ``labels``) of each site, sorted; every site gets >= 1 image.

    ``groups`` gives each row its duplicate group (None: each row its own). A group's class
    is its most common label. Dirichlet draws that leave a site empty are redrawn (up to
    ``max_tries``, each from the next seed), as is usual for this scheme.
    """
    scheme = parse_scheme(scheme) if isinstance(scheme, str) else scheme
    labels = np.asarray(labels)
    if n_sites < 1:
        raise PartitionError("sites must be >= 1")
    groups = np.arange(len(labels)) if groups is None else np.asarray(groups)
    uniq, inverse = np.unique(groups, return_inverse=True)
    if len(uniq) < n_sites:
        raise PartitionError(f"{len(uniq)} duplicate groups cannot fill {n_sites} sites")
    members = [np.flatnonzero(inverse == g) for g in range(len(uniq))]
    group_label = np.array([np.bincount(labels[m]).argmax() for m in members])
    sizes = np.array([len(m) for m in members])
    for attempt in range(max_tries):
        rng = np.random.default_rng(seed + attempt)
        site_of = _assign(scheme, group_label, sizes, n_sites, rng)
        sites = [np.sort(np.concatenate([members[g] for g in np.flatnonzero(site_of == s)]))
                 if (site_of == s).any() else np.array([], dtype=np.int64)
                 for s in range(n_sites)]
        if all(len(s) for s in sites):
            return sites
    raise PartitionError(f"{scheme} left a site without images in {max_tries} draws; use "
                         "fewer sites or a larger ALPHA")


def _assign(scheme: Scheme, group_label: np.ndarray, sizes: np.ndarray, n_sites: int,
            rng: np.random.Generator) -> np.ndarray:
    site_of = np.full(len(group_label), -1)
    classes = np.unique(group_label)
    if scheme.kind == "iid":
        load = np.zeros(n_sites)
        for g in rng.permutation(len(group_label)):
            s = int(np.argmin(load + rng.random(n_sites) * 1e-9))  # ties broken at random
            site_of[g] = s
            load[s] += sizes[g]
        return site_of
    for ci, c in enumerate(classes):
        gs = rng.permutation(np.flatnonzero(group_label == c))
        if scheme.kind == "by-class":
            owners = [s for s in range(n_sites) if s % len(classes) == ci] or [ci % n_sites]
            owner_load = dict.fromkeys(owners, 0)
            for g in gs:
                s = min(owners, key=lambda o: owner_load[o])
                site_of[g] = s
                owner_load[s] += sizes[g]
        else:  # dirichlet: cut the class's images at the cumulative drawn shares
            share = rng.dirichlet(np.full(n_sites, scheme.alpha))
            cum = np.cumsum(sizes[gs]) - sizes[gs] / 2  # each group placed by its middle
            bounds = np.cumsum(share) * sizes[gs].sum()
            site_of[gs] = np.minimum(np.searchsorted(bounds, cum), n_sites - 1)
    return site_of


def class_mix(labels: np.ndarray, sites: list[np.ndarray], num_classes: int) -> np.ndarray:
    """(sites, classes) image counts: what the partition gave each site."""
    return np.stack([np.bincount(np.asarray(labels)[s], minlength=num_classes) for s in sites])
