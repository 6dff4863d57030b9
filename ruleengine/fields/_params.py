# SPDX-License-Identifier: Apache-2.0
"""Falco's exit-event parameter lists (name and print kind, in ``evt.arg[N]`` order) for the syscalls Lanner
sees, and the rendering of one raw parameter value the way ``evt.arg.NAME`` shows it."""

from __future__ import annotations

from ruleengine.fields import _tables as t

_EXEC = (
    "res:errno exe:str args:bytes tid:pid pid:pid ptid:pid cwd:str fdlimit:dec pgft_maj:dec pgft_min:dec "
    "vm_size:dec vm_rss:dec vm_swap:dec comm:str cgroups:bytes env:bytes tty:dec vpgid:pid loginuid:uid "
    "flags:flags:execve cap_inheritable:hex cap_permitted:hex cap_effective:hex exe_ino:dec exe_ino_ctime:dec "
    "exe_ino_mtime:dec uid:uid trusted_exepath:fspath pgid:pid gid:gid"
)
_CLONE = (
    "res:pid exe:str args:bytes tid:pid pid:pid ptid:pid cwd:str fdlimit:dec pgft_maj:dec pgft_min:dec "
    "vm_size:dec vm_rss:dec vm_swap:dec comm:str cgroups:bytes flags:flags:clone uid:dec gid:dec vtid:pid "
    "vpid:pid pidns_init_start_ts:dec"
)
_RW = "res:errno data:bytes fd:fd size:dec"

