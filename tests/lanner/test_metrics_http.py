# SPDX-License-Identifier: Apache-2.0
"""The /metrics server in its own process: idle and half-open connections cannot take it over."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.support import fuzz

pytestmark = pytest.mark.integration

SERVE = "import sys, time; from lanner.metrics import start_metrics_server as s; s(sys.argv[1]); time.sleep(600)"


@pytest.fixture
def metrics_port() -> Iterator[int]:
    port = fuzz.free_port_pair(1)[0]
    proc = subprocess.Popen([sys.executable, "-c", SERVE, f"127.0.0.1:{port}"])
    try:
        deadline = time.monotonic() + 30
        while not fuzz.port_open(port):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        yield port
    finally:
        proc.kill()
        proc.wait()


def scrape(port: int) -> str:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
                return str(resp.read().decode())
        except OSError:
            assert time.monotonic() < deadline, "metrics never served"
            time.sleep(0.5)


def test_idle_connections_time_out_and_scrapes_still_succeed(metrics_port: int) -> None:
    with contextlib.ExitStack() as held:
        idle = []
        for _ in range(100):  # more than the 64 connections served at once
            s = held.enter_context(contextlib.closing(socket.create_connection(("127.0.0.1", metrics_port))))
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x")
            idle.append(s)
        held.enter_context(fuzz.half_open_sockets(metrics_port, http2=False))
        for request in fuzz.HTTP_GARBAGE:
            fuzz.http_raw(metrics_port, request)
        text = scrape(metrics_port)
        # The server hangs up on a client that never finishes its request (the stock server waited forever).
        idle[-1].settimeout(60)
        assert idle[-1].recv(65536) == b""
    # Served while more connections than its limit sat idle; the refusals (if the idle ones arrived faster than
    # they timed out) are counted.
    assert "lanner_metrics_connections_rejected_total" in text
