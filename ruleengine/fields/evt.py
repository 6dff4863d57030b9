# SPDX-License-Identifier: Apache-2.0
"""``evt.*`` fields: event type, time, result, arguments and the open-mode helpers."""

from __future__ import annotations

import time as _time

from lanner.model import Event
from ruleengine.fields import _tables as T
from ruleengine.fields._builder import EventBuilder
from ruleengine.fields._context import EventContext
from ruleengine.fields._registry import K8S_AUDIT, SYSCALL, register
from ruleengine.fields._types import FieldType
from ruleengine.fields._values import as_bool, as_int, as_str

BOTH = (SYSCALL, K8S_AUDIT)
OPEN_EVENTS = frozenset({"open", "openat", "openat2", "open_by_handle_at"})
# Tracepoint-style events have no return value in Falco (evt.res / evt.rawres / evt.failed are absent).
_NO_RESULT = frozenset(
    {
        "procexit",
        "signaldeliver",
        "switch",
        "page_fault",
        "container",
        "notification",
        "infra",
        "sysdigevent",
        "pluginevent",
        "asyncevent",
    }
)


# ---- time ----------------------------------------------------------------------------------------------------
def _ns(ctx: EventContext) -> int:
    return ctx.event.timing.event_ns


def format_time(ns: int) -> str:
    """``HH:MM:SS.nnnnnnnnn`` in local time (Falco's ``evt.time``)."""
    return _time.strftime("%H:%M:%S", _time.localtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}"


def format_datetime(ns: int) -> str:
    """``YYYY-MM-DD HH:MM:SS.nnnnnnnnn`` in local time (``evt.datetime``)."""
    return _time.strftime("%Y-%m-%d %H:%M:%S", _time.localtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}"


