# SPDX-License-Identifier: Apache-2.0
"""k8s.* fields derived by the enricher: the pod's controller/workload and the kubectl exec user."""

from __future__ import annotations

from ruleengine.fields import resolve_field
from tests.ruleengine.helpers import ctx, matches

POD = {
    "evt__type": "execve",
    "container__id": "0123456789ab",
    "k8s__pod__name": "web-7d4b9c8f6d-x2x9z",
    "k8s__ns__name": "shop",
}


def value(field: str, **fields: object) -> object:
    return ctx(**fields).get(resolve_field("syscall", field))


def test_deployment_and_replicaset_names() -> None:
    fields = {
        **POD,
        "k8s__pod__owner__kind": "ReplicaSet",
        "k8s__pod__owner__name": "web-7d4b9c8f6d",
        "k8s__workload__kind": "Deployment",
        "k8s__workload__name": "web",
    }
    assert value("k8s.deployment.name", **fields) == "web"
    assert value("k8s.rs.name", **fields) == "web-7d4b9c8f6d"
    assert value("k8s.workload.kind", **fields) == "Deployment"
    sts = {
        **POD,
        "k8s__pod__owner__kind": "StatefulSet",
        "k8s__pod__owner__name": "db",
        "k8s__workload__kind": "StatefulSet",
        "k8s__workload__name": "db",
    }
    assert value("k8s.deployment.name", **sts) is None and value("k8s.rs.name", **sts) is None
    assert value("k8s.deployment.name", evt__type="open") is None  # host: no pod


def test_exec_user_and_groups() -> None:
    fields = {**POD, "k8s__exec__user": "alice@example.com", "k8s__exec__groups": "devs, system:authenticated"}
    assert value("k8s.exec.user", **fields) == "alice@example.com"
    assert value("k8s.exec.groups", **fields) == "devs, system:authenticated"
    assert matches('k8s.exec.user = "alice@example.com" and k8s.exec.groups contains devs', **fields)
    assert value("k8s.exec.user", **POD) is None and value("k8s.exec.groups", **POD) is None
