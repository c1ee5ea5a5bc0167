"""Every subcommand and every option says what it does in ``--help``."""

from __future__ import annotations

import argparse

from braintumor.cli import build_parser


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, helps.get(name), sub


def test_every_subcommand_and_option_has_a_help_text():
    missing = []
    for name, help_text, sub in _subparsers(build_parser()):
        if not (help_text or "").strip():
            missing.append(name)
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert missing == [], f"no help text: {missing}"
