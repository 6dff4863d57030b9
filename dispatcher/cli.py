# SPDX-License-Identifier: Apache-2.0
"""``lanner dispatcher`` (run the service) and ``lanner subscribe`` (print alerts as they arrive)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from lanner.config import ConfigError


def _run_dispatcher(args: argparse.Namespace) -> int:
    from dispatcher import config as dconfig
    from dispatcher.server import serve
    from lanner.logs import setup_logging
    from lanner.server import ServiceStartError, run

    try:
        cfg, specs = dconfig.load(args.config)
    except ConfigError as exc:
        print(f"lanner dispatcher: config error: {exc}", file=sys.stderr)
        return 2
    setup_logging("dispatcher", cfg.log_level)
    try:
        run(serve(cfg, specs))
    except ConfigError as exc:
        print(f"lanner dispatcher: config error: {exc}", file=sys.stderr)
        return 2
    except ServiceStartError as exc:
        print(f"lanner dispatcher: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


def _run_subscribe(args: argparse.Namespace) -> int:
    import time

    from dispatcher.client import parse_duration, run_subscribe, subscribe_request
    from dispatcher.matchers import MatcherError, parse_matchers
    from dispatcher.model import Priority

    try:
        prio = Priority.parse(args.min_priority) if args.min_priority else None
    except ValueError as exc:
        print(f"lanner subscribe: --min-priority: {exc}", file=sys.stderr)
        return 2
    try:
        since_ms = int((time.time() - parse_duration(args.since)) * 1000) if args.since else 0
    except ValueError as exc:
        print(f"lanner subscribe: --since: {exc}", file=sys.stderr)
        return 2
    try:
        parse_matchers(args.filter, "--filter")
    except MatcherError as exc:
        print(f"lanner subscribe: {exc}", file=sys.stderr)
        return 2
    req = subscribe_request(
        prio,
        args.rule,
        args.tag,
        args.source,
        args.name,
        from_cursor=args.from_cursor,
        since_unix_ms=since_ms,
        filters=args.filter,
        fields=args.field,
    )
    token = os.environ.get("LANNER_TOKEN", "")
    if args.token_file:
        try:
            with open(args.token_file, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as exc:
            print(f"lanner subscribe: --token-file: {args.token_file}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    return run_subscribe(args.target, req, args.json, tls_dir=args.tls_dir, token=token)


def add_commands(subparsers: Any) -> None:
    """Add ``dispatcher`` and ``subscribe`` to the ``lanner`` command."""
    p = subparsers.add_parser("dispatcher", help="run the alert dispatcher service")
    p.add_argument("--config", "-c", default=None, help="YAML config file (section 'dispatcher')")
    p.set_defaults(func=_run_dispatcher)

    s = subparsers.add_parser(
        "subscribe", help="print alerts from a dispatcher as they arrive (reconnects and resumes on its own)"
    )
    s.add_argument("--target", default="127.0.0.1:7704", help="dispatcher address HOST:PORT")
    s.add_argument("--json", action="store_true", help="print Falco JSON lines instead of text lines")
    s.add_argument(
        "--tls-dir", default="", metavar="DIR", help="pipeline TLS material (lanner certs init) when mTLS is on"
    )
    s.add_argument(
        "--token-file", default="", metavar="FILE", help="bearer token for Subscribe (default: $LANNER_TOKEN)"
    )
    s.add_argument("--min-priority", default="", help="only alerts at least this severe (e.g. warning)")
    s.add_argument("--rule", action="append", default=[], help="only this rule (repeatable)")
    s.add_argument("--tag", action="append", default=[], help="only alerts with this tag (repeatable)")
    s.add_argument("--source", action="append", default=[], help="only this source (repeatable)")
    s.add_argument("--name", default="lanner-subscribe", help="subscriber name used in metrics")
    s.add_argument("--from-cursor", default="", metavar="CURSOR", help="first replay what came after this cursor")
    s.add_argument("--since", default="", metavar="DURATION", help="first replay the last DURATION (10m, 2h, 1d)")
    s.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="only alerts matching FIELD OP VALUE, OP one of = != ~ (glob) !~ (repeatable; all must match)",
    )
    s.add_argument("--field", action="append", default=[], metavar="FIELD", help="only send these output fields")
    s.set_defaults(func=_run_subscribe)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m dispatcher``: the same as ``lanner dispatcher``."""
    parser = argparse.ArgumentParser(prog="python -m dispatcher")
    parser.add_argument("--config", "-c", default=None, help="YAML config file (section 'dispatcher')")
    return _run_dispatcher(parser.parse_args(argv))
