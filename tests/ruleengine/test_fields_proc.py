# SPDX-License-Identifier: Apache-2.0
"""proc.* and thread.* fields, including ancestors and the no-value semantics."""

from __future__ import annotations

from lanner.model import Event, EventTiming, Process
from ruleengine.fields import EventContext, resolve_field
from tests.ruleengine.fields_util import text, value

SHELL = Process(
    pid=200,
    tid=201,
    vpid=5,
    comm="bash",
    exe="/bin/bash",
    exepath="/usr/bin/bash",
    args=("-c", "cat  /etc/shadow"),
    cwd="/root",
    env=("HOME=/root", "TERM= xterm "),
    sid=100,
    vpgid=5,
    tty=34816,
    start_ns=1_000,
    cap_effective=(1 << 21) | (1 << 13) | 1,
    cap_permitted=0,
)
PARENT = Process(
    pid=100, comm="sshd", exe="sshd: root@pts/0", exepath="/usr/sbin/sshd", args=("-D",), sid=100, start_ns=500
)
INIT = Process(pid=1, comm="systemd", exepath="/usr/lib/systemd/systemd", sid=1)
EV = Event(type="execve", proc=SHELL, ancestors=(PARENT, INIT), timing=EventTiming(event_ns=6_000))


def test_identity() -> None:
    assert value(EV, "proc.name") == "bash"
    assert value(EV, "proc.exe") == "/bin/bash"
    assert value(EV, "proc.exepath") == "/usr/bin/bash"
    assert value(EV, "proc.pid") == 200
    assert value(EV, "thread.tid") == 201
    assert value(EV, "thread.ismain") is False
    assert value(EV, "proc.vpid") == 5
    assert value(Event(type="open", proc=Process(pid=3)), "proc.vpid") is None
    assert value(EV, "proc.tty") == 34816


def test_args_and_cmdline() -> None:
    assert value(EV, "proc.args") == "-c cat  /etc/shadow"
    assert value(EV, "proc.cmdline") == "bash -c cat  /etc/shadow"  # comm, not argv[0]
    assert value(EV, "proc.args", "0") == "-c"
    assert value(EV, "proc.args", "1") == "cat  /etc/shadow"
    assert value(EV, "proc.args", "7") == ""  # out of range: empty string, not absent
    assert value(Event(type="execve", proc=Process(comm="ls")), "proc.cmdline") == "ls"  # no trailing space
    assert value(EV, "proc.exeline") == "/bin/bash -c cat  /etc/shadow"


def test_env_and_cwd() -> None:
    assert value(EV, "proc.env") == "HOME=/root TERM= xterm "
    assert value(EV, "proc.env", "TERM") == "xterm"
    assert value(EV, "proc.env", "NOPE") == ""
    assert value(EV, "proc.cwd") == "/root/"


def test_parent_and_ancestors() -> None:
    assert value(EV, "proc.pname") == "sshd"
    assert value(EV, "proc.pexe") == "sshd: root@pts/0"
    assert value(EV, "proc.pexepath") == "/usr/sbin/sshd"
    assert value(EV, "proc.pcmdline") == "sshd -D"
    assert value(EV, "proc.ppid") == 100
    assert value(EV, "proc.aname", "0") == "bash"
    assert value(EV, "proc.aname", "1") == "sshd"
    assert value(EV, "proc.aname", "2") == "systemd"
    assert value(EV, "proc.aname", "3") is None
    assert text(EV, "proc.aname", "3") == "<NA>"
    assert value(EV, "proc.aexepath", "2") == "/usr/lib/systemd/systemd"
    assert value(EV, "proc.apid", "2") == 1
    orphan = Event(type="execve", proc=SHELL)
    assert value(orphan, "proc.pname") is None  # parent unknown: no value, every comparison false


def test_index_less_ancestor_fields() -> None:
    bound = resolve_field("syscall", "proc.aname")
    assert bound.any_of
    ctx = EventContext(EV)
    assert ctx.get(bound) == ("sshd", "systemd")  # the process itself is not included
    assert bound.render(ctx.get(bound)) == "sshd systemd"
    assert bound.to_json(ctx.get(bound)) == "sshd systemd"
    empty = EventContext(Event(type="execve", proc=SHELL))
    assert empty.get(bound) == ()
    assert bound.render(empty.get(bound)) == "<NA>" and bound.to_json(empty.get(bound)) is None


def test_session_and_group() -> None:
    assert value(EV, "proc.sid") == 100
    assert value(EV, "proc.sname") == "sshd"  # the process with pid == sid
    assert value(EV, "proc.is_vpgid_leader") is True
    assert value(EV, "proc.is_sid_leader") is False
    assert value(Event(type="open", proc=Process(sid=-1)), "proc.sname") == ""


def test_times_and_exe_inode() -> None:
    assert value(EV, "proc.duration") == 5_000
    assert value(Event(type="open", proc=Process(comm="x")), "proc.duration") is None
    exe = Process(
        comm="x",
        start_ns=10_000,
        exe_ino=77,
        exe_ino_ctime=4_000,
        exe_ino_mtime=3_000,
        is_exe_upper_layer=True,
        is_exe_from_memfd=False,
    )
    ev = Event(type="execve", proc=exe)
    assert value(ev, "proc.exe_ino") == 77
    assert value(ev, "proc.exe_ino.ctime") == 4_000
    assert value(ev, "proc.exe_ino.mtime") == 3_000
    assert value(ev, "proc.exe_ino.ctime_duration_proc_start") == 6_000
    assert value(ev, "proc.is_exe_upper_layer") is True
    assert value(ev, "proc.is_exe_from_memfd") is False
    assert value(Event(type="execve", proc=Process(comm="x")), "proc.is_exe_writable") is None


def test_capabilities() -> None:
    assert value(EV, "thread.cap_effective") == "CAP_CHOWN CAP_NET_RAW CAP_SYS_ADMIN"  # bit order, one space
    assert value(EV, "thread.cap_permitted") == ""  # empty set: empty string
    assert value(EV, "thread.cap_inheritable") is None  # unknown: no value
    assert value(Event(type="x", proc=Process(cap_effective=(1 << 41) - 1 | 1 << 50)), "thread.cap_effective").endswith(
        "CAP_BPF CAP_CHECKPOINT_RESTORE"
    )


def test_fake_thread() -> None:
    ev = Event(type="open", proc=Process(pid=-1), proc_incomplete=True)
    assert value(ev, "proc.name") == "<NA>"  # the literal string: comparisons still work on it
