# SPDX-License-Identifier: Apache-2.0
"""Records keyed by Falco field names -> Events, tolerant of what Falco and sysdig write, and fast.

A record's fields are facts. Keys come in any order; ``null`` means the key is absent. A value given in the form the
field extracts (a string for a string field, an integer for a number...) is used as given: it goes into the event's
``given`` values, which win over anything derived. Every given value also sets the raw facts behind it (through the
field's setter) so that fields the record does not carry are derived from them, as for live events. Times may be
integer nanoseconds (sysdig) or rendered text (``Z`` or ``+0000``). A value whose raw facts cannot be read but that
can be used as given (``evt.arg.flags`` with a flag Lanner has no name for) is kept as given.

Speed: a file repeats a few key layouts (a *plan* per layout and value types), and within a layout the facts of one
family (process, fd, container...) repeat from event to event. Each family's setters run once per distinct set of
values; later records merge the remembered facts instead of parsing them again.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from lanner.model import SOURCE_SYSCALL, Event, EventIdentity, EventTiming
from ruleengine.fields import FieldArgError, UnknownFieldError
from ruleengine.fields._builder import EventBuilder
from ruleengine.fields._registry import resolve_with_setter
from ruleengine.fields._types import BoundField
from ruleengine.fields.fd import finalize_fd
from ruleengine.record_objects import ObjectMemo, Template
from ruleengine.record_plans import (
    DIGITS,
    TIME_FIELDS,
    Group,
    Plan,
    RecordError,
    Snapshot,
    Step,
    form,
    given_getter,
    seed_type,
    tuple_getter,
)

__all__ = ["RecordBuilder", "RecordError", "split_key"]

_MEMO_LIMIT = 8192
# Keys sysdig writes that are no Falco field, and the field whose facts they give: `sysdig -j` without `-p` writes
# each event's time as `evt.outputtime` (integer nanoseconds).
_ALIASES = {"evt.outputtime": "evt.rawtime"}
_GROUPS = {"proc": 1, "thread": 1, "user": 1, "group": 1, "fd": 2, "container": 3, "k8s": 3}
# Keys that differ on every event: set on each event, never part of what is remembered.
_PER_EVENT = frozenset({"evt.num", "evt.cpu"}) | TIME_FIELDS
# Integers that change from event to event without changing anything else: set on each event's process/fd.
_PER_EVENT_INT = frozenset(
    {"thread.tid", "thread.vtid", "proc.pid", "proc.vpid", "proc.pid.ts", "fd.cport", "fd.sport"}
)
# The commonest per-event integers, assigned straight to the fact their setter writes (same as the setter does).
_ENDPOINTS = frozenset({"fd.cip", "fd.sip", "fd.cport", "fd.sport"})
_DIRECT_INT = {
    "evt.num": "seq",
    "evt.rawtime": "event_ns",
    "proc.pid": "pid",
    "proc.vpid": "vpid",
    "thread.tid": "tid",
    "thread.vtid": "vtid",
}


def split_key(key: str) -> tuple[str, str | None]:
    """``proc.aname[2]`` -> (``proc.aname``, ``2``); quotes around the argument are dropped."""
    if key.endswith("]") and "[" in key:
        name, _, arg = key[:-1].partition("[")
        if len(arg) >= 2 and arg[0] == arg[-1] and arg[0] in "'\"":
            arg = arg[1:-1]
        return name, arg
    return key, None


def _set_time(b: EventBuilder, arg: str | None, v: object) -> None:
    ns = int(v) if isinstance(v, int | str) else 0
    if ns < 10**12:  # a whole number of seconds
        ns *= 1_000_000_000
    b.timing["event_ns"] = ns


_ISO = re.compile(r"(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:[.,](\d+))?\s*(Z|z|[+-]\d\d:?\d\d)?")


def _set_iso(b: EventBuilder, arg: str | None, v: object) -> None:
    """ISO 8601 as Falco (``+0000``), sysdig and RFC 3339 (``Z``, ``+00:00``) write it."""
    m = _ISO.fullmatch(str(v).strip())
    if m is None:
        raise ValueError(f"'{v}' is not an ISO 8601 time")
    tz = m[4] or "+0000"
    tz = "+00:00" if tz in ("Z", "z") else (tz if ":" in tz else tz[:3] + ":" + tz[3:])
    parsed = dt.datetime.fromisoformat(f"{m[1]}T{m[2]}{tz}")
    frac = int(((m[3] or "") + "000000000")[:9])
    b.timing["event_ns"] = int(parsed.timestamp()) * 1_000_000_000 + frac


class RecordBuilder:
    """Builds Events from the records of one file (plans and remembered facts are per file)."""

    def __init__(self, source: str = SOURCE_SYSCALL) -> None:
        self.source = source
        self._plans: dict[tuple[Any, ...], Plan] = {}  # by signature: keys and the form of each value
        self._by_keys: dict[tuple[str, ...], Plan] = {}  # by keys alone: the plan their last record had
        self._objects = ObjectMemo()
        self.unknown_fields: dict[str, int] = {}
        # fields whose given value could not be read as raw facts but was kept as given: field -> count
        self.kept_as_given: dict[str, int] = {}

    # --- plans --------------------------------------------------------------------------------------------
    def _plan(self, record: Mapping[str, object]) -> Plan:
        sig = (tuple(record), tuple(map(form, record.values())))
        plan = self._plans.get(sig)
        if plan is None:
            plan = self._plans[sig] = self._make_plan(record)
        return plan

    def _make_plan(self, record: Mapping[str, object]) -> Plan:
        groups: dict[int, list[Step]] = {}
        derived: list[Step] = []
        per_event: list[Step] = []
        direct: dict[str, str] = {}
        seeded: list[str] = []
        unknown: list[tuple[str, str]] = []
        for key, value in record.items():
            key = str(key)
            try:
                bound, setter, is_derived = resolve_with_setter(self.source, *split_key(_ALIASES.get(key, key)))
            except (UnknownFieldError, FieldArgError) as exc:
                unknown.append((key, str(exc)))
                continue
            name = bound.info.name
            if key in _ALIASES:  # a fact under another name: it sets the field's facts, and is not its value
                value = None if value is None else str(value)
            if name in TIME_FIELDS and (
                (isinstance(value, int) and not isinstance(value, bool)) or form(value) is DIGITS
            ):
                setter, is_derived = _set_time, False  # sysdig's integer nanoseconds
                seed = name == "evt.rawtime" and isinstance(value, int)
            elif name == "evt.time.iso8601" and isinstance(value, str):
                setter, is_derived, seed = _set_iso, False, True
            else:
                seed = value is not None and seed_type(bound, key, type(value))
            if name == "fd.name" and record.keys() >= _ENDPOINTS and isinstance(value, str) and "->" in value:
                setter = None  # the endpoints are given one by one: the rendered tuple is only used as given
            step = Step(key, bound, setter, seed)
            if seed:
                seeded.append(key)
            if setter is None or value is None or key == "evt.type":
                continue
            if name in _DIRECT_INT and type(value) is int and key == name:
                direct[_DIRECT_INT[name]] = key
            elif name in _PER_EVENT or (name in _PER_EVENT_INT and type(value) is int):
                per_event.append(step)
            elif is_derived:
                derived.append(step)
            else:
                groups.setdefault(_GROUPS.get(name.partition(".")[0], 0), []).append(step)
        lists = frozenset(str(k) for k, v in record.items() if isinstance(v, list))
        ordered = tuple(Group(g, tuple(groups[g]), lists) for g in sorted(groups))
        # what the template depends on: the keys whose setters write facts shared by equal records
        fixed = ["evt.type"] + [s.key for g in ordered for s in g.steps] + [s.key for s in derived]
        names = {k for k, _ in unknown}.union(fixed)
        checks = tuple((str(k), type(v)) for k, v in record.items() if k not in names)
        time_checks = tuple(
            (k, form(record[k]) is DIGITS) for k, t in checks if t is str and split_key(k)[0] in TIME_FIELDS
        )
        proc_keys = [direct[a] for a in ("pid", "vpid", "tid", "vtid") if a in direct]
        return Plan(
            tuple(per_event),
            ordered,
            tuple(derived),
            given_getter(record, seeded),
            tuple(unknown),
            tuple(str(k) for k in record if k not in set(seeded)),
            tuple_getter(fixed, lists),
            {},
            direct.get("seq"),
            direct.get("event_ns"),
            tuple(a for a in ("pid", "vpid", "tid", "vtid") if a in direct),
            tuple_getter(proc_keys) if proc_keys else None,
            checks,
            time_checks,
        )

    def bound(self, key: str) -> BoundField | None:
        """The field a record key names (None when it names none)."""
        try:
            return resolve_with_setter(self.source, *split_key(key))[0]
        except (UnknownFieldError, FieldArgError):
            return None

    # --- building -----------------------------------------------------------------------------------------
    def build(
        self, record: Mapping[str, object], num: int = 0, *, strict_fields: bool = False, owned: bool = False
    ) -> Event:
        """The Event for ``record``; ``num`` is its ``evt.num`` unless the record gives one.

        Keys that are no field are counted in ``unknown_fields`` and ignored, or (``strict_fields``) an error. A
        value that cannot be read raises RecordError naming its field. ``owned``: the record is the caller's to
        give away (a freshly parsed line); it becomes the event's given values instead of being copied.
        """
        return self.build_record(record, num, strict_fields, owned)

    def build_record(self, record: Mapping[str, object], num: int, strict_fields: bool, owned: bool) -> Event:
        """:meth:`build` with positional arguments (the replay loop's call)."""
        if type(record) is not dict and not isinstance(record, Mapping):
            raise RecordError("", "an event must be a JSON object")
        evt_type = record.get("evt.type")
        if not isinstance(evt_type, str) or not evt_type:
            raise RecordError("evt.type", "missing (every event needs its type)")
        # The plan of the record's keys, checked cheaply: the template key compares every value that shapes the
        # plan except the per-event ones, which `fits` checks; a miss on both finds the plan by full signature.
        keys = tuple(record)
        plan = self._by_keys.get(keys)
        if plan is None or ((plan.checks or plan.time_checks) and not plan.fits(record)):
            plan = self._by_keys[keys] = self._plan(record)
        if plan.unknown:
            for key, why in plan.unknown:
                if strict_fields:
                    raise RecordError(key, why)
                self.unknown_fields[key] = self.unknown_fields.get(key, 0) + 1
        try:
            tkey: Any = plan.template_key(record)
            tmpl = plan.templates.get(tkey)
        except TypeError:  # a list value: not hashable, not remembered
            tkey, tmpl = None, None
        if tmpl is None:
            typed = self._plan(record)
            if typed is not plan:  # same keys, values of another form than the last record's
                plan = self._by_keys[keys] = typed
                return self.build_record(record, num, strict_fields, owned)
            tmpl = self._template(plan, record, evt_type)
            if tkey is not None:
                if len(plan.templates) >= _MEMO_LIMIT:
                    plan.templates.clear()
                plan.templates[tkey] = tmpl
        each = None
        if plan.per_event:
            each = EventBuilder(self.source)
            for step in plan.per_event:
                self._run(each, step, record[step.key])
        seq: Any = record[plan.num_key] if plan.num_key is not None else num  # an int: the plan checked it
        ns: Any = record[plan.time_key] if plan.time_key is not None else None
        pvals = plan.proc_values(record) if plan.proc_values is not None else None
        if plan.given is None:
            given = None
        elif owned and type(record) is dict:
            # the reader's own fresh dict becomes the given values: drop what is not used as given, keep the rest
            for key in plan.not_given:
                del record[key]
            given = record
        else:
            given = plan.given(record)
        if each is None and tmpl.plain:  # the common record: the template's objects, this record's number and time
            proc = tmpl.proc if pvals is None else (tmpl.procs.get(pvals) or tmpl.with_pids(plan.proc_attrs, pvals))
            timing = tmpl.no_time if ns is None else EventTiming(ns)
            return Event(
                evt_type,
                tmpl.source,
                EventIdentity("", "", seq),
                timing,
                tmpl.res,
                tmpl.cpu,
                proc,
                tmpl.ancestors,
                tmpl.fd,
                tmpl.args,
                tmpl.container,
                tmpl.k8s,
                "",
                False,
                given,
            )
        return tmpl.event(evt_type, seq, ns, plan.proc_attrs, pvals, each, given, self._objects)

    def _template(self, plan: Plan, record: Mapping[str, object], evt_type: str) -> Template:
        b = EventBuilder(self.source)
        b.event["type"] = evt_type
        for group in plan.groups:
            parts, fd, ancestors = self._snapshot(group, record, evt_type)
            for attr, d in parts:
                getattr(b, attr).update(d)
            if fd is not None:
                b.fd_dict().update(fd)
            for n, a in enumerate(ancestors, 1):
                b.ancestor(n).update(a)
        for step in plan.derived:
            self._run(b, step, record[step.key])
        finalize_fd(b)
        return self._objects.template(b)

    def _run(self, b: EventBuilder, step: Step, value: object) -> None:
        """Apply one setter; a value it cannot read is an error unless the value is used as given."""
        assert step.setter is not None
        try:
            step.setter(b, step.bound.arg, value)
        except (ValueError, TypeError) as exc:
            if not step.seed:
                raise RecordError(step.key, str(exc)) from None
            # the value is still used as given; only the facts behind it stay unknown
            self.kept_as_given[step.key] = self.kept_as_given.get(step.key, 0) + 1

    def _snapshot(self, group: Group, record: Mapping[str, object], evt_type: str) -> Snapshot:
        values = group.getter(record)
        try:
            snap = group.memo.get(values)
        except TypeError:  # a list value: not hashable, not remembered
            return self._run_group(group, record, evt_type)
        if snap is None:
            try:
                snap = self._run_group(group, record, evt_type)
            except RecordError as exc:
                snap = exc
            if len(group.memo) >= _MEMO_LIMIT:
                group.memo.clear()
            group.memo[values] = snap
        if isinstance(snap, RecordError):
            raise snap
        return snap

    def _run_group(self, group: Group, record: Mapping[str, object], evt_type: str) -> Snapshot:
        fresh = EventBuilder(self.source)
        fresh.event["type"] = evt_type
        retry = []
        for s in group.steps:
            v = record[s.key]  # as given (the memo key holds lists as tuples)
            assert s.setter is not None
            try:
                s.setter(fresh, s.bound.arg, v)
            except (ValueError, TypeError):
                retry.append((s, v))  # may depend on a fact set by a later key of the record
        for s, v in retry:
            self._run(fresh, s, v)
        ev = {k: v for k, v in fresh.event.items() if k not in ("source", "type")}
        parts = tuple(
            (attr, d)
            for attr, d in (
                ("event", ev),
                ("identity", fresh.identity),
                ("timing", fresh.timing),
                ("proc", fresh.proc),
                ("args", fresh.args),
                ("container", fresh.container),
                ("k8s", fresh.k8s),
            )
            if d
        )
        return parts, fresh.fd, fresh.ancestors
