# SPDX-License-Identifier: Apache-2.0
"""scripts/container-stack.sh beside a containerd it did not start: it runs its own, with its own socket, root and
state, records that CRI endpoint, and CRI pods run there; the other containerd is left alone.

The running stack's containerd is someone else's for a stack kept in another folder, so this needs no second
daemon from outside: the stack under test is the second one.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import grpc
import pytest

from lanner.cri.v1 import cri_pb2 as pb
from lanner.cri.v1 import cri_pb2_grpc
from tests.enricher.enricher_testlib import CRI_ENDPOINT, cri_pod

pytestmark = pytest.mark.containers

ROOT = Path(__file__).resolve().parents[2]
PRIVATE = "unix:///run/lanner-containerd/containerd.sock"


def cri_version(endpoint: str) -> str:
    with grpc.insecure_channel(endpoint) as ch:
        return str(cri_pb2_grpc.RuntimeServiceStub(ch).Version(pb.VersionRequest(), timeout=10).runtime_version)


def test_stack_beside_a_containerd_it_did_not_start(tmp_path: Path, docker_ready: None, cri_ready: None) -> None:
    env = {**os.environ, "LANNER_STACK_DIR": str(tmp_path / "stack")}
    before = cri_version(CRI_ENDPOINT)
    try:
        out = subprocess.run(
            ["bash", str(ROOT / "scripts" / "container-stack.sh"), "--no-python"],
            env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        endpoint = (tmp_path / "stack" / "cri-endpoint").read_text().strip()
        if CRI_ENDPOINT != PRIVATE:
            assert "using a private one" in out.stdout, out.stdout
            assert endpoint == PRIVATE
        with cri_pod(name="beside", namespace="lanner-stack-test", endpoint=endpoint) as pod:
            with grpc.insecure_channel(endpoint) as ch:
                status = cri_pb2_grpc.RuntimeServiceStub(ch).ContainerStatus(
                    pb.ContainerStatusRequest(container_id=pod.container_id), timeout=10
                )
            assert status.status.state == pb.CONTAINER_RUNNING
        # A second run finds everything up and changes nothing.
        again = subprocess.run(
            ["bash", str(ROOT / "scripts" / "container-stack.sh"), "--no-python", "--quiet"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert (tmp_path / "stack" / "cri-endpoint").read_text().strip() == endpoint
    finally:
        subprocess.run(
            ["bash", str(ROOT / "scripts" / "container-stack-down.sh"), "--keep-containers"],
            env=env, capture_output=True, timeout=120,
        )  # fmt: skip
    assert cri_version(CRI_ENDPOINT) == before  # the other containerd still answers
