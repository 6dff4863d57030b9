# SPDX-License-Identifier: Apache-2.0
"""program output: real shell commands reading the alert lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dispatcher.model import Alert, Priority
from dispatcher.outputs.program import ProgramConfig, ProgramOutput, build_program_line
from dispatcher.registry import OutputContext

CTX = OutputContext(hostname="h")
ALERT = Alert(rule="R", priority=Priority.ERROR, output="12:00:00.000000000: Error boom", time_ns=1)


def test_builder() -> None:
    assert build_program_line(ALERT, ProgramConfig(program="cat"), CTX) == b"12:00:00.000000000: Error boom\n"
    line = build_program_line(ALERT, ProgramConfig(program="cat", json_output=True), CTX)
    assert json.loads(line)["priority"] == "Error" and line.endswith(b"}\n")
    with pytest.raises(ValueError, match="program: a command is required"):
        ProgramConfig()


async def test_once_per_alert(tmp_path: Path) -> None:
    out_file = tmp_path / "out.txt"
    out = ProgramOutput(ProgramConfig(program=f"cat >> {out_file}"), CTX)
    await out.send(ALERT)
    await out.send(ALERT)
    await out.close()
    assert out_file.read_text().splitlines() == ["12:00:00.000000000: Error boom"] * 2


async def test_failing_program_raises(tmp_path: Path) -> None:
    out = ProgramOutput(ProgramConfig(program="cat > /dev/null; exit 3"), CTX)
    with pytest.raises(RuntimeError, match="exited with status 3"):
        await out.send(ALERT)


async def test_keep_alive_one_process_and_restart(tmp_path: Path) -> None:
    out_file = tmp_path / "out.txt"
    # Each process start writes a marker, so the test can count the processes.
    program = f"echo started >> {out_file}; cat >> {out_file}"
    out = ProgramOutput(ProgramConfig(program=program, keep_alive=True, json_output=True), CTX)
    for _ in range(3):
        await out.send(ALERT)
    await out.reopen()
    await out.send(ALERT)
    await out.close()
    lines = out_file.read_text().splitlines()
    assert lines.count("started") == 2
    assert [json.loads(x)["rule"] for x in lines if x != "started"] == ["R"] * 4


async def test_keep_alive_dead_process_is_reported_then_restarted(tmp_path: Path) -> None:
    out_file = tmp_path / "out.txt"
    out = ProgramOutput(ProgramConfig(program=f"head -n 1 >> {out_file}", keep_alive=True), CTX)
    await out.send(ALERT)
    assert out._proc is not None
    await out._proc.wait()  # head exits after one line
    with pytest.raises(RuntimeError, match="exited with status 0"):
        await out.send(ALERT)
    await out.send(ALERT)  # a new process takes it
    await out.close()
    assert len(out_file.read_text().splitlines()) == 2
