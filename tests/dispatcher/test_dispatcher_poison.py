# SPDX-License-Identifier: Apache-2.0
"""Poison and size (issue 10 item 4): no alert can hold up the ones behind it, and every alert is bounded.

Real dispatcher, real Redis, real file and syslog sockets. Poison entries are also written straight into the
stream and into the consumer's pending list, as a stream written by an older version (or a restart that
replays its own pending list first) would hold them.
"""

from __future__ import annotations

import asyncio
import errno
import json
import socket
from pathlib import Path

import pytest
from dispatcher_testlib import RedisProcess, base_config, lines, make_alert, push, running, wait_for
from prometheus_client import REGISTRY

from dispatcher.driver import DriverOptions, group_name
from dispatcher.failures import is_permanent
from dispatcher.registry import PermanentError
from dispatcher.store import PAYLOAD_FIELD
from lanner.alert_limits import AlertLimits, bound_alert
from lanner.v1 import alert_pb2


def test_failures_are_sorted() -> None:
    for exc in (
        PermanentError("400"),
        OverflowError("timestamp out of range"),
        OSError(errno.EOVERFLOW, "Value too large for defined data type"),
        OSError(errno.EMSGSIZE, "Message too long"),
        UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed"),
        ValueError("bad"),
    ):
        assert is_permanent(exc), exc
    for exc in (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), TimeoutError(), OSError(errno.ENOSPC, "full"),
                RuntimeError("503")):  # fmt: skip
        assert not is_permanent(exc), exc
    # The retry cap is never infinite.
    assert DriverOptions().max_retries > 0


def test_limits_cut_with_markers() -> None:
    limits = AlertLimits(max_output_chars=100, max_field_chars=64, max_fields=3, max_tags=2)
    pb = make_alert(0, output="o" * 1000, tags=("a", "b", "c"), fields={f"f{i}": "v" * 500 for i in range(5)})
    parts = bound_alert(pb, limits)
    assert set(parts) == {"output", "tags", "output_fields"}
    assert pb.output == "o" * 100 + "…[truncated 900 chars]"
    assert list(pb.tags) == ["a", "b"]
    fields = dict(pb.output_fields)
    assert fields["lanner.truncated_fields"] == 2 and len(fields) == 4
    assert fields["f0"] == "v" * 64 + "…[truncated 436 chars]"
    # JSON-typed fields are cut the same way, and a small alert is left alone.
    pb = make_alert(1)
    pb.output_fields_json = json.dumps({"fd.name": "/" + "x" * 5000, "n": 1})
    assert bound_alert(pb) == ["output_fields"]
    assert json.loads(pb.output_fields_json)["fd.name"].endswith("…[truncated 905 chars]")
    small = make_alert(2)
    assert bound_alert(small) == [] and small == make_alert(2)


def _poison() -> bytes:
    """An alert dated 1e17 s after the epoch: no output can render that date (EOVERFLOW/OverflowError)."""
    pb = make_alert(99, alert_id="poison")
    pb.time.seconds = 10**17
    return pb.SerializeToString()


@pytest.mark.integration
async def test_poison_in_the_stream_is_dead_lettered_at_once(
    redis_url: str, bind: str, tmp_path: Path, redis_proc: RedisProcess
) -> None:
    """A restart replays its pending list first: the poison there is dead-lettered at once, then the rest flow."""
    out = tmp_path / "a.jsonl"
    cfg = base_config(redis_url, bind, outputs={"file": {"path": str(out), "backoff_initial_s": 30,
                                                         "backoff_max_s": 60}})  # fmt: skip
    r = redis_proc.client()
    group = group_name("file")
    r.xgroup_create(cfg.stream, group, id="$", mkstream=True)
    r.xadd(cfg.stream, {PAYLOAD_FIELD: _poison()})
    r.xadd(cfg.stream, {PAYLOAD_FIELD: make_alert(1).SerializeToString()})
    # The previous run read both and died before delivering: they sit in this consumer's pending list.
    assert len(r.xreadgroup(group, cfg.consumer, {cfg.stream: ">"})[0][1]) == 2
    r.xadd(cfg.stream, {PAYLOAD_FIELD: _poison()})  # and one more that was never read
    async with running(cfg) as d:
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=[make_alert(2)])])
        # With a 30 s backoff, a retried poison would keep these waiting far past the deadline.
        await wait_for(lambda: len(lines(out)) == 2)
        await wait_for(lambda: r.xlen(f"{cfg.stream}:dead") == 2)
    errors = [fields[b"error"].decode() for _, fields in r.xrange(f"{cfg.stream}:dead")]
    assert all(e.startswith("permanent failure: ") for e in errors), errors
    assert all("Overflow" in e or "Value too large" in e for e in errors), errors
    assert [json.loads(x)["output"] for x in lines(out)] == [make_alert(1).output, make_alert(2).output]
    assert r.xpending(cfg.stream, group)["pending"] == 0
    r.close()


@pytest.mark.integration
async def test_out_of_range_time_is_rejected_at_intake(redis_url: str, bind: str, tmp_path: Path) -> None:
    out = tmp_path / "a.jsonl"
    cfg = base_config(redis_url, bind, outputs={"file": {"path": str(out)}})
    poison = alert_pb2.Alert.FromString(_poison())
    before = REGISTRY.get_sample_value("lanner_dispatcher_alerts_rejected_total", {"reason": "time"}) or 0
    async with running(cfg) as d:
        [ack] = await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=[poison, make_alert(1)])])
        assert ack.accepted == 1
        await wait_for(lambda: len(lines(out)) == 1)
    assert REGISTRY.get_sample_value("lanner_dispatcher_alerts_rejected_total", {"reason": "time"}) == before + 1