def format_iso8601(ns: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.nnnnnnnnn+0000`` in UTC (``evt.time.iso8601``)."""
    return _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}+0000"


def _set_rawtime(b: EventBuilder, arg: str | None, v: object) -> None:
    b.timing["event_ns"] = as_int(v)


def _set_time_iso(b: EventBuilder, arg: str | None, v: object) -> None:
    import datetime as dt

    text = as_str(v)
    frac = 0
    main = text
    if "." in text:
        main, rest = text.split(".", 1)
        digits = "".join(ch for ch in rest if ch.isdigit())
        tz = rest[len(digits) :]
        frac = int((digits + "000000000")[:9])
        main += tz
    try:
        parsed = dt.datetime.fromisoformat(main.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"'{text}' is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    b.timing["event_ns"] = int(parsed.timestamp()) * 1_000_000_000 + frac


register(
    "evt.num",
    FieldType.UINT,
    "event number.",
    sources=BOTH,
    extract=lambda c: c.event.identity.seq,
    setter=lambda b, a, v: b.identity.__setitem__("seq", as_int(v)),
)
register(
    "evt.time",
    FieldType.STRING,
    "event timestamp as a time string that includes the nanosecond part.",
    sources=BOTH,
    extract=lambda c: format_time(_ns(c)),
    derived=True,
)
register(
    "evt.time.s",
    FieldType.STRING,
    "event timestamp as a time string with no nanoseconds.",
    sources=BOTH,
    extract=lambda c: format_time(_ns(c))[:8],
    derived=True,
)
register(
    "evt.time.iso8601",
    FieldType.STRING,
    "event timestamp in ISO 8601 format, including nanoseconds and time zone offset (in UTC).",
    sources=BOTH,
    extract=lambda c: format_iso8601(_ns(c)),
    setter=_set_time_iso,
)
register(
    "evt.datetime",
    FieldType.STRING,
    "event timestamp as a time string that includes the date.",
    sources=BOTH,
    extract=lambda c: format_datetime(_ns(c)),
    derived=True,
)
register(
    "evt.datetime.s",
    FieldType.STRING,
    "event timestamp as a datetime string with no nanoseconds.",
    sources=BOTH,
    extract=lambda c: format_datetime(_ns(c))[:19],
    derived=True,
)
register(
    "evt.rawtime",
    FieldType.ABSTIME,
    "absolute event timestamp, i.e. nanoseconds from epoch.",
    sources=BOTH,
    extract=_ns,
    setter=_set_rawtime,
)
register(
    "evt.rawtime.s",
    FieldType.ABSTIME,
    "integer part of the event timestamp (e.g. seconds since epoch).",
    sources=BOTH,
    extract=lambda c: _ns(c) // 1_000_000_000,
    derived=True,
)
register(
    "evt.rawtime.ns",
    FieldType.ABSTIME,
    "fractional part of the absolute event timestamp.",
    sources=BOTH,
    extract=lambda c: _ns(c) % 1_000_000_000,
    derived=True,
)
register(
    "evt.hostname",
    FieldType.STRING,
    "The hostname of the underlying host.",
    sources=BOTH,
    extract=lambda c: c.event.identity.node or None,
    setter=lambda b, a, v: b.identity.__setitem__("node", as_str(v)),
)
register(
    "evt.source",
    FieldType.STRING,
    "the name of the source that produced the event.",
    sources=BOTH,
    extract=lambda c: c.event.source,
    setter=lambda b, a, v: None,
    derived=True,
)
register(
    "evt.pluginname",
    FieldType.STRING,
    "if the event comes from a plugin-defined event source, the name of the plugin that generated it.",
    sources=BOTH,
    extract=lambda c: "k8saudit" if c.event.source == K8S_AUDIT else None,
    derived=True,
)
register(
    "evt.is_async",
    FieldType.BOOL,
    "'true' for asynchronous events, 'false' otherwise.",
    sources=BOTH,
    extract=lambda c: False,
    derived=True,
)


# ---- type, direction, cpu, result ----------------------------------------------------------------------------
def _set_type(b: EventBuilder, arg: str | None, v: object) -> None:
    text = as_str(v)
    if not text:
        raise ValueError("evt.type must not be empty")
    b.event["type"] = text


register(
    "evt.type",
    FieldType.STRING,
    "The name of the event (e.g. 'open').",
    extract=lambda c: c.event.type,
    setter=_set_type,
)
register(
    "evt.dir",
    FieldType.CHAR,
    "event direction can be either '>' for enter events or '<' for exit events.",
    extract=lambda c: ">" if c.event.type == "procexit" else "<",
    deprecated=True,
    derived=True,
)
register(
    "evt.cpu",
    FieldType.INT,
    "number of the CPU where this event happened.",
    extract=lambda c: c.event.cpu,
    setter=lambda b, a, v: b.event.__setitem__("cpu", as_int(v)),
)
register(
    "evt.latency",
    FieldType.RELTIME,
    "delta between an exit event and the correspondent enter event, in nanoseconds (always 0).",
    extract=lambda c: 0,
    deprecated=True,
    derived=True,
)
register("evt.count", FieldType.UINT, "This filter field always returns 1.", extract=lambda c: 1, derived=True)


def has_result(ev: Event) -> bool:
    """Whether Falco gives this event a return value (tracepoint-style events such as procexit have none)."""
    return ev.type not in _NO_RESULT


def _rawres(ctx: EventContext) -> int | None:
    ev = ctx.event
    return None if ev.type in _NO_RESULT else ev.res


def _res(ctx: EventContext) -> str | None:
    ev = ctx.event
    if ev.type in _NO_RESULT:
        return None
    r = ev.res
    return "SUCCESS" if r >= 0 else T.ERRNO.get(-r, str(r))


def _set_rawres(b: EventBuilder, arg: str | None, v: object) -> None:
    b.event["res"] = as_int(v)


def _set_res(b: EventBuilder, arg: str | None, v: object) -> None:
    text = as_str(v)
    if "res" in b.event:
        return  # evt.rawres given too; the consistency check compares the two
    if text == "SUCCESS":
        b.event["res"] = 0
    elif text in T.ERRNO_BY_NAME:
        b.event["res"] = -T.ERRNO_BY_NAME[text]
    elif text.lstrip("-").isdigit():
        b.event["res"] = int(text)
    else:
        raise ValueError(f"'{text}' is neither SUCCESS nor an errno name")


def _set_failed(b: EventBuilder, arg: str | None, v: object) -> None:
    if as_bool(v) and "res" not in b.event:
        b.event["res"] = -1


register(
    "evt.rawres",
    FieldType.INT,
    "event return value, as a number (e.g. -2). Useful for range comparisons.",
    extract=_rawres,
    setter=_set_rawres,
)
register(
    "evt.res",
    FieldType.STRING,
    "event return value, as a string. If the event failed, the result is an "
    "error code string (e.g. 'ENOENT'), otherwise the result is the string 'SUCCESS'.",
    extract=_res,
    setter=_set_res,
    derived=True,
)
register(
    "evt.failed",
    FieldType.BOOL,
    "'true' for events that returned an error status.",
    extract=lambda c: None if c.event.type in _NO_RESULT else c.event.res < 0,
    setter=_set_failed,
    derived=True,
)


# ---- open helpers --------------------------------------------------------------------------------------------
def open_flags(ev: Event) -> int | None:
    """The kernel open flags of an open-family event: the fd's, else the ``flags`` parameter."""
    if ev.fd is not None and ev.fd.open_flags is not None:
        return ev.fd.open_flags
    v = ev.arg("flags")
    return v if isinstance(v, int) else None


def _open_mode(ev: Event) -> int:
    if ev.fd is not None and ev.fd.mode is not None:
        return ev.fd.mode
    v = ev.arg("mode")
    return v if isinstance(v, int) else 0


def _is_open_read(ctx: EventContext) -> bool:
    ev = ctx.event
    if ev.type not in OPEN_EVENTS:
        return False
    f = open_flags(ev)
    return f is not None and (f & T.O_ACCMODE) in (0, T.O_RDWR)


def _is_open_write(ctx: EventContext) -> bool:
    ev = ctx.event
    if ev.type not in OPEN_EVENTS:
        return False
    f = open_flags(ev)
    return f is not None and (f & T.O_ACCMODE) in (T.O_WRONLY, T.O_RDWR)


def _is_open_exec(ctx: EventContext) -> bool:
    ev = ctx.event
    if ev.type == "creat":
        return bool(_open_mode(ev) & 0o111)
    if ev.type not in OPEN_EVENTS or ev.type == "open_by_handle_at":
        return False
    f = open_flags(ev)
    if f is None or not f & (T.O_CREAT | T.O_TMPFILE_BIT):
        return False
    return bool(_open_mode(ev) & 0o111)


def _is_open_create(ctx: EventContext) -> bool:
    ev = ctx.event
    if ev.type not in OPEN_EVENTS and ev.type != "creat":
        return False
    f = open_flags(ev) or 0
    return bool(f & T.O_F_CREATED) or bool(f & T.O_TMPFILE_BIT and ev.res >= 0)


def _set_open_read(b: EventBuilder, arg: str | None, v: object) -> None:
    if not as_bool(v) or "flags" in b.args:
        return
    fd = b.fd_dict()
    cur = fd.get("open_flags")
    if cur is None:
        fd["open_flags"] = 0
    elif cur & T.O_ACCMODE == T.O_WRONLY:
        fd["open_flags"] = (cur & ~T.O_ACCMODE) | T.O_RDWR


def _set_open_write(b: EventBuilder, arg: str | None, v: object) -> None:
    if not as_bool(v) or "flags" in b.args:
        return
    fd = b.fd_dict()
    cur = fd.get("open_flags")
    if cur is None:
        fd["open_flags"] = T.O_WRONLY
    elif cur & T.O_ACCMODE == 0:
        # Applied after is_open_read set O_RDONLY: both together mean O_RDWR.
        fd["open_flags"] = cur | T.O_RDWR


def _set_open_exec(b: EventBuilder, arg: str | None, v: object) -> None:
    if not as_bool(v):
        return
    fd = b.fd_dict()
    if "flags" not in b.args:
        fd["open_flags"] = (fd.get("open_flags") or 0) | T.O_CREAT
    if fd.get("mode") is None and "mode" not in b.args:
        fd["mode"] = 0o755


def _set_open_create(b: EventBuilder, arg: str | None, v: object) -> None:
    if as_bool(v) and "flags" not in b.args:
        fd = b.fd_dict()
        fd["open_flags"] = (fd.get("open_flags") or 0) | T.O_F_CREATED


register(
    "evt.is_open_read",
    FieldType.BOOL,
    "'true' for open/openat/openat2/open_by_handle_at events where the path was opened for reading",
    extract=_is_open_read,
    setter=_set_open_read,
    derived=True,
)
register(
    "evt.is_open_write",
    FieldType.BOOL,
    "'true' for open/openat/openat2/open_by_handle_at events where the path was opened for writing",
    extract=_is_open_write,
    setter=_set_open_write,
    derived=True,
)
register(
    "evt.is_open_exec",
    FieldType.BOOL,
    "'true' for open/openat/openat2/open_by_handle_at or creat events where a file is created with execute permissions",
    extract=_is_open_exec,
    setter=_set_open_exec,
    derived=True,
)
register(
    "evt.is_open_create",
    FieldType.BOOL,
    "'true' for open/openat/openat2/open_by_handle_at events where a file is created.",
    extract=_is_open_create,
    setter=_set_open_create,
    derived=True,
)


# ---- category ------------------------------------------------------------------------------------------------
_CATEGORY: dict[str, str] = {}
for _cat, _names in (
    (
        "file",
        "open openat openat2 creat open_by_handle_at close mkdir mkdirat rmdir unlink unlinkat rename "
        "renameat renameat2 link linkat symlink symlinkat chmod fchmod fchmodat chown lchown fchown "
        "fchownat mount umount umount2 dup dup2 dup3 memfd_create userfaultfd chdir fchdir chroot",
    ),
    ("net", "socket bind listen connect accept accept4 socketpair shutdown"),
    ("process", "execve execveat clone clone3 fork vfork procexit prctl setns unshare ptrace capset"),
    ("user", "setuid setgid setresuid setresgid setreuid setregid"),
    ("signal", "kill tkill tgkill signaldeliver"),
    ("memory", "mmap mmap2 mprotect munmap brk"),
    ("IPC", "pipe pipe2"),
    ("system", "init_module finit_module bpf"),
):
    for _n in _names.split():
        _CATEGORY[_n] = _cat
_IO = frozenset(["read", "write", "pread", "pwrite", "readv", "writev", "sendto", "sendmsg", "recvfrom", "recvmsg"])


def _category(ctx: EventContext) -> str:
    ev = ctx.event
    if ev.type in _IO:
        from ruleengine.fields.fd import io_category

        return io_category(ev)
    return _CATEGORY.get(ev.type, "other")


register(
    "evt.category",
    FieldType.STRING,
    "The event category. Example values are 'file' (for file operations "
    "like open and close), 'net' (for network operations like socket and bind), memory (for things like brk "
    "or mmap), and so on.",
    extract=_category,
    derived=True,
)
register(
    "evt.is_io",
    FieldType.BOOL,
    "'true' for events that read or write to FDs, like read(), send, recvfrom(), etc.",
    extract=lambda c: c.event.type in _IO,
    derived=True,
)
register(
    "evt.is_io_read",
    FieldType.BOOL,
    "'true' for events that read from FDs, like read(), recv(), recvfrom(), etc.",
    extract=lambda c: c.event.type in _IO and c.event.type.startswith("re"),
    derived=True,
)
register(
    "evt.is_io_write",
    FieldType.BOOL,
    "'true' for events that write to FDs, like write(), send(), etc.",
    extract=lambda c: c.event.type in _IO and not c.event.type.startswith("re"),
    derived=True,
)
