import json

import numpy as np

from braintumor.evaluation.leakage import Leakage, read_audit_json, split_by_leakage


def test_audit_paths_match_on_resolved_path_or_dataset_relative_tail(tmp_path):
    here = tmp_path / "data" / "Testing" / "glioma"
    here.mkdir(parents=True)
    (here / "a.jpg").write_bytes(b"")
    (tmp_path / "link").symlink_to(tmp_path / "data")
    audit = tmp_path / "audit.json"
    audit.write_text(json.dumps({"leakage": {
        "test_with_train_duplicate": 2,
        "test_paths_with_train_duplicate": [
            str(tmp_path / "link" / "Testing" / "glioma" / "a.jpg"),  # same file, other spelling
            "/elsewhere/brain-tumor-mri/Testing/glioma/b.jpg",  # made on another machine
        ]}}))
    leak = read_audit_json(audit)
    assert leak.available and leak.n_reported == 2
    paths = [str(here / "a.jpg"), str(here / "b.jpg"), str(here / "c.jpg"),
             str(tmp_path / "data" / "Testing" / "meningioma" / "b.jpg")]
    assert split_by_leakage(paths, leak).tolist() == [True, True, False, False]


def test_an_audit_without_the_leakage_list_is_unavailable_not_empty(tmp_path):
    audit = tmp_path / "audit.json"
    audit.write_text(json.dumps({"counts": {}}))
    leak = read_audit_json(audit)
    assert not leak.available and "test_paths_with_train_duplicate" in leak.reason
    assert not split_by_leakage(["x"], leak).any()


def test_from_paths_counts_what_it_was_given():
    leak = Leakage.from_paths(["/d/Testing/a/1.jpg", "/d/Testing/a/2.jpg"], "computed")
    assert leak.n_reported == 2
    assert split_by_leakage(["/d/Testing/a/2.jpg"], leak).tolist() == [True]
    assert isinstance(split_by_leakage([], leak), np.ndarray)


def test_twin_locations_says_whether_a_test_images_duplicate_was_trained_on():
    from braintumor.evaluation.leakage import (
        TWIN_FIT,
        TWIN_LEAK_FREE,
        TWIN_VAL,
        twin_locations,
    )

    group_of = {"/d/Tr/a.jpg": 1, "/d/Tr/b.jpg": 2, "/d/Tr/c.jpg": 2, "/d/Tr/e.jpg": 3,
                "/d/Te/1.jpg": 1, "/d/Te/2.jpg": 2, "/d/Te/3.jpg": 3, "/d/Te/4.jpg": 4}
    train_side = {"/d/Tr/a.jpg": "val", "/d/Tr/b.jpg": "val", "/d/Tr/c.jpg": "fit",
                  "/d/Tr/e.jpg": "fit"}
    tests = ["/d/Te/1.jpg", "/d/Te/2.jpg", "/d/Te/3.jpg", "/d/Te/4.jpg", "/d/Te/unknown.jpg"]
    # group 2 has one twin in each part: it was trained on, so memory can answer it
    assert twin_locations(tests, group_of, train_side) == [
        TWIN_VAL, TWIN_FIT, TWIN_FIT, TWIN_LEAK_FREE, TWIN_LEAK_FREE]
