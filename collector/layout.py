# SPDX-License-Identifier: Apache-2.0
"""ctypes mirror of ``bpf/lanner_events.h``: the ring-buffer record layout and its message/syscall ids.

The ctypes structures are the single Python statement of the layout; the decoders use ``struct.Struct`` formats
derived from them (faster per record than ctypes). ``tests/collector/test_layout.py`` compiles the C header with
gcc and checks every size and offset against these classes.
"""

from __future__ import annotations

import ctypes
import struct
from pathlib import Path

BPF_DIR = Path(__file__).resolve().parent.parent / "bpf"
HEADER_PATH = BPF_DIR / "lanner_events.h"
PROGRAM_PATH = BPF_DIR / "lanner.bpf.c"

# Syscall families a collector can trace (config ``families``), and the -D switch of each optional one.
FAMILIES = ("process", "file", "network", "fileop", "privilege")
FAMILY_MACROS = {
    "file": "LANNER_FAM_OPEN",
    "network": "LANNER_FAM_NET",
    "fileop": "LANNER_FAM_FILEOP",
    "privilege": "LANNER_FAM_PRIV",
}

MSG_EXEC = 1
MSG_FORK = 2
MSG_EXIT = 3
MSG_OPEN = 4
MSG_CONNECT = 5
MSG_ACCEPT = 6
MSG_SOCKET = 7
MSG_FILEOP = 8
MSG_GENERIC = 9
MSG_SEND = 10
MSG_FDPAIR = 11
MSG_RECV = 12
MSG_STRS = 13

SC_EXECVE = 1
SC_EXECVEAT = 2
SC_CLONE = 3
SC_CLONE3 = 4
SC_FORK = 5
SC_VFORK = 6
SC_KTHREAD = 7
SC_OPEN = 10
SC_OPENAT = 11
SC_OPENAT2 = 12
SC_CREAT = 13
SC_OPEN_BY_HANDLE_AT = 14
SC_CONNECT = 20
SC_ACCEPT = 21
SC_ACCEPT4 = 22
SC_SOCKET = 23
SC_SENDTO = 24
SC_SENDMSG = 25
SC_UNLINK = 30
SC_UNLINKAT = 31
SC_RENAME = 32
SC_RENAMEAT = 33
SC_RENAMEAT2 = 34
SC_MKDIR = 35
SC_MKDIRAT = 36
SC_RMDIR = 37
SC_CHDIR = 38
SC_FCHDIR = 39
SC_CHMOD = 40
SC_FCHMOD = 41
SC_FCHMODAT = 42
SC_SYMLINK = 43
SC_SYMLINKAT = 44
SC_LINK = 45
SC_LINKAT = 46
SC_SETUID = 50
SC_SETGID = 51
SC_SETREUID = 52
SC_SETREGID = 53
SC_SETRESUID = 54
SC_SETRESGID = 55
SC_PTRACE = 56
SC_UNSHARE = 57
SC_SETNS = 58
SC_BPF = 59
SC_PRCTL = 60
SC_DUP = 61
SC_DUP2 = 62
SC_DUP3 = 63
SC_LISTEN = 64
SC_CLOSE = 70
SC_PIPE = 71
SC_PIPE2 = 72
SC_SOCKETPAIR = 73
SC_EVENTFD = 74
SC_EVENTFD2 = 75
SC_FCNTL = 76
SC_USERFAULTFD = 77
SC_RECVFROM = 78
SC_RECVMSG = 79
SC_MOUNT = 80
SC_UMOUNT2 = 81
SC_INIT_MODULE = 82
SC_FINIT_MODULE = 83

PATH_MAX = 512
ARGS_MAX = 4096
ENV_MAX = 4096
ARG_MAX = 1024
MAX_ARGC = 32
SOCKADDR_MAX = 128

HF_ARGS_TRUNCATED = 1
HF_ENV_TRUNCATED = 2

TF_VALID = 1
TF_UPPER_KNOWN = 2
TF_UPPER = 4
TF_MEMFD = 8
TF_LOGINUID = 16


