# SPDX-License-Identifier: Apache-2.0
"""Help that helps: every command and subcommand has a one-line summary and a description, every option and
argument says what it is, value placeholders are upper case, and ``lanner --version`` works."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from lanner.cli import build_parser, main


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, str | None]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            summaries = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield (*path, name), sub, summaries.get(name)
                yield from commands(sub, (*path, name))


ALL = list(commands(build_parser()))


def test_every_command_is_covered() -> None:
    names = {" ".join(p) for p, _, _ in ALL}
    assert {"up", "collector check", "rules validate", "subscribe", "replay", "fields"} <= names


@pytest.mark.parametrize(("path", "parser", "summary"), ALL, ids=[" ".join(p) for p, _, _ in ALL])
def test_command_help(path: tuple[str, ...], parser: argparse.ArgumentParser, summary: str | None) -> None:
    assert summary and "\n" not in summary, f"lanner {' '.join(path)}: no one-line summary"
    assert parser.description, f"lanner {' '.join(path)}: no description"
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        what = f"lanner {' '.join(path)} {'/'.join(action.option_strings) or action.dest}"
        assert action.help, f"{what}: no help"
        if action.nargs != 0 and action.choices is None:
            metavar = action.metavar if isinstance(action.metavar, str) else action.dest
            stem = metavar.split(".", 1)[0]  # FILE, HOST:PORT; a file kind keeps its extension: TESTS.yaml
            assert stem == stem.upper(), f"{what}: metavar {metavar}"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("lanner ")
