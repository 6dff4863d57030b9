# SPDX-License-Identifier: Apache-2.0
"""``lanner ruleengine``: run the rule engine service."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    from ruleengine.server import main_from_args

    return main_from_args(args)


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("ruleengine", help="run the rule engine service (Falco rules over enriched events)")
    p.add_argument("--config", "-c", metavar="FILE", help="lanner YAML config")
    p.add_argument(
        "--rules",
        "-r",
        action="append",
        metavar="FILE",
        help="rules file or directory (repeatable, in order); default: the project's rules/",
    )
    p.set_defaults(func=_run)
