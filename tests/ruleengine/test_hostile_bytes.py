# SPDX-License-Identifier: Apache-2.0
"""Bytes a process chose (not UTF-8, controls, NUL-adjacent, huge) never make evaluation or alerting raise."""

from __future__ import annotations

import functools
import json

import pytest

from lanner.convert import event_from_pb, event_to_pb
from lanner.model import Arg, Event, Fd, FdType, Process
from lanner.text import from_bytes
from lanner.v1 import alert_pb2, event_pb2
from ruleengine.engine import Engine, EngineOptions
from ruleengine.fields import EventContext
from ruleengine.service import alert_to_pb
from tests.ruleengine.helpers import load

OPERATORS = [
    "proc.args contains x",
    "proc.cmdline startswith cat",
    "fd.name endswith shadow",
    "fd.name glob '/tmp/*'",
    "fd.name regex '.*(a+)+$'",
    "fd.name pmatch (/tmp)",
    "fd.name in (/etc/shadow, /tmp/x)",
    "proc.env icontains secret",
    "proc.exepath bcontains 2f",
    "proc.cwd = /tmp/",
    "evt.arg.name contains tmp",
    "proc.name startswith c",
    "proc.aname[1] = cat",
    "proc.args exists",
]

OUTPUT = (
    "cmd=%proc.cmdline args=%proc.args exe=%proc.exe path=%proc.exepath cwd=%proc.cwd env=%proc.env "
    "file=%fd.name raw=%fd.nameraw dir=%fd.directory fn=%fd.filename evt=%evt.args arg=%evt.arg.name "
    "data=%evt.arg.data parent=%proc.pname anc=%proc.aname[1] name=%proc.name tl=%tolower(proc.name) "
    "b=%basename(fd.name) n=%len(proc.cmdline)"
)

BLOBS = [b"\xff", b"\xfe\xff", b"a\x00b", b"\x01\x1b[31m\r\n", b"\xed\xa0\x80", b"\xc3(", b"a" * 4096]


@functools.cache
def engine() -> Engine:
    res = load(rules(), EngineOptions(rule_matching="all"))
    assert res.engine is not None, [e.format() for e in res.errors]
    return res.engine


def rules() -> str:
    out = []
    for i, cond in enumerate(OPERATORS):
        out.append(
            f"- rule: r{i}\n  desc: d\n  condition: evt.type = openat and {cond}\n"
            f"  output: '{OUTPUT}'\n  priority: WARNING\n"
        )
    out.append(
        f"- rule: shadow\n  desc: d\n  condition: evt.type = openat and fd.name = /etc/shadow\n"
        f"  output: '{OUTPUT}'\n  priority: WARNING\n"
    )
    return "\n".join(out)


def event(blob: bytes, path: bytes) -> Event:
    t = from_bytes
    proc = Process(
        pid=9,
        tid=9,
        comm=t(b"cat" + blob[:4]),
        exe=t(b"cat" + blob),
        exepath=t(b"/usr/bin/" + blob),
        args=(t(blob), t(path), t(b"x" + blob)),
        cwd=t(b"/tmp/" + blob + b"/"),
        env=(t(b"SECRET=" + blob),),
    )
    fd = Fd(num=3, type=FdType.FILE, path=t(path), path_raw=t(path))
    args = (Arg("fd", 3), Arg("name", t(path)), Arg("data", blob))
    ev = Event(type="openat", proc=proc, ancestors=(proc,), fd=fd, args=args)
    # Through the wire format and back, as in the pipeline.
    return event_from_pb(event_pb2.Event.FromString(event_to_pb(ev).SerializeToString()))


@pytest.mark.parametrize("blob", BLOBS)
@pytest.mark.parametrize("path", [b"/etc/shadow", b"/tmp/\xff" + b"a" * 40, b"/tmp/x\x01\xff"])
def test_evaluation_and_alerts_never_raise(blob: bytes, path: bytes) -> None:
    ctx = EventContext(event(blob, path))
    matches = engine().process(ctx)
    assert ("shadow" in {m.name for m in matches}) == (path == b"/etc/shadow")
    for m in matches:
        record = m.render(ctx, "host")
        pb = alert_to_pb(record, None)
        back = alert_pb2.Alert.FromString(pb.SerializeToString())
        json.loads(back.output_fields_json)
        assert "\\udc" not in back.output_fields_json


def test_undecodable_bytes_render_as_replacement_characters() -> None:
    ctx = EventContext(event(b"\xff\xfe", b"/etc/shadow"))
    shadow = [m for m in engine().process(ctx) if m.name == "shadow"]
    record = shadow[0].render(ctx, "host")
    assert "cmd=cat\ufffd\ufffd \ufffd\ufffd /etc/shadow x\ufffd\ufffd" in record.message
    # A raw buffer (evt.arg.data) renders like Falco's: printable ASCII kept, every other byte '.'.
    assert "data=.." in record.message
    fields = json.loads(alert_to_pb(record, None).output_fields_json)
    assert fields["proc.exepath"] == "/usr/bin/\ufffd\ufffd" and fields["fd.name"] == "/etc/shadow"


def test_rules_compare_the_original_bytes() -> None:
    # A rule literal can only equal valid text; the kernel's bytes are kept, so prefixes still match.
    res = load(
        "- rule: r\n  desc: d\n  condition: evt.type = openat and fd.name startswith /tmp/bad\n"
        "  output: f=%fd.name\n  priority: WARNING\n"
    )
    assert res.engine is not None
    ctx = EventContext(event(b"", b"/tmp/bad\xff\xfe"))
    assert [m.name for m in res.engine.process(ctx)] == ["r"]
