# SPDX-License-Identifier: Apache-2.0
"""What keeps the probes' cost per syscall down, on the real kernel, and that the events stay the same: the open
exits read their arguments from the saved registers (no enter probes on x86_64), the close exit is attached only
while close records are wanted, module loads cost one enter probe on raw_syscalls (or their own tracepoints), and a
dropped open's stale mark is rewritten in place."""

from __future__ import annotations

import ctypes
import os
import platform
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector import rawenter
from collector.source import KernelSource, module_tracepoints
from lanner.model import Event
from ruleengine.kspec import build_spec
from tests.collector.live_programs import build_32_bit, engine_of, kernel_control, run_program
from tests.support.kernel_source import collect, kernel_source

pytestmark = pytest.mark.bpf

X86_64 = platform.machine() == "x86_64"


def raw_enter(control: object) -> bool:
    """Whether the loaded probes run every enter probe on the raw sys_enter tracepoint (x86_64 with BTF)."""
    return rawenter.compiled(control.bpf)  # type: ignore[attr-defined]


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
    exit_ = b"syscalls:sys_exit_close"

    def enter() -> bool:
        return control.enter_attached("close")

    source.apply_spec(build_spec(_engine("evt.type = dup2 and fd.name = /x").enabled))
    assert "close" in control.attached
    assert enter() and exit_ not in control.bpf.tracepoint_fds
    source.apply_spec(build_spec(_engine("evt.type = close and fd.name = /etc/hostname").enabled))
    assert enter() and exit_ in control.bpf.tracepoint_fds
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
    assert not enter() and exit_ not in control.bpf.tracepoint_fds
    source.apply_spec(build_spec(_engine("evt.type = dup2 and fd.name = /x").enabled))
    assert enter() and exit_ not in control.bpf.tracepoint_fds


def test_module_loads_cost_one_raw_enter_probe(source: KernelSource) -> None:
    control = _control(source)
    source.apply_spec(build_spec(_engine("evt.type in (init_module, finit_module)").enabled))
    tps = control.bpf.tracepoint_fds
    assert not [tp for tp in tps if tp.startswith(b"raw_syscalls:")]
    assert control.enter_attached("init_module") and control.enter_attached("finit_module")
    if raw_enter(control):
        # The raw probe carries every enter probe: module loads are bits in raw_want, not a tracepoint.
        assert b"sys_enter" in control.bpf.raw_tracepoint_fds
        assert not [tp for tp in tps if tp.startswith(b"syscalls:sys_enter_")]
    else:
        assert (b"sys_enter" in control.bpf.raw_tracepoint_fds) != module_tracepoints()
        assert (b"syscalls:sys_enter_init_module" in tps) == module_tracepoints()
    source.apply_spec(build_spec(_engine("evt.type = mkdir").enabled))
    assert not control.enter_attached("init_module") and not control.enter_attached("finit_module")


