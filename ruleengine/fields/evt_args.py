# SPDX-License-Identifier: Apache-2.0
"""``evt.arg.*``, ``evt.rawarg.*``, ``evt.arg[N]``, ``evt.args``, ``evt.buffer`` and ``evt.abspath*``: syscall
parameters rendered through Falco's parameter tables."""

from __future__ import annotations

from lanner.model import ArgValue, Event
from ruleengine.fields import _params as P
from ruleengine.fields._builder import EventBuilder
from ruleengine.fields._context import EventContext
from ruleengine.fields._registry import Setter, register, register_dynamic
from ruleengine.fields._types import ArgKind, Extractor, FieldInfo, FieldType
from ruleengine.fields._values import as_str
from ruleengine.fields.evt import OPEN_EVENTS

EXEC_EVENTS = frozenset({"execve", "execveat"})


def exe_flags(ev: Event) -> int | None:
    """Falco's execve ``flags`` from the facts the collector records about the new executable (absent when it
    recorded none of them). A container's executable that is not in the writable layer is in a lower one."""
    p = ev.proc
    if p.is_exe_writable is None and p.is_exe_upper_layer is None and p.is_exe_from_memfd is None:
        return None
    flags = 0
    if p.is_exe_writable:
        flags |= 1
    if p.is_exe_upper_layer:
        flags |= 2
    elif p.is_exe_upper_layer is False and ev.container.id != "host" and not p.is_exe_from_memfd:
        flags |= 8
    if p.is_exe_from_memfd:
        flags |= 4
    return flags


# ---- arguments -----------------------------------------------------------------------------------------------
def raw_arg(ev: Event, name: str) -> ArgValue | None:
    """The raw value of parameter ``name``; the return value stands in for a missing param 0 (``fd``/``res``)."""
    for a in ev.args:
        if a.name == name:
            return a.value
    plist = P.PARAMS.get(ev.type)
    if plist and plist[0][0] == name:
        return ev.res
    if name == "flags" and ev.type in EXEC_EVENTS:
        return exe_flags(ev)
    if ev.fd is not None:
        if name == "flags" and ev.type in OPEN_EVENTS and ev.fd.open_flags is not None:
            return ev.fd.open_flags
        if name in ("name", "path") and ev.type in OPEN_EVENTS and (ev.fd.path_raw or ev.fd.path):
            return ev.fd.path if name == "path" or not ev.fd.path_raw else ev.fd.path_raw
        if name == "fd" and ev.fd.num >= 0:
            return ev.fd.num
    return None


def _arg_by_name(name: str) -> Extractor:
    def extract(ctx: EventContext) -> str | None:
        ev = ctx.event
        v = raw_arg(ev, name)
        if v is None:
            return None
        kind = P.param_kind(ev.type, name)
        if kind == "fd" and isinstance(v, int) and v >= 0 and ev.fd is not None and ev.fd.num == v:
            from ruleengine.fields.fd import fd_name, fd_typechar

            return f"<{fd_typechar(ev.fd) or ''}>{fd_name(ev) or ''}"
        return P.render_param(kind, v)

    return extract


def _rawarg_by_name(name: str) -> Extractor:
    def extract(ctx: EventContext) -> object:
        v = raw_arg(ctx.event, name)
        if isinstance(v, bytes):
            return v.decode("utf-8", "replace")
        return v

    return extract


def _arg_setter(name: str) -> Setter:
    def setter(b: EventBuilder, arg: str | None, v: object) -> None:
        kind = P.param_kind(str(b.event.get("type", "")), name)
        if kind is None:
            for plist in P.PARAMS.values():
                kind = next((k for n, k in plist if n == name), None)
                if kind is not None:
                    break
        b.args[name] = P.parse_param(kind, v)

    return setter


def _resolve_arg(source: str, suffix: str) -> tuple[FieldInfo, Extractor, Setter | None] | None:
    if suffix not in P.ALL_PARAM_NAMES:
        return None
    info = FieldInfo("evt.arg." + suffix, FieldType.STRING, "one of the event arguments specified by name.", source)
    return info, _arg_by_name(suffix), _arg_setter(suffix)


def _resolve_rawarg(source: str, suffix: str) -> tuple[FieldInfo, Extractor, Setter | None] | None:
    if suffix not in P.ALL_PARAM_NAMES:
        return None
    kinds = {k for plist in P.PARAMS.values() for n, k in plist if n == suffix}
    numeric = all(k in P.NUMERIC_KINDS or k.startswith(("flags:", "enum:")) for k in kinds)
    info = FieldInfo(
        "evt.rawarg." + suffix,
        FieldType.INT if numeric else FieldType.STRING,
        "one of the event arguments specified by name, as its raw value.",
        source,
    )
    return info, _rawarg_by_name(suffix), _arg_setter(suffix)


register_dynamic("evt.arg.", _resolve_arg)
register_dynamic("evt.rawarg.", _resolve_rawarg)


def _bind_arg(arg: str) -> Extractor:
    if arg.isdigit():
        idx = int(arg)

        def by_index(ctx: EventContext) -> str | None:
            ev = ctx.event
            plist = P.PARAMS.get(ev.type)
            if plist is not None:
                if idx >= len(plist):
                    return None
                return _arg_by_name(plist[idx][0])(ctx)  # type: ignore[return-value]
            if idx >= len(ev.args):
                return None
            return P.render_param(None, ev.args[idx].value)

        return by_index
    if arg not in P.ALL_PARAM_NAMES:
        from ruleengine.fields._types import FieldArgError

        raise FieldArgError(f"unknown event argument '{arg}'")
    return _arg_by_name(arg)


