# SPDX-License-Identifier: Apache-2.0
"""A gRPC health probe, light enough to run every few seconds as a container health check.

``python3 -m enricher.health --target HOST:PORT [--service NAME]`` imports only grpc (about 0.15 s), whereas the
full ``lanner healthcheck`` command loads every stage's CLI first. Exit 0 when the service reports SERVING.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lanner.pki import sync_channel


def check_health(target: str, service: str = "", timeout_s: float = 3.0, tls_dir: str = "") -> tuple[bool, str]:
    """(healthy, status text) from the standard grpc.health.v1 Check of ``service`` at ``target``."""
    try:
        with sync_channel(target, tls_dir) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
    except grpc.RpcError as exc:
        code = exc.code() if hasattr(exc, "code") else None
        name = code.name if code is not None else "ERROR"
        return False, f"{name}: {exc.details() if hasattr(exc, 'details') else exc}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
    return resp.status == health_pb2.HealthCheckResponse.SERVING, status


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The probe's options (shared by ``lanner healthcheck``)."""
    parser.add_argument("--target", required=True, metavar="HOST:PORT", help="gRPC address, e.g. 127.0.0.1:7702")
    parser.add_argument(
        "--service", default="", metavar="NAME", help="full gRPC service name, e.g. lanner.v1.EnricherService"
    )
    parser.add_argument("--timeout", type=float, default=3.0, metavar="S", help="seconds to wait (default 3)")
    parser.add_argument("--tls-dir", default="", metavar="DIR", help="pipeline TLS material when mTLS is on")


def probe(args: argparse.Namespace) -> int:
    """Print one status line; 0 when SERVING, 1 otherwise."""
    healthy, status = check_health(args.target, args.service, args.timeout, args.tls_dir)
    print(f"{args.target} {args.service or '(server)'}: {status}")
    return 0 if healthy else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m enricher.health``."""
    parser = argparse.ArgumentParser(prog="python -m enricher.health", description=__doc__)
    add_arguments(parser)
    return probe(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
