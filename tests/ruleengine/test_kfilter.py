# SPDX-License-Identifier: Apache-2.0
"""The kernel filter never drops an event a rule would alert on (differential, over generated opens).

Each generated open is built as the probe's raw record, decoded by the collector's real decoder against a process
table, and evaluated by the full engine; the same open, as the probe sees it, goes through the filter evaluator
that mirrors ``bpf/lanner.bpf.c``. Whenever the filter rejects, the engine must match nothing. Strings come from the
rules themselves (paths, prefixes, suffixes, process names), so the interesting edges get hit.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector import layout
from collector.cgroups import CgroupMap
from collector.decode import Decoder, Identity
from collector.procfs import BootClock
from collector.proctable import ProcessTable
from collector.users import UserDb
from ruleengine.condition.ast import And, Check, Expr, ListValue, Not, Or, StrValue
from ruleengine.engine import Engine, EngineOptions, load_rules
from ruleengine.fields import EventContext
from ruleengine.kfilter import OPEN_TYPES, AtomKind, FilterSpec, derive
from ruleengine.kfilter_eval import ProbeView, judgeable, passes
from tests.collector import collector_testlib as rec
from tests.collector.collector_testlib import add_proc

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "falco-rules"
RULE_SETS = {
    **{p.name: (str(p),) for p in sorted(SHARED.glob("*.yaml"))},
    "lanner_rules.yaml": (str(ROOT / "rules" / "lanner_rules.yaml"),),
    "falco+lanner": (str(SHARED / "falco_rules.yaml"), str(ROOT / "rules" / "lanner_rules.yaml")),
}
SC = {"open": layout.SC_OPEN, "openat": layout.SC_OPENAT, "openat2": layout.SC_OPENAT2, "creat": layout.SC_CREAT}


def _strings(e: Expr, out: set[str]) -> None:
    if isinstance(e, And | Or):
        for c in e.children:
            _strings(c, out)
    elif isinstance(e, Not):
        _strings(e.child, out)
    elif isinstance(e, Check):
        if isinstance(e.value, ListValue):
            out.update(e.value.items)
        elif isinstance(e.value, StrValue):
            out.add(e.value.text)


@cache
def loaded(name: str, every_rule: bool) -> tuple[Engine, FilterSpec, tuple[str, ...]]:
    """The engine (all matching rules reported), its filter, and the strings its rules mention."""
    res = load_rules(list(RULE_SETS[name]), EngineOptions(rule_matching="all"))
    assert res.engine is not None, [e.format() for e in res.errors]
    engine = res.engine
    if every_rule:  # rules disabled in the files too: a tag list naming every tag enables them all
        tags = tuple(sorted({t for r in engine.rules for t in r.tags} | {"none"}))
        engine = Engine(engine.rules, EngineOptions(rule_matching="all", enabled_tags=tags))
    words: set[str] = set()
    for r in engine.enabled:
        _strings(r.tree, words)
    return engine, derive(engine.enabled), tuple(sorted(w for w in words if w and "\0" not in w))


def _table() -> ProcessTable:
    tmp = Path(tempfile.mkdtemp(prefix="kfilter-"))
    (tmp / "proc").mkdir()
    (tmp / "etc").mkdir()
    (tmp / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n")
    (tmp / "etc/group").write_text("root:x:0:\n")
    users = UserDb(host_mntns=1, proc_root=str(tmp / "proc"), host_root=str(tmp))
    return ProcessTable(
        users, CgroupMap(cgroup2_root="", proc_root=str(tmp / "proc")), BootClock(), proc_root=str(tmp / "proc")
    )


@st.composite
def opens(draw: st.DrawFn, words: tuple[str, ...]) -> tuple[str, str, str, int, int, str, str, str, int]:
    paths = [w for w in words if w.startswith("/")] or ["/etc/shadow"]
    names = [w for w in words if 0 < len(w.encode()) <= 15] or ["cat"]
    base = draw(st.sampled_from(paths))
    tail = draw(st.sampled_from(["", "", "/", "x", "/x", "/.ssh/id_rsa", "/../etc/shadow", "/./a", "//b", ".log"]))
    path = draw(
        st.one_of(
            st.just(base + tail),
            st.just(base.rstrip("/").rsplit("/", 1)[-1] + tail),  # relative
            st.sampled_from(words or ["x"]),
            st.text(alphabet="/.ab", max_size=12),
        )
    )
    comm = draw(st.one_of(st.sampled_from(names), st.text(alphabet="abcdefgh-", min_size=1, max_size=15)))
    parent = draw(st.sampled_from(names))
    flags = draw(st.sampled_from([0, 1, 2, 3])) | draw(
        st.sampled_from([0, 0o100, 0o1000, 0o2000000, 0o200000, 0o20200000, 0o100 | 0o1000, 0o2000])
    )
    res = draw(st.sampled_from([-2, -13, -1, 0, 1, 3, 7, 250]))
    evt_type = draw(st.sampled_from(OPEN_TYPES))
    cwd = draw(st.sampled_from(["/", "/root/", "/etc/", "/home/alice/", "/tmp/"]))
    exe = draw(st.sampled_from(paths))
    uid = draw(st.sampled_from([0, 1000]))
    return evt_type, path, comm, flags, res, parent, cwd, exe, uid


def _check(name: str, every_rule: bool, case: tuple[str, str, str, int, int, str, str, str, int]) -> bool:
    engine, spec, _words = loaded(name, every_rule)
    evt_type, path, comm, flags, res, parent, cwd, exe, uid = case
    table = _table()
    add_proc(table, 1, 0, "systemd")
    add_proc(table, 50, 1, parent, exepath=exe)
    add_proc(table, 100, 50, comm, cwd=cwd, uid=uid, exepath=exe, args=(path,))
    decoder = Decoder(table, Identity("n", "b", "p"))
    ev = decoder.decode(rec.open_record(100, path, res=res, flags=flags, sc=SC[evt_type], comm=comm, uid=uid))
    assert ev is not None
    raw = path.encode()[: layout.PATH_MAX - 1]
    view = ProbeView(evt_type, raw, comm.encode()[:15], flags if evt_type != "creat" else 0o1101, res)
    if passes(spec, view):
        return True
    matches = [m.name for m in engine.process(EventContext(ev))]
    assert not matches, f"filter dropped {case} which alerts {matches}"
    return False


@pytest.mark.parametrize("every_rule", [False, True], ids=["enabled", "all-rules"])
@pytest.mark.parametrize("name", list(RULE_SETS))
def test_filter_never_drops_an_alert(name: str, every_rule: bool) -> None:
    _engine, _spec, words = loaded(name, every_rule)

    @settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(opens(words))
    def run(case: tuple[str, str, str, int, int, str, str, str, int]) -> None:
        _check(name, every_rule, case)

    run()


def _stock() -> Iterator[tuple[str, str, int, int]]:
    for path in ("/etc/shadow", "/etc/passwd", "/usr/lib/x.so", "/tmp/a", "/var/log/syslog", "../x/../etc/shadow"):
        for comm in ("cat", "sshd", "apt", "containerd"):
            for flags in (0, 1, 2, 0o1101):
                for res in (-2, 3):
                    yield path, comm, flags, res


@pytest.mark.parametrize("name", list(RULE_SETS))
def test_filter_rejects_most_library_opens(name: str) -> None:
    """The stable rules make most ordinary opens droppable (or the filter would be pointless), yet not alerts."""
    _engine, spec, _words = loaded(name, False)
    dropped = 0
    total = 0
    for path, comm, flags, res in _stock():
        total += 1
        if not _check(name, False, ("openat", path, comm, flags, res, "bash", "/", "/usr/bin/cat", 0)):
            dropped += 1
    if spec.clauses:
        assert dropped > total // 3


def test_derivation_shapes() -> None:
    _engine, spec, _ = loaded("falco+lanner", False)
    kinds = {a.kind for a in spec.atoms}
    assert {AtomKind.PATH_EXACT, AtomKind.COMM, AtomKind.FDNUM} <= kinds
    assert set(spec.clauses) >= set(OPEN_TYPES)
    assert len(spec.atoms) <= 64


def test_judgeable_paths() -> None:
    assert judgeable(b"/etc/shadow") and judgeable(b"/") and judgeable(b"/.ssh/x")
    for p in (b"etc/shadow", b"/etc//shadow", b"/etc/./shadow", b"/a/../etc/shadow", b"/etc/", b"/etc/.", b""):
        assert not judgeable(p), p
    assert not judgeable(b"/" + b"a" * 300)
