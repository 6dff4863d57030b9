# SPDX-License-Identifier: Apache-2.0
"""The enter side of the probes on one BPF raw tracepoint (``LANNER_RAW_ENTER`` in ``bpf/lanner.bpf.c``).

On x86_64 with BTF, every enter probe runs on the raw ``sys_enter`` tracepoint, dispatched by syscall number, and no
``syscalls:sys_enter_*`` perf tracepoint is attached: while any is, the kernel runs ``perf_syscall_enter`` on every
syscall of the host, and the sys_enter tracepoint iterates over two callbacks. The raw program returns at once for a
number whose bits in ``raw_want`` are clear; attaching or detaching an attach unit sets or clears them (``RawWant``),
so a hot reload moves bits instead of tracepoints. The syscall numbers live here only: the program gets them as
``-DNR_<name>`` (64-bit table) and ``-DNR32_<name>`` (i386 table, for 32-bit tasks) cflags.
"""

from __future__ import annotations

import ctypes
import platform
from collections.abc import Iterable
from typing import Any

# The x86_64 numbers of every syscall with an enter probe (arch/x86/entry/syscalls/syscall_64.tbl). The open family
# has none there: its exits read the arguments from the saved registers.
NRS_X86_64: dict[str, int] = {
    "close": 3,
    "pipe": 22,
    "dup": 32,
    "dup2": 33,
    "socket": 41,
    "connect": 42,
    "accept": 43,
    "sendto": 44,
    "recvfrom": 45,
    "sendmsg": 46,
    "recvmsg": 47,
    "listen": 50,
    "socketpair": 53,
    "clone": 56,
    "fork": 57,
    "vfork": 58,
    "execve": 59,
    "exit": 60,
    "fcntl": 72,
    "chdir": 80,
    "fchdir": 81,
    "rename": 82,
    "mkdir": 83,
    "rmdir": 84,
    "link": 86,
    "unlink": 87,
    "symlink": 88,
    "chmod": 90,
    "fchmod": 91,
    "ptrace": 101,
    "setuid": 105,
    "setgid": 106,
    "setreuid": 113,
    "setregid": 114,
    "setresuid": 117,
    "setresgid": 119,
    "prctl": 157,
    "mount": 165,
    "umount": 166,  # umount2; its tracepoints are named after the kernel's sys_umount
    "init_module": 175,
    "exit_group": 231,
    "mkdirat": 258,
    "unlinkat": 263,
    "renameat": 264,
    "linkat": 265,
    "symlinkat": 266,
    "fchmodat": 268,
    "unshare": 272,
    "eventfd": 284,
    "accept4": 288,
    "eventfd2": 290,
    "dup3": 292,
    "pipe2": 293,
    "setns": 308,
    "finit_module": 313,
    "renameat2": 316,
    "bpf": 321,
    "execveat": 322,
    "userfaultfd": 323,
    "clone3": 435,
}
# A 32-bit task's syscalls the raw probe handles (arch/x86/entry/syscalls/syscall_32.tbl): those that need no exit
# probe (the syscalls:sys_exit_* tracepoints ignore 32-bit tasks on x86, as the enter ones did).
NRS_I386: dict[str, int] = {"close": 6, "init_module": 128, "finit_module": 350}
# Syscalls traced at enter only (their record is written from a sched tracepoint, or at enter).
ENTER_ONLY = ("clone", "clone3", "fork", "vfork", "exit", "exit_group")
MODULE_LOADS = ("init_module", "finit_module")
RAW_NRS = 512
WANT64, WANT32 = 1, 2
RAW_TP = b"sys_enter"


def supported(machine: str | None = None) -> bool:
    """Whether the enter probes can run on the raw tracepoint here (the numbers above are x86_64's)."""
    return (machine or platform.machine()) == "x86_64"


def cflags() -> list[str]:
    """``-DNR_<name>`` and ``-DNR32_<name>`` for the raw dispatcher."""
    out = [f"-DNR_{name}={nr}" for name, nr in NRS_X86_64.items()]
    out += [f"-DNR32_{name}={nr}" for name, nr in NRS_I386.items()]
    return out


def compiled(bpf: Any) -> bool:
    """Whether the loaded program has the raw dispatcher."""
    return has_map(bpf, b"raw_want")


def compiled_syscalls(bpf: Any) -> set[str]:
    """The syscalls the raw dispatcher can trace in this program: those whose exit probe was compiled, the lifecycle
    ones traced at enter only, and module loads when they are caught at enter (``raw_modules``)."""
    out = set(ENTER_ONLY)
    for tp in bpf.tracepoint_fds:
        name = tp.decode()
        if name.startswith("syscalls:sys_exit_"):
            out.add(name[len("syscalls:sys_exit_") :])
    if has_map(bpf, b"raw_modules"):
        out.update(MODULE_LOADS)
    return out


def has_map(bpf: Any, name: bytes) -> bool:
    """Whether the loaded program defines this map (it is compiled in only when its feature is)."""
    try:
        bpf[name]
    except KeyError:
        return False
    return True


def want_bits(syscalls: Iterable[str]) -> dict[int, int]:
    """raw_want's nonzero words for these syscalls, by syscall number."""
    out: dict[int, int] = {}
    for sc in syscalls:
        nr = NRS_X86_64.get(sc)
        if nr is not None:
            out[nr] = out.get(nr, 0) | WANT64
        nr32 = NRS_I386.get(sc)
        if nr32 is not None:
            out[nr32] = out.get(nr32, 0) | WANT32
    return out


class RawWant:
    """The ``raw_want`` array of a loaded program: which syscall numbers the raw dispatcher handles."""

    def __init__(self, bpf: Any) -> None:
        self.table = bpf[b"raw_want"]
        self.words: dict[int, int] = {}

    def set(self, syscalls: Iterable[str]) -> None:
        """Make exactly ``syscalls`` wanted (writes only the words that change)."""
        new = want_bits(syscalls)
        for nr in set(self.words) | set(new):
            if self.words.get(nr, 0) != new.get(nr, 0):
                self.table[ctypes.c_int(nr)] = ctypes.c_uint32(new.get(nr, 0))
        self.words = new

    def read(self) -> dict[int, int]:
        """The nonzero words as the kernel has them (for tests and diagnostics)."""
        out = {}
        for nr in range(RAW_NRS):
            v = int(self.table[ctypes.c_int(nr)].value)
            if v:
                out[nr] = v
        return out


__all__ = ["NRS_I386", "NRS_X86_64", "RawWant", "cflags", "compiled", "compiled_syscalls", "supported", "want_bits"]