def test_stale_mark_of_a_dropped_open_moves_forward(source: KernelSource) -> None:
    control = _control(source)
    source.apply_spec(build_spec(_engine("evt.type = openat and fd.name = /nonexistent/x").enabled))
    code = """
    import os, time
    print(os.getpid(), flush=True)
    fd = os.open("/etc/hostname", os.O_RDONLY)
    os.close(fd)
    time.sleep(0.01)
    child = os.fork()  # a record (clone): the next mark is written anew, not kept
    if child == 0:
        os._exit(0)
    os.waitpid(child, 0)
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


def test_fd_marks_are_kept_while_no_record_is_stamped(source: KernelSource) -> None:
    """An open+close loop whose opens are dropped: the stale mark and the close stamp of its fd are written again
    only after some record read the clock (a fork here), not on every open and close."""
    control = _control(source)
    source.apply_spec(build_spec(_engine("evt.type = openat and fd.name = /nonexistent/x").enabled))
    code = """
    import os, sys, time
    fd = os.open("/etc/hostname", os.O_RDONLY)
    print(os.getpid(), fd, flush=True)
    sys.stdin.readline()
    for _ in range(2000):
        os.close(fd)
        fd = os.open("/etc/hostname", os.O_RDONLY)
    t = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    child = os.fork()  # a record (clone): the next close is stamped anew, and so is the next dropped open
    if child == 0:
        os._exit(0)
    os.waitpid(child, 0)
    os.close(fd)
    fd = os.open("/etc/hostname", os.O_RDONLY)
    print(t, flush=True)
    sys.stdin.readline()
    """
    p = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert p.stdout is not None and p.stdin is not None
    pid, fd = (int(x) for x in p.stdout.readline().split())
    n0 = _stamps(control, pid, fd)
    p.stdin.write("go\n")
    p.stdin.flush()
    t = int(p.stdout.readline())
    stamps = _stamps(control, pid, fd) - n0
    closes = control.bpf[b"fd_closed"].get(ctypes.c_uint64((pid << 32) | fd))  # type: ignore[attr-defined]
    mark = control.stale_fd(pid, fd)
    p.communicate("done\n", timeout=60)
    # 2001 closes, stamped: the one after the fork, and one after each record the host made meanwhile (the first
    # close keeps the stamp of the last close of that number at start-up unless a record came between).
    assert 1 <= stamps < 1000, stamps
    # The last close and the last dropped open came after the fork, so their marks are later than t.
    assert max(closes.ts) > t and mark > t, (list(closes.ts), mark, t)


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
    exe = build_32_bit(tmp_path, "t32", T32)
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


# A 32-bit program: close(0) by the i386 number (6), then read(0, buf, 0) by 3 (close's number on x86_64), then exit.
T32_CLOSE = r"""
void _start(void) {
    long r;
    char b[1];
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(6), "b"(5) : "memory");
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(3), "b"(7), "c"(b), "d"(0) : "memory");
    __asm__ volatile("int $0x80" : : "a"(1), "b"(0));
}
"""
MODULES_AND_FDS = ("evt.type in (init_module, finit_module)", "evt.type = dup2 and fd.name = /x")


def _stamps(control: object, pid: int, fd: int) -> int:
    v = control.bpf[b"fd_closed"].get(ctypes.c_uint64((pid << 32) | fd))  # type: ignore[attr-defined]
    return 0 if v is None else int(v.n)


def _keys(control: object, pid: int) -> int:
    """How many fds of ``pid`` have close stamps."""
    return sum(1 for k in control.bpf[b"fd_closed"] if k.value >> 32 == pid)  # type: ignore[attr-defined]


# Opens an fd, waits, closes it (and the same number twice more), lstats (6 on x86_64: close's i386 number). A fork
# before each close makes records (clone, exit): a close with no record since the last stamp of its fd keeps that stamp.
CLOSER = """
import os, sys, time
def record():
    child = os.fork()
    if child == 0:
        os._exit(0)
    os.waitpid(child, 0)
fd = os.open("/etc/hostname", os.O_RDONLY)
print(os.getpid(), fd, flush=True)
sys.stdin.readline()
record()
os.close(fd)
for _ in range(2):
    fd = os.open("/etc/hostname", os.O_RDONLY)
    record()
    os.close(fd)
