# SPDX-License-Identifier: Apache-2.0
"""Nothing accepted is lost: persist-before-ack, dedup of redelivery, Redis outages, dispatcher crashes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from dispatcher_testlib import (
    RedisProcess,
    base_config,
    free_port,
    lines,
    make_alert,
    push,
    running,
    wait_for,
    wait_listening,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dispatcher.config import DispatcherConfig
from dispatcher.driver import group_name
from lanner.v1 import alert_pb2

pytestmark = pytest.mark.integration


def batch(seq: int, start: int, n: int) -> alert_pb2.AlertBatch:
    return alert_pb2.AlertBatch(batch_seq=seq, alerts=[make_alert(i) for i in range(start, start + n)])


async def test_ack_means_persisted(redis_url: str, bind: str, redis_proc: RedisProcess) -> None:
    cfg = base_config(redis_url, bind)  # no outputs: nothing consumes or trims the stream
    r = redis_proc.client()
    async with running(cfg) as d:
        sent = batch(1, 0, 50)
        acks = await push(d.target, [sent])
        assert acks[0].accepted == 50
        # The ack came back, so every alert is already in the stream, byte for byte.
        stored = [alert_pb2.Alert.FromString(fields[b"a"]) for _, fields in r.xrange(cfg.stream)]
        assert stored == list(sent.alerts)
        # The rule engine resends the batch (its ack was lost): acked again, stored once.
        acks = await push(d.target, [sent])
        assert acks[0].accepted == 50
        assert r.xlen(cfg.stream) == 50
    r.close()


async def test_redelivered_batches_are_delivered_once(redis_url: str, bind: str, tmp_path: Path) -> None:
    out = tmp_path / "a.jsonl"
    cfg = base_config(redis_url, bind, outputs={"file": {"path": str(out)}})
    async with running(cfg) as d:
        await push(d.target, [batch(1, 0, 50)])
        # A resend of the same batch and a batch overlapping it.
        acks = await push(d.target, [batch(1, 0, 50), batch(2, 25, 50)])
        assert [a.accepted for a in acks] == [50, 50]
        await wait_for(lambda: len(lines(out)) >= 75)
        await asyncio.sleep(0.3)
        pids = [json.loads(line)["output_fields"]["proc.pid"] - 4242 for line in lines(out)]
        assert sorted(pids) == list(range(75))


async def test_alerts_without_id_are_not_deduped(redis_url: str, bind: str, redis_proc: RedisProcess) -> None:
    cfg = base_config(redis_url, bind)
    async with running(cfg) as d:
        b = alert_pb2.AlertBatch(batch_seq=1, alerts=[make_alert(0, alert_id=""), make_alert(0, alert_id="")])
        await push(d.target, [b])
    assert redis_proc.client().xlen(cfg.stream) == 2


async def test_invalid_alerts_rejected_rest_accepted(redis_url: str, bind: str, redis_proc: RedisProcess) -> None:
    cfg = base_config(redis_url, bind)
    async with running(cfg) as d:
        b = batch(7, 0, 3)
        b.alerts[1].priority = 99  # type: ignore[assignment]
        acks = await push(d.target, [b])
    assert (acks[0].batch_seq, acks[0].accepted) == (7, 2)
    assert redis_proc.client().xlen(cfg.stream) == 2


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    """A redis-server this test may stop and start again on the same port."""
    proc = RedisProcess()
    proc.start()
    yield proc
    proc.stop()


async def test_redis_outage_holds_acks_and_delivery_resumes(own_redis: RedisProcess, bind: str, tmp_path: Path) -> None:
    out = tmp_path / "a.jsonl"
    cfg = base_config(own_redis.url, bind, outputs={"file": {"path": str(out)}})
    async with running(cfg) as d:
        assert (await push(d.target, [batch(1, 0, 5)]))[0].accepted == 5
        await wait_for(lambda: len(lines(out)) == 5)
        own_redis.stop()
        pending = asyncio.create_task(push(d.target, [batch(2, 5, 5)], timeout=30))
        # Once the dispatcher reports the outage, the batch it holds must still be unacknowledged.
        await _wait_health(d.target, health_pb2.HealthCheckResponse.NOT_SERVING)
        assert not pending.done(), "acked while Redis was down"
        own_redis.start()
        acks = await asyncio.wait_for(pending, 30)
        assert acks[0].accepted == 5
        await wait_for(lambda: len(lines(out)) == 10, timeout=20)
        await _wait_health(d.target, health_pb2.HealthCheckResponse.SERVING)


async def _wait_health(target: str, want: int, timeout: float = 10.0) -> None:
    """Health follows Redis: probes (compose, Kubernetes) see the dispatcher unable to accept alerts."""
    async with grpc.aio.insecure_channel(target) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            resp = await stub.Check(health_pb2.HealthCheckRequest(service=""))
            if resp.status == want:
                return
            assert asyncio.get_running_loop().time() < deadline, f"health stayed {resp.status}, wanted {want}"
            await asyncio.sleep(0.2)


def _write_config(path: Path, redis_url: str, bind: str, out: Path) -> None:
    path.write_text(
        "dispatcher:\n"
        f"  bind: {bind}\n"
        "  metrics_bind: ''\n"
        f"  redis_url: {redis_url}\n"
        "  consumer: crash-test\n"
        "  outputs:\n"
        f"    file: {{path: {out}, backoff_initial_s: 0.05, backoff_max_s: 0.2}}\n"
    )


def _start(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "dispatcher", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def _ready(target: str) -> None:
    await wait_listening(target)


async def test_pending_alerts_delivered_after_crash(redis_url: str, redis_proc: RedisProcess, tmp_path: Path) -> None:
    bind = f"127.0.0.1:{free_port()}"
    out = tmp_path / "not-yet" / "alerts.jsonl"  # directory missing: the file output keeps failing
    config = tmp_path / "lanner.yaml"
    _write_config(config, redis_url, bind, out)
    r = redis_proc.client()
    proc = _start(config)
    try:
        await _ready(bind)
        assert (await push(bind, [batch(1, 0, 10)]))[0].accepted == 10
        # The output has read all ten (they are pending in its group) but cannot write them.
        await wait_for(lambda: r.xpending(DispatcherConfig().stream, group_name("file"))["pending"] == 10)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert "output delivery failed; retrying" in err and "Traceback" not in err
    out.parent.mkdir()
    proc = _start(config)
    try:
        await wait_for(lambda: len(lines(out)) == 10, timeout=20)
        assert sorted(json.loads(x)["output_fields"]["proc.pid"] for x in lines(out)) == list(range(4242, 4252))
        await wait_for(lambda: r.xpending(DispatcherConfig().stream, group_name("file"))["pending"] == 0)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    r.close()


async def test_waits_for_redis_at_startup_with_clear_message(tmp_path: Path) -> None:
    rp = RedisProcess(free_port())
    bind = f"127.0.0.1:{free_port()}"
    out = tmp_path / "a.jsonl"
    config = tmp_path / "lanner.yaml"
    _write_config(config, rp.url, bind, out)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dispatcher", "--config", str(config), stderr=asyncio.subprocess.PIPE
    )
    assert proc.stderr is not None
    seen: list[str] = []

    async def until(text: str) -> None:
        while not any(text in line for line in seen):
            line = await asyncio.wait_for(proc.stderr.readline(), 30)  # type: ignore[union-attr]
            assert line, f"dispatcher exited; stderr: {seen}"
            seen.append(line.decode())

    try:
        await until("redis unavailable; holding start-up (waiting for redis) and retrying")
        assert proc.returncode is None
        rp.start()
        await until("redis reachable again")
        await wait_listening(bind)
        assert (await push(bind, [batch(1, 0, 3)]))[0].accepted == 3
        await wait_for(lambda: len(lines(out)) == 3, timeout=20)
        proc.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(proc.stderr.read(), 30)
        seen.append(rest.decode())
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        rp.stop()
    assert "Traceback" not in "".join(seen)
