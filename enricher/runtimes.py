# SPDX-License-Identifier: Apache-2.0
"""All the runtimes of a node behind one ``MetadataProvider``.

A cgroup path cannot say for sure which runtime owns an id (``/docker/<id>`` and ``/kubepods/…/<id>`` share a
layout, and Docker's containers are invisible over CRI even on a shared containerd), so every connected runtime
is asked in turn; the first that knows the id answers.
"""

from __future__ import annotations

import logging
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
        log.warning("no container runtime found; events pass through with container.id from the cgroup only")
    return RuntimeChain(providers)
