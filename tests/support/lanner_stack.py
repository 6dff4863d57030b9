# SPDX-License-Identifier: Apache-2.0
"""A real ``lanner up`` on free ports (never the default 7701-7704), and ways to feed and watch it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from lanner.convert import event_to_pb
from lanner.v1 import event_pb2, services_pb2_grpc
from ruleengine.events_json import event_from_fields
from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("collector", "enricher", "ruleengine", "dispatcher")
MARKER_RULES = """
- rule: Lanner test marker
  desc: a marker file was opened (chaos and supervisor tests)
  condition: evt.type in (open, openat) and fd.name startswith /tmp/lanner-marker-
  output: marker opened (file=%fd.name seq=%evt.num)
  priority: WARNING
  tags: [test]
"""


def wait_until(cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``cond`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def children_of(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def marker_event(seq: int, node: str = "chaos-node") -> event_pb2.Event:
    """An event the marker rule alerts on; (node, seq) identify it end to end."""
    fields = {"evt.type": "openat", "proc.name": "cat", "fd.name": f"/tmp/lanner-marker-{seq}", "user.name": "root"}
    pb = event_to_pb(event_from_fields(fields))
    pb.id.node, pb.id.boot_id, pb.id.seq, pb.id.producer_id = node, "boot", seq, "test-producer"
    pb.timing.event_ns = time.time_ns()
    return pb


def push_events(target: str, events: Sequence[event_pb2.Event], batch_seq: int = 1, timeout: float = 10) -> int:
    """Push one batch over RuleEngineService.PushEvents and return how many events its ack accepted."""
    with grpc.insecure_channel(target) as channel:
        stub = services_pb2_grpc.RuleEngineServiceStub(channel)
        batch = event_pb2.EventBatch(batch_seq=batch_seq, events=events)
        for ack in stub.PushEvents(iter([batch]), timeout=timeout):
            return int(ack.accepted)
    return 0


@dataclass
class Stack:
    """One ``lanner up`` process with its own state directory and ports."""

    state: Path
    without: Sequence[str] = ()
    redis_url: str = ""
    rules: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)
    dispatcher_outputs: dict[str, Any] | None = None
    ports: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, int] = field(default_factory=dict)
    redis_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    stderr_offset: int = 0

    def __post_init__(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        if not self.ports:
            self.ports = {s: free_port() for s in SERVICES}
            self.metrics = {s: free_port() for s in SERVICES}
            self.redis_port = free_port()
        if not self.rules:
            rules = self.state / "marker_rules.yaml"
            rules.write_text(MARKER_RULES)
            self.rules = str(rules)
        self.config.write_text(self.config_text())

    @property
    def config(self) -> Path:
        return self.state / "lanner.yaml"

    def config_text(self) -> str:
        p, m = self.ports, self.metrics
        sections = {
            "collector": {"bind": f"127.0.0.1:{p['collector']}", "metrics_bind": f"127.0.0.1:{m['collector']}",
                          "enricher_target": f"127.0.0.1:{p['enricher']}"},
            "enricher": {"bind": f"127.0.0.1:{p['enricher']}", "metrics_bind": f"127.0.0.1:{m['enricher']}",
                         "ruleengine_target": f"127.0.0.1:{p['ruleengine']}", "warm_start": False},
            "ruleengine": {"bind": f"127.0.0.1:{p['ruleengine']}", "metrics_bind": f"127.0.0.1:{m['ruleengine']}",
                           "dispatcher_target": f"127.0.0.1:{p['dispatcher']}", "watch_rules": False},
            "dispatcher": {"bind": f"127.0.0.1:{p['dispatcher']}", "metrics_bind": f"127.0.0.1:{m['dispatcher']}",
                           "trim_interval_s": 1.0, "claim_idle_s": 5.0},
        }  # fmt: skip
        if self.dispatcher_outputs is not None:
            sections["dispatcher"]["outputs"] = self.dispatcher_outputs
        return json.dumps(sections)

    def target(self, service: str) -> str:
        return f"127.0.0.1:{self.ports[service]}"

    @property
    def stderr_path(self) -> Path:
        return self.state / "up.stderr"

    def stderr(self) -> str:
        """What this run of ``lanner up`` printed on stderr."""
        if not self.stderr_path.exists():
            return ""
        with self.stderr_path.open("rb") as f:
            f.seek(self.stderr_offset)
            return f.read().decode(errors="replace")

    def start(self, stdout: int | None = None) -> Stack:
        argv = [sys.executable, "-m", "lanner.cli", "up", "--config", str(self.config), "--state-dir",
                str(self.state), "--rules", self.rules]  # fmt: skip
        argv += ["--redis-url", self.redis_url] if self.redis_url else ["--redis-port", str(self.redis_port)]
        for name in self.without:
            argv += ["--without", name]
        env = {**os.environ, **self.extra_env}
        self.stderr_offset = self.stderr_path.stat().st_size if self.stderr_path.exists() else 0
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout if stdout is not None else (self.state / "up.stdout").open("ab"),
            stderr=self.stderr_path.open("ab"),
            start_new_session=True,
        )
        return self

    def wait_up(self, timeout: float = 150) -> None:
        """Wait for the banner; fail with the supervisor's output if it exits first."""

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"lanner up exited with {self.proc.returncode}: {self.stderr()}")
            return "Ctrl-C stops everything" in self.stderr()

        wait_until(ready, timeout, "the `lanner up` banner")

    def descendants(self) -> list[int]:
        assert self.proc is not None
        out, todo = [], [self.proc.pid]
        while todo:
            for child in children_of(todo.pop()):
                out.append(child)
                todo.append(child)
        return out

    def child_pid(self, name: str) -> int:
        """The pid of the service (or ``redis``) the supervisor runs now."""
        assert self.proc is not None
        for pid in children_of(self.proc.pid):
            with contextlib.suppress(OSError):
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if (name == "redis" and b"redis-server" in cmd[0]) or name.encode() in cmd[3:4]:
                    return pid
        raise AssertionError(f"no {name} under lanner up pid {self.proc.pid}")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 30) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        """SIGTERM, then make sure nothing of this stack is left."""
        if self.proc is None:
            return
        pids = self.descendants()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)

    def log(self, service: str) -> str:
        path = self.state / "logs" / f"{service}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def alerts(self, path: Path | None = None) -> list[dict[str, Any]]:
        """The file output's alerts (``STATE/alerts.jsonl`` unless ``path``)."""
        path = path or self.state / "alerts.jsonl"
        if not path.exists():
            return []
        out = []
        for line in path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def metric(self, service: str, name: str, labels: Iterable[str] = ()) -> float | None:
        """The value of one sample on a service's /metrics (None if absent or unreachable)."""
        try:
            url = f"http://127.0.0.1:{self.metrics[service]}/metrics"
            text = urllib.request.urlopen(url, timeout=2).read().decode()
        except OSError:
            return None
        total, found = 0.0, False
        for line in text.splitlines():
            if line.startswith(name) and all(label in line for label in labels) and not line.startswith("#"):
                head = line.split(" ")[0]
                if head == name or head.startswith(name + "{"):
                    total += float(line.rsplit(" ", 1)[1])
                    found = True
        return total if found else None
