# SPDX-License-Identifier: Apache-2.0
"""``proc.*`` and ``thread.*`` fields: the thread that made the syscall, its parent and its ancestors."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from lanner.model import Event, Process
from ruleengine.fields import _tables as T
from ruleengine.fields._builder import EventBuilder
from ruleengine.fields._context import EventContext
from ruleengine.fields._registry import register
from ruleengine.fields._types import ArgKind, Extractor, FieldType
from ruleengine.fields._values import as_bool, as_int, as_str, as_str_list

Getter = Callable[[Process], object]


def comm(p: Process) -> str:
    """``proc.name``: the comm; a process the collector could not find at all is Falco's fake ``<NA>`` thread."""
    return p.comm


def cmdline(p: Process) -> str:
    """``proc.cmdline``: comm, then each argument after one space."""
    return " ".join((p.comm, *p.args)) if p.args else p.comm


def _ancestor(ev: Event, n: int) -> Process | None:
    if n == 0:
        return ev.proc
    anc = ev.ancestors
    return anc[n - 1] if n <= len(anc) else None


def _proc_name(ctx: EventContext) -> str:
    ev = ctx.event
    if ev.proc_incomplete and not ev.proc.comm:
        return "<NA>"
    return ev.proc.comm


def _set_proc(key: str, conv: Callable[[object], Any]) -> Callable[[EventBuilder, str | None, object], None]:
    def setter(b: EventBuilder, arg: str | None, v: object) -> None:
        b.proc[key] = conv(v)

    return setter


def _set_cmdline(b: EventBuilder, arg: str | None, v: object) -> None:
    _fill_cmdline(b.proc, as_str(v))


def _fill_cmdline(p: dict[str, Any], text: str) -> None:
    parts = text.split(" ")
    p.setdefault("comm", parts[0])
    if len(parts) > 1:
        p.setdefault("args", tuple(parts[1:]))


def _set_args(b: EventBuilder, arg: str | None, v: object) -> None:
    if arg is None:
        b.proc["args"] = as_str_list(v)
        return
    idx = int(arg)
    args = list(b.proc.get("args", ()))
    while len(args) <= idx:
        args.append("")
    args[idx] = as_str(v)
    b.proc["args"] = tuple(args)


def _bind_args(arg: str) -> Extractor:
    idx = int(arg)

    def extract(ctx: EventContext) -> str:
        a = ctx.event.proc.args
        return a[idx] if idx < len(a) else ""

    return extract


def _env_value(env: tuple[str, ...], key: str) -> str:
    prefix = key + "="
    for item in env:
        if item.startswith(prefix):
            return item[len(prefix) :].strip()
    return ""


def _set_env(b: EventBuilder, arg: str | None, v: object) -> None:
    if arg is None:
        b.proc["env"] = as_str_list(v)
    else:
        b.proc["env"] = (*b.proc.get("env", ()), f"{arg}={as_str(v)}")


def _cwd(ctx: EventContext) -> str | None:
    cwd = ctx.event.proc.cwd
    if not cwd:
        return None
    return cwd if cwd.endswith("/") else cwd + "/"


def _duration(ctx: EventContext) -> int | None:
    start = ctx.event.proc.start_ns
    return None if not start else ctx.event.timing.event_ns - start


def _nonzero(v: int | None) -> int | None:
    return v if v else None


def _ctime_proc_start(ctx: EventContext) -> int | None:
    p = ctx.event.proc
    if not p.start_ns or not p.exe_ino_ctime:
        return None
    return (p.start_ns - p.exe_ino_ctime) & 0xFFFFFFFFFFFFFFFF


def _ctime_pidns_start(ctx: EventContext) -> int | None:
    p = ctx.event.proc
    if not p.pidns_init_start_ns or not p.exe_ino_ctime or p.exe_ino_ctime <= p.pidns_init_start_ns:
        return None
    return p.exe_ino_ctime - p.pidns_init_start_ns


def _leader(ctx: EventContext, attr: str) -> Process | None:
    """The session (``sid``) or process-group (``vpgid``) leader: the process whose pid is the id, else the
    eldest ancestor that still shares it."""
    ev = ctx.event
    target = getattr(ev.proc, attr)
    if target <= 0:
        return None
    if ev.proc.pid == target:
        return ev.proc
    eldest = None
    for a in ev.ancestors:
        if a.pid == target:
            return a
        if getattr(a, attr) != target:
            break
        eldest = a
    return eldest


