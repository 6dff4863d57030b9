# SPDX-License-Identifier: Apache-2.0
"""The README's demo, exactly as a user types it: an interactive shell in a container raises an alert with Lanner's
default rules, both as the container's first process (`docker run -it IMAGE bash`) and through `docker exec -it`.

The docker CLI gets a real pseudo-terminal, so the shell in the container has one too (proc.tty != 0), as when a
person types the command.
"""

from __future__ import annotations

import contextlib
import os
import pty
import select
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from lanner.v1 import alert_pb2
from tests.e2e.conftest import AlertCollector
from tests.e2e.test_pipeline import docker_ready, fields

pytestmark = [pytest.mark.e2e, pytest.mark.bpf, pytest.mark.containers]

IMAGE = "local/bookworm"  # the image the README names, built by `make container-stack`


@pytest.fixture(autouse=True)
def _docker() -> None:
    if not docker_ready():
        pytest.skip("Docker engine not running (make container-stack starts one)")
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode != 0:
        pytest.skip(f"image {IMAGE} missing (make container-stack builds it)")


@contextlib.contextmanager
def shell_in_terminal(cmd: list[str], timeout: float = 60) -> Iterator[None]:
    """Run ``cmd`` on a fresh pseudo-terminal and wait for the shell's prompt; on leaving, type ``exit``.

    The shell stays open while the caller waits for the alert, as when a person types in it: the collector reads
    a new program's terminal from /proc, so a shell gone within a second could be reported without it.
    """
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    screen = b""
    deadline = time.monotonic() + timeout
    try:
        while b"# " not in screen:
            assert proc.poll() is None and time.monotonic() < deadline, f"no shell prompt from {cmd}: {screen!r}"
            if select.select([master], [], [], 0.2)[0]:
                screen += os.read(master, 4096)
        yield
        os.write(master, b"exit\r")
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def container_id(name: str) -> str:
    out = subprocess.run(["docker", "inspect", "-f", "{{.Id}}", name], capture_output=True, text=True, check=True)
    return out.stdout.strip()[:12]


def is_shell_alert(cid: str) -> Callable[[alert_pb2.Alert], bool]:
    def match(a: alert_pb2.Alert) -> bool:
        return a.rule == "Shell started in container" and fields(a).get("container.id") == cid

    return match


@pytest.fixture
def name() -> Iterator[str]:
    n = f"lanner-it-{uuid.uuid4().hex[:8]}"
    yield n
    subprocess.run(["docker", "rm", "-f", n], capture_output=True)


def test_docker_run_it_bash_alerts(subscriber: AlertCollector, name: str) -> None:
    time.sleep(1.0)  # the collector's probes are attached once the stack is up; give the first test a margin
    with shell_in_terminal(["docker", "run", "--rm", "-it", "--name", name, IMAGE, "bash"]):
        alert = subscriber.wait_for(is_shell_alert(container_id(name)), timeout=30)
    f = fields(alert)
    assert f["proc.name"] == "bash" and f["proc.cmdline"] == "bash"
    assert f["container.image.repository"] == IMAGE
    assert f["proc.tty"] not in (0, "0", None)
    assert f"container_name={name}" in alert.output, alert.output


def test_docker_exec_it_bash_alerts(subscriber: AlertCollector, name: str) -> None:
    subprocess.run(["docker", "run", "-d", "--name", name, IMAGE, "sleep", "120"], check=True, capture_output=True)
    time.sleep(1.0)  # let the enricher see the container start
    with shell_in_terminal(["docker", "exec", "-it", name, "bash"]):
        alert = subscriber.wait_for(is_shell_alert(container_id(name)), timeout=30)
    f = fields(alert)
    assert f["proc.cmdline"] == "bash" and f["proc.tty"] not in (0, "0", None), alert.output
    assert f"container_name={name}" in alert.output, alert.output
