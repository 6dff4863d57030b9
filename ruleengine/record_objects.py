# SPDX-License-Identifier: Apache-2.0
"""The model objects of recorded events, shared between events with the same facts.

Replayed files repeat processes, containers and fds from event to event; building each ``Process`` or frozen
``Container`` again costs more than parsing the line. The objects are immutable by convention (nothing after the
decoder assigns to them), so equal facts can share one object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lanner import model
from ruleengine.fields._builder import EventBuilder

_LIMIT = 4096


class ObjectMemo:
    """Builds Event attributes from an EventBuilder, reusing objects built from equal facts."""

    def __init__(self) -> None:
        self._memo: dict[tuple[type, tuple[Any, ...]], Any] = {}
        # per process object: its copies with the pids of each record (see Template.procs)
        self._pid_tables: dict[int, tuple[model.Process, dict[tuple[Any, ...], model.Process]]] = {}

    def pid_table(self, proc: model.Process) -> dict[tuple[Any, ...], model.Process]:
        """The table of ``proc``'s copies by pid values, shared by every template built on the same process object:
        a process is seen in many event shapes (opens, execs, connects), and each must not build its own copy."""
        entry = self._pid_tables.get(id(proc))
        if entry is None or entry[0] is not proc:  # (an id is unique only while its object lives)
            if len(self._pid_tables) >= _LIMIT:
                self._pid_tables.clear()
            entry = self._pid_tables[id(proc)] = (proc, {})
        return entry[1]

    def obj(self, cls: type, facts: dict[str, Any]) -> Any:
        try:
            key = (cls, tuple(facts.items()))
            obj = self._memo.get(key)
        except TypeError:  # an unhashable fact (labels): built every time
            return cls(**facts)
        if obj is None:
            if len(self._memo) >= _LIMIT:
                self._memo.clear()
            obj = self._memo[key] = cls(**facts)
        return obj

    def template(self, b: EventBuilder) -> Template:
        """The event facts the builder holds, as a template for every record with the same values."""
        ev = b.event
        container = model.HOST_CONTAINER
        proc = self.obj(model.Process, b.proc)
        if b.container:
            c = b.container
            if "mounts" in c:
                c = dict(c)
                c["mounts"] = tuple(c["mounts"])
            container = self.obj(model.Container, c)
        return Template(
            identity=dict(b.identity),
            timing=dict(b.timing),
            res=ev.get("res", 0),
            cpu=ev.get("cpu", 0),
            proc_facts=dict(b.proc),
            fd_facts=dict(b.fd) if b.fd is not None else None,
            proc=proc,
            ancestors=tuple(self.obj(model.Process, a) for a in b.ancestors),
            fd=self.obj(model.Fd, b.fd) if b.fd is not None else None,
            args=tuple(model.Arg(k, v) for k, v in b.args.items()),
            container=container,
            k8s=self.obj(model.K8s, b.k8s) if b.k8s else model.NO_K8S,
            source=str(ev.get("source", "")),
            procs=self.pid_table(proc),
        )


@dataclass(frozen=True, slots=True)
class Template:
    """Everything but the per-event values (number, time) of the events built from equal records."""

    identity: dict[str, Any]
    timing: dict[str, Any]
    res: int
    cpu: int
    proc_facts: dict[str, Any]
    fd_facts: dict[str, Any] | None
    proc: model.Process
    ancestors: tuple[model.Process, ...]
    fd: model.Fd | None
    args: tuple[model.Arg, ...]
    container: model.Container
    k8s: model.K8s
    source: str
    procs: dict[tuple[Any, ...], model.Process] = field(default_factory=dict)  # by pid/vpid/tid/vtid values
    no_time: model.EventTiming = field(default_factory=model.EventTiming)  # for records that give no time

    plain: bool = False  # no identity or timing facts: events need only their number and time

    def __post_init__(self) -> None:
        if self.timing:
            object.__setattr__(self, "no_time", model.EventTiming(**self.timing))
        object.__setattr__(self, "plain", not self.identity and not self.timing)

    def with_pids(self, attrs: tuple[str, ...], values: tuple[Any, ...]) -> model.Process:
        """The template's process with this record's pid/vpid/tid/vtid (``values`` of ``attrs``), remembered."""
        if len(self.procs) > _LIMIT:
            self.procs.clear()
        proc = self.procs[values] = model.Process(**{**self.proc_facts, **dict(zip(attrs, values, strict=True))})
        return proc

    def event(
        self,
        evt_type: str,
        seq: Any,
        ns: Any,
        proc_attrs: tuple[str, ...],
        proc_values: tuple[Any, ...] | None,
        each: EventBuilder | None,
        given: dict[str, object] | None,
        objects: ObjectMemo,
    ) -> model.Event:
        """One event: the template's facts plus this record's own values: number, time, pids (``proc_values`` of
        ``proc_attrs``) and whatever else per-event setters wrote into ``each``."""
        if not self.identity:
            identity = model.EventIdentity("", "", seq)  # positional: the hot path of replay
        else:
            identity = (
                model.EventIdentity(**{**self.identity, "seq": seq}) if seq else model.EventIdentity(**self.identity)
            )
        if ns is None:
            timing = self.no_time  # shared: nothing assigns to an event's timing after it is built
        elif not self.timing:
            timing = model.EventTiming(ns)
        else:
            timing = model.EventTiming(**{**self.timing, "event_ns": ns})
        proc, fd, cpu = self.proc, self.fd, self.cpu
        if proc_values is not None:
            proc = self.procs.get(proc_values) or self.with_pids(proc_attrs, proc_values)
        if each is not None:
            if each.identity:
                identity = model.EventIdentity(**{**self.identity, "seq": seq, **each.identity})
            if each.timing:
                timing = model.EventTiming(**{**self.timing, **each.timing})
            if each.proc:
                facts = {**self.proc_facts, **dict(zip(proc_attrs, proc_values or (), strict=True)), **each.proc}
                proc = objects.obj(model.Process, facts)
            if each.fd:
                fd = model.Fd(**{**(self.fd_facts or {}), **each.fd})
            cpu = each.event.get("cpu", cpu)
        return model.Event(
            evt_type,
            self.source,
            identity,
            timing,
            self.res,
            cpu,
            proc,
            self.ancestors,
            fd,
            self.args,
            self.container,
            self.k8s,
            "",
            False,
            given,
        )
