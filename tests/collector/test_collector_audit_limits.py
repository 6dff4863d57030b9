# SPDX-License-Identifier: Apache-2.0
"""Issue 10, the floods: the audit webhook limits every request (items, depth, bytes) and has its own queue and
stream, so an audit flood never displaces syscall events. Real HTTP on a real socket."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import REGISTRY

from collector.decode import Identity
from collector.encode import EventEncoder
from collector.k8s_audit import AuditWebhook
from collector.replay import ReplaySource
from collector.service import AUDIT_STAGE, CollectorService, make_batch, open_enricher_stream
from lanner.model import Event, EventIdentity, Fd, FdType, Process
from lanner.recording import event_line
from lanner.streaming import BatchSender
from lanner.v1 import event_pb2
from lanner.wire import SharedEvent

pytestmark = pytest.mark.integration

ITEM = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "a", "verb": "get", "stage": "ResponseComplete"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rejected(reason: str) -> float:
    return REGISTRY.get_sample_value("lanner_k8s_audit_rejected_total", {"reason": reason}) or 0.0


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[AuditWebhook, str]]:
    hook = AuditWebhook(
        "127.0.0.1:0", Identity("n", "b", "p"), max_queue=1000, max_body_bytes=8 * 1024 * 1024, max_queue_bytes=200_000
    )
    task = asyncio.create_task(hook.serve())
    async with asyncio.timeout(10):
        while not hook.port:
            await asyncio.sleep(0.01)
    yield hook, f"http://127.0.0.1:{hook.port}/k8s-audit"
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def post(url: str, data: bytes) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as http, http.post(url, data=data) as resp:
        return resp.status, await resp.json()


async def test_json_nested_10000_deep_gets_a_clean_400(webhook: tuple[AuditWebhook, str]) -> None:
    _, url = webhook
    before = rejected("bad_request")
    for body in (b"[" * 10_000 + b"]" * 10_000, b'{"kind":"EventList","items":[' + b"[" * 500 + b"]" * 500 + b"]}"):
        status, doc = await post(url, body)
        assert status == 400 and "nested deeper than" in str(doc["error"]), doc
    assert rejected("bad_request") - before == 2
    status, doc = await post(url, json.dumps({"kind": "EventList", "items": [ITEM]}).encode())
    assert status == 200 and doc == {"accepted": 1}


async def test_a_million_items_and_oversized_bodies_get_413(webhook: tuple[AuditWebhook, str]) -> None:
    hook, url = webhook
    before = rejected("too_large")
    status, doc = await post(url, b'{"kind":"EventList","items":[' + b",".join([b"{}"] * 1_000_000) + b"]}")
    assert status == 413 and "1000000 events in one request" in str(doc["error"])
    status, doc = await post(url, b'{"kind":"EventList","items":["' + b"x" * (9 * 1024 * 1024) + b'"]}')
    assert status == 413 and "larger than" in str(doc["error"])
    assert rejected("too_large") - before == 2 and hook.poll() == []


async def test_hostile_text_in_audit_events_is_carried_not_crashed_on(webhook: tuple[AuditWebhook, str]) -> None:
    hook, url = webhook
    # A lone surrogate escape, controls, and a body that is not UTF-8.
    item = {**ITEM, "user": {"username": "\ud800\udcff\x1b[31m\u2028"}}
    status, _ = await post(url, json.dumps({"kind": "EventList", "items": [item]}).encode())
    assert status == 200
    status, doc = await post(url, b'{"kind":"EventList","items":[{"verb":"\xff\xfe"}]}')
    assert status == 400 and "invalid JSON" in str(doc["error"])
    events = hook.poll()
    wire = EventEncoder().encode(events[0])  # raised UnicodeEncodeError before
    back = event_pb2.Event.FromString(wire)
    assert json.loads(back.audit_json)["user"]["username"].endswith("\x1b[31m\u2028")


async def test_audit_queue_is_bounded_in_bytes(webhook: tuple[AuditWebhook, str]) -> None:
    hook, url = webhook
    big = {**ITEM, "requestObject": {"data": "x" * 50_000}}
    status, _ = await post(url, json.dumps({"kind": "EventList", "items": [big] * 20}).encode())
    assert status == 200
    events = hook.poll()
    assert sum(len(e.audit_json) for e in events) <= 200_000 and hook.dropped() == 20 - len(events)


async def test_an_audit_flood_never_displaces_syscall_events(webhook: tuple[AuditWebhook, str], tmp_path: Path) -> None:
    hook, url = webhook
    # 500 syscall events from a recording, beside 50,000 audit events; the enricher is away, so everything
    # waits in the collector's queues (1000 items each).
    recording = tmp_path / "syscalls.jsonl"
    lines = []
    for i in range(500):
        ev = Event(
            type="openat",
            identity=EventIdentity(seq=i + 1),
            proc=Process(pid=4242, comm="cat"),
            fd=Fd(num=3, type=FdType.FILE, path="/etc/shadow"),
        )
        lines.append(event_line(ev))
    recording.write_text("\n".join(lines) + "\n")
    syscalls = ReplaySource(str(recording), Identity("n", "b", "replay"))
    syscalls.start()
    target = f"127.0.0.1:{free_port()}"
    main: BatchSender[SharedEvent] = BatchSender("t-main", target, open_enricher_stream, make_batch, max_queue=1000)
    audit: BatchSender[SharedEvent] = BatchSender(AUDIT_STAGE, target, open_enricher_stream, make_batch, max_queue=1000)
    service = CollectorService([syscalls, hook], main, own_senders={hook.name: audit}, drop_alert_interval_s=0)
    try:
        for _ in range(5):
            status, _ = await post(url, json.dumps({"kind": "EventList", "items": [ITEM] * 10_000}).encode())
            assert status == 200
            service.pump()
        while not syscalls.finished:
            service.pump()
        service.pump()
    finally:
        syscalls.close()
    assert len(main) == 500 and main.dropped == 0
    assert [event_pb2.Event.FromString(body).fd.path for body, _ in main._queue] == [b"/etc/shadow"] * 500
    assert len(audit) == 1000 and audit.dropped + hook.dropped() == 49_000
