# SPDX-License-Identifier: Apache-2.0
"""Every enter probe on the raw sys_enter tracepoint (x86_64 with BTF), on the real kernel: no syscalls:sys_enter_*
perf tracepoint is attached, the arguments the dispatcher reads from the registers arrive exactly, a hot reload flips
the per-number bits, and a 32-bit task's syscalls are judged by the i386 table."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector import rawenter
from collector.source import KernelSource
from lanner.model import Event
from ruleengine.engine import load_rules
from ruleengine.kspec import build_spec
from tests.collector.live_programs import HOLD, build_32_bit, engine_of, kernel_control, run_program
from tests.support.kernel_source import collect, kernel_source

pytestmark = pytest.mark.bpf

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def source() -> Iterator[KernelSource]:
    yield from kernel_source(pages=4096)


@pytest.fixture
def raw(source: KernelSource) -> None:
    if not rawenter.compiled(kernel_control(source).bpf):
        pytest.skip("enter probes on the raw tracepoint need x86_64 with BTF")


def _words(control: object) -> dict[int, int]:
    want = control._want
    assert want is not None
    return dict(want.read())


def test_no_enter_perf_tracepoint_with_the_stable_rules(source: KernelSource, raw: None) -> None:
    control = kernel_control(source)
    files = [
        str(ROOT.parent / "shared" / "falco-rules" / "falco_rules.yaml"),
        str(ROOT / "rules" / "lanner_rules.yaml"),
    ]
    res = load_rules([f for f in files if Path(f).exists()])
    assert res.engine is not None
    ack = source.apply_spec(build_spec(res.engine.enabled))
    tps = control.bpf.tracepoint_fds
    assert not [tp for tp in tps if tp.startswith((b"syscalls:sys_enter_", b"raw_syscalls:"))]
    assert list(control.bpf.raw_tracepoint_fds) == [rawenter.RAW_TP]
    # Exactly the attached syscalls with an enter probe have their bits, in the kernel's copy of the array.
    assert _words(control) == rawenter.want_bits(ack.attached)
    assert {"close", "execve", "clone", "init_module", "connect"} <= set(ack.attached)


ARGS = f"""
import ctypes, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
print(os.getpid())
d = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
os.mkdir("a", 0o751, dir_fd=d)
r2 = libc.syscall(316, d, b"a", d, b"b", 1)  # renameat2(.., RENAME_NOREPLACE): flags in r8
open(sys.argv[1] + "/f", "w").close()
l5 = libc.syscall(265, d, b"f", d, b"g", 0x400)  # linkat(.., AT_SYMLINK_FOLLOW): flags in r8
d3 = os.dup2(d, 50, inheritable=False)  # dup3(d, 50, O_CLOEXEC)
f1 = libc.syscall(72, d, 1030, 60)  # fcntl(d, F_DUPFD_CLOEXEC, 60)
libc.syscall(72, d, 3, 0)  # fcntl(d, F_GETFL): not reported
p1, p2 = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
ev = os.eventfd(7, os.EFD_CLOEXEC)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", 0))
v = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
v.sendto(b"x" * 12, u.getsockname())  # sendto: address in r8, its length in r9
data, peer = u.recvfrom(100)  # recvfrom: the sender's address buffer in r8
r = libc.syscall(117, -1, -1, -1)  # setresuid(-1, -1, -1)
um = libc.syscall(166, b"/nonexistent-lanner", 2)  # umount2(.., MNT_DETACH)
um = -ctypes.get_errno() if um < 0 else um
pid = os.fork()
if pid == 0:
    os.execve("/bin/true", ["/bin/true", "lanner-arg-1", "two words"], {{"LANNER_RAW": "1"}})
