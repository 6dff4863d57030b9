# SPDX-License-Identifier: Apache-2.0
"""``lanner up`` says what it exposes: on loopback without TLS or tokens it starts and says so; reachable from the
network without them it refuses (nothing starts), unless --allow-open, which warns."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from lanner.exposure import exposure
from lanner.up import EXIT_CONFIG_ERROR, SERVICES, load_configs

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def up(tmp_path: Path, *args: str, config: str = "") -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "lanner.cli", "up", "--state-dir", str(tmp_path / "state"), *args]
    if config:
        (tmp_path / "lanner.yaml").write_text(config)
        cmd += ["--config", str(tmp_path / "lanner.yaml")]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


OPEN = """
collector:
  bind: 0.0.0.0:17701
  k8s_audit_bind: 0.0.0.0:17710
dispatcher:
  public_bind: 0.0.0.0:17705
  sidekick: {bind: 0.0.0.0:17801}
"""


def test_loopback_without_tls_starts_and_says_so(tmp_path: Path) -> None:
    # Redis and the dispatcher on free ports: the banner is checked without eBPF or the ports 7701-7704.
    without = [a for s in SERVICES if s != "dispatcher" for a in ("--without", s)]
    config = f"dispatcher: {{bind: 127.0.0.1:{free_port()}, metrics_bind: 127.0.0.1:{free_port()}}}\n"
    proc = up(tmp_path, *without, "--redis-port", str(free_port()), config=config)
    assert proc.stderr is not None
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        if "dispatcher listening" in line or not line:
            break
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    text = "".join(lines)
    assert (
        "security: open to every local user (loopback only, no mutual TLS or tokens): dispatcher 127.0.0.1:" in text
    ), text
    assert "dispatcher listening" in text  # it started: loopback may stay open


def test_network_without_tls_or_tokens_refuses_to_start(tmp_path: Path) -> None:
    proc = up(tmp_path, config=OPEN)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_CONFIG_ERROR, err
    assert "not starting: collector.bind 0.0.0.0:17701 is reachable from the network without mutual TLS" in err
    assert "not starting: dispatcher Subscribe on 0.0.0.0:17705 has no tokens_file" in err
    assert "not starting: collector.k8s_audit_bind 0.0.0.0:17710 takes audit events from anyone" in err
    assert "not starting: dispatcher.sidekick.bind 0.0.0.0:17801 takes alerts from anyone" in err
    assert "--allow-open" in err
    assert not (tmp_path / "state" / "logs" / "collector.log").exists()


def test_what_counts_as_open(tmp_path: Path) -> None:
    (tmp_path / "tokens.yaml").write_text("tokens: []\n")
    (tmp_path / "c.yaml").write_text(
        f"""
collector: {{bind: 0.0.0.0:7701, tls_dir: /pki}}
enricher: {{tls_dir: /pki}}
ruleengine: {{tls_dir: /pki}}
dispatcher: {{bind: 0.0.0.0:7704, tls_dir: /pki, public_bind: 0.0.0.0:7705, tokens_file: {tmp_path}/tokens.yaml}}
"""
    )
    local, problems = exposure(load_configs(str(tmp_path / "c.yaml")), SERVICES)
    assert local == [] and problems == []
    local, problems = exposure(load_configs(None), SERVICES)
    assert problems == []
    assert local == [
        "dispatcher 127.0.0.1:7704",
        "dispatcher Subscribe without tokens",
        "ruleengine 127.0.0.1:7703",
        "enricher 127.0.0.1:7702",
        "collector 127.0.0.1:7701",
    ]


def test_secure_closes_the_stack_with_one_flag(tmp_path: Path) -> None:
    """``lanner up --secure``: the dispatcher speaks only mutual TLS, Subscribe wants the admin token it made."""
    import grpc

    from enricher.health import check_health
    from lanner.pki import sync_channel
    from lanner.v1 import services_pb2, services_pb2_grpc

    without = [a for s in SERVICES if s != "dispatcher" for a in ("--without", s)]
    bind = f"127.0.0.1:{free_port()}"
    config = f"dispatcher: {{bind: '{bind}', metrics_bind: '127.0.0.1:{free_port()}'}}\n"
    proc = up(tmp_path, *without, "--secure", "--redis-port", str(free_port()), config=config)
    assert proc.stderr is not None
    state = tmp_path / "state"
    lines = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if "dispatcher listening" in line or not line:
                break
        text = "".join(lines)
        assert "security: mutual TLS between the services and tokens on Subscribe" in text, text
        assert "open to every local user" not in text
        assert check_health(bind, "", 5.0, str(state / "pki"))[0]
        assert not check_health(bind, "", 5.0, "")[0]  # plain TCP cannot even ask
        token = (state / "admin.token").read_text().strip()
        with sync_channel(bind, str(state / "pki")) as ch:
            stub = services_pb2_grpc.SubscriberServiceStub(ch)
            codes = []
            for metadata in (None, (("authorization", f"Bearer {token}"),)):
                stream = stub.Subscribe(services_pb2.SubscribeRequest(), metadata=metadata, timeout=2)
                try:
                    next(iter(stream))
                except grpc.RpcError as exc:
                    codes.append(exc.code())  # type: ignore[attr-defined]
            # No token: refused. The admin token: subscribed, and nothing to read before the deadline.
            assert codes == [grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.DEADLINE_EXCEEDED]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert (state / "admin.token").stat().st_mode & 0o077 == 0


def test_extra_listeners_must_be_free_too(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = f"dispatcher: {{bind: '127.0.0.1:{free_port()}', public_bind: '127.0.0.1:{port}'}}\n"
        without = [a for s in SERVICES if s != "dispatcher" for a in ("--without", s)]
        proc = up(tmp_path, *without, "--redis-port", str(free_port()), config=config)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert f"not starting: port {port} (dispatcher public, 127.0.0.1:{port}) is in use" in err
