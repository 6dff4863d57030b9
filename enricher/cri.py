# SPDX-License-Identifier: Apache-2.0
"""CRI (runtime.v1) client: ContainerStatus + PodSandboxStatus → container and pod metadata.

Sockets are probed in a fixed order, only ``unix://`` endpoints are accepted, and a socket is used only after a
``Version`` call on it succeeded, so a stale socket file or a non-CRI server is never trusted.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import grpc

from enricher.images import cri_image
from enricher.meta import ContainerMeta, LookupFailed, labels_map
from enricher.workload import workload_of
from lanner.cri.v1 import cri_pb2, cri_pb2_grpc
from lanner.model import Container, K8s, Mount

log = logging.getLogger(__name__)

# containerd, CRI-O, k3s/RKE2's embedded containerd, the host containerd as seen from a container, cri-dockerd.
DEFAULT_CRI_SOCKETS = (
    "unix:///run/containerd/containerd.sock",
    "unix:///run/crio/crio.sock",
    "unix:///run/k3s/containerd/containerd.sock",
    "unix:///run/host-containerd/containerd.sock",
    "unix:///var/run/cri-dockerd.sock",
)
_PROPAGATION = {0: "private", 1: "rslave", 2: "rshared"}
_RUNTIME_TYPES = {"containerd": "containerd", "cri-o": "cri-o"}


def _info_json(info: Mapping[str, str]) -> dict[str, Any]:
    raw = info.get("info")
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def privileged_from_info(info: Mapping[str, Any]) -> bool:
    """Falco's order: runtimeSpec…security_context, then config.linux.security_context, then top-level."""
    for path in (
        ("runtimeSpec", "linux", "security_context", "privileged"),
        ("config", "linux", "security_context", "privileged"),
        ("privileged",),
    ):
        value = _dig(info, *path)
        if isinstance(value, bool):
            return value
    return False


def _image_id(status: cri_pb2.ContainerStatus, info: Mapping[str, Any]) -> str:
    """Node-unique image id: the status field, the verbose info, else a bare ``sha256:`` image_ref."""
    for candidate in (status.image_id, info.get("imageId"), info.get("image")):
        if isinstance(candidate, str) and candidate:
            return candidate.removeprefix("sha256:")
    return status.image_ref.removeprefix("sha256:") if status.image_ref.startswith("sha256:") else ""


def meta_from_cri(
    status: cri_pb2.ContainerStatus,
    info: Mapping[str, Any],
    sandbox: cri_pb2.PodSandboxStatus | None,
    runtime_name: str,
) -> ContainerMeta:
    """Build metadata from a verbose ContainerStatus and (when found) its PodSandboxStatus."""
    image = cri_image(status.image.image, status.image_ref, status.annotations)
    mounts = tuple(
        Mount(
            source=m.host_path,
            dest=m.container_path,
            mode="",
            rw=not m.readonly,
            propagation=_PROPAGATION.get(int(m.propagation), "unknown"),
        )
        for m in status.mounts
    )
    ns_opts = sandbox.linux.namespaces.options if sandbox is not None else None
    pod_ip = sandbox.network.ip if sandbox is not None else ""
    container = Container(
        id=status.id[:12],
        full_id=status.id,
        type=_RUNTIME_TYPES.get(runtime_name, "cri"),
        name=status.metadata.name,
        image=image.image,
        image_repository=image.repository,
        image_tag=image.tag,
        image_digest=image.digest,
        image_id=_image_id(status, info),
        privileged=privileged_from_info(info),
        labels=labels_map(dict(status.labels)),
        mounts=mounts,
        start_ns=status.started_at or status.created_at,
        ip=pod_ip,
        host_pid=ns_opts is not None and ns_opts.pid == cri_pb2.NODE,
        host_network=ns_opts is not None and ns_opts.network == cri_pb2.NODE,
        host_ipc=ns_opts is not None and ns_opts.ipc == cri_pb2.NODE,
        metadata_complete=True,
    )
    labels = status.labels
    if sandbox is not None:
        k8s = _with_workload(
            K8s(
                pod_name=sandbox.metadata.name,
                pod_uid=sandbox.metadata.uid,
                ns_name=sandbox.metadata.namespace,
                pod_sandbox_id=sandbox.id,
                pod_labels=labels_map(dict(sandbox.labels)),
                pod_ip=pod_ip,
            ),
            sandbox.annotations,
        )
    else:
        k8s = K8s(
            pod_name=labels.get("io.kubernetes.pod.name", ""),
            pod_uid=labels.get("io.kubernetes.pod.uid", ""),
            ns_name=labels.get("io.kubernetes.pod.namespace", ""),
            pod_sandbox_id=status.id,
        )
    return ContainerMeta(container=container, k8s=k8s)


def _with_workload(k8s: K8s, annotations: Mapping[str, str]) -> K8s:
    """The pod's controller and workload, from its labels and annotations (enricher.workload)."""
    w = workload_of(k8s.pod_name, k8s.pod_labels, annotations)
    if w is None:
        return k8s
    return replace(
        k8s,
        owner_kind=w.owner_kind,
        owner_name=w.owner_name,
        workload_kind=w.workload_kind,
        workload_name=w.workload_name,
    )


