# SPDX-License-Identifier: Apache-2.0
"""Outputs that do not flap (issue 11 item 4): with healthy destinations, every first attempt succeeds.

A real dispatcher process (on uvloop, as in production) delivers 1000 alerts to each local output, including a
program that never reads its input (the case that used to fail with "unable to perform operation on
<WriteUnixTransport closed=True>"). Its own metrics must then show 1000 sent and 0 failed/retried per output.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from dispatcher_testlib import RedisProcess, free_port, lines, make_alert, push, wait_for, wait_listening
from prometheus_client.parser import text_string_to_metric_families

from lanner.v1 import alert_pb2

pytestmark = pytest.mark.integration
N = 1000


@pytest.fixture
async def http_sink() -> AsyncIterator[tuple[str, list[bytes]]]:
    got: list[bytes] = []

    async def post(request: web.Request) -> web.Response:
        got.append(await request.read())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/", post)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/", got  # type: ignore[union-attr]
    await runner.cleanup()


async def _metrics(url: str) -> dict[tuple[str, str], float]:
    async with aiohttp.ClientSession() as s, s.get(url) as resp:
        text = await resp.text()
    out: dict[tuple[str, str], float] = {}
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            if "output" in sample.labels:
                out[(sample.name, sample.labels["output"])] = sample.value
    return out


# 3000 program runs among the 6000 deliveries: on a busy CI host this takes minutes, within the waits below.
@pytest.mark.timeout(420)
async def test_first_try_succeeds_for_1000_alerts(
    redis_proc: RedisProcess, redis_url: str, tmp_path: Path, http_sink: tuple[str, list[bytes]]
) -> None:
    url, got = http_sink
    bind, metrics = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    tcp_lines: list[bytes] = []

    async def on_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            tcp_lines.append(line)

    syslog_tcp = await asyncio.start_server(on_tcp, "127.0.0.1", 0)
    files = {name: tmp_path / f"{name}.txt" for name in ("file", "cat", "ignores_input", "kept")}
    outputs = {
        "file": {"path": str(files["file"])},
        "program": {"program": f"cat >> {files['cat']}"},
        # Never reads its stdin: its exit status alone says it worked.
        "program:ignores_input": {"program": f"echo hit >> {files['ignores_input']}"},
        "program:kept": {"program": f"cat >> {files['kept']}", "keep_alive": True},
        "syslog:tcp": {"address": f"tcp://127.0.0.1:{syslog_tcp.sockets[0].getsockname()[1]}", "framing": "newline"},
        "http": {"url": url},
    }
    config = tmp_path / "lanner.yaml"
    config.write_text(json.dumps({"dispatcher": {"bind": bind, "metrics_bind": metrics, "redis_url": redis_url,
                                                 "consumer": "first-try", "outputs": outputs}}))  # fmt: skip
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "lanner.cli", "dispatcher", "--config",
                                                str(config))  # fmt: skip
    try:
        await wait_listening(bind)
        batches = [alert_pb2.AlertBatch(batch_seq=b + 1, alerts=[make_alert(b * 100 + i) for i in range(100)])
                   for b in range(N // 100)]  # fmt: skip
        await push(bind, batches, timeout=60)
        await wait_for(lambda: all(len(lines(f)) == N for f in files.values()), timeout=300, interval=0.5)
        await wait_for(lambda: len(tcp_lines) == N and len(got) == N, timeout=60)
        m = await _metrics(f"http://{metrics}/metrics")
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
        syslog_tcp.close()
    for name in outputs:
        assert m.get(("lanner_dispatcher_output_sent_total", name)) == N, name
        assert m.get(("lanner_dispatcher_output_failed_total", name), 0) == 0, name
        assert m.get(("lanner_dispatcher_output_retried_total", name), 0) == 0, name
