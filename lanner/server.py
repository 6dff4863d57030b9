# SPDX-License-Identifier: Apache-2.0
"""The gRPC server lifecycle every service shares: health, reflection, background tasks, graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from lanner.metrics import start_metrics_server

log = logging.getLogger(__name__)

# Largest message a service accepts; bigger ones are refused by gRPC with RESOURCE_EXHAUSTED, naming the size.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
GRPC_OPTIONS = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.keepalive_permit_without_calls", 1),
)

Register = Callable[[grpc.aio.Server], Sequence[str]]
Background = Callable[[], Awaitable[None]]


class ServiceStartError(Exception):
    """The service could not start (for example its port is taken)."""


async def run_service(
    name: str,
    bind: str,
    register: Register,
    *,
    background: Sequence[Background] = (),
    on_stop: Sequence[Background] = (),
    grace: float = 5.0,
    metrics_bind: str = "",
    stop_event: asyncio.Event | None = None,
    ready: Callable[[], bool] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop_event``), then stop gracefully.

    ``register`` adds the servicers and returns their full service names, which get health status and
    reflection. ``ready`` (polled every second) turns health to NOT_SERVING while it returns False, for example
    while a dependency such as Redis is away, so probes see it. Background coroutines run beside the server and
    are cancelled at shutdown; ``on_stop`` callbacks then run in reverse order, so resources close in the reverse
    of the order they were opened.
    """
    server = grpc.aio.server(options=GRPC_OPTIONS)
    service_names = list(register(server))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [*service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server,
    )
    try:
        port = server.add_insecure_port(bind)
    except RuntimeError as exc:
        raise ServiceStartError(f"{name}: cannot listen on {bind}: {exc}") from None
    if port == 0 and not bind.startswith("unix:"):
        raise ServiceStartError(f"{name}: cannot listen on {bind} (address in use?)")
    await server.start()
    start_metrics_server(metrics_bind)
    for svc in ["", *service_names]:
        await health_servicer.set(svc, health_pb2.HealthCheckResponse.SERVING)
    log.info("service started", extra={"service_name": name, "bind": bind, "port": port})

    stop = stop_event or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    tasks = [asyncio.create_task(_supervise(name, fn, stop)) for fn in background]
    if ready is not None:
        tasks.append(asyncio.create_task(_watch_ready(name, ready, health_servicer, ["", *service_names])))
    try:
        await stop.wait()
    finally:
        log.info("service stopping", extra={"service_name": name})
        for svc in ["", *service_names]:
            await health_servicer.set(svc, health_pb2.HealthCheckResponse.NOT_SERVING)
        await server.stop(grace)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for callback in reversed(on_stop):
            try:
                await callback()
            except Exception:
                log.exception("error while stopping", extra={"service_name": name})
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        log.info("service stopped", extra={"service_name": name})


async def _supervise(name: str, fn: Background, stop: asyncio.Event) -> None:
    """Run a background task; if it fails, log why and stop the service so the supervisor restarts it."""
    try:
        await fn()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.error(
            "background task failed; stopping service",
            exc_info=True,
            extra={"service_name": name, "task": getattr(fn, "__qualname__", repr(fn)), "error": str(exc)},
        )
        stop.set()


async def _watch_ready(
    name: str, ready: Callable[[], bool], servicer: health.aio.HealthServicer, names: Sequence[str]
) -> None:
    serving = True
    while True:
        await asyncio.sleep(1.0)
        now = bool(ready())
        if now == serving:
            continue
        serving = now
        status = health_pb2.HealthCheckResponse.SERVING if now else health_pb2.HealthCheckResponse.NOT_SERVING
        for svc in names:
            await servicer.set(svc, status)
        log.warning("health changed", extra={"service_name": name, "serving": now})


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run the service's main coroutine on uvloop (the design card's event loop)."""
    import uvloop

    uvloop.run(main)
