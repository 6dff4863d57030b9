# SPDX-License-Identifier: Apache-2.0
"""``lanner routes test ALERT.json``: which outputs an alert would reach, and through which route."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from dispatcher.convert import AlertError, alert_from_pb
from lanner.config import ConfigError


def explain(config: str | None, alert_text: str, out: TextIO) -> int:
    """Print one line per enabled output: where the alert goes and why, or why not. 0 if it reaches any."""
    from dispatcher import config as dconfig
    from dispatcher.falco_in import alert_from_falco_text
    from dispatcher.routetree import parse_tree, resolve

    cfg, specs = dconfig.load(config)
    tree = parse_tree(cfg.routes, [s.name for s in specs])
    alert = alert_from_pb(alert_from_falco_text(alert_text))
    nodes = resolve(tree, alert) if tree is not None else []
    reached = 0
    for spec in specs:
        via = [n.label for n in nodes if spec.name in n.outputs]
        if tree is not None and not via:
            out.write(f"{spec.name}: no (no route sends it here)\n")
        elif not spec.driver.route.matches(alert):
            out.write(f"{spec.name}: no (the output's own min_priority/rules/tags/sources filter)\n")
        else:
            reached += 1
            out.write(f"{spec.name}: yes" + (f" via {', '.join(via)}" if via else "") + "\n")
    return 0 if reached else 1


def _run_test(args: argparse.Namespace) -> int:
    try:
        text = sys.stdin.read() if args.alert == "-" else Path(args.alert).read_text()
        return explain(args.config, text, sys.stdout)
    except OSError as exc:
        print(f"lanner routes test: {args.alert}: {exc.strerror or exc}", file=sys.stderr)
    except AlertError as exc:
        print(f"lanner routes test: {args.alert}: {exc}", file=sys.stderr)
    except ConfigError as exc:
        print(f"lanner routes test: config error: {exc}", file=sys.stderr)
    return 2


def add_commands(subparsers: Any) -> None:
    """Add ``routes test`` to the ``lanner`` command."""
    p = subparsers.add_parser("routes", help="inspect the dispatcher's routing tree")
    sub = p.add_subparsers(dest="routes_command", metavar="SUBCOMMAND", required=True)
    t = sub.add_parser("test", help="print which outputs an alert (Falco JSON) would reach")
    t.add_argument("alert", metavar="ALERT.json", help="one Falco JSON alert ('-' reads standard input)")
    t.add_argument("--config", "-c", default=None, metavar="FILE", help="YAML config file (section 'dispatcher')")
    t.set_defaults(func=_run_test)
