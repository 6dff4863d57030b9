# SPDX-License-Identifier: Apache-2.0
"""Batches as the collector sends them, for the enricher and rule-engine benchmarks.

The events are ``lanner.model`` events shaped like ``collector.decode_file`` builds them (an openat with its fd,
five args and the process chain from the process table), encoded by the collector's own encoder into a batch
whose processes travel once in its table (``EventBatch.processes``). A few processes open file after file, as a
busy host's do, and a share of them run in a container.
"""

from __future__ import annotations

import time

from collector.encode import EventEncoder
from lanner.model import Arg, Event, EventIdentity, EventTiming, Fd, FdType, Process
from lanner.wire import shared_batch_wire

CID = "ab" * 32
HOST_CG = ("0::/user.slice/user-0.slice/session-1.scope",)
CTR_CG = (f"0::/system.slice/docker-{CID}.scope",)
FILES = (
    "/etc/hostname",
    "/usr/lib/x86_64-linux-gnu/libc.so.6",
    "/proc/self/status",
    "/var/log/app/access.log",
    "/srv/app/static/main.css",
    "/etc/ld.so.cache",
    "/etc/hosts",
    "/tmp/tmp.x1",
)
O_RDONLY_CLOEXEC = 0o2000000


def _proc(pid: int, comm: str, exe: str, args: tuple[str, ...], parent: int, cgroups: tuple[str, ...]) -> Process:
    return Process(
        pid=pid,
        tid=pid,
        ppid=parent,
        vpid=pid,
        vtid=pid,
        sid=parent,
        pgid=pid,
        vpgid=pid,
        comm=comm,
        exe=exe,
        exepath=exe,
        args=args,
        cwd="/srv/app",
        env=("PATH=/usr/bin:/bin", "HOME=/root", "LANG=C.UTF-8"),
        uid=0,
        gid=0,
        loginuid=-1,
        euid=0,
        egid=0,
        user_name="root",
        user_homedir="/root",
        user_shell="/bin/bash",
        group_name="root",
        cap_effective=0x1FFFFFFFFFF,
        cap_permitted=0x1FFFFFFFFFF,
        cap_inheritable=0,
        tty=0,
        start_ns=1_700_000_000_000_000_000 + pid,
        cgroup_id=4242,
        cgroups=cgroups,
        is_exe_writable=False,
        is_exe_upper_layer=False,
        is_exe_from_memfd=False,
        exe_ino=123456 + pid,
    )


def processes(n_procs: int, container_share: float) -> list[tuple[Process, tuple[Process, ...]]]:
    """``n_procs`` worker processes, each with a chain of three ancestors (shell, sshd/containerd-shim, init)."""
    init = _proc(1, "systemd", "/usr/lib/systemd/systemd", ("--system",), 0, HOST_CG)
    out = []
    every = round(1 / container_share) if container_share else 0
    for i in range(n_procs):
        cg = CTR_CG if every and i % every == 0 else HOST_CG
        daemon = _proc(500 + i, "sshd", "/usr/sbin/sshd", ("-D",), 1, cg)
        shell = _proc(900 + i, "bash", "/usr/bin/bash", ("-l",), 500 + i, cg)
        worker = _proc(2000 + i, "python3", "/usr/bin/python3.11", ("app.py", "--serve"), 900 + i, cg)
        out.append((worker, (shell, daemon, init)))
    return out


def open_events(n: int, n_procs: int = 8, container_share: float = 0.25, seq0: int = 1) -> list[Event]:
    """``n`` openat events from ``n_procs`` processes, in runs of 16 per process."""
    procs = processes(n_procs, container_share)
    now = time.time_ns()
    out = []
    for i in range(n):
        proc, ancestors = procs[(i // 16) % len(procs)]
        path = FILES[i % len(FILES)]
        fd = 3 + i % 20
        out.append(
            Event(
                type="openat",
                identity=EventIdentity("node-1", "boot-1", seq0 + i, "collector-1"),
                timing=EventTiming(now - 2_000_000 + i, now),
                res=fd,
                cpu=i % 2,
                proc=proc,
                ancestors=ancestors,
                fd=Fd(num=fd, type=FdType.FILE, path=path, path_raw=path, open_flags=O_RDONLY_CLOEXEC, mode=0),
                args=(
                    Arg("fd", fd),
                    Arg("dirfd", -100),
                    Arg("name", path),
                    Arg("flags", O_RDONLY_CLOEXEC),
                    Arg("mode", 0),
                ),
            )
        )
    return out


def collector_batch(events: list[Event], seq: int = 1, encoder: EventEncoder | None = None) -> bytes:
    """The serialized EventBatch the collector sends for these events (processes in the batch's table)."""
    enc = encoder or EventEncoder()
    return shared_batch_wire(seq, [enc.encode_shared(ev) for ev in events], 0)
