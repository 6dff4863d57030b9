# SPDX-License-Identifier: Apache-2.0
"""``ContainerMeta``: what a runtime knows about one container, and the ``MetadataProvider`` Protocol.

Runtimes (Docker API, CRI) and the Redis cache all implement the same Protocol, so the enricher never knows which
one it talks to. ``ContainerMeta`` reuses the domain model's ``Container`` and ``K8s`` and has a compact JSON form
for the cache.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any, Protocol

from lanner.model import EMPTY_MAP, NO_K8S, Container, K8s, Mount


@dataclass(frozen=True, slots=True)
class ContainerMeta:
    """Metadata of one container: runtime facts (``container``) and its pod (``k8s``, empty when not a pod's)."""

    container: Container
    k8s: K8s = NO_K8S

    def to_json(self) -> str:
        """Compact JSON for the cache; only non-default fields are written."""
        return json.dumps({"c": _non_default(self.container), "k": _non_default(self.k8s)}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> ContainerMeta:
        """Inverse of ``to_json``; raises ValueError on malformed input."""
        try:
            data = json.loads(text)
            c = dict(data["c"])
            k = dict(data["k"])
            if "labels" in c:
                c["labels"] = MappingProxyType(dict(c["labels"]))
            if "mounts" in c:
                c["mounts"] = tuple(Mount(**m) for m in c["mounts"])
            if "pod_labels" in k:
                k["pod_labels"] = MappingProxyType(dict(k["pod_labels"]))
            return cls(container=Container(**c), k8s=K8s(**k))
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"bad cached container metadata: {exc}") from None


def _non_default(obj: Container | K8s) -> dict[str, Any]:
    default = type(obj)()
    out: dict[str, Any] = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if value == getattr(default, f.name):
            continue
        if f.name in ("labels", "pod_labels"):
            value = dict(value)
        elif f.name == "mounts":
            value = [{m.name: getattr(mount, m.name) for m in fields(mount)} for mount in value]
        out[f.name] = value
    return out


def labels_map(labels: dict[str, str] | None) -> Any:
    """An immutable label mapping (the shared empty one when there are none)."""
    return MappingProxyType(dict(labels)) if labels else EMPTY_MAP


class MetadataProvider(Protocol):
    """Anything that can answer "what is container X?": a runtime client or a cache in front of one."""

    name: str

    async def lookup(self, container_id: str) -> ContainerMeta | None:
        """Metadata of the container with this full (64-hex) id, or None when this provider does not know it.

        Raises ``LookupFailed`` when the provider could not answer (runtime down, timeout), as opposed to "not
        mine", so callers can tell a definite miss from a transient failure.
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class LookupFailed(Exception):
    """A provider could not answer (unreachable, timed out, malformed reply)."""
