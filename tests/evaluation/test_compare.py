import json

import pytest

from braintumor.cli import main
from braintumor.evaluation.compare import format_table, row_from_metrics


def test_compare_reads_evaluation_folders_and_evaluates_bundles(evaluated, make_bundle,
                                                                tmp_path, cache_root, capsys):
    other = make_bundle(tmp_path / "net", name="braintumor-net", seed=1)
    rc = main(["compare", str(evaluated["out"]), str(other), "--data", str(evaluated["data"]),
               "--format", "json"])
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)
    saved = json.loads((evaluated["out"] / "metrics.json").read_text())
    first, second = rows
    assert first["model"] == "paper-cnn" and second["model"] == "braintumor-net"
    assert first["accuracy"] == saved["accuracy"]
    assert first["leak_free_accuracy"] == saved["leak_free"]["accuracy"]
    assert second["n_images"] == first["n_images"] == 20
    assert second["params_m"] > 0 and second["gflops"] > 0
    # No audit JSON for the bundle: compare ran the audit itself, which finds no duplicate
    # among the distinct synthetic slices (the evaluation folder's audit JSON named 3).
    assert first["leak_free_n"] == 17
    assert second["leak_free_n"] == 20


def test_table_and_markdown_formats(evaluated):
    m = json.loads((evaluated["out"] / "metrics.json").read_text())
    rows = [row_from_metrics("eval-a", m), row_from_metrics("eval-b", {**m, "accuracy": None})]
    md = format_table(rows, "markdown").splitlines()
    assert md[0].startswith("| run | model | images | accuracy | macro-F1 | ROC-AUC |")
    assert len(md) == 4 and md[1].startswith("| --- | --- | ---: |")
    assert f"{m['accuracy']:.2%}" in md[2] and "n/a" in md[3]
    table = format_table(rows, "table").splitlines()
    assert len({len(line) for line in table}) == 1  # aligned columns


def test_a_model_without_data_is_an_error(tiny_bundle, capsys, monkeypatch):
    monkeypatch.delenv("DATA", raising=False)  # --data defaults to $DATA, which CI sets
    assert main(["compare", str(tiny_bundle)]) == 1
    assert "--data is needed" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_printed_table_carries_the_disclaimer(evaluated, capsys, fmt):
    assert main(["compare", str(evaluated["out"]), "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert "paper-cnn" in out and "Research use only" in out
