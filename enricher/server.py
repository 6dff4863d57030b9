# SPDX-License-Identifier: Apache-2.0
"""Wires the enricher into the shared service lifecycle: runtimes, Redis cache, sender, gRPC server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc

from enricher.cache import RedisCachedProvider
from enricher.config import EnricherConfig
from enricher.docker import DockerProvider
from enricher.enrich import Enricher
from enricher.kexec import ExecSessions
from enricher.meta import MetadataProvider
from enricher.runtimes import RuntimeChain, connect_runtimes, rediscover_loop
from enricher.service import STAGE, EnricherServicer, make_batch, open_ruleengine_stream, weigh
from lanner.journal import bytes_journal
from lanner.pki import load_optional
from lanner.server import run_service
from lanner.streaming import BatchSender
from lanner.v1 import services_pb2

log = logging.getLogger(__name__)

SERVICE_NAME = services_pb2.DESCRIPTOR.services_by_name["EnricherService"].full_name


async def serve(cfg: EnricherConfig) -> None:
    """Run the enricher until SIGTERM/SIGINT."""
    tls = load_optional(cfg.tls_dir)
    runtimes: RuntimeChain = await connect_runtimes(
        cfg.docker_socket, cfg.cri_sockets, cfg.lookup_timeout_s, cfg.podman_socket
    )
    # The chain is used even when empty: runtimes found later (rediscover_loop) join it.
    provider: MetadataProvider = runtimes
    cache: RedisCachedProvider | None = None
    if cfg.redis_url:
        cache = RedisCachedProvider(runtimes, cfg.redis_url, ttl_s=cfg.cache_ttl_s, negative_ttl_s=cfg.negative_ttl_s)
        provider = cache
    enricher = Enricher(
        provider,
        wait_s=cfg.wait_ms / 1000.0,
        lookup_timeout_s=cfg.lookup_timeout_s,
        meta_ttl_s=cfg.memory_ttl_s,
        negative_ttl_s=cfg.negative_ttl_s,
        sessions=ExecSessions(),
    )
    sender: BatchSender[bytes] = BatchSender(
        STAGE,
        cfg.ruleengine_target,
        open_ruleengine_stream,
        make_batch,
        max_queue=cfg.max_queue,
        max_bytes=cfg.max_queue_bytes,
        batch_size=1,
        linger_s=0.0,
        weigh=weigh,
        journal=bytes_journal(cfg.spill_path),
        tls=tls,
    )

    def register(server: grpc.aio.Server) -> Sequence[str]:
        return EnricherServicer(enricher, sender).register(server)

    async def warm() -> None:
        if not cfg.warm_start or not runtimes.providers:
            return
        if cache is not None:
            # Warming also fills the shared cache, so give Redis a moment; without it, warm the memory only.
            await cache.wait_healthy(2.0)
        ids = await runtimes.list_running()
        await enricher.warm(ids)
        log.info("container metadata warmed", extra={"containers": len(ids)})

    async def on_docker_event(action: str, full_id: str) -> None:
        if action == "start":
            enricher.ensure_lookup(full_id)
        else:
            enricher.forget(full_id)
            if cache is not None:
                await cache.invalidate(full_id)

    async def follow_docker() -> None:
        # Docker may only be found later by rediscover(); wait for it rather than giving up.
        while True:
            docker = next((p for p in runtimes.providers if isinstance(p, DockerProvider)), None)
            if docker is not None:
                await docker.watch(on_docker_event)
            await asyncio.sleep(5.0)

    async def rediscover() -> None:
        await rediscover_loop(
            runtimes, cfg.docker_socket, cfg.cri_sockets, cfg.lookup_timeout_s, podman_socket=cfg.podman_socket
        )

    background: list[Callable[[], Awaitable[Any]]] = [sender.run, warm, follow_docker, rediscover]
    if cache is not None:
        background.append(cache.connect_loop)

    async def close_provider() -> None:
        if cache is not None:
            await cache.close()
        else:
            await runtimes.close()

    await run_service(
        "enricher",
        cfg.bind,
        register,
        background=background,
        on_stop=[close_provider, enricher.close, sender.close],
        metrics_bind=cfg.metrics_bind,
        tls=tls,
        reflection_enabled=cfg.grpc_reflection,
    )
