"""The site partitioner: duplicate groups kept whole, class mix as asked, seeded."""

from __future__ import annotations

import numpy as np
import pytest

from braintumor.federated.partition import (
    PartitionError,
    class_mix,
    parse_scheme,
    partition_sites,
)


@pytest.fixture
def pool():
    """600 images of 4 classes in duplicate groups of 1-6 (one class per group)."""
    rng = np.random.default_rng(0)
    labels, groups = [], []
    for g in range(200):
        c = g % 4
        n = int(rng.integers(1, 7))
        labels += [c] * n
        groups += [g] * n
    return np.array(labels), np.array(groups)


@pytest.mark.parametrize("scheme", ["iid", "by-class", "dirichlet:0.3", "dirichlet:100"])
def test_every_image_at_exactly_one_site_and_groups_whole(pool, scheme):
    labels, groups = pool
    sites = partition_sites(labels, groups, 5, scheme, seed=1)
    joined = np.concatenate(sites)
    assert sorted(joined.tolist()) == list(range(len(labels)))
    site_of = np.empty(len(labels), int)
    for s, rows in enumerate(sites):
        site_of[rows] = s
    for g in np.unique(groups):
        assert len(set(site_of[groups == g].tolist())) == 1, f"group {g} split across sites"


def test_seeded(pool):
    labels, groups = pool
    a = partition_sites(labels, groups, 3, "dirichlet:0.3", seed=4)
    b = partition_sites(labels, groups, 3, "dirichlet:0.3", seed=4)
    c = partition_sites(labels, groups, 3, "dirichlet:0.3", seed=5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_iid_sites_are_balanced_in_size_and_class_mix(pool):
    labels, groups = pool
    mix = class_mix(labels, partition_sites(labels, groups, 3, "iid", seed=0), 4)
    sizes = mix.sum(1)
    assert sizes.max() - sizes.min() <= 6  # within one group
    shares = mix / mix.sum(1, keepdims=True)
    assert np.abs(shares - shares.mean(0)).max() < 0.12


def test_by_class_gives_each_class_to_one_site(pool):
    labels, groups = pool
    mix = class_mix(labels, partition_sites(labels, groups, 4, "by-class", seed=0), 4)
    assert ((mix > 0).sum(0) == 1).all() and ((mix > 0).sum(1) == 1).all()
    mix3 = class_mix(labels, partition_sites(labels, groups, 3, "by-class", seed=0), 4)
    assert ((mix3 > 0).sum(0) == 1).all()  # 4 classes over 3 sites: one site holds two


def test_small_dirichlet_alpha_skews_the_class_mix(pool):
    labels, groups = pool

    def skew(alpha):
        mix = class_mix(labels, partition_sites(labels, groups, 5, f"dirichlet:{alpha}",
                                                seed=2), 4)
        return (mix.max(1) / mix.sum(1)).mean()  # share of each site's main class

    assert skew(0.3) > skew(100) + 0.2
    assert skew(100) < 0.4


def test_bad_schemes_and_too_many_sites(pool):
    labels, groups = pool
    with pytest.raises(PartitionError, match="expected iid"):
        parse_scheme("random")
    with pytest.raises(PartitionError, match="ALPHA must be"):
        parse_scheme("dirichlet:-1")
    with pytest.raises(PartitionError, match="cannot fill"):
        partition_sites(labels[:3], groups[:3], 5, "iid")


def test_partition_command_writes_site_folders_of_links(synthetic_dataset, cache_root,
                                                        tmp_path):
    from braintumor.cli import main

    data = synthetic_dataset(n_per_class=8, size=32, splits=("Training",))
    out = tmp_path / "sites"
    assert main(["federated", "partition", "--data", str(data), "--sites", "2",
                 "--partition", "by-class", "--image-size", "32", "--out", str(out)]) == 0
    links = sorted(out.glob("*/Training/*/*"))
    assert links and all(p.is_symlink() for p in links)
    names = [p.name for p in links]
    assert len(names) == len(set(names)) == 32  # each image at one place, none copied
    assert {p.parts[-4] for p in links} == {"site-0", "site-1", "server-validation"}


def test_without_flwr_the_command_says_how_to_install_it(monkeypatch, capsys):
    import sys

    from braintumor.cli import main

    monkeypatch.setitem(sys.modules, "flwr", None)  # import flwr -> ImportError
    assert main(["federated", "server", "--out", "x"]) == 2
    assert "pip install 'braintumor[federated]'" in capsys.readouterr().err
