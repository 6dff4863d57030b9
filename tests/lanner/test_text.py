# SPDX-License-Identifier: Apache-2.0
"""Process-controlled bytes travel losslessly through the wire format and render safely."""

from __future__ import annotations

import json

import pytest

from collector.encode import EventEncoder
from lanner.convert import event_from_json_dict, event_from_pb, event_to_json_dict, event_to_pb
from lanner.model import Arg, Event, Fd, FdType, Process
from lanner.text import displayable, from_bytes, terminal_safe, to_bytes
from lanner.v1 import event_pb2

HOSTILE = [b"", b"plain", b"\xff", b"a\x00b", b"\xed\xa0\x80", b"\xc3(", "é€𝄞".encode(), bytes(range(256))]


@pytest.mark.parametrize("data", HOSTILE)
def test_every_byte_survives_text(data: bytes) -> None:
    assert to_bytes(from_bytes(data)) == data


def test_to_bytes_never_raises_on_foreign_surrogates() -> None:
    # A lone high surrogate can come from JSON ("\\ud800"), not from the kernel; it becomes U+FFFD.
    assert to_bytes("\ud800x\udcff") == "\ufffd".encode() + b"x\xff"


def test_displayable_is_valid_utf8() -> None:
    text = displayable(from_bytes(b"/tmp/\xff\xfe-\xc3\xa9"))
    assert text == "/tmp/\ufffd\ufffd-é"
    text.encode("utf-8")  # would raise on a lone surrogate


def test_terminal_safe_escapes_controls_and_bad_bytes() -> None:
    assert terminal_safe(from_bytes(b"a\x1b[31m\r\n\xff\xc2\x85b")) == "a\\x1b[31m\\r\\n\\xff\\x85b"


def hostile_event() -> Event:
    t = from_bytes
    proc = Process(
        pid=7,
        tid=7,
        comm=t(b"c\xffat"),
        exe=t(b"/bin/\xfe"),
        exepath=t(b"/usr/bin/\xff"),
        args=(t(b"\xff"), t(b"a\x01b"), t(b"x" * 4096), ""),
        cwd=t(b"/tmp/\x80/"),
        env=(t(b"K=\xff\xfe"),),
        cgroups=(t(b"0::/\xff"),),
    )
    fd = Fd(num=3, type=FdType.FILE, path=t(b"/tmp/\xff\x01"), path_raw=t(b"\xff\x01"), client_ip=b"\xff\x00\x00\x01")
    args = (Arg("name", t(b"/tmp/\xff\x01")), Arg("data", b"\xff\x00"), Arg("flags", 0))
    return Event(type="openat", proc=proc, ancestors=(proc,), fd=fd, args=args)


def test_hostile_event_round_trips_through_protobuf() -> None:
    ev = hostile_event()
    wire = event_to_pb(ev).SerializeToString()
    assert event_from_pb(event_pb2.Event.FromString(wire)) == ev
    # The collector's own encoder writes the same bytes, and those parse too.
    fast = EventEncoder().encode(ev)
    assert event_from_pb(event_pb2.Event.FromString(fast)) == ev


def test_hostile_event_round_trips_through_a_recording_line() -> None:
    ev = hostile_event()
    line = json.dumps(event_to_json_dict(event_to_pb(ev)))
    assert line.isascii() and '"comm": "c\\udcffat"' in line  # readable, not base64
    assert event_from_pb(event_from_json_dict(json.loads(line))) == ev


def test_proc_cmdline_keeps_every_byte() -> None:
    from collector.procfs import parse_cmdline

    raw = b"cat\0\xff\xfe\0\0a\x01\0"
    assert tuple(to_bytes(a) for a in parse_cmdline(raw)) == (b"cat", b"\xff\xfe", b"", b"a\x01")


def test_log_lines_carry_undecodable_bytes_as_json_escapes() -> None:
    import logging

    from lanner.logs import JsonFormatter

    record = logging.LogRecord("x", logging.WARNING, "f", 1, "opened", None, None)
    record.path = from_bytes(b"/tmp/\xff\n")
    line = JsonFormatter("t").format(record)
    line.encode("utf-8")
    assert json.loads(line)["path"] == from_bytes(b"/tmp/\xff\n") and "\n" not in line
