# SPDX-License-Identifier: Apache-2.0
"""``lanner alerts dead list|show|replay|drop`` against a real dispatcher and Redis."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dispatcher_testlib import base_config, lines, make_alert, push, running, wait_for

from dispatcher.dead_cli import DeadLetters
from dispatcher.model import Alert
from dispatcher.registry import PermanentError
from lanner.v1 import alert_pb2

pytestmark = pytest.mark.integration


def lanner(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lanner.cli", *args], capture_output=True, text=True, timeout=60, check=False
    )


async def test_dead_letters_list_show_replay_drop(redis_url: str, bind: str, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.jsonl", tmp_path / "missing-dir" / "bad.jsonl"
    fast = {"max_retries": 1, "backoff_initial_s": 0.01, "backoff_max_s": 0.02}
    outputs = {"file": {"path": str(good)}, "file:bad": {"path": str(bad), **fast}}
    config = tmp_path / "lanner.yaml"
    config.write_text(yaml.safe_dump({"dispatcher": {"redis_url": redis_url, "outputs": outputs}}))
    cfg = base_config(redis_url, bind, outputs=outputs)
    async with running(cfg) as d:
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=[make_alert(i) for i in range(4)])])
        await wait_for(lambda: len(lines(good)) == 4)

        async def dead() -> list[dict[str, object]]:
            res = await asyncio.to_thread(lanner, "alerts", "dead", "list", "-c", str(config), "--json")
            assert res.returncode == 0, res.stderr
            return [json.loads(x) for x in res.stdout.splitlines()]

        async def four_dead() -> bool:
            return len(await dead()) == 4

        await wait_for(four_dead, timeout=20)
        rows = await dead()
        assert {r["output"] for r in rows} == {"file:bad"}
        assert "gave up after 2 attempts" in str(rows[0]["error"]) and "No such file" in str(rows[0]["error"])
        text = await asyncio.to_thread(lanner, "alerts", "dead", "list", "-c", str(config))
        assert "4 dead letter(s)" in text.stdout and "'Terminal shell in container'" in text.stdout

        show = await asyncio.to_thread(lanner, "alerts", "dead", "show", str(rows[0]["id"]), "-c", str(config))
        shown = json.loads(show.stdout)
        assert shown["alert"]["output_fields"]["proc.pid"] == 4242 and shown["output"] == "file:bad"
        missing = await asyncio.to_thread(lanner, "alerts", "dead", "show", "1-1", "-c", str(config))
        assert missing.returncode == 1 and "no such dead letter" in missing.stderr

        # The destination is fixed: replay three to the output that gave up, drop the last one.
        bad.parent.mkdir()
        ids = [str(r["id"]) for r in rows]
        res = await asyncio.to_thread(lanner, "alerts", "dead", "replay", *ids[:3], "-c", str(config))
        assert res.returncode == 0 and res.stdout.count("replayed as") == 3, res.stderr
        await wait_for(lambda: len(lines(bad)) == 3)
        assert [json.loads(x)["output_fields"]["proc.pid"] for x in lines(bad)] == [4242, 4243, 4244]
        res = await asyncio.to_thread(
            lanner, "alerts", "dead", "drop", "--all", "--output", "file:bad", "-c", str(config)
        )
        assert res.stdout == "dropped 1 dead letter(s)\n"
        assert await dead() == []
        await asyncio.sleep(0.5)  # the replay went to file:bad only
        assert len(lines(good)) == 4 and len(lines(bad)) == 3
        res = await asyncio.to_thread(lanner, "alerts", "dead", "replay", "-c", str(config))
        assert res.returncode == 2 and "--all" in res.stderr


class RefusesDigests:
    """An output that refuses digests until told otherwise."""

    def __init__(self) -> None:
        self.got: list[Alert] = []
        self.refuse = True

    async def send(self, alert: Alert) -> None:
        if self.refuse and "lanner.digest.count" in alert.output_fields:
            raise PermanentError("no digests today")
        self.got.append(alert)

    async def close(self) -> None:
        pass


async def test_a_dead_lettered_digest_replays_as_a_digest(redis_url: str, bind: str) -> None:
    sink = RefusesDigests()
    cfg = base_config(redis_url, bind, outputs={"stdout": {"group_window_s": 1.0}})
    fields = {"container.id": "c1", "proc.exepath": "/usr/bin/apt-get"}
    async with running(cfg, {"stdout": sink}) as d:
        await push(
            d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=[make_alert(i, fields=fields) for i in range(5)])]
        )
        dl = DeadLetters(redis_url, cfg.stream)
        await wait_for(lambda: len(dl.entries()) == 1, timeout=15)
        sink.refuse = False
        assert all(dl.replay([dl.entries()[0][0].decode()]))
        await wait_for(lambda: len(sink.got) == 2)
    assert sink.got[1].output_fields["lanner.digest.count"] == 4
