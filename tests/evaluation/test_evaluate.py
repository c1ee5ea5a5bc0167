import csv
import hashlib
import json

import numpy as np
import pytest

from braintumor.cli import main

TOP_KEYS = {"accuracy", "macro_f1", "weighted_f1", "roc_auc_macro", "n_images", "per_class",
            "confusion_matrix", "classes", "tumor_vs_no_tumor", "calibration", "ci95",
            "leak_free", "model", "failed"}


def test_evaluate_writes_the_files_and_every_key(evaluated):
    out = evaluated["out"]
    for name in ("metrics.json", "report.html", "predictions.csv", "confusion_matrix.png",
                 "roc.png", "precision_recall.png", "reliability.png"):
        assert (out / name).stat().st_size > 0, name
    m = json.loads((out / "metrics.json").read_text(),  # strict JSON: no NaN/Infinity
                   parse_constant=lambda c: pytest.fail(f"{c} in metrics.json"))
    assert TOP_KEYS <= set(m)
    assert m["n_images"] == 20  # 5 per class; the broken file is left out and reported
    assert [p for p, _ in m["failed"]] == [str(evaluated["broken"])]
    assert m["classes"] == ["glioma", "meningioma", "notumor", "pituitary"]
    for c in m["classes"]:
        assert set(m["per_class"][c]) == {"precision", "recall", "f1", "support", "roc_auc"}
        assert m["per_class"][c]["support"] == 5
    assert np.array(m["confusion_matrix"]).sum() == 20
    assert set(m["tumor_vs_no_tumor"]) >= {"sensitivity", "specificity"}
    cal = m["calibration"]
    assert cal["temperature"] == pytest.approx(1.7)
    assert 0 <= cal["ece_before"] <= 1 and 0 <= cal["ece_after"] <= 1
    for key in ("accuracy", "macro_f1"):
        lo, hi = m["ci95"][key]
        assert lo <= m[key] <= hi

    lf = m["leak_free"]
    assert lf["available"] and lf["n_excluded"] == 3 and lf["n_images"] == 17
    assert {"accuracy", "macro_f1", "roc_auc_macro"} <= set(lf)

    weights = (evaluated["bundle"] / "model.safetensors").read_bytes()
    assert m["model"]["checksum"] == hashlib.sha256(weights).hexdigest()
    assert m["model"]["name"] == "paper-cnn" and m["model"]["card"]["classes"] == m["classes"]
    assert m["model"]["parameters"] > 0 and m["model"]["gflops"] > 0


def test_predictions_are_calibrated_probabilities_that_agree_with_the_metrics(evaluated):
    m = json.loads((evaluated["out"] / "metrics.json").read_text())
    with (evaluated["out"] / "predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    probs = np.array([[float(r[f"p_{c}"]) for c in m["classes"]] for r in rows])
    assert np.allclose(probs.sum(1), 1.0, atol=1e-5)
    correct = [r["label"] == r["predicted"] for r in rows]
    assert np.mean(correct) == pytest.approx(m["accuracy"])
    leaked = set(evaluated["leaked"])
    clean = [c for r, c in zip(rows, correct, strict=True) if r["path"] not in leaked]
    assert np.mean(clean) == pytest.approx(m["leak_free"]["accuracy"])


def test_gallery_shows_the_most_confident_mistakes(evaluated):
    m = json.loads((evaluated["out"] / "metrics.json").read_text())
    g = m["gallery"]
    wrong = sum(m["confusion_matrix"][i][j] for i in range(4) for j in range(4) if i != j)
    assert g["n_misclassified"] == wrong and g["n_shown"] == min(wrong, 24)
    assert all((evaluated["out"] / f).is_file() for f in g["files"])
    with (evaluated["out"] / "predictions.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["label"] != r["predicted"]]
    shown = [f.split("/", 1)[1][3:-4] for f in g["files"]]  # gallery/NN_<stem>.png
    confidences = sorted((float(r[f"p_{r['predicted']}"]) for r in rows), reverse=True)
    # The k-th image shown has the k-th highest confidence among the mistakes (compared by
    # value, as an untrained model can tie).
    for name, conf in zip(shown, confidences, strict=False):
        match = next(r for r in rows if r["path"].rsplit("/", 1)[-1].startswith(name + "."))
        assert float(match[f"p_{match['predicted']}"]) == pytest.approx(conf, abs=1e-6)


def test_run_directory_adds_training_curves(tmp_path, synthetic_dataset, make_bundle,
                                            cache_root):
    data = synthetic_dataset(n_per_class=2, size=40)
    run = tmp_path / "run"
    make_bundle(run / "bundle")
    (run / "metrics.csv").write_text(
        "epoch,train_loss,val_loss,val_acc,val_f1\n0,1.3,1.2,0.5,0.45\n1,0.9,1.0,0.6,0.58\n")
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", str(run), "--data", str(data), "--out", str(out),
                 "--no-gallery", "--audit", str(_empty_audit(tmp_path))]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert (out / "training_curves.png").stat().st_size > 0
    assert m["model"]["run_dir"] == str(run)
    assert m["gallery"] == {"enabled": False}
    assert m["leak_free"]["n_excluded"] == 0 and m["leak_free"]["n_images"] == 8


def _empty_audit(tmp_path):
    path = tmp_path / "audit.json"
    path.write_text(json.dumps({"leakage": {"test_with_train_duplicate": 0,
                                            "test_paths_with_train_duplicate": []}}))
    return path


def test_unknown_split_is_a_clear_error(tmp_path, synthetic_dataset, tiny_bundle, cache_root,
                                        capsys):
    data = synthetic_dataset(n_per_class=1, size=40, splits=("Training",))
    rc = main(["evaluate", "--model", str(tiny_bundle), "--data", str(data),
               "--out", str(tmp_path / "eval")])
    assert rc == 1
    assert "no split 'Testing'" in capsys.readouterr().err


def test_card_agreement_flags_figures_that_do_not_come_back():
    from braintumor.evaluation.evaluate import card_agreement

    card = {"metrics": {"validation": {"accuracy": 0.1},
                        "test": {"images": 20, "accuracy": 0.9, "macro_f1": 0.5}}}
    measured = {"n_images": 20, "accuracy": 0.9004, "macro_f1": 0.6, "roc_auc_macro": 0.9}
    rows = {r["metric"]: r["agrees"] for r in card_agreement(card, measured, "test")}
    assert rows == {"n_images": True, "accuracy": True, "macro_f1": False}
    assert card_agreement(card, measured, "train") == []  # the card states test figures only


def test_without_an_audit_json_the_audit_runs_and_is_reused(tmp_path, synthetic_dataset,
                                                           tiny_bundle, cache_root):
    from PIL import Image, ImageOps

    data = synthetic_dataset(n_per_class=3, size=64)
    train_img = sorted((data / "Training" / "pituitary").glob("*.png"))[0]
    leaked = data / "Testing" / "pituitary" / "mirrored_copy.png"
    ImageOps.mirror(Image.open(train_img)).save(leaked)  # a mirrored duplicate across splits

    runs = []
    for k in range(2):
        out = tmp_path / f"eval{k}"
        assert main(["evaluate", "--model", str(tiny_bundle), "--data", str(data),
                     "--out", str(out), "--no-gallery"]) == 0
        runs.append(json.loads((out / "metrics.json").read_text())["leak_free"])
    first, second = runs
    assert first["available"] and first["source"] == "computed"
    assert first["n_excluded"] == 1 and first["n_images"] == 12
    assert second["source"] == "computed (cached)"
    assert second["n_excluded"] == 1 and second["accuracy"] == first["accuracy"]