def _leader_attr(attr: str, get: Callable[[Process], str]) -> Extractor:
    def extract(ctx: EventContext) -> str:
        p = _leader(ctx, attr)
        return "" if p is None else get(p)

    return extract


# ---- simple per-process fields -------------------------------------------------------------------------------
def _reg_proc(
    name: str,
    ftype: FieldType,
    desc: str,
    get: Getter,
    key: str | None,
    conv: Callable[[object], Any] = as_str,
    **kw: Any,
) -> None:
    register(
        name,
        ftype,
        desc,
        extract=lambda c: get(c.event.proc),
        setter=_set_proc(key, conv) if key else None,
        derived=key is None,
        **kw,
    )


def _opt_bool(v: object) -> bool:
    return as_bool(v)


register(
    "proc.name",
    FieldType.STRING,
    "The process name (truncated after 16 characters) generating the event (task->comm).",
    extract=_proc_name,
    setter=_set_proc("comm", as_str),
)
_reg_proc(
    "proc.exe",
    FieldType.STRING,
    "The first command-line argument (i.e., argv[0]), typically the "
    "executable name or a custom string as specified by the user.",
    lambda p: p.exe,
    "exe",
)
_reg_proc(
    "proc.exepath",
    FieldType.STRING,
    "The full executable path of a process, resolving to the canonical path for symlinks.",
    lambda p: p.exepath,
    "exepath",
)
register(
    "proc.args",
    FieldType.STRING,
    "The arguments passed on the command line when starting the process "
    "generating the event excluding argv[0]; proc.args[N] is the N-th one (0-based).",
    extract=lambda c: " ".join(c.event.proc.args),
    arg=ArgKind.OPTIONAL,
    arg_form="index",
    bind=_bind_args,
    setter=_set_args,
)
register(
    "proc.cmdline",
    FieldType.STRING,
    "The concatenation of `proc.name + proc.args` when starting the process generating the event.",
    extract=lambda c: cmdline(c.event.proc),
    setter=_set_cmdline,
    derived=True,
)
register(
    "proc.exeline",
    FieldType.STRING,
    "The full command line, with exe as first argument (proc.exe + proc.args).",
    extract=lambda c: " ".join((c.event.proc.exe, *c.event.proc.args)),
    derived=True,
)
register(
    "proc.env",
    FieldType.STRING,
    "The environment variables of the process generating the event as "
    "concatenated string 'ENV_NAME=value ENV_NAME1=value1'; proc.env[NAME] is one variable's value.",
    extract=lambda c: " ".join(c.event.proc.env),
    arg=ArgKind.OPTIONAL,
    arg_form="key",
    bind=lambda k: lambda c: _env_value(c.event.proc.env, k),
    setter=_set_env,
)
register(
    "proc.cwd",
    FieldType.STRING,
    "The current working directory of the event.",
    extract=_cwd,
    setter=_set_proc("cwd", as_str),
)
_reg_proc("proc.pid", FieldType.INT, "The id of the process generating the event.", lambda p: p.pid, "pid", as_int)
_reg_proc(
    "proc.vpid",
    FieldType.INT,
    "The id of the process generating the event as seen from its current PID namespace.",
    lambda p: None if p.vpid <= 0 else p.vpid,
    "vpid",
    as_int,
)
_reg_proc(
    "proc.tty",
    FieldType.UINT,
    "The controlling terminal of the process. 0 for processes without a terminal.",
    lambda p: p.tty,
    "tty",
    as_int,
)
_reg_proc(
    "proc.sid", FieldType.INT, "The session id of the process generating the event.", lambda p: p.sid, "sid", as_int
)
_reg_proc(
    "proc.vpgid",
    FieldType.INT,
    "The process group id of the process generating the event, as seen from its current PID namespace.",
    lambda p: p.vpgid,
    "vpgid",
    as_int,
)
_reg_proc(
    "proc.pgid",
    FieldType.INT,
    "The process group id of the process generating the event, as seen from the host PID namespace.",
    lambda p: p.pgid,
    "pgid",
    as_int,
)
register(
    "proc.sname",
    FieldType.STRING,
    "The name of the current process's session leader.",
    extract=_leader_attr("sid", comm),
    derived=True,
)
register(
    "proc.sid.exe",
    FieldType.STRING,
    "The first command line argument argv[0] (usually the executable "
    "name or a custom one) of the current process's session leader.",
    extract=_leader_attr("sid", lambda p: p.exe),
    derived=True,
)
register(
    "proc.sid.exepath",
    FieldType.STRING,
    "The full executable path of the current process's session leader.",
    extract=_leader_attr("sid", lambda p: p.exepath),
    derived=True,
)
register(
    "proc.vpgid.name",
    FieldType.STRING,
    "The name of the current process's process group leader.",
    extract=_leader_attr("vpgid", comm),
    derived=True,
)
register(
    "proc.vpgid.exe",
    FieldType.STRING,
    "The first command line argument argv[0] of the current process's group leader.",
    extract=_leader_attr("vpgid", lambda p: p.exe),
    derived=True,
)
register(
    "proc.vpgid.exepath",
    FieldType.STRING,
    "The full executable path of the current process's group leader.",
    extract=_leader_attr("vpgid", lambda p: p.exepath),
    derived=True,
)
_reg_proc(
    "proc.is_sid_leader",
    FieldType.BOOL,
    "'true' if this process is the leader of the process session.",
    lambda p: p.is_sid_leader if p.is_sid_leader is not None else p.sid == p.vpid,
    "is_sid_leader",
    _opt_bool,
)
_reg_proc(
    "proc.is_vpgid_leader",
    FieldType.BOOL,
    "'true' if this process is the leader of the virtual process group.",
    lambda p: p.is_vpgid_leader if p.is_vpgid_leader is not None else p.vpgid == p.vpid,
    "is_vpgid_leader",
    _opt_bool,
)
register(
    "proc.duration",
    FieldType.RELTIME,
    "Number of nanoseconds since the process started.",
    extract=_duration,
    derived=True,
)
_reg_proc(
    "proc.pid.ts",
    FieldType.ABSTIME,
    "Start of process as epoch timestamp in nanoseconds.",
    lambda p: _nonzero(p.start_ns),
    "start_ns",
    as_int,
)
_reg_proc(
    "proc.is_exe_writable",
    FieldType.BOOL,
    "'true' if this process' executable file is writable by the same user that spawned the process.",
    lambda p: p.is_exe_writable,
    "is_exe_writable",
    _opt_bool,
)
_reg_proc(
    "proc.is_exe_upper_layer",
    FieldType.BOOL,
    "'true' if this process' executable file is in upper layer in overlayfs.",
    lambda p: p.is_exe_upper_layer,
    "is_exe_upper_layer",
    _opt_bool,
)
_reg_proc(
    "proc.is_exe_from_memfd",
    FieldType.BOOL,
    "'true' if the executable file of the current process is an anonymous file created using memfd_create().",
    lambda p: p.is_exe_from_memfd,
    "is_exe_from_memfd",
    _opt_bool,
)
_reg_proc(
    "proc.exe_ino",
    FieldType.INT,
    "The inode number of the executable file on disk.",
    lambda p: _nonzero(p.exe_ino),
    "exe_ino",
    as_int,
)
_reg_proc(
    "proc.exe_ino.ctime",
    FieldType.ABSTIME,
    "Last status change time of executable file (inode->ctime) as epoch timestamp in nanoseconds.",
    lambda p: _nonzero(p.exe_ino_ctime),
    "exe_ino_ctime",
    as_int,
)
_reg_proc(
    "proc.exe_ino.mtime",
    FieldType.ABSTIME,
    "Last modification time of executable file (inode->mtime) as epoch timestamp in nanoseconds.",
    lambda p: _nonzero(p.exe_ino_mtime),
    "exe_ino_mtime",
    as_int,
)
register(
    "proc.exe_ino.ctime_duration_proc_start",
    FieldType.ABSTIME,
    "Number of nanoseconds between modifying "
    "status of executable image and spawning a new process using the changed executable image.",
    extract=_ctime_proc_start,
    derived=True,
)
register(
    "proc.exe_ino.ctime_duration_pidns_start",
    FieldType.ABSTIME,
    "Number of nanoseconds between PID namespace start ts and ctime exe file if PID namespace start predates ctime.",
    extract=_ctime_pidns_start,
    derived=True,
)
_reg_proc(
    "proc.pidns_init_start_ts",
    FieldType.UINT,
    "Start of PID namespace (container or non container pid namespace) as epoch timestamp in nanoseconds.",
    lambda p: _nonzero(p.pidns_init_start_ns),
    "pidns_init_start_ns",
    as_int,
)
_reg_proc(
    "proc.fdopencount",
    FieldType.UINT,
    "Number of open FDs for the process.",
    lambda p: p.fd_open_count,
    "fd_open_count",
    as_int,
)
_reg_proc(
    "proc.fdlimit",
    FieldType.INT,
    "Maximum number of FDs the process can open.",
    lambda p: p.fd_limit,
    "fd_limit",
    as_int,
)
_reg_proc(
    "proc.vmsize",
    FieldType.UINT,
    "Total virtual memory for the process (as kb).",
    lambda p: p.vm_size_kb,
    "vm_size_kb",
    as_int,
)
_reg_proc(
    "proc.vmrss",
    FieldType.UINT,
    "Resident non-swapped memory for the process (as kb).",
    lambda p: p.vm_rss_kb,
    "vm_rss_kb",
    as_int,
)
_reg_proc(
    "proc.vmswap",
    FieldType.UINT,
    "Swapped memory for the process (as kb).",
    lambda p: p.vm_swap_kb,
    "vm_swap_kb",
    as_int,
)
for _probe in ("healthcheck", "liveness_probe", "readiness_probe"):
    register(
        f"proc.is_container_{_probe}",
        FieldType.BOOL,
        f"Deprecated; always empty (container {_probe}).",
        extract=lambda c: None,
        derived=True,
        deprecated=True,
    )

