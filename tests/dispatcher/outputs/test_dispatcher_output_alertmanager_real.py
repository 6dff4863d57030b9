# SPDX-License-Identifier: Apache-2.0
"""alertmanager output against a real Alertmanager (prometheus-alertmanager from apt): posted, stored, expiring."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from dispatcher_testlib import base_config, free_port, make_alert, push, running, wait_for
from outputs_testlib import need_binary

from lanner.v1 import alert_pb2

CONFIG = """
route:
  receiver: blackhole
  group_by: [alertname]
receivers:
  - name: blackhole
"""


@pytest.fixture
async def alertmanager(tmp_path: Path) -> AsyncIterator[str]:
    binary = need_binary("prometheus-alertmanager")
    (tmp_path / "am.yml").write_text(CONFIG)
    port = free_port()
    proc = subprocess.Popen(
        [binary, f"--config.file={tmp_path / 'am.yml'}", f"--storage.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as s:
            for _ in range(400):
                try:
                    async with s.get(f"{url}/-/ready") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


async def _alerts(url: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(f"{url}/api/v2/alerts") as resp:
        resp.raise_for_status()
        data: list[dict[str, Any]] = await resp.json()
        return data


@pytest.mark.integration
async def test_real_alertmanager_stores_the_alerts(alertmanager: str, redis_url: str, bind: str) -> None:
    outputs = {"alertmanager": {"url": alertmanager, "extra_labels": {"cluster": "test"},
                                "expires_after_s": 1e9}}  # fmt: skip
    cfg = base_config(redis_url, bind, outputs=outputs)
    fields = {"k8s.ns.name": "shop", "k8s.pod.name": "web-1", "proc.pid": 1, "proc.cmdline": "bash -i"}
    alerts = [make_alert(0, fields=fields, priority=alert_pb2.PRIORITY_CRITICAL),
              make_alert(1, fields={**fields, "proc.pid": 2}, priority=alert_pb2.PRIORITY_CRITICAL),
              make_alert(2, rule="Other rule", fields=fields)]  # fmt: skip
    async with running(cfg) as d:
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=alerts)])

        async def two() -> bool:
            return len(await _alerts(alertmanager)) == 2

        await wait_for(two, timeout=30)
    got = {a["labels"]["alertname"]: a for a in await _alerts(alertmanager)}
    # Same rule and scope, different pid: one Alertmanager alert (labels are the identity).
    shell = got["Terminal shell in container"]
    assert shell["labels"] == {
        "alertname": "Terminal shell in container", "severity": "critical", "priority": "Critical",
        "source": "lanner", "falco_source": "syscall", "hostname": "host1", "k8s_ns": "shop", "k8s_pod": "web-1",
        "cluster": "test",
    }  # fmt: skip
    assert shell["status"]["state"] == "active" and "bash -i" in shell["annotations"]["output_fields"]
    assert got["Other rule"]["labels"]["severity"] == "info"
