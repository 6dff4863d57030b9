# SPDX-License-Identifier: Apache-2.0
"""JSON-lines events keyed by Falco field names <-> lanner.model.Event."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lanner.model import Arg, Container, Event, EventTiming, Fd, FdType, K8s, L4Proto, Process
from ruleengine.events_json import EventFormatError, event_from_fields, event_to_fields, read_events
from tests.ruleengine.fields_util import value


def test_contract_example() -> None:
    ev = event_from_fields(
        {
            "evt.type": "openat",
            "proc.name": "cat",
            "fd.name": "/etc/shadow",
            "evt.arg.flags": "O_RDONLY",
            "proc.aname[2]": "sshd",
        }
    )
    assert ev.type == "openat" and ev.proc.comm == "cat"
    assert ev.fd is not None and ev.fd.path == "/etc/shadow" and ev.fd.type is FdType.FILE
    assert ev.arg("flags") == 0  # kernel numbering
    assert ev.ancestors[1].comm == "sshd" and ev.ancestors[0].comm == ""
    # Derived fields come out of the same extractors as for live events.
    assert value(ev, "fd.directory") == "/etc" and value(ev, "fd.filename") == "shadow"
    assert value(ev, "evt.is_open_read") is True
    assert value(ev, "proc.aname", "2") == "sshd"


def test_derived_fields_fill_missing_facts() -> None:
    ev = event_from_fields(
        {
            "evt.type": "openat",
            "fd.directory": "/etc",
            "fd.filename": "shadow",
            "evt.is_open_read": True,
            "proc.cmdline": "cat /etc/shadow",
            "evt.res": "ENOENT",
            "proc.pname": "bash",
            "user.name": "root",
            "thread.cap_effective": "CAP_SYS_ADMIN",
        }
    )
    assert value(ev, "fd.name") == "/etc/shadow"
    assert ev.proc.comm == "cat" and ev.proc.args == ("/etc/shadow",)
    assert ev.res == -2 and value(ev, "evt.rawres") == -2
    assert value(ev, "user.uid") == 0
    assert ev.proc.cap_effective == 1 << 21
    write = event_from_fields(
        {"evt.type": "open", "fd.name": "/etc/x", "evt.is_open_write": True, "evt.is_open_read": True}
    )
    assert value(write, "evt.arg.flags") == "O_RDWR"


def test_sockets() -> None:
    ev = event_from_fields(
        {
            "evt.type": "connect",
            "fd.name": "10.0.0.1:3333->1.2.3.4:80",
            "fd.l4proto": "udp",
            "fd.sip": "1.2.3.4",
            "fd.snet": "1.2.3.0/24",
            "fd.typechar": "4",
        }
    )
    assert ev.fd is not None and ev.fd.type is FdType.IPV4 and ev.fd.l4proto is L4Proto.UDP
    assert ev.fd.server_port == 80 and ev.fd.client_ip == bytes([10, 0, 0, 1])
    v6 = event_from_fields(
        {"evt.type": "connect", "fd.sip": "2001:db8::1", "fd.sport": 443, "fd.cip": "::1", "fd.cport": 5555}
    )
    assert value(v6, "fd.name") == "::1:5555->2001:db8::1:443" and value(v6, "fd.typechar") == "6"


def test_container_and_pod() -> None:
    ev = event_from_fields(
        {
            "evt.type": "execve",
            "container.id": "3ad7b26ded6d",
            "container.image": "nginx:1.25",
            "k8s.ns.name": "prod",
            "container.mount.dest[/var/run/docker.sock]": "/var/run/docker.sock",
        }
    )
    assert value(ev, "container.image.repository") == "nginx" and value(ev, "container.image.tag") == "1.25"
    assert value(ev, "k8s.ns.name") == "prod" and value(ev, "container.privileged") is False
    assert value(ev, "container.mount.dest", "/var/run/docker.sock") == "/var/run/docker.sock"
    pending = event_from_fields({"evt.type": "execve", "container.id": "3ad7b26ded6d"})
    assert value(pending, "container.name") is None
    assert value(event_from_fields({"evt.type": "execve"}), "container.id") == "host"


def test_null_means_no_value() -> None:
    ev = event_from_fields({"evt.type": "execve", "proc.pname": None, "fd.name": None})
    assert value(ev, "proc.pname") is None
    # null is "absent", not "must be empty": what the other fields give is derived
    assert (
        value(event_from_fields({"evt.type": "execve", "proc.aname[1]": "bash", "proc.pname": None}), "proc.pname")
        == "bash"
    )


@pytest.mark.parametrize(
    ("record", "field", "message"),
    [
        ({"proc.name": "x"}, "evt.type", "missing"),
        ({"evt.type": "open", "proc.nmae": "x"}, "proc.nmae", "unknown field 'proc.nmae'"),
        ({"evt.type": "open", "proc.name[2]": "x"}, "proc.name[2]", "does not take an argument"),
        ({"evt.type": "open", "proc.pid": "abc"}, "proc.pid", "expected an integer"),
        ({"evt.type": "open", "fd.sip": "1.2.3.400"}, "fd.sip", "not a valid IP address"),
        ({"evt.type": "open", "fd.is_server": "maybe"}, "fd.is_server", "expected true or false"),
    ],
)
def test_errors_name_the_field(record: dict[str, object], field: str, message: str) -> None:
    with pytest.raises(EventFormatError) as info:
        event_from_fields(record)
    assert info.value.field == field
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("record", "field", "given"),
    [
        ({"evt.type": "openat", "evt.arg.flags": "O_FOO"}, "evt.arg.flags", "O_FOO"),
        ({"evt.type": "openat", "fd.name": "/etc/x", "fd.directory": "/tmp"}, "fd.directory", "/tmp"),
        ({"evt.type": "openat", "evt.arg.flags": "O_WRONLY", "evt.is_open_read": True}, "evt.is_open_read", True),
        ({"evt.type": "open", "fd.type": "socket"}, "fd.type", "socket"),
        ({"evt.type": "open", "evt.res": "EWHAT"}, "evt.res", "EWHAT"),
        ({"evt.type": "open", "thread.cap_effective": "CAP_FLY"}, "thread.cap_effective", "CAP_FLY"),
    ],
)
def test_given_values_win_and_are_never_fatal(record: dict[str, object], field: str, given: object) -> None:
    assert value(event_from_fields(record), field) == given


def test_read_events_names_path_and_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"evt.type": "execve", "proc.name": "bash"}\n\n{"evt.type": "open", "fd.nmae": "/x"}\n')
    events = read_events(str(path))
    assert next(events).proc.comm == "bash"
    with pytest.raises(EventFormatError, match=rf"{path}:3: field 'fd.nmae': unknown field"):
        next(events)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"evt.type": "open",\n')
    with pytest.raises(EventFormatError, match=rf"{bad}:1: invalid JSON at column"):
        list(read_events(str(bad)))


def test_audit_lines(tmp_path: Path) -> None:
    audit = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "verb": "create",
        "stageTimestamp": "2024-06-10T06:13:31.726060Z",
        "user": {"username": "alice"},
    }
    path = tmp_path / "audit.jsonl"
    path.write_text(json.dumps(audit) + "\n" + json.dumps({"kind": "EventList", "items": [audit, audit]}) + "\n")
    events = list(read_events(str(path)))
    assert len(events) == 3 and all(e.source == "k8s_audit" for e in events)
    assert events[0].timing.event_ns == 1718000011726060000
    assert value(events[0], "ka.user.name", source="k8s_audit") == "alice"
    assert event_to_fields(events[0]) == audit
    with pytest.raises(EventFormatError, match="stageTimestamp"):
        event_from_fields({"kind": "Event", "verb": "get"}, "k8s_audit")


def test_round_trip_of_a_live_style_event() -> None:
    live = Event(
        type="openat",
        res=3,
        cpu=2,
        timing=EventTiming(event_ns=1718000011726060287),
        proc=Process(
            pid=200,
            tid=200,
            vpid=200,
            comm="cat",
            exe="cat",
            exepath="/usr/bin/cat",
            args=("/etc/shadow",),
            cwd="/root/",
            uid=0,
            gid=0,
            loginuid=1000,
            tty=34816,
            cap_effective=(1 << 41) - 1,
            cap_permitted=(1 << 41) - 1,
            cap_inheritable=0,
            user_name="root",
            group_name="root",
            start_ns=1718000011000000000,
        ),
        ancestors=(
            Process(pid=100, comm="bash", exepath="/usr/bin/bash", args=("-i",)),
            Process(pid=50, comm="sshd", exe="sshd: alice@pts/0"),
        ),
        fd=Fd(num=3, type=FdType.FILE, path="/etc/shadow", open_flags=0o2000000),
        args=(Arg("dirfd", -100), Arg("name", "/etc/shadow"), Arg("flags", 0o2000000), Arg("mode", 0)),
        container=Container(
            id="3ad7b26ded6d",
            name="web",
            image="nginx:1",
            image_repository="nginx",
            image_tag="1",
            privileged=False,
            metadata_complete=True,
        ),
        k8s=K8s(pod_name="web-1", ns_name="prod"),
    )
    record = event_to_fields(live)
    assert json.loads(json.dumps(record)) == record  # plain JSON
    back = event_from_fields(record)
    for name in (
        "proc.cmdline",
        "proc.pcmdline",
        "proc.aexe[2]",
        "evt.arg.flags",
        "fd.name",
        "user.loginuid",
        "thread.cap_effective",
        "container.image.repository",
        "k8s.ns.name",
        "evt.time",
        "proc.duration",
        "evt.res",
        "fd.num",
        "evt.args",
    ):
        n, _, arg = name.partition("[")
        assert value(back, n, arg.rstrip("]") or None) == value(live, n, arg.rstrip("]") or None), name


def test_read_events_numbers_events(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text('{"evt.type": "open"}\n{"evt.type": "open", "evt.num": 42}\n{"evt.type": "open"}\n')
    assert [value(e, "evt.num") for e in read_events(str(path))] == [1, 42, 3]  # never 0: evt.num=0 is never_true


def test_resolved_domain_names() -> None:
    ev = event_from_fields(
        {
            "evt.type": "connect",
            "fd.sip": "10.96.0.1",
            "fd.sport": 443,
            "fd.sip.name": "kubernetes.default.svc.cluster.local",
        }
    )
    assert value(ev, "fd.sip.name") == ("kubernetes.default.svc.cluster.local",)  # any of its names
    assert value(ev, "fd.cip.name") is None
    assert "lanner" not in str(value(ev, "evt.args"))
    assert event_to_fields(ev)["fd.sip.name"] == "kubernetes.default.svc.cluster.local"


def test_round_trip_keeps_every_fact() -> None:
    from types import MappingProxyType

    from lanner.model import EventIdentity, Mount

    live = Event(
        type="connect",
        res=-115,
        cpu=1,
        identity=EventIdentity(node="n1", seq=7),
        timing=EventTiming(event_ns=1718000011726060287),
        proc=Process(
            pid=10,
            tid=11,
            vpid=1,
            vtid=2,
            sid=10,
            pgid=10,
            vpgid=1,
            comm="curl",
            exe="curl",
            exepath="/usr/bin/curl",
            args=("-s", "a b"),
            cwd="/srv/",
            env=("A=1", "B=2"),
            uid=1000,
            gid=1000,
            loginuid=0xFFFFFFFF,
            user_name="app",
            user_homedir="/home/app",
            user_shell="/bin/sh",
            group_name="app",
            cap_effective=0,
            cap_permitted=1 << 12,
            cap_inheritable=None,
            tty=0,
            start_ns=1718000000000000000,
            cgroups=("cpu=/x",),
            is_exe_writable=False,
            is_exe_upper_layer=True,
            is_exe_from_memfd=False,
            exe_ino=5,
            exe_ino_ctime=1,
            exe_ino_mtime=2,
            pidns_init_start_ns=3,
            fd_open_count=4,
            fd_limit=1024,
            vm_size_kb=10,
            vm_rss_kb=5,
            vm_swap_kb=0,
        ),
        ancestors=(Process(pid=9, comm="sh", exe="/bin/sh", exepath="/bin/dash", args=("-c", "curl")),),
        fd=Fd(
            num=4,
            type=FdType.IPV4,
            client_ip=bytes([10, 0, 0, 2]),
            client_port=40000,
            server_ip=bytes([10, 96, 0, 1]),
            server_port=443,
            l4proto=L4Proto.TCP,
            is_server=False,
            connected=False,
        ),
        args=(Arg("tuple", "10.0.0.2:40000->10.96.0.1:443"), Arg("fd", 4), Arg("addr", "10.96.0.1:443")),
        container=Container(
            id="3ad7b26ded6d",
            full_id="3ad7b26ded6d" + "0" * 52,
            type="cri",
            name="c",
            image="r/x:1",
            image_repository="r/x",
            image_tag="1",
            image_digest="sha256:1",
            image_id="abc",
            privileged=False,
            labels=MappingProxyType({"l": "v"}),
            mounts=(Mount("/a", "/b", "", True, "private"),),
            ip="10.0.0.2",
            user="1000",
            host_pid=False,
            host_network=True,
            host_ipc=False,
            metadata_complete=True,
        ),
        k8s=K8s(
            pod_name="p",
            pod_uid="u",
            pod_sandbox_id="s" * 64,
            ns_name="ns",
            pod_labels=MappingProxyType({"app": "x"}),
            pod_ip="10.0.0.2",
        ),
    )
    back = event_from_fields(json.loads(json.dumps(event_to_fields(live))))
    # Only facts with no Falco field are lost (the start time of the container, boot ids...).
    assert back.proc == live.proc
    assert back.ancestors[0].exepath == "/bin/dash" and back.ancestors[0].args == ("-c", "curl")
    assert back.fd == live.fd
    assert back.container == live.container and back.k8s == live.k8s
    assert back.args == live.args and back.res == live.res and back.identity.seq == 7
