# SPDX-License-Identifier: Apache-2.0
"""What the live probe tests share: the source's kernel control, a rule set from bare conditions, and running a
Python program while the source decodes, keeping only that program's events."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from collector.kfilter import KernelControl
from collector.source import KernelSource
from lanner.model import Event
from ruleengine.engine import Engine, EngineOptions, load_texts
from tests.support.kernel_source import collect, drain


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


# The last line of a program run with ``hold``: it then waits for its input to close, so it lives until every event
# it caused so far was decoded (the fd table reads /proc for what the kernel filter dropped or nothing traced).
HOLD = 'print("hold", flush=True); sys.stdin.read()'


def run_program(
    src: KernelSource, code: str, *, hold: bool = False, children: bool = False
) -> tuple[list[Event], list[str], int]:
    """Run a Python program, decoding while it runs: its events (and its children's, with ``children``) until its
    exit, the words it printed, its pid. With ``hold``, the program ends with ``HOLD`` (or a child of it does) and
    is let go once everything it did before was decoded."""
    drain(src)
    stdin = subprocess.PIPE if hold else None
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdin=stdin, stdout=subprocess.PIPE, text=True)
    events: list[Event] = []
    words: list[str] = []
    if hold:
        assert p.stdin is not None and p.stdout is not None
        for line in p.stdout:
            if line.strip() == "hold":
                break
            words += line.split()
        # Its records are all in the ring buffer by now: decode them while it lives.
        while batch := src.poll():
            events += batch
        p.stdin.close()
        p.stdin = None  # communicate() must not flush it again
    events += collect(src, lambda evs: any(e.type == "procexit" and e.proc.pid == p.pid for e in evs))
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 0
    mine = [e for e in events if e.proc.pid == p.pid or (children and e.proc.ppid == p.pid)]
    return mine, words + out.split(), p.pid


def build_32_bit(tmp_path: Path, name: str, code: str) -> Path:
    """A static 32-bit x86 program built from ``code`` (no libc: it makes its syscalls with ``int $0x80``)."""
    src, exe = tmp_path / f"{name}.c", tmp_path / name
    src.write_text(code)
    subprocess.run(["gcc", "-m32", "-nostdlib", "-static", "-O1", "-o", str(exe), str(src)], check=True)
    return exe
