# SPDX-License-Identifier: Apache-2.0
"""The decision memo (ruleengine.decision_memo) answers exactly as evaluating the event does.

Differential: events recombined from the parts of the rule suites' events (the type and args of one, the fd of
another, the process of a third, the container of a fourth, placed by reference as the enricher does or inline)
so that parts repeat across events and batches the way they do on a host, evaluated by one engine as a
``LazyEvent`` (through the memo) and as the eagerly decoded event (never through it), with every rules file.
"""

from __future__ import annotations

import dataclasses
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lanner import model
from lanner.convert import BatchTables, event_from_view, event_to_pb
from lanner.lazy_event import LazyEvent
from lanner.v1 import event_pb2
from ruleengine import dnsnames
from ruleengine.decision_memo import DecisionMemo
from ruleengine.engine import Engine, EngineOptions, load_texts
from ruleengine.fields import EventContext
from ruleengine.output import OutputOptions
from tests.ruleengine.test_lazy_event import _alerts, _suite_events
from tests.ruleengine.test_lazy_event import engine as engine

EVENTS = _suite_events()


def _frame(events: list[model.Event], by_ref: list[bool]) -> event_pb2.EventBatchFrame:
    """As the enricher sends them: processes in the batch's table, and for events placed by reference their
    container in the container table (each process entry names its container)."""
    frame = event_pb2.EventBatchFrame(batch_seq=1)
    containers: dict[tuple[bytes, bytes], int] = {}
    for ev, ref in zip(events, by_ref, strict=True):
        pb = event_to_pb(ev)
        place = 0
        if ref and ev.container.id != model.HOST_CONTAINER.id:
            pair = (pb.container.SerializeToString(), pb.k8s.SerializeToString())
            if pair not in containers:
                frame.containers.append(pair[0])
                frame.k8s.append(pair[1])
                containers[pair] = len(frame.containers)
            place = containers[pair]
        if ref:
            pb.ClearField("container")
            pb.ClearField("k8s")
        view = event_pb2.EventView.FromString(pb.SerializeToString())
        view.ClearField("proc")
        view.ClearField("ancestors")
        for i, p in enumerate((pb.proc, *pb.ancestors)):
            frame.processes.append(p.SerializeToString())
            frame.process_containers.append(place if i == 0 else 0)
            if i == 0:
                view.proc_ref = len(frame.processes)
            else:
                view.ancestor_refs.append(len(frame.processes))
        frame.events.append(view.SerializeToString())
    return frame


def _mix(picks: tuple[int, ...]) -> model.Event:
    ev, fd_of, proc_of, anc_of, ctr_of, pod_of = (EVENTS[i] for i in picks)
    return dataclasses.replace(
        ev,
        fd=fd_of.fd,
        proc=proc_of.proc,
        ancestors=anc_of.ancestors[:1] + proc_of.ancestors[1:],
        proc_incomplete=proc_of.proc_incomplete,
        container=ctr_of.container,
        k8s=pod_of.k8s,
    )


def _decoded(ev: LazyEvent, part: str) -> bool:
    try:
        object.__getattribute__(ev, part)
    except AttributeError:
        return False
    return True


def _same_alerts(engine: Engine, frame: event_pb2.EventBatchFrame) -> tuple[int, int]:
    """(events that alerted, events answered without decoding anything)."""
    tables = BatchTables(frame)
    alerting = answered = 0
    for data in frame.events:
        view = event_pb2.EventView.FromString(data)
        want = _alerts(engine, event_from_view(view, tables))
        lazy = LazyEvent(view, tables, view.source or "syscall")
        matches = engine.process(EventContext(lazy))
        answered += not any(_decoded(lazy, part) for part in ("fd", "proc", "args", "res", "container"))
        assert _alerts(engine, lazy) == want
        assert [m.name for m in matches] == [a[0] for a in want]
        # The service's entry gives the same, and a context that renders them alike.
        found, ctx = engine.process_view(view.source or "syscall", view.type, view, tables)
        assert [m.name for m in found] == [a[0] for a in want]
        if found:
            assert ctx is not None
            assert [(m.name, m.render(ctx, "h", OutputOptions()).output) for m in found] == [a[:2] for a in want]
        alerting += bool(want)
    # A memo that turned itself off would hide a wrong key behind the plain evaluation.
    assert all(s.memo is None or s.memo.enabled for t in engine._tables.values() for s in t.values())
    return alerting, answered


