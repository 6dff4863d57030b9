# SPDX-License-Identifier: Apache-2.0
"""The rule engine's lazily decoded event reads exactly as the eagerly decoded one.

Differential: every syscall event of the rule test suites (tests/rules), built from its raw facts only, goes over
the wire as the collector and enricher send it; the engine then evaluates it once as ``event_from_view`` builds it
and once as a ``LazyEvent``, with every rules file at hand, and must raise the same alerts with the same output.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import yaml

from lanner import model
from lanner.convert import BatchTables, event_from_view, event_to_pb
from lanner.lazy_event import LazyEvent, MalformedEvent
from lanner.v1 import alert_pb2, event_pb2
from lanner.wire import shared_batch_wire
from ruleengine.engine import Engine, EngineOptions, load_rules
from ruleengine.events_json import EventFormatError, event_from_fields
from ruleengine.fields import EventContext
from ruleengine.output import OutputOptions

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("LANNER_FALCO_RULES", REPO.parent / "shared" / "falco-rules"))


def _suite_events(source: str = "syscall") -> list[model.Event]:
    out: list[model.Event] = []
    for path in sorted((REPO / "tests" / "rules").rglob("*.yaml")):
        if "fixtures" in path.parts:
            continue
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for spec in doc if isinstance(doc, list) else []:
            if not isinstance(spec, dict) or spec.get("source", "syscall") != source:
                continue
            for i, rec in enumerate(spec.get("events") or []):
                try:
                    ev = event_from_fields(rec, source, num=i + 1)
                except EventFormatError:
                    continue
                # Only raw facts travel on the wire: what extractors derive from them is what is compared.
                out.append(dataclasses.replace(ev, given=None))
    return out


@pytest.fixture(scope="module")
def engine() -> Engine:
    files = [str(REPO / "rules" / "lanner_rules.yaml")]
    files += [str(p) for p in sorted(SHARED.glob("*.yaml"))]
    res = load_rules(files, EngineOptions(rule_matching="all"))
    assert res.engine is not None, [e.format() for e in res.errors]
    return res.engine


def _alerts(engine: Engine, event: model.Event) -> list[tuple[str, str, dict[str, object]]]:
    ctx = EventContext(event)
    out = []
    for match in engine.process(ctx):
        record = match.render(ctx, "h", OutputOptions())
        out.append((record.rule, record.output, dict(record.output_fields)))
    return out


def _frame(events: list[model.Event]) -> event_pb2.EventBatchFrame:
    """The events as the rule engine receives them: processes in the batch's table, a container table beside."""
    shared = []
    for ev in events:
        pb = event_to_pb(ev)
        procs = (pb.proc.SerializeToString(), *(a.SerializeToString() for a in pb.ancestors))
        pb.ClearField("proc")
        pb.ClearField("ancestors")
        shared.append((pb.SerializeToString(), procs))
    return event_pb2.EventBatchFrame.FromString(shared_batch_wire(1, shared, 0))


def test_lazy_and_eager_events_raise_the_same_alerts(engine: Engine) -> None:
    events = _suite_events()
    assert len(events) > 100
    frame = _frame(events)
    tables = BatchTables(frame)
    alerting = 0
    for original, data in zip(events, frame.events, strict=True):
        view = event_pb2.EventView.FromString(data)
        eager = event_from_view(view, tables)
        lazy = LazyEvent(view, tables, view.source or "syscall")
        want = _alerts(engine, eager)
        assert _alerts(engine, lazy) == want, original
        assert lazy.decoded() == eager
        alerting += bool(want)
    assert alerting > 20


def test_audit_events_read_the_same_lazily(engine: Engine) -> None:
    events = _suite_events("k8s_audit")
    assert len(events) > 20
    alerting = 0
    for original in events:
        view = event_pb2.EventView.FromString(event_to_pb(original).SerializeToString())
        want = _alerts(engine, event_from_view(view))
        assert _alerts(engine, LazyEvent(view, None, view.source)) == want, original
        alerting += bool(want)
    assert alerting > 10


def test_inline_events_decode_lazily_too(engine: Engine) -> None:
    for original in _suite_events()[:200]:
        view = event_pb2.EventView.FromString(event_to_pb(original).SerializeToString())
        lazy = LazyEvent(view, None, view.source or "syscall")
        assert lazy.decoded() == event_from_view(view)
        assert _alerts(engine, lazy) == _alerts(engine, event_from_view(view))