def meta_from_sandbox(sandbox: cri_pb2.PodSandboxStatus, runtime_name: str) -> ContainerMeta:
    """Metadata for a pause (sandbox) process: its cgroup carries the sandbox id, not a container's."""
    opts = sandbox.linux.namespaces.options
    container = Container(
        id=sandbox.id[:12],
        full_id=sandbox.id,
        type=_RUNTIME_TYPES.get(runtime_name, "cri"),
        name=sandbox.metadata.name,
        labels=labels_map(dict(sandbox.labels)),
        start_ns=sandbox.created_at,
        ip=sandbox.network.ip,
        privileged=False,
        host_pid=opts.pid == cri_pb2.NODE,
        host_network=opts.network == cri_pb2.NODE,
        host_ipc=opts.ipc == cri_pb2.NODE,
        metadata_complete=True,
    )
    k8s = K8s(
        pod_name=sandbox.metadata.name,
        pod_uid=sandbox.metadata.uid,
        ns_name=sandbox.metadata.namespace,
        pod_sandbox_id=sandbox.id,
        pod_labels=labels_map(dict(sandbox.labels)),
        pod_ip=sandbox.network.ip,
    )
    return ContainerMeta(container=container, k8s=_with_workload(k8s, sandbox.annotations))


class CriProvider:
    """``MetadataProvider`` over one CRI socket."""

    def __init__(self, endpoint: str, timeout_s: float = 2.0) -> None:
        if not endpoint.startswith("unix://"):
            raise ValueError(f"CRI endpoint {endpoint!r}: only unix:// sockets are supported")
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.runtime_name = ""
        self.runtime_version = ""
        self.name = f"cri:{endpoint.removeprefix('unix://')}"
        self._channel = grpc.aio.insecure_channel(endpoint)
        self._rt = cri_pb2_grpc.RuntimeServiceStub(self._channel)

    @property
    def socket_path(self) -> str:
        """Filesystem path of the socket."""
        return self.endpoint.removeprefix("unix://")

    async def validate(self) -> None:
        """Call Version; raises LookupFailed unless the endpoint answers as a runtime.v1 CRI runtime."""
        try:
            v = await self._rt.Version(cri_pb2.VersionRequest(version="v1"), timeout=self.timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise LookupFailed(f"{self.endpoint}: Version failed: {exc.code().name}: {exc.details()}") from None
        self.runtime_name = v.runtime_name
        self.runtime_version = v.runtime_version
        self.name = f"cri:{v.runtime_name or 'unknown'}"

    async def lookup(self, container_id: str) -> ContainerMeta | None:
        """ContainerStatus(verbose) then PodSandboxStatus; a sandbox id is looked up as a pod. None if unknown."""
        try:
            resp = await self._rt.ContainerStatus(
                cri_pb2.ContainerStatusRequest(container_id=container_id, verbose=True), timeout=self.timeout_s
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise LookupFailed(f"{self.name}: ContainerStatus: {exc.code().name}: {exc.details()}") from None
            sandbox = await self._sandbox(container_id)
            return meta_from_sandbox(sandbox, self.runtime_name) if sandbox is not None else None
        info = _info_json(resp.info)
        sandbox_id = str(info.get("sandboxID") or "")
        if not sandbox_id:
            sandbox_id = await self._sandbox_id_of(container_id)
        sandbox = await self._sandbox(sandbox_id) if sandbox_id else None
        return meta_from_cri(resp.status, info, sandbox, self.runtime_name)

    async def _sandbox_id_of(self, container_id: str) -> str:
        try:
            listed = await self._rt.ListContainers(
                cri_pb2.ListContainersRequest(filter=cri_pb2.ContainerFilter(id=container_id)),
                timeout=self.timeout_s,
            )
        except grpc.aio.AioRpcError:
            return ""
        return listed.containers[0].pod_sandbox_id if listed.containers else ""

    async def _sandbox(self, sandbox_id: str) -> cri_pb2.PodSandboxStatus | None:
        try:
            resp = await self._rt.PodSandboxStatus(
                cri_pb2.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id), timeout=self.timeout_s
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise LookupFailed(f"{self.name}: PodSandboxStatus: {exc.code().name}: {exc.details()}") from None
        return resp.status

    async def list_running(self) -> list[str]:
        """Full ids of running containers and ready sandboxes (to warm the cache at start-up)."""
        try:
            cs = await self._rt.ListContainers(
                cri_pb2.ListContainersRequest(
                    filter=cri_pb2.ContainerFilter(state=cri_pb2.ContainerStateValue(state=cri_pb2.CONTAINER_RUNNING))
                ),
                timeout=self.timeout_s,
            )
        except grpc.aio.AioRpcError as exc:
            raise LookupFailed(f"{self.name}: ListContainers: {exc.code().name}") from None
        return [c.id for c in cs.containers]

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close()


async def detect_cri(endpoints: Sequence[str], timeout_s: float = 2.0) -> list[CriProvider]:
    """Every endpoint (in order) whose socket exists and answers ``Version``; the others are logged and skipped."""
    found: list[CriProvider] = []
    seen: set[str] = set()
    for endpoint in endpoints:
        if not endpoint.startswith("unix://"):
            log.warning("ignoring CRI endpoint: only unix:// is supported", extra={"endpoint": endpoint})
            continue
        path = os.path.realpath(endpoint.removeprefix("unix://"))
        if path in seen or not os.path.exists(path):
            continue
        seen.add(path)
        provider = CriProvider(endpoint, timeout_s=timeout_s)
        try:
            await provider.validate()
        except LookupFailed as exc:
            log.warning("CRI socket does not answer Version; not used", extra={"endpoint": endpoint, "error": str(exc)})
            await provider.close()
            continue
        log.info(
            "CRI runtime found",
            extra={"endpoint": endpoint, "runtime": provider.runtime_name, "version": provider.runtime_version},
        )
        found.append(provider)
    return found
