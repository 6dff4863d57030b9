# SPDX-License-Identifier: Apache-2.0
"""Replay takes what Falco and sysdig write: any key order, nulls, pre-rendered values, enter events, alerts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lanner.cli import main
from ruleengine.fields import EventContext
from ruleengine.replay_input import EventReader
from tests.ruleengine.fields_util import value

RULES = """
- rule: shadow
  desc: d
  condition: evt.type in (open, openat) and fd.name = /etc/shadow and evt.is_open_read = true
  output: "shadow read by %proc.name (user=%user.name flags=%evt.arg.flags)"
  priority: WARNING
- rule: sname
  desc: d
  condition: evt.type = execve and proc.sname = sshd and proc.pcmdline startswith "bash -i"
  output: "session %proc.sname"
  priority: NOTICE
- rule: api
  desc: d
  condition: ka.verb = create and ka.target.resource = namespaces
  output: "ns created by %ka.user.name"
  priority: INFO
  source: k8s_audit
"""

# What `sysdig -r capture.scap -j -p <fields>` writes for an exit event of Falco's own regression captures: time
# fields as integer nanoseconds, rendered values for everything else, "Z" where Lanner would print +0000.
SYSDIG_OPEN = {
    "evt.num": 11447,
    "evt.time.iso8601": 1470327477881730713,
    "evt.datetime": "2016-08-04 16:17:57.881730713",
    "evt.time": "16:17:57.881730713",
    "evt.dir": "<",
    "evt.type": "openat",
    "evt.cpu": 1,
    "evt.args": "fd=3(<f>/etc/shadow) dirfd=-100(AT_FDCWD) name=/etc/shadow flags=4097(O_RDONLY|O_CLOEXEC) mode=0",
    "evt.arg[0]": "3(<f>/etc/shadow)",
    "evt.arg.path": "/etc/shadow",
    "evt.arg.flags": "O_CLOEXEC|O_RDONLY",
    "user.name": "root",
    "user.loginname": None,
    "fd.name": "/etc/shadow",
    "proc.name": "cat",
    "proc.cmdline": "cat /etc/shadow",
    "thread.tid": 2205,
    "proc.pid": 2205,
}


def _write(path: Path, records: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    p = tmp_path / "rules.yaml"
    p.write_text(RULES)
    return p


def _replay(capsys: pytest.CaptureFixture[str], rules: Path, events: Path, *extra: str) -> tuple[int, list[str], str]:
    code = main(["replay", str(events), "--rules", str(rules), *extra])
    cap = capsys.readouterr()
    return code, [line for line in cap.out.splitlines() if line], cap.err


def test_a_sysdig_export_replays(tmp_path: Path, rules: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = _write(tmp_path / "sysdig.jsonl", [SYSDIG_OPEN])
    code, out, err = _replay(capsys, rules, events, "--warn-inconsistent")
    assert code == 0, err
    assert len(out) == 1 and "shadow read by cat (user=root flags=O_CLOEXEC|O_RDONLY)" in out[0]
    [ev] = list(EventReader(str(events)))
    ctx = EventContext(ev)
    assert ev.timing.event_ns == 1470327477881730713
    assert value(ev, "evt.time") == "16:17:57.881730713"  # given as rendered
    assert ev.given is not None and "user.loginname" not in ev.given  # null = absent
    assert value(ev, "evt.is_open_read") is True  # derived from the flags, in their order or not
    assert ctx.get is not None


def test_iso_times_with_z_or_offset_and_any_key_order(
    tmp_path: Path, rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = [
        {
            "evt.time.iso8601": "2016-08-04T16:17:57.881730713Z",
            "evt.type": "openat",
            "fd.name": "/etc/shadow",
            "evt.arg.flags": "O_RDONLY",
            "proc.name": "a",
        },
        {
            "proc.name": "b",
            "evt.arg.flags": "O_RDONLY",
            "fd.name": "/etc/shadow",
            "evt.time.iso8601": "2016-08-04T16:17:57.881730713+0000",
            "evt.type": "openat",
        },
        # endpoints before fd.is_server: any key order
        {
            "evt.type": "connect",
            "fd.lip": "10.0.0.1",
            "fd.lport": 5555,
            "fd.rip": "10.0.0.2",
            "fd.rport": 80,
            "fd.is_server": False,
        },
    ]
    events = _write(tmp_path / "e.jsonl", records)
    code, out, err = _replay(capsys, rules, events)
    assert code == 0 and "bad record" not in err, err
    assert [line.split(" by ")[1].split()[0] for line in out] == ["a", "b"]
    evs = list(EventReader(str(events)))
    assert evs[0].timing.event_ns == evs[1].timing.event_ns == 1470327477881730713
    assert value(evs[2], "fd.sport") == 80 and value(evs[2], "fd.cip") is not None


def test_given_values_win_over_derived_ones(tmp_path: Path, rules: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # proc.sname / proc.pcmdline as a Falco alert gives them: nothing in the record derives them otherwise
    rec = {
        "evt.type": "execve",
        "proc.name": "bash",
        "proc.sname": "sshd",
        "proc.pcmdline": "bash -i",
        "proc.aname[1]": "zsh",
        "fd.name": "/dev/pts/0",
        "proc.cmdline": "bash --login",
    }
    events = _write(tmp_path / "e.jsonl", [rec])
    code, out, err = _replay(capsys, rules, events, "--warn-inconsistent")
    assert code == 0 and out == [out[0]] and "session sshd" in out[0], (out, err)
    [ev] = list(EventReader(str(events)))
    assert value(ev, "proc.pcmdline") == "bash -i"  # wins over what proc.aname[1] would give


def test_inconsistencies_are_reported_once_per_field_with_a_count(
    tmp_path: Path, rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = {"evt.type": "openat", "fd.name": "/etc/shadow", "fd.directory": "/tmp", "evt.arg.flags": "O_RDONLY"}
    events = _write(tmp_path / "e.jsonl", [rec, rec, rec])
    code, out, err = _replay(capsys, rules, events, "--warn-inconsistent")
    assert code == 0 and len(out) == 3
    lines = [line for line in err.splitlines() if "fd.directory" in line]
    assert len(lines) == 1
    assert (
        f"{events}:1: field 'fd.directory': value \"/tmp\" differs from what the other fields give (/etc)" in lines[0]
    )
    assert "(3 record(s))" in lines[0]
    _, _, quiet = _replay(capsys, rules, events)
    assert "fd.directory" not in quiet


def test_enter_events_match_as_falco_does(tmp_path: Path, rules: Path, capsys: pytest.CaptureFixture[str]) -> None:
    enter = {"evt.type": "openat", "evt.dir": ">", "thread.tid": 7, "proc.name": "cat", "evt.arg.flags": "O_RDONLY"}
    exit_ = {"evt.type": "openat", "evt.dir": "<", "thread.tid": 7, "proc.name": "cat", "fd.name": "/etc/shadow"}
    events = _write(tmp_path / "e.jsonl", [enter, exit_, enter, exit_])
    code, out, err = _replay(capsys, rules, events)
    assert code == 0 and len(out) == 2, (out, err)  # once per syscall, not once per record
    assert "flags=O_RDONLY" in out[0]  # the enter event's parameter reached its exit event
    assert "2 enter event(s) merged" in err


def test_bad_records_are_skipped_located_and_counted(
    tmp_path: Path, rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = {"evt.type": "openat", "fd.name": "/etc/shadow", "evt.arg.flags": "O_RDONLY"}
    events = _write(tmp_path / "e.jsonl", [good, "[1, 2]", {"evt.type": "open", "proc.pid": "abc"}, "", good])
    code, out, err = _replay(capsys, rules, events)
    assert code == 0 and len(out) == 2
    assert f"{events}:2: an event must be a JSON object; record skipped" in err
    assert f"{events}:3: field 'proc.pid': expected an integer" in err
    assert "2 bad record(s) skipped" in err
    code, _, err = _replay(capsys, rules, events, "--strict")
    assert code == 1 and f"{events}:2:" in err


def test_k8s_audit_lines_that_are_not_audit_events(
    tmp_path: Path, rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    audit = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "verb": "create",
        "stage": "ResponseComplete",
        "objectRef": {"resource": "namespaces", "name": "foo"},
        "user": {"username": "alice"},
        "stageTimestamp": "2024-06-10T06:13:31.726060Z",
    }
    events = _write(tmp_path / "audit.jsonl", [audit, {"kind": 0}, audit])
    code, out, err = _replay(capsys, rules, events)
    assert code == 0 and len(out) == 2, err
    assert f"{events}:2: data not recognized as a k8s audit event; record skipped" in err
    code, out, err = _replay(capsys, rules, events, "--source", "k8s_audit")
    assert code == 0 and len(out) == 2 and "data not recognized as a k8s audit event" in err
    missing = _write(tmp_path / "m.jsonl", [{"kind": "Event", "verb": "get"}])
    code, _, err = _replay(capsys, rules, missing, "--source", "k8s_audit")
    assert code == 0 and "can't read stageTimestamp" in err


def test_falco_json_alerts_replay_from_output_fields(
    tmp_path: Path, rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alert = {
        "hostname": "node1",
        "output": "16:17:57.881730713: Warning shadow read ...",
        "priority": "Warning",
        "rule": "shadow",
        "source": "syscall",
        "tags": [],
        "time": "2016-08-04T16:17:57.881730713Z",
        "output_fields": {
            "evt.time": 1470327477881730713,
            "fd.name": "/etc/shadow",
            "proc.name": "cat",
            "user.name": "root",
            "evt.arg.flags": "O_RDONLY",
            "container.id": "host",
            "k8s.pod.name": None,
        },
    }
    audit_alert = {
        "rule": "api",
        "source": "k8s_audit",
        "priority": "Informational",
        "output": "x",
        "time": "2024-06-10T06:13:31.726060Z",
        "output_fields": {"ka.verb": "create", "ka.target.resource": "namespaces", "ka.user.name": "alice"},
    }
    events = _write(tmp_path / "alerts.json", [alert, audit_alert])
    code, out, err = _replay(capsys, rules, events)
    assert code == 0, err
    assert len(out) == 2 and "shadow read by cat (user=root" in out[0] and "ns created by alice" in out[1]


def test_one_key_layout_with_values_of_other_forms(tmp_path: Path) -> None:
    # Records share plans by key layout; a later record whose values come in another form (text for a number,
    # null, integer-nanosecond text against ISO text) must be read in its own form, not the first record's.
    base = {"evt.type": "openat", "evt.num": 1, "fd.num": 3, "fd.name": "/etc/shadow", "evt.time.iso8601": None}
    records = [
        base,
        {**base, "evt.num": 2, "fd.num": "4"},
        {**base, "evt.num": "3"},
        {**base, "evt.num": 4, "evt.time.iso8601": "1470327477881730713"},
        {**base, "evt.num": 5, "evt.time.iso8601": "2016-08-04T16:17:57.881730713Z"},
        {**base, "evt.num": 6, "evt.time.iso8601": "1470327477881730714"},
        {**base, "evt.num": 7, "fd.num": None},
    ]
    evs = list(EventReader(str(_write(tmp_path / "e.jsonl", records))))
    assert [value(e, "evt.num") for e in evs] == [1, 2, 3, 4, 5, 6, 7]
    assert [value(e, "fd.num") for e in evs[:6]] == [3, 4, 3, 3, 3, 3]
    assert value(evs[6], "fd.num") != 3  # null: absent, not the earlier record's value
    assert [e.timing.event_ns for e in evs[3:6]] == [1470327477881730713, 1470327477881730713, 1470327477881730714]
    assert value(evs[4], "evt.time.iso8601") == "2016-08-04T16:17:57.881730713Z"  # as given
