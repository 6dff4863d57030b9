# SPDX-License-Identifier: Apache-2.0
"""``user.*`` and ``group.*`` fields.

Falco reports the *effective* ids. Names come from the passwd/group of the process's root (filled in by the
collector); when that lookup failed Falco still synthesises ``root`` for id 0 and otherwise returns the literal
string ``<NA>``, which is a real value in comparisons (``user.name != root`` is true).
"""

from __future__ import annotations

from lanner.model import Process
from ruleengine.fields._builder import EventBuilder
from ruleengine.fields._context import EventContext
from ruleengine.fields._registry import Setter, register
from ruleengine.fields._types import NA, FieldType
from ruleengine.fields._values import as_int, as_str

_UNSET_ID = 0xFFFFFFFF


def effective_uid(p: Process) -> int | None:
    """The euid when the collector recorded one apart, else the uid."""
    return p.euid if p.euid is not None else p.uid


def effective_gid(p: Process) -> int | None:
    """The egid when the collector recorded one apart, else the gid."""
    return p.egid if p.egid is not None else p.gid


def _named(name: str, ident: int | None, root_value: str) -> str:
    if name:
        return name
    return root_value if ident == 0 else NA


def _user_name(ctx: EventContext) -> str:
    p = ctx.event.proc
    if p.user_name:
        return p.user_name
    uid = p.euid if p.euid is not None else p.uid
    return "root" if uid == 0 else NA


def _homedir(ctx: EventContext) -> str:
    p = ctx.event.proc
    return _named(p.user_homedir, effective_uid(p), "/root")


def _loginuid(ctx: EventContext) -> int:
    v = ctx.event.proc.loginuid
    return -1 if v is None or v in (_UNSET_ID, -1) else v


def _loginname(ctx: EventContext) -> str:
    p = ctx.event.proc
    return _named(p.loginuser_name, _loginuid(ctx), "root")


def _set(key: str, name_key: str | None = None) -> Setter:
    def setter(b: EventBuilder, arg: str | None, v: object) -> None:
        if name_key is None:
            text = as_str(v)
            # "<NA>" and the synthesised root names carry no passwd information of their own.
            if text != NA:
                b.proc[key] = text
        else:
            b.proc[key] = as_int(v)

    return setter


def _set_user_name(b: EventBuilder, arg: str | None, v: object) -> None:
    text = as_str(v)
    if text == NA:
        return
    b.proc["user_name"] = text
    if text == "root" and b.proc.get("uid") is None and b.proc.get("euid") is None:
        b.proc["uid"] = 0


def _set_group_name(b: EventBuilder, arg: str | None, v: object) -> None:
    text = as_str(v)
    if text == NA:
        return
    b.proc["group_name"] = text
    if text == "root" and b.proc.get("gid") is None and b.proc.get("egid") is None:
        b.proc["gid"] = 0


def _set_loginuid(b: EventBuilder, arg: str | None, v: object) -> None:
    n = as_int(v)
    b.proc["loginuid"] = _UNSET_ID if n == -1 else n


register(
    "user.uid", FieldType.UINT, "user ID.", extract=lambda c: effective_uid(c.event.proc), setter=_set("uid", "uid")
)
register("user.name", FieldType.STRING, "user name.", extract=_user_name, setter=_set_user_name)
register("user.homedir", FieldType.STRING, "home directory of the user.", extract=_homedir, setter=_set("user_homedir"))
register(
    "user.shell",
    FieldType.STRING,
    "user's shell.",
    extract=lambda c: c.event.proc.user_shell or NA,
    setter=_set("user_shell"),
)
register(
    "user.loginuid",
    FieldType.INT,
    "audit user id (auid), internally the loginuid is of type uint32_t. "
    "However, if an invalid uid corresponding to UINT32_MAX is encountered, it is returned as -1 to support "
    "familiar filtering conditions.",
    extract=_loginuid,
    setter=_set_loginuid,
)
register(
    "user.loginname", FieldType.STRING, "audit user name (auid).", extract=_loginname, setter=_set("loginuser_name")
)
register(
    "group.gid", FieldType.UINT, "group ID.", extract=lambda c: effective_gid(c.event.proc), setter=_set("gid", "gid")
)
register(
    "group.name",
    FieldType.STRING,
    "group name.",
    extract=lambda c: _named(c.event.proc.group_name, effective_gid(c.event.proc), "root"),
    setter=_set_group_name,
)
