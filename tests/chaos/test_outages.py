# SPDX-License-Identifier: Apache-2.0
"""Outages around the dispatcher, on a real ``lanner up`` (rule engine, dispatcher, Redis) fed over PushEvents:
a full disk under the file output, an HTTP receiver that hangs, Redis unreachable for 60 s, and a Redis crash
(what AOF with ``appendfsync everysec`` keeps; see docs/durability.md). Each ends with every alert delivered to
every output, once per alert id."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.chaoslib import Receiver, dispatcher_outputs
from tests.support.lanner_stack import Stack, marker_event, push_events, wait_until
from tests.support.redis_server import RedisProcess

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
LIGHT = ("collector", "enricher")
HTTP = {"timeout_s": 2.0, "backoff_max_s": 1.0}


def markers_in(alerts: list[dict[str, Any]]) -> list[str]:
    return [str(a.get("output_fields", {}).get("fd.name", "")) for a in alerts if "marker" in str(a)]


def http_markers(receiver: Receiver) -> dict[str, set[str]]:
    """Marker file -> the alert ids it arrived under."""
    out: dict[str, set[str]] = {}
    with receiver.lock:
        for key, body in receiver.requests:
            out.setdefault(str(body.get("output_fields", {}).get("fd.name", "")), set()).add(key)
    return out


def expected(first: int, last: int) -> set[str]:
    return {f"/tmp/lanner-marker-{n}" for n in range(first, last + 1)}


def push_range(stack: Stack, first: int, last: int) -> None:
    for n in range(first, last + 1):
        assert push_events(stack.target("ruleengine"), [marker_event(n)], batch_seq=n) == 1


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.hang.clear()
    r.close()


@pytest.fixture
def stacks() -> Iterator[list[Stack]]:
    made: list[Stack] = []
    yield made
    for stack in made:
        stack.stop()


def light_stack(path: Path, receiver: Receiver, **kw: Any) -> Stack:
    outputs = dispatcher_outputs(receiver.url)
    outputs["http"].update(HTTP)
    env = {"LANNER_DISPATCHER__OUTPUTS__STDOUT__ENABLED": "false", **kw.pop("extra_env", {})}
    return Stack(path, without=LIGHT, dispatcher_outputs=outputs, extra_env=env, **kw)


def assert_all_delivered(stack: Stack, receiver: Receiver, want: set[str], alerts_path: Path | None = None) -> None:
    def done() -> bool:
        in_file = set(markers_in(stack.alerts(alerts_path)))
        return want <= in_file and want <= set(http_markers(receiver))

    wait_until(done, 120, f"{len(want)} alerts in the file output and at the HTTP receiver", interval=0.2)
    ids = http_markers(receiver)
    assert all(len(ids[m]) == 1 for m in want), "a marker arrived as two different alerts"


def test_full_disk_under_the_file_output(tmp_path: Path, receiver: Receiver, stacks: list[Stack]) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], check=True)
    try:
        alerts = disk / "alerts.jsonl"
        stack = light_stack(tmp_path / "state", receiver,
                            extra_env={"LANNER_DISPATCHER__OUTPUTS__FILE__PATH": str(alerts)})  # fmt: skip
        stacks.append(stack.start())
        stack.wait_up()
        filler = disk / "filler"
        with contextlib.suppress(OSError), filler.open("wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        push_range(stack, 1, 20)
        # The HTTP output is not held up by the file output's full disk.
        wait_until(lambda: expected(1, 20) <= set(http_markers(receiver)), 60, "alerts at the HTTP receiver")
        wait_until(lambda: "No space left" in stack.log("dispatcher"), 60, "the file output's ENOSPC in its log")
        filler.unlink()
        assert_all_delivered(stack, receiver, expected(1, 20), alerts)
        stack.stop()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_hanging_http_receiver(tmp_path: Path, receiver: Receiver, stacks: list[Stack]) -> None:
    stack = light_stack(tmp_path / "state", receiver)
    stacks.append(stack.start())
    stack.wait_up()
    receiver.hang.set()  # accepts, reads, never answers
    push_range(stack, 1, 20)
    # The file output is not held up by the HTTP output's hanging receiver.
    wait_until(lambda: expected(1, 20) <= set(markers_in(stack.alerts())), 60, "alerts in the file output")
    wait_until(lambda: receiver.hung >= 2, 60, "the http output to time out and try again")
    receiver.hang.clear()
    assert_all_delivered(stack, receiver, expected(1, 20))


def test_redis_unreachable_for_60_seconds(tmp_path: Path, receiver: Receiver, stacks: list[Stack]) -> None:
    """SIGSTOP: connections stay open and nothing answers, the hard kind of unreachable."""
    redis = RedisProcess()
    redis.start()
    try:
        stack = light_stack(tmp_path / "state", receiver, redis_url=redis.url)
        stacks.append(stack.start())
        stack.wait_up()
        push_range(stack, 1, 5)
        assert_all_delivered(stack, receiver, expected(1, 5))
        assert redis.proc is not None
        redis.proc.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        push_range(stack, 6, 25)  # the rule engine takes them; the dispatcher cannot persist them yet
        wait_until(lambda: stack.metric("dispatcher", "lanner_dispatcher_redis_up") == 0, 60, "redis_up 0")
        wait_until(lambda: time.monotonic() - stopped >= 60, 70, "60 s of outage", interval=1.0)
        redis.proc.send_signal(signal.SIGCONT)
        assert_all_delivered(stack, receiver, expected(1, 25))
        wait_until(lambda: stack.metric("dispatcher", "lanner_dispatcher_redis_up") == 1, 60, "redis_up 1")
    finally:
        if redis.proc is not None:
            redis.proc.send_signal(signal.SIGCONT)
        redis.stop()


def test_redis_crash_loses_no_acknowledged_alert(tmp_path: Path, receiver: Receiver, stacks: list[Stack]) -> None:
    """docs/durability.md: with AOF, a crash of redis-server (not of the host) loses nothing it acknowledged.
    The alerts wait in the stream (the HTTP receiver hangs) when Redis is killed, and the dispatcher is killed
    too, so nothing but Redis's AOF remembers them; after the supervisor restarts both, every one of them is
    delivered."""
    stack = light_stack(tmp_path / "state", receiver)
    stacks.append(stack.start())
    stack.wait_up()
    receiver.hang.set()
    push_range(stack, 1, 30)  # each push returns after the dispatcher acknowledged: the alert is in Redis
    wait_until(lambda: expected(1, 30) <= set(markers_in(stack.alerts())), 60, "alerts in the file output")
    os.kill(stack.child_pid("redis"), signal.SIGKILL)
    os.kill(stack.child_pid("dispatcher"), signal.SIGKILL)
    wait_until(lambda: "redis restarted" in stack.stderr(), 30, "the supervisor to restart redis")
    wait_until(lambda: "dispatcher restarted" in stack.stderr(), 30, "the supervisor to restart the dispatcher")
    receiver.hang.clear()
    assert_all_delivered(stack, receiver, expected(1, 30))
