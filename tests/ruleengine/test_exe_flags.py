# SPDX-License-Identifier: Apache-2.0
"""execve's `flags` parameter renders through Falco's execve_flags table, from the executable's recorded facts."""

from __future__ import annotations

import pytest

from ruleengine.events_json import event_from_fields
from ruleengine.fields import EventContext, resolve_field

CONTAINER = {"container.id": "abcdefabcdef", "container.name": "web"}


@pytest.mark.parametrize(
    ("facts", "rendered", "raw"),
    [
        (
            {"proc.is_exe_writable": True, "proc.is_exe_upper_layer": False, **CONTAINER},
            "EXE_WRITABLE|EXE_LOWER_LAYER",
            9,
        ),
        ({"proc.is_exe_writable": False, "proc.is_exe_upper_layer": True, **CONTAINER}, "EXE_UPPER_LAYER", 2),
        ({"proc.is_exe_writable": True, "proc.is_exe_upper_layer": False}, "EXE_WRITABLE", 1),
        ({"proc.is_exe_writable": False, "proc.is_exe_upper_layer": False}, "0", 0),
        ({"proc.is_exe_from_memfd": True, "proc.is_exe_upper_layer": False, **CONTAINER}, "EXE_FROM_MEMFD", 4),
        ({}, None, None),
    ],
)
def test_execve_flags(facts: dict[str, object], rendered: str | None, raw: int | None) -> None:
    ctx = EventContext(event_from_fields({"evt.type": "execve", "proc.name": "bash", **facts}))
    assert ctx.get(resolve_field("syscall", "evt.arg.flags")) == rendered
    assert ctx.get(resolve_field("syscall", "evt.rawarg.flags")) == raw


def test_recorded_flags_win() -> None:
    ctx = EventContext(event_from_fields({"evt.type": "execve", "proc.name": "bash", "evt.arg.flags": "EXE_WRITABLE"}))
    assert ctx.get(resolve_field("syscall", "evt.arg.flags")) == "EXE_WRITABLE"
