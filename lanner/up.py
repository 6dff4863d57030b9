# SPDX-License-Identifier: Apache-2.0
"""``lanner up``: Redis and the four services as supervised local processes.

Before anything starts, the config and the rules are checked (a mistake is printed with its file:line:col and
nothing starts), the state directory is locked and every configured port is checked free, so a second stack
cannot form beside a running one. Services start downstream first (dispatcher, ruleengine, enricher, collector),
each waited for on its configured address, so that nothing is dropped while the pipeline forms. A service that
dies, and the Redis this command started, are restarted with backoff and announced. Ctrl-C, SIGTERM, SIGHUP, and
a closed output pipe stop everything within 3 s; what a stage had not handed on by then is spilled to its journal
under the state directory and sent at the next start. Children die with the supervisor (see lanner.supervise).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import select
import shutil
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from lanner.control_auth import ensure_token
from lanner.exposure import banner, exposure, extra_listeners
from lanner.supervise import AlreadyRunning, Child, InstanceLock, busy_ports, split_host_port, stop_all
from lanner.up_secure import secure_environment, subscribe_hint

SERVICES = ("dispatcher", "ruleengine", "enricher", "collector")
DEFAULT_REDIS_PORT = 6390
CONFIG_SCHEMAS = {
    "collector": ("collector.config", "CollectorConfig"),
    "enricher": ("enricher.config", "EnricherConfig"),
    "ruleengine": ("ruleengine.config", "RuleEngineConfig"),
    "dispatcher": ("dispatcher.config", "DispatcherConfig"),
}
# A service exiting with this code found its configuration invalid: restarting it cannot help.
EXIT_CONFIG_ERROR = 2
# Everything gets this long after SIGTERM to spill and exit; Redis stops after the dispatcher, or this long
# before the deadline.
STOP_DEADLINE_S = 2.7
STOP_REDIS_S = 0.4
READY_TIMEOUT_S = {"collector": 120.0}


def say(message: str) -> None:
    """One line for the person at the terminal; a closed stderr must not stop the stop."""
    try:
        print(f"lanner up: {message}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def load_configs(path: str | None) -> dict[str, Any]:
    """Every service's section (with its environment overrides), validated the way the service will."""
    from lanner.config import load_section, read_file

    if path:
        read_file(path)
    out = {}
    for section, (module_name, class_name) in CONFIG_SCHEMAS.items():
        schema = getattr(importlib.import_module(module_name), class_name)
        out[section] = load_section(section, schema, path)
    return out


def check_configs(path: str | None) -> None:
    load_configs(path)


def rule_errors(cfg: Any, rules: list[str] | None) -> list[str]:
    """The located errors (file:line:col: ...) the rule engine would refuse to start with."""
    from ruleengine.config import resolve_rules_paths
    from ruleengine.engine import load_rules
    from ruleengine.server import engine_options

    files = resolve_rules_paths(tuple(rules) if rules else cfg.rules_files)
    result = load_rules(files, engine_options(cfg))
    return [m.format() for m in result.errors]


def redis_socket(state_dir: Path) -> Path | None:
    """The Unix socket the private Redis also listens on, unless its path is too long for one (108 bytes)."""
    path = (state_dir / "redis" / "redis.sock").absolute()
    return path if len(os.fsencode(path)) < 100 else None


def redis_argv(state_dir: Path, port: int) -> list[str]:
    """A private redis-server with AOF persistence under ``state_dir`` (see docs/durability.md)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found: install it (`apt-get install redis-server`), or pass --redis-url")
    data = state_dir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    # The services use the Unix socket: a loopback TCP round trip costs both ends several times more CPU, and the
    # dispatcher makes a few per batch of alerts. The TCP port stays for tools and for `lanner up`'s own checks.
    sock = redis_socket(state_dir)
    unix = ["--unixsocket", str(sock), "--unixsocketperm", "700"] if sock is not None else []
    return [
        binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data), "--appendonly", "yes",
        "--appendfsync", "everysec", "--save", "", "--protected-mode", "yes", *unix,
    ]  # fmt: skip


def _service_argv(name: str, args: argparse.Namespace) -> list[str]:
    argv = [sys.executable, "-m", "lanner.cli", name]
    if args.config:
        argv += ["--config", args.config]
    if name == "ruleengine":
        for rules in args.rules or ():
            argv += ["--rules", rules]
    return argv


def _listening(bind: str) -> bool:
    parsed = split_host_port(bind)
    try:
        if parsed is None:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(bind.removeprefix("unix:").removeprefix("//"))
        else:
            socket.create_connection(parsed, timeout=0.5).close()
    except OSError:
        return False
    return True


def wait_ready(child: Child, bind: str, timeout: float, stopping: Any) -> bool:
    """Wait until ``child`` listens on ``bind``; False as soon as it exits (or a stop is asked for)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stopping():
        if _listening(bind):
            return True
        if not child.alive():
            return False
        time.sleep(0.05)
    return False


