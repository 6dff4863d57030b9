# SPDX-License-Identifier: Apache-2.0
"""The rule engine service answers an event that repeats an earlier one of its batch (the same bytes after the
identity and timing) without asking the engine, and that answer is always the plain evaluation's.

Differential: batches of the rule suites' events, each repeated at other times and sequence numbers, placed by
reference and inline, recombined from each other's parts, are pushed through ``evaluate_batch``; the alerts it
raises must be those of evaluating every decoded event on its own, in order, with every rules file.
"""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lanner import model
from lanner.convert import BatchTables, event_from_view
from lanner.v1 import alert_pb2, event_pb2
from ruleengine import dnsnames
from ruleengine import service as service_module
from ruleengine.engine import Engine, EngineOptions, load_texts
from ruleengine.service import RuleEngineService, _repeat_key
from tests.ruleengine.test_decision_memo import EVENTS, _mix
from tests.ruleengine.test_decision_memo import _frame as _frame_apart
from tests.ruleengine.test_lazy_event import _alerts
from tests.ruleengine.test_lazy_event import engine as engine


class _Alerts:
    def __init__(self) -> None:
        self.got: list[tuple[str, str]] = []

    def submit_many(self, alerts: list[bytes]) -> None:
        for data in alerts:
            alert = alert_pb2.Alert.FromString(data)
            self.got.append((alert.rule, alert.output))

    def submit_urgent(self, data: bytes) -> None:
        self.submit_many([data])


class _Counting:
    """An engine whose ``process_view`` calls are counted."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.calls = 0

    def process_view(self, *args: object) -> object:
        self.calls += 1
        return self.engine.process_view(*args)  # type: ignore[arg-type]

    def memo_of(self, source: str, evt_type: str) -> object:
        return self.engine.memo_of(source, evt_type)


def _service(engine: object, recorder: object = None) -> tuple[RuleEngineService, _Alerts]:
    alerts = _Alerts()
    service = RuleEngineService(
        lambda: engine,
        lambda m, ctx: m.render(ctx, "h"),
        alerts,  # type: ignore[arg-type]
        recorder,  # type: ignore[arg-type]
    )
    return service, alerts


def _at(ev: model.Event, k: int) -> model.Event:
    """The same event at another time and sequence number (only its identity and timing differ)."""
    return dataclasses.replace(
        ev,
        identity=dataclasses.replace(ev.identity, seq=ev.identity.seq + 1000 * k + 1),
        timing=dataclasses.replace(ev.timing, event_ns=ev.timing.event_ns + 1_000_003 * k + 7),
    )


def _frame(events: list[model.Event], by_ref: list[bool]) -> event_pb2.EventBatchFrame:
    """As ``test_decision_memo._frame``, with each distinct process once in the batch's table, as the collector
    writes it (so that events of one process carry the same references)."""
    apart = _frame_apart(events, by_ref)
    frame = event_pb2.EventBatchFrame(
        batch_seq=1, containers=apart.containers, k8s=apart.k8s, enriched_ns=apart.enriched_ns
    )
    index: dict[tuple[bytes, int], int] = {}

    def ref(old: int) -> int:
        entry = (apart.processes[old - 1], apart.process_containers[old - 1])
        if entry not in index:
            frame.processes.append(entry[0])
            frame.process_containers.append(entry[1])
            index[entry] = len(frame.processes)
        return index[entry]

    for data in apart.events:
        view = event_pb2.EventView.FromString(data)
        if view.proc_ref:
            view.proc_ref = ref(view.proc_ref)
            refs = [ref(r) for r in view.ancestor_refs]
            del view.ancestor_refs[:]
            view.ancestor_refs.extend(refs)
        frame.events.append(view.SerializeToString())
    return frame


def _plain(engine: Engine, frame: event_pb2.EventBatchFrame) -> list[tuple[str, str]]:
    tables = BatchTables(frame)
    out = []
    for data in frame.events:
        view = event_pb2.EventView.FromString(data)
        if (view.source or "syscall") != "syscall":
            continue
        out += [(rule, output) for rule, output, _ in _alerts(engine, event_from_view(view, tables))]
    return out


def _check(engine: Engine, frame: event_pb2.EventBatchFrame, budget: int = 10**9) -> int:
    """Same alerts as the plain evaluation; returns the events answered as repeats. The service keeps looking
    for repeats all along the batch (a batch of the suites' events alerts far more than a host's)."""
    service_module._REPEAT_BUDGET, saved = budget, service_module._REPEAT_BUDGET
    try:
        return _checked(engine, frame)
    finally:
        service_module._REPEAT_BUDGET = saved


def _checked(engine: Engine, frame: event_pb2.EventBatchFrame) -> int:
    counting = _Counting(engine)
    service, alerts = _service(counting)
    service.evaluate_batch(frame)
    assert alerts.got == _plain(engine, frame)
    assert all(s.memo is None or s.memo.enabled for t in engine._tables.values() for s in t.values())
    return len(frame.events) - counting.calls


def test_suite_events_repeated_at_other_times_alert_as_evaluated(engine: Engine) -> None:
    events = [_at(ev, k) for ev in EVENTS for k in range(5)]
    frame = _frame(events, [(i // 7) % 2 == 0 for i in range(len(events))])
    repeats = _check(engine, frame)
    assert repeats > 200
    # Every repeat has the key of an event before it in the batch.
    keys = [_repeat_key(d) for d in frame.events]
    assert None not in keys


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_recombined_repeats_alert_as_evaluated(engine: Engine, data: st.DataObject) -> None:
    pool = data.draw(st.lists(st.integers(0, len(EVENTS) - 1), min_size=1, max_size=5, unique=True))
    pick = st.sampled_from(pool)
    mixes = data.draw(
        st.lists(st.tuples(st.tuples(*[pick] * 6), st.booleans(), st.integers(0, 5)), min_size=1, max_size=40)
    )
    frame = _frame([_at(_mix(picks), k) for picks, _, k in mixes], [by_ref for _, by_ref, _ in mixes])
    _check(engine, frame)


RULES = """
- rule: late open
  desc: reads the event's time, so its repeats must each be evaluated
  condition: evt.type = openat and fd.name = /etc/hosts and evt.rawtime > 5000000
  output: late %fd.name
  priority: WARNING
