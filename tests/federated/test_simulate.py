"""One simulated federation on synthetic data, through Flower's server loop in-process."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

pytest.importorskip("flwr", reason="flwr not installed: pip install -e '.[federated]'")

from braintumor.cli import main  # noqa: E402
from braintumor.federated.federation import initial_model  # noqa: E402
from braintumor.federated.simulate import simulate  # noqa: E402
from braintumor.models import load_bundle  # noqa: E402

FOUR = ["glioma", "meningioma", "notumor", "pituitary"]


def test_one_round_changes_the_global_weights_and_writes_a_bundle(fed_data, fed_config,
                                                                   tmp_path):
    cfg = fed_config(fed_data, tmp_path / "fed")
    summary = simulate(cfg, sites=3, partition="iid", rounds=1, local_epochs=1)
    before, _ = initial_model(cfg, FOUR)
    bundle = load_bundle(tmp_path / "fed" / "bundle")
    changed = [k for k, v in bundle.model.state_dict().items()
               if v.is_floating_point() and not np.allclose(v.numpy(),
                                                            before.state_dict()[k].numpy())]
    assert len(changed) > len(bundle.model.state_dict()) // 2
    fed = bundle.card["federated"]
    assert (fed["sites"], fed["rounds"], fed["strategy"], fed["partition"]) == (
        3, 1, "fedavg", "iid")
    assert sum(sum(c.values()) for c in fed["site_class_counts"].values()) == \
        sum(bundle.card["training"]["counts"]["train"].values())
    assert "test" in bundle.card["metrics"] and bundle.classes == FOUR
    rounds = json.loads((tmp_path / "fed" / "rounds.json").read_text())
    assert [r["round"] for r in rounds] == [0, 1]
    r1 = rounds[1]
    assert r1["sites_ok"] == 3 and r1["failures"] == 0
    assert 0 <= r1["val_accuracy"] <= 1
    # every site got the global model and sent one back: 6 copies of the weights moved
    assert r1["bytes_down"] == r1["bytes_up"] and r1["bytes_total"] == 2 * r1["bytes_up"]
    assert r1["bytes_up"] >= 3 * bundle.card["weights"]["bytes"] * 0.9
    with (tmp_path / "fed" / "sites.csv").open() as f:
        assert sorted(r["site"] for r in csv.DictReader(f)) == ["site-0", "site-1", "site-2"]
    assert summary["metrics"]["validation"]["images"] > 0
    # a normal bundle: the evaluate command takes it
    assert main(["evaluate", "--model", str(tmp_path / "fed" / "bundle"), "--data",
                 str(fed_data), "--out", str(tmp_path / "eval"), "--no-gallery"]) == 0
    assert (tmp_path / "eval" / "metrics.json").is_file()


def test_a_site_dropping_out_mid_round_does_not_stop_it(fed_data, fed_config, tmp_path):
    cfg = fed_config(fed_data, tmp_path / "fed")
    simulate(cfg, sites=3, partition="dirichlet:0.5", rounds=2, local_epochs=1,
             strategy="fedprox", proximal_mu=0.1, min_fit_clients=2, drop={1: {1}})
    rounds = json.loads((tmp_path / "fed" / "rounds.json").read_text())
    assert (rounds[1]["sites_ok"], rounds[1]["failures"]) == (2, 1)
    assert "dropped out of round 1" in rounds[1]["failure_reasons"][0]
    assert (rounds[2]["sites_ok"], rounds[2]["failures"]) == (3, 0)
    card = load_bundle(tmp_path / "fed" / "bundle").card
    assert card["federated"]["strategy"] == "fedprox" and card["federated"]["proximal_mu"] == 0.1


def test_cli_simulate_fine_tunes_a_two_class_task(fed_data, tmp_path, capsys):
    """``--init-from`` with a changed class list, through the federated command."""
    from braintumor.data.preprocess import PreprocessConfig
    from braintumor.models import create_model, save_bundle

    parent = save_bundle(create_model("braintumor-net", num_classes=4, image_size=32),
                         tmp_path / "parent", model_name="braintumor-net", classes=FOUR,
                         preprocess=PreprocessConfig(image_size=32))
    rc = main(["federated", "simulate", "--data", str(fed_data), "--out", str(tmp_path / "f"),
               "--image-size", "32", "--batch-size", "8", "--sites", "2", "--rounds", "1",
               "--init-from", str(parent), "--num-threads", "1",
               "--custom-classes", "tumour=glioma+meningioma+pituitary,notumor=notumor"])
    assert rc == 0, capsys.readouterr().err
    card = load_bundle(tmp_path / "f" / "bundle").card
    assert card["classes"] == ["tumour", "notumor"]
    assert card["federated"]["parent"]["weights_sha256"] == load_bundle(parent).checksum
    assert "replaced" in card["federated"]["parent"]["classifier"]


def test_cli_reports_bad_partition(fed_data, tmp_path, capsys):
    rc = main(["federated", "simulate", "--data", str(fed_data), "--out", str(tmp_path / "f"),
               "--partition", "zipf"])
    assert rc == 2 and "expected iid, by-class or dirichlet:ALPHA" in capsys.readouterr().err
