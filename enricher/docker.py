# SPDX-License-Identifier: Apache-2.0
"""Docker Engine API client (also answers for Podman's Docker-compatible socket): container inspect → metadata."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import aiohttp

from enricher.images import docker_image
from enricher.meta import ContainerMeta, LookupFailed, labels_map
from lanner.model import Container, K8s, Mount

log = logging.getLogger(__name__)

# API 1.41 is Docker 20.10, the oldest engine Lanner was run against; newer daemons are used at their version.
MIN_API = (1, 41)
MAX_API = (1, 47)


def _version_tuple(text: str) -> tuple[int, int] | None:
    major, _, minor = text.partition(".")
    if major.isdigit() and minor.isdigit():
        return int(major), int(minor)
    return None


def parse_docker_time(text: str) -> int:
    """RFC 3339 with up to nanoseconds (``2024-05-01T10:00:00.123456789Z``) → ns since epoch; 0 when unset."""
    if not text or text.startswith("0001-01-01"):
        return 0
    main, _, frac_tz = text.partition(".")
    frac = ""
    tz = "Z"
    if frac_tz:
        digits = len(frac_tz) - len(frac_tz.lstrip("0123456789"))
        frac, tz = frac_tz[:digits], frac_tz[digits:] or "Z"
    else:
        for sep in ("Z", "+", "-"):
            idx = main.find(sep, 10)
            if idx != -1:
                main, tz = main[:idx], main[idx:]
                break
    try:
        base = datetime.fromisoformat(main + ("+00:00" if tz in ("Z", "z") else tz))
    except ValueError:
        return 0
    return int(base.timestamp()) * 1_000_000_000 + int((frac + "000000000")[:9])


def _mounts(raw: Any) -> tuple[Mount, ...]:
    out = []
    for m in raw or ():
        if not isinstance(m, Mapping):
            continue
        out.append(
            Mount(
                source=str(m.get("Source") or m.get("Name") or ""),
                dest=str(m.get("Destination") or ""),
                mode=str(m.get("Mode") or ""),
                rw=bool(m.get("RW", False)),
                propagation=str(m.get("Propagation") or ""),
            )
        )
    return tuple(out)


def _ip(settings: Any) -> str:
    networks = settings.get("Networks") if isinstance(settings, Mapping) else None
    if isinstance(networks, Mapping):
        for net in networks.values():
            if isinstance(net, Mapping) and net.get("IPAddress"):
                return str(net["IPAddress"])
    return ""


def meta_from_inspect(
    inspect: Mapping[str, Any], image: Mapping[str, Any] | None, container_type: str = "docker"
) -> ContainerMeta:
    """Build metadata from ``GET /containers/{id}/json`` and (optionally) ``GET /images/{id}/json``;
    ``container_type`` is the runtime behind the API (``docker``, or ``podman`` on Podman's compatible socket)."""
    config = inspect.get("Config") or {}
    host = inspect.get("HostConfig") or {}
    state = inspect.get("State") or {}
    image = image or {}
    labels: dict[str, str] = {str(k): str(v) for k, v in (config.get("Labels") or {}).items()}
    info = docker_image(
        str(config.get("Image") or ""),
        [str(t) for t in image.get("RepoTags") or ()],
        [str(d) for d in image.get("RepoDigests") or ()],
    )
    image_id = str(inspect.get("Image") or "")
    full_id = str(inspect.get("Id") or "")
    container = Container(
        id=full_id[:12],
        full_id=full_id,
        type=container_type,
        name=str(inspect.get("Name") or "").lstrip("/"),
        image=info.image,
        image_repository=info.repository,
        image_tag=info.tag,
        image_digest=info.digest,
        image_id=image_id.removeprefix("sha256:"),
        privileged=bool(host.get("Privileged", False)),
        labels=labels_map(labels),
        mounts=_mounts(inspect.get("Mounts")),
        start_ns=parse_docker_time(str(state.get("StartedAt") or "")),
        ip=_ip(inspect.get("NetworkSettings")),
        host_pid=host.get("PidMode") == "host",
        host_network=host.get("NetworkMode") == "host",
        host_ipc=host.get("IpcMode") == "host",
        user=str(config.get("User") or ""),
        metadata_complete=True,
    )
    k8s = K8s()
    if labels.get("io.kubernetes.pod.name"):
        # Containers a kubelet ran through dockershim / cri-dockerd carry the pod identity as labels.
        k8s = K8s(
            pod_name=labels.get("io.kubernetes.pod.name", ""),
            pod_uid=labels.get("io.kubernetes.pod.uid", ""),
            ns_name=labels.get("io.kubernetes.pod.namespace", ""),
            pod_sandbox_id=labels.get("io.kubernetes.sandbox.id", ""),
        )
    return ContainerMeta(container=container, k8s=k8s)


class DockerProvider:
    """``MetadataProvider`` over the Docker Engine API on a unix socket (aiohttp). Podman serves the same API on its
    own socket; ``container_type="podman"`` reports its containers as Podman's."""

    def __init__(
        self, socket_path: str = "/var/run/docker.sock", timeout_s: float = 2.0, container_type: str = "docker"
    ) -> None:
        self.name = container_type
        self.container_type = container_type
        self.socket_path = socket_path.removeprefix("unix://")
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._prefix = ""
        self._lock = asyncio.Lock()

    def available(self) -> bool:
        """Whether the socket file exists (cheap pre-check before connecting)."""
        return os.path.exists(self.socket_path)

    async def _ensure(self) -> tuple[aiohttp.ClientSession, str]:
        async with self._lock:
            if self._session is None or self._session.closed:
                connector = aiohttp.UnixConnector(path=self.socket_path)
                self._session = aiohttp.ClientSession(
                    connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout_s)
                )
                self._prefix = ""
            if not self._prefix:
                self._prefix = await self._negotiate(self._session)
            return self._session, self._prefix

    async def _negotiate(self, session: aiohttp.ClientSession) -> str:
        try:
            async with session.get("http://docker/_ping") as resp:
                server = _version_tuple(resp.headers.get("Api-Version", ""))
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise LookupFailed(f"docker: cannot reach {self.socket_path}: {exc}") from None
        if server is None or server < MIN_API:
            raise LookupFailed(f"docker: daemon API {server} is older than the supported minimum {MIN_API}")
        use = min(server, MAX_API)
        return f"http://docker/v{use[0]}.{use[1]}"

    async def ping(self) -> str:
        """The negotiated API prefix; raises LookupFailed when the daemon is not usable."""
        _, prefix = await self._ensure()
        return prefix

    async def _get_json(self, path: str) -> Any | None:
        session, prefix = await self._ensure()
        try:
            async with session.get(prefix + path) as resp:
                if resp.status == 404:
                    return None
                if resp.status != 200:
                    body = (await resp.text())[:200]
                    raise LookupFailed(f"docker: GET {path}: HTTP {resp.status}: {body}")
                return await resp.json(content_type=None)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            self._prefix = ""  # renegotiate after a daemon restart
            raise LookupFailed(f"docker: GET {path}: {exc!r}") from None

    async def lookup(self, container_id: str) -> ContainerMeta | None:
        """Inspect the container and its image; None when Docker does not know the id."""
        inspect = await self._get_json(f"/containers/{container_id}/json")
        if not isinstance(inspect, Mapping):
            return None
        image: Any = None
        image_id = str(inspect.get("Image") or "")
        if image_id:
            with contextlib.suppress(LookupFailed):
                image = await self._get_json(f"/images/{image_id}/json")
        return meta_from_inspect(inspect, image if isinstance(image, Mapping) else None, self.container_type)

    async def list_running(self) -> list[str]:
        """Full ids of running containers (to warm the cache at start-up)."""
        data = await self._get_json("/containers/json")
        return [str(c["Id"]) for c in data or () if isinstance(c, Mapping) and c.get("Id")]

    async def watch(self, on_event: Callable[[str, str], Awaitable[None]]) -> None:
        """Follow container start/destroy events, calling ``on_event(action, full_id)``, until cancelled.

        Reconnects with backoff when the daemon goes away. Used to look new containers up before their first
        event arrives and to forget destroyed ones.
        """
        delay = 0.5
        filters = json.dumps({"type": ["container"], "event": ["start", "destroy"]})
        while True:
            try:
                session, prefix = await self._ensure()
                async with session.get(
                    f"{prefix}/events",
                    params={"filters": filters},
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout_s),
                ) as resp:
                    if resp.status != 200:
                        raise LookupFailed(f"docker: GET /events: HTTP {resp.status}")
                    delay = 0.5
                    async for line in resp.content:
                        if not line.strip():
                            continue
                        try:
                            msg = json.loads(line)
                        except ValueError:
                            continue
                        actor = msg.get("Actor") or {}
                        action = str(msg.get("Action") or msg.get("status") or "")
                        full_id = str(actor.get("ID") or msg.get("id") or "")
                        if full_id and action in ("start", "destroy"):
                            await on_event(action, full_id)
            except asyncio.CancelledError:
                raise
            except (LookupFailed, aiohttp.ClientError, OSError, TimeoutError) as exc:
                self._prefix = ""
                log.info("docker events unavailable; retrying", extra={"error": str(exc), "retry_in_s": delay})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