def _outputs_broken() -> bool:
    """True when whoever reads our stdout or stderr has gone (``lanner up | tee log`` and tee exits): a pipe
    whose reader closed reports POLLERR, a terminal that hung up POLLHUP."""
    poller = select.poll()
    fds = []
    for stream in (sys.stdout, sys.stderr):
        try:
            fd = stream.fileno()
        except (OSError, ValueError, AttributeError):
            continue
        poller.register(fd, 0)
        fds.append(fd)
    return any(ev & (select.POLLERR | select.POLLHUP | select.POLLNVAL) for _, ev in poller.poll(0))


def cmd_up(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir).resolve()
    (state_dir / "logs").mkdir(parents=True, exist_ok=True)
    services = [s for s in SERVICES if s not in set(args.without or ())]
    if args.secure:
        for key, value in secure_environment(state_dir).items():
            os.environ.setdefault(key, value)  # the children inherit it; explicit settings win
    configs = load_configs(args.config)  # ConfigError names the file and key; nothing has started yet
    for rules in args.rules or ():
        if not os.access(rules, os.R_OK):
            say(f"cannot read rules file {rules}; nothing started")
            return EXIT_CONFIG_ERROR
    if "ruleengine" in services:
        errors = rule_errors(configs["ruleengine"], args.rules)
        if errors:
            for line in errors:
                print(line, file=sys.stderr)
            say(f"the rules have {len(errors)} error(s); nothing started")
            return EXIT_CONFIG_ERROR

    local, problems = exposure(configs, services)
    for problem in problems:
        say(f"{'WARNING: ' if args.allow_open else 'not starting: '}{problem}")
    if problems and not args.allow_open:
        say("pass --allow-open to start anyway (not for a host others can reach)")
        return EXIT_CONFIG_ERROR
    if local:
        say(banner(local))
    elif args.secure:
        say(f"security: mutual TLS between the services and tokens on Subscribe ({subscribe_hint(state_dir)})")

    binds = {name: configs[name].bind for name in services}
    addresses = [(n, b) for n, b in binds.items()] + [(f"{n} metrics", configs[n].metrics_bind) for n in services]
    addresses += extra_listeners(configs, services)
    if not args.redis_url:
        addresses.append(("redis", f"127.0.0.1:{args.redis_port}"))
    lock = InstanceLock(state_dir)
    try:
        lock.acquire({"pid": os.getpid(), "ports": dict(addresses), "state_dir": str(state_dir)})
    except AlreadyRunning as exc:
        say(f"not starting: {exc}")
        return 1
    try:
        busy = busy_ports(addresses)
        if busy:
            for problem in busy:
                say(f"not starting: {problem}")
            return 1
        return _run(args, state_dir, services, configs, binds)
    finally:
        lock.release()


