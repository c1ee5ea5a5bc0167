"""Command-line inputs: one expansion and one naming rule for predict and explain."""

from __future__ import annotations

from braintumor.data.inputs import OutputNames, expand_inputs


def test_folders_are_searched_named_files_kept_and_bad_paths_reported(tmp_path):
    scans = tmp_path / "scans"
    (scans / "sub").mkdir(parents=True)
    for rel in ("b.png", "sub/a.jpg", ".hidden.png", "notes.txt"):
        (scans / rel).write_bytes(b"x")
    named = tmp_path / "report.txt"  # any extension: the reader judges it by content
    named.write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    files, failures = expand_inputs([str(scans), str(named), str(tmp_path / "nope.png"),
                                     str(tmp_path / "empty"), str(scans / "b.png")])
    assert files == [str(scans / "b.png"), str(scans / "sub" / "a.jpg"), str(named)]
    assert failures[0] == (str(tmp_path / "nope.png"), "no such file or folder")
    assert failures[1][0] == str(tmp_path / "empty")
    assert failures[1][1].startswith("folder holds no image files (.bmp, .dcm")
    assert len(failures) == 2


def test_a_named_file_keeps_the_spelling_it_was_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.png").write_bytes(b"x")
    assert expand_inputs(["./a.png", "a.png"]) == (["./a.png"], [])


def test_output_names_number_a_repeated_stem():
    names = OutputNames()
    assert [names("scan", ".png"), names("scan", ".png"), names("scan", ".jpg.png"),
            names("scan", ".png")] == ["scan.png", "scan_2.png", "scan.jpg.png", "scan_3.png"]
