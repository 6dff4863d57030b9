# SPDX-License-Identifier: Apache-2.0
"""The dispatcher's public listener (``public_bind``): Subscribe and health, never PushAlerts.

With ``tls_dir`` the main port (``bind``) speaks only mutual TLS, which suits the pipeline but not a person with
``lanner subscribe`` or a Kubernetes probe. The public listener serves those: it carries only the Subscribe API
(where ``tokens_file`` decides who sees what) and the standard health service, so no client of it can reach the
intake whatever it sends. It runs on its own gRPC server, so the intake's method table is simply not there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from dispatcher.config import DispatcherConfig
from lanner.netaddr import is_loopback
from lanner.pki import PipelineTls
from lanner.server import ServiceStartError, server_options

log = logging.getLogger(__name__)


class PublicListener:
    """A second gRPC server on ``public_bind`` with the Subscribe service and health only."""

    def __init__(
        self,
        cfg: DispatcherConfig,
        register: Callable[[grpc.aio.Server], list[str]],
        ready: Callable[[], bool],
        tls: PipelineTls | None,
    ) -> None:
        self.cfg = cfg
        self._register = register
        self._ready = ready
        self._tls = tls if cfg.public_tls else None
        if cfg.public_tls and tls is None:
            raise ValueError("public_tls: needs tls_dir (the listener presents the pipeline certificate)")
        self._server: grpc.aio.Server | None = None
        self._health = health.aio.HealthServicer()
        self._names: list[str] = []

    async def start(self) -> None:
        """Listen now; a port in use is a start-up error, like the main port's."""
        server = grpc.aio.server(options=server_options())
        self._names = ["", *self._register(server)]
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        bind = self.cfg.public_bind
        try:
            if self._tls is not None:
                port = server.add_secure_port(bind, self._tls.public_server_credentials())
            else:
                port = server.add_insecure_port(bind)
        except RuntimeError as exc:
            raise ServiceStartError(f"dispatcher: cannot listen on public_bind {bind}: {exc}") from None
        if port == 0:
            raise ServiceStartError(f"dispatcher: cannot listen on public_bind {bind}: address in use")
        await server.start()
        self._server = server
        await self._set(self._ready())
        if not self.cfg.tokens_file and not is_loopback(bind):
            log.warning(
                "public listener open to anyone: no tokens_file, so every client on the network may Subscribe",
                extra={"bind": bind},
            )
        log.info(
            "public listener started (Subscribe and health only)",
            extra={"bind": bind, "port": port, "tls": self._tls is not None, "tokens": bool(self.cfg.tokens_file)},
        )

    async def _set(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in self._names:
            await self._health.set(name, status)

    async def watch(self) -> None:
        """Mirror readiness (Redis reachable) in the public health service, for probes that dial this port."""
        serving = self._ready()
        while True:
            await asyncio.sleep(1.0)
            now = self._ready()
            if now != serving:
                serving = now
                await self._set(now)

    async def stop(self, grace: float = 1.0) -> None:
        """Stop serving (open Subscribe streams get ``grace`` seconds)."""
        if self._server is not None:
            await self._set(False)
            await self._server.stop(grace)
            self._server = None
