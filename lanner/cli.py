# SPDX-License-Identifier: Apache-2.0
"""The ``lanner`` command: ``lanner up`` runs everything; every service and tool is a subcommand."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# Each stage contributes its own subcommands; the CLI never needs editing when one is added.
COMMAND_MODULES = (
    "lanner.up",
    "collector.cli",
    "enricher.cli",
    "ruleengine.cli",
    "ruleengine.service_cli",
    "ruleengine.fields_cli",
    "dispatcher.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lanner",
        description="Lanner: runtime threat detection (eBPF -> enrichment -> Falco rules -> alert delivery).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        module.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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
        print(f"lanner {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