_STD_TYPES = {
    "f": "file",
    "d": "directory",
    "4": "ipv4",
    "6": "ipv6",
    "u": "unix",
    "p": "pipe",
    "e": "event",
    "s": "signalfd",
    "l": "eventpoll",
    "i": "inotify",
    "t": "timerfd",
    "n": "netlink",
    "b": "bpf",
    "r": "io_uring",
    "m": "memfd",
    "P": "pidfd",
}


def _std_type(i: int) -> Extractor:
    return lambda c: _STD_TYPES.get(c.event.proc.std_fd_types[i : i + 1])


for _i, _stream in enumerate(("stdin", "stdout", "stderr")):
    register(
        f"proc.{_stream}.type",
        FieldType.STRING,
        f"The type of file descriptor {_i} ({_stream}).",
        extract=_std_type(_i),
        derived=True,
    )


# ---- parent and ancestors ------------------------------------------------------------------------------------
def _parent(get: Getter) -> Extractor:
    def extract(ctx: EventContext) -> object:
        anc = ctx.event.ancestors
        return get(anc[0]) if anc else None

    return extract


def _nth(get: Getter) -> Callable[[str], Extractor]:
    def bind(arg: str) -> Extractor:
        n = int(arg)

        def extract(ctx: EventContext) -> object:
            p = _ancestor(ctx.event, n)
            return None if p is None else get(p)

        return extract

    return bind


