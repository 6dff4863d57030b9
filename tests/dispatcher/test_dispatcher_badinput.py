# SPDX-License-Identifier: Apache-2.0
"""Bad input and dead destinations: clear errors, and the service keeps working."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import grpc
import pytest
from dispatcher_testlib import base_config, lines, make_alert, push, running, wait_for
from prometheus_client import REGISTRY

from lanner.v1 import alert_pb2

pytestmark = pytest.mark.integration
PUSH = "/lanner.v1.DispatcherService/PushAlerts"


async def raw_push(target: str, payload: bytes) -> grpc.aio.AioRpcError:
    async with grpc.aio.insecure_channel(target) as ch:
        call = ch.stream_stream(PUSH)()
        await call.write(payload)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call.read()
        return err.value


async def test_garbage_and_oversized_messages(redis_url: str, bind: str) -> None:
    cfg = base_config(redis_url, bind)
    async with running(cfg) as d:
        err = await raw_push(d.target, b"\xff\xff\xff\xff garbage")
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "PushAlerts message #1 (12 bytes): not a valid lanner.v1.AlertBatch" in (err.details() or "")

        err = await raw_push(d.target, b"\x12" + b"\x00" * (17 * 1024 * 1024))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "larger than max" in (err.details() or "")

        # The server is still fine for well-behaved clients.
        acks = await push(d.target, [alert_pb2.AlertBatch(batch_seq=9, alerts=[make_alert(1)])])
        assert acks[0].accepted == 1


async def test_dead_output_is_retried_while_others_deliver(
    redis_url: str, bind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = tmp_path / "good.jsonl"
    bad = tmp_path / "missing-dir" / "bad.jsonl"
    retry = {"backoff_initial_s": 0.05, "backoff_max_s": 0.1}
    cfg = base_config(redis_url, bind, outputs={"file": {"path": str(good)}, "file:bad": {"path": str(bad), **retry}})
    before = REGISTRY.get_sample_value("lanner_dispatcher_output_retried_total", {"output": "file:bad"}) or 0
    async with running(cfg) as d:
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=[make_alert(i) for i in range(5)])])
        await wait_for(lambda: len(lines(good)) == 5)
        await wait_for(
            lambda: (
                (REGISTRY.get_sample_value("lanner_dispatcher_output_retried_total", {"output": "file:bad"}) or 0)
                >= before + 3
            )
        )
        assert not bad.exists()
        failures = [r for r in caplog.records if r.getMessage() == "output delivery failed; retrying"]
        assert failures and failures[0].__dict__["output"] == "file:bad"
        assert "No such file or directory" in failures[0].__dict__["error"]
        # The destination comes back: the held alert and the rest arrive, in order.
        bad.parent.mkdir()
        await wait_for(lambda: len(lines(bad)) == 5)
        assert [json.loads(x)["output_fields"]["proc.pid"] for x in lines(bad)] == list(range(4242, 4247))


async def test_min_priority_gate_per_output(redis_url: str, bind: str, tmp_path: Path) -> None:
    all_, severe = tmp_path / "all.jsonl", tmp_path / "severe.jsonl"
    cfg = base_config(
        redis_url,
        bind,
        outputs={"file": {"path": str(all_)}, "file:severe": {"path": str(severe), "min_priority": "error"}},
    )
    async with running(cfg) as d:
        alerts = [make_alert(0, priority=alert_pb2.PRIORITY_CRITICAL), make_alert(1), make_alert(2)]
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=alerts)])
        await wait_for(lambda: len(lines(all_)) == 3)
        await asyncio.sleep(0.2)
        assert [json.loads(x)["priority"] for x in lines(severe)] == ["Critical"]


async def test_sigusr1_reopens_kept_alive_file(redis_url: str, bind: str, tmp_path: Path) -> None:
    out = tmp_path / "a.jsonl"
    cfg = base_config(redis_url, bind, outputs={"file": {"path": str(out), "keep_alive": True}})
    async with running(cfg) as d:
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=[make_alert(0)])])
        await wait_for(lambda: len(lines(out)) == 1)
        rotated = tmp_path / "a.jsonl.1"
        out.rename(rotated)
        os.kill(os.getpid(), signal.SIGUSR1)
        await asyncio.sleep(0.2)
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=2, alerts=[make_alert(1)])])
        await wait_for(lambda: len(lines(out)) == 1)
        assert len(lines(rotated)) == 1


async def test_poison_alert_is_dead_lettered_and_the_rest_flow(
    redis_url: str, bind: str, tmp_path: Path, redis_proc: object
) -> None:
    out = tmp_path / "a.jsonl"
    cfg = base_config(redis_url, bind, outputs={"file": {"path": str(out)}})
    poison = make_alert(0)
    poison.output_fields_json = '{"deep": ' + "[" * 100000 + "]" * 100000 + "}"
    async with running(cfg) as d:
        batch = alert_pb2.AlertBatch(batch_seq=1, alerts=[poison, make_alert(1), make_alert(2)])
        assert (await push(d.target, [batch]))[0].accepted == 3
        await wait_for(lambda: len(lines(out)) == 2)
        r = redis_proc.client()  # type: ignore[attr-defined]
        await wait_for(lambda: r.xlen(f"{cfg.stream}:dead") == 1)
        assert b"undecodable alert: RecursionError" in r.xrange(f"{cfg.stream}:dead")[0][1][b"error"]
        r.close()


def _framed(number: int, payload: bytes) -> bytes:
    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)

    return varint(number << 3 | 2) + varint(len(payload)) + payload


def rejected(reason: str) -> float:
    return REGISTRY.get_sample_value("lanner_dispatcher_alerts_rejected_total", {"reason": reason}) or 0.0


async def test_one_malformed_alert_costs_only_itself(redis_url: str, bind: str, tmp_path: Path) -> None:
    """A batch protobuf refuses because of one alert (invalid UTF-8 in a string) keeps every other alert: an
    oversized one (cut to the limits), and the good ones; an alert with an impossible time is rejected alone."""
    out = tmp_path / "a.jsonl"
    cfg = base_config(redis_url, bind, outputs={"file": {"path": str(out)}})
    rule_field = alert_pb2.Alert.DESCRIPTOR.fields_by_name["rule"].number
    malformed = make_alert(1).SerializeToString() + _framed(rule_field, b"\xff\xfe not utf-8")
    huge = make_alert(2, output="A" * (4 * 1024 * 1024))
    bad_time = make_alert(3)
    bad_time.time.seconds = 10**17
    items = [make_alert(0), None, huge, bad_time, make_alert(4)]
    raw = b"\x08\x07" + b"".join(  # batch_seq = 7
        _framed(2, malformed if a is None else a.SerializeToString()) for a in items
    )
    with pytest.raises(Exception):  # noqa: B017 (what protobuf raises is its own DecodeError)
        alert_pb2.AlertBatch.FromString(raw)
    before_malformed, before_time = rejected("malformed"), rejected("time")
    async with running(cfg) as d, grpc.aio.insecure_channel(d.target) as ch:
        call = ch.stream_stream(PUSH, response_deserializer=alert_pb2.AlertAck.FromString)()
        await call.write(raw)
        ack = await asyncio.wait_for(call.read(), 20)
        await call.done_writing()
        assert ack.batch_seq == 7 and ack.accepted == 3
        assert rejected("malformed") == before_malformed + 1
        assert rejected("time") == before_time + 1
        await wait_for(lambda: len(lines(out)) == 3, timeout=20)
        delivered = [json.loads(line) for line in lines(out)]
        assert sorted(a["output"][:8] for a in delivered) == ["13:53:00", "13:53:04", "AAAAAAAA"]
        cut = next(a for a in delivered if a["output"].startswith("AAAA"))
        assert "[truncated" in cut["output"] and len(cut["output"]) < 20_000
