# SPDX-License-Identifier: Apache-2.0
"""Older rules files keep loading and matching as the Falco versions they were written for load them."""

from __future__ import annotations

from typing import Any

from ruleengine.events_json import event_from_fields
from ruleengine.fields import EventContext

from .helpers import load


def audit(request: dict[str, Any], resource: str = "pods") -> EventContext:
    obj = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "stage": "ResponseComplete",
        "verb": "create",
        "stageTimestamp": "2026-01-01T00:00:00Z",
        "user": {"username": "alice"},
        "objectRef": {"resource": resource, "namespace": "default", "name": "x"},
        "requestObject": request,
    }
    return EventContext(event_from_fields(obj, "k8s_audit"))


def rules(cond: str, output: str = "o %ka.verb") -> str:
    return (
        f"- required_engine_version: 2\n- rule: k\n  desc: d\n  condition: {cond}\n  output: {output}\n"
        "  priority: INFO\n  source: k8s_audit\n"
    )


def outputs(cond: str, ctx: EventContext, output: str = "o %ka.verb") -> list[str]:
    res = load(rules(cond, output))
    assert res.engine is not None, [e.format() for e in res.errors]
    return [m.render(ctx, "h").output for m in res.engine.process(ctx)]


POD = {
    "kind": "Pod",
    "spec": {
        "volumes": [
            {"name": "a", "hostPath": {"path": "/proc/sys"}},
            {"name": "b", "hostPath": {"path": "/etc"}},
            {"name": "c", "emptyDir": {}},
        ]
    },
}


def test_volume_hostpath_alias() -> None:
    pod = audit(POD)
    assert outputs("ka.req.volume.hostpath[/proc*]=true", pod)  # a trailing * is a prefix
    assert outputs("ka.req.volume.hostpath[/etc]=true", pod)
    assert not outputs("ka.req.volume.hostpath[/root*]=true", pod)
    assert outputs("ka.req.volume.hostpath[/root*]=false", pod)
    assert not outputs("ka.req.volume.hostpath[/etc]=true", audit({"kind": "Pod", "spec": {}}))  # no volumes


def test_contains_on_list_valued_fields_reads_their_json_text() -> None:
    role = audit(
        {"kind": "ClusterRole", "rules": [{"verbs": ["get", "*"], "resources": ["pods", "pods/exec"]}]}, "clusterroles"
    )
    assert outputs("ka.req.role.rules.verbs contains '\"*\"'", role)
    assert outputs('ka.req.role.rules.resources contains "pods/exec"', role)
    assert not outputs("ka.req.role.rules.resources contains secrets", role)
    # the list operators keep their list meaning
    assert outputs('ka.req.role.rules.verbs intersects (create, "*")', role)


def test_output_token_with_an_argument_ends_at_the_bracket() -> None:
    binding = audit(
        {
            "kind": "ClusterRoleBinding",
            "roleRef": {"name": "cluster-admin"},
            "subjects": [{"kind": "User", "name": "cluster-admin"}],
        },
        "clusterrolebindings",
    )
    [text] = outputs("ka.verb=create", binding, "'binding (foo=%ka.req.binding.subject.has_name[cluster-admin])'")
    assert text.endswith("binding (foo=true)")