_SPEC: dict[str, str] = {
    "execve": _EXEC + " filename:fspath",
    "execveat": _EXEC,
    "clone": _CLONE,
    "fork": _CLONE,
    "vfork": _CLONE,
    "clone3": _CLONE,
    "procexit": "status:errno ret:errno sig:sig core:dec reaper_tid:pid",
    "kill": "res:errno pid:pid sig:sig",
    "tkill": "res:errno tid:pid sig:sig",
    "tgkill": "res:errno pid:pid tid:pid sig:sig",
    "prctl": "res:errno option:enum:prctl arg2_str:str arg2_int:dec",
    "capset": "res:errno cap_inheritable:hex cap_permitted:hex cap_effective:hex",
    "setuid": "res:errno uid:uid",
    "setgid": "res:errno gid:gid",
    "setresuid": "res:errno ruid:uid euid:uid suid:uid",
    "setresgid": "res:errno rgid:gid egid:gid sgid:gid",
    "setreuid": "res:errno ruid:uid euid:uid",
    "setregid": "res:errno rgid:gid egid:gid",
    "setns": "res:errno fd:fd nstype:flags:clone",
    "unshare": "res:errno flags:flags:clone",
    "ptrace": "res:errno addr:hex data:hex request:enum:ptrace pid:pid",
    "chdir": "res:errno path:str",
    "fchdir": "res:errno fd:fd",
    "chroot": "res:errno path:fspath",
    "open": "fd:fd name:fspath flags:open mode:oct dev:hex ino:dec",
    "openat": "fd:fd dirfd:fd name:fsrelpath flags:open mode:oct dev:hex ino:dec",
    "openat2": "fd:fd dirfd:fd name:fsrelpath flags:open mode:oct resolve:flags:resolve dev:hex ino:dec",
    "creat": "fd:fd name:fspath mode:oct dev:hex ino:dec creat_flags:hex",
    "open_by_handle_at": "fd:fd mountfd:fd flags:open path:fspath dev:hex ino:dec",
    "close": "res:errno fd:fd",
    "read": _RW,
    "write": _RW,
    "pread": _RW + " pos:dec",
    "pwrite": _RW + " pos:dec",
    "readv": "res:errno size:dec data:bytes fd:fd",
    "writev": "res:errno data:bytes fd:fd size:dec",
    "dup": "res:fd oldfd:fd",
    "dup2": "res:fd oldfd:fd newfd:fd",
    "dup3": "res:fd oldfd:fd newfd:fd flags:open",
    "pipe": "res:errno fd1:fd fd2:fd ino:dec",
    "pipe2": "res:errno fd1:fd fd2:fd ino:dec flags:open",
    "mkdir": "res:errno path:fspath mode:hex",
    "mkdirat": "res:errno dirfd:fd path:fsrelpath mode:hex",
    "rmdir": "res:errno path:fspath",
    "unlink": "res:errno path:fspath",
    "unlinkat": "res:errno dirfd:fd name:fsrelpath flags:flags:unlinkat",
    "rename": "res:errno oldpath:fspath newpath:fspath",
    "renameat": "res:errno olddirfd:fd oldpath:fsrelpath newdirfd:fd newpath:fsrelpath",
    "renameat2": "res:errno olddirfd:fd oldpath:fsrelpath newdirfd:fd newpath:fsrelpath flags:flags:renameat2",
    "link": "res:errno oldpath:fspath newpath:fspath",
    "linkat": "res:errno olddir:fd oldpath:fsrelpath newdir:fd newpath:fsrelpath flags:flags:linkat",
    "symlink": "res:errno target:str linkpath:fspath",
    "symlinkat": "res:errno target:str linkdirfd:fd linkpath:fsrelpath",
    "chmod": "res:errno filename:fspath mode:mode",
    "fchmod": "res:errno fd:fd mode:mode",
    "fchmodat": "res:errno dirfd:fd filename:fsrelpath mode:mode",
    "chown": "res:errno path:fspath uid:dec gid:dec",
    "lchown": "res:errno path:fspath uid:dec gid:dec",
    "fchown": "res:errno fd:fd uid:dec gid:dec",
    "fchownat": "res:errno dirfd:fd pathname:fsrelpath uid:dec gid:dec flags:flags:fchownat",
    "mount": "res:errno dev:str dir:fspath type:str flags:flags:mount",
    "umount": "res:errno name:fspath",
    "umount2": "res:errno name:fspath flags:flags:umount",
    "memfd_create": "fd:fd name:str flags:flags:memfd",
    "userfaultfd": "res:errno flags:open",
    "eventfd": "res:fd initval:dec flags:open",
    "eventfd2": "res:fd initval:dec flags:open",
    "fcntl": "res:fd fd:fd cmd:dec",
    "socket": "fd:fd domain:enum:family type:dec proto:dec flags:flags:sock",
    "bind": "res:errno addr:sockaddr fd:fd",
    "listen": "res:errno fd:fd backlog:dec",
    "connect": "res:errno tuple:socktuple fd:fd addr:sockaddr",
    "accept": "fd:fd tuple:socktuple queuepct:dec queuelen:dec queuemax:dec",
    "accept4": "fd:fd tuple:socktuple queuepct:dec queuelen:dec queuemax:dec flags:hex",
    "sendto": "res:errno data:bytes fd:fd size:dec tuple:socktuple",
    "sendmsg": "res:errno data:bytes fd:fd size:dec tuple:socktuple",
    "recvfrom": "res:errno data:bytes tuple:socktuple fd:fd size:dec",
    "recvmsg": "res:errno size:dec data:bytes tuple:socktuple msgcontrol:bytes fd:fd",
    "socketpair": "res:errno fd1:fd fd2:fd source:hex peer:hex domain:enum:family type:dec proto:dec",
    "mmap": "res:errno vm_size:dec vm_rss:dec vm_swap:dec addr:hex length:dec prot:flags:prot "
    "flags:flags:mmap fd:fd offset:dec",
    "mmap2": "res:errno vm_size:dec vm_rss:dec vm_swap:dec addr:hex length:dec prot:flags:prot "
    "flags:flags:mmap fd:fd pgoffset:dec",
    "mprotect": "res:errno addr:hex length:dec prot:flags:prot",
    "bpf": "fd:fd cmd:enum:bpf",
    "init_module": "res:errno img:bytes length:dec uargs:str",
    "finit_module": "res:errno fd:fd uargs:str flags:flags:finit",
}

TABLES: dict[str, t.FlagTable] = {
    "execve": t.EXECVE_FLAGS,
    "clone": t.CLONE_FLAGS,
    "prot": t.PROT_FLAGS,
    "mmap": t.MMAP_FLAGS,
    "mount": t.MOUNT_FLAGS,
    "umount": t.UMOUNT_FLAGS,
    "memfd": t.MEMFD_FLAGS,
    "unlinkat": t.UNLINKAT_FLAGS,
    "linkat": t.LINKAT_FLAGS,
    "fchownat": t.FCHOWNAT_FLAGS,
    "renameat2": t.RENAMEAT2_FLAGS,
    "resolve": t.RESOLVE_FLAGS,
    "finit": t.FINIT_MODULE_FLAGS,
    "sock": t.SOCK_FLAGS,
    "family": t.SOCKET_FAMILIES,
    "ptrace": t.PTRACE_REQUESTS,
    "bpf": t.BPF_COMMANDS,
    "prctl": t.PRCTL_OPTIONS,
}

