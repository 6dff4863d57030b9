# SPDX-License-Identifier: Apache-2.0
"""The Kubernetes audit webhook on a real socket: good EventLists become events, bad bodies get a 400."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from collector.decode import Identity
from collector.k8s_audit import AuditError, AuditWebhook, parse_audit_body, parse_timestamp_ns

ITEM = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "RequestResponse",
    "auditID": "5f2c1c4e-1111-2222-3333-444455556666",
    "stage": "ResponseComplete",
    "requestURI": "/api/v1/namespaces/default/pods/web/exec?command=sh",
    "verb": "create",
    "user": {"username": "alice", "groups": ["system:authenticated"]},
    "objectRef": {"resource": "pods", "namespace": "default", "name": "web", "subresource": "exec"},
    "responseStatus": {"code": 101},
    "requestReceivedTimestamp": "2026-11-30T03:00:00.123456Z",
    "stageTimestamp": "2026-11-30T03:00:00.223456789Z",
}


def test_timestamps() -> None:
    assert parse_timestamp_ns("1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert parse_timestamp_ns("1970-01-01T00:00:01.000000123Z") == 1_000_000_123
    assert parse_timestamp_ns("1970-01-01T01:00:00+01:00") == 0
    assert parse_timestamp_ns("garbage") == 0 and parse_timestamp_ns(None) == 0


def test_body_errors_name_the_field() -> None:
    with pytest.raises(AuditError, match=r"^body: invalid JSON"):
        parse_audit_body(b"{")
    with pytest.raises(AuditError, match=r"^items\[1\]: expected an object"):
        parse_audit_body(json.dumps({"kind": "EventList", "items": [ITEM, 3]}).encode())
    with pytest.raises(AuditError, match=r"^items\[0\]\.verb: expected a string"):
        parse_audit_body(json.dumps({"kind": "EventList", "items": [{**ITEM, "verb": 1}]}).encode())
    with pytest.raises(AuditError, match=r"^apiVersion"):
        parse_audit_body(json.dumps({"apiVersion": "audit.k8s.io/v1beta1", "kind": "EventList", "items": []}).encode())
    assert parse_audit_body(json.dumps(ITEM).encode()) == [ITEM]


async def test_webhook_over_http() -> None:
    hook = AuditWebhook("127.0.0.1:0", Identity("node-k", "boot-k", "prod-k"), max_queue=3)
    task = asyncio.create_task(hook.serve())
    try:
        async with asyncio.timeout(5):
            while not hook.port:
                await asyncio.sleep(0.01)
        url = f"http://127.0.0.1:{hook.port}/k8s-audit"
        async with aiohttp.ClientSession() as http:
            body = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [ITEM, {**ITEM, "verb": "get"}]}
            async with http.post(url, json=body) as resp:
                assert resp.status == 200 and (await resp.json()) == {"accepted": 2}
            async with http.post(url, data=b"not json") as resp:
                assert resp.status == 400 and "invalid JSON" in (await resp.json())["error"]
            events = hook.poll()
            assert [e.source for e in events] == ["k8s_audit", "k8s_audit"]
            assert json.loads(events[0].audit_json) == ITEM
            assert events[0].timing.event_ns == parse_timestamp_ns(ITEM["stageTimestamp"])
            assert [e.identity.seq for e in events] == [1, 2] and events[1].identity.producer_id == "prod-k"
            # Still serving after the bad request; the bounded queue drops the oldest.
            async with http.post(url, json={"kind": "EventList", "items": [ITEM] * 5}) as resp:
                assert resp.status == 200
            assert len(hook.poll()) == 3 and hook.dropped() == 2 and hook.rejected == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_webhook_over_https(tmp_path: Path) -> None:
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    hook = AuditWebhook("127.0.0.1:0", Identity("n", "b", "p"), tls_cert=str(cert), tls_key=str(key))
    task = asyncio.create_task(hook.serve())
    try:
        async with asyncio.timeout(5):
            while not hook.port:
                await asyncio.sleep(0.01)
        ctx = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession() as http:
            body = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [ITEM]}
            async with http.post(f"https://127.0.0.1:{hook.port}/k8s-audit", json=body, ssl=ctx) as resp:
                assert resp.status == 200
        assert len(hook.poll()) == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
