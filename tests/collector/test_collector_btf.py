# SPDX-License-Identifier: Apache-2.0
"""Kernel facts at exec: the BTF reader, the offsets it yields, the decoding of ``struct lanner_task``, and live
processes that exit at once still carrying their executable's inode, terminal, login uid and capabilities."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector import btf, kernel_offsets, layout, taskfacts
from collector.decode import Decoder
from collector.source import KernelSource
from lanner.model import Event
from tests.collector.collector_testlib import exec_record, fork_record
from tests.support.kernel_source import collect, drain, kernel_source


# ---------------------------------------------------------------- a BTF blob built by hand
def _blob(strings: list[str], types: list[bytes]) -> bytes:
    strtab = b"\0" + b"".join(s.encode() + b"\0" for s in strings)
    body = b"".join(types)
    hdr = struct.pack("<HBBIIIII", btf.MAGIC, 1, 0, 24, 0, len(body), len(body), len(strtab))
    return hdr + body + strtab


def _name(strings: list[str], s: str) -> int:
    return 1 + sum(len(x) + 1 for x in strings[: strings.index(s)])


def _t(name_off: int, kind: int, vlen: int, size_or_type: int, kind_flag: int = 0) -> bytes:
    return struct.pack("<III", name_off, kind << 24 | vlen | kind_flag << 31, size_or_type)


def test_btf_reader_finds_offsets_through_typedefs_anonymous_unions_and_enums() -> None:
    names = ["int", "u32_t", "outer", "a", "b", "inner_u", "c", "pid_type", "PIDTYPE_PID", "PIDTYPE_SID", "arr"]
    n = {s: _name(names, s) for s in names}
    types = [
        # 1: int (4 bytes)
        _t(n["int"], btf.KIND_INT, 0, 4) + struct.pack("<I", 32),
        # 2: typedef u32_t -> 1
        _t(n["u32_t"], btf.KIND_TYPEDEF, 0, 1),
        # 3: anonymous union { int c; } (size 4)
        _t(0, btf.KIND_UNION, 1, 4) + struct.pack("<III", n["c"], 1, 0),
        # 4: struct outer { u32_t a; <anon union> at byte 8; int b at bits 96; int arr[3] at 128 } (size 28)
        _t(n["outer"], btf.KIND_STRUCT, 4, 28)
        + struct.pack("<III", n["a"], 2, 0)
        + struct.pack("<III", 0, 3, 64)
        + struct.pack("<III", n["b"], 1, 96)
        + struct.pack("<III", n["arr"], 6, 128),
        # 5: enum pid_type
        _t(n["pid_type"], btf.KIND_ENUM, 2, 4) + struct.pack("<IIII", n["PIDTYPE_PID"], 0, n["PIDTYPE_SID"], 3),
        # 6: int[3]
        _t(0, btf.KIND_ARRAY, 0, 0) + struct.pack("<III", 1, 1, 3),
    ]
    types_, strings = btf.parse(_blob(names, types))
    b = btf.Btf(types_, strings)
    assert b.offset("outer", "a") == 0
    assert b.offset("outer", "c") == 8  # through the anonymous union
    assert b.offset("outer", "b") == 12
    assert b.size(b.member_type("outer", "a")) == 4  # typedef resolved
    assert b.size(b.member_type("outer", "arr")) == 12
    assert b.enum_value("pid_type", "PIDTYPE_SID") == 3
    with pytest.raises(btf.BtfError, match="no member 'zz'"):
        b.offset("outer", "zz")
    with pytest.raises(btf.BtfError, match="bad magic"):
        btf.parse(b"\0" * 32)


def test_without_btf_the_probes_are_built_without_struct_reads(tmp_path: Path) -> None:
    res = kernel_offsets.resolve(tmp_path / "vmlinux")
    assert not res.available
    assert "no BTF" in res.problem
    assert res.cflags() == ["-DLANNER_BTF=0"]


@pytest.mark.skipif(not btf.VMLINUX.exists(), reason="kernel without BTF")
def test_offsets_of_the_running_kernel_resolve() -> None:
    res = kernel_offsets.resolve()
    assert res.available, res.problem
    d = res.defines
    assert d["K_UPID_SIZE"] in (16, 12)
    assert d["K_PIDTYPE_SID"] == 3
    assert all(v >= 0 for k, v in d.items() if k not in ("K_TASK_LOGINUID", "K_OVL_UPPER_DELTA"))
    assert "-DLANNER_BTF=1" in res.cflags()


# ---------------------------------------------------------------- decoding struct lanner_task
def task_bytes(**kw: int | bytes) -> bytes:
    v: dict[str, int | bytes] = {name: 0 for name, _ in layout.TaskBody._fields_}  # type: ignore[misc]
    v["pcomm"] = b""
    v["flags"] = layout.TF_VALID
    v.update(kw)
    return layout.TASK.pack(*(v[name] for name, _ in layout.TaskBody._fields_))  # type: ignore[misc]


def test_tty_is_encoded_as_proc_stat_does() -> None:
    assert taskfacts.tty_nr(136, 3) == 34819  # /dev/pts/3
    assert taskfacts.tty_nr(4, 1) == 1025  # /dev/tty1
    assert taskfacts.tty_nr(136, 300) == (300 & 0xFF) | 136 << 8 | (300 & ~0xFF) << 12


def test_facts_of_a_process_gone_before_proc_was_read(decoder: Decoder) -> None:
    """The table's /proc is empty here, as for a process that exited within a millisecond: every fact comes from
    the record."""
    decoder.decode(fork_record(100, 200))
    task = task_bytes(
        exe_ino=4242,
        exe_ctime_ns=1_700_000_000_123,
        exe_mtime_ns=1_600_000_000_456,
        cap_inheritable=1,
        cap_permitted=0x3FF,
        cap_effective=0x3FF,
        sb_magic=taskfacts.OVERLAYFS_MAGIC,
        exe_mode=0o100755,
        exe_uid=1000,
        exe_gid=1000,
        euid=1000,
        egid=1000,
        loginuid=1000,
        tty=136 << 20 | 3,
        ppid=100,
        vpid=7,
        pidns=4026532000,
        mntns=4026532001,
        sid=100,
        pgid=200,
        flags=layout.TF_VALID | layout.TF_UPPER_KNOWN | layout.TF_UPPER | layout.TF_LOGINUID,
        pcomm=b"sh",
    )
    ev = decoder.decode(exec_record(200, "/tmp/dropped", ["dropped", "x"], uid=1000, gid=1000, task=task))
    assert isinstance(ev, Event)
    p = ev.proc
    assert (p.exe_ino, p.exe_ino_ctime, p.exe_ino_mtime) == (4242, 1_700_000_000_123, 1_600_000_000_456)
    assert p.is_exe_upper_layer is True and p.is_exe_writable is True and p.is_exe_from_memfd is False
    assert (p.loginuid, p.tty, p.sid, p.pgid, p.vpid) == (1000, 34819, 100, 200, 7)
    assert (p.cap_inheritable, p.cap_permitted, p.cap_effective) == (1, 0x3FF, 0x3FF)
    assert (p.euid, p.egid, p.ppid) == (1000, 1000, 100)
    assert ev.ancestors and ev.ancestors[0].pid == 100
    assert {a.name: a.value for a in ev.args}["loginuid"] == 1000


def test_exe_writable_follows_owner_mode_caps_and_read_only_mounts(decoder: Decoder) -> None:
    def facts(**kw: int | bytes) -> taskfacts.TaskFacts:
        f = taskfacts.parse(task_bytes(**kw), 0)
        assert f is not None
        return f

    assert not facts(exe_mode=0o100755, exe_uid=0, euid=1000).exe_writable
    assert facts(exe_mode=0o100755, exe_uid=0, euid=1000, cap_effective=1 << 1).exe_writable  # CAP_DAC_OVERRIDE
    assert not facts(exe_mode=0o100777, euid=0, cap_effective=1 << 1, mnt_flags=0x40).exe_writable
    assert not facts(exe_mode=0o100777, sb_flags=1).exe_writable
    assert facts(exe_mode=0o100775, exe_uid=5, exe_gid=7, euid=1000, egid=7).exe_writable
    memfd = facts(flags=layout.TF_VALID | layout.TF_MEMFD)
    assert memfd.exe_memfd and memfd.exe_upper is False and memfd.loginuid is None
    assert taskfacts.parse(bytes(layout.TASK.size), 0) is None


# ---------------------------------------------------------------- live, on the real kernel


@pytest.fixture(scope="module")
def source() -> Iterator[KernelSource]:
    yield from kernel_source()


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="lanner-btf-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _status_caps() -> tuple[int, int, int]:
    with open("/proc/self/status", encoding="ascii") as f:
        fields = dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
    return int(fields["CapInh"], 16), int(fields["CapPrm"], 16), int(fields["CapEff"], 16)


def _exec_of(events: list[Event], pid: int) -> Event:
    found = [e for e in events if e.proc.pid == pid and e.type == "execve" and e.res == 0]
    assert found, f"no execve of {pid} among {len(events)} events"
    return found[-1]


def _exited(pid: int) -> object:
    return lambda evs: any(e.proc.pid == pid and e.type == "procexit" for e in evs)


@pytest.mark.bpf
def test_instant_exit_with_terminal_and_login_uid_has_its_facts(source: KernelSource) -> None:
    master, slave = os.openpty()
    slave_path = os.ttyname(slave)
    rdev = os.stat(slave_path).st_rdev

    def become_session_with_terminal() -> None:
        os.setsid()
        os.close(os.open(slave_path, os.O_RDWR))  # the first terminal a session leader opens becomes its own
        with open("/proc/self/loginuid", "w", encoding="ascii") as f:
            f.write("1234")

    drain(source)
    p = subprocess.Popen(["/bin/true"], preexec_fn=become_session_with_terminal, close_fds=True)
    p.wait(timeout=60)
    os.close(master)
    os.close(slave)
    ev = _exec_of(collect(source, _exited(p.pid)), p.pid)  # type: ignore[arg-type]
    st = os.stat("/usr/bin/true")
    proc = ev.proc
    assert proc.exe_ino == st.st_ino
    assert proc.exe_ino_ctime == st.st_ctime_ns and proc.exe_ino_mtime == st.st_mtime_ns
    assert proc.tty == taskfacts.tty_nr(os.major(rdev), os.minor(rdev))
    assert proc.loginuid == 1234
    assert (proc.cap_inheritable, proc.cap_permitted, proc.cap_effective) == _status_caps()
    assert proc.sid == p.pid and proc.ppid == os.getpid()
    assert proc.is_exe_writable is True  # root with CAP_DAC_OVERRIDE
    args = {a.name: a.value for a in ev.args}
    assert args["loginuid"] == 1234 and args["cap_effective"] == _status_caps()[2]
    # And in an alert: the facts reach the rendered output of a rule on the exec.
    out = _alert_output(ev)
    assert f"ino={st.st_ino} " in out and f"tty={proc.tty} " in out and "loginuid=1234 " in out, out
    assert "caps=CAP_CHOWN " in out and "CAP_SYS_ADMIN" in out and f"ctime={st.st_ctime_ns}" in out, out


def _alert_output(ev: Event) -> str:
    from ruleengine.engine import EngineOptions, load_texts
    from ruleengine.fields import EventContext

    rule = (
        "- rule: instant\n  desc: d\n  condition: evt.type = execve and proc.name = true\n  priority: WARNING\n"
        "  output: ino=%proc.exe_ino tty=%proc.tty loginuid=%user.loginuid caps=%thread.cap_effective "
        "ctime=%proc.exe_ino.ctime\n"
    )
    res = load_texts([("t.yaml", rule)], EngineOptions())
    assert res.engine is not None, [e.format() for e in res.errors]
    ctx = EventContext(ev)
    found = res.engine.process(ctx)
    assert [m.name for m in found] == ["instant"]
    return found[0].render(ctx, "host").output


@pytest.mark.bpf
def test_instant_exit_as_a_user_knows_which_executables_it_could_write(source: KernelSource, shared_dir: Path) -> None:
    own = shared_dir / "own-true"
    shutil.copy("/usr/bin/true", own)
    os.chown(own, 1000, 1000)
    own.chmod(0o755)

    def as_user() -> None:
        os.setgid(1000)
        os.setuid(1000)

    drain(source)
    mine = subprocess.Popen([str(own)], preexec_fn=as_user)
    system = subprocess.Popen(["/usr/bin/true"], preexec_fn=as_user)
    mine.wait(timeout=60)
    system.wait(timeout=60)
    events = collect(source, lambda evs: _exited(mine.pid)(evs) and _exited(system.pid)(evs))  # type: ignore[operator]
    ev_mine, ev_system = _exec_of(events, mine.pid), _exec_of(events, system.pid)
    assert ev_mine.proc.is_exe_writable is True
    assert ev_mine.proc.exe_ino == own.stat().st_ino
    assert ev_system.proc.is_exe_writable is False
    for ev in (ev_mine, ev_system):
        assert (ev.proc.euid, ev.proc.egid) == (1000, 1000)
        assert ev.proc.cap_effective == 0 and ev.proc.cap_permitted == 0


def test_collector_check_says_where_process_facts_come_from(capsys: pytest.CaptureFixture[str]) -> None:
    from collector.cli import cmd_check

    cmd_check(None)  # type: ignore[arg-type]
    out = capsys.readouterr().out
    expected = "read in the kernel at exec" if kernel_offsets.resolve().available else "read from /proc"
    assert expected in out, out


def test_a_program_re_executing_itself_keeps_its_exepath(decoder: Decoder) -> None:
    """busybox applets and runc exec /proc/self/exe: once the process is gone, the path is the one it had."""
    decoder.decode(fork_record(300, 301))
    first = decoder.decode(exec_record(301, "/bin/busybox", ["timeout", "2", "nc"], comm="timeout"))
    assert first is not None and first.proc.exepath == os.path.realpath("/bin/busybox")
    again = decoder.decode(exec_record(301, "/proc/self/exe", ["nc", "10.0.0.1", "443"], comm="nc"))
    assert again is not None and again.proc.exepath == first.proc.exepath
