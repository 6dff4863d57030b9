# SPDX-License-Identifier: Apache-2.0
"""One recording format, end to end: what the collector records replays through the pipeline and through
``lanner replay`` with the alerts the live pipeline raised.

A real ``lanner up`` (free ports, no kernel: the collector plays decoded events) records what its collector moves;
a second ``lanner up`` replays that recording; ``lanner replay`` evaluates it offline. The three alert sets agree.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from collector.decode import Decoder
from collector.proctable import ProcessTable
from lanner.recording import event_line, parse_line
from tests.collector import collector_testlib as rec
from tests.collector.collector_testlib import add_proc
from tests.support.lanner_stack import ROOT, Stack, wait_until

RULES = """
- rule: Shadow read under bash
  desc: test rule reading ancestors, capabilities, the exe inode and the container
  condition: >
    evt.type in (open, openat) and fd.name = /etc/shadow and proc.aname[1] = bash
    and thread.cap_effective contains CAP_SYS_ADMIN and proc.exe_ino = 4242 and container.id = host
  output: >
    shadow read (proc=%proc.name parent=%proc.pname user=%user.name caps=%thread.cap_effective
    ino=%proc.exe_ino cgroups=%thread.cgroups seq=%evt.num)
  priority: WARNING
- rule: Exec in a container
  desc: the container id comes from the process's cgroups, placed by the enricher
  condition: evt.type = execve and container.id != host
  output: exec in container (proc=%proc.name container=%container.id)
  priority: NOTICE
"""
CONTAINER_CG = "0::/system.slice/docker-" + "ab" * 32 + ".scope"


@pytest.fixture
def live_recording(tmp_path: Path, decoder: Decoder, table: ProcessTable) -> Path:
    """Events as the collector decodes them from kernel records, with the raw facts only the kernel gives."""
    add_proc(table, 1, 0, "init")
    add_proc(table, 50, 1, "bash")
    add_proc(table, 70, 1, "sh")
    lines = []
    records = (
        rec.fork_record(50, 51),
        rec.exec_record(51, "/usr/bin/cat", ["cat", "/etc/shadow"]),
        rec.open_record(51, "/etc/shadow"),
        rec.exec_record(70, "/bin/ls", ["ls"]),
    )
    for n, r in enumerate(records):
        ev = decoder.decode(r)
        assert ev is not None
        cgroups = (CONTAINER_CG,) if ev.proc.pid == 70 else ("0::/user.slice/session-1.scope",)
        proc = replace(ev.proc, cap_effective=1 << 21 | 1, exe_ino=4242, cgroups=cgroups)
        ev = replace(ev, proc=proc, timing=replace(ev.timing, event_ns=1_700_000_000_000_000_000 + n))
        lines.append(event_line(ev))
    path = tmp_path / "decoded.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _run_stack(state: Path, rules: Path, collector: dict[str, Any]) -> list[dict[str, Any]]:
    stack = Stack(state, rules=str(rules))
    config = json.loads(stack.config_text())
    config["collector"].update(collector)
    config["ruleengine"]["collector_target"] = ""
    stack.config.write_text(json.dumps(config))
    try:
        stack.start().wait_up()
        return list(wait_until(lambda: (a := stack.alerts()) and len(a) >= 2 and a, 120, "two alerts in the file"))
    finally:
        stack.stop()


def _verdicts(alerts: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((a["rule"], a["output"]) for a in alerts)


def test_collector_recording_replays_with_the_live_alerts(tmp_path: Path, live_recording: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    recorded = tmp_path / "collector-recorded.jsonl"
    live = _run_stack(tmp_path / "live", rules, {"replay_path": str(live_recording), "record_path": str(recorded)})
    assert {a["rule"] for a in live} == {"Shadow read under bash", "Exec in a container"}
    shadow = next(a for a in live if a["rule"] == "Shadow read under bash")
    assert shadow["output_fields"]["thread.cap_effective"] == "CAP_CHOWN CAP_SYS_ADMIN"
    assert shadow["output_fields"]["proc.exe_ino"] == 4242

    # The collector's recording is the one format: every raw fact survives it.
    lines = [ln for ln in recorded.read_text().splitlines() if ln]
    assert len(lines) == 4
    opened = parse_line(lines[2], str(recorded), 3)
    assert opened.proc.cap_effective == 1 << 21 | 1 and opened.proc.exe_ino == 4242
    assert opened.proc.cgroups == ("0::/user.slice/session-1.scope",)
    assert [a.comm for a in opened.ancestors] == ["bash", "init"]

    # collector record -> collector replay through the pipeline
    again = _run_stack(tmp_path / "again", rules, {"replay_path": str(recorded)})
    assert _verdicts(again) == _verdicts(live)

    # collector record -> lanner replay, offline
    out = subprocess.run(
        [sys.executable, "-m", "lanner.cli", "replay", str(recorded), "--rules", str(rules), "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    offline = [json.loads(line) for line in out.stdout.splitlines()]
    assert _verdicts(offline) == _verdicts(live)
    assert [a["output_fields"] for a in sorted(offline, key=lambda a: a["rule"])] == [
        a["output_fields"] for a in sorted(live, key=lambda a: a["rule"])
    ]
