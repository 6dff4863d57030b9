# SPDX-License-Identifier: Apache-2.0
"""A rule on ``fd.num = 0`` against the real kernel, through the wire as the services pass events on: the
collector's direct wire path (opens) and its decoder + encoder (dup2), a batch frame, the rule engine's lazy event.
fd 0 (stdin) used to read back as -1 once on the wire, so such a rule never fired."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

from collector.encode import EventEncoder
from collector.source import KernelSource
from lanner.convert import BatchTables
from lanner.lazy_event import LazyEvent
from lanner.v1 import event_pb2
from lanner.wire import shared_batch_wire
from ruleengine.fields import EventContext
from tests.collector.live_programs import engine_of
from tests.support.kernel_source import WAIT_S, drain, kernel_source

pytestmark = pytest.mark.bpf

PROGRAM = """
import os, socket
os.close(0)
stdin = os.open("/etc/hostname", os.O_RDONLY)  # the lowest free fd: 0
other = os.open("/etc/hostname", os.O_RDONLY)
s = socket.socket()
os.dup2(s.fileno(), 0)  # a socket on stdin, as a reverse shell sets one up
print(stdin, other)
"""


@pytest.fixture(scope="module")
def source() -> Iterator[KernelSource]:
    yield from kernel_source()


def _run_over_the_wire(src: KernelSource, code: str) -> tuple[list[LazyEvent], list[str]]:
    """Run a program; its events as the rule engine reads them, and what it printed."""
    drain(src)
    encoder = EventEncoder()
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True)
    mine: list[LazyEvent] = []
    deadline = time.monotonic() + WAIT_S
    seq = 0
    while time.monotonic() < deadline and not any(e.type == "procexit" for e in mine):
        shared, _ = src.poll_wire(encoder)
        if not shared:
            time.sleep(0.002)
            continue
        seq += 1
        frame = event_pb2.EventBatchFrame.FromString(shared_batch_wire(seq, shared, 0))
        tables = BatchTables(frame)
        for data in frame.events:
            ev = LazyEvent(event_pb2.EventView.FromString(data), tables, "syscall")
            if ev.proc.pid == p.pid:
                mine.append(ev)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 0
    return mine, out.split()


def test_a_rule_on_fd_zero_alerts_for_stdin(source: KernelSource) -> None:
    engine = engine_of(
        "evt.type = openat and fd.num = 0 and fd.name = /etc/hostname",
        "evt.type = dup2 and fd.num = 0 and fd.type = ipv4",
    )
    events, printed = _run_over_the_wire(source, PROGRAM)
    assert printed[0] == "0" and printed[1] != "0"
    fired = [(m.name, e.type, e.res) for e in events for m in engine.process(EventContext(e))]
    # The open that got fd 0 and the dup2 onto it; not the second open.
    assert sorted(fired) == [("r0", "openat", 0), ("r1", "dup2", 0)], fired
