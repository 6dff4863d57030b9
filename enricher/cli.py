# SPDX-License-Identifier: Apache-2.0
"""``lanner enricher`` (the service) and ``lanner healthcheck`` (a gRPC health probe for container health checks)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lanner.config import ConfigError


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


def check_health(target: str, service: str = "", timeout_s: float = 3.0) -> tuple[bool, str]:
    """(healthy, status text) from the standard grpc.health.v1 Check of ``service`` at ``target``."""
    try:
        with grpc.insecure_channel(target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
    except grpc.RpcError as exc:
        code = exc.code() if hasattr(exc, "code") else None
        name = code.name if code is not None else "ERROR"
        return False, f"{name}: {exc.details() if hasattr(exc, 'details') else exc}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
    return resp.status == health_pb2.HealthCheckResponse.SERVING, status


def cmd_healthcheck(args: argparse.Namespace) -> int:
    """Exit 0 when the target reports SERVING, 1 otherwise; one status line on stdout either way."""
    healthy, status = check_health(args.target, args.service, args.timeout)
    label = args.service or "(server)"
    print(f"{args.target} {label}: {status}")
    return 0 if healthy else 1


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``enricher`` and ``healthcheck`` on the ``lanner`` command."""
    p = sub.add_parser("enricher", help="run the enricher (container and pod metadata from Docker/CRI, Redis cache)")
    p.add_argument("--config", "-c", metavar="FILE", help="lanner YAML config (section 'enricher')")
    p.set_defaults(func=cmd_enricher)

    h = sub.add_parser("healthcheck", help="probe a Lanner service's gRPC health endpoint (exit 0 when SERVING)")
    h.add_argument("--target", required=True, metavar="HOST:PORT", help="gRPC address, e.g. 127.0.0.1:7702")
    h.add_argument(
        "--service", default="", metavar="NAME", help="full gRPC service name, e.g. lanner.v1.EnricherService"
    )
    h.add_argument("--timeout", type=float, default=3.0, metavar="S", help="seconds to wait (default 3)")
    h.set_defaults(func=cmd_healthcheck)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m enricher``: the enricher service."""
    parser = argparse.ArgumentParser(prog="python -m enricher")
    parser.add_argument("--config", "-c", metavar="FILE")
    return cmd_enricher(parser.parse_args(argv))
