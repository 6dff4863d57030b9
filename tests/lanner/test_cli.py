# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import argparse

from lanner.cli import COMMAND_OWNERS, build_parser


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def test_every_command_has_a_known_owner_module() -> None:
    assert _commands(build_parser()) == set(COMMAND_OWNERS)


def test_each_owner_defines_its_commands() -> None:
    for command, module in COMMAND_OWNERS.items():
        assert command in _commands(build_parser(module)), (command, module)
