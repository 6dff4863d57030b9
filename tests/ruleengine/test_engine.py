# SPDX-License-Identifier: Apache-2.0
"""Engine behaviour: event-type index, rule_matching, priorities, rule/tag selection, upstream rule files."""

from __future__ import annotations

from pathlib import Path

import pytest

from ruleengine.condition.parser import parse_condition
from ruleengine.engine import EngineOptions, load_rules
from ruleengine.evttypes import ALL, EvtSet, event_types
from ruleengine.priority import Priority

from .helpers import ctx, load

RULES = """
- rule: open etc
  desc: d
  condition: evt.type in (open, openat) and fd.name startswith /etc
  output: "open %fd.name"
  priority: WARNING
  tags: [filesystem, mitre_discovery]
- rule: open anything
  desc: d
  condition: evt.type = openat
  output: "any %fd.name"
  priority: NOTICE
  tags: [filesystem]
- rule: not open
  desc: d
  condition: evt.type != openat and proc.name = cat
  output: "notopen %proc.name"
  priority: ERROR
  warn_evttypes: false
- rule: everything
  desc: d
  condition: proc.name = cat
  output: "all %proc.name"
  priority: DEBUG
  warn_evttypes: false
"""


def names(matches: list[object]) -> list[str]:
    return [m.name for m in matches]  # type: ignore[attr-defined]


def test_evttypes_of_conditions() -> None:
    def et(c: str) -> EvtSet:
        return event_types(parse_condition(c))

    assert et("evt.type = open") == EvtSet(frozenset({"open"}))
    assert et("evt.type in (open, close) and evt.type = open") == EvtSet(frozenset({"open"}))
    assert et("evt.type = open or evt.type = close") == EvtSet(frozenset({"open", "close"}))
    assert et("evt.type != open") == EvtSet(frozenset({"open"}), True)
    assert et("not evt.type in (open, close)") == EvtSet(frozenset({"open", "close"}), True)
    assert et("not (evt.type = open or proc.name = x)") == EvtSet(frozenset({"open"}), True)
    assert et("not (evt.type = open and proc.name = x)") == ALL
    assert et("proc.name = x") == ALL
    assert et("evt.num = 0").size() == 0
    assert et("evt.type = open and not evt.num = 0") == EvtSet(frozenset({"open"}))


def test_index_and_matching_first() -> None:
    res = load(RULES)
    assert res.ok and res.engine is not None
    eng = res.engine
    assert names(eng.process(ctx(evt__type="openat", fd__name="/etc/passwd", proc__name="cat"))) == ["open etc"]
    assert names(eng.process(ctx(evt__type="close", proc__name="cat"))) == ["not open"]
    assert names(eng.process(ctx(evt__type="nosuchtype", proc__name="cat"))) == ["not open"]
    assert [r.name for r in eng.candidates("syscall", "openat")] == ["open etc", "open anything", "everything"]
    assert [r.name for r in eng.candidates("syscall", "execve")] == ["not open", "everything"]


def test_matching_all() -> None:
    res = load(RULES, EngineOptions(rule_matching="all"))
    assert res.engine is not None
    got = names(res.engine.process(ctx(evt__type="openat", fd__name="/etc/passwd", proc__name="cat")))
    assert got == ["open etc", "open anything", "everything"]


def test_has_rules_for() -> None:
    res = load(RULES.split("- rule: not open")[0])
    assert res.engine is not None
    eng = res.engine
    assert eng.has_rules_for("syscall", "openat") and eng.has_rules_for("syscall", "open")
    assert not eng.has_rules_for("syscall", "read")
    assert not eng.has_rules_for("k8s_audit", "")
    assert eng.sources == frozenset({"syscall"})


def test_min_priority() -> None:
    res = load(RULES, EngineOptions(min_priority=Priority.WARNING, rule_matching="all"))
    assert res.engine is not None
    assert [r.name for r in res.engine.enabled] == ["open etc", "not open"]


def test_disable_by_name_and_tags() -> None:
    def enabled(**kw: object) -> list[str]:
        res = load(RULES, EngineOptions(**kw))  # type: ignore[arg-type]
        assert res.engine is not None
        return [r.name for r in res.engine.enabled]

    assert enabled(disabled_rules=("open",)) == ["everything"]
    assert enabled(disabled_rules=("open *",)) == ["not open", "everything"]
    assert enabled(enabled_tags=("filesystem",)) == ["open etc", "open anything"]
    assert enabled(disabled_tags=("mitre_discovery",)) == ["open anything", "not open", "everything"]
    assert enabled(enabled_tags=("filesystem",), disabled_tags=("mitre_discovery",)) == ["open anything"]


def test_file_enabled_false_and_tag_enable() -> None:
    text = RULES + "- rule: everything\n  enabled: false\n"
    res = load(text)
    assert res.engine is not None and "everything" not in [r.name for r in res.engine.enabled]
    res = load(
        text.replace("warn_evttypes: false\n", "warn_evttypes: false\n  tags: [x]\n"),
        EngineOptions(enabled_tags=("x",)),
    )
    assert res.engine is not None and [r.name for r in res.engine.enabled] == ["not open", "everything"]


