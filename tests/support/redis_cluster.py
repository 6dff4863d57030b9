# SPDX-License-Identifier: Apache-2.0
"""A real, throwaway Redis Cluster for tests: three primaries on loopback ports, no replicas, no persistence."""

from __future__ import annotations

import random
import socket
import subprocess
import time
from pathlib import Path

import redis

from tests.support.redis_server import REDIS_SERVER

REDIS_CLI = str(Path(REDIS_SERVER).with_name("redis-cli"))


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    while True:
        port = random.randint(20000, 45000)
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port


class RedisClusterProcess:
    """Three ``redis-server --cluster-enabled yes`` processes joined with ``redis-cli --cluster create``."""

    def __init__(self, workdir: Path, primaries: int = 3) -> None:
        self.workdir = workdir
        self.ports = [_cluster_port() for _ in range(primaries)]
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> None:
        for i in range(len(self.ports)):
            self._start_node(i)
        nodes = [f"127.0.0.1:{p}" for p in self.ports]
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip

        def ready() -> bool:
            infos = [redis.Redis(port=p).execute_command("CLUSTER INFO") for p in self.ports]
            return all(str(i.get("cluster_state")) in ("ok", "b'ok'") for i in infos)

        self._wait(ready)

    def _start_node(self, i: int) -> None:
        """Start node ``i``; on another port when its port was taken between the check and the start (another
        process on this shared host may bind any free port meanwhile)."""
        for _ in range(5):
            port = self.ports[i]
            node_dir = self.workdir / str(port)
            node_dir.mkdir(parents=True, exist_ok=True)
            flags = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--dir", str(node_dir)]
            flags += ["--save", "", "--appendonly", "no"]
            argv = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", *flags]
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

            def up(proc: subprocess.Popen[bytes] = proc, port: int = port) -> bool:
                # A server that exited (its port was taken) stops the wait at once.
                return proc.poll() is not None or bool(redis.Redis(port=port, socket_timeout=5).ping())

            self._wait(up)
            if proc.poll() is None:
                self.procs.append(proc)
                return
            self.ports[i] = _cluster_port()
        raise RuntimeError("redis cluster node could not start on any port tried")

    @staticmethod
    def _wait(cond: object, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if cond():  # type: ignore[operator]
                    return
            except (redis.ConnectionError, redis.TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("redis cluster did not come up")
            time.sleep(0.05)

    def client(self) -> redis.RedisCluster:
        return redis.RedisCluster(host="127.0.0.1", port=self.ports[0])

    def flush(self) -> None:
        for port in self.ports:
            redis.Redis(port=port).flushall()

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(10)
        self.procs = []
