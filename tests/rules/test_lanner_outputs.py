# SPDX-License-Identifier: Apache-2.0
"""Every alert of Lanner's default rules names the process, the user and the container, and every rule carries
Falco-style MITRE tags. The events are the ones of the YAML rule tests, so each rule is rendered at least once."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ruleengine.engine import Engine, EngineOptions, load_rules
from ruleengine.events_json import event_from_fields
from ruleengine.fields import EventContext

HERE = Path(__file__).resolve().parent
RULES = HERE.parents[1] / "rules" / "lanner_rules.yaml"
LANNER_TESTS = sorted((HERE / "lanner").glob("*.yaml"))


@pytest.fixture(scope="module")
def engine() -> Engine:
    res = load_rules([str(RULES)], EngineOptions(rule_matching="all"))
    assert res.engine is not None, [e.format() for e in res.errors]
    return res.engine


def _records() -> Iterator[dict[str, object]]:
    for path in LANNER_TESTS:
        for test in yaml.safe_load(path.read_text(encoding="utf-8")):
            rules = test.get("rules") or []
            if any("falco_rules" in r for r in rules):
                continue
            records = test.get("events")
            if records is None:  # events_file: JSON lines next to the test file
                lines = (path.parent / test["events_file"]).read_text(encoding="utf-8").splitlines()
                records = [json.loads(line) for line in lines if line.strip()]
            for n, rec in enumerate(records):
                yield {**rec, "evt.num": n + 1}


def test_every_rule_alert_names_process_user_and_container(engine: Engine) -> None:
    rendered: dict[str, int] = {}
    for rec in _records():
        ctx = EventContext(event_from_fields(rec))
        for match in engine.process(ctx):
            out = match.render(ctx, "test-host").output
            name = str(rec["proc.name"])
            assert re.search(rf"\b(process|shell)={re.escape(name)}\b", out), (match.name, out)
            assert f"user={rec['user.name']}" in out, (match.name, out)
            assert f"container={rec.get('container.id', 'host')}" in out, (match.name, out)
            rendered[match.name] = rendered.get(match.name, 0) + 1
    assert set(rendered) == {r.name for r in engine.rules}, f"rules never rendered: {rendered}"


def test_every_rule_has_mitre_tactic_and_technique_tags(engine: Engine) -> None:
    for rule in engine.rules:
        tags = set(rule.tags)
        assert "lanner" in tags, rule.name
        assert any(t.startswith("mitre_") for t in tags), rule.name
        assert any(re.fullmatch(r"T\d{4}(\.\d{3})?", t) for t in tags), rule.name
        assert tags & {"host", "container"}, rule.name
