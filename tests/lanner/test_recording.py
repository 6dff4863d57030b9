# SPDX-License-Identifier: Apache-2.0
"""Lanner's one recording format (lanner.recording): written by every recorder, read by every replay."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lanner.model import Event, Process
from lanner.recording import RecordingError, event_line, is_event_record, parse_line
from ruleengine.events_json import event_from_fields
from ruleengine.server import make_recorder

ROOT = Path(__file__).resolve().parents[2]
RULES = """
- rule: Shadow read
  desc: test
  condition: evt.type in (open, openat) and fd.name = /etc/shadow and proc.sname = login
  output: shadow read (proc=%proc.name sname=%proc.sname args=%evt.args)
  priority: WARNING
"""
FIELDS = {"evt.type": "openat", "proc.name": "cat", "fd.name": "/etc/shadow", "fd.num": 3, "proc.sname": "login",
          "evt.args": "given args text", "evt.rawtime": 1_700_000_000_000_000_000}  # fmt: skip


def lanner(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lanner.cli", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_every_raw_fact_and_the_given_values_survive_a_line() -> None:
    ev = event_from_fields(FIELDS)
    proc = Process(pid=7, comm="cat", cap_effective=1 << 21, cap_permitted=0, exe_ino=4242, exe_ino_ctime=5,
                   cgroups=("0::/x",), uid=1000, euid=0, cgroup_id=99, args=("a\udcff",))  # fmt: skip
    rich = Event(type="openat", proc=proc, ancestors=(Process(pid=1, comm="init", uid=0),), fd=ev.fd, given=ev.given)
    back = parse_line(event_line(rich), "r.jsonl", 1)
    assert back == rich
    assert back.given is not None and back.given["proc.sname"] == "login"


def test_bad_lines_are_located_and_field_records_get_a_conversion_hint() -> None:
    with pytest.raises(RecordingError, match=r"^r.jsonl:3: a Falco-field record .* 'lanner record FILE -o NEW.jsonl'"):
        parse_line(json.dumps(FIELDS), "r.jsonl", 3)
    with pytest.raises(RecordingError, match=r"^r.jsonl:2: field 'given': expected an object"):
        parse_line('{"type": "openat", "given": 5}', "r.jsonl", 2)
    with pytest.raises(RecordingError, match=r"^r.jsonl:4: not a lanner.v1.Event"):
        parse_line('{"type": "openat", "bogus": 1}', "r.jsonl", 4)
    assert is_event_record({"type": "openat"}) and not is_event_record(FIELDS)
    assert not is_event_record({"kind": "Event", "type": "x"})


def test_lanner_record_converts_field_records_and_replays_with_the_same_alerts(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    fields = tmp_path / "fields.jsonl"
    fields.write_text(json.dumps(FIELDS) + "\n")
    recorded = tmp_path / "recorded.jsonl"
    done = lanner("record", str(fields), "-o", str(recorded))
    assert done.returncode == 0, done.stderr
    line = json.loads(recorded.read_text())
    assert line["type"] == "openat" and line["given"]["evt.args"] == "given args text"
    want = lanner("replay", str(fields), "--rules", str(rules), "--json")
    got = lanner("replay", str(recorded), "--rules", str(rules), "--json")
    assert want.returncode == got.returncode == 0, got.stderr
    assert [json.loads(x)["output"] for x in got.stdout.splitlines()] == [
        json.loads(x)["output"] for x in want.stdout.splitlines()
    ]
    assert "args=given args text" in got.stdout


def test_the_rule_engines_recorder_writes_the_format() -> None:
    out = io.StringIO()
    ev = event_from_fields({"evt.type": "execve", "proc.name": "ls", "evt.rawtime": 5})
    make_recorder(out)(ev)
    assert parse_line(out.getvalue(), "x", 1).proc.comm == "ls"


def test_a_bad_recorded_line_is_skipped_with_its_location(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    recorded = tmp_path / "r.jsonl"
    recorded.write_text('{"type": "openat", "bogus": 1}\n' + event_line(event_from_fields(FIELDS)) + "\n")
    got = lanner("replay", str(recorded), "--rules", str(rules))
    assert got.returncode == 0
    assert f"{recorded}:1: not a lanner.v1.Event" in got.stderr and "record skipped" in got.stderr
    assert "1 alert(s) from 1 event(s), 1 bad record(s) skipped" in got.stderr


def test_the_collector_names_a_file_of_old_field_records_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from collector.decode import Identity
    from collector.replay import ReplaySource

    old = tmp_path / "old.jsonl"
    old.write_text((json.dumps(FIELDS) + "\n") * 3)
    source = ReplaySource(str(old), Identity("n", "b", "p"))
    source.start()
    try:
        assert source.poll() == [] and source.finished
    finally:
        source.close()
    assert source.dropped() == 3
    hints = [r for r in caplog.records if "lanner record FILE -o NEW.jsonl" in str(getattr(r, "error", ""))]
    assert len(hints) == 1 and f"{old}:1:" in str(getattr(hints[0], "error", ""))