def test_every_suite_event_twice_answers_the_same(engine: Engine) -> None:
    frame = _frame(EVENTS * 2, [i % 3 == 0 for i in range(2 * len(EVENTS))])
    alerting, answered = _same_alerts(engine, frame)
    assert alerting > 40
    assert answered > 50  # the second copies whose path reads no time nor identity


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_recombined_events_answer_as_evaluated(engine: Engine, data: st.DataObject) -> None:
    # A small pool per example, so parts repeat within the batch and across examples (the memo outlives both).
    # The process and its first ancestor come from different events, as do the container and its pod.
    pool = data.draw(st.lists(st.integers(0, len(EVENTS) - 1), min_size=1, max_size=6, unique=True))
    pick = st.sampled_from(pool)
    mixes = data.draw(st.lists(st.tuples(st.tuples(*[pick] * 6), st.booleans()), min_size=1, max_size=30))
    frame = _frame([_mix(picks) for picks, _ in mixes], [by_ref for _, by_ref in mixes])
    _same_alerts(engine, frame)


def _swap(ev: model.Event, donor: model.Event, part: str) -> model.Event:
    if part == "parent":
        return dataclasses.replace(ev, ancestors=donor.ancestors[:1] + ev.ancestors[1:])
    if part == "elders":
        return dataclasses.replace(ev, ancestors=ev.ancestors[:1] + donor.ancestors[1:])
    if part == "proc":
        return dataclasses.replace(ev, proc=donor.proc, proc_incomplete=donor.proc_incomplete)
    return dataclasses.replace(ev, **{part: getattr(donor, part)})


def test_events_that_differ_in_one_part_answer_as_evaluated(engine: Engine) -> None:
    """Each suite event with one part taken from other events, one part at a time: whatever part a rule reads,
    an event that differs only there must not get another event's answer."""
    rnd = random.Random(6)
    for part in ("fd", "proc", "parent", "elders", "container", "k8s", "args", "res"):
        events = [_swap(ev, EVENTS[rnd.randrange(len(EVENTS))], part) for ev in EVENTS for _ in range(6)]
        _same_alerts(engine, _frame(events, [rnd.random() < 0.5 for _ in events]))


RULES = """
- rule: shadow by cat
  desc: d
  condition: evt.type = openat and fd.name = /etc/shadow and proc.name = cat
  output: "x %fd.name %proc.name"
  priority: WARNING
- rule: long lived
  desc: d
  condition: evt.type = openat and fd.name = /etc/passwd and proc.duration > 5
  output: "y %proc.duration"
  priority: WARNING
"""


def _one(rules: str = RULES) -> Engine:
    res = load_texts([("r.yaml", rules)], EngineOptions(rule_matching="all"))
    assert res.engine is not None
    return res.engine


def _view(path: str, comm: str, event_ns: int = 10) -> event_pb2.EventView:
    ev = model.Event(
        type="openat",
        fd=model.Fd(num=3, path=path),
        proc=model.Process(pid=7, comm=comm, start_ns=1),
        timing=model.EventTiming(event_ns=event_ns),
    )
    return event_pb2.EventView.FromString(event_to_pb(ev).SerializeToString())


def _names(engine: Engine, view: event_pb2.EventView) -> list[str]:
    return [m.name for m in engine.process(EventContext(LazyEvent(view, None, "syscall")))]


def test_a_repeated_event_is_answered_without_decoding() -> None:
    engine = _one()
    assert _names(engine, _view("/etc/shadow", "cat")) == ["shadow by cat"]
    again = LazyEvent(_view("/etc/shadow", "cat", event_ns=99), None, "syscall")
    assert [m.name for m in engine.process(EventContext(again))] == ["shadow by cat"]
    for part in ("fd", "proc"):
        assert not _decoded(again, part)
    assert _names(engine, _view("/etc/shadow", "sh")) == []
    assert _names(engine, _view("/etc/hosts", "cat")) == []


