# SPDX-License-Identifier: Apache-2.0
"""The rule engine's real client (lanner.streaming.BatchSender, reliable) against a dispatcher that crashes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path

import pytest
from dispatcher_testlib import RedisProcess, free_port, lines, make_alert, wait_for, wait_listening

from lanner.streaming import BatchSender
from lanner.v1 import alert_pb2, services_pb2_grpc

pytestmark = pytest.mark.integration


async def _start(config: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dispatcher", "--config", str(config), stderr=asyncio.subprocess.DEVNULL
    )


async def test_every_alert_once_across_a_dispatcher_crash(
    redis_proc: RedisProcess, redis_url: str, tmp_path: Path
) -> None:
    bind = f"127.0.0.1:{free_port()}"
    out = tmp_path / "alerts.jsonl"
    config = tmp_path / "lanner.yaml"
    config.write_text(
        f"dispatcher:\n  bind: {bind}\n  metrics_bind: ''\n  redis_url: {redis_url}\n  consumer: c1\n"
        f"  outputs:\n    file: {{path: {out}}}\n"
    )
    sender: BatchSender[alert_pb2.Alert] = BatchSender(
        "test->dispatcher",
        bind,
        lambda ch: services_pb2_grpc.DispatcherServiceStub(ch).PushAlerts,
        lambda seq, items, _dropped: alert_pb2.AlertBatch(batch_seq=seq, alerts=items),
        batch_size=16,
        reliable=True,
        backoff_initial_s=0.05,
        backoff_max_s=0.2,
    )
    proc = await _start(config)
    runner = asyncio.create_task(sender.run())
    try:
        await wait_listening(bind)
        for i in range(100):
            sender.submit(make_alert(i))
        await wait_for(lambda: len(lines(out)) >= 50, timeout=20)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        # The dispatcher is gone: these wait in the sender, unacked.
        for i in range(100, 200):
            sender.submit(make_alert(i))
        await asyncio.sleep(0.3)
        proc = await _start(config)
        await wait_for(lambda: len(lines(out)) >= 200, timeout=30)
        await asyncio.sleep(0.5)  # anything duplicated would show up now
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 20)
    pids = [json.loads(x)["output_fields"]["proc.pid"] - 4242 for x in lines(out)]
    assert sorted(set(pids)) == list(range(200)), "an accepted alert was lost"
    # At-least-once: only alerts the file output wrote but had not acked when killed may appear twice.
    assert len(pids) - 200 <= 16
    assert sender.dropped == 0
