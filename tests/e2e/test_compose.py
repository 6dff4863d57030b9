# SPDX-License-Identifier: Apache-2.0
"""The docker-compose deployment on the real Docker engine: images built from a local base, the whole pipeline in
containers with mutual TLS between the services and bearer tokens on Subscribe, an alert for a shell in another
container (with that container's id and image) at a Subscribe client holding a token, clients with no token, a
wrong token or an out-of-scope token refused or scoped, the intake unreachable without the pipeline certificate,
and a frozen service turning visibly unhealthy in ``docker compose ps``.

Needs root, eBPF, Docker with the compose v2 plugin and the local/bookworm image: scripts/container-stack.sh
provides all of that on a fresh machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.json_format import MessageToDict

from dispatcher.tokens_cli import add_token
from lanner.v1 import alert_pb2, services_pb2, services_pb2_grpc
from tests.e2e.conftest import AlertCollector, ebpf_unavailable, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.containers, pytest.mark.bpf]

ROOT = Path(__file__).resolve().parents[2]
BASE = "local/bookworm:latest"
HINT = "scripts/container-stack.sh brings up Docker, compose v2 and the local images"


def _run(cmd: list[str], timeout: float = 60, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)  # type: ignore[call-overload, no-any-return]


def compose_unavailable() -> str | None:
    reason = ebpf_unavailable()
    if reason:
        return reason
    if shutil.which("docker") is None:
        return f"docker CLI not installed ({HINT})"
    if _run(["docker", "info"], timeout=20).returncode != 0:
        return f"Docker engine not running ({HINT})"
    if _run(["docker", "compose", "version"], timeout=20).returncode != 0:
        return f"docker compose v2 plugin missing ({HINT})"
    if _run(["docker", "image", "inspect", BASE], timeout=20).returncode != 0:
        return f"base image {BASE} missing ({HINT})"
    return None


class ComposeStack:
    """``docker compose`` on the repository's docker-compose.yml under a private project name."""

    def __init__(self, project: str, subscribe_port: int, tokens_dir: Path) -> None:
        self.project = project
        self.subscribe_port = subscribe_port
        self.tokens_dir = tokens_dir
        self.env = dict(os.environ)
        self.env.update(
            LANNER_BASE_IMAGE=BASE,
            LANNER_SUBSCRIBE_BIND=f"127.0.0.1:{subscribe_port}",
            LANNER_TOKENS_DIR=str(tokens_dir),
            COMPOSE_PROJECT_NAME=project,
            LANNER_HEALTH_INTERVAL="3s",  # a hung service turns unhealthy after 3 probes: keep the test short
        )

    def __call__(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = ["docker", "compose", "-f", str(ROOT / "docker-compose.yml"), "-p", self.project, *args]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=self.env, cwd=ROOT)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(cmd[2:])} failed ({result.returncode}):\n{result.stderr[-4000:]}")
        return result

    def ps(self) -> dict[str, dict[str, str]]:
        out = self("ps", "-a", "--format", "json").stdout.strip()
        rows = json.loads(out) if out.startswith("[") else [json.loads(line) for line in out.splitlines() if line]
        return {row["Service"]: row for row in rows}

    def health(self, service: str) -> str:
        return str(self.ps().get(service, {}).get("Health", ""))

    def logs(self) -> str:
        return self("logs", "--no-color", "--tail", "60", check=False).stdout[-12000:]

    def main_pid(self, service: str) -> int:
        """Host pid of the service's Lanner process (the child of the container's init)."""
        cid = self("ps", "-q", service).stdout.strip()
        init_pid = int(_run(["docker", "inspect", "-f", "{{.State.Pid}}", cid]).stdout.strip())
        children = Path(f"/proc/{init_pid}/task/{init_pid}/children").read_text().split()
        return int(children[0]) if children else init_pid

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.subscribe_port}"

    def admin_token(self) -> str:
        """The token the one-shot certs service created on first start."""
        return (self.tokens_dir / "admin.token").read_text().strip()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    reason = compose_unavailable()
    if reason:
        pytest.skip(reason)
    s = ComposeStack(f"lanner-e2e-{os.getpid()}", free_port(), tmp_path_factory.mktemp("tokens"))
    s("build", timeout=900)
    try:
        up = s("up", "-d", "--wait", "--wait-timeout", "180", timeout=240, check=False)
        if up.returncode != 0:
            raise AssertionError(f"compose stack did not become healthy:\n{up.stderr[-3000:]}\n{s.logs()}")
        yield s
    finally:
        s("down", "-v", "-t", "5", timeout=120, check=False)


def _fields(alert: alert_pb2.Alert) -> dict[str, object]:
    if alert.output_fields_json:
        return dict(json.loads(alert.output_fields_json))
    return dict(MessageToDict(alert.output_fields))


def test_all_services_healthy(stack: ComposeStack) -> None:
    ps = stack.ps()
    for service in ("redis", "dispatcher", "ruleengine", "enricher", "collector"):
        assert ps[service]["State"] == "running", ps[service]
        assert ps[service]["Health"] == "healthy", ps[service]
    assert ps["certs"]["State"] == "exited" and str(ps["certs"]["ExitCode"]) == "0", ps["certs"]


