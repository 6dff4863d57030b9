# SPDX-License-Identifier: Apache-2.0
"""The optimized dispatcher (conjuncts reordered, rules ruled out by the merged gate) gives exactly the plain one's
results, for every rules file, over the rule suites' events and over generated events built from the rules' own
literals (so that gates hold, almost hold, and fail)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lanner import model
from ruleengine.compiler import Dispatcher, compile_dispatcher
from ruleengine.compiler_gate import plan_gate
from ruleengine.condition.ast import And, Check, Expr, FieldRef, ListValue, Not, Or, StrValue
from ruleengine.engine import Engine, EngineOptions, load_rules
from ruleengine.events_json import EventFormatError, event_from_fields
from ruleengine.fields import EventContext, FieldArgError, FieldType, UnknownFieldError, resolve_field

from .test_lazy_event import _suite_events

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("LANNER_FALCO_RULES", REPO.parent / "shared" / "falco-rules"))
Pair = tuple[Dispatcher, Dispatcher]


@pytest.fixture(scope="module")
def engine() -> Engine:
    files = [str(REPO / "rules" / "lanner_rules.yaml")] + [str(p) for p in sorted(SHARED.glob("*.yaml"))]
    res = load_rules(files, EngineOptions(rule_matching="all"))
    assert res.engine is not None, [e.format() for e in res.errors]
    return res.engine


def _pairs(engine: Engine, source: str) -> dict[tuple[str | None, bool], Pair]:
    """Optimized and plain dispatchers per event type (None: the rules every type is a candidate for)."""
    out: dict[tuple[str | None, bool], Pair] = {}
    types = engine.types_with_rules(source)
    for evt_type in [None] if types is None else sorted(types):
        trees = [r.tree for r in engine.candidates(source, evt_type or "")]
        for first in (True, False):
            out[(evt_type, first)] = (
                compile_dispatcher(trees, source, evt_type, first),
                compile_dispatcher(trees, source, evt_type, first, optimize=False),
            )
    return out


@pytest.fixture(scope="module")
def syscall_pairs(engine: Engine) -> dict[tuple[str | None, bool], Pair]:
    return _pairs(engine, "syscall")


def _same(pairs: dict[tuple[str | None, bool], Pair], event: model.Event) -> bool:
    """Both dispatchers agree for this event, in both matching modes; True when some rule matched."""
    hit = False
    for first in (True, False):
        pair = pairs.get((event.type, first)) or pairs.get((None, first))
        if pair is None:
            return False
        got = pair[0].fn(EventContext(event))
        want = pair[1].fn(EventContext(event))
        assert got == want, (event, first)
        hit = hit or (want >= 0 if first else bool(want))
    return hit


def test_gates_cover_the_busy_types(engine: Engine) -> None:
    # the point of the gate: most of the upstream open and exec rules have one
    for evt_type in ("openat", "execve", "connect"):
        trees: list[Expr | bool] = [r.tree for r in engine.candidates("syscall", evt_type)]
        plan = plan_gate(trees, "syscall")
        assert plan is not None and len(plan[1]) >= len(trees) // 2, evt_type


def test_suite_events_agree(engine: Engine, syscall_pairs: dict[tuple[str | None, bool], Pair]) -> None:
    events = _suite_events()
    assert len(events) > 100
    hits = 0
    for ev in events:
        hits += _same(syscall_pairs, ev)
    assert hits > 20


def test_audit_suite_events_agree(engine: Engine) -> None:
    pairs = _pairs(engine, "k8s_audit")
    events = _suite_events("k8s_audit")
    assert len(events) > 20
    assert sum(_same(pairs, ev) for ev in events) > 10


def _literals(e: Expr, out: dict[str, set[str]]) -> dict[str, set[str]]:
    """Every string literal a condition compares a field with, by field."""
    if isinstance(e, And | Or):
        for c in e.children:
            _literals(c, out)
    elif isinstance(e, Not):
        _literals(e.child, out)
    elif isinstance(e, Check) and isinstance(e.lhs, FieldRef) and isinstance(e.value, StrValue | ListValue):
        texts = e.value.items if isinstance(e.value, ListValue) else (e.value.text,)
        out.setdefault(e.lhs.token, set()).update(texts)
    return out


def _settable(token: str) -> bool:
    name, _, arg = token.partition("[")
    try:
        bf = resolve_field("syscall", name, arg[:-1] if arg else None)
    except (UnknownFieldError, FieldArgError):
        return False
    if name in ("evt.type", "evt.types") or bf.info.type is not FieldType.STRING:
        return False
    try:
        event_from_fields({"evt.type": "openat", token: "x"})
    except (EventFormatError, ValueError, TypeError):
        return False
    return True


@pytest.fixture(scope="module")
def rule_pools(engine: Engine) -> dict[str, list[dict[str, list[str]]]]:
    """Per event type, per candidate rule: the settable string fields it tests and their literals."""
    ok: dict[str, bool] = {}
    out: dict[str, list[dict[str, list[str]]]] = {}
    for evt_type in sorted(engine.types_with_rules("syscall") or ()):
        for rule in engine.candidates("syscall", evt_type):
            lits = _literals(rule.tree, {})
            pool = {t: sorted(v) for t, v in lits.items() if v and ok.setdefault(t, _settable(t))}
            if pool:
                out.setdefault(evt_type, []).append(pool)
    assert {"openat", "execve", "connect"} <= set(out)
    return out


_FLAGS = ["O_RDONLY", "O_RDONLY|O_CLOEXEC", "O_WRONLY|O_CREAT|O_TRUNC", "O_RDWR"]


def _value(lits: list[str]) -> st.SearchStrategy[str]:
    lit = st.sampled_from(lits)
    return st.one_of(
        lit,
        lit.map(lambda t: t.replace("*", "ab").replace("?", "c")),  # what a glob literal matches
        lit.map(lambda t: t.replace("*", "ab").replace("?", "c")),
        st.tuples(lit, st.sampled_from(["x", "/", "/a", ".pub", "_key", "/id_rsa"])).map("".join),
        st.tuples(st.sampled_from(["/", "x", "/tmp/", "/home/u"]), lit).map("".join),
        st.text("/._-abcehimnorstx", max_size=12),
    )


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(data=st.data())
def test_generated_events_agree(
    data: Any, syscall_pairs: dict[tuple[str | None, bool], Pair], rule_pools: dict[str, list[dict[str, list[str]]]]
) -> None:
    # an event aimed at one candidate rule: its fields take that rule's literals, or near misses of them
    types = sorted(rule_pools)
    evt_type = data.draw(st.sampled_from(types) | st.sampled_from(["openat", "openat", "execve", "connect"]))
    field_pool = data.draw(st.sampled_from(rule_pools[evt_type]))
    tokens = [tok for tok in sorted(field_pool) if data.draw(st.integers(0, 3))]
    rec: dict[str, object] = {
        "evt.type": evt_type,
        "evt.rawres": 3,
        "fd.num": 3,
        "user.uid": data.draw(st.sampled_from([0, 1000])),
        "evt.arg.flags": data.draw(st.sampled_from(_FLAGS)),
    }
    for tok in tokens:
        rec[tok] = data.draw(_value(field_pool[tok]))
    try:
        event = event_from_fields(rec, num=1)
    except (EventFormatError, ValueError):
        return
    _same(syscall_pairs, event)
    # and as a live event: only the raw facts, every field extracted
    _same(syscall_pairs, dataclasses.replace(event, given=None))


def test_the_part_every_event_reads_is_decoded_up_front(engine: Engine) -> None:
    # the gate reads fd.* first for opens and proc.* first for execs, so the engine decodes that part at once
    trees = {t: [r.tree for r in engine.candidates("syscall", t)] for t in ("openat", "execve")}
    assert compile_dispatcher(trees["openat"], "syscall", "openat", True).preload == "fd"
    assert compile_dispatcher(trees["execve"], "syscall", "execve", True).preload == "proc"
    assert compile_dispatcher(trees["openat"], "syscall", "openat", True, optimize=False).preload is None