class Hdr(ctypes.Structure):
    """``struct lanner_hdr``."""

    _fields_ = [
        ("ts_ns", ctypes.c_uint64),
        ("cgroup_id", ctypes.c_uint64),
        ("type", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("pid", ctypes.c_uint32),
        ("tid", ctypes.c_uint32),
        ("uid", ctypes.c_uint32),
        ("gid", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("comm", ctypes.c_char * 16),
        ("vpid", ctypes.c_uint32),
        ("vtid", ctypes.c_uint32),
    ]


class ExecBody(ctypes.Structure):
    """``struct lanner_exec``."""

    _fields_ = [
        ("res", ctypes.c_int64),
        ("sc", ctypes.c_uint32),
        ("old_tid", ctypes.c_int32),
        ("dirfd", ctypes.c_int32),
        ("at_flags", ctypes.c_uint32),
        ("filename_len", ctypes.c_uint16),
        ("args_len", ctypes.c_uint16),
        ("argc", ctypes.c_uint32),
        ("env_len", ctypes.c_uint16),
        ("_pad", ctypes.c_uint16 * 3),
    ]


class TaskBody(ctypes.Structure):
    """``struct lanner_task``: kernel facts at exec, after ``struct lanner_exec``."""

    _fields_ = [
        ("exe_ino", ctypes.c_uint64),
        ("exe_ctime_ns", ctypes.c_uint64),
        ("exe_mtime_ns", ctypes.c_uint64),
        ("cap_inheritable", ctypes.c_uint64),
        ("cap_permitted", ctypes.c_uint64),
        ("cap_effective", ctypes.c_uint64),
        ("sb_magic", ctypes.c_uint64),
        ("sb_flags", ctypes.c_uint64),
        ("mnt_flags", ctypes.c_uint32),
        ("exe_mode", ctypes.c_uint32),
        ("exe_uid", ctypes.c_uint32),
        ("exe_gid", ctypes.c_uint32),
        ("euid", ctypes.c_uint32),
        ("egid", ctypes.c_uint32),
        ("loginuid", ctypes.c_uint32),
        ("tty", ctypes.c_uint32),
        ("ppid", ctypes.c_uint32),
        ("vpid", ctypes.c_uint32),
        ("pidns", ctypes.c_uint32),
        ("mntns", ctypes.c_uint32),
        ("sid", ctypes.c_uint32),
        ("pgid", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
        ("pcomm", ctypes.c_char * 16),
    ]


class ForkBody(ctypes.Structure):
    """``struct lanner_fork``."""

    _fields_ = [
        ("clone_flags", ctypes.c_uint64),
        ("sc", ctypes.c_uint32),
        ("parent_pid", ctypes.c_uint32),
        ("parent_tid", ctypes.c_uint32),
        ("child_tid", ctypes.c_uint32),
        ("child_pid", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
    ]


class ExitBody(ctypes.Structure):
    """``struct lanner_exit``."""

    _fields_ = [
        ("code", ctypes.c_int32),
        ("has_code", ctypes.c_uint32),
        ("group_dead", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
    ]


class OpenBody(ctypes.Structure):
    """``struct lanner_open``."""

    _fields_ = [
        ("res", ctypes.c_int64),
        ("resolve", ctypes.c_uint64),
        ("sc", ctypes.c_uint32),
        ("dirfd", ctypes.c_int32),
        ("flags", ctypes.c_uint32),
        ("mode", ctypes.c_uint32),
        ("name_len", ctypes.c_uint16),
        ("_pad", ctypes.c_uint16 * 3),
    ]


class SockBody(ctypes.Structure):
    """``struct lanner_sock`` (connect / accept)."""

    _fields_ = [
        ("res", ctypes.c_int64),
        ("sc", ctypes.c_uint32),
        ("fd", ctypes.c_int32),
        ("flags", ctypes.c_uint32),
        ("addr_len", ctypes.c_uint32),
        ("addr", ctypes.c_uint8 * SOCKADDR_MAX),
    ]


class SocketBody(ctypes.Structure):
    """``struct lanner_socket``."""

    _fields_ = [
        ("res", ctypes.c_int64),
        ("sc", ctypes.c_uint32),
        ("domain", ctypes.c_uint32),
        ("type", ctypes.c_uint32),
        ("protocol", ctypes.c_uint32),
    ]


class GenericBody(ctypes.Structure):
    """``struct lanner_generic``."""

    _fields_ = [
        ("res", ctypes.c_int64),
        ("sc", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
        ("args", ctypes.c_uint64 * 4),
    ]


class FileopBody(ctypes.Structure):
    """``struct lanner_fileop``."""

    _fields_ = [
        ("res", ctypes.c_int64),
        ("sc", ctypes.c_uint32),
        ("dirfd1", ctypes.c_int32),
        ("dirfd2", ctypes.c_int32),
        ("flags", ctypes.c_uint32),
        ("mode", ctypes.c_uint32),
        ("path1_len", ctypes.c_uint16),
        ("path2_len", ctypes.c_uint16),
    ]


class FdpairBody(ctypes.Structure):
    """``struct lanner_fdpair`` (pipe, pipe2, socketpair)."""

    _fields_ = [
        ("res", ctypes.c_int64),
        ("sc", ctypes.c_uint32),
        ("fd1", ctypes.c_int32),
        ("fd2", ctypes.c_int32),
        ("flags", ctypes.c_uint32),
        ("domain", ctypes.c_uint32),
        ("type", ctypes.c_uint32),
        ("protocol", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
        ("ino1", ctypes.c_uint64),
        ("ino2", ctypes.c_uint64),
    ]


class StrsBody(ctypes.Structure):
    """``struct lanner_strs`` (mount, umount2, init_module, finit_module)."""

    _fields_ = [
        ("res", ctypes.c_int64),
        ("sc", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("num", ctypes.c_uint64 * 2),
        ("len", ctypes.c_uint16 * 3),
        ("_pad", ctypes.c_uint16),
    ]


C_NAMES: dict[type[ctypes.Structure], str] = {
    Hdr: "lanner_hdr",
    ExecBody: "lanner_exec",
    TaskBody: "lanner_task",
    ForkBody: "lanner_fork",
    ExitBody: "lanner_exit",
    OpenBody: "lanner_open",
    SockBody: "lanner_sock",
    SocketBody: "lanner_socket",
    FileopBody: "lanner_fileop",
    GenericBody: "lanner_generic",
    FdpairBody: "lanner_fdpair",
    StrsBody: "lanner_strs",
}

_CODES: dict[type, str] = {
    ctypes.c_uint64: "Q",
    ctypes.c_int64: "q",
    ctypes.c_uint32: "I",
    ctypes.c_int32: "i",
    ctypes.c_uint16: "H",
    ctypes.c_uint8: "B",
}


def struct_of(cls: type[ctypes.Structure]) -> struct.Struct:
    """A little-endian ``struct.Struct`` with the same offsets as ``cls``; arrays become one ``Ns`` bytes item."""
    fmt = "<"
    pos = 0
    for name, ctype in cls._fields_:  # type: ignore[misc]
        off = getattr(cls, name).offset
        if off > pos:
            fmt += f"{off - pos}x"
        size = ctypes.sizeof(ctype)
        code = _CODES.get(ctype)
        fmt += code if code is not None else f"{size}s"
        pos = off + size
    if ctypes.sizeof(cls) > pos:
        fmt += f"{ctypes.sizeof(cls) - pos}x"
    st = struct.Struct(fmt)
    if st.size != ctypes.sizeof(cls):
        raise AssertionError(f"{cls.__name__}: struct size {st.size} != ctypes size {ctypes.sizeof(cls)}")
    return st


HDR = struct_of(Hdr)
EXEC = struct_of(ExecBody)
TASK = struct_of(TaskBody)
FORK = struct_of(ForkBody)
EXIT = struct_of(ExitBody)
OPEN = struct_of(OpenBody)
SOCK = struct_of(SockBody)
SOCKET = struct_of(SocketBody)
FILEOP = struct_of(FileopBody)
GENERIC = struct.Struct("<qII4Q")
FDPAIR = struct_of(FdpairBody)
STRS = struct.Struct("<qII2Q3HH")