os.lstat("/etc/hostname")
print("done", flush=True)
time.sleep(0.3)
"""


def _closes_stamped(control: object) -> tuple[int, int]:
    """Run CLOSER: (stamps its three closes added, fds of it that got their first stamp meanwhile)."""
    p = subprocess.Popen([sys.executable, "-c", CLOSER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdin is not None
    pid, fd = (int(x) for x in p.stdout.readline().split())
    keys0, n0 = _keys(control, pid), _stamps(control, pid, fd)
    p.stdin.write("go\n")
    p.stdin.flush()
    assert p.stdout.readline().strip() == "done"
    got = (_stamps(control, pid, fd) - n0, _keys(control, pid) - keys0)
    p.communicate(timeout=60)
    return got


@pytest.mark.skipif(not X86_64 or module_tracepoints(), reason="closes ride the raw probe of x86_64 module loads")
def test_close_stamps_ride_the_raw_probe_while_module_loads_are_wanted(source: KernelSource, tmp_path: Path) -> None:
    control = _control(source)
    if raw_enter(control):
        _close_stamps_on_the_raw_enter_probe(source, tmp_path)
        return
    enter = b"syscalls:sys_enter_close"
    source.apply_spec(build_spec(_engine(*MODULES_AND_FDS).enabled))
    assert b"sys_enter" in control.bpf.raw_tracepoint_fds and enter not in control.bpf.tracepoint_fds
    # Every close stamped once, by the raw probe alone; lstat stamped nothing.
    assert _closes_stamped(control) == (3, 0)
    # A 32-bit task: its close (i386 6) is stamped, its read (i386 3) is not.
    exe = build_32_bit(tmp_path, "c32", T32_CLOSE)
    c = subprocess.Popen([str(exe)])
    c.wait(timeout=30)
    assert _stamps(control, c.pid, 5) == 1 and _stamps(control, c.pid, 7) == 0
    # Without module rules the close enter tracepoint stamps again (attached before the raw probe went away).
    source.apply_spec(build_spec(_engine(MODULES_AND_FDS[1]).enabled))
    assert b"sys_enter" not in control.bpf.raw_tracepoint_fds and enter in control.bpf.tracepoint_fds
    assert _closes_stamped(control) == (3, 0)
    # Close records wanted: the enter and exit tracepoints pair them, and stamp; the raw probe does not.
    source.apply_spec(build_spec(_engine(MODULES_AND_FDS[0], "evt.type = close and fd.name = /x").enabled))
    assert b"sys_enter" in control.bpf.raw_tracepoint_fds and enter in control.bpf.tracepoint_fds
    assert _closes_stamped(control) == (3, 0)
    # Back to the raw probe, then no close wanted at all: nothing attached for closes.
    source.apply_spec(build_spec(_engine(*MODULES_AND_FDS).enabled))
    assert enter not in control.bpf.tracepoint_fds
    assert _closes_stamped(control) == (3, 0)
    source.apply_spec(build_spec(_engine("evt.type = mkdir").enabled))
    assert enter not in control.bpf.tracepoint_fds and b"sys_enter" not in control.bpf.raw_tracepoint_fds
    source.apply_spec(build_spec(_engine(MODULES_AND_FDS[1]).enabled))
    assert enter in control.bpf.tracepoint_fds
    assert _closes_stamped(control) == (3, 0)


def _close_stamps_on_the_raw_enter_probe(source: KernelSource, tmp_path: Path) -> None:
    """Every enter probe on the raw tracepoint: the close stamps are there whatever the rules, never on a close enter
    tracepoint, and follow the close unit (and its bits) across reloads."""
    control = _control(source)
    enter = b"syscalls:sys_enter_close"
    for conds in (MODULES_AND_FDS, MODULES_AND_FDS[1:], (MODULES_AND_FDS[0], "evt.type = close and fd.name = /x")):
        source.apply_spec(build_spec(_engine(*conds).enabled))
        assert control.enter_attached("close") and enter not in control.bpf.tracepoint_fds
        # Every close stamped once; lstat (6, close's i386 number) stamped nothing.
        assert _closes_stamped(control) == (3, 0), conds
    # A 32-bit task: its close (i386 6) is stamped, its read (i386 3) is not.
    exe = build_32_bit(tmp_path, "c32", T32_CLOSE)
    c = subprocess.Popen([str(exe)])
    c.wait(timeout=30)
    assert _stamps(control, c.pid, 5) == 1 and _stamps(control, c.pid, 7) == 0
    # No close wanted at all: no stamps; back again: stamped.
    source.apply_spec(build_spec(_engine("evt.type = mkdir").enabled))
    assert not control.enter_attached("close")
    assert _closes_stamped(control) == (0, 0)
    source.apply_spec(build_spec(_engine(MODULES_AND_FDS[1]).enabled))
    assert control.enter_attached("close")
    assert _closes_stamped(control) == (3, 0)


def test_an_exact_path_after_a_longer_one_still_matches(source: KernelSource) -> None:
    """The open filter's path buffer is not zeroed before each read: the bytes a longer path left behind must not
    reach the exact-path key."""
    source.apply_spec(build_spec(_engine("evt.type = openat and fd.name = /etc/hostname").enabled))
    code = """
    import os
    print(os.getpid())
    fds = []
    for p in ("/etc/hostname" + "-x" * 60, "/etc/hostname", "/etc/hostname/" + "y" * 100, "/etc/hostname"):
        try:
            fds.append(os.open(p, os.O_RDONLY))
        except OSError:
            fds.append(-1)
    print(*fds, flush=True)
    """
    events, out = _run(source, code)
    fds = [int(x) for x in out[1:5]]
    assert fds[1] >= 0 and fds[3] >= 0
    got = sorted(e.res for e in events if e.type == "openat" and e.fd is not None and e.fd.path == "/etc/hostname")
    assert got == sorted([fds[1], fds[3]]), [(e.res, e.arg("name")) for e in events if e.type == "openat"]


def test_the_drop_memo_never_drops_what_the_filter_passes(source: KernelSource, tmp_path: Path) -> None:
    """The open filter remembers its last dropped open per CPU (kf_memo): an open differing from it only in the
    path's bytes (same length, syscall, flags and fd), or only in its flags, is judged again, and a reload that
    wants the remembered open passes it at once."""
    target = tmp_path / "f"
    target.write_text("x")
    source.apply_spec(
        build_spec(
            _engine(
                "evt.type = openat and fd.name = /etc/shadow",
                f"evt.type = openat and evt.is_open_write = true and fd.name = {target}",
            ).enabled
        )
    )
    code = f"""
    import os
    print(os.getpid())
    n = 0
    for _ in range(50):
        for path, flags in (("/etc/passwd", os.O_RDONLY), ("/etc/shadow", os.O_RDONLY),
                            ({str(target)!r}, os.O_RDONLY), ({str(target)!r}, os.O_WRONLY)):
            fd = os.open(path, flags)
            n = max(n, fd)
            os.close(fd)
    print(n, flush=True)
    """
    events, _out = _run(source, code)
    opens = [e for e in events if e.type == "openat" and e.fd is not None]
    assert len([e for e in opens if e.fd is not None and e.fd.path == "/etc/shadow"]) == 50
    writes = [e for e in opens if e.fd is not None and e.fd.path == str(target)]
    assert len(writes) == 50 and all(int(e.arg("flags") or 0) & 3 == os.O_WRONLY for e in writes)
    assert not [e for e in opens if e.fd is not None and e.fd.path == "/etc/passwd"]
    # The reload wants what the memo holds: the same process drops /etc/passwd, waits for the reload, opens it again.
    p = subprocess.Popen(
        [sys.executable, "-c", RELOADED], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
    )
    assert p.stdin is not None and p.stdout is not None
    pid = int(p.stdout.readline())
    source.apply_spec(build_spec(_engine("evt.type = openat and fd.name = /etc/passwd").enabled))
    p.stdin.write("go\n")
    p.stdin.flush()
    assert p.stdout.readline().strip() == "done"
    p.communicate(timeout=60)
    events = collect(source, lambda evs: any(e.type == "procexit" and e.proc.pid == pid for e in evs))
    again = [e for e in events if e.proc.pid == pid and e.type == "openat" and e.fd and e.fd.path == "/etc/passwd"]
    assert len(again) == 3, len(again)


# Drops opens of /etc/passwd (the memo holds the last), waits, then opens it three times more.
RELOADED = """
import os, sys
for _ in range(20):
    os.close(os.open("/etc/passwd", os.O_RDONLY))
print(os.getpid(), flush=True)
sys.stdin.readline()
for _ in range(3):
    os.close(os.open("/etc/passwd", os.O_RDONLY))
print("done", flush=True)
"""
