# SPDX-License-Identifier: Apache-2.0
"""The output driver acks a delivered batch with its next read; a stop in between still acks it, so a restart
delivers nothing twice, and a crash (no ack) delivers it again: at-least-once, as before."""

from __future__ import annotations

import json
from pathlib import Path

import redis
from dispatcher_testlib import base_config, make_alert, push, running, wait_for

from dispatcher.driver import group_name
from lanner.v1 import alert_pb2


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


async def test_a_stop_acks_what_was_delivered_and_a_restart_delivers_nothing_twice(
    redis_url: str, bind: str, tmp_path: Path
) -> None:
    target = tmp_path / "alerts.jsonl"
    cfg = base_config(redis_url, bind, outputs={"file": {"path": str(target)}})
    r = redis.Redis.from_url(redis_url)
    async with running(cfg) as d:
        for seq in range(1, 6):
            batch = alert_pb2.AlertBatch(batch_seq=seq, alerts=[make_alert(seq * 100 + i) for i in range(20)])
            await push(d.target, [batch])
        await wait_for(lambda: len(_lines(target)) == 100, 30)
    # Stopped right after the last delivery: its ack went out at the stop, not with a read that never came.
    assert r.xpending(cfg.stream, group_name("file"))["pending"] == 0
    async with running(cfg) as d:
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=9, alerts=[make_alert(999)])])
        await wait_for(lambda: len(_lines(target)) == 101, 30)
    got = [line["output_fields"]["proc.pid"] for line in _lines(target)]  # type: ignore[index]
    assert len(got) == len(set(got)) == 101