def _all(get: Getter) -> Extractor:
    def extract(ctx: EventContext) -> tuple[object, ...]:
        return tuple([get(a) for a in ctx.event.ancestors])

    return extract


def _anc_setter(key: str, conv: Callable[[object], Any], parent_only: bool = False) -> Any:
    def setter(b: EventBuilder, arg: str | None, v: object) -> None:
        if parent_only:
            n = 1
        elif arg is None:
            raise ValueError("an index is required to set an ancestor field, e.g. proc.aname[2]")
        else:
            n = int(arg)
        target = b.ancestor(n)
        if key == "cmdline":
            _fill_cmdline(target, as_str(v))
        else:
            target[key] = conv(v)

    return setter


def _as_pid(v: object) -> int:
    return as_int(v)


for _short, _long, _get, _key, _ftype, _conv in (
    ("name", "proc.name", comm, "comm", FieldType.STRING, as_str),
    ("exe", "proc.exe", lambda p: p.exe, "exe", FieldType.STRING, as_str),
    ("exepath", "proc.exepath", lambda p: p.exepath, "exepath", FieldType.STRING, as_str),
    ("cmdline", "proc.cmdline", cmdline, "cmdline", FieldType.STRING, as_str),
    ("pid", "proc.pid", lambda p: p.pid, "pid", FieldType.INT, _as_pid),
):
    _pname = "proc.ppid" if _short == "pid" else f"proc.p{_short}"
    register(
        _pname,
        _ftype,
        f"The {_long} of the parent process.",
        extract=_parent(_get),
        setter=_anc_setter(_key, _conv, parent_only=True),
    )
    register(
        f"proc.a{_short}",
        _ftype,
        f"The {_long} for a specific process ancestor: proc.a{_short}[1] is the "
        f"parent, [2] the grandparent, [0] the process itself. Without an index, a condition holds when any "
        f"ancestor matches; an output lists all ancestors.",
        extract=_all(_get),
        bind=_nth(_get),
        arg=ArgKind.OPTIONAL,
        arg_form="index",
        setter=_anc_setter(_key, _conv),
        no_rhs=True,
        any_of_without_arg=True,
    )

