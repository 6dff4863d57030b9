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


def _engines(docker_socket: str, podman_socket: str) -> list[tuple[str, str]]:
    """(socket, container type) of the Docker-API engines to use: Docker's, and Podman's own socket."""
    return [(sock, kind) for sock, kind in ((docker_socket, "docker"), (podman_socket, "podman")) if sock]


async def _engine(socket_path: str, kind: str, timeout_s: float, keep_silent: bool) -> DockerProvider | None:
    """A Docker-API provider on ``socket_path`` when the socket exists; one that does not answer yet is kept only
    with ``keep_silent`` (lookups retry the connection)."""
    engine = DockerProvider(socket_path, timeout_s=timeout_s, container_type=kind)
    if not engine.available():
        await engine.close()
        return None
    try:
        prefix = await engine.ping()
    except LookupFailed as exc:
        if keep_silent:
            log.warning(f"{kind} socket present but not answering yet", extra={"error": str(exc)})
            return engine
        await engine.close()
        return None
    log.info(f"{kind} runtime found", extra={"socket": engine.socket_path, "api": prefix.rsplit("/", 1)[-1]})
    return engine


async def discover_new(
    chain: RuntimeChain, docker_socket: str, cri_endpoints: Sequence[str], timeout_s: float, podman_socket: str = ""
) -> int:
    """Add the runtimes that answer now but are not in ``chain`` yet; returns how many were added."""
    added = 0
    have = {os.path.realpath(p.socket_path) for p in chain.providers if isinstance(p, DockerProvider)}
    for sock, kind in _engines(docker_socket, podman_socket):
        if os.path.realpath(sock.removeprefix("unix://")) in have:
            continue
        engine = await _engine(sock, kind, timeout_s, keep_silent=False)
        if engine is not None:
            chain.add(engine)
            added += 1
    known = {os.path.realpath(p.socket_path) for p in chain.providers if isinstance(p, CriProvider)}
    missing = [e for e in cri_endpoints if os.path.realpath(e.removeprefix("unix://")) not in known]
    if missing:
        for provider in await detect_cri(missing, timeout_s=timeout_s):
            chain.add(provider)
            added += 1
    return added


async def rediscover_loop(
    chain: RuntimeChain,
    docker_socket: str,
    cri_endpoints: Sequence[str],
    timeout_s: float,
    interval_s: float = 30.0,
    podman_socket: str = "",
) -> None:
    """Background task: pick up runtimes that start after the enricher (e.g. Docker started later)."""
    while True:
        await asyncio.sleep(interval_s)
        await discover_new(chain, docker_socket, cri_endpoints, timeout_s, podman_socket)


async def connect_runtimes(
    docker_socket: str, cri_endpoints: Sequence[str], timeout_s: float, podman_socket: str = ""
) -> RuntimeChain:
    """Docker and Podman (when their sockets exist) plus every CRI socket that answers ``Version``."""
    providers: list[MetadataProvider] = []
    seen: set[str] = set()
    for sock, kind in _engines(docker_socket, podman_socket):
        real = os.path.realpath(sock.removeprefix("unix://"))
        if real in seen:
            continue
        seen.add(real)
        engine = await _engine(sock, kind, timeout_s, keep_silent=True)
        if engine is not None:
            providers.append(engine)
    cri: list[CriProvider] = await detect_cri(cri_endpoints, timeout_s=timeout_s)
    providers.extend(cri)
    if not providers:
        log.warning(
            "no container runtime found (looking again every 30 s); events pass through with container.id from "
            "the cgroup only"
        )
    return RuntimeChain(providers)
