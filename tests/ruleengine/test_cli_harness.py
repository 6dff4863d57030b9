# SPDX-License-Identifier: Apache-2.0
"""``lanner rules validate|list|test`` and ``lanner replay``, run in-process through the real CLI parser."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from lanner.cli import main

RULES = """\
- required_engine_version: 0.57.0
- macro: opened
  condition: evt.type in (open, openat)
- rule: Shadow read
  desc: reading /etc/shadow
  condition: opened and fd.name = /etc/shadow
  output: "shadow read by %proc.name (file=%fd.name)"
  priority: WARNING
  tags: [files]
- rule: Any etc open
  desc: anything under /etc
  condition: opened and fd.name startswith /etc
  output: "etc open by %proc.name"
  priority: NOTICE
  tags: [noisy]
"""

TESTS = """\
- test: shadow read fires
  rules: [rules.yaml]
  rule_matching: all
  events:
    - {evt.type: openat, proc.name: cat, fd.name: /etc/shadow}
  expect:
    alerts: {"Shadow read": 1, "Any etc open": 1}
- test: other files are quiet
  rules: [rules.yaml]
  events:
    - {evt.type: openat, proc.name: cat, fd.name: /tmp/x}
  expect:
    alerts: {}
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "rules.yaml").write_text(RULES)
    (tmp_path / "tests.yaml").write_text(TESTS)
    return tmp_path


