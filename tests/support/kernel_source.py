# SPDX-License-Identifier: Apache-2.0
"""The collector's real eBPF source for tests that run commands and look at what the kernel reported.

The source is confined to what the tests watch (``confine``): the test process, what it starts, and the container
runtimes with their containers. Unconfined, the probes recorded the whole host, and on a shared machine carrying
another open storm (hundreds of thousands of opens/s) a test's Python decoder fell behind the ring buffer: the few
events a case looked for were lost, or arrived after its deadline, and (with pid_max at 32768 and other work forking
all the time) an older process's exit under a reused pid ended the wait for the test's program before its events
were read.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence

import pytest

from collector import preflight
from collector.procfs import list_pids, parse_stat
from collector.source import BpfProbe, KernelSource, with_descendants
from lanner.model import Event

# Processes whose children are containers (or set them up): the container tests watch what these start.
RUNTIMES = ("containerd", "dockerd", "conmon", "crun", "runc")

# A deadline for waits that normally end at once: generous, because a loaded host can be slow, and free when nothing
# is late (every wait ends as soon as what it waits for is there).
WAIT_S = 60.0


def _stat(pid: int) -> tuple[str, str] | None:
    """(comm, state) of a process, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    comm = parse_stat(text).comm
    return comm, text[text.rindex(")") + 2 :].split()[0]


def confine(probe: BpfProbe) -> None:
    """Exclude every process except this one, the container runtimes and what they all run; what an excluded process
    forks from now on is excluded by the probes themselves. What is left is the tests' own work."""
    roots = {os.getpid()}
    for pid in list_pids():
        st = _stat(pid)
        if st is not None and st[0].startswith(RUNTIMES):
            roots.add(pid)
    excluded: set[int] = set()
    # Again for what was forked while the first pass ran by a process not excluded yet.
    for _ in range(3):
        keep = with_descendants(roots)
        for pid in list_pids():
            if pid not in keep and pid not in excluded:
                probe.exclude(pid)
                excluded.add(pid)
    # An entry added after its process exited (gone, or a zombie: the probes saw its exit before the entry was
    # there) would stay, and silence a later test program that gets the same pid.
    for pid in excluded:
        st = _stat(pid)
        if st is None or st[1] in ("Z", "X"):
            probe.include(pid)


def kernel_source(spec_rules: Sequence[str] = (), pages: int = 256) -> Iterator[KernelSource]:
    """Load the probes (skip the test when eBPF cannot run here), confined to the tests' processes; use as a
    module-scoped fixture body. ``pages`` sizes the ring buffer.

    With ``spec_rules``, the kernel spec of those rules is applied as the rule engine would: only the tracepoints
    they need stay attached, and opens none of them can match are dropped in the kernel.
    """
    found = preflight.problems()
    if found:
        pytest.skip("eBPF unavailable: " + "; ".join(found))
    # The test process spawns the workloads, so it must not exclude itself (its children would be silent too).
    probe = BpfProbe(ring_buffer_pages=pages, exclude_self=False)
    src = KernelSource(probe)
    src.start()
    confine(probe)
    if spec_rules:
        from ruleengine.engine import load_rules
        from ruleengine.kspec import build_spec

        res = load_rules(list(spec_rules))
        assert res.engine is not None, [e.format() for e in res.errors]
        src.apply_spec(build_spec(res.engine.enabled))
    drain(src)
    yield src
    src.close()


def drain(src: KernelSource, timeout: float = WAIT_S) -> None:
    """Decode and forget everything the probes queued so far, so that a case sees only what happens after."""
    deadline = time.monotonic() + timeout
    while src.poll() and time.monotonic() < deadline:
        pass


def collect(src: KernelSource, done: Callable[[list[Event]], bool], timeout: float = WAIT_S) -> list[Event]:
    """Poll until ``done(events)`` holds or the timeout passes; returns everything seen."""
    seen: list[Event] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen.extend(src.poll())
        if done(seen):
            return seen
        time.sleep(0.002)
    return seen


def without_drops(src: KernelSource, attempt: Callable[[], list[Event]], tries: int = 3) -> list[Event]:
    """Run one attempt of a case; again (up to ``tries`` times) only when the kernel reported lost events meanwhile:
    a case's events must all be there to judge it."""
    events: list[Event] = []
    for _ in range(tries):
        drain(src)
        before = src.dropped()
        events = attempt()
        if src.dropped() == before:
            break
    return events
