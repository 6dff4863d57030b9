# SPDX-License-Identifier: Apache-2.0
"""``lanner collector`` (the service), ``lanner collector events`` (print live events) and ``... check``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from lanner.config import ConfigError
from lanner.model import Event
from lanner.text import terminal_safe


def _load(args: argparse.Namespace) -> object:
    from collector.config import load_config

    try:
        return load_config(args.config)
    except ConfigError as exc:
        print(f"lanner collector: config error: {exc}", file=sys.stderr)
        return None


def cmd_collector(args: argparse.Namespace) -> int:
    """Run the collector service (or a subcommand)."""
    sub = getattr(args, "collector_func", None)
    if sub is not None:
        return int(sub(args))
    from collector.config import CollectorConfig
    from collector.preflight import SetupError
    from collector.server import build_source, serve
    from lanner.logs import setup_logging
    from lanner.server import ServiceStartError, run

    cfg = _load(args)
    if not isinstance(cfg, CollectorConfig):
        return 2
    setup_logging("collector", cfg.log_level)
    source = build_source(cfg)
    try:
        source.start()
    except SetupError as exc:
        print(f"lanner collector: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"lanner collector: cannot read {cfg.replay_path}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        run(serve(cfg, source))
    except ServiceStartError as exc:
        source.close()
        print(f"lanner collector: {exc}", file=sys.stderr)
        return 1
    return 0


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_event(ev: Event) -> str:
    """One human-readable line per event."""
    t = time.strftime("%H:%M:%S", time.localtime(ev.timing.event_ns // 1_000_000_000))
    p = ev.proc
    user = p.user_name or "<NA>"
    parts = [
        f"{t}.{ev.timing.event_ns % 1_000_000_000:09d}",
        ev.type,
        f"res={ev.res}",
        f"proc={p.comm}[{p.pid}{'' if p.tid in (p.pid, 0) else '/' + str(p.tid)}]",
        f"ppid={p.ppid}",
        f"user={user}({p.euid if p.euid is not None else p.uid})",
        f"exepath={p.exepath}",
        f"cmdline={_short(' '.join((p.comm, *p.args)))!r}",
    ]
    if ev.fd is not None:
        fd = ev.fd
        desc = f"fd={fd.num}"
        if fd.path:
            desc += f" path={fd.path}"
        if fd.open_flags is not None:
            desc += f" flags={fd.open_flags:#o}"
        if fd.server_port is not None:
            desc += f" server={fd.server_ip.hex()}:{fd.server_port}"
        if fd.client_port is not None:
            desc += f" client={fd.client_ip.hex()}:{fd.client_port}"
        parts.append(desc)
    if ev.ancestors:
        parts.append("ancestors=" + ">".join(a.comm for a in ev.ancestors[:6]))
    if p.cgroup_id > 1:
        parts.append(f"cgroup_id={p.cgroup_id}")
    # Names and paths are the process's bytes: escape what a terminal would act on or cannot print.
    return terminal_safe(" ".join(parts))


def cmd_events(args: argparse.Namespace) -> int:
    """Print decoded events live, with no other service running."""
    from collector.config import CollectorConfig
    from collector.preflight import SetupError
    from collector.server import build_source
    from lanner.recording import event_line

    cfg = _load(args)
    if not isinstance(cfg, CollectorConfig):
        return 2
    source = build_source(cfg)
    try:
        source.start()
    except SetupError as exc:
        print(f"lanner collector: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"lanner collector: cannot read {cfg.replay_path}: {exc.strerror}", file=sys.stderr)
        return 1
    types = set(args.type or ())
    pids = set(args.pid or ())
    printed = 0
    print(f"# tracing ({', '.join(cfg.families)}); Ctrl-C to stop", file=sys.stderr, flush=True)
    try:
        while args.count is None or printed < args.count:
            events = source.poll()
            for ev in events:
                if types and ev.type not in types:
                    continue
                if pids and ev.proc.pid not in pids:
                    continue
                print(event_line(ev) if args.json else format_event(ev), flush=False)
                printed += 1
                if args.count is not None and printed >= args.count:
                    break
            sys.stdout.flush()
            if not events and getattr(source, "finished", False):
                break
            if not events:
                time.sleep(cfg.poll_interval_ms / 1000.0)
    except KeyboardInterrupt:
        pass
    finally:
        dropped = source.dropped()
        source.close()
        if dropped:
            print(f"# {dropped} events lost in the kernel ring buffer", file=sys.stderr)
    return 0


def cmd_check(_args: argparse.Namespace) -> int:
    """Report whether eBPF can run here, and how to fix what is missing."""
    from collector.kernel_offsets import resolve
    from collector.preflight import problems

    found = problems()
    offsets = resolve()
    if offsets.available:
        btf_line = "kernel BTF: process facts (exe inode, caps, tty, loginuid...) are read in the kernel at exec"
    else:
        btf_line = (
            f"kernel BTF unusable ({offsets.problem}): process facts are read from /proc after each exec, so "
            "processes that exit at once lack them"
        )
    if not found:
        print("eBPF ready: root, tracefs, kernel headers and bcc found")
        print(btf_line)
        return 0
    print(btf_line)
    for p in found:
        print(f"- {p}")
    return 1


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``collector`` (with ``events`` and ``check``) on the ``lanner`` command."""
    p = sub.add_parser("collector", help="run the collector (eBPF syscall events -> enricher)")
    p.add_argument("--config", "-c", metavar="FILE", help="lanner YAML config (section 'collector')")
    p.set_defaults(func=cmd_collector, collector_func=None)
    csub = p.add_subparsers(dest="collector_command", metavar="SUBCOMMAND")
    e = csub.add_parser("events", help="print decoded events live, without the other services")
    e.add_argument(
        "--config", "-c", metavar="FILE", default=argparse.SUPPRESS, help="lanner YAML config (section 'collector')"
    )
    e.add_argument("--json", action="store_true", help="one JSON object per line (protobuf JSON mapping)")
    e.add_argument("--count", "-n", type=int, metavar="N", help="stop after N events")
    e.add_argument("--type", "-t", action="append", metavar="TYPE", help="only this event type (repeatable)")
    e.add_argument("--pid", "-p", type=int, action="append", metavar="PID", help="only this pid (repeatable)")
    e.set_defaults(collector_func=cmd_events)
    c = csub.add_parser("check", help="check that eBPF can run here and say how to fix what is missing")
    c.set_defaults(collector_func=cmd_check)
    from collector.syscalls_cli import add_command

    add_command(csub)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m collector``: the collector service."""
    parser = argparse.ArgumentParser(prog="python -m collector")
    parser.add_argument("--config", "-c", metavar="FILE")
    args = parser.parse_args(argv)
    args.collector_func = None
    return cmd_collector(args)
