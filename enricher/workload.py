# SPDX-License-Identifier: Apache-2.0
"""A pod's controller and workload from what the container runtime knows: the pod's name, labels and annotations.

The runtime has no owner references, but the controllers leave marks the kubelet passes on to the sandbox:

* ReplicaSet pods carry ``pod-template-hash``; their name is ``<replicaset>-<5 random>`` and a Deployment's
  ReplicaSet is named ``<deployment>-<pod-template-hash>``.
* StatefulSet pods carry ``statefulset.kubernetes.io/pod-name`` (and ``controller-revision-hash``); their name is
  ``<statefulset>-<ordinal>``.
* DaemonSet pods carry ``controller-revision-hash`` and ``pod-template-generation``; name ``<daemonset>-<5 random>``.
* Job pods carry ``job-name`` (``batch.kubernetes.io/job-name`` since 1.27); a CronJob's Job is named
  ``<cronjob>-<scheduled minute since the epoch>``.
* Static pods have the annotation ``kubernetes.io/config.mirror``, or a ``kubernetes.io/config.source`` other than
  ``api``: their owner is the Node.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_CRONJOB_JOB = re.compile(r"(?P<cronjob>.+)-(?P<minute>\d{8,})")
_ORDINAL = re.compile(r"(?P<set>.+)-\d+")
_RANDOM_SUFFIX = re.compile(r"(?P<owner>.+)-[a-z0-9]{5}")


@dataclass(frozen=True, slots=True)
class Workload:
    """The pod's direct controller and the workload over it (the same when nothing is above the controller)."""

    owner_kind: str
    owner_name: str
    workload_kind: str
    workload_name: str


def workload_of(pod_name: str, labels: Mapping[str, str], annotations: Mapping[str, str]) -> Workload | None:
    """The controller of a pod, or None for a bare pod (or when the marks are missing)."""
    source = annotations.get("kubernetes.io/config.source", "")
    if "kubernetes.io/config.mirror" in annotations or source in ("file", "http"):
        return Workload("Node", "", "Node", "")
    job = labels.get("batch.kubernetes.io/job-name") or labels.get("job-name")
    if job:
        m = _CRONJOB_JOB.fullmatch(job)
        if m:
            return Workload("Job", job, "CronJob", m.group("cronjob"))
        return Workload("Job", job, "Job", job)
    if "statefulset.kubernetes.io/pod-name" in labels:
        m = _ORDINAL.fullmatch(pod_name)
        if m:
            return Workload("StatefulSet", m.group("set"), "StatefulSet", m.group("set"))
    if "controller-revision-hash" in labels and "pod-template-generation" in labels:
        m = _RANDOM_SUFFIX.fullmatch(pod_name)
        if m:
            return Workload("DaemonSet", m.group("owner"), "DaemonSet", m.group("owner"))
    template_hash = labels.get("pod-template-hash")
    if template_hash:
        m = _RANDOM_SUFFIX.fullmatch(pod_name)
        if m:
            rs = m.group("owner")
            suffix = f"-{template_hash}"
            if rs.endswith(suffix) and len(rs) > len(suffix):
                return Workload("ReplicaSet", rs, "Deployment", rs[: -len(suffix)])
            return Workload("ReplicaSet", rs, "ReplicaSet", rs)
    return None
