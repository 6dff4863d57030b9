# SPDX-License-Identifier: Apache-2.0
"""nats output: publish to a real nats-server with JetStream; PubAck, subjects by priority, Nats-Msg-Id dedup."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import nats
import pytest
from dispatcher_testlib import base_config, free_port, make_alert, push, running, wait_for
from outputs_testlib import SAMPLE, need_binary

from dispatcher.outputs.nats import NatsConfig, message_id, subject_for
from lanner.v1 import alert_pb2


def test_subject_and_config() -> None:
    assert subject_for(SAMPLE, NatsConfig()) == "lanner.alerts.error"
    assert message_id(SAMPLE, b"") == "a1b2c3"
    assert message_id(replace(SAMPLE, alert_id="x\r\nNats-Expected-Stream: other"), b"").startswith("sha256-")
    assert subject_for(SAMPLE, NatsConfig(subject="falco.{source}.{priority}")) == "falco.syscall.error"
    with pytest.raises(ValueError, match="subject"):
        NatsConfig(subject="lanner.>")
    with pytest.raises(ValueError, match="servers"):
        NatsConfig(servers=("http://x:4222",))


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[str]:
    binary = need_binary("nats-server")
    port = free_port()
    proc = subprocess.Popen([binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(tmp_path / "js")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"nats://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                nc = await nats.connect(url, connect_timeout=1, max_reconnect_attempts=0, allow_reconnect=False)
                await nc.close()
                break
            except Exception:
                await asyncio.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.integration
async def test_published_to_jetstream(nats_server: str, redis_url: str, bind: str) -> None:
    cfg = base_config(redis_url, bind, outputs={"nats": {"servers": [nats_server], "create_stream": "LANNER"}})
    alerts = [make_alert(0, priority=alert_pb2.PRIORITY_WARNING), make_alert(1, priority=alert_pb2.PRIORITY_CRITICAL)]
    nc = await nats.connect(nats_server)
    try:
        async with running(cfg) as d:
            await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=alerts)])
            js = nc.jetstream()

            async def stored() -> bool:
                try:
                    return bool((await js.stream_info("LANNER")).state.messages == 2)
                except Exception:
                    return False

            await wait_for(stored, timeout=20)
        first = await js.get_msg("LANNER", 1)
        second = await js.get_msg("LANNER", 2)
        assert (first.subject, second.subject) == ("lanner.alerts.warning", "lanner.alerts.critical")
        assert first.headers is not None and first.headers["Nats-Msg-Id"] == "alert-0"
        assert json.loads(first.data)["rule"] == "Terminal shell in container"
        # A copy sent again (a retry after a crash) is dropped by the stream's duplicate window.
        ack = await js.publish("lanner.alerts.warning", first.data, headers={"Nats-Msg-Id": "alert-0"})
        assert ack.duplicate and (await js.stream_info("LANNER")).state.messages == 2
    finally:
        await nc.close()