def test_a_path_through_the_event_time_is_evaluated_every_time() -> None:
    engine = _one()
    # proc.duration reads the event's time: each event differs, so each one is evaluated.
    assert _names(engine, _view("/etc/passwd", "cat", event_ns=3)) == []
    assert _names(engine, _view("/etc/passwd", "cat", event_ns=3_000_000_000)) == ["long lived"]
    assert _names(engine, _view("/etc/passwd", "cat", event_ns=4)) == []


def test_new_dns_answers_clear_the_memo() -> None:
    engine = _one()
    _names(engine, _view("/etc/shadow", "cat"))
    slot = engine._tables["syscall"]["openat"]
    assert slot.memo is not None and slot.memo._size > 0
    dnsnames.WATCHED.generation += 1
    try:
        assert slot.memo.lookup(LazyEvent(_view("/etc/hosts", "cat"), None, "syscall")) is not None
        assert slot.memo._size == 0
    finally:
        dnsnames.WATCHED.generation -= 1


def test_a_path_that_disagrees_turns_the_memo_off() -> None:
    memo = DecisionMemo()
    ev = LazyEvent(_view("/etc/shadow", "cat"), None, "syscall")
    memo.store(ev, ["fd", "proc"], 0)
    assert memo.lookup(LazyEvent(_view("/etc/shadow", "cat"), None, "syscall")) == 0
    memo.store(ev, ["fd", "cpu"], 0)  # the same fd, then another part: something outside the event was read
    assert not memo.enabled
    assert memo.lookup(ev) is not None and memo.lookup(ev) != 0


def test_the_memo_stays_bounded() -> None:
    memo = DecisionMemo(limit=2000)
    for i in range(200):
        memo.store(LazyEvent(_view(f"/tmp/f{i}", "cat"), None, "syscall"), ["fd"], -1)
        assert memo._size <= 2000 + 300  # one path past the limit at most, then it starts again


PARTS_RULES = """
- rule: in prod
  desc: d
  condition: evt.type = openat and k8s.ns.name = prod
  output: x
  priority: WARNING
- rule: nginx
  desc: d
  condition: evt.type = openat and container.image.repository = nginx
  output: x
  priority: WARNING
- rule: mode
  desc: d
  condition: evt.type = openat and evt.rawarg.mode = 420
  output: x
  priority: WARNING
- rule: failed
  desc: d
  condition: evt.type = openat and evt.rawres < 0
  output: x
  priority: WARNING
"""


def test_each_part_a_rule_reads_tells_events_apart() -> None:
    """Events alike but for the pod, the image, the last arg or the return value, placed by reference and inline:
    each answers for itself."""
    engine = _one(PARTS_RULES)
    events = []
    for ns in ("prod", "dev"):
        for repo in ("nginx", "redis"):
            for mode in (420, 384):
                for res in (3, -2):
                    events.append(
                        model.Event(
                            type="openat",
                            res=res,
                            fd=model.Fd(num=3, path="/x"),
                            proc=model.Process(pid=7, comm="cat"),
                            args=(model.Arg("dirfd", -100), model.Arg("name", "/x"), model.Arg("mode", mode)),
                            container=model.Container(id="abc", image_repository=repo, metadata_complete=True),
                            k8s=model.K8s(ns_name=ns),
                        )
                    )
    alerting = 0
    for by_ref in (True, False):
        for order in (events, events[::-1]):
            alerting += _same_alerts(engine, _frame(order, [by_ref] * len(order)))[0]
    assert alerting == 4 * 15


def test_a_memo_that_mostly_misses_rests_then_tries_again() -> None:
    from ruleengine import decision_memo as dm

    memo = DecisionMemo()
    for i in range(dm.WINDOW):  # every event new: all misses
        ev = LazyEvent(_view(f"/tmp/f{i}", "cat"), None, "syscall")
        assert memo.lookup(ev) is dm.MISS
        memo.store(ev, ["fd"], -1)
    seen = LazyEvent(_view("/tmp/f0", "cat"), None, "syscall")
    for _ in range(dm.REST):
        assert memo.lookup(seen) is dm.NO_MEMO  # resting: evaluated as usual
    assert memo.lookup(seen) == -1
