# SPDX-License-Identifier: Apache-2.0
"""The collector's real eBPF source for tests that run commands and look at what the kernel reported."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

import pytest

from collector import preflight
from collector.source import BpfProbe, KernelSource
from lanner.model import Event


def kernel_source(spec_rules: Sequence[str] = (), pages: int = 256) -> Iterator[KernelSource]:
    """Load the probes (skip the test when eBPF cannot run here); use as a module-scoped fixture body. ``pages``
    sizes the ring buffer (a busy host overflows a small one while a test waits for its few events).

    With ``spec_rules``, the kernel spec of those rules is applied as the rule engine would: only the tracepoints
    they need stay attached, and opens none of them can match are dropped in the kernel.
    """
    found = preflight.problems()
    if found:
        pytest.skip("eBPF unavailable: " + "; ".join(found))
    # The test process spawns the workloads, so it must not exclude itself (its children would be silent too).
    src = KernelSource(BpfProbe(ring_buffer_pages=pages, exclude_self=False))
    src.start()
    if spec_rules:
        from ruleengine.engine import load_rules
        from ruleengine.kspec import build_spec

        res = load_rules(list(spec_rules))
        assert res.engine is not None, [e.format() for e in res.errors]
        src.apply_spec(build_spec(res.engine.enabled))
    yield src
    src.close()


def collect(src: KernelSource, done: Callable[[list[Event]], bool], timeout: float = 5.0) -> list[Event]:
    """Poll until ``done(events)`` holds or the timeout passes; returns everything seen."""
    seen: list[Event] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen.extend(src.poll())
        if done(seen):
            return seen
        time.sleep(0.002)
    return seen
