# SPDX-License-Identifier: Apache-2.0
"""Fixtures for whole-pipeline tests: `lanner up` on the real kernel, and a Subscribe client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from lanner.v1 import alert_pb2, services_pb2, services_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]


def ebpf_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root for eBPF"
    if not Path("/sys/kernel/tracing/events/syscalls").exists():
        return "tracefs not mounted at /sys/kernel/tracing (run scripts/setup-host.sh)"
    if shutil.which("redis-server") is None:
        return "redis-server not installed"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.3):
        return True
    return False


class AlertCollector:
    """Subscribes to the dispatcher in a thread and keeps every alert it receives."""

    def __init__(self, target: str, token: str = "", request: services_pb2.SubscribeRequest | None = None) -> None:
        self.target = target
        self.metadata = (("authorization", f"Bearer {token}"),) if token else None
        self.request = request or services_pb2.SubscribeRequest(subscriber_name="e2e")
        self.alerts: list[alert_pb2.Alert] = []
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with grpc.insecure_channel(self.target) as channel:
                    grpc.channel_ready_future(channel).result(timeout=5)
                    stub = services_pb2_grpc.SubscriberServiceStub(channel)
                    stream = stub.Subscribe(self.request, metadata=self.metadata)
                    self.connected.set()
                    for alert in stream:
                        self.alerts.append(alert)
                        if self._stop.is_set():
                            stream.cancel()
                            return
            except (grpc.RpcError, grpc.FutureTimeoutError):
                self.connected.clear()
                time.sleep(0.3)

    def wait_for(self, predicate: Callable[[alert_pb2.Alert], bool], timeout: float) -> alert_pb2.Alert:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for alert in list(self.alerts):
                if predicate(alert):
                    return alert
            time.sleep(0.05)
        summary = [(a.rule, a.output[:200]) for a in self.alerts[-20:]]
        raise AssertionError(f"no matching alert within {timeout}s; last alerts: {summary}")

    def close(self) -> None:
        self._stop.set()


@pytest.fixture(scope="session")
def lanner_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    reason = ebpf_unavailable()
    if reason:
        pytest.skip(reason)
    busy = [p for p in (7701, 7702, 7703, 7704) if port_open(p)]
    if busy:
        pytest.fail(f"ports {busy} are taken: is another Lanner running?")
    state = tmp_path_factory.mktemp("lanner-up")
    proc = subprocess.Popen(
        [sys.executable, "-m", "lanner.cli", "up", "--state-dir", str(state), "--redis-port", str(free_port())],
        cwd=ROOT,
        stdout=(state / "up.stdout").open("wb"),
        stderr=(state / "up.stderr").open("wb"),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not all(port_open(p) for p in (7701, 7702, 7703, 7704)):
            if proc.poll() is not None or time.monotonic() > deadline:
                logs = {p.name: p.read_text(errors="replace")[-3000:] for p in (state / "logs").glob("*.log")}
                pytest.fail(f"lanner up did not come up: {(state / 'up.stderr').read_text()} {logs}")
            time.sleep(0.3)
        yield state
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def subscriber(lanner_up: Path) -> Iterator[AlertCollector]:
    collector = AlertCollector("127.0.0.1:7704")
    assert collector.connected.wait(30), "could not subscribe to the dispatcher"
    # The collector needs its BPF programs attached before the test's syscalls happen.
    asyncio.run(asyncio.sleep(0))
    yield collector
    collector.close()
