# SPDX-License-Identifier: Apache-2.0
"""Output formats, the text alert line, Falco's JSON alert and append_output."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from lanner.model import Event
from ruleengine.events_json import event_from_fields
from ruleengine.fields import EventContext
from ruleengine.output import (
    AppendOutput,
    OutputFormatError,
    OutputOptions,
    alert_to_json,
    parse_output,
    render_alert,
)
from ruleengine.priority import Priority

NS = 1718000011726060287  # 2024-06-10T06:13:31.726060287Z
NO_SUGGESTED = OutputOptions(suggested_output=False)


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.delenv("TZ")
    time.tzset()


def shadow_event() -> Event:
    return event_from_fields(
        {
            "evt.type": "openat",
            "evt.rawtime": NS,
            "proc.name": "cat",
            "proc.cmdline": "cat /etc/shadow",
            "fd.name": "/etc/shadow",
            "evt.arg.flags": "O_RDONLY|O_CLOEXEC",
            "proc.aname[2]": "bash",
            "user.name": "root",
            "user.loginuid": -1,
            "evt.hostname": "host1",
        }
    )


def alert(
    fmt: str,
    ev: Event | None = None,
    options: OutputOptions = NO_SUGGESTED,
    tags: tuple[str, ...] = ("filesystem", "T1555"),
    source: str = "syscall",
) -> object:
    parsed = parse_output(fmt, source)
    return render_alert(
        "Read sensitive file",
        Priority.WARNING,
        tags,
        source,
        parsed,
        EventContext(ev or shadow_event()),
        "host1",
        options,
    )


def test_tokens_and_longest_prefix() -> None:
    fmt = parse_output("f=%fd.name) u=%user.name: %evt.arg.flags %proc.aname[2] %12proc.name|", "syscall")
    assert [t.key for t in fmt.tokens] == ["fd.name", "user.name", "evt.arg.flags", "proc.aname[2]", "proc.name"]
    assert fmt.tokens[-1].width == 12
    tail = parse_output("%proc.name.suffix", "syscall")  # no such field: the longest existing prefix wins
    assert [t.key for t in tail.tokens] == ["proc.name"] and tail.segments[-1] == ".suffix"


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ("ends with %", "formatting cannot end with a %", 11),
        ("x=%proc.nmae", "invalid formatting token", 3),
        ("x=%(proc.name)", "invalid formatting token", 3),  # not Falco syntax
        ("%evt.arg.bogus", "invalid formatting token", 1),
        ("%ka.verb", "invalid formatting token", 1),  # a k8s_audit field in a syscall rule
    ],
)
def test_errors_carry_the_column(text: str, message: str, column: int) -> None:
    with pytest.raises(OutputFormatError) as info:
        parse_output(text, "syscall")
    assert message in str(info.value) and info.value.column == column


def test_text_line() -> None:
    a = alert(
        "Sensitive file opened (file=%fd.name flags=%evt.arg.flags gp=%proc.aname[2] ggp=%proc.aname[3] "
        "loginuid=%user.loginuid %5proc.name|%2fd.name|)"
    )
    assert a.output == (
        "06:13:31.726060287: Warning Sensitive file opened (file=/etc/shadow "  # type: ignore[attr-defined]
        "flags=O_RDONLY|O_CLOEXEC gp=bash ggp=<NA> loginuid=-1 cat  |/e|)"
    )
    assert a.message.startswith("Sensitive file opened")  # type: ignore[attr-defined]


def test_iso8601_prefix_and_local_time(monkeypatch: pytest.MonkeyPatch) -> None:
    iso = alert("x", options=OutputOptions(suggested_output=False, time_format_iso_8601=True))
    assert iso.output == "2024-06-10T06:13:31.726060287+0000: Warning x"  # type: ignore[attr-defined]
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    assert alert("x").output == "11:43:31.726060287: Warning x"  # type: ignore[attr-defined]


def test_falco_json_alert() -> None:
    a = alert(
        "Sensitive file opened (file=%fd.name gp=%proc.aname[2] ggp=%proc.aname[3] uid=%user.loginuid "
        "read=%evt.is_open_read)"
    )
    line = alert_to_json(a)  # type: ignore[arg-type]
    doc = json.loads(line)
    assert list(doc) == ["hostname", "output", "output_fields", "priority", "rule", "source", "tags", "time"]
    assert " " not in line.split('"output"')[0]  # compact separators
    assert doc["hostname"] == "host1" and doc["priority"] == "Warning" and doc["source"] == "syscall"
    assert doc["rule"] == "Read sensitive file" and doc["tags"] == ["T1555", "filesystem"]
    assert doc["time"] == "2024-06-10T06:13:31.726060287Z"
    assert doc["output_fields"] == {
        "evt.time": NS,
        "fd.name": "/etc/shadow",
        "proc.aname[2]": "bash",
        "proc.aname[3]": None,
        "user.loginuid": -1,
        "evt.is_open_read": True,
    }
    assert list(doc["output_fields"]) == sorted(doc["output_fields"])
    assert doc["output"].startswith("06:13:31.726060287: Warning Sensitive file opened")


def test_json_include_options() -> None:
    a = alert("x %proc.name")
    opts = OutputOptions(
        json_include_output_property=False,
        json_include_tags_property=False,
        json_include_message_property=True,
        json_include_output_fields_property=False,
    )
    doc = json.loads(alert_to_json(a, opts))  # type: ignore[arg-type]
    assert sorted(doc) == ["hostname", "message", "priority", "rule", "source", "time"]
    assert doc["message"] == "x cat"


def test_suggested_output_on_syscall_rules() -> None:
    a = alert("x", options=OutputOptions())
    assert a.output.endswith(  # type: ignore[attr-defined]
        "Warning x container_id=host container_name=host container_image_repository= container_image_tag= "
        "k8s_pod_name=<NA> k8s_ns_name=<NA>"
    )
    fields = a.output_fields  # type: ignore[attr-defined]
    assert fields["container.id"] == "host" and fields["k8s.pod.name"] is None
    pod = event_from_fields(
        {
            "evt.type": "execve",
            "container.id": "3ad7b26ded6d",
            "container.name": "web",
            "container.image": "nginx:1.25",
            "k8s.pod.name": "web-1",
            "k8s.ns.name": "prod",
        }
    )
    b = alert("x", ev=pod, options=OutputOptions())
    assert b.message.endswith(  # type: ignore[attr-defined]
        "container_id=3ad7b26ded6d container_name=web container_image_repository=nginx container_image_tag=1.25 "
        "k8s_pod_name=web-1 k8s_ns_name=prod"
    )
    audit = event_from_fields({"kind": "Event", "verb": "get", "stageTimestamp": "2024-06-10T06:13:31Z"}, "k8s_audit")
    c = alert("verb=%ka.verb", ev=audit, options=OutputOptions(), source="k8s_audit")
    assert c.message == "verb=get"  # type: ignore[attr-defined]


def test_append_output_matching() -> None:
    extra = AppendOutput(
        match_tags=("filesystem",),
        extra_output="pid=%proc.pid",
        extra_fields=("proc.exepath", "where=%fd.directory/%fd.filename"),
    )
    other = AppendOutput(match_rule="Other rule", extra_output="NEVER")
    k8s_only = AppendOutput(match_source="k8s_audit", extra_output="NEVER")
    opts = OutputOptions(suggested_output=False, append_output=(extra, other, k8s_only))
    a = alert("x", options=opts)
    assert a.message == "x pid=0"  # type: ignore[attr-defined]
    fields = a.output_fields  # type: ignore[attr-defined]
    assert fields["proc.pid"] == 0 and fields["proc.exepath"] == "" and fields["where"] == "/etc/shadow"
    untagged = alert("x", options=opts, tags=("network",))
    assert untagged.message == "x"  # type: ignore[attr-defined]


def test_control_characters_are_escaped() -> None:
    ev = event_from_fields({"evt.type": "execve", "proc.name": "sh", "proc.args": ["-c", "echo a\nb\tc"]})
    a = alert("cmd=%proc.cmdline", ev=ev)
    assert a.output.endswith("cmd=sh -c echo a\\nb\\tc")  # type: ignore[attr-defined]


def test_transformers_and_deprecated_container_info() -> None:
    ev = event_from_fields({"evt.type": "execve", "proc.name": "Bash", "proc.exepath": "/usr/bin/Bash"})
    a = alert("%tolower(proc.name) %toupper(proc.name) %basename(proc.exepath) %len(proc.name)%container.info|", ev=ev)
    assert a.message == "bash BASH Bash 4|"  # type: ignore[attr-defined]
    fields = a.output_fields  # type: ignore[attr-defined]
    assert fields["tolower(proc.name)"] == "bash" and fields["len(proc.name)"] == 4


def test_k8s_audit_alert_json() -> None:
    audit = event_from_fields(
        {
            "kind": "Event",
            "verb": "create",
            "user": {"username": "alice"},
            "objectRef": {"resource": "pods"},
            "requestObject": {"spec": {"containers": [{"image": "nginx"}, {"image": "x"}]}},
            "stageTimestamp": "2024-06-10T06:13:31.726060287Z",
        },
        "k8s_audit",
    )
    a = render_alert(
        "Create pod",
        Priority.INFORMATIONAL,
        ("k8s",),
        "k8s_audit",
        parse_output("user=%ka.user.name images=%ka.req.pod.containers.image reason=%ka.auth.reason", "k8s_audit"),
        EventContext(audit),
        "h",
        OutputOptions(),
    )
    assert a.message == "user=alice images=(nginx,x) reason=<NA>"
    doc = json.loads(alert_to_json(a))
    assert doc["priority"] == "Informational" and doc["source"] == "k8s_audit"
    assert doc["output_fields"] == {
        "evt.time": NS,
        "ka.user.name": "alice",
        "ka.req.pod.containers.image": ["nginx", "x"],
        "ka.auth.reason": None,
    }