@pytest.mark.integration
async def test_huge_alert_is_accepted_truncated_with_its_batch(redis_url: str, bind: str, tmp_path: Path) -> None:
    """A 12 MB alert (a rule output of 100,000 %fd.name tokens) costs one shortened alert, not the batch."""
    out = tmp_path / "a.jsonl"
    cfg = base_config(redis_url, bind, outputs={"file": {"path": str(out)}})
    huge_text = " ".join(f"/var/lib/app/data/file-{i:06d}.bin" for i in range(100_000)) * 4
    huge = make_alert(1, output=huge_text, fields={"fd.name": huge_text[:3_000_000], "proc.name": "app"})
    assert huge.ByteSize() > 10_000_000
    before = REGISTRY.get_sample_value("lanner_dispatcher_alerts_truncated_total", {"part": "output"}) or 0
    async with running(cfg) as d:
        batch = alert_pb2.AlertBatch(batch_seq=1, alerts=[make_alert(0), huge, make_alert(2)])
        [ack] = await push(d.target, [batch], timeout=60)
        assert ack.accepted == 3
        await wait_for(lambda: len(lines(out)) == 3, timeout=30)
    got = [json.loads(x) for x in lines(out)]
    big = got[1]
    assert big["output"].startswith(huge_text[:1000]) and big["output"].endswith(" chars]")
    assert len(big["output"]) < 16384 + 64
    assert big["output_fields"]["fd.name"].endswith(" chars]") and len(big["output_fields"]["fd.name"]) < 4096 + 64
    assert big["output_fields"]["proc.name"] == "app"
    assert REGISTRY.get_sample_value("lanner_dispatcher_alerts_truncated_total", {"part": "output"}) == before + 1


@pytest.mark.integration
async def test_syslog_long_output_is_cut_to_one_message(redis_url: str, bind: str, tmp_path: Path) -> None:
    """A 70,000-character output used to fail with EMSGSIZE for ever; now it arrives cut, and the next one too."""
    path = str(tmp_path / "log.sock")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    rx.setblocking(False)
    loop = asyncio.get_running_loop()
    limits = {"max_output_chars": 100_000}  # let the whole text through intake: the syslog limit must hold alone
    cfg = base_config(redis_url, bind, limits=AlertLimits(**limits), outputs={"syslog": {"address": path}})
    try:
        async with running(cfg) as d:
            long_alert = make_alert(0, output="A" * 70_000)
            await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=[long_alert, make_alert(1)])])
            first = await asyncio.wait_for(loop.sock_recv(rx, 100_000), 20)
            second = await asyncio.wait_for(loop.sock_recv(rx, 100_000), 20)
    finally:
        rx.close()
    assert len(first) == 8192 and first.endswith(b"AAA...[truncated]")
    assert second.endswith(make_alert(1).output.encode())


@pytest.mark.integration
async def test_25mb_rendering_from_the_rule_engine_never_blocks_the_batch(
    redis_url: str, bind: str, tmp_path: Path
) -> None:
    """The producer side: a 25 MB rule rendering becomes a bounded alert, so a full batch of them stays sendable."""
    from ruleengine.output import AlertRecord
    from ruleengine.priority import Priority as RulePriority
    from ruleengine.service import alert_to_pb

    names = " ".join(f"/var/lib/app/data/file-{i:06d}.bin" for i in range(100_000))
    record = AlertRecord(rule="Huge", priority=RulePriority.WARNING, source="syscall", tags=("t",),
                         time_ns=1718000011726060287, output=names * 8, message=names * 8,
                         output_fields={"fd.name": names, "proc.name": "app"}, hostname="h")  # fmt: skip
    assert len(record.output) > 25_000_000
    pb = alert_to_pb(record, None)
    assert pb.ByteSize() <= 192 * 1024
    assert json.loads(pb.output_fields_json)["proc.name"] == "app" and pb.output_fields["proc.name"] == "app"
    # The rule engine sends up to 64 alerts a batch: even 64 such alerts fit one gRPC message.
    batch = alert_pb2.AlertBatch(batch_seq=1, alerts=[pb] * 63 + [make_alert(1)])
    assert batch.ByteSize() < 16 * 1024 * 1024
    out = tmp_path / "a.jsonl"
    async with running(base_config(redis_url, bind, outputs={"file": {"path": str(out)}})) as d:
        [ack] = await push(d.target, [batch], timeout=60)
        assert ack.accepted == 64  # stored once: the 63 copies share one alert id
        await wait_for(lambda: len(lines(out)) == 2, timeout=30)
    first = json.loads(lines(out)[0])
    assert first["rule"] == "Huge" and first["output"].endswith(" chars]") and len(first["output"]) < 16384 + 64


def test_both_field_forms_are_bounded_alike() -> None:
    pb = make_alert(0, fields={"fd.name": "x" * 10_000, "n": 1})
    pb.output_fields_json = json.dumps({"fd.name": "x" * 10_000, "n": 1})
    assert bound_alert(pb) == ["output_fields"]
    assert json.loads(pb.output_fields_json)["fd.name"] == pb.output_fields["fd.name"]
    assert pb.output_fields["fd.name"].startswith("x" * 4096 + "…[truncated")