def test_an_event_no_rule_reads_decodes_nothing() -> None:
    view = event_pb2.EventView(type="openat", proc=b"\xff\xff", fd=b"\xff")  # garbage that nobody reads
    lazy = LazyEvent(view, None, "syscall")
    assert lazy.type == "openat" and lazy.given is None
    with pytest.raises(MalformedEvent, match="'fd'"):
        _ = lazy.fd
    with pytest.raises(MalformedEvent, match="'proc'"):
        _ = lazy.proc.comm


def test_a_malformed_part_is_the_events_fault_not_a_rules(engine: Engine) -> None:
    pb = event_to_pb(model.Event(type="openat", fd=model.Fd(num=3, path="/etc/shadow")))
    view = event_pb2.EventView.FromString(pb.SerializeToString())
    view.fd = b"\x0a\xff\xff"  # a length past the end
    with pytest.raises(MalformedEvent):
        engine.process(EventContext(LazyEvent(view, None, "syscall")))
    assert engine.errors_total == 0


def test_the_service_drops_only_the_event_whose_part_is_malformed(tmp_path: Path) -> None:
    from lanner.metrics import EVENTS_DROPPED
    from ruleengine.engine import load_texts
    from ruleengine.service import RuleEngineService

    rules = (
        "- rule: shadow\n  desc: d\n  condition: evt.type = openat and fd.name = /etc/shadow\n  output: x\n"
        "  priority: WARNING\n"
    )
    res = load_texts([("r.yaml", rules)])
    assert res.engine is not None
    shadow = event_to_pb(model.Event(type="openat", fd=model.Fd(num=3, path="/etc/shadow")))
    bad = event_pb2.EventView.FromString(shadow.SerializeToString())
    bad.fd = b"\x0a\xff\xff"
    frame = event_pb2.EventBatchFrame(
        events=[shadow.SerializeToString(), bad.SerializeToString(), shadow.SerializeToString()]
    )

    class Alerts:
        def __init__(self) -> None:
            self.rules: list[str] = []

        def submit(self, alert: bytes) -> None:
            self.rules.append(alert_pb2.Alert.FromString(alert).rule)

        def submit_many(self, alerts: list[bytes]) -> None:
            for alert in alerts:
                self.submit(alert)

    alerts = Alerts()
    service = RuleEngineService(lambda: res.engine, lambda m, ctx: m.render(ctx, "h"), alerts)  # type: ignore[arg-type]
    dropped = EVENTS_DROPPED.labels("ruleengine", "malformed_event")
    before = dropped._value.get()
    service.evaluate_batch(frame)
    assert alerts.rules == ["shadow", "shadow"]
    assert dropped._value.get() == before + 1


def test_event_view_mirrors_event_field_by_field() -> None:
    """``EventView`` is ``Event`` with nested messages left as bytes; a field added to one and not the other would
    silently read as unset through the view (and so through every rule)."""
    from google.protobuf.descriptor import FieldDescriptor

    event = {f.number: f for f in event_pb2.Event.DESCRIPTOR.fields}
    view = {f.number: f for f in event_pb2.EventView.DESCRIPTOR.fields}
    assert sorted(event) == sorted(view)
    for number, f in event.items():
        v = view[number]
        assert v.name == f.name
        assert v.is_repeated == f.is_repeated, f.name
        if f.type == FieldDescriptor.TYPE_MESSAGE and f.name not in ("id", "timing"):
            assert v.type == FieldDescriptor.TYPE_BYTES, f.name
        else:
            assert (v.type, v.message_type and v.message_type.full_name) == (
                f.type,
                f.message_type and f.message_type.full_name,
            ), f.name


def test_the_process_decodes_without_its_ancestors() -> None:
    """proc.name is read for nearly every event and an ancestor rarely: reading the process must not decode the
    ancestors (a deep process tree costs a table lookup per level), and a broken ancestor reference is found only
    by a read of the ancestors."""
    proc = model.Process(pid=7, comm="cat")
    parent = model.Process(pid=1, comm="init")
    frame = _frame([model.Event(type="openat", proc=proc, ancestors=(parent,))])
    view = event_pb2.EventView.FromString(frame.events[0])
    view.ancestor_refs.append(99)  # past the batch's table
    lazy = LazyEvent(view, BatchTables(frame), "syscall")
    assert lazy.proc.comm == "cat"
    with pytest.raises(MalformedEvent, match="'ancestors'"):
        _ = lazy.ancestors
    good = LazyEvent(event_pb2.EventView.FromString(frame.events[0]), BatchTables(frame), "syscall")
    assert [p.comm for p in good.ancestors] == ["init"] and good.proc.pid == 7