def test_validate_ok_and_invalid(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "validate", str(workdir / "rules.yaml")]) == 0
    out = capsys.readouterr().out
    assert f"{workdir / 'rules.yaml'}: Ok" in out and "0 error(s), 0 warning(s)" in out
    bad = workdir / "bad.yaml"
    bad.write_text(
        "- rule: x\n  desc: d\n  condition: evt.type = open and\n  output: o\n  priority: INFO\n"
        "- list: l\n  items: [a]\n- macro: m\n"
    )
    assert main(["rules", "validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}:3:14: error: LOAD_ERR_COMPILE_CONDITION" not in out  # position is the failure point
    assert f"{bad}:3:" in out and "expected blank or '(' after 'and'" in out
    assert f"{bad}:8:3: error: LOAD_ERR_YAML_VALIDATE" in out and "Item has no mapping for key 'condition'" in out
    assert f"{bad}: Invalid" in out


def test_validate_upstream(capsys: pytest.CaptureFixture[str], falco_rules: Path) -> None:
    assert main(["rules", "validate", str(falco_rules / "falco_rules.yaml")]) == 0
    assert "0 error(s), 0 warning(s)" in capsys.readouterr().out


def test_list(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "list", "--rules", str(workdir / "rules.yaml"), "--disable-tag", "noisy"]) == 0
    out = capsys.readouterr().out
    assert "enabled   Warning       syscall   Shadow read  [files]" in out
    assert "disabled  Notice        syscall   Any etc open  [noisy]" in out
    assert main(["rules", "list", "--rules", str(workdir / "rules.yaml"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["evttypes"] == ["open", "openat"]


def test_harness_pass(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "test", str(workdir / "tests.yaml")]) == 0
    out = capsys.readouterr().out
    assert "tests.yaml::shadow read fires PASSED" in out
    assert "2 passed, 0 failed" in out


def test_harness_failure_reports_shadowing(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    failing = workdir / "fail.yaml"
    failing.write_text(
        textwrap.dedent("""\
        - test: expects the second rule under first matching
          rules: [rules.yaml]
          events:
            - {evt.type: openat, proc.name: cat, fd.name: /etc/shadow}
          expect:
            alerts: {"Any etc open": 1}
        - test: bad event field
          rules: [rules.yaml]
          events:
            - {evt.type: openat, proc.nmae: cat}
          expect:
            alerts: {}
        """)
    )
    assert main(["rules", "test", str(failing)]) == 1
    out = capsys.readouterr().out
    assert "'Any etc open' was shadowed by 'Shadow read' (rule_matching: first)" in out
    assert "0 passed, 2 failed" in out
    assert "event #1" in out


def test_harness_default_rules_and_source(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    k8s = workdir / "k8s_rules.yaml"
    k8s.write_text(
        "- rule: create\n  desc: d\n  condition: ka.verb = create\n  output: o %ka.verb\n"
        "  priority: INFO\n  source: k8s_audit\n"
    )
    tests = workdir / "k8s_tests.yaml"
    tests.write_text(
        textwrap.dedent("""\
        - test: a create
          source: k8s_audit
          events:
            - {kind: Event, apiVersion: audit.k8s.io/v1, stage: ResponseComplete, verb: create,
               stageTimestamp: "2026-01-01T00:00:00Z", requestReceivedTimestamp: "2026-01-01T00:00:00Z",
               user: {username: admin}, objectRef: {resource: pods, namespace: default}}
          expect:
            alerts: {create: 1}
        """)
    )
    assert main(["rules", "test", str(tests), "--rules", str(k8s)]) == 0, capsys.readouterr().out


def test_replay_text_and_json(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = workdir / "events.jsonl"
    events.write_text(
        json.dumps({"evt.type": "openat", "proc.name": "cat", "fd.name": "/etc/shadow", "evt.num": 1})
        + "\n"
        + json.dumps({"evt.type": "read", "proc.name": "cat", "evt.num": 2})
        + "\n"
    )
    rules = str(workdir / "rules.yaml")
    assert main(["replay", str(events), "--rules", rules, "--hostname", "h1"]) == 0
    cap = capsys.readouterr()
    lines = cap.out.strip().splitlines()
    assert len(lines) == 1 and "Warning shadow read by cat (file=/etc/shadow)" in lines[0]
    assert "1 alert(s)" in cap.err
    assert main(["replay", str(events), "--rules", rules, "--json", "--rule-matching", "all", "--hostname", "h1"]) == 0
    alerts = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert [a["rule"] for a in alerts] == ["Shadow read", "Any etc open"]
    assert alerts[0]["priority"] == "Warning" and alerts[0]["hostname"] == "h1"
    assert alerts[0]["output_fields"]["proc.name"] == "cat"
    assert main(["replay", str(events), "--rules", rules, "--priority", "error"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["replay", str(events), "--rules", rules, "--disable-rule", "Shadow"]) == 0
    assert "etc open by cat" in capsys.readouterr().out


def test_replay_bad_records_are_skipped_unless_strict(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = workdir / "bad.jsonl"
    good = json.dumps({"evt.type": "openat", "proc.name": "cat", "fd.name": "/etc/shadow"})
    events.write_text(f'{{not json\n{good}\n{{"proc.name": "x"}}\n{good}\n')
    assert main(["replay", str(events), "--rules", str(workdir / "rules.yaml")]) == 0
    err = capsys.readouterr().err
    assert f"{events}:1: invalid JSON at column 2" in err
    assert f"{events}:3: field 'evt.type': missing (every event needs its type); record skipped" in err
    assert "2 bad record(s) skipped" in err
    assert main(["replay", str(events), "--rules", str(workdir / "rules.yaml"), "--strict"]) == 1
    assert f"{events}:1: invalid JSON" in capsys.readouterr().err


def test_replay_uses_service_output_settings(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = workdir / "events.jsonl"
    events.write_text(
        json.dumps(
            {
                "evt.type": "openat",
                "proc.name": "cat",
                "fd.name": "/etc/shadow",
                "evt.num": 1,
                "evt.rawtime": 1_700_000_000_000_000_000,
            }
        )
        + "\n"
    )
    cfg = workdir / "lanner.yaml"
    cfg.write_text("ruleengine:\n  time_format_iso_8601: true\n  hostname: cfghost\n")
    assert main(["replay", str(events), "--rules", str(workdir / "rules.yaml"), "--config", str(cfg), "--json"]) == 0
    alert = json.loads(capsys.readouterr().out)
    assert alert["hostname"] == "cfghost"
    assert alert["output"].startswith("2023-11-14T22:13:20")


def test_zero_count_for_a_rule_that_is_not_loaded_fails(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`{"Some rule": 0}` must name a loaded rule, or the test would pass for a misspelt or removed rule."""
    (workdir / "zero.yaml").write_text(
        textwrap.dedent("""\
        - test: quiet for a rule that does not exist
          rules: [rules.yaml]
          events:
            - {evt.type: openat, proc.name: cat, fd.name: /tmp/x}
          expect:
            alerts: {"Shadow raed": 0}
        - test: quiet for a rule that exists
          rules: [rules.yaml]
          events:
            - {evt.type: openat, proc.name: cat, fd.name: /tmp/x}
          expect:
            alerts: {"Shadow read": 0}
        """)
    )
    assert main(["rules", "test", str(workdir / "zero.yaml")]) == 1
    out = capsys.readouterr().out
    assert "no rule named 'Shadow raed' is loaded" in out
    assert "1 passed, 1 failed" in out


def test_replay_prints_hostile_text_inert(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A recording is attacker-shaped data too (issue 10 item 7): ANSI sequences, CR/LF, U+2028, U+0085 and a
    one-character CSI in a file name reach the terminal escaped, one line per alert; JSON keeps the exact value."""
    hostile = "/etc/shadow\x1b[2J\x1b]0;pwned\x07\r\nforged line\u2028\u0085\x9b31m\x7f"
    events = workdir / "hostile.jsonl"
    events.write_text(json.dumps({"evt.type": "openat", "proc.name": "cat", "fd.name": hostile, "evt.num": 1}) + "\n")
    rules = str(workdir / "hostile_rules.yaml")
    Path(rules).write_text(
        "- rule: Hostile open\n  desc: d\n  condition: evt.type = openat\n  output: opened %fd.name\n  priority: INFO\n"
    )
    forbidden = ("\x1b", "\r", "\x07", "\u2028", "\u0085", "\x9b", "\x7f")
    for extra in ([], ["--json"]):
        assert main(["replay", str(events), "--rules", rules, *extra]) == 0
        out = capsys.readouterr().out
        assert out.count("\n") == 1 and not any(c in out for c in forbidden), repr(out)
        if extra:
            assert {json.loads(line)["output_fields"]["fd.name"] for line in out.splitlines()} == {hostile}
        else:
            assert "forged line\\u2028\\x85\\x9b31m" in out
