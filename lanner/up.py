# SPDX-License-Identifier: Apache-2.0
"""``lanner up``: Redis and the four services as supervised local processes.

Services start downstream first (dispatcher, ruleengine, enricher, collector) so that nothing is dropped while
the pipeline forms. A service that dies is restarted with backoff. Ctrl-C (or SIGTERM) stops them in the reverse
order, giving each a grace period, then stops the Redis it started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

SERVICES = ("dispatcher", "ruleengine", "enricher", "collector")
DEFAULT_REDIS_PORT = 6390
DEFAULT_PORTS = {"collector": 7701, "enricher": 7702, "ruleengine": 7703, "dispatcher": 7704}


@dataclass
class Child:
    """One supervised process."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = 0.0
    log_file: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log_file = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=None,
            stderr=self.log_file,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.started_at = time.monotonic()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)


def _wait_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.1)
    return False


def start_redis(state_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """Start a private redis-server with persistence (AOF) under ``state_dir``."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found: install it (`apt-get install redis-server`), or pass --redis-url")
    data = state_dir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    log = (state_dir / "logs" / "redis.log").open("ab")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--protected-mode",
            "yes",
        ],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    if not _wait_port("127.0.0.1", port, 10):
        proc.kill()
        raise RuntimeError(f"redis-server did not start on port {port}; see {state_dir / 'logs' / 'redis.log'}")
    return proc


CONFIG_SCHEMAS = {
    "collector": ("collector.config", "CollectorConfig"),
    "enricher": ("enricher.config", "EnricherConfig"),
    "ruleengine": ("ruleengine.config", "RuleEngineConfig"),
    "dispatcher": ("dispatcher.config", "DispatcherConfig"),
}
# A service exiting with this code found its configuration invalid: restarting it cannot help.
EXIT_CONFIG_ERROR = 2


def check_configs(path: str | None) -> None:
    """Validate every service's section (and its environment overrides) the way the service will."""
    import importlib

    from lanner.config import load_section, read_file

    if path:
        read_file(path)
    for section, (module_name, class_name) in CONFIG_SCHEMAS.items():
        schema = getattr(importlib.import_module(module_name), class_name)
        load_section(section, schema, path)


def _service_argv(name: str, args: argparse.Namespace) -> list[str]:
    argv = [sys.executable, "-m", "lanner.cli", name]
    if args.config:
        argv += ["--config", args.config]
    if name == "ruleengine":
        for rules in args.rules or ():
            argv += ["--rules", rules]
    return argv


def cmd_up(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir).resolve()
    (state_dir / "logs").mkdir(parents=True, exist_ok=True)
    check_configs(args.config)  # fail fast, with the file and key named, before anything starts
    for rules in args.rules or ():
        if not os.access(rules, os.R_OK):
            print(f"lanner up: cannot read rules file {rules}", file=sys.stderr)
            return 2

    redis_proc: subprocess.Popen[bytes] | None = None
    redis_url = args.redis_url
    if not redis_url:
        redis_proc = start_redis(state_dir, args.redis_port)
        redis_url = f"redis://127.0.0.1:{args.redis_port}/0"

    env = dict(os.environ)
    env["LANNER_ENRICHER__REDIS_URL"] = redis_url
    env["LANNER_DISPATCHER__REDIS_URL"] = redis_url
    # The collector leaves out Lanner's own processes: this supervisor and everything below it.
    env["LANNER_COLLECTOR__EXCLUDE_PIDS"] = json.dumps([os.getpid()])
    alerts_file = str(state_dir / "alerts.jsonl")
    env.setdefault("LANNER_DISPATCHER__OUTPUTS__FILE__PATH", alerts_file)
    env.setdefault("LANNER_DISPATCHER__OUTPUTS__FILE__ENABLED", "true")
    env.setdefault("LANNER_DISPATCHER__OUTPUTS__STDOUT__ENABLED", "true")

    services = [s for s in SERVICES if s not in set(args.without or ())]
    children = [Child(name, _service_argv(name, args), env, state_dir / "logs" / f"{name}.log") for name in services]
    stopping = False
    exit_code = 0

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    print(f"lanner up: redis at {redis_url}", file=sys.stderr)
    for child in children:
        child.start()
        port = DEFAULT_PORTS[child.name]
        if not _wait_port("127.0.0.1", port, 60) and not child.alive():
            print(f"lanner up: {child.name} failed to start; see {child.log_path}", file=sys.stderr)
        print(
            f"lanner up: {child.name} started (pid {child.proc.pid if child.proc else '?'}, log {child.log_path})",
            file=sys.stderr,
        )
    print(
        "lanner up: alerts go to this terminal (stdout), to "
        f"{alerts_file} (Falco JSON lines), and to gRPC subscribers at 127.0.0.1:7704 "
        "(try `lanner subscribe --json`). Ctrl-C stops everything.",
        file=sys.stderr,
    )
    try:
        while not stopping:
            time.sleep(0.2)
            now = time.monotonic()
            for child in children:
                if child.alive() or stopping:
                    continue
                if child.proc is not None and child.next_start == 0.0:
                    code = child.proc.returncode
                    if code == EXIT_CONFIG_ERROR:
                        print(
                            f"lanner up: {child.name} rejected its configuration (see {child.log_path}); stopping",
                            file=sys.stderr,
                        )
                        stopping = True
                        exit_code = EXIT_CONFIG_ERROR
                        break
                    uptime = now - child.started_at
                    # Back off when a service keeps crashing right after start.
                    delay = 1.0 if uptime > 30 else min(30.0, 2.0 ** min(child.restarts, 5))
                    child.restarts += 1
                    child.next_start = now + delay
                    print(
                        f"lanner up: {child.name} exited with code {code}; restarting in {delay:.0f}s "
                        f"(see {child.log_path})",
                        file=sys.stderr,
                    )
                elif now >= child.next_start:
                    child.next_start = 0.0
                    child.start()
    finally:
        print("lanner up: stopping", file=sys.stderr)
        for child in reversed(children):
            child.stop(grace=10)
        if redis_proc is not None:
            redis_proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                redis_proc.wait(timeout=10)
        print("lanner up: stopped", file=sys.stderr)
    return exit_code


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("up", help="run Redis and all four services locally (needs root for eBPF)")
    p.add_argument(
        "--rules",
        "-r",
        action="append",
        metavar="FILE",
        help="rules file to load (repeatable, loaded in order, like falco -r); default: rules/",
    )
    p.add_argument("--config", "-c", metavar="FILE", help="lanner YAML config (one section per service)")
    p.add_argument("--redis-url", help="use this Redis instead of starting one")
    p.add_argument("--redis-port", type=int, default=DEFAULT_REDIS_PORT, help="port of the Redis that up starts")
    p.add_argument("--state-dir", default="var", help="where logs, Redis data and alerts.jsonl go (default ./var)")
    p.add_argument("--without", action="append", choices=SERVICES, help="do not start this service")
    p.set_defaults(func=cmd_up)
