# SPDX-License-Identifier: Apache-2.0
"""What keeps the probes' cost per syscall down, on the real kernel, and that the events stay the same: the open
exits read their arguments from the saved registers (no enter probes on x86_64), the close exit is attached only
while close records are wanted, module loads cost one enter probe on raw_syscalls (or their own tracepoints), and a
dropped open's stale mark is rewritten in place."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.source import KernelSource, module_tracepoints
from lanner.model import Event
from ruleengine.kspec import build_spec
from tests.collector.live_programs import engine_of, kernel_control, run_program
from tests.support.kernel_source import collect, kernel_source

pytestmark = pytest.mark.bpf

X86_64 = platform.machine() == "x86_64"


@pytest.fixture(scope="module")
def source() -> Iterator[KernelSource]:
    yield from kernel_source(pages=4096)


_control = kernel_control
_engine = engine_of


def _run(src: KernelSource, code: str) -> tuple[list[Event], list[str]]:
    events, words, _pid = run_program(src, code)
    return events, words


def test_open_family_has_no_enter_probes_on_x86_64(source: KernelSource) -> None:
    tps = _control(source).bpf.tracepoint_fds
    assert b"syscalls:sys_exit_openat" in tps
    for sc in ("open", "openat", "openat2", "creat", "open_by_handle_at"):
        assert (f"syscalls:sys_enter_{sc}".encode() in tps) != X86_64, sc


def test_open_arguments_read_from_registers(source: KernelSource, tmp_path: object) -> None:
    source.apply_spec(build_spec(_engine("evt.type in (open, openat, openat2, creat)").enabled))
    code = f"""
    import ctypes, os
    print(os.getpid())
    d = os.open({str(tmp_path)!r}, os.O_RDONLY | os.O_DIRECTORY)
    fd = os.open("made", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640, dir_fd=d)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    c = libc.syscall(85, {str(tmp_path) + "/creat"!r}.encode(), 0o600)
    how = (ctypes.c_uint64 * 3)(os.O_RDONLY, 0, 0x08)  # RESOLVE_NO_SYMLINKS
    o2 = libc.syscall(437, d, b"made", ctypes.byref(how), 24)
    print(d, fd, c, o2, flush=True)
    """
    events, out = _run(source, code)
    d, fd, c, o2 = (int(x) for x in out[1:5])
    made = [e for e in events if e.type == "openat" and e.res == fd and e.arg("name") == "made"]
    assert made, sorted({e.type for e in events})
    e = made[0]
    assert e.fd is not None and e.fd.path == f"{tmp_path}/made"
    assert e.arg("dirfd") == d and e.arg("mode") == 0o640
    flags = e.arg("flags")
    assert isinstance(flags, int) and flags & 0o3 == os.O_WRONLY and flags & os.O_CREAT and flags & os.O_EXCL
    creat = [e for e in events if e.type == "creat" and e.res == c and str(e.arg("name")).endswith("/creat")]
    assert creat and creat[0].fd is not None and creat[0].fd.path == f"{tmp_path}/creat"
    assert creat[0].arg("mode") == 0o600
    o2e = [e for e in events if e.type == "openat2" and e.res == o2 and e.arg("name") == "made"]
    assert o2e and o2e[0].arg("dirfd") == d and o2e[0].fd is not None and o2e[0].fd.path == f"{tmp_path}/made"
    assert o2e[0].arg("resolve") == 0x08


def test_close_exit_attached_only_while_close_records_are_wanted(source: KernelSource) -> None:
    control = _control(source)
    enter, exit_ = b"syscalls:sys_enter_close", b"syscalls:sys_exit_close"
    source.apply_spec(build_spec(_engine("evt.type = dup2 and fd.name = /x").enabled))
    assert "close" in control.attached
    assert enter in control.bpf.tracepoint_fds and exit_ not in control.bpf.tracepoint_fds
    source.apply_spec(build_spec(_engine("evt.type = close and fd.name = /etc/hostname").enabled))
    assert enter in control.bpf.tracepoint_fds and exit_ in control.bpf.tracepoint_fds
    code = """
    import os
    print(os.getpid())
    fd = os.open("/etc/hostname", os.O_RDONLY)
    os.close(fd)
    print(fd, flush=True)
    """
    events, out = _run(source, code)
    assert [e for e in events if e.type == "close" and e.arg("fd") == int(out[1])]
    # Detached with its unit, then back without close records: the exit stays detached.
    source.apply_spec(build_spec(_engine("evt.type = mkdir").enabled))
    assert enter not in control.bpf.tracepoint_fds and exit_ not in control.bpf.tracepoint_fds
    source.apply_spec(build_spec(_engine("evt.type = dup2 and fd.name = /x").enabled))
    assert enter in control.bpf.tracepoint_fds and exit_ not in control.bpf.tracepoint_fds


def test_module_loads_cost_one_raw_enter_probe(source: KernelSource) -> None:
    control = _control(source)
    source.apply_spec(build_spec(_engine("evt.type in (init_module, finit_module)").enabled))
    tps = control.bpf.tracepoint_fds
    assert not [tp for tp in tps if tp.startswith(b"raw_syscalls:")]
    assert (b"sys_enter" in control.bpf.raw_tracepoint_fds) != module_tracepoints()
    assert (b"syscalls:sys_enter_init_module" in tps) == module_tracepoints()
    source.apply_spec(build_spec(_engine("evt.type = mkdir").enabled))
    assert b"sys_enter" not in control.bpf.raw_tracepoint_fds


def test_stale_mark_of_a_dropped_open_moves_forward(source: KernelSource) -> None:
    control = _control(source)
    source.apply_spec(build_spec(_engine("evt.type = openat and fd.name = /nonexistent/x").enabled))
    code = """
    import os, time
    print(os.getpid(), flush=True)
    fd = os.open("/etc/hostname", os.O_RDONLY)
    os.close(fd)
    time.sleep(0.01)
    fd2 = os.open("/etc/hostname", os.O_RDONLY)
    t = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    print(fd, fd2, t, flush=True)
    time.sleep(0.3)
    """
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    pid = int(p.stdout.readline())
    fd, fd2, t = (int(x) for x in p.stdout.readline().split())
    assert fd == fd2
    mark = control.stale_fd(pid, fd)
    p.communicate(timeout=60)
    # The second (dropped) open rewrote the first one's mark: it is its time, 10 ms after the first.
    assert t - 200_000_000 < mark <= t, (mark, t)
    assert os.getpid() != pid


# A 32-bit program (no libc): rt_sigprocmask, which is number 175 in the i386 table (init_module's number on
# x86_64), then init_module (128 there), then exit.
T32 = r"""
void _start(void) {
    long r;
    volatile char u[8] = {'x', '=', '3', '2', 0};  /* on the stack: a page the probe can read */
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(175), "b"(0), "c"(0), "d"(0), "S"(8));
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(128), "b"(0), "c"(4), "d"(u) : "memory");
    __asm__ volatile("int $0x80" : : "a"(1), "b"(0));
}
"""


@pytest.mark.skipif(not X86_64, reason="32-bit tasks on x86_64")
def test_module_loads_of_32_bit_tasks_by_their_own_numbers(source: KernelSource, tmp_path: Path) -> None:
    src, exe = tmp_path / "t32.c", tmp_path / "t32"
    src.write_text(T32)
    subprocess.run(["gcc", "-m32", "-nostdlib", "-static", "-O1", "-o", str(exe), str(src)], check=True)
    source.apply_spec(build_spec(_engine("evt.type in (init_module, finit_module)").enabled))
    while source.poll():
        pass
    p = subprocess.run([str(exe)], check=True)
    assert p.returncode == 0
    events = collect(source, lambda evs: any(e.type == "procexit" and e.proc.exepath == str(exe) for e in evs), 30)
    mine = [e for e in events if e.proc.exepath == str(exe)]
    loads = [e for e in mine if e.type in ("init_module", "finit_module")]
    # One init_module (not the rt_sigprocmask that shares x86_64's number), with its 32-bit arguments.
    assert [e.type for e in loads] == ["init_module"], [(e.type, e.args) for e in loads]
    assert loads[0].arg("uargs") == "x=32" and loads[0].arg("length") == 4
    assert loads[0].res == -38
