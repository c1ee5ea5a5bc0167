import subprocess
import sys

from braintumor import __version__
from braintumor.cli import build_parser, main


def test_version_flag(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert __version__ in capsys.readouterr().out


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "braintumor", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == f"braintumor {__version__}"


def test_every_subcommand_names_an_importable_handler():
    import importlib

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        target = p.get_default("handler")
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), name
