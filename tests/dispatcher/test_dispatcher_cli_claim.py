# SPDX-License-Identifier: Apache-2.0
"""The `lanner subscribe` client and stdout output as real processes; claiming and trimming of the stream."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

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
from prometheus_client import REGISTRY

from dispatcher.driver import group_name
from lanner.v1 import alert_pb2

pytestmark = pytest.mark.integration
LANNER = [sys.executable, "-m", "lanner.cli"]


async def _read_lines(proc: asyncio.subprocess.Process, n: int) -> list[str]:
    assert proc.stdout is not None
    return [(await asyncio.wait_for(proc.stdout.readline(), 10)).decode().rstrip("\n") for _ in range(n)]


async def test_lanner_subscribe_prints_text_and_json(redis_url: str, bind: str) -> None:
    cfg = base_config(redis_url, bind)
    async with running(cfg) as d:
        text = await asyncio.create_subprocess_exec(
            *LANNER, "subscribe", "--target", d.target, "--min-priority", "warning", stdout=asyncio.subprocess.PIPE
        )
        js = await asyncio.create_subprocess_exec(
            *LANNER, "subscribe", "--target", d.target, "--json", "--rule", "B", stdout=asyncio.subprocess.PIPE
        )
        await wait_for(lambda: REGISTRY.get_sample_value("lanner_dispatcher_subscribers") == 2, timeout=20)
        alerts = [
            make_alert(0, rule="A", priority=alert_pb2.PRIORITY_WARNING),
            make_alert(1, rule="B", priority=alert_pb2.PRIORITY_NOTICE),
        ]
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=alerts)])
        assert await _read_lines(text, 1) == [alerts[0].output]
        got = json.loads((await _read_lines(js, 1))[0])
        assert got["rule"] == "B" and got["priority"] == "Notice" and got["hostname"] == "host1"
        for p in (text, js):
            p.send_signal(signal.SIGINT)
            assert await asyncio.wait_for(p.wait(), 10) in (0, 130)


async def test_lanner_subscribe_bad_target_is_a_clear_error() -> None:
    proc = await asyncio.create_subprocess_exec(
        *LANNER, "subscribe", "--target", f"127.0.0.1:{free_port()}", "--min-priority", "loud",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2 and b"--min-priority: unknown priority 'loud'" in err


async def test_stdout_output_in_a_real_process(redis_proc: RedisProcess, redis_url: str, tmp_path: Path) -> None:
    bind = f"127.0.0.1:{free_port()}"
    config = tmp_path / "lanner.yaml"
    config.write_text(
        f"dispatcher:\n  bind: {bind}\n  metrics_bind: ''\n  redis_url: {redis_url}\n"
        "  outputs:\n    stdout: {enabled: true, json_output: true, min_priority: notice}\n"
    )
    proc = await asyncio.create_subprocess_exec(
        *LANNER, "dispatcher", "--config", str(config), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await wait_listening(bind)
        alerts = [make_alert(0, priority=alert_pb2.PRIORITY_DEBUG), make_alert(1)]
        await push(bind, [alert_pb2.AlertBatch(batch_seq=1, alerts=alerts)])
        out = json.loads((await _read_lines(proc, 1))[0])
        assert out["output_fields"]["proc.pid"] == 4243 and out["priority"] == "Notice"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0


async def test_config_error_exits_cleanly(tmp_path: Path) -> None:
    config = tmp_path / "lanner.yaml"
    config.write_text("dispatcher:\n  outputs:\n    file: {pth: x}\n")
    proc = subprocess.run([*LANNER, "dispatcher", "--config", str(config)], capture_output=True, timeout=30)
    assert proc.returncode == 2
    assert f"{config}: dispatcher.outputs.file.pth: unknown key (did you mean 'path'?)".encode() in proc.stderr
    assert b"Traceback" not in proc.stderr


async def test_abandoned_pending_entries_are_claimed(
    redis_url: str, bind: str, redis_proc: RedisProcess, tmp_path: Path
) -> None:
    out = tmp_path / "a.jsonl"
    cfg = base_config(redis_url, bind, outputs={"file": {"path": str(out)}}, claim_idle_s=0.3)
    r = redis_proc.client()
    # A replica called "gone" read three alerts and died before acking them.
    r.xgroup_create(cfg.stream, group_name("file"), id="$", mkstream=True)
    for i in range(3):
        r.xadd(cfg.stream, {"a": make_alert(i).SerializeToString()})
    assert len(r.xreadgroup(group_name("file"), "gone", {cfg.stream: ">"})[0][1]) == 3
    async with running(cfg):
        await wait_for(lambda: len(lines(out)) == 3, timeout=10)
        await wait_for(lambda: r.xpending(cfg.stream, group_name("file"))["pending"] == 0)
    r.close()


async def test_trimming_keeps_only_undelivered(
    redis_url: str, bind: str, redis_proc: RedisProcess, tmp_path: Path
) -> None:
    good, bad = tmp_path / "good.jsonl", tmp_path / "missing" / "bad.jsonl"
    # No replay retention: delivered alerts may go at once.
    cfg = base_config(redis_url, bind, outputs={"file": {"path": str(good)}}, replay_retention_s=0)
    r = redis_proc.client()
    async with running(cfg) as d:
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=[make_alert(i) for i in range(20)])])
        await wait_for(lambda: len(lines(good)) == 20)
        # Everything is delivered: the trimmer drops it all but the last entry.
        await wait_for(lambda: r.xlen(cfg.stream) <= 1)
    cfg2 = base_config(redis_url, bind, outputs={"file": {"path": str(good)}, "file:bad": {"path": str(bad)}})
    async with running(cfg2) as d:
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=2, alerts=[make_alert(i) for i in range(20, 30)])])
        await wait_for(lambda: len(lines(good)) == 30)
        await asyncio.sleep(0.6)  # a few trim rounds
        # "file:bad" has not delivered them, so all ten stay, and its backlog says so.
        assert r.xlen(cfg.stream) >= 10
        await wait_for(
            lambda: REGISTRY.get_sample_value("lanner_dispatcher_output_backlog", {"output": "file:bad"}) == 10
        )
        assert REGISTRY.get_sample_value("lanner_dispatcher_output_backlog", {"output": "file"}) == 0
        assert (REGISTRY.get_sample_value("lanner_dispatcher_stream_entries") or 0) >= 10
    r.close()


os.environ.setdefault("PYTHONUNBUFFERED", "1")