register(
    "proc.pvpid",
    FieldType.INT,
    "The id of the parent process generating the event as seen from its current PID namespace.",
    extract=_parent(lambda p: p.vpid or None),
    setter=_anc_setter("vpid", as_int, parent_only=True),
)
register(
    "proc.ppid.ts",
    FieldType.ABSTIME,
    "Start of parent process as epoch timestamp in nanoseconds.",
    extract=_parent(lambda p: _nonzero(p.start_ns)),
    derived=True,
)
register(
    "proc.ppid.duration",
    FieldType.RELTIME,
    "Number of nanoseconds since the parent process started.",
    extract=lambda c: (
        (c.event.timing.event_ns - c.event.ancestors[0].start_ns)
        if c.event.ancestors and c.event.ancestors[0].start_ns
        else None
    ),
    derived=True,
)


# ---- thread.* ------------------------------------------------------------------------------------------------
def _caps(get: Callable[[Process], int | None]) -> Extractor:
    def extract(ctx: EventContext) -> str | None:
        mask = get(ctx.event.proc)
        return None if mask is None else T.caps_to_string(mask)

    return extract


def _caps_setter(key: str) -> Any:
    def setter(b: EventBuilder, arg: str | None, v: object) -> None:
        b.proc[key] = as_int(v) if isinstance(v, int) else T.caps_from_string(as_str(v))

    return setter


register(
    "thread.tid",
    FieldType.INT,
    "The id of the thread generating the event.",
    extract=lambda c: c.event.proc.tid or c.event.proc.pid,
    setter=_set_proc("tid", as_int),
)
register(
    "thread.vtid",
    FieldType.INT,
    "The id of the thread generating the event as seen from its current PID namespace.",
    extract=lambda c: c.event.proc.vtid or None,
    setter=_set_proc("vtid", as_int),
)
register(
    "thread.ismain",
    FieldType.BOOL,
    "'true' if the thread generating the event is the main one in the process.",
    extract=lambda c: not c.event.proc.tid or c.event.proc.tid == c.event.proc.pid,
    derived=True,
)


def _cap_attr(which: str) -> Callable[[Process], int | None]:
    return operator.attrgetter(f"cap_{which}")


for _set in ("effective", "permitted", "inheritable"):
    register(
        f"thread.cap_{_set}",
        FieldType.STRING,
        f"The {_set} capabilities set",
        extract=_caps(_cap_attr(_set)),
        setter=_caps_setter(f"cap_{_set}"),
    )
register(
    "thread.cgroups",
    FieldType.STRING,
    "All cgroups the thread belongs to, aggregated into a single string.",
    extract=lambda c: " ".join(c.event.proc.cgroups),
    setter=_set_proc("cgroups", as_str_list),
)


def _bind_cgroup(subsys: str) -> Extractor:
    def extract(ctx: EventContext) -> str | None:
        for cg in ctx.event.proc.cgroups:
            name, _, path = cg.partition("=")
            if name == subsys or (subsys in name.split(",")):
                return path
        return None

    return extract


register(
    "thread.cgroup",
    FieldType.STRING,
    "The cgroup the thread belongs to, for a specific subsystem. e.g. thread.cgroup.cpuacct.",
    arg=ArgKind.REQUIRED,
    arg_form="key",
    bind=_bind_cgroup,
    derived=True,
)
