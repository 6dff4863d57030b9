# SPDX-License-Identifier: Apache-2.0
"""k8s.* fields the enricher derives beyond the pod sandbox: the pod's controller and workload (from its labels and
annotations, enricher.workload) and who opened a ``kubectl exec`` session (enricher.kexec)."""

from __future__ import annotations

from collections.abc import Callable

from lanner.model import Event
from ruleengine.fields._builder import EventBuilder
from ruleengine.fields._context import EventContext
from ruleengine.fields._registry import register
from ruleengine.fields._types import FieldType
from ruleengine.fields._values import as_str
from ruleengine.fields.container import _pod

_S = FieldType.STRING


def _set_k(key: str) -> Callable[[EventBuilder, str | None, object], None]:
    def setter(b: EventBuilder, arg: str | None, v: object) -> None:
        b.k8s[key] = as_str(v)
        b.container["metadata_complete"] = True

    return setter


def _kind(kind: str, get: Callable[[Event], str]) -> Callable[[Event], str | None]:
    return lambda e: get(e) if kind in (e.k8s.owner_kind, e.k8s.workload_kind) else None


def _groups(ctx: EventContext) -> str | None:
    groups = ctx.event.k8s.exec_groups
    return ", ".join(groups) if groups and ctx.event.k8s.exec_user else None


def _set_groups(b: EventBuilder, arg: str | None, v: object) -> None:
    text = as_str(v)
    b.k8s["exec_groups"] = tuple(g.strip() for g in text.split(",") if g.strip())


register(
    "k8s.pod.owner.kind",
    _S,
    "Kind of the pod's controller (ReplicaSet, StatefulSet, DaemonSet, Job; Node for a "
    "static pod), from the labels and annotations the kubelet gives the pod sandbox.",
    extract=_pod(lambda e: e.k8s.owner_kind),
    setter=_set_k("owner_kind"),
)
register(
    "k8s.pod.owner.name",
    _S,
    "Name of the pod's controller.",
    extract=_pod(lambda e: e.k8s.owner_name),
    setter=_set_k("owner_name"),
)
register(
    "k8s.workload.kind",
    _S,
    "Kind of the workload running the pod: Deployment over a ReplicaSet, CronJob over "
    "a Job, else the controller's kind.",
    extract=_pod(lambda e: e.k8s.workload_kind),
    setter=_set_k("workload_kind"),
)
register(
    "k8s.workload.name",
    _S,
    "Name of the workload running the pod.",
    extract=_pod(lambda e: e.k8s.workload_name),
    setter=_set_k("workload_name"),
)
register(
    "k8s.rs.name",
    _S,
    "The Kubernetes ReplicaSet name (from the pod's labels).",
    extract=_pod(_kind("ReplicaSet", lambda e: e.k8s.owner_name)),
    derived=True,
)
register(
    "k8s.deployment.name",
    _S,
    "The Kubernetes Deployment name (from the pod's labels).",
    extract=_pod(_kind("Deployment", lambda e: e.k8s.workload_name)),
    derived=True,
)
register(
    "k8s.exec.user",
    _S,
    "The user who opened this process's session with 'kubectl exec' (from the API "
    "server's audit log, matched with the process the runtime's exec shim started), for that process and its "
    "descendants.",
    extract=_pod(lambda e: e.k8s.exec_user),
    setter=_set_k("exec_user"),
)
register(
    "k8s.exec.groups",
    _S,
    "The groups of the user of k8s.exec.user, comma-separated.",
    extract=_pod(lambda e: ", ".join(e.k8s.exec_groups) or None if e.k8s.exec_user else None),
    setter=_set_groups,
)
