# SPDX-License-Identifier: Apache-2.0
"""Events from the files Falco users already have, detected by content.

* Lanner's recordings (:mod:`lanner.recording`: one ``lanner.v1.Event`` per line);
* JSON lines keyed by Falco field names (``sysdig -j -p ...`` exports, rule tests, Lanner's older recordings);
* Falco's JSON alerts (``json_output: true``), replayed from their ``output_fields``;
* Kubernetes audit events (``audit.k8s.io/v1`` ``Event``/``EventList`` objects);
* ``.scap`` capture files (plain or gzip), through :mod:`ruleengine.scap`.

A bad record is skipped with a located warning (``file:line: ...``) and counted; the run goes on. ``strict`` makes it
fatal. Enter events (``evt.dir: ">"``) are not evaluated, as in Falco, whose libs keep only exit events: their
named parameters fill in what the thread's next exit event of the same type lacks.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Container, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from lanner.convert import HOST_PB, container_from_pb
from lanner.model import HOST_CONTAINER, SOURCE_K8S_AUDIT, SOURCE_SYSCALL, Event
from lanner.model import Container as Container_
from lanner.recording import RecordingError, event_from_record, is_event_record
from ruleengine.events_json import EventFormatError, audit_event, given_matches
from ruleengine.fields import EventContext
from ruleengine.records import RecordBuilder, RecordError

__all__ = ["EventReader", "ReadStats", "is_scap"]

K8S_NOT_AUDIT = "data not recognized as a k8s audit event"
_ENTER_MERGE_PREFIXES = ("evt.arg.", "evt.rawarg.")


def is_scap(head: bytes) -> bool:
    """A capture file: gzip, or the section header block of a scap file."""
    return head[:2] == b"\x1f\x8b" or head[:4] == b"\x0a\x0d\x0d\x0a"


def placed_container(cgroups: tuple[str, ...]) -> Container_:
    """The container the enricher places a process of these cgroups in, without runtime metadata: Falco's host
    container for a host cgroup, the id with metadata pending for a container's, nothing known without cgroups."""
    if not cgroups:
        return HOST_CONTAINER
    from enricher.cgroups import match_cgroup_tuple  # the one cgroup parser, pure text

    match = match_cgroup_tuple(cgroups)
    if match is None:
        return container_from_pb(HOST_PB)
    return Container_(id=match.short_id, full_id=match.full_id)


class _AskEachType:
    """``in`` for a ``wanted`` predicate that cannot list its types."""

    def __init__(self, wanted: Callable[[str, str], bool]) -> None:
        self.wanted = wanted

    def __contains__(self, evt_type: object) -> bool:
        return self.wanted(SOURCE_SYSCALL, str(evt_type))


@dataclass
class ReadStats:
    """What reading one file gave."""

    events: int = 0
    bad: int = 0
    enter_merged: int = 0
    alerts: int = 0
    skipped: int = 0  # records of an event type no rule looks at


@dataclass
class _FieldNote:
    first_line: int
    message: str
    count: int = 0


