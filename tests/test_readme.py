"""The README stays a one-page user guide whose commands, paths and figures are real.

It names `make` targets, files in the repository and measured figures; each of those can go
stale when something is renamed or re-measured, so this checks them against the Makefile,
the tree and the benchmark result files. The docs' relative links are checked too, since the
experiment log moved into docs/experiments/.
"""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from braintumor import DISCLAIMER

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
RESULTS = REPO / "benchmarks" / "results"
MAX_LINES = 150


def readme() -> str:
    return README.read_text(encoding="utf-8")


def test_readme_fits_one_page():
    n = len(readme().splitlines())
    assert n <= MAX_LINES, f"README.md has {n} lines; keep it to {MAX_LINES} (details go in docs/)"


def test_readme_keeps_the_disclaimer():
    assert DISCLAIMER in readme()


def test_every_make_target_it_names_exists():
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([A-Za-z][\w-]*):", makefile, flags=re.M))
    named = set(re.findall(r"\bmake ([a-z][\w-]*)", readme()))
    assert {"demo", "test"} <= named
    unknown = named - targets
    assert unknown == set(), f"README names make targets the Makefile lacks: {unknown}"


def test_every_repository_path_it_names_exists():
    # Paths in code spans or link targets, e.g. `configs/braintumor-net.yaml`, (docs/audit.md).
    paths = set(re.findall(r"(?<![\w./-])((?:configs|docs|benchmarks|scripts)/[\w./-]*[\w/])",
                           readme()))
    assert {p.split("/")[0] for p in paths} >= {"docs", "configs", "benchmarks"}
    missing = sorted(p for p in paths if not (REPO / p).exists())
    assert missing == [], f"README names paths that do not exist: {missing}"


def markdown_files() -> list[Path]:
    return [README, *sorted((REPO / "docs").rglob("*.md"))]


@pytest.mark.parametrize("doc", markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(doc):
    links = re.findall(r"\]\(([^)\s]+)\)", doc.read_text(encoding="utf-8"))
    local = [link.split("#")[0] for link in links if not re.match(r"[a-z]+:", link)]
    missing = [link for link in local if link and not (doc.parent / link).exists()]
    assert missing == [], f"{doc.relative_to(REPO)} links to missing files: {missing}"


def test_demo_block_names_the_bundled_weights():
    card = json.loads((REPO / "src" / "braintumor" / "weights" / "card.json").read_text())
    assert f"model braintumor-net (sha256 {card['weights']['sha256'][:12]}…)" in readme()


def _fmt(value: float, digits: int, scale: int = 1) -> str:
    """As the docs round: half up on the stored decimal (32.65 s is quoted as 32.7 s)."""
    return str((Decimal(str(value)) * scale).quantize(Decimal(1).scaleb(-digits), ROUND_HALF_UP))


def _result(name: str) -> dict:
    return json.loads((RESULTS / name).read_text(encoding="utf-8"))


def _accuracy() -> dict:
    return _result("accuracy.json")["results"][0]


def _latency(backend: str, key: str) -> str:
    row = _result("predict_latency.json")["results_by_threads"]["1"][backend][key]
    return f"p50 {_fmt(row['p50_ms'], 1)} ms, p95 {_fmt(row['p95_ms'], 1)} ms"


def _pointing_game() -> str:
    methods = _result("explain_evidence.json")["training_localisation"]["localisation"]["methods"]
    cam = next(m for m in methods if m["method"] == "gradcam")["overall"]
    return (f"{_fmt(cam['pointing_game'], 1, 100)} % (chance: "
            f"{_fmt(cam['random_pointing_game'], 1, 100)} % uniform, "
            f"{_fmt(cam['random_pointing_game_in_head'], 1, 100)} % inside the head)")


def _fine_tuning() -> str:
    rows = {r["run"]: r for r in _result("finetune.json")["rows"]}
    ft, sc = rows["four-class-0.1-fine-tune"], rows["four-class-0.1-scratch"]
    return (f"{_fmt(ft['test_accuracy'], 2, 100)} % vs {_fmt(sc['test_accuracy'], 2, 100)} % "
            f"(+{_fmt(ft['test_accuracy'] - sc['test_accuracy'], 1, 100)} points); leak-free "
            f"{_fmt(ft['leak_free_accuracy'], 2, 100)} % vs "
            f"{_fmt(sc['leak_free_accuracy'], 2, 100)} %")


# Each README figure that a committed result file holds, as the README prints it. A figure
# re-measured into benchmarks/results/ must be re-quoted in the README, and the other way round.
FIGURES = {
    "test accuracy": lambda: f"**{_fmt(_accuracy()['accuracy'], 2, 100)} %**",
    "test macro-F1": lambda: f"| {_fmt(_accuracy()['macro_f1'], 2, 100)} % (",
    "test errors": lambda: f"{_accuracy()['errors']} errors |",
    "latency": lambda: _latency("torch", "single_e2e"),
    "onnx latency": lambda: _latency("onnx", "single_e2e"),
    "grad-cam latency": lambda: _latency("torch", "gradcam_e2e"),
    "serve throughput": lambda: f"{_fmt(_result('serve_load.json')['throughput_rps'], 1)} req/s",
    "evaluate cold start": lambda: f"| {_fmt(_result('evaluate_speed.json')['cold_start_s'], 1)} s",
    "pointing game": _pointing_game,
    "explain under DICOM load":
        lambda: f"x{_result('serve_explain_dicom_lane.json')['p99_ratio']} (",
    "fine-tuning on 10 %": _fine_tuning,
    "training throughput":
        lambda: f"{_fmt(_result('train_throughput.json')['speedup_vs_conventional'], 2)}x",
}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_figures_match_their_result_files(name):
    expected = FIGURES[name]()
    assert expected in readme(), f"{name}: README should quote {expected!r}"
