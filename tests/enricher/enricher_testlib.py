# SPDX-License-Identifier: Apache-2.0
"""Helpers for the enricher tests: real redis-server, real Docker and CRI (pods made as a kubelet would)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import grpc

from lanner.cri.v1 import cri_pb2 as pb
from lanner.cri.v1 import cri_pb2_grpc
from tests.support.redis_server import RedisProcess as RedisProcess
from tests.support.redis_server import free_port as free_port

DOCKER_SOCKET = "/var/run/docker.sock"


def _cri_endpoint() -> str:
    """LANNER_CRI_ENDPOINT, else the endpoint scripts/container-stack.sh recorded (a private containerd when the
    host already ran one), else containerd's default socket."""
    if os.environ.get("LANNER_CRI_ENDPOINT"):
        return os.environ["LANNER_CRI_ENDPOINT"]
    recorded = os.path.join(os.environ.get("LANNER_STACK_DIR", "/var/tmp/lanner-stack"), "cri-endpoint")
    try:
        with open(recorded, encoding="utf-8") as f:
            return f.read().strip() or DEFAULT_CRI_ENDPOINT
    except OSError:
        return DEFAULT_CRI_ENDPOINT


DEFAULT_CRI_ENDPOINT = "unix:///run/containerd/containerd.sock"
CRI_ENDPOINT = _cri_endpoint()
CRI_IMAGE = "docker.io/local/busybox:latest"
BOOKWORM = "local/bookworm:latest"
STACK_HINT = "run scripts/container-stack.sh to bring up Docker and containerd"


def docker_unavailable() -> str | None:
    """Why Docker tests cannot run here, or None."""
    if not os.path.exists(DOCKER_SOCKET) or shutil.which("docker") is None:
        return f"no Docker engine at {DOCKER_SOCKET} ({STACK_HINT})"
    if subprocess.run(["docker", "version"], capture_output=True, timeout=30).returncode != 0:
        return f"Docker engine at {DOCKER_SOCKET} does not answer ({STACK_HINT})"
    if subprocess.run(["docker", "image", "inspect", BOOKWORM], capture_output=True, timeout=30).returncode != 0:
        return f"image {BOOKWORM} missing ({STACK_HINT})"
    return None


def cri_unavailable() -> str | None:
    """Why CRI tests cannot run here, or None."""
    path = CRI_ENDPOINT.removeprefix("unix://")
    if not os.path.exists(path):
        return f"no CRI socket at {path} ({STACK_HINT})"
    try:
        with grpc.insecure_channel(CRI_ENDPOINT) as ch:
            cri_pb2_grpc.RuntimeServiceStub(ch).Version(pb.VersionRequest(version="v1"), timeout=30)
    except grpc.RpcError as exc:
        return f"CRI at {path} does not answer Version: {exc.code().name} ({STACK_HINT})"
    return None


def docker_run(*args: str) -> str:
    """``docker run -d ARGS``; returns the full container id."""
    out = subprocess.run(["docker", "run", "-d", *args], capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip()


def docker_rm(cid: str) -> None:
    subprocess.run(["docker", "rm", "-f", cid], capture_output=True, timeout=60)


def host_cgroup_lines(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cgroup") as f:
        return f.read().splitlines()


@dataclass(frozen=True)
class Pod:
    """A running CRI pod with one container."""

    sandbox_id: str
    container_id: str
    name: str
    namespace: str
    uid: str
    container_name: str


@contextlib.contextmanager
def cri_pod(
    name: str = "lanner-test",
    namespace: str = "lanner-tests",
    image: str = CRI_IMAGE,
    endpoint: str = CRI_ENDPOINT,
    pod_labels: dict[str, str] | None = None,
    pod_annotations: dict[str, str] | None = None,
) -> Iterator[Pod]:
    """Create a pod on the host network with one sleeping container, as a kubelet would; remove it afterwards.

    The kubelet's labels (io.kubernetes.pod.*) go on the sandbox and the container, which is what makes the pod
    identity appear in ContainerStatus; a host-network pod must have an empty hostname.
    """
    uid = str(uuid.uuid4())
    labels = {"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": namespace, "io.kubernetes.pod.uid": uid}
    logdir = f"/var/tmp/lanner-stack/cri-logs/{namespace}_{name}_{uid}"
    os.makedirs(logdir, exist_ok=True)
    ns = pb.NamespaceOption(network=pb.NODE, pid=pb.CONTAINER, ipc=pb.POD)
    pconf = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace=namespace, attempt=0),
        hostname="",
        log_directory=logdir,
        labels={**labels, "app": "lanner-test", **(pod_labels or {})},
        annotations={"kubernetes.io/config.source": "api", **(pod_annotations or {})},
        linux=pb.LinuxPodSandboxConfig(
            cgroup_parent=f"/kubepods/besteffort/pod{uid}",
            security_context=pb.LinuxSandboxSecurityContext(namespace_options=ns),
        ),
    )
    cname = "app"
    with grpc.insecure_channel(endpoint) as ch:
        rt = cri_pb2_grpc.RuntimeServiceStub(ch)
        sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pconf), timeout=60).pod_sandbox_id
        try:
            cconf = pb.ContainerConfig(
                metadata=pb.ContainerMetadata(name=cname, attempt=0),
                image=pb.ImageSpec(image=image),
                command=["sleep", "300"],
                labels={**labels, "io.kubernetes.container.name": cname},
                annotations={"io.kubernetes.container.restartCount": "0"},
                log_path=f"{cname}/0.log",
                linux=pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(namespace_options=ns)),
            )
            cid = rt.CreateContainer(
                pb.CreateContainerRequest(pod_sandbox_id=sid, config=cconf, sandbox_config=pconf), timeout=60
            ).container_id
            rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
            yield Pod(sid, cid, name, namespace, uid, cname)
        finally:
            with contextlib.suppress(grpc.RpcError):
                rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid), timeout=60)
            with contextlib.suppress(grpc.RpcError):
                rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid), timeout=60)


def container_pid(container_id: str) -> int:
    """Host pid of a CRI container's init process (from the verbose status)."""
    import json

    with grpc.insecure_channel(CRI_ENDPOINT) as ch:
        rt = cri_pb2_grpc.RuntimeServiceStub(ch)
        resp = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=container_id, verbose=True), timeout=10)
    return int(json.loads(resp.info["info"])["pid"])