@dataclass
class EventReader:
    """Reads one file; iterate for Events. Warnings go to ``warn`` (one string each, located)."""

    path: str
    source: str | None = None
    strict: bool = False
    warn_inconsistent: bool = False
    warn: Callable[[str], None] = print
    # rule name -> an event type of it, to replay Falco alerts whose output_fields lack evt.type
    rule_type: Callable[[str], str | None] = lambda _name: None
    # (source, event type) -> does any rule look at it? Records of other types are counted, not built.
    wanted: Callable[[str, str], bool] | None = None
    # source -> the event types `wanted` accepts (None: any), when it can say so (Engine.types_with_rules)
    wanted_types: Callable[[str], frozenset[str] | None] | None = None
    stats: ReadStats = field(default_factory=ReadStats)

    def __post_init__(self) -> None:
        self._builders: dict[str, RecordBuilder] = {}
        self._inconsistent: dict[str, _FieldNote] = {}
        self._enter: dict[tuple[Any, str], dict[str, object]] = {}
        self._seen_audit = self.source == SOURCE_K8S_AUDIT

    # --- entry ----------------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Event]:
        with open(self.path, "rb") as fh:
            head = fh.peek(4)[:4] if hasattr(fh, "peek") else b""
            if is_scap(head):
                yield from self._scap()
                self._report()
                return
            yield from self._json_lines(fh)
        self._report()

    def _json_lines(self, fh: Any) -> Iterator[Event]:
        num = 0
        wanted = self.wanted
        # the event types worth building, as a set: one membership test per record on the common path
        listed = self.wanted_types(SOURCE_SYSCALL) if self.wanted_types is not None else None
        types: Container[str] | None = _AskEachType(wanted) if listed is None and wanted is not None else listed
        plain = self.source in (None, SOURCE_SYSCALL)
        build, strict = self._builder(SOURCE_SYSCALL).build_record, self.strict
        check, stats, loads, enter = self.warn_inconsistent, self.stats, orjson.loads, self._enter
        lineno = 0
        for line in fh:
            lineno += 1
            try:
                record = loads(line)
            except orjson.JSONDecodeError as exc:
                if not line.strip():
                    continue
                self.bad(lineno, f"invalid JSON at column {exc.colno}: {exc.msg}")
                continue
            if (
                plain
                and type(record) is dict
                and (evt_type := record.get("evt.type")) is not None
                and record.get("evt.dir", "<") == "<"
            ):
                # the common case: a syscall record keyed by field names (the general path below does the rest)
                num += 1
                if types is not None and evt_type not in types:
                    stats.skipped += 1
                    continue
                try:
                    built = build(self._merge_enter(record) if enter else record, num, strict, True)
                except RecordError as exc:
                    self.bad(lineno, str(exc))
                    continue
                if check and built.given:
                    self._check(built, lineno)
                stats.events += 1
                yield built
                continue
            if type(record) is dict and is_event_record(record):
                num += 1
                recorded = self._recorded(record, lineno)
                if recorded is None:
                    continue
                if wanted is not None and not wanted(recorded.source, recorded.type):
                    stats.skipped += 1
                    continue
                stats.events += 1
                yield recorded
                continue
            for rec, src in self._records(record, lineno):
                num += 1
                try:
                    event: Event | None = self._event(rec, src, num)
                except RecordError as exc:
                    self.bad(lineno, str(exc))
                    continue
                if event is None:
                    continue
                if wanted is not None and not wanted(event.source, event.type):
                    self.stats.skipped += 1
                    continue
                if self.warn_inconsistent and event.given:
                    self._check(event, lineno)
                self.stats.events += 1
                yield event

    def _recorded(self, record: dict[str, Any], lineno: int) -> Event | None:
        """A line of Lanner's recording format. A syscall event recorded before the enricher (the collector's
        recording) gets the container its cgroups name, as the enricher would place it without metadata."""
        try:
            event = event_from_record(record, f"{self.path}:{lineno}")
        except RecordingError as exc:
            self.bad(lineno, str(exc).removeprefix(f"{self.path}:{lineno}: "))
            return None
        if event.source == SOURCE_SYSCALL and event.container is HOST_CONTAINER:
            event = replace(event, container=placed_container(event.proc.cgroups))
        return event

    def _scap(self) -> Iterator[Event]:
        from ruleengine.scap import scap_records

        build = self._builder(SOURCE_SYSCALL).build
        num = 0
        try:
            for rec in scap_records(self.path):
                num += 1
                if self.wanted is not None and not self.wanted(SOURCE_SYSCALL, rec["evt.type"]):
                    self.stats.skipped += 1
                    continue
                try:
                    event = build(rec, num)
                except RecordError as exc:
                    self.bad(num, str(exc))
                    continue
                self.stats.events += 1
                yield event
        except (ValueError, struct.error, OSError, EOFError) as exc:
            raise EventFormatError("", f"cannot read the capture: {exc}", self.path) from None

    def _builder(self, src: str) -> RecordBuilder:
        builder = self._builders.get(src)
        if builder is None:
            builder = self._builders[src] = RecordBuilder(src)
        return builder

    # --- records ----------------------------------------------------------------------------------------------
    def _records(self, record: object, lineno: int) -> Iterator[tuple[Mapping[str, object], str]]:
        if not isinstance(record, dict):
            if self._seen_audit:
                self.bad(lineno, K8S_NOT_AUDIT)
            else:
                self.bad(lineno, "an event must be a JSON object")
            return
        src = self.source
        if src is None:
            src = self._detect(record)
        if src == SOURCE_K8S_AUDIT:
            kind = record.get("kind")
            if kind == "EventList" and isinstance(record.get("items"), list):
                for item in record["items"]:
                    yield item, src
            elif kind == "Event":
                yield record, src
            else:
                self.bad(lineno, K8S_NOT_AUDIT)
            return
        if "output_fields" in record and "rule" in record and "evt.type" not in record:
            self.stats.alerts += 1
            yield from self._from_alert(record, lineno)
            return
        yield record, src

    def _detect(self, record: dict[str, Any]) -> str:
        if record.get("kind") in ("Event", "EventList") or str(record.get("apiVersion", "")).startswith("audit.k8s.io"):
            self._seen_audit = True
            return SOURCE_K8S_AUDIT
        if self._seen_audit and "evt.type" not in record and "output_fields" not in record:
            return SOURCE_K8S_AUDIT  # a file of audit events: a stray line gets Falco's wording
        return SOURCE_SYSCALL

    def _from_alert(self, alert: dict[str, Any], lineno: int) -> Iterator[tuple[Mapping[str, object], str]]:
        fields = alert.get("output_fields")
        if not isinstance(fields, dict):
            self.bad(lineno, "a Falco alert without output_fields cannot be replayed")
            return
        src = str(alert.get("source") or SOURCE_SYSCALL)
        rec = {k: v for k, v in fields.items() if v is not None}
        if src == SOURCE_K8S_AUDIT:
            rec["evt.type"] = "k8s_audit"
        elif "evt.type" not in rec:
            guess = self.rule_type(str(alert.get("rule", "")))
            if guess is None:
                self.bad(
                    lineno,
                    f"alert of rule '{alert.get('rule')}': output_fields have no evt.type and the rule "
                    "does not name one",
                )
                return
            rec["evt.type"] = guess
        if "evt.time" in rec and "evt.rawtime" not in rec and isinstance(alert.get("time"), str):
            rec.pop("evt.time")  # the alert's own time is complete (date included)
            rec["evt.time.iso8601"] = alert["time"]
        yield rec, src

    def _event(self, rec: Mapping[str, object], src: str, num: int) -> Event | None:
        if src == SOURCE_K8S_AUDIT and rec.get("evt.type") != "k8s_audit":
            try:
                return audit_event(rec, num)
            except EventFormatError as exc:
                raise RecordError(exc.field, exc.message) from None
        builder = self._builder(src)
        if src == SOURCE_K8S_AUDIT:  # a replayed audit alert: its ka.* values are all there is
            return Event(type="k8s_audit", source=src, given=dict(rec))
        direction = rec.get("evt.dir")
        if direction == ">":
            self._remember_enter(rec)
            return None
        if direction == "<" and self._enter:
            rec = self._merge_enter(dict(rec))
        return builder.build(rec, num, strict_fields=self.strict)

    @staticmethod
    def _thread(rec: Mapping[str, object]) -> tuple[Any, str]:
        return (rec.get("thread.tid", rec.get("proc.pid")), str(rec.get("evt.type")))

    def _remember_enter(self, rec: Mapping[str, object]) -> None:
        params = {k: v for k, v in rec.items() if k.startswith(_ENTER_MERGE_PREFIXES) and v is not None}
        self._enter[self._thread(rec)] = params
        if len(self._enter) > 65536:
            self._enter.clear()

    def _merge_enter(self, rec: dict[str, Any]) -> dict[str, Any]:
        params = self._enter.pop(self._thread(rec), None)
        if not params:
            return rec
        self.stats.enter_merged += 1
        merged = dict(rec)
        for k, v in params.items():
            merged.setdefault(k, v)
        return merged

    # --- warnings ---------------------------------------------------------------------------------------------
    def bad(self, lineno: int, message: str) -> None:
        """A record that cannot be taken: fatal when strict, else a located warning and a count."""
        where = f"{self.path}:{lineno}"
        if self.strict:
            raise EventFormatError("", message, where)
        self.stats.bad += 1
        self.warn(f"{where}: {message}; record skipped")

    def _check(self, event: Event, lineno: int) -> None:
        plain = EventContext(replace(event, given=None))
        assert event.given is not None
        builder = self._builders.get(event.source)
        for key, want in event.given.items():
            bound = builder.bound(key) if builder else None
            if bound is None:
                continue
            got = plain.get(bound)
            if got is None:
                continue  # nothing derived: the given value only adds to the facts
            if not given_matches(bound, got, want):
                note = self._inconsistent.get(key)
                if note is None:
                    note = self._inconsistent[key] = _FieldNote(
                        lineno,
                        f"value {json.dumps(want)} differs from what the other fields give ({bound.render(got)})",
                    )
                note.count += 1

    def _report(self) -> None:
        for builder in self._builders.values():
            for key, count in builder.unknown_fields.items():
                self.warn(f"{self.path}: field '{key}' is not a field Lanner knows; ignored in {count} record(s)")
        for key, note in self._inconsistent.items():
            self.warn(
                f"{self.path}:{note.first_line}: field '{key}': {note.message}; the given value is used "
                f"({note.count} record(s))"
            )