- rule: shadow
  desc: d
  condition: evt.type = openat and fd.name = /etc/shadow
  output: shadow %proc.name
  priority: WARNING
"""


def _open(path: str, k: int) -> model.Event:
    return model.Event(
        type="openat",
        fd=model.Fd(num=3, path=path),
        proc=model.Process(pid=7, comm="cat", start_ns=1),
        identity=model.EventIdentity(node="n", boot_id="b", seq=k + 1, producer_id="p"),
        timing=model.EventTiming(event_ns=k * 1_000_000 + 1),
    )


def test_a_rule_that_reads_the_time_sees_every_repeat() -> None:
    res = load_texts([("r.yaml", RULES)], EngineOptions(rule_matching="all"))
    assert res.engine is not None
    events = [_open(p, k) for k in range(10) for p in ("/etc/hosts", "/etc/passwd", "/etc/shadow")]
    frame = _frame(events, [k % 2 == 0 for k in range(len(events))])
    repeats = _check(res.engine, frame)
    # Only /etc/passwd's opens match nothing on a path that reads no time: those repeat (once the memo holds
    # them, by reference and inline). /etc/hosts's are evaluated each time, and alert from the sixth on.
    assert 7 <= repeats <= 9
    assert [rule for rule, _ in _plain(res.engine, frame)].count("late open") == 5


def test_new_dns_answers_mid_batch_are_asked_again() -> None:
    res = load_texts([("r.yaml", RULES)], EngineOptions(rule_matching="all"))
    assert res.engine is not None
    events = [_open("/etc/passwd", k) for k in range(10)]
    frame = _frame(events, [True] * len(events))
    seen = [0]

    def recorder(_: object) -> None:  # runs before each event is answered: the names move at the sixth
        seen[0] += 1
        if seen[0] == 6:
            dnsnames.WATCHED.generation += 1

    counting = _Counting(res.engine)
    service, alerts = _service(counting, recorder)
    service.evaluate_batch(frame)
    assert alerts.got == []
    # Asked: the first (a miss, evaluated) and the second (the memo's answer, kept); then again the sixth (the memo
    # forgot everything with the names) and the seventh.
    assert counting.calls == 4


def test_a_batch_that_does_not_repeat_stops_looking() -> None:
    res = load_texts([("r.yaml", RULES)], EngineOptions(rule_matching="all"))
    assert res.engine is not None
    distinct = [_open(f"/etc/f{k}", k) for k in range(200)]
    repeated = [_open("/etc/passwd", k) for k in range(50)]
    frame = _frame(distinct + repeated, [True] * 250)
    assert _check(res.engine, frame, budget=service_module._REPEAT_BUDGET) == 0  # gave up before the repeats
    frame = _frame(repeated + distinct + repeated, [True] * 300)
    # The memo knows /etc/passwd by now: the first is kept and 49 repeat; the 200 new keys use up what those
    # earned, and the last 50 are asked again.
    assert _check(res.engine, frame, budget=service_module._REPEAT_BUDGET) == 49
