# SPDX-License-Identifier: Apache-2.0
"""`lanner up`'s private Redis listens on a Unix socket too, and the services are given its URL."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import redis

from lanner.up import redis_argv, redis_socket


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_short_state_dir_gets_a_socket_and_a_long_one_keeps_to_tcp(tmp_path: Path) -> None:
    sock = redis_socket(tmp_path)
    assert sock == (tmp_path / "redis" / "redis.sock").absolute()
    assert ["--unixsocket", str(sock)] == redis_argv(tmp_path, 1)[-4:-2]
    deep = tmp_path / ("x" * 100)
    assert redis_socket(deep) is None
    assert "--unixsocket" not in redis_argv(deep, 1)


def test_the_private_redis_answers_on_its_socket(tmp_path: Path) -> None:
    proc = subprocess.Popen(redis_argv(tmp_path, _free_port()), stdout=subprocess.DEVNULL)
    try:
        sock = redis_socket(tmp_path)
        assert sock is not None
        client = redis.Redis.from_url(f"unix://{sock}?db=0")
        deadline = time.monotonic() + 30
        while True:
            try:
                assert client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server never answered on its socket"
                time.sleep(0.05)
        client.close()
    finally:
        proc.terminate()
        proc.wait(10)
