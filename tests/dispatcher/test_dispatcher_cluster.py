# SPDX-License-Identifier: Apache-2.0
"""Fleet scale: the dispatcher on a real local 3-primary Redis Cluster, and three replicas sharing the work."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
import redis
import yaml
from aiohttp import web
from dispatcher_testlib import base_config, free_port, lines, make_alert, push, running, subscribe_call, wait_for

from dispatcher.config import DispatcherConfig, hash_tag
from dispatcher.driver import group_name
from dispatcher.store import PAYLOAD_FIELD
from lanner.v1 import alert_pb2
from tests.support.redis_cluster import RedisClusterProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterProcess]:
    proc = RedisClusterProcess(tmp_path_factory.mktemp("redis-cluster"))
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def cluster_url(cluster: RedisClusterProcess) -> str:
    cluster.flush()
    return cluster.url


def batches(start: int, stop: int, size: int = 20) -> list[alert_pb2.AlertBatch]:
    return [
        alert_pb2.AlertBatch(batch_seq=i + 1, alerts=[make_alert(j) for j in range(i, min(i + size, stop))])
        for i in range(start, stop, size)
    ]


def test_cluster_mode_requires_one_hash_tag() -> None:
    assert hash_tag("lanner:{alerts}:seen:") == "alerts" and hash_tag("a{}b") is None
    with pytest.raises(ValueError, match=r"same \{hash tag\}"):
        DispatcherConfig(redis_cluster=True, stream="lanner:alerts", dedup_prefix="lanner:alert-seen:")
    DispatcherConfig(redis_cluster=True)  # the defaults are tagged


async def test_delivery_grouping_dedup_and_replay_on_redis_cluster(
    cluster_url: str, cluster: RedisClusterProcess, tmp_path: Path
) -> None:
    out = tmp_path / "all.jsonl"
    outputs = {"file": {"path": str(out)}, "stdout": {"group_window_s": 1.0}}
    cfg = base_config(cluster_url, f"127.0.0.1:{free_port()}", redis_cluster=True, outputs=outputs)
    async with running(cfg) as d, grpc.aio.insecure_channel(d.target) as ch:
        acks = await push(d.target, batches(0, 100), timeout=60)
        assert sum(a.accepted for a in acks) == 100
        await push(d.target, batches(0, 20), timeout=60)  # redelivery: recognised by the keyed dedup, not stored again
        await wait_for(lambda: len(lines(out)) == 100, timeout=120)
        # Replay from the start of the stream, through the cluster.
        call = subscribe_call(ch, since_unix_ms=int(time.time() * 1000) - 60_000)
        got = [await asyncio.wait_for(call.read(), 60) for _ in range(100)]
        assert [g.message for g in got] == [f"A shell was spawned (n={i})" for i in range(100)]
        call.cancel()
    client = cluster.client()
    slots = {client.keyslot(k) for k in client.scan_iter(match="lanner:*")}
    assert len(slots) == 1  # stream, dedup keys, grouping windows: one slot
    client.close()


@dataclass
class Receiver:
    """A webhook that holds each request a little, and counts only the answers that reached the sender."""

    url: str = ""
    delivered: list[int] = field(default_factory=list)
    delay: float = 0.05


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        await asyncio.sleep(rec.delay)
        if request.transport is not None and not request.transport.is_closing():
            rec.delivered.append(int(body["output_fields"]["proc.pid"]))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/"  # type: ignore[union-attr]
    yield rec
    await runner.cleanup()


def _replica(config: Path, name: str, bind: str, log: Path) -> subprocess.Popen[bytes]:
    env = os.environ | {"LANNER_DISPATCHER__CONSUMER": name, "LANNER_DISPATCHER__BIND": bind, "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "dispatcher", "--config", str(config)], stdout=err, stderr=err, env=env
        )


STREAM, GROUP = DispatcherConfig().stream, group_name("http")


def _pending(client: redis.RedisCluster, consumer: str | None = None) -> list[int]:
    """The alerts (by their proc.pid) read from the stream by ``consumer`` (None: by anyone) and not acknowledged."""
    kw = {"consumername": consumer} if consumer else {}
    out = []
    for p in client.xpending_range(STREAM, GROUP, min="-", max="+", count=1000, **kw):
        for _, fields in client.xrange(STREAM, min=p["message_id"], max=p["message_id"]):
            alert = alert_pb2.Alert.FromString(fields[PAYLOAD_FIELD])
            out.append(int(alert.output_fields["proc.pid"]))
    return out


async def test_three_replicas_share_the_work_and_claim_a_killed_ones_pending_alerts(
    cluster: RedisClusterProcess, cluster_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    config = tmp_path / "lanner.yaml"
    dispatcher = {
        "metrics_bind": "",
        "redis_url": cluster_url,
        "redis_cluster": True,
        "dedup_secret": "fleet-secret-0123456789abcdef",
        "read_batch": 5,
        "claim_idle_s": 10.0,  # long enough that a live but slow replica's pending reads are never taken over
        "outputs": {"stdout": {"enabled": False}, "http": {"url": receiver.url, "timeout_s": 30}},
    }
    config.write_text(yaml.safe_dump({"dispatcher": dispatcher}))
    binds = [f"127.0.0.1:{free_port()}" for _ in range(3)]
    logs = [tmp_path / f"replica-{i}.log" for i in range(3)]
    procs = [_replica(config, f"replica-{i}", b, log) for i, (b, log) in enumerate(zip(binds, logs, strict=True))]
    client = cluster.client()
    abandoned: list[int] = []

    def kill_holding_alerts() -> bool:
        # Frozen, the replica can neither deliver nor acknowledge: what it has pending now is what it abandons.
        procs[2].send_signal(signal.SIGSTOP)
        abandoned.extend(_pending(client, "replica-2"))
        if abandoned:
            procs[2].send_signal(signal.SIGKILL)
            return True
        procs[2].send_signal(signal.SIGCONT)
        return False

    try:
        for b in binds:
            await wait_for(lambda b=b: _listening(b), timeout=60)
        # Alerts enter through every replica.
        for i, b in enumerate(binds):
            await push(b, batches(i * 100, (i + 1) * 100), timeout=60)
        await wait_for(lambda: len(receiver.delivered) >= 60, timeout=120)
        # With deliveries in flight and alerts read but not acknowledged in its group.
        await wait_for(kill_holding_alerts, timeout=120, interval=0.05)
        procs[2].wait(60)
        # Until every alert was delivered and acknowledged: nothing more can arrive then.
        await wait_for(lambda: len(set(receiver.delivered)) >= 300 and not _pending(client), timeout=240)
        assert sorted(set(receiver.delivered)) == [4242 + i for i in range(300)]
        # Shared work has no duplicates. Delivery is at-least-once: an alert the killed replica had read, but not
        # acknowledged (it acknowledges each read batch once it is delivered), may arrive twice; nothing else.
        repeated = {pid: n for pid, n in Counter(receiver.delivered).items() if n > 1}
        assert set(repeated) <= set(abandoned) and all(n == 2 for n in repeated.values()), (repeated, abandoned)
        # The survivors took over what the killed replica had read but not delivered.
        assert any("claimed abandoned alerts" in log.read_text() for log in logs[:2])
    finally:
        client.close()
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


async def _listening(target: str) -> bool:
    host, _, port = target.rpartition(":")
    try:
        _, writer = await asyncio.open_connection(host, int(port))
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True
