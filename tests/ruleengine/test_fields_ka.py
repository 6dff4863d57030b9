# SPDX-License-Identifier: Apache-2.0
"""ka.* and jevt.* fields over Kubernetes audit events."""

from __future__ import annotations

import json
from typing import Any

from lanner.model import Event
from ruleengine.fields import EventContext, resolve_field

POD_CREATE: dict[str, Any] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "RequestResponse",
    "auditID": "a-1",
    "stage": "ResponseComplete",
    "requestURI": "/api/v1/namespaces/default/pods/p/exec?command=sh&stdin=true",
    "verb": "create",
    "user": {"username": "alice", "groups": ["system:authenticated", "devs"]},
    "sourceIPs": ["10.0.0.1"],
    "userAgent": "kubectl/v1.30",
    "objectRef": {"resource": "pods", "namespace": "default", "name": "p", "subresource": "exec"},
    "responseStatus": {"code": 201},
    "requestObject": {
        "kind": "Pod",
        "spec": {
            "hostNetwork": True,
            "containers": [
                {"name": "a", "image": "docker.io/nginx:1.25", "securityContext": {"privileged": True}},
                {"name": "b", "image": "busybox"},
            ],
            "initContainers": [{"name": "i", "image": "alpine:3"}],
            "volumes": [{"name": "h", "hostPath": {"path": "/etc"}}, {"name": "e", "emptyDir": {}}],
        },
    },
    "responseObject": {"metadata": {"name": "p"}},
    "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": "RBAC"},
    "stageTimestamp": "2024-06-10T06:13:31.726060Z",
}


def get(name: str, arg: str | None = None, doc: dict[str, Any] = POD_CREATE) -> object:
    ev = Event(type="k8s_audit", source="k8s_audit", audit_json=json.dumps(doc))
    return EventContext(ev).get(resolve_field("k8s_audit", name, arg))


def test_scalars() -> None:
    assert get("ka.verb") == "create"
    assert get("ka.user.name") == "alice"
    assert get("ka.target.resource") == "pods" and get("ka.target.subresource") == "exec"
    assert get("ka.target.namespace") == "default" and get("ka.target.name") == "p"
    assert get("ka.uri.param", "command") == "sh"
    assert get("ka.uri.param", "nope") is None
    assert get("ka.auth.decision") == "allow" and get("ka.auth.reason") == "RBAC"
    assert get("ka.response.code") == "201"  # every ka.* field is a string
    assert get("ka.response.reason") is None
    assert get("ka.resp.name") == "p"
    assert get("ka.req.pod.host_network") == "true"
    assert get("ka.req.pod.host_pid") == "false"
    assert get("ka.impuser.name") is None


def test_lists() -> None:
    assert get("ka.user.groups") == ("system:authenticated", "devs")
    assert get("ka.req.pod.containers.image") == ("docker.io/nginx:1.25", "busybox")
    assert get("ka.req.pod.containers.image.repository") == ("docker.io/nginx", "busybox")
    assert get("ka.req.pod.containers.privileged") == ("true", "false")
    assert get("ka.req.pod.containers.image", "1") == "busybox"
    assert get("ka.req.pod.initContainers.image") == ("alpine:3",)
    assert get("ka.req.pod.ephemeralContainers.image") == ()
    assert get("ka.req.pod.volumes.hostpath") == ("/etc",)
    bound = resolve_field("k8s_audit", "ka.req.pod.containers.image")
    assert bound.render(("a", "b")) == "(a,b)" and bound.to_json(("a", "b")) == ["a", "b"]


def test_missing_request_object() -> None:
    doc = {"kind": "Event", "verb": "get", "stageTimestamp": "2024-06-10T06:13:31Z"}
    assert get("ka.req.pod.containers.image", doc=doc) is None
    assert get("ka.req.pod.host_network", doc=doc) is None
    assert get("ka.req.binding.role", doc=doc) is None


def test_rbac_objects() -> None:
    doc = {
        "kind": "Event",
        "verb": "create",
        "objectRef": {"resource": "clusterrolebindings"},
        "requestObject": {
            "roleRef": {"name": "cluster-admin"},
            "subjects": [{"kind": "User", "name": "bob"}, {"kind": "Group", "name": "g"}],
        },
    }
    assert get("ka.req.binding.role", doc=doc) == "cluster-admin"
    assert get("ka.req.binding.subjects.user_names", doc=doc) == ("bob",)
    assert get("ka.req.binding.subjects", doc=doc) == ('{"kind":"User","name":"bob"}', '{"kind":"Group","name":"g"}')
    role = {"kind": "Event", "requestObject": {"rules": [{"verbs": ["get", "*"], "resources": ["pods"]}]}}
    assert get("ka.req.role.rules.verbs", doc=role) == ("get", "*")
    assert get("ka.req.role.rules.resources", doc=role) == ("pods",)


def test_jevt() -> None:
    assert get("jevt.value", "/stage") == "ResponseComplete"
    assert get("jevt.value", "/requestObject/spec/containers/0/name") == "a"
    assert get("jevt.value", "/requestObject/spec/volumes/0") == '{"name":"h","hostPath":{"path":"/etc"}}'
    assert get("jevt.value", "/nope") is None
    assert json.loads(str(get("jevt.obj"))) == POD_CREATE


def test_invalid_audit_json_gives_no_values() -> None:
    ev = Event(type="k8s_audit", source="k8s_audit", audit_json="{not json")
    assert EventContext(ev).get(resolve_field("k8s_audit", "ka.verb")) is None