def _set_arg_indexed(b: EventBuilder, arg: str | None, v: object) -> None:
    assert arg is not None
    name = arg
    if arg.isdigit():
        plist = P.PARAMS.get(str(b.event.get("type", "")))
        if plist is None or int(arg) >= len(plist):
            raise ValueError(f"event type has no argument number {arg}")
        name = plist[int(arg)][0]
    _arg_setter(name)(b, None, v)


register(
    "evt.arg",
    FieldType.STRING,
    "one of the event arguments specified by name or by number. E.g. 'evt.arg.fd' or 'evt.arg[0]'.",
    arg=ArgKind.REQUIRED,
    bind=_bind_arg,
    setter=_set_arg_indexed,
)


def _bind_rawarg(arg: str) -> Extractor:
    if arg not in P.ALL_PARAM_NAMES:
        from ruleengine.fields._types import FieldArgError

        raise FieldArgError(f"unknown event argument '{arg}' (evt.rawarg takes a parameter name)")
    return _rawarg_by_name(arg)


register(
    "evt.rawarg",
    FieldType.INT,
    "one of the event arguments specified by name, as its raw value (a number "
    "for numeric parameters). E.g. 'evt.rawarg.fd'.",
    arg=ArgKind.REQUIRED,
    arg_form="key",
    bind=_bind_rawarg,
    setter=lambda b, a, v: _arg_setter(str(a))(b, None, v),
)


def _args(ctx: EventContext) -> str:
    ev = ctx.event
    plist = P.PARAMS.get(ev.type)
    names = [n for n, _ in plist] if plist else [a.name for a in ev.args if not a.name.startswith("lanner.")]
    parts = []
    for name in names:
        v = raw_arg(ev, name)
        if v is None:
            continue
        kind = P.param_kind(ev.type, name)
        raw = v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
        if isinstance(v, bytes):
            raw = P.render_param("bytes", v)
        resolved = "" if isinstance(v, (str, bytes)) else P.render_param(kind, v)
        if kind == "fd" and isinstance(v, int) and v >= 0:
            resolved = _arg_by_name(name)(ctx) or ""  # type: ignore[assignment]
        parts.append(f"{name}={raw}({resolved})" if resolved and resolved != raw else f"{name}={raw}")
    return " ".join(parts)


register(
    "evt.args",
    FieldType.STRING,
    "all the event arguments, aggregated into a single string.",
    extract=_args,
    derived=True,
)
register(
    "evt.info",
    FieldType.STRING,
    "for most events, this field returns the same value as evt.args.",
    extract=_args,
    derived=True,
)


def _buffer(ctx: EventContext) -> bytes | None:
    v = ctx.event.arg("data")
    if isinstance(v, str):
        return v.encode("utf-8", "surrogateescape")
    return v if isinstance(v, bytes) else None


register(
    "evt.buffer",
    FieldType.BYTES,
    "the binary data buffer for events that have one, like read(), recvfrom(), etc.",
    extract=_buffer,
    setter=lambda b, a, v: b.args.__setitem__("data", as_str(v).encode("utf-8", "surrogateescape")),
)
register(
    "evt.buflen",
    FieldType.UINT,
    "the length of the binary data buffer for events that have one.",
    extract=lambda c: None if (buf := _buffer(c)) is None else len(buf),
    derived=True,
)


# ---- absolute paths of *at calls -----------------------------------------------------------------------------
_ABSPATH: dict[str, tuple[tuple[str, str], tuple[str, str] | None]] = {
    # event -> ((dirfd param, path param) of the source/only path, (dirfd, path) of the destination)
    "openat": (("dirfd", "name"), None),
    "openat2": (("dirfd", "name"), None),
    "mkdirat": (("dirfd", "path"), None),
    "unlinkat": (("dirfd", "name"), None),
    "fchmodat": (("dirfd", "filename"), None),
    "fchownat": (("dirfd", "pathname"), None),
    "symlinkat": (("linkdirfd", "linkpath"), None),
    "renameat": (("olddirfd", "oldpath"), ("newdirfd", "newpath")),
    "renameat2": (("olddirfd", "oldpath"), ("newdirfd", "newpath")),
    "linkat": (("olddir", "oldpath"), ("newdir", "newpath")),
}


def _join(ev: Event, dirfd_param: str, path_param: str) -> str | None:
    import posixpath

    path = ev.arg(path_param)
    if not isinstance(path, str) or not path:
        return None
    if path.startswith("/"):
        return posixpath.normpath(path)
    dirfd = ev.arg(dirfd_param)
    if dirfd == -100 and ev.proc.cwd:
        return posixpath.normpath(posixpath.join(ev.proc.cwd, path))
    return None


def _abspath(which: int) -> Extractor:
    def extract(ctx: EventContext) -> str | None:
        ev = ctx.event
        spec = _ABSPATH.get(ev.type)
        if spec is None:
            return None
        pair = spec[1] if which == 2 else spec[0]
        return None if pair is None else _join(ev, *pair)

    return extract


register(
    "evt.abspath",
    FieldType.STRING,
    "Absolute path calculated from dirfd and name during syscalls like "
    "renameat and symlinkat. Use 'evt.abspath.src' or 'evt.abspath.dst' for syscalls that support multiple "
    "paths.",
    extract=_abspath(0),
    derived=True,
)
register(
    "evt.abspath.src",
    FieldType.STRING,
    "Source Absolute path calculated from dirfd and name during syscalls like renameat and symlinkat.",
    extract=_abspath(1),
    derived=True,
)
register(
    "evt.abspath.dst",
    FieldType.STRING,
    "Destination Absolute path calculated from dirfd and name during syscalls like renameat and symlinkat.",
    extract=_abspath(2),
    derived=True,
)
