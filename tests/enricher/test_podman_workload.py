# SPDX-License-Identifier: Apache-2.0
"""Podman on its own API socket (container.type podman), and a pod's controller from its labels/annotations."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from enricher.cgroups import match_cgroup_lines
from enricher.config import EnricherConfig
from enricher.runtimes import connect_runtimes
from enricher.workload import Workload, workload_of
from tests.enricher.enricher_testlib import host_cgroup_lines

PODMAN_IMAGE = "localhost/local/busybox:latest"


# ---------------------------------------------------------------- workloads from the kubelet's marks
@pytest.mark.parametrize(
    ("pod", "labels", "annotations", "expected"),
    [
        (
            "web-7d4b9c8f6d-x2x9z",
            {"app": "web", "pod-template-hash": "7d4b9c8f6d"},
            {},
            Workload("ReplicaSet", "web-7d4b9c8f6d", "Deployment", "web"),
        ),
        ("solo-rs-abcde", {"pod-template-hash": "zzz"}, {}, Workload("ReplicaSet", "solo-rs", "ReplicaSet", "solo-rs")),
        (
            "db-2",
            {"statefulset.kubernetes.io/pod-name": "db-2", "controller-revision-hash": "db-5f"},
            {},
            Workload("StatefulSet", "db", "StatefulSet", "db"),
        ),
        (
            "agent-k2l9p",
            {"controller-revision-hash": "6c7", "pod-template-generation": "3"},
            {},
            Workload("DaemonSet", "agent", "DaemonSet", "agent"),
        ),
        (
            "backup-28923400-q8w4r",
            {"batch.kubernetes.io/job-name": "backup-28923400", "job-name": "backup-28923400"},
            {},
            Workload("Job", "backup-28923400", "CronJob", "backup"),
        ),
        ("migrate-h7k2d", {"job-name": "migrate"}, {}, Workload("Job", "migrate", "Job", "migrate")),
        (
            "kube-apiserver-node1",
            {"component": "kube-apiserver"},
            {"kubernetes.io/config.source": "file", "kubernetes.io/config.mirror": "abc"},
            Workload("Node", "", "Node", ""),
        ),
        ("debug", {"run": "debug"}, {"kubernetes.io/config.source": "api"}, None),
    ],
)
def test_workload_from_labels(
    pod: str, labels: dict[str, str], annotations: dict[str, str], expected: Workload | None
) -> None:
    assert workload_of(pod, labels, annotations) == expected


def test_podman_socket_is_probed_by_default() -> None:
    assert EnricherConfig().podman_socket == "/run/podman/podman.sock"


# ---------------------------------------------------------------- podman, live
@pytest.fixture(scope="module")
def podman_socket() -> Iterator[str]:
    if shutil.which("podman") is None:
        pytest.fail("podman is needed (scripts/container-stack.sh installs it)")
    d = Path(tempfile.mkdtemp(prefix="lanner-podman-"))
    sock = d / "podman.sock"
    svc = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{sock}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sock.exists(), "podman system service did not create its socket"
    if subprocess.run(["podman", "image", "exists", PODMAN_IMAGE], timeout=60).returncode != 0:
        saved = subprocess.run(["docker", "save", "local/busybox"], capture_output=True, check=True, timeout=120)
        subprocess.run(["podman", "load"], input=saved.stdout, capture_output=True, check=True, timeout=120)
    yield str(sock)
    svc.terminate()
    svc.wait(timeout=30)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def podman_container(podman_socket: str) -> Iterator[str]:
    name = f"lanner-podman-{uuid.uuid4().hex[:8]}"
    # Lower limits than podman's defaults: raising them needs CAP_SYS_RESOURCE, which a sandboxed host may lack.
    out = subprocess.run(
        [
            "podman",
            "run",
            "-d",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            "--name",
            name,
            PODMAN_IMAGE,
            "sleep",
            "300",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    yield out.stdout.strip().splitlines()[-1]
    subprocess.run(["podman", "rm", "-f", "-t", "0", name], capture_output=True, timeout=120)


def test_a_podman_container_is_named_and_typed_podman(podman_socket: str, podman_container: str) -> None:
    pid = int(
        subprocess.run(
            ["podman", "inspect", "-f", "{{.State.Pid}}", podman_container],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    )
    match = match_cgroup_lines(host_cgroup_lines(pid))
    assert match is not None and match.full_id == podman_container and match.runtime_hint == "podman"

    async def look() -> tuple[str, str, str, str]:
        chain = await connect_runtimes("", [], 5.0, podman_socket=podman_socket)
        try:
            meta = await chain.lookup(podman_container)
        finally:
            await chain.close()
        assert meta is not None
        c = meta.container
        return c.type, c.name, c.image_repository, chain.name

    ctype, name, repo, chain_name = asyncio.run(look())
    assert ctype == "podman" and chain_name == "podman"
    assert name.startswith("lanner-podman-")
    assert repo == "localhost/local/busybox"
    assert os.path.exists(podman_socket)


# ---------------------------------------------------------------- CRI pods, live
@pytest.mark.containers
def test_a_cri_pod_of_a_deployment_names_its_replicaset_and_deployment(cri_ready: None) -> None:
    from enricher.cri import detect_cri
    from tests.enricher.enricher_testlib import CRI_ENDPOINT, cri_pod

    name = "web-7d4b9c8f6d-x2x9z"
    with cri_pod(name=name, namespace="lanner-ns", pod_labels={"pod-template-hash": "7d4b9c8f6d"}) as pod:

        async def look() -> tuple[str, str, str, str, str, str]:
            providers = await detect_cri([CRI_ENDPOINT])
            try:
                meta = await providers[0].lookup(pod.container_id)
                sandbox = await providers[0].lookup(pod.sandbox_id)
            finally:
                for p in providers:
                    await p.close()
            assert meta is not None and sandbox is not None
            k = meta.k8s
            assert sandbox.k8s.workload_name == k.workload_name
            return meta.container.type, k.pod_name, k.owner_kind, k.owner_name, k.workload_kind, k.workload_name

        got = asyncio.run(look())
    assert got == ("containerd", name, "ReplicaSet", "web-7d4b9c8f6d", "Deployment", "web")


def test_cri_o_containers_are_typed_cri_o() -> None:
    from enricher.cri import meta_from_cri
    from lanner.cri.v1 import cri_pb2

    status = cri_pb2.ContainerStatus(id="a" * 64)
    status.metadata.name = "app"
    sandbox = cri_pb2.PodSandboxStatus(id="b" * 64)
    sandbox.metadata.name, sandbox.metadata.namespace = "agent-k2l9p", "kube-system"
    sandbox.labels.update({"controller-revision-hash": "6c7", "pod-template-generation": "1"})
    meta = meta_from_cri(status, {}, sandbox, "cri-o")
    assert meta.container.type == "cri-o"
    assert (meta.k8s.owner_kind, meta.k8s.owner_name) == ("DaemonSet", "agent")
    assert meta_from_cri(status, {}, None, "containerd").container.type == "containerd"
