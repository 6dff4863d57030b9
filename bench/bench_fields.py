# SPDX-License-Identifier: Apache-2.0
"""Field extraction speed: EventContext creation plus the fields a typical rule set reads per event.

Run: .venv/bin/python bench/bench_fields.py
"""

from __future__ import annotations

import time

from lanner.model import Arg, Container, Event, Fd, FdType, Process
from ruleengine.fields import EventContext, resolve_field

EVENT = Event(
    type="openat",
    res=3,
    proc=Process(
        pid=200,
        comm="cat",
        exe="cat",
        exepath="/usr/bin/cat",
        args=("/etc/shadow",),
        uid=0,
        cap_effective=(1 << 41) - 1,
    ),
    ancestors=(Process(pid=100, comm="bash"), Process(pid=50, comm="sshd")),
    fd=Fd(num=3, type=FdType.FILE, path="/etc/shadow", open_flags=0o2000000),
    args=(Arg("dirfd", -100), Arg("name", "/etc/shadow"), Arg("flags", 0o2000000)),
    container=Container(id="3ad7b26ded6d", image_repository="nginx", metadata_complete=True),
)
TYPICAL = [
    "evt.type",
    "evt.is_open_read",
    "fd.typechar",
    "fd.num",
    "fd.name",
    "fd.directory",
    "proc.name",
    "proc.pname",
    "proc.aname[2]",
    "container.id",
    "user.name",
    "evt.num",
]


def bench(label: str, fields: list[str], n: int = 200_000) -> None:
    bound = []
    for token in fields:
        name, _, arg = token.partition("[")
        bound.append(resolve_field("syscall", name, arg.rstrip("]") or None))
    start = time.perf_counter()
    for _ in range(n):
        ctx = EventContext(EVENT)
        for b in bound:
            ctx.get(b)
            ctx.get(b)  # conditions often read a field twice: the second read is a cache hit
    elapsed = time.perf_counter() - start
    per_event = elapsed / n
    print(
        f"{label:<40} {n / elapsed:>12,.0f} events/s  {per_event * 1e9:>8.0f} ns/event "
        f"({len(fields)} fields, each read twice)"
    )


if __name__ == "__main__":
    bench("context only", [])
    bench("evt.type only", ["evt.type"])
    bench("typical rule set (12 fields)", TYPICAL)
    bench(
        "rendering-heavy (args, flags, caps)",
        ["evt.args", "evt.arg.flags", "thread.cap_effective", "proc.cmdline"],
        n=50_000,
    )
