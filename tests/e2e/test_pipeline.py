# SPDX-License-Identifier: Apache-2.0
"""From a syscall on the real kernel to an alert at a Subscribe client, through all four services and Redis."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from google.protobuf.json_format import MessageToDict

from lanner.v1 import alert_pb2
from tests.e2e.conftest import AlertCollector

pytestmark = [pytest.mark.e2e, pytest.mark.bpf]


def fields(alert: alert_pb2.Alert) -> dict[str, object]:
    if alert.output_fields_json:
        return dict(json.loads(alert.output_fields_json))
    return dict(MessageToDict(alert.output_fields))


def docker_ready() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0


def test_cat_etc_shadow_on_host_alerts(subscriber: AlertCollector, lanner_up: Path) -> None:
    time.sleep(1.0)
    subprocess.run(["cat", "/etc/shadow"], check=True, capture_output=True)

    def is_shadow_read(a: alert_pb2.Alert) -> bool:
        f = fields(a)
        return f.get("proc.name") == "cat" and "/etc/shadow" in a.output

    alert = subscriber.wait_for(is_shadow_read, timeout=15)
    f = fields(alert)
    assert f["proc.cmdline"] == "cat /etc/shadow"
    assert f["user.name"] == "root"
    assert f.get("container.id") == "host"
    assert alert.priority <= alert_pb2.PRIORITY_WARNING
    assert alert.event_id.seq > 0 and alert.alert_id
    # The same alert also lands in the Falco JSON lines file.
    lines = (lanner_up / "alerts.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert any(r["rule"] == alert.rule and r["output_fields"].get("proc.name") == "cat" for r in records)
    assert set(records[0]) >= {"hostname", "output", "output_fields", "priority", "rule", "source", "tags", "time"}


@pytest.mark.containers
def test_shell_in_container_alerts_with_container_metadata(subscriber: AlertCollector) -> None:
    if not docker_ready():
        pytest.skip("Docker engine not running (scripts/container-stack.sh starts one)")
    name = f"lanner-e2e-{int(time.time())}"
    out = subprocess.run(
        ["docker", "run", "-d", "--name", name, "local/bookworm:latest", "sleep", "60"],
        check=True,
        capture_output=True,
        text=True,
    )
    container_id = out.stdout.strip()[:12]
    try:
        time.sleep(1.0)  # let the enricher see the container start and cache its metadata
        subprocess.run(["docker", "exec", name, "bash", "-c", "echo hello"], check=True, capture_output=True)

        def is_shell_in_container(a: alert_pb2.Alert) -> bool:
            f = fields(a)
            return f.get("container.id") == container_id and f.get("proc.name") == "bash"

        alert = subscriber.wait_for(is_shell_in_container, timeout=20)
        f = fields(alert)
        assert f["container.image.repository"] == "local/bookworm"
        assert f["proc.cmdline"] == "bash -c echo hello"
        assert f["user.name"] == "root"
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
