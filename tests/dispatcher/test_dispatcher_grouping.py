# SPDX-License-Identifier: Apache-2.0
"""Grouping windows and digests on real Redis: the window, the digest, a restart, two replicas sharing a window."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from dispatcher_testlib import base_config, free_port, lines, make_alert, push, running, wait_for

from dispatcher.config import DispatcherConfig, output_specs
from dispatcher.grouping import human_duration
from dispatcher.model import Alert
from lanner.config import ConfigError
from lanner.v1 import alert_pb2

pytestmark = pytest.mark.integration


class Collect:
    """An output that keeps what it is sent."""

    def __init__(self) -> None:
        self.got: list[Alert] = []

    async def send(self, alert: Alert) -> None:
        self.got.append(alert)

    async def close(self) -> None:
        pass


def repeats(start: int, n: int, container: str = "c1") -> list[alert_pb2.Alert]:
    fields = {"container.id": container, "proc.exepath": "/usr/bin/apt-get"}
    return [make_alert(i, fields=fields | {"proc.pid": i}) for i in range(start, start + n)]


def batch(alerts: list[alert_pb2.Alert], seq: int = 1) -> list[alert_pb2.AlertBatch]:
    return [alert_pb2.AlertBatch(batch_seq=seq, alerts=alerts)]


def grouped_cfg(redis_url: str, bind: str, tmp_path: Path, window: float = 1.0) -> DispatcherConfig:
    outputs = {"stdout": {"group_window_s": window}, "file": {"path": str(tmp_path / "all.jsonl")}}
    return base_config(redis_url, bind, outputs=outputs)


async def test_first_at_once_repeats_counted_then_one_digest(redis_url: str, bind: str, tmp_path: Path) -> None:
    sink = Collect()
    async with running(grouped_cfg(redis_url, bind, tmp_path), {"stdout": sink}) as d:
        await push(d.target, batch(repeats(0, 10) + repeats(100, 1, container="c2")))
        await wait_for(lambda: len(sink.got) == 2)
        assert [a.output_fields["container.id"] for a in sink.got] == ["c1", "c2"]
        # The digest: 9 more for c1, none for c2 (a window without repeats closes silently).
        await wait_for(lambda: len(sink.got) == 3, timeout=15)
        digest = sink.got[2]
        assert digest.message.startswith("9 more in 1 s (first ") and digest.rule == sink.got[0].rule
        assert digest.output_fields["lanner.digest.count"] == 9
        assert digest.output_fields["container.id"] == "c1"
        # After the window, the next repeat goes out at once again.
        await push(d.target, batch(repeats(20, 1), seq=2))
        await wait_for(lambda: len(sink.got) == 4)
        assert "lanner.digest.count" not in sink.got[3].output_fields
        # The file output keeps every alert.
        await wait_for(lambda: len(lines(tmp_path / "all.jsonl")) == 12)
    assert len(sink.got) == 4


async def test_windows_survive_a_restart(redis_url: str, bind: str, tmp_path: Path) -> None:
    cfg = grouped_cfg(redis_url, bind, tmp_path, window=3.0)
    first = Collect()
    async with running(cfg, {"stdout": first}) as d:
        await push(d.target, batch(repeats(0, 1)))
        await wait_for(lambda: len(first.got) == 1)
    second = Collect()
    async with running(cfg, {"stdout": second}) as d:
        await push(d.target, batch(repeats(1, 4), seq=2))
        await wait_for(lambda: len(second.got) == 1, timeout=15)
        assert second.got[0].output_fields["lanner.digest.count"] == 4
        assert second.got[0].message.startswith("4 more in 3 s")


async def test_two_replicas_share_one_window(redis_url: str, tmp_path: Path) -> None:
    a_sink, b_sink = Collect(), Collect()
    base = grouped_cfg(redis_url, f"127.0.0.1:{free_port()}", tmp_path, window=2.0)
    cfg_b = replace(base, bind=f"127.0.0.1:{free_port()}", consumer="replica-b")
    cfg_a = replace(base, consumer="replica-a")
    async with running(cfg_a, {"stdout": a_sink}) as a, running(cfg_b, {"stdout": b_sink}) as b:
        await push(a.target, batch(repeats(0, 5)))
        await push(b.target, batch(repeats(5, 5), seq=2))
        await push(a.target, batch(repeats(10, 5), seq=3))

        def digests() -> list[Alert]:
            return [x for x in a_sink.got + b_sink.got if "lanner.digest.count" in x.output_fields]

        await wait_for(lambda: len(digests()) == 1, timeout=20)
        plain = [x for x in a_sink.got + b_sink.got if "lanner.digest.count" not in x.output_fields]
        assert len(plain) == 1 and digests()[0].output_fields["lanner.digest.count"] == 14
        await wait_for(lambda: len(lines(tmp_path / "all.jsonl")) == 15)
    assert len(digests()) == 1
    assert sorted(json.loads(x)["output_fields"]["proc.pid"] for x in lines(tmp_path / "all.jsonl")) == list(range(15))


def test_grouping_config() -> None:
    with pytest.raises(ConfigError, match=r"dispatcher.outputs.file.group_window_s: the file output keeps every"):
        output_specs(DispatcherConfig(outputs={"file": {"group_window_s": 60}}))
    with pytest.raises(ConfigError, match="group_window_s"):
        output_specs(DispatcherConfig(outputs={"stdout": {"group_window_s": -1}}))
    assert human_duration(600) == "10 min" and human_duration(7200) == "2 h" and human_duration(1.5) == "1.5 s"
