# SPDX-License-Identifier: Apache-2.0
"""The gRPC server lifecycle every service shares: health, reflection, background tasks, graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from lanner import keepalive
from lanner.metrics import start_metrics_server
from lanner.pki import PipelineTls

log = logging.getLogger(__name__)

# Largest message a service accepts; bigger ones are refused by gRPC with RESOURCE_EXHAUSTED, naming the size.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
_SIZES = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
)


def client_options() -> tuple[tuple[str, int], ...]:
    """Options of every channel between Lanner services (keepalive agrees with ``server_options``)."""
    return _SIZES + keepalive.client_options()


def server_options() -> tuple[tuple[str, int], ...]:
    """Options of every Lanner gRPC server. No SO_REUSEPORT: gRPC sets it by default, which lets a second
    instance bind the same port beside a running one and split the connections between them; without it a
    port in use is a start-up error."""
    return (*_SIZES, *keepalive.server_options(), ("grpc.so_reuseport", 0))


Register = Callable[[grpc.aio.Server], Sequence[str]]
Background = Callable[[], Awaitable[None]]


class ServiceStartError(Exception):
    """The service could not start (for example its port is taken)."""


class ServiceCrashed(Exception):
    """A background task of the service failed; the service stopped so that its supervisor restarts it."""


async def run_service(
    name: str,
    bind: str,
    register: Register,
    *,
    background: Sequence[Background] = (),
    on_stop: Sequence[Background] = (),
    grace: float = 1.0,
    metrics_bind: str = "",
    stop_event: asyncio.Event | None = None,
    ready: Callable[[], bool] | None = None,
    stopping: Sequence[Callable[[], None]] = (),
    tls: PipelineTls | None = None,
    reflection_enabled: bool = False,
) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop_event``), then stop gracefully.

    ``register`` adds the servicers and returns their full service names, which get health status (and
    reflection, with ``reflection_enabled``).
    ``grace`` bounds the wait for open streams at a stop: upstream senders spill what is unacked, so
    a short stop loses nothing. ``ready`` (polled every second) turns health to NOT_SERVING while it returns
    False, for example while a dependency such as Redis is away, so probes see it. ``stopping`` callbacks run
    first when the stop begins (the collector starts detaching its probes there, which takes a while). With
    ``tls`` the port serves only mutual TLS with peers of the pipeline CA (``lanner.pki``).
    Background coroutines run beside the server and are cancelled at shutdown; ``on_stop`` callbacks then run in
    reverse order, so resources close in the reverse of the order they were opened. If a background task failed,
    ServiceCrashed is raised after the stop, so the process exits non-zero.
    """
    server = grpc.aio.server(options=server_options())
    service_names = list(register(server))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if reflection_enabled:
        # Off by default: reflection hands anyone who reaches the port a map of every method to probe.
        reflection.enable_server_reflection(
            [*service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
            server,
        )
    try:
        start_metrics_server(metrics_bind)
    except OSError as exc:
        raise ServiceStartError(f"{name}: cannot serve metrics on {metrics_bind}: {exc.strerror or exc}") from None
    try:
        port = server.add_secure_port(bind, tls.server_credentials()) if tls else server.add_insecure_port(bind)
    except RuntimeError as exc:
        raise ServiceStartError(f"{name}: cannot listen on {bind}: {exc}") from None
    if port == 0 and not bind.startswith("unix:"):
        raise ServiceStartError(f"{name}: cannot listen on {bind}: address in use")
    await server.start()
    for svc in ["", *service_names]:
        await health_servicer.set(svc, health_pb2.HealthCheckResponse.SERVING)
    log.info("service started", extra={"service_name": name, "bind": bind, "port": port, "mtls": tls is not None})

    stop = stop_event or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    failures: list[str] = []
    tasks = [asyncio.create_task(_supervise(name, fn, stop, failures)) for fn in background]
    if ready is not None:
        tasks.append(asyncio.create_task(_watch_ready(name, ready, health_servicer, ["", *service_names])))
    try:
        await stop.wait()
    finally:
        log.info("service stopping", extra={"service_name": name})
        for begin in stopping:
            begin()
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
    if failures:
        raise ServiceCrashed(f"{name}: {failures[0]}")


async def _supervise(name: str, fn: Background, stop: asyncio.Event, failures: list[str]) -> None:
    """Run a background task; if it fails, log why (with the traceback: it is a bug) and stop the service so the
    supervisor restarts it."""
    task = getattr(fn, "__qualname__", repr(fn))
    try:
        await fn()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.error(
            "background task failed; stopping service",
            extra={
                "service_name": name,
                "task": task,
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
            },
        )
        failures.append(f"{task} failed: {type(exc).__name__}: {exc}")
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
