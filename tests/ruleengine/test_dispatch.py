# SPDX-License-Identifier: Apache-2.0
"""The per-type dispatchers give exactly the results of evaluating each rule on its own, in order."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ruleengine.compiler import fold_evt_type
from ruleengine.condition.parser import parse_condition
from ruleengine.engine import Engine, EngineOptions, load_rules
from ruleengine.fields import EventContext

from .helpers import ctx


def reference(engine: Engine, c: EventContext, first: bool) -> list[str]:
    out = []
    for rule in engine.candidates(c.event.source, c.event.type):
        if rule.fn(c.get):
            out.append(rule.name)
            if first:
                break
    return out


def random_events(n: int) -> list[EventContext]:
    rnd = random.Random(3)
    types = ["openat", "open", "execve", "connect", "accept", "unlink", "setuid", "ptrace", "read", "mkdir"]
    names = ["cat", "bash", "nginx", "sh", "nc", "python3", "sshd", "find", "shred", "kmod"]
    files = ["/etc/shadow", "/etc/passwd", "/tmp/x", "/dev/shm/a", "/root/.ssh/id_rsa", "/bin/ls", "/proc/1/mem"]
    out = []
    for i in range(n):
        rec: dict[str, object] = {
            "evt.num": i + 1,
            "evt.type": rnd.choice(types),
            "proc.name": rnd.choice(names),
            "proc.pname": rnd.choice(names),
            "user.uid": rnd.choice([0, 1000]),
            "proc.tty": rnd.choice([0, 34816]),
        }
        if rec["evt.type"] in ("openat", "open", "unlink", "mkdir"):
            rec.update({"fd.name": rnd.choice(files), "fd.num": 3})
        if rec["evt.type"] in ("openat", "open"):
            rec["evt.arg.flags"] = rnd.choice(["O_RDONLY", "O_TRUNC|O_CREAT|O_WRONLY"])
        if rnd.random() < 0.5:
            rec.update({"container.id": "3ad7b26ded6d", "container.image.repository": "docker.io/library/nginx"})
        if rec["evt.type"] == "execve":
            rec["proc.cmdline"] = f"{rec['proc.name']} -x"
            rec["proc.args"] = "-x"
        out.append(ctx(**{k.replace(".", "__"): v for k, v in rec.items()}))
    return out


@pytest.mark.parametrize("matching", ["first", "all"])
def test_dispatch_equals_rule_by_rule(matching: str, falco_rules: Path) -> None:
    res = load_rules([str(falco_rules / "falco_rules.yaml")], EngineOptions(rule_matching=matching))
    assert res.engine is not None
    hits = 0
    for c in random_events(3000):
        got = [m.name for m in res.engine.process(c)]
        want = reference(res.engine, EventContext(c.event), matching == "first")
        assert got == want, (c.event, got, want)
        hits += bool(got)
    assert hits > 50


def test_fold_evt_type() -> None:
    e = parse_condition("evt.type in (open, openat) and proc.name = x")
    assert fold_evt_type(e, "close") is False
    folded = fold_evt_type(e, "open")
    assert not isinstance(folded, bool) and folded.op == "=" and folded.lhs.token == "proc.name"  # type: ignore[union-attr]
    assert fold_evt_type(parse_condition("evt.type != open or proc.name = x"), "close") is True
    assert fold_evt_type(parse_condition("not evt.type = open"), "open") is False


def test_broken_extraction_falls_back_rule_by_rule() -> None:
    from lanner.model import Event, Process

    from .helpers import load

    text = """
- rule: a
  desc: d
  condition: evt.type = open and proc.cmdline contains x
  output: o
  priority: INFO
- rule: b
  desc: d
  condition: evt.type = open and proc.name = cat
  output: o
  priority: INFO
"""
    res = load(text)
    assert res.engine is not None
    # a malformed event: an argument that is not a string makes proc.cmdline's extraction raise
    bad = EventContext(Event(type="open", proc=Process(comm="cat", args=("a", 1))))  # type: ignore[arg-type]
    assert [m.name for m in res.engine.process(bad)] == ["b"]
    assert res.engine.errors_total == 1
