"""The package layer order (CONTRIBUTING.md): no module imports from a package above its own.

Read from the source with ``ast`` rather than by importing, so that lazy imports inside
functions count too (they are how the CLI keeps start-up fast, and an upward one is as much a
tangle as one at the top of a file).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "braintumor"

# Lowest first. A package may import its own modules and those of any layer below it.
LAYERS = [
    ("__init__", "_warnings_lock"),  # the disclaimer, the version, one process-wide lock
    ("data",),
    ("models",),
    ("explain",),
    ("evaluation",),
    ("inference",),
    ("training",),
    ("federated",),  # Flower rounds over the training package's model, loss and splits
    ("serve",),
    ("cli", "__main__"),
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _unit(path: Path, root: Path = PACKAGE) -> str:
    """The layer unit a module belongs to: its subpackage, or its own name at the top."""
    rel = path.relative_to(root)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imported_units(path: Path, root: Path = PACKAGE) -> list[tuple[int, str, str]]:
    """(line, unit, module) for every braintumor import in ``path``, relative ones resolved.

    ``from braintumor import DISCLAIMER`` counts as an import of ``__init__``; ``from
    braintumor import serve`` as one of ``serve``.
    """
    package = ["braintumor", *path.relative_to(root).parts[:-1]]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join(base + ([node.module] if node.module else []))
            names = [f"{name}.{a.name}" for a in node.names] if name == "braintumor" else [name]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] != "braintumor":
                continue
            top = parts[1] if len(parts) > 1 else "__init__"
            is_unit = (root / top).is_dir() or (root / f"{top}.py").is_file()
            found.append((node.lineno, top if is_unit else "__init__", name))
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_unit_has_a_layer():
    units = {_unit(p) for p in MODULES}
    assert units <= set(RANK), f"give these a layer in LAYERS: {sorted(units - set(RANK))}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_upward_import(path):
    own = _unit(path)
    upward = [f"line {line}: {module} ({unit} is above {own})"
              for line, unit, module in _imported_units(path)
              if unit != own and RANK[unit] > RANK[own]]
    assert not upward, f"{path.relative_to(PACKAGE)} imports upward: " + "; ".join(upward)


def test_the_check_reads_lazy_relative_and_package_imports(tmp_path):
    """Guard the guard: an import inside a function, a relative one and ``from braintumor
    import <package>`` are all seen, each as the unit it reaches."""
    root = tmp_path / "braintumor"
    for sub in ("data", "serve"):
        (root / sub).mkdir(parents=True)
    (root / "cli.py").write_text("")
    module = root / "data" / "m.py"
    module.write_text("from ..serve import app\nfrom braintumor import DISCLAIMER, serve\n\n"
                      "def f():\n    import braintumor.cli\n")
    assert sorted((u, m) for _, u, m in _imported_units(module, root)) == [
        ("__init__", "braintumor.DISCLAIMER"), ("cli", "braintumor.cli"),
        ("serve", "braintumor.serve"), ("serve", "braintumor.serve")]
