# SPDX-License-Identifier: Apache-2.0
"""The kernel filter's counters reach Prometheus even when nothing more reaches userspace (real kernel)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

from collector.kfilter import FILTERED, PASSED
from collector.source import KernelSource
from ruleengine.engine import EngineOptions, load_texts
from ruleengine.kspec import build_spec
from tests.collector.live_programs import kernel_control
from tests.support.kernel_source import WAIT_S, collect, drain, kernel_source

pytestmark = pytest.mark.bpf

SHADOW = """
- rule: shadow read
  desc: d
  condition: evt.type in (open, openat) and fd.name = /etc/shadow
  output: "shadow fd=%fd.name"
  priority: WARNING
"""


@pytest.fixture(scope="module")
def source() -> Iterator[KernelSource]:
    yield from kernel_source()


def test_filter_counts_reach_prometheus_while_nothing_passes(source: KernelSource) -> None:
    """An open storm that the filter drops whole leaves nothing to read. The counters used to be copied only by a
    poll that found events, so `lanner_kernel_filtered_total` stood still, behind the kernel by the storm's last
    opens, until an unrelated event came along (on a quiet host, never): a benchmark read the passed counter 0.7%
    short of its load this way. Polls that find nothing must copy them too."""
    res = load_texts([("kc.yaml", textwrap.dedent(SHADOW))], EngineOptions(rule_matching="all"))
    assert res.engine is not None, [e.format() for e in res.errors]
    source.apply_spec(build_spec(res.engine.enabled))
    drain(source)
    control = kernel_control(source)
    control.update_metrics()
    prom0 = FILTERED.labels("openat")._value.get() + PASSED.labels("openat")._value.get()
    kernel0 = sum(control.counts()["openat"])
    code = "import os\nfor _ in range(300): os.close(os.open('/etc/hostname', os.O_RDONLY))\n"
    p = subprocess.Popen([sys.executable, "-c", code])
    p.wait(timeout=WAIT_S)
    # Its exec and exit pass the filter (they keep the process table); its 300 opens do not.
    collect(source, lambda evs: any(e.proc.pid == p.pid and e.type == "procexit" for e in evs))
    kernel = sum(control.counts()["openat"]) - kernel0
    assert kernel >= 300
    # From here on, polls find nothing of it: poll as the collector's loop does when idle.
    deadline = time.monotonic() + WAIT_S
    prom = 0.0
    while time.monotonic() < deadline:
        source.poll()
        prom = FILTERED.labels("openat")._value.get() + PASSED.labels("openat")._value.get() - prom0
        if prom >= kernel:
            break
        time.sleep(0.05)
    assert prom >= kernel, f"Prometheus has {prom:.0f} of the {kernel} opens the kernel counted"