def _environment(args: argparse.Namespace, state_dir: Path, redis_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["LANNER_ENRICHER__REDIS_URL"] = redis_url
    env["LANNER_DISPATCHER__REDIS_URL"] = redis_url
    # The collector leaves out Lanner's own processes: this supervisor and everything below it.
    env["LANNER_COLLECTOR__EXCLUDE_PIDS"] = json.dumps([os.getpid()])
    env.setdefault("LANNER_DISPATCHER__OUTPUTS__FILE__PATH", str(state_dir / "alerts.jsonl"))
    env.setdefault("LANNER_DISPATCHER__OUTPUTS__FILE__ENABLED", "true")
    env.setdefault("LANNER_DISPATCHER__OUTPUTS__STDOUT__ENABLED", "true")
    # The dispatcher's dedup key lives with the rest of this instance's state.
    env.setdefault("LANNER_DISPATCHER__DEDUP_SECRET_FILE", str(state_dir / "dispatcher" / "dedup-secret"))
    # Only this instance's rule engine may tell its collector what to drop in the kernel: a token only root reads.
    if not env.get("LANNER_COLLECTOR__CONTROL_TOKEN_FILE"):
        token_file = state_dir / "control-token"
        ensure_token(token_file)
        env["LANNER_COLLECTOR__CONTROL_TOKEN_FILE"] = str(token_file)
    env.setdefault("LANNER_RULEENGINE__CONTROL_TOKEN_FILE", env["LANNER_COLLECTOR__CONTROL_TOKEN_FILE"])
    # What a stage has not handed on when it stops waits here for its next start.
    (state_dir / "spool").mkdir(exist_ok=True)
    for stage in ("collector", "enricher", "ruleengine"):
        env.setdefault(f"LANNER_{stage.upper()}__SPILL_PATH", str(state_dir / "spool" / f"{stage}.journal"))
    return env


def _run(
    args: argparse.Namespace, state_dir: Path, services: list[str], configs: dict[str, Any], binds: dict[str, str]
) -> int:
    logs = state_dir / "logs"
    redis: Child | None = None
    redis_url = args.redis_url
    if not redis_url:
        redis = Child("redis", redis_argv(state_dir, args.redis_port), None, logs / "redis.log")
        sock = redis_socket(state_dir)
        redis_url = f"unix://{sock}?db=0" if sock is not None else f"redis://127.0.0.1:{args.redis_port}/0"
    env = _environment(args, state_dir, redis_url)
    children = [Child(name, _service_argv(name, args), env, logs / f"{name}.log") for name in services]
    reason: list[str] = []

    def request_stop(signum: int, frame: object) -> None:
        reason.append(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, request_stop)
    exit_code = 0
    try:
        if redis is not None:
            redis.start()
            if not wait_ready(redis, f"127.0.0.1:{args.redis_port}", 10, lambda: reason):
                say(f"redis-server did not start on port {args.redis_port}: {'; '.join(redis.log_errors(3))}")
                return 1
            say(f"redis at {redis_url} (pid {redis.pid}, log {redis.log_path})")
        for child in children:
            child.start()
            if not wait_ready(child, binds[child.name], READY_TIMEOUT_S.get(child.name, 60.0), lambda: reason):
                if reason:
                    return 0
                problems = child.log_errors(5) or [f"see {child.log_path}"]
                code = child.proc.returncode if child.proc is not None else None
                state = child.exit_description() if code is not None else "did not listen in time"
                say(f"{child.name} failed to start ({state}): " + " | ".join(problems))
                return EXIT_CONFIG_ERROR if code == EXIT_CONFIG_ERROR else 1
            say(f"{child.name} listening on {binds[child.name]} (pid {child.pid}, log {child.log_path})")
        if "dispatcher" in binds:
            say(
                "alerts go to this terminal (stdout), to "
                f"{env['LANNER_DISPATCHER__OUTPUTS__FILE__PATH']} (Falco JSON lines), and to gRPC subscribers at "
                f"{binds['dispatcher']} (try `lanner subscribe --target {binds['dispatcher']} --json"
                f"{' ' + subscribe_hint(state_dir) if args.secure else ''}`). "
                "Ctrl-C stops everything."
            )
        exit_code = _supervise(children, redis, reason)
    finally:
        started = time.monotonic()
        say(f"stopping ({reason[0] if reason else 'start-up failed'})")
        killed = stop_all(children, STOP_DEADLINE_S, last=redis, last_after="dispatcher", last_s=STOP_REDIS_S)
        if killed:
            say(f"{', '.join(killed)} did not stop in time and were killed")
        say(f"stopped in {time.monotonic() - started:.1f}s")
    return exit_code


def _supervise(children: list[Child], redis: Child | None, reason: list[str]) -> int:
    """Restart whatever dies until a stop is asked for; return the exit code."""
    watched = ([redis] if redis is not None else []) + children
    while not reason:
        time.sleep(0.1)
        if _outputs_broken():
            reason.append("output closed")
            break
        now = time.monotonic()
        for child in watched:
            if child.alive() or reason:
                continue
            if child.next_start == 0.0:
                if child.proc is not None and child.proc.returncode == EXIT_CONFIG_ERROR and child is not redis:
                    say(f"{child.name} rejected its configuration: {' | '.join(child.log_errors(5))}")
                    reason.append(f"{child.name} configuration error")
                    return EXIT_CONFIG_ERROR
                # Back off when a child keeps dying right after start; Redis, which holds the alerts, comes back first.
                uptime = now - child.started_at
                if child is redis:
                    delay = 0.2 if uptime > 30 else min(5.0, 0.2 * 2.0 ** min(child.restarts, 5))
                else:
                    delay = 1.0 if uptime > 30 else min(30.0, 2.0 ** min(child.restarts, 5))
                child.restarts += 1
                child.next_start = now + delay
                # A child that exited by itself usually said why; one killed by a signal did not.
                code = child.proc.returncode if child.proc is not None else 0
                last = child.log_errors(1) if code and code > 0 else []
                say(
                    f"{child.name} {child.exit_description()}{': ' + last[0] if last else ''}; "
                    f"restarting in {delay:.1f}s (restart {child.restarts}, log {child.log_path})"
                )
            elif now >= child.next_start:
                child.next_start = 0.0
                child.start()
                say(f"{child.name} restarted (pid {child.pid})")
    return 0


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
    p.add_argument("--redis-url", metavar="URL", help="use this Redis instead of starting one")
    p.add_argument(
        "--redis-port", type=int, default=DEFAULT_REDIS_PORT, metavar="PORT", help="port of the Redis that up starts"
    )
    p.add_argument(
        "--state-dir", default="var", metavar="DIR", help="where logs, Redis data and alerts.jsonl go (default ./var)"
    )
    p.add_argument("--without", action="append", choices=SERVICES, help="do not start this service")
    p.add_argument(
        "--secure",
        action="store_true",
        help="mutual TLS between the services and tokens on Subscribe (CA, certificate and an admin token are "
        "made once under --state-dir)",
    )
    p.add_argument(
        "--allow-open",
        action="store_true",
        help="start even when a service is reachable from the network without TLS or tokens (warns loudly)",
    )
    p.set_defaults(func=cmd_up)
