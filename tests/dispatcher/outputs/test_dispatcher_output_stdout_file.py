# SPDX-License-Identifier: Apache-2.0
"""stdout and file outputs: their pure builders, and the file output on a real filesystem."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from dispatcher.falco_format import JsonOptions
from dispatcher.model import Alert, Priority
from dispatcher.outputs.file import FileConfig, FileOutput, build_file_line
from dispatcher.outputs.stdout import StdoutConfig, StdoutOutput, build_stdout_line
from dispatcher.registry import OutputContext

CTX = OutputContext(hostname="h", json=JsonOptions(include_output_fields=False))
ALERT = Alert(rule="R", priority=Priority.NOTICE, output="10:00:00.000000001: Notice é", time_ns=1, tags=("t",))


def test_stdout_line() -> None:
    assert build_stdout_line(ALERT, StdoutConfig(), CTX) == "10:00:00.000000001: Notice é"
    line = build_stdout_line(ALERT, StdoutConfig(json_output=True), CTX)
    assert json.loads(line) == {
        "hostname": "h",
        "output": "10:00:00.000000001: Notice é",
        "priority": "Notice",
        "rule": "R",
        "source": "syscall",
        "tags": ["t"],
        "time": "1970-01-01T00:00:00.000000001Z",
    }


async def test_stdout_writes_and_flushes() -> None:
    buf = io.StringIO()
    out = StdoutOutput(StdoutConfig(), CTX, stream=buf)
    await out.send(ALERT)
    await out.close()
    assert buf.getvalue() == "10:00:00.000000001: Notice é\n"


@pytest.mark.parametrize("json_output", [False, True])
async def test_stdout_batch_prints_what_one_by_one_prints(json_output: bool) -> None:
    alerts = [ALERT, Alert(rule="S", priority=Priority.ERROR, message="line\nbreak\x1b[31m", time_ns=2), ALERT]
    one, many = io.StringIO(), io.StringIO()
    single = StdoutOutput(StdoutConfig(json_output=json_output), CTX, stream=one)
    for alert in alerts:
        await single.send(alert)
    assert await StdoutOutput(StdoutConfig(json_output=json_output), CTX, stream=many).send_batch(alerts) == 3
    assert many.getvalue() == one.getvalue() and one.getvalue().count("\n") == 3


def test_file_line() -> None:
    assert build_file_line(ALERT, FileConfig(json_output=False), CTX) == "10:00:00.000000001: Notice é\n".encode()
    assert build_file_line(ALERT, FileConfig(), CTX).endswith(b'"time":"1970-01-01T00:00:00.000000001Z"}\n')
    with pytest.raises(ValueError, match="path"):
        FileConfig(path="")


@pytest.mark.parametrize("keep_alive", [False, True])
async def test_file_appends_and_recovers(tmp_path: Path, keep_alive: bool) -> None:
    path = tmp_path / "sub" / "a.jsonl"
    out = FileOutput(FileConfig(path=str(path), keep_alive=keep_alive), CTX)
    with pytest.raises(FileNotFoundError):
        await out.send(ALERT)
    path.parent.mkdir()
    await out.send(ALERT)
    await out.send(ALERT)
    await out.close()
    assert len(path.read_text().splitlines()) == 2
    assert os.stat(path).st_mode & 0o037 == 0  # no group write, nothing for others
