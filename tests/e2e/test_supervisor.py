# SPDX-License-Identifier: Apache-2.0
"""``lanner up`` as a supervisor that cannot split, against real processes on free ports.

Children die with the supervisor however it dies, a second instance refuses to start and names the first, a stop
kills nothing, what was not handed on survives a stop in the spill journal, and the Redis it started is
restarted when it dies.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lanner.supervise import port_in_use
from tests.support.lanner_stack import (
    Stack,
    alive,
    marker_event,
    push_events,
    wait_until,
)
from tests.support.redis_server import RedisProcess, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
LIGHT = ("collector", "enricher")  # the rule engine, the dispatcher and Redis: no eBPF needed


def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root for eBPF")


@pytest.fixture
def stacks() -> Iterator[list[Stack]]:
    made: list[Stack] = []
    yield made
    for stack in made:
        stack.stop()


def listening(port: int) -> bool:
    return port_in_use("127.0.0.1", port)


def test_kill_9_of_lanner_up_takes_every_child_with_it(tmp_path: Path, stacks: list[Stack]) -> None:
    needs_root()
    stack = Stack(tmp_path / "state")
    stacks.append(stack.start())
    stack.wait_up()
    pids = stack.descendants()
    assert len(pids) >= 5, pids  # redis-server and the four services
    stack.signal(signal.SIGKILL)
    wait_until(lambda: not any(alive(p) for p in pids), 15, f"children {pids} to die with their supervisor")
    ports = [*stack.ports.values(), *stack.metrics.values(), stack.redis_port]
    wait_until(lambda: not any(listening(p) for p in ports), 15, "every port to be free")
    # The same command comes up again on the same ports: nothing was left behind to split it.
    again = Stack(tmp_path / "state", ports=stack.ports, metrics=stack.metrics, redis_port=stack.redis_port)
    stacks.append(again.start())
    again.wait_up()


def test_second_instance_refuses_and_names_the_first(tmp_path: Path, stacks: list[Stack]) -> None:
    stack = Stack(tmp_path / "one", without=LIGHT)
    stacks.append(stack.start())
    stack.wait_up()
    pid = stack.proc.pid if stack.proc else 0

    same_dir = Stack(tmp_path / "one", without=LIGHT, ports=stack.ports, metrics=stack.metrics,
                     redis_port=stack.redis_port).start()  # fmt: skip
    assert same_dir.wait_exit() == 1
    err = same_dir.stderr()
    assert f"`lanner up` pid {pid} is already running" in err and str(stack.ports["dispatcher"]) in err
    assert "alerts go to" not in err.split(f"pid {pid} is already running")[1]

    same_ports = Stack(tmp_path / "two", without=LIGHT, ports=stack.ports, metrics=stack.metrics,
                       redis_port=stack.redis_port).start()  # fmt: skip
    assert same_ports.wait_exit() == 1
    err = same_ports.stderr()
    assert f"port {stack.ports['dispatcher']} (dispatcher" in err and f"part of `lanner up` pid {pid}" in err
    assert "alerts go to" not in err
    assert stack.proc is not None and stack.proc.poll() is None, "the running instance must be untouched"


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "SIGHUP", "SIGPIPE", "closed output pipe"])
def test_stop_is_clean_and_kills_nothing(tmp_path: Path, stacks: list[Stack], how: str) -> None:
    stack = Stack(tmp_path / "state", without=LIGHT)
    read_end, write_end = os.pipe()
    stacks.append(stack.start(stdout=write_end))
    os.close(write_end)
    stack.wait_up()
    pids = stack.descendants()
    if how == "closed output pipe":
        os.close(read_end)  # `lanner up | tee log` and tee goes away
    else:
        stack.signal(getattr(signal, how))
    assert stack.wait_exit() == 0
    if how != "closed output pipe":
        os.close(read_end)
    err = stack.stderr()
    assert "stopped in" in err, err
    assert "were killed" not in err, err
    assert not any(alive(p) for p in pids)


def test_port_in_use_is_a_start_up_error_naming_the_port(tmp_path: Path) -> None:
    """No SO_REUSEPORT: a service does not bind beside whatever holds its port."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        cfg = tmp_path / "lanner.yaml"
        cfg.write_text(f"ruleengine: {{bind: '127.0.0.1:{port}', metrics_bind: ''}}\n")
        r = subprocess.run([sys.executable, "-m", "lanner.cli", "ruleengine", "--config", str(cfg)],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
        assert r.returncode != 0
        assert f"127.0.0.1:{port}" in r.stderr, r.stderr
        cfg.write_text(f"ruleengine: {{bind: '127.0.0.1:{free_port()}', metrics_bind: '127.0.0.1:{port}'}}\n")
        r = subprocess.run([sys.executable, "-m", "lanner.cli", "ruleengine", "--config", str(cfg)],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
        assert r.returncode != 0
        assert f"cannot serve metrics on 127.0.0.1:{port}" in r.stderr, r.stderr


def test_bad_rules_stop_lanner_up_before_anything_starts(tmp_path: Path) -> None:
    """Issue 7: the located error on the terminal, nothing started, no banner."""
    rules = tmp_path / "bad.yaml"
    rules.write_text("- rule: x\n  desc: x\n  condition: proc.nmae = a\n  output: x\n  priority: info\n")
    stack = Stack(tmp_path / "state", rules=str(rules)).start()
    assert stack.wait_exit(timeout=60) == 2
    err = stack.stderr()
    assert f"{rules}:3:14: error: LOAD_ERR_COMPILE_CONDITION" in err, err
    assert "alerts go to" not in err
    assert not (tmp_path / "state" / "redis").exists() and not list((tmp_path / "state" / "logs").glob("*.log"))


def test_alerts_survive_a_stop_with_redis_away(tmp_path: Path, stacks: list[Stack]) -> None:
    """An alert the dispatcher could not persist (Redis away) is spilled at the stop and delivered after the
    next start."""
    redis = RedisProcess()
    redis.start()
    try:
        stack = Stack(tmp_path / "state", without=LIGHT, redis_url=redis.url)
        stacks.append(stack.start())
        stack.wait_up()
        assert push_events(stack.target("ruleengine"), [marker_event(1)]) == 1
        wait_until(lambda: len(stack.alerts()) == 1, 30, "the first alert in alerts.jsonl")
        redis.stop()
        assert push_events(stack.target("ruleengine"), [marker_event(2)], batch_seq=2) == 1
        wait_until(lambda: stack.metric("dispatcher", "lanner_dispatcher_redis_up") == 0, 30, "redis_up 0")
        stack.signal(signal.SIGTERM)
        assert stack.wait_exit() == 0
        journal = stack.state / "spool" / "ruleengine.journal"
        assert journal.exists(), stack.stderr()
        redis.start()
        again = Stack(tmp_path / "state", without=LIGHT, redis_url=redis.url, ports=stack.ports,
                      metrics=stack.metrics)  # fmt: skip
        stacks.append(again.start())
        again.wait_up()
        files = wait_until(
            lambda: [a["output_fields"]["fd.name"] for a in again.alerts()] if len(again.alerts()) >= 2 else None,
            30,
            "the spilled alert in alerts.jsonl",
        )
        assert sorted(files) == ["/tmp/lanner-marker-1", "/tmp/lanner-marker-2"]
        assert not journal.exists()
    finally:
        redis.stop()


def test_redis_and_services_are_restarted_and_the_outage_shows(tmp_path: Path, stacks: list[Stack]) -> None:
    stack = Stack(tmp_path / "state", without=LIGHT)
    stacks.append(stack.start())
    stack.wait_up()
    wait_until(lambda: stack.metric("dispatcher", "lanner_dispatcher_redis_up") == 1, 30, "redis_up 1")
    # Kill Redis and hold its port, so the restart cannot succeed until the port is let go.
    os.kill(stack.child_pid("redis"), signal.SIGKILL)
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    wait_until(lambda: _try_bind(holder, stack.redis_port), 10, "the redis port to be free")
    holder.listen()
    try:
        wait_until(lambda: "redis was killed by SIGKILL; restarting" in stack.stderr(), 20, "the announcement")
        wait_until(lambda: stack.metric("dispatcher", "lanner_dispatcher_redis_up") == 0, 30, "redis_up 0")
        wait_until(lambda: "NOT_SERVING" in _health(stack.target("dispatcher")), 30, "dispatcher NOT_SERVING")
    finally:
        holder.close()
    wait_until(lambda: stack.metric("dispatcher", "lanner_dispatcher_redis_up") == 1, 60, "redis_up 1 again")
    wait_until(lambda: _health(stack.target("dispatcher")) == "SERVING", 30, "dispatcher SERVING again")
    assert push_events(stack.target("ruleengine"), [marker_event(7)]) == 1
    wait_until(lambda: len(stack.alerts()) == 1, 30, "an alert after the outage")

    os.kill(stack.child_pid("dispatcher"), signal.SIGKILL)
    wait_until(lambda: "dispatcher was killed by SIGKILL" in stack.stderr(), 20, "the announcement")
    wait_until(lambda: "dispatcher restarted" in stack.stderr(), 30, "the dispatcher restart")
    assert push_events(stack.target("ruleengine"), [marker_event(8)], batch_seq=2) == 1
    wait_until(lambda: len(stack.alerts()) == 2, 60, "an alert through the restarted dispatcher")


def _try_bind(sock: socket.socket, port: int) -> bool:
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True


def _health(target: str) -> str:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with contextlib.suppress(grpc.RpcError), grpc.insecure_channel(target) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
    return "UNREACHABLE"


CRASHER = """
import asyncio, sys
from lanner.logs import setup_logging
from lanner.server import run_service

async def broken() -> None:
    raise RuntimeError("simulated bug")

setup_logging("crasher")
from lanner.cli import main  # the same last line of defence every service runs under
sys.argv = ["lanner", "collector"]
import lanner.cli
lanner.cli.build_parser = lambda only=None: _Parser()

class _Parser:
    def parse_args(self, argv):
        import argparse
        return argparse.Namespace(command="collector", func=lambda a: asyncio.run(
            run_service("crasher", "127.0.0.1:0", lambda s: [], background=[broken])))
sys.exit(main())
"""


def test_a_crashing_service_exits_non_zero_with_its_traceback(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-c", CRASHER], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0, r.stderr
    assert "Traceback" in r.stderr and "simulated bug" in r.stderr, r.stderr
    assert "background task failed; stopping service" in r.stderr
