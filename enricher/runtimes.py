# SPDX-License-Identifier: Apache-2.0
"""All the runtimes of a node behind one ``MetadataProvider``.

A cgroup path cannot say for sure which runtime owns an id (``/docker/<id>`` and ``/kubepods/…/<id>`` share a
layout, and Docker's containers are invisible over CRI even on a shared containerd), so every connected runtime
is asked in turn; the first that knows the id answers.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence

from enricher.cri import CriProvider, detect_cri
from enricher.docker import DockerProvider
from enricher.meta import ContainerMeta, LookupFailed, MetadataProvider

log = logging.getLogger(__name__)


class RuntimeChain:
    """``MetadataProvider`` that asks each runtime in order; None only when every runtime said "not mine"."""

    def __init__(self, providers: Sequence[MetadataProvider]) -> None:
        self.providers = list(providers)
        self.name = "+".join(p.name for p in self.providers) or "none"

    async def lookup(self, container_id: str) -> ContainerMeta | None:
        """First runtime's answer; raises LookupFailed if none knew it and at least one could not answer."""
        failures: list[str] = []
        for provider in self.providers:
            try:
                meta = await provider.lookup(container_id)
            except LookupFailed as exc:
                failures.append(str(exc))
                continue
            if meta is not None:
                return meta
        if failures:
            raise LookupFailed("; ".join(failures))
        return None

    async def list_running(self) -> list[str]:
        """Running container ids across runtimes (best effort)."""
        ids: list[str] = []
        for provider in self.providers:
            lister = getattr(provider, "list_running", None)
            if lister is None:
                continue
            try:
                ids.extend(await lister())
            except LookupFailed as exc:
                log.warning("cannot list containers", extra={"provider": provider.name, "error": str(exc)})
        return ids

    async def close(self) -> None:
        """Close every runtime client."""
        for provider in self.providers:
            await provider.close()

    def add(self, provider: MetadataProvider) -> None:
        """Use one more runtime from now on."""
        self.providers.append(provider)
        self.name = "+".join(p.name for p in self.providers)


async def discover_new(chain: RuntimeChain, docker_socket: str, cri_endpoints: Sequence[str], timeout_s: float) -> int:
    """Add the runtimes that answer now but are not in ``chain`` yet; returns how many were added."""
    added = 0
    if docker_socket and not any(isinstance(p, DockerProvider) for p in chain.providers):
        docker = DockerProvider(docker_socket, timeout_s=timeout_s)
        if docker.available():
            try:
                await docker.ping()
            except LookupFailed:
                await docker.close()
            else:
                log.info("docker runtime found", extra={"socket": docker.socket_path})
                chain.add(docker)
                added += 1
        else:
            await docker.close()
    known = {os.path.realpath(p.socket_path) for p in chain.providers if isinstance(p, CriProvider)}
    missing = [e for e in cri_endpoints if os.path.realpath(e.removeprefix("unix://")) not in known]
    if missing:
        for provider in await detect_cri(missing, timeout_s=timeout_s):
            chain.add(provider)
            added += 1
    return added


async def rediscover_loop(
    chain: RuntimeChain, docker_socket: str, cri_endpoints: Sequence[str], timeout_s: float, interval_s: float = 30.0
) -> None:
    """Background task: pick up runtimes that start after the enricher (e.g. Docker started later)."""
    while True:
        await asyncio.sleep(interval_s)
        await discover_new(chain, docker_socket, cri_endpoints, timeout_s)


async def connect_runtimes(docker_socket: str, cri_endpoints: Sequence[str], timeout_s: float) -> RuntimeChain:
    """Docker (when its socket exists and answers) plus every CRI socket that answers ``Version``."""
    providers: list[MetadataProvider] = []
    if docker_socket:
        docker = DockerProvider(docker_socket, timeout_s=timeout_s)
        if docker.available():
            try:
                prefix = await docker.ping()
            except LookupFailed as exc:
                # Keep it: the daemon may come up later; lookups will retry the connection.
                log.warning("docker socket present but not answering yet", extra={"error": str(exc)})
                providers.append(docker)
            else:
                log.info("docker runtime found", extra={"socket": docker.socket_path, "api": prefix.rsplit("/", 1)[-1]})
                providers.append(docker)
        else:
            await docker.close()
    cri: list[CriProvider] = await detect_cri(cri_endpoints, timeout_s=timeout_s)
    providers.extend(cri)
    if not providers:
        log.warning(
            "no container runtime found (looking again every 30 s); events pass through with container.id from "
            "the cgroup only"
        )
    return RuntimeChain(providers)