def _subscribe_error(stack: ComposeStack, token: str | None, **request: object) -> grpc.StatusCode:
    metadata = (("authorization", f"Bearer {token}"),) if token is not None else None
    with grpc.insecure_channel(stack.target) as channel:
        stream = services_pb2_grpc.SubscriberServiceStub(channel).Subscribe(
            services_pb2.SubscribeRequest(**request),  # type: ignore[arg-type]
            metadata=metadata,
            timeout=15,
        )
        with pytest.raises(grpc.RpcError) as refused:
            next(iter(stream))
    return refused.value.code()


def test_subscribe_refuses_no_token_a_wrong_one_and_out_of_scope_requests(stack: ComposeStack) -> None:
    assert _subscribe_error(stack, None) == grpc.StatusCode.UNAUTHENTICATED
    assert _subscribe_error(stack, "not-a-token") == grpc.StatusCode.UNAUTHENTICATED
    # As deploy/README.md says to add a token: through the certs service, while the dispatcher runs.
    made = stack(
        "run", "--rm", "--no-deps", "--entrypoint", "lanner", "certs",
        "tokens", "new", "/tokens/tokens.yaml", "--name", "audit-only", "--source", "k8s_audit",
    )  # fmt: skip
    audit_only = made.stdout.strip().splitlines()[-1]
    # The token file was extended while the dispatcher runs: it is reloaded, no restart.
    assert _subscribe_error(stack, audit_only, sources=["syscall"]) == grpc.StatusCode.PERMISSION_DENIED
    # The published port is the public listener: the intake is not there at all.
    with grpc.insecure_channel(stack.target) as channel:
        push: grpc.StreamStreamMultiCallable[bytes, bytes] = channel.stream_stream(
            "/lanner.v1.DispatcherService/PushAlerts"
        )
        with pytest.raises(grpc.RpcError) as absent:
            next(iter(push(iter([b""]), timeout=15)))
        assert absent.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_pipeline_ports_need_the_pipeline_certificate(stack: ComposeStack) -> None:
    probe = ["exec", "-T", "ruleengine", "python3", "-m", "enricher.health", "--target", "dispatcher:7704"]
    plain = stack(*probe, check=False)
    assert plain.returncode == 1 and "UNAVAILABLE" in plain.stdout, plain.stdout + plain.stderr
    assert stack(*probe, "--tls-dir", "/etc/lanner/tls").returncode == 0
    # Each service holds the public material only: the CA key stays in the certs volume.
    listing = stack("exec", "-T", "dispatcher", "ls", "/etc/lanner/tls").stdout.split()
    assert sorted(listing) == ["ca.crt", "pipeline.crt", "pipeline.key"]


def test_shell_in_another_container_alerts_with_its_id_and_image(stack: ComposeStack) -> None:
    subscriber = AlertCollector(stack.target, token=stack.admin_token())
    tokens = str(stack.tokens_dir / "tokens.yaml")
    hidden = AlertCollector(stack.target, token=add_token(tokens, {"name": "no-fields", "output_fields": False}))
    critical = AlertCollector(stack.target, token=add_token(tokens, {"name": "critical", "min_priority": "critical"}))
    for client in (subscriber, hidden, critical):
        assert client.connected.wait(30), "could not subscribe to the dispatcher in compose"
    name = f"lanner-e2e-victim-{os.getpid()}"
    out = _run(["docker", "run", "-d", "--name", name, BASE, "sleep", "120"], check=True)
    container_id = out.stdout.strip()[:12]
    try:
        time.sleep(1.0)
        _run(["docker", "exec", name, "bash", "-c", "echo lanner-e2e"], check=True)

        def shell_in_victim(a: alert_pb2.Alert) -> bool:
            f = _fields(a)
            return f.get("container.id") == container_id and f.get("proc.name") == "bash"

        try:
            alert = subscriber.wait_for(shell_in_victim, timeout=30)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{stack.logs()}") from None
        f = _fields(alert)
        assert f.get("container.image.repository") == "local/bookworm"
        assert f.get("container.name") == name
        assert "bash" in str(f.get("proc.cmdline"))
        # A token without output fields sees the alert, and nothing of what the process was.
        seen = hidden.wait_for(lambda a: a.alert_id == alert.alert_id, timeout=30)
        assert not seen.output_fields_json and not seen.output_fields and name not in seen.output
        # A token for critical alerts only never sees this notice-level one (its peers above already have it).
        assert all(a.priority <= alert_pb2.PRIORITY_CRITICAL for a in critical.alerts)
        assert alert.alert_id not in {a.alert_id for a in critical.alerts}
    finally:
        _run(["docker", "rm", "-f", name])
        for client in (subscriber, hidden, critical):
            client.close()


def test_frozen_service_is_reported_unhealthy(stack: ComposeStack) -> None:
    pid = stack.main_pid("enricher")
    os.kill(pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 60  # 3 failed probes (3 s apart, 5 s timeout each)
        while stack.health("enricher") != "unhealthy":
            assert time.monotonic() < deadline, f"enricher never reported unhealthy: {stack.ps()['enricher']}"
            time.sleep(1)
        table = stack("ps", "enricher").stdout
        assert "unhealthy" in table
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + 60
    while stack.health("enricher") != "healthy":
        assert time.monotonic() < deadline, f"enricher did not recover: {stack.ps()['enricher']}"
        time.sleep(1)