os.waitpid(pid, 0)
print(d, r2, l5, d3, f1, p1, p2, ev, u.fileno(), v.fileno(), peer[1], r, um, pid, u.getsockname()[1], flush=True)
{HOLD}
"""


def test_arguments_read_at_raw_enter_arrive_exactly(source: KernelSource, raw: None, tmp_path: Path) -> None:
    types = (
        "mkdirat, renameat2, linkat, dup3, fcntl, pipe2, eventfd2, sendto, recvfrom, setresuid, umount2, clone, execve"
    )
    source.apply_spec(build_spec(engine_of(f"evt.type in ({types}, mkdir, dup2)").enabled))
    code = ARGS.replace("sys.argv[1]", repr(str(tmp_path)))
    events, out, _pid = run_program(source, code, hold=True, children=True)
    d, r2, l5, d3, f1, p1, p2, ev, ufd, vfd, vport, r, um, child, uport = (int(x) for x in out[1:16])
    assert r2 == 0 and l5 == 0 and d3 == 50 and f1 >= 60 and r == 0 and um < 0

    def one(type_: str) -> Event:
        got = [e for e in events if e.type == type_]
        assert got, (type_, sorted({e.type for e in events}))
        return got[0]

    e = one("mkdirat")
    assert e.arg("dirfd") == d and e.arg("path") == "a" and e.arg("mode") == 0o751
    e = one("renameat2")
    assert e.arg("olddirfd") == d and e.arg("newdirfd") == d and e.arg("flags") == 1
    e = one("linkat")
    assert e.arg("olddir") == d and e.arg("newdir") == d and e.arg("flags") == 0x400
    e = one("dup3")
    assert e.res == 50 and e.arg("oldfd") == d and e.arg("newfd") == 50
    assert e.arg("flags") == os.O_CLOEXEC
    fcntls = [e for e in events if e.type == "fcntl"]
    assert [(e.res, e.arg("fd"), e.arg("cmd")) for e in fcntls] == [(f1, d, 1030)]
    e = one("pipe2")
    assert e.arg("fd1") == p1 and e.arg("fd2") == p2
    assert e.arg("flags") == os.O_NONBLOCK | os.O_CLOEXEC
    e = one("eventfd2")
    assert e.res == ev and e.arg("initval") == 7 and e.arg("flags") == os.EFD_CLOEXEC
    e = one("sendto")
    assert e.arg("fd") == vfd and e.arg("size") == 12 and e.res == 12
    assert e.fd is not None and e.fd.server_port == uport
    recvs = [e for e in events if e.type == "recvfrom" and e.arg("fd") == ufd]
    assert recvs and recvs[0].res == 12 and recvs[0].fd is not None and recvs[0].fd.client_port == vport
    assert recvs[0].arg("size") == 100
    e = one("setresuid")
    assert e.res == 0 and [e.arg(n) for n in ("ruid", "euid", "suid")] == [-1, -1, -1]
    e = one("umount2")
    assert e.res == um and e.arg("name") == "/nonexistent-lanner" and e.arg("flags") == 2
    forks = [e for e in events if e.type == "clone" and e.res == child]
    assert forks and forks[0].arg("flags") & 0xFF == 17  # SIGCHLD, read from di
    execs = [e for e in events if e.type == "execve" and e.proc.pid == child]
    assert execs and execs[0].proc.args == ("lanner-arg-1", "two words"), execs and execs[0].proc.args
    assert "LANNER_RAW=1" in execs[0].proc.env


def test_hot_reload_flips_the_wanted_bits(source: KernelSource, raw: None, tmp_path: Path) -> None:
    control = kernel_control(source)
    mkdir, rmdir = rawenter.NRS_X86_64["mkdir"], rawenter.NRS_X86_64["rmdir"]
    lifecycle = [rawenter.NRS_X86_64[s] for s in ("execve", "clone", "exit_group", "fork")]
    code = f"""
    import os
    print(os.getpid())
    os.mkdir({str(tmp_path / "m")!r})
    os.rmdir({str(tmp_path / "m")!r})
    print("ok", flush=True)
    """
    for on, off in (("mkdir", "rmdir"), ("rmdir", "mkdir"), ("mkdir", "rmdir")):
        source.apply_spec(build_spec(engine_of(f"evt.type = {on}").enabled))
        words = _words(control)
        assert words.get(rawenter.NRS_X86_64[on]) == rawenter.WANT64
        assert rawenter.NRS_X86_64[off] not in words
        assert all(words.get(nr) == rawenter.WANT64 for nr in lifecycle)
        assert control.enter_attached(on) and not control.enter_attached(off)
        events, _out, _pid = run_program(source, code)
        types = {e.type for e in events}
        assert on in types and off not in types, (on, types)
    assert {mkdir, rmdir} & set(_words(control)) == {mkdir}


# A 32-bit program: syscall 56 (clone's x86_64 number; mpx, not implemented, on i386) with di = SIGCHLD, then a real
# i386 fork (2), whose child exits at once. Judged by the x86_64 table, 56 would stash a clone for the fork to report.
T32_FORK = r"""
void _start(void) {
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(56), "b"(0), "D"(17) : "memory");
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(2) : "memory");
    if (r == 0)
        __asm__ volatile("int $0x80" : : "a"(1), "b"(0));
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(7), "b"(-1), "c"(0), "d"(0) : "memory");  /* waitpid(-1) */
    __asm__ volatile("int $0x80" : : "a"(1), "b"(0));
}
"""


def test_32_bit_tasks_syscalls_are_numbered_by_the_i386_table(source: KernelSource, raw: None, tmp_path: Path) -> None:
    exe = build_32_bit(tmp_path, "f32", T32_FORK)
    source.apply_spec(build_spec(engine_of("evt.type in (clone, fork, execve)").enabled))
    while source.poll():
        pass
    p = subprocess.run([str(exe)], check=True)
    assert p.returncode == 0
    events = collect(source, lambda evs: any(e.type == "procexit" and e.proc.exepath == str(exe) for e in evs), 30)
    mine = [e for e in events if e.proc.exepath == str(exe)]
    assert [e for e in mine if e.type == "procexit"]
    # No fork record from a stash made under the wrong table (the perf tracepoints never saw 32-bit syscalls).
    assert not [e for e in mine if e.type in ("clone", "fork", "vfork", "clone3")], [(e.type, e.args) for e in mine]
