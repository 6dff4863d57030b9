# SPDX-License-Identifier: Apache-2.0
"""What the live probe tests share: the source's kernel control, a rule set from bare conditions, and running a
Python program while the source decodes, keeping only that program's events."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from collector.kfilter import KernelControl
from collector.source import KernelSource
from lanner.model import Event
from ruleengine.engine import Engine, EngineOptions, load_texts
from tests.support.kernel_source import collect


def kernel_control(src: KernelSource) -> KernelControl:
    control = src.reader.control  # type: ignore[attr-defined]
    assert isinstance(control, KernelControl)
    return control


def engine_of(*conditions: str) -> Engine:
    """One WARNING rule per condition, all matching (``rule_matching: all``)."""
    text = "".join(
        f"""
- rule: r{i}
  desc: d
  condition: {c}
  output: "o %fd.name"
  priority: WARNING
"""
        for i, c in enumerate(conditions)
    )
    res = load_texts([("t.yaml", text)], EngineOptions(rule_matching="all"))
    assert res.engine is not None, [e.format() for e in res.errors]
    return res.engine


def run_program(src: KernelSource, code: str) -> tuple[list[Event], list[str], int]:
    """Run a Python program, decoding while it runs: its events (until its exit), the words it printed, its pid."""
    while src.poll():
        pass
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True)
    events = collect(src, lambda evs: any(e.type == "procexit" and e.proc.pid == p.pid for e in evs), 30)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 0
    return [e for e in events if e.proc.pid == p.pid], out.split(), p.pid
