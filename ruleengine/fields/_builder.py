# SPDX-License-Identifier: Apache-2.0
"""Mutable scratch state used to build a ``lanner.model.Event`` from Falco-field-keyed records.

Each field family's setter writes raw facts here (comm, argv, open flags, socket endpoints...); the result is then
read back through the same extractors, so derived fields of recorded events are computed like live ones.
"""

from __future__ import annotations

from dataclasses import fields as dc_fields
from typing import Any

from lanner import model


class EventBuilder:
    """Raw facts collected from a record, turned into a frozen Event by ``build``."""

    __slots__ = ("ancestors", "args", "container", "event", "fd", "identity", "k8s", "proc", "timing")

    def __init__(self, source: str) -> None:
        self.event: dict[str, Any] = {"source": source}
        self.identity: dict[str, Any] = {}
        self.timing: dict[str, Any] = {}
        self.proc: dict[str, Any] = {}
        self.ancestors: list[dict[str, Any]] = []
        self.fd: dict[str, Any] | None = None
        self.args: dict[str, model.ArgValue] = {}
        self.container: dict[str, Any] = {}
        self.k8s: dict[str, Any] = {}

    def ancestor(self, n: int) -> dict[str, Any]:
        """Process dict of ancestor ``n`` (0 = the process itself, 1 = parent), creating missing levels."""
        if n == 0:
            return self.proc
        while len(self.ancestors) < n:
            self.ancestors.append({})
        return self.ancestors[n - 1]

    def fd_dict(self) -> dict[str, Any]:
        """The event's fd facts, creating the fd on first use."""
        if self.fd is None:
            self.fd = {}
        return self.fd

    def build(self) -> model.Event:
        """Freeze the collected facts into an Event."""
        ev = dict(self.event)
        if "type" not in ev:
            ev["type"] = ""
        ev["identity"] = model.EventIdentity(**self.identity)
        ev["timing"] = model.EventTiming(**self.timing)
        ev["proc"] = model.Process(**self.proc)
        ev["ancestors"] = tuple(model.Process(**a) for a in self.ancestors)
        if self.fd is not None:
            ev["fd"] = model.Fd(**self.fd)
        ev["args"] = tuple(model.Arg(k, v) for k, v in self.args.items())
        if self.container:
            c = dict(self.container)
            if "mounts" in c:
                c["mounts"] = tuple(c["mounts"])
            ev["container"] = model.Container(**c)
        if self.k8s:
            ev["k8s"] = model.K8s(**self.k8s)
        return model.Event(**ev)


PROCESS_FIELDS = frozenset(f.name for f in dc_fields(model.Process))