def test_warn_evttypes() -> None:
    rule = "- rule: r\n  desc: d\n  condition: {c}\n  output: o\n  priority: INFO\n"
    w = [x.code for x in load(rule.format(c="proc.name = x")).warnings]
    assert w == ["LOAD_NO_EVTTYPE"]
    assert load(rule.format(c="proc.name = x")).warnings[0].message == (
        "Rule matches too many evt.type values. This has a significant performance penalty."
    )
    assert [x.code for x in load(rule.format(c="evt.type != open")).warnings] == ["LOAD_NO_EVTTYPE"]
    assert [x.code for x in load(rule.format(c="evt.num = 0")).warnings] == ["LOAD_NO_EVTTYPE"]
    assert load(rule.format(c="evt.type = open")).warnings == ()
    assert load(rule.format(c="proc.name = x") + "  warn_evttypes: false\n").warnings == ()
    k8s = rule.format(c="ka.verb = create") + "  source: k8s_audit\n"
    assert load(k8s).warnings == ()


def test_skip_if_unknown_filter() -> None:
    rule = "- rule: r\n  desc: d\n  condition: evt.type=open and proc.nope = x\n  output: o\n  priority: INFO\n"
    res = load(rule + "  skip-if-unknown-filter: true\n")
    assert res.ok and [w.code for w in res.warnings] == ["LOAD_UNKNOWN_FILTER"]
    assert res.engine is not None and res.engine.rules == ()
    assert [e.code for e in load(rule).errors] == ["LOAD_ERR_COMPILE_CONDITION"]


def test_deprecated_field_and_container_info_warnings() -> None:
    rule = (
        "- rule: r\n  desc: d\n  condition: evt.type=open and evt.dir = <\n  output: o %container.info\n"
        "  priority: INFO\n"
    )
    res = load(rule)
    msgs = [w.message for w in res.warnings]
    assert any(m.startswith("%container.info is deprecated") for m in msgs)
    assert (
        "due to the drop of enter events, 'evt.dir = <' always evaluates to true, and 'evt.dir = >' always "
        "evaluates to false. The rule expression can be simplified by removing the condition on 'evt.dir'"
    ) in msgs
    assert res.engine is not None and res.engine.rules[0].output == "o "


def test_k8s_audit_rules_run_for_k8s_events() -> None:
    text = (
        "- rule: k\n  desc: d\n  condition: ka.verb = create\n  output: o %ka.verb\n  priority: INFO\n"
        "  source: k8s_audit\n"
    )
    res = load(text)
    assert res.engine is not None
    assert res.engine.sources == frozenset({"k8s_audit"})
    assert res.engine.has_rules_for("k8s_audit", "")


@pytest.mark.parametrize("name", ["falco_rules.yaml", "k8s_audit_rules.yaml"])
def test_upstream_rule_files_load_clean(name: str, falco_rules: Path) -> None:
    res = load_rules([str(falco_rules / name)])
    assert [e.format() for e in res.errors] == []
    assert [w.format() for w in res.warnings] == []
    assert res.engine is not None and len(res.engine.rules) > 20


def test_upstream_rules_match_an_event(falco_rules: Path) -> None:
    res = load_rules([str(falco_rules / "falco_rules.yaml")])
    assert res.engine is not None
    c = ctx(
        evt__num=7,
        evt__type="openat",
        evt__arg__flags="O_RDONLY",
        fd__name="/etc/shadow",
        fd__num=3,
        proc__name="cat",
        proc__cmdline="cat /etc/shadow",
        proc__pname="bash",
        user__name="root",
        user__uid=0,
    )
    assert "Read sensitive file untrusted" in names(res.engine.process(c))


def test_missing_file_is_a_read_error() -> None:
    res = load_rules(["/nonexistent/rules.yaml"])
    assert [e.code for e in res.errors] == ["LOAD_ERR_FILE_READ"]


def test_priority_parse() -> None:
    assert Priority.parse("info") is Priority.INFORMATIONAL
    assert Priority.parse("EMERGENCY").falco_name == "Emergency"
    with pytest.raises(ValueError):
        Priority.parse("loud")


def test_too_many_event_types_counts_event_codes() -> None:
    from ruleengine.evttypes import EVENT_TYPES

    names = sorted(EVENT_TYPES)
    rule = "- rule: r\n  desc: d\n  condition: evt.type in ({})\n  output: o\n  priority: INFO\n"
    assert [w.code for w in load(rule.format(", ".join(names[:51]))).warnings] == ["LOAD_NO_EVTTYPE"]
    assert load(rule.format(", ".join(names[:50]))).warnings == ()


def test_output_errors_are_located_and_skippable() -> None:
    rule = '- rule: r\n  desc: d\n  condition: evt.type = open\n  output: "x %nosuch.field y"\n  priority: INFO\n'
    res = load(rule)
    assert [(e.code, e.location.line, e.location.col) for e in res.errors] == [("LOAD_ERR_COMPILE_OUTPUT", 4, 14)]
    res = load(rule + "  skip-if-unknown-filter: true\n")
    assert res.ok and [w.code for w in res.warnings] == ["LOAD_UNKNOWN_FILTER"]
    assert res.engine is not None and res.engine.rules == ()
