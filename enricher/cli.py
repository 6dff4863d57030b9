# SPDX-License-Identifier: Apache-2.0
"""``lanner enricher`` (the service) and ``lanner healthcheck`` (a gRPC health probe for container health checks)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from enricher.health import add_arguments, check_health, probe
from lanner.config import ConfigError

__all__ = ["add_commands", "check_health", "cmd_enricher", "main"]


def cmd_enricher(args: argparse.Namespace) -> int:
    """Run the enricher service."""
    from enricher.config import load_config
    from enricher.server import serve
    from lanner.logs import setup_logging
    from lanner.server import ServiceStartError, run

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"lanner enricher: config error: {exc}", file=sys.stderr)
        return 2
    setup_logging("enricher", cfg.log_level)
    try:
        run(serve(cfg))
    except ServiceStartError as exc:
        print(f"lanner enricher: {exc}", file=sys.stderr)
        return 1
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``enricher`` and ``healthcheck`` on the ``lanner`` command."""
    p = sub.add_parser("enricher", help="run the enricher (container and pod metadata from Docker/CRI, Redis cache)")
    p.add_argument("--config", "-c", metavar="FILE", help="lanner YAML config (section 'enricher')")
    p.set_defaults(func=cmd_enricher)

    h = sub.add_parser("healthcheck", help="probe a Lanner service's gRPC health endpoint (exit 0 when SERVING)")
    add_arguments(h)
    h.set_defaults(func=probe)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m enricher``: the enricher service."""
    parser = argparse.ArgumentParser(prog="python -m enricher")
    parser.add_argument("--config", "-c", metavar="FILE")
    return cmd_enricher(parser.parse_args(argv))
