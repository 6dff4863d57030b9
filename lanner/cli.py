# SPDX-License-Identifier: Apache-2.0
"""The ``lanner`` command: ``lanner up`` runs everything; every service and tool is a subcommand."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
from collections.abc import Sequence
from typing import Any

# Each stage contributes its own subcommands; the CLI never needs editing when one is added.
COMMAND_MODULES = (
    "lanner.up",
    "lanner.certs_cli",
    "collector.cli",
    "enricher.cli",
    "ruleengine.cli",
    "ruleengine.service_cli",
    "ruleengine.fields_cli",
    "dispatcher.cli",
    "dispatcher.routes_cli",
    "dispatcher.dead_cli",
    "dispatcher.tokens_cli",
)


# Which module defines which command. Running one service imports only its own module, so its process (and its
# /metrics) carries nothing of the other stages. A command missing here still works: all modules load then.
COMMAND_OWNERS = {
    "up": "lanner.up",
    "certs": "lanner.certs_cli",
    "collector": "collector.cli",
    "enricher": "enricher.cli",
    "healthcheck": "enricher.cli",
    "rules": "ruleengine.cli",
    "replay": "ruleengine.cli",
    "record": "ruleengine.cli",
    "ruleengine": "ruleengine.service_cli",
    "fields": "ruleengine.fields_cli",
    "dispatcher": "dispatcher.cli",
    "subscribe": "dispatcher.cli",
    "routes": "dispatcher.routes_cli",
    "alerts": "dispatcher.dead_cli",
    "tokens": "dispatcher.tokens_cli",
}


SERVICE_COMMANDS = frozenset({"collector", "enricher", "ruleengine", "dispatcher"})

# Placeholders by what the value is, so every command spells the same kind of value the same way in its help.
METAVARS = {
    "config": "FILE",
    "rules": "FILE",
    "redis_url": "URL",
    "redis_port": "PORT",
    "state_dir": "DIR",
    "target": "HOST:PORT",
    "priority": "PRIORITY",
    "min_priority": "PRIORITY",
    "rule": "RULE",
    "tag": "TAG",
    "source": "SOURCE",
    "name": "NAME",
    "hostname": "NAME",
}


def version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("lanner")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout without installing
        return "unknown"


class _VersionAction(argparse.Action):
    """``--version``, looked up only when asked for: reading the installed metadata costs every command ~40 ms of
    CPU (a whole replay of 10k events)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(
            option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show program's version number and exit"
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        print(f"lanner {version()}")
        parser.exit()


def _tidy(parser: argparse.ArgumentParser) -> None:
    """Every (sub)command's page opens with its one-line summary, and value placeholders follow METAVARS."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            summaries = {a.dest: a.help for a in action._choices_actions}
            for name, subparser in action.choices.items():
                if not subparser.description and summaries.get(name):
                    subparser.description = str(summaries[name])[:1].upper() + str(summaries[name])[1:] + "."
                _tidy(subparser)
        elif action.option_strings and action.nargs != 0 and action.metavar is None and action.choices is None:
            action.metavar = METAVARS.get(action.dest, action.dest.upper())


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lanner",
        description="Lanner: runtime threat detection (eBPF -> enrichment -> Falco rules -> alert delivery).",
    )
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in [only] if only else COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        module.add_commands(sub)
    _tidy(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    owner = COMMAND_OWNERS.get(argv[0]) if argv else None
    parser = build_parser(owner)
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the last line of defence: a clear message, not a traceback
        from lanner.config import ConfigError

        if isinstance(exc, ConfigError):
            print(f"lanner: config error: {exc}", file=sys.stderr)
            return 2
        logging.getLogger("lanner").debug("unhandled error", exc_info=True)
        if args.command in SERVICE_COMMANDS:
            # A service that dies of a bug leaves its traceback in its log (its stderr) and exits non-zero.
            traceback.print_exc()
        print(f"lanner {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
