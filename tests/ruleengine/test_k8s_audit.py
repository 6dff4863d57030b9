# SPDX-License-Identifier: Apache-2.0
"""k8s_audit rules: list-valued fields (in = every value, intersects = any value), <NA> warnings, upstream rules."""

from __future__ import annotations

import json
from pathlib import Path

from ruleengine.engine import EngineOptions, load_rules
from ruleengine.events_json import event_from_fields
from ruleengine.fields import EventContext

from .helpers import load


def audit(images: list[str], verb: str = "create", privileged: bool = False) -> EventContext:
    obj = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "stage": "ResponseComplete",
        "verb": verb,
        "stageTimestamp": "2026-01-01T00:00:00Z",
        "requestReceivedTimestamp": "2026-01-01T00:00:00Z",
        "user": {"username": "alice", "groups": ["system:authenticated"]},
        "objectRef": {"resource": "pods", "namespace": "default", "name": "p"},
        "responseStatus": {"code": 201},
        "requestObject": {
            "kind": "Pod",
            "spec": {
                "containers": [
                    {"name": f"c{i}", "image": img, "securityContext": {"privileged": privileged}}
                    for i, img in enumerate(images)
                ]
            },
        },
    }
    return EventContext(event_from_fields(json.loads(json.dumps(obj)), "k8s_audit"))


def rule(cond: str) -> str:
    return f"- rule: k\n  desc: d\n  condition: {cond}\n  output: o %ka.verb\n  priority: INFO\n  source: k8s_audit\n"


def hit(cond: str, c: EventContext) -> bool:
    res = load(rule(cond))
    assert res.engine is not None, [e.format() for e in res.errors]
    return bool(res.engine.process(c))


def test_in_requires_every_value_intersects_any() -> None:
    two = audit(["nginx", "busybox"])
    assert hit("ka.req.pod.containers.image in (nginx, busybox, redis)", two)
    assert not hit("ka.req.pod.containers.image in (nginx)", two)
    assert hit("ka.req.pod.containers.image intersects (nginx)", two)
    assert not hit("ka.req.pod.containers.image intersects (redis)", two)
    assert hit("ka.req.pod.containers.image exists", two)


def test_list_fields_only_support_exists_in_intersects() -> None:
    res = load(rule("ka.req.pod.containers.image = nginx"))
    assert res.errors and "only supports operators 'exists', 'in' and 'intersects'" in res.errors[0].message


def test_unsafe_na_check_warning() -> None:
    res = load(rule("ka.verb = create and ka.target.name != <NA>"))
    assert "LOAD_UNSAFE_NA_CHECK" in [w.code for w in res.warnings]


def test_upstream_k8s_rule_fires(falco_rules: Path) -> None:
    res = load_rules([str(falco_rules / "k8s_audit_rules.yaml")], EngineOptions(rule_matching="all"))
    assert res.engine is not None
    names = [m.name for m in res.engine.process(audit(["nginx"], privileged=True))]
    assert "Create Privileged Pod" in names