PARAMS: dict[str, tuple[tuple[str, str], ...]] = {
    evt: tuple((p.split(":", 1)[0], p.split(":", 1)[1]) for p in spec.split()) for evt, spec in _SPEC.items()
}

# Every parameter name any event has, for validating evt.arg.NAME at rule-compile time.
ALL_PARAM_NAMES: frozenset[str] = frozenset(n for plist in PARAMS.values() for n, _ in plist)
NUMERIC_KINDS = frozenset({"errno", "fd", "pid", "uid", "gid", "sig", "dec", "hex", "oct", "mode", "open"})


_KINDS: dict[tuple[str, str], str] = {(evt, n): k for evt, plist in PARAMS.items() for n, k in plist}


def param_kind(evt_type: str, name: str) -> str | None:
    """The print kind of parameter ``name`` of ``evt_type`` (None when Falco's table lacks it)."""
    return _KINDS.get((evt_type, name))


_MEMO: dict[tuple[str, int], str] = {}


def render_param(kind: str | None, value: int | str | bytes) -> str:
    """What ``evt.arg.NAME`` shows: the resolved string when there is one, else the raw one."""
    if isinstance(value, int) and kind is not None and kind not in ("dec", "pid"):
        # Flag values repeat endlessly (O_RDONLY|O_CLOEXEC...): memoise the table walk (bounded).
        key = (kind, value)
        text = _MEMO.get(key)
        if text is None:
            text = _render(kind, value)
            if len(_MEMO) < 8192:
                _MEMO[key] = text
        return text
    return _render(kind, value)


def _render(kind: str | None, value: int | str | bytes) -> str:
    if isinstance(value, bytes):
        return "".join(chr(b) if 32 <= b < 127 else "." for b in value)
    if isinstance(value, str):
        return value if value else "<NA>"
    if kind is None or kind in ("dec", "pid"):
        return str(value)
    if kind == "errno":
        if value < 0:
            return t.ERRNO.get(-value, str(value))
        return str(value)
    if kind == "fd":
        if value == -100:
            return "AT_FDCWD"
        if value < 0:
            return t.ERRNO.get(-value, str(value))
        return str(value)
    if kind in ("uid", "gid"):
        return "<NONE>" if value in (-1, 0xFFFFFFFF) else ("root" if value == 0 else str(value))
    if kind == "sig":
        return t.SIGNALS.get(value, str(value))
    if kind == "hex":
        return format(value & 0xFFFFFFFFFFFFFFFF if value < 0 else value, "X")
    if kind == "oct":
        return "0" + format(value, "o") if value else "0"
    if kind == "mode":
        return t.flags_to_string(t.CHMOD_MODE, value) or ("0" + format(value, "o") if value else "0")
    if kind == "open":
        return t.open_flags_to_string(value)
    if kind.startswith("flags:"):
        return t.flags_to_string(TABLES[kind[6:]], value) or str(value)
    if kind.startswith("enum:"):
        return t.enum_to_string(TABLES[kind[5:]], value) or str(value)
    return str(value)


def parse_param(kind: str | None, value: object) -> int | str | bytes:
    """Raw parameter value from its JSON form (a number, or Falco's rendering such as ``O_RDONLY|O_CLOEXEC``)."""
    if isinstance(value, bool):
        raise ValueError("expected a number or a string, got a boolean")
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a number or a string, got {type(value).__name__}")
    if kind is None or kind in ("str", "fspath", "fsrelpath", "sockaddr", "socktuple"):
        return value
    if kind == "bytes":
        return value.encode("utf-8", "surrogateescape")
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    if kind == "hex":
        return int(text, 16)
    if kind == "oct":
        return int(text, 8)
    if kind == "open":
        return t.open_flags_from_string(text)
    if kind == "mode":
        return t.names_to_value(t.CHMOD_MODE, text)
    if kind in ("errno", "fd"):
        if kind == "fd" and text == "AT_FDCWD":
            return -100
        if text == "SUCCESS":
            return 0
        if text in t.ERRNO_BY_NAME:
            return -t.ERRNO_BY_NAME[text]
    if kind == "sig":
        for num, name in t.SIGNALS.items():
            if name == text:
                return num
    if kind in ("uid", "gid") and text == "root":
        return 0
    if kind.startswith("flags:"):
        return t.names_to_value(TABLES[kind[6:]], text)
    if kind.startswith("enum:"):
        return t.names_to_value(TABLES[kind[5:]], text.split("|")[-1], enum=True)
    raise ValueError(f"'{value}' is not a valid value for this parameter")
