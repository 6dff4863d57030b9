# SPDX-License-Identifier: Apache-2.0
"""Events as JSON lines keyed by Falco field names, converted to and from ``lanner.model.Event``.

``{"evt.type": "openat", "proc.name": "cat", "fd.name": "/etc/shadow", "evt.arg.flags": "O_RDONLY"}`` becomes an
Event through the field registry: each field's setter writes the raw facts behind it, then every given key is
extracted back from the built event and compared, so derived fields (``fd.directory``, ``evt.is_open_read``,
``proc.aname[N]``...) are computed exactly as for live events and contradictions are reported. ``k8s_audit``
records are audit.k8s.io/v1 ``Event`` objects. Format reference: ``docs/events-jsonl.md``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from collections.abc import Iterator, Mapping

from lanner.model import HOST_CONTAINER_ID, SOURCE_K8S_AUDIT, SOURCE_SYSCALL, Event, EventIdentity, EventTiming, FdType
from ruleengine.fields import _params as P
from ruleengine.fields._tables import caps_to_string
from ruleengine.fields._types import BoundField, FieldType, render_value
from ruleengine.fields.container import _mount_str
from ruleengine.fields.evt import has_result
from ruleengine.fields.fd import DNS_ARG_PREFIX, DNS_NAME_FIELDS, ip_of
from ruleengine.fields.proc import cmdline
from ruleengine.records import RecordBuilder, RecordError, split_key

__all__ = [
    "EventFormatError",
    "audit_event",
    "event_from_fields",
    "event_to_fields",
    "given_matches",
    "read_events",
    "split_key",
]


class EventFormatError(ValueError):
    """A recorded event is malformed; names the field (and ``path:line`` when read from a file)."""

    def __init__(self, field: str, message: str, location: str = "") -> None:
        self.field = field
        self.message = message
        self.location = location
        where = f"{location}: " if location else ""
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}{what}{message}")

    def at(self, location: str) -> EventFormatError:
        """The same error, located in a file."""
        return EventFormatError(self.field, self.message, location)


def given_matches(bound: BoundField, got: object, want: object) -> bool:
    """Does a given value agree with the value extracted from the raw facts (for ``--warn-inconsistent``)?"""
    if want is None:
        return got is None
    if got is None:
        return False
    if bound.info.name in DNS_NAME_FIELDS and isinstance(got, tuple):
        return want in got  # the name given, next to watched names resolving to the same address
    if isinstance(got, tuple) and not bound.any_of:
        return isinstance(want, list) and bound.to_json(got) == want
    if isinstance(got, bool):
        return got is want or (isinstance(want, str) and want == ("true" if got else "false"))
    if isinstance(got, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        try:
            if bound.info.type is FieldType.IPNET:
                return got in ipaddress.ip_network(str(want), strict=False)
            return got == ipaddress.ip_address(str(want))
        except ValueError:
            return False
    if isinstance(want, list):
        return bound.render(got) == " ".join(str(x) for x in want)
    if isinstance(got, int) and isinstance(want, int):
        return got == want
    if isinstance(want, str) and "|" in want and isinstance(got, str) and "|" in got:
        return set(want.split("|")) == set(got.split("|"))  # flags in another order
    if bound.info.name.startswith("thread.cap_") and isinstance(want, str):
        # Capability sets are sets: accept the names in any order and case.
        return set(str(got).split()) == set(want.upper().split())
    return bound.render(got) == str(want) or render_value(bound.to_json(got)) == str(want)


_BUILDERS: dict[str, RecordBuilder] = {}


def event_from_fields(record: Mapping[str, object], source: str = SOURCE_SYSCALL, *, num: int = 0) -> Event:
    """Build an Event from a record keyed by Falco field names (or an audit Event for ``k8s_audit``).

    Values given in the field's own form are used as given (``Event.given``); every value also sets the raw facts
    behind it, from which the fields the record lacks are derived (:mod:`ruleengine.records`). ``num`` is the
    ``evt.num`` to use when the record has none (upstream rules treat ``evt.num=0`` as "never true"). A key that
    is no field, or a value that cannot be read, raises EventFormatError naming the field.
    """
    if source == SOURCE_K8S_AUDIT:
        return audit_event(record, num)
    builder = _BUILDERS.get(source)
    if builder is None:
        builder = _BUILDERS[source] = RecordBuilder(source)
    try:
        return builder.build(record, num, strict_fields=True)
    except RecordError as exc:
        raise EventFormatError(exc.field, exc.message) from None


def _parse_rfc3339(text: str) -> int:
    main, frac = text, 0
    if "." in text:
        main, rest = text.split(".", 1)
        digits = "".join(ch for ch in rest[:12] if ch.isdigit())
        frac = int((digits + "000000000")[:9])
        main += rest[len(digits) :]
    parsed = dt.datetime.fromisoformat(main.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp()) * 1_000_000_000 + frac


def audit_event(record: Mapping[str, object], num: int = 0) -> Event:
    """An audit.k8s.io ``Event`` object as a k8s_audit Event; errors use the k8saudit plugin's wording."""
    if not isinstance(record, Mapping) or record.get("kind", "Event") != "Event":
        raise EventFormatError("", "data not recognized as a k8s audit event")
    ts = record.get("stageTimestamp")
    if ts is None:
        raise EventFormatError("stageTimestamp", "can't read stageTimestamp")
    try:
        ns = _parse_rfc3339(str(ts))
    except ValueError:
        raise EventFormatError("stageTimestamp", f"'{ts}' is not an RFC 3339 time") from None
    return Event(
        type="k8s_audit",
        source=SOURCE_K8S_AUDIT,
        timing=EventTiming(event_ns=ns),
        identity=EventIdentity(seq=num),
        audit_json=json.dumps(record, separators=(",", ":"), ensure_ascii=False),
    )


def read_events(path: str, source: str | None = None, *, strict: bool = True) -> Iterator[Event]:
    """Events from a file in any format :mod:`ruleengine.replay_input` detects. ``strict`` (the default here,
    for rule tests) makes a bad record an EventFormatError naming ``path:line``; otherwise it is skipped with a
    warning on stderr."""
    import sys

    from ruleengine.replay_input import EventReader

    yield from EventReader(path, source, strict=strict, warn=lambda m: print(m, file=sys.stderr))


# ---- Event -> record -----------------------------------------------------------------------------------------
def _proc_fields(out: dict[str, object], ev: Event) -> None:
    p = ev.proc
    out["proc.name"] = p.comm
    for key, val in (("proc.exe", p.exe), ("proc.exepath", p.exepath)):
        if val:
            out[key] = val
    if p.cwd:
        out["proc.cwd"] = p.cwd if p.cwd.endswith("/") else p.cwd + "/"
    if p.args:
        out["proc.args"] = list(p.args)
    if p.env:
        out["proc.env"] = list(p.env)
    for key, num in (
        ("proc.pid", p.pid),
        ("thread.tid", p.tid),
        ("proc.vpid", p.vpid),
        ("thread.vtid", p.vtid),
        ("proc.sid", p.sid),
        ("proc.pgid", p.pgid),
        ("proc.vpgid", p.vpgid),
        ("proc.pid.ts", p.start_ns),
    ):
        if num:
            out[key] = num
    for key, opt in (
        ("proc.tty", p.tty),
        ("user.uid", p.euid if p.euid is not None else p.uid),
        ("group.gid", p.egid if p.egid is not None else p.gid),
        ("proc.exe_ino", p.exe_ino),
        ("proc.exe_ino.ctime", p.exe_ino_ctime),
        ("proc.exe_ino.mtime", p.exe_ino_mtime),
        ("proc.pidns_init_start_ts", p.pidns_init_start_ns),
        ("proc.fdopencount", p.fd_open_count),
        ("proc.fdlimit", p.fd_limit),
        ("proc.vmsize", p.vm_size_kb),
        ("proc.vmrss", p.vm_rss_kb),
        ("proc.vmswap", p.vm_swap_kb),
        ("proc.is_exe_writable", p.is_exe_writable),
        ("proc.is_exe_upper_layer", p.is_exe_upper_layer),
        ("proc.is_exe_from_memfd", p.is_exe_from_memfd),
        ("proc.is_sid_leader", p.is_sid_leader),
        ("proc.is_vpgid_leader", p.is_vpgid_leader),
    ):
        if opt is not None:
            out[key] = opt
    if p.loginuid is not None:
        out["user.loginuid"] = -1 if p.loginuid in (0xFFFFFFFF, -1) else p.loginuid
    for key, name in (
        ("user.name", p.user_name),
        ("user.homedir", p.user_homedir),
        ("user.shell", p.user_shell),
        ("user.loginname", p.loginuser_name),
        ("group.name", p.group_name),
    ):
        if name:
            out[key] = name
    for which in ("effective", "permitted", "inheritable"):
        mask = getattr(p, f"cap_{which}")
        if mask is not None:
            out[f"thread.cap_{which}"] = caps_to_string(mask)
    if p.cgroups:
        out["thread.cgroups"] = list(p.cgroups)
    for n, a in enumerate(ev.ancestors, 1):
        out[f"proc.aname[{n}]"] = a.comm
        if a.pid:
            out[f"proc.apid[{n}]"] = a.pid
        if a.exe:
            out[f"proc.aexe[{n}]"] = a.exe
        if a.exepath:
            out[f"proc.aexepath[{n}]"] = a.exepath
        if a.args:
            out[f"proc.acmdline[{n}]"] = cmdline(a)


def _fd_fields(out: dict[str, object], ev: Event) -> None:
    fd = ev.fd
    if fd is None:
        return
    out["fd.num"] = fd.num
    if fd.type is not FdType.UNSPECIFIED:
        from ruleengine.fields.fd import fd_name, fd_type

        out["fd.type"] = fd_type(fd)
        name = fd_name(ev)
        if name:
            out["fd.name"] = name
    elif fd.path:
        out["fd.name"] = fd.path
    if fd.path_raw:
        out["fd.nameraw"] = fd.path_raw
    if fd.type in (FdType.IPV4, FdType.IPV6, FdType.RAW_SOCKET):
        for key, raw, port in (("fd.cip", fd.client_ip, fd.client_port), ("fd.sip", fd.server_ip, fd.server_port)):
            addr = ip_of(raw)
            if addr is not None:
                out[key] = str(addr)
            if port is not None:
                out[key.replace("ip", "port")] = port
        from ruleengine.fields.fd import _L4_NAMES

        if fd.l4proto in _L4_NAMES:
            out["fd.l4proto"] = _L4_NAMES[fd.l4proto]
    is_socket = fd.type in (FdType.IPV4, FdType.IPV6, FdType.RAW_SOCKET, FdType.UNIX)
    for key, val in (
        ("fd.is_server", fd.is_server if is_socket else None),
        ("fd.connected", fd.connected),
        ("fd.dev", fd.dev),
        ("fd.ino", fd.ino),
    ):
        if val is not None:
            out[key] = val
    if fd.name_changed:
        out["fd.name_changed"] = True
    if fd.open_flags is not None and ev.arg("flags") is None:
        out["evt.rawarg.flags"] = fd.open_flags
    if fd.mode is not None and ev.arg("mode") is None:
        out["evt.rawarg.mode"] = fd.mode


def _container_fields(out: dict[str, object], ev: Event) -> None:
    c = ev.container
    out["container.id"] = c.id
    if c.id == HOST_CONTAINER_ID or not c.metadata_complete:
        return
    if c.full_id:
        out["container.full_id"] = c.full_id
    for key, val in (
        ("container.name", c.name),
        ("container.type", c.type),
        ("container.image", c.image),
        ("container.image.repository", c.image_repository),
        ("container.image.tag", c.image_tag),
        ("container.image.digest", c.image_digest),
        ("container.image.id", c.image_id),
        ("container.ip", c.ip),
        ("container.user", c.user),
        ("container.cni.json", c.cni_json),
    ):
        out[key] = val
    for key, flag in (
        ("container.privileged", c.privileged),
        ("container.host_pid", c.host_pid),
        ("container.host_network", c.host_network),
        ("container.host_ipc", c.host_ipc),
    ):
        if flag is not None:
            out[key] = flag
    if c.mounts:
        out["container.mounts"] = ",".join(_mount_str(m) for m in c.mounts)
    for lk, lv in c.labels.items():
        out[f"container.label[{lk}]"] = lv
    k = ev.k8s
    for key, val in (
        ("k8s.pod.name", k.pod_name),
        ("k8s.ns.name", k.ns_name),
        ("k8s.pod.uid", k.pod_uid),
        ("k8s.pod.full_sandbox_id", k.pod_sandbox_id),
        ("k8s.pod.ip", k.pod_ip),
        ("k8s.pod.cni.json", k.pod_cni_json),
        ("k8s.ns.uid", k.ns_uid),
    ):
        if val:
            out[key] = val
    for pk, pv in k.pod_labels.items():
        out[f"k8s.pod.label[{pk}]"] = pv


def event_to_fields(event: Event) -> dict[str, object]:
    """A Falco-field record that ``event_from_fields`` turns back into an equivalent Event (the input form of
    ``sysdig -j`` exports; ``bench/bench_replay.py`` writes its load with it). Lanner's own recordings keep every raw
    fact in another form, :mod:`lanner.recording`.

    Raw facts are written with their raw-valued fields (``evt.rawarg.*``, ``proc.args`` as a list,
    ``thread.cap_*`` as masks); a ``k8s_audit`` event gives back its audit object.
    """
    if event.source == SOURCE_K8S_AUDIT:
        parsed = json.loads(event.audit_json) if event.audit_json else {}
        return dict(parsed) if isinstance(parsed, dict) else {}
    out: dict[str, object] = {"evt.type": event.type}
    if event.identity.seq:
        out["evt.num"] = event.identity.seq
    if event.timing.event_ns:
        out["evt.rawtime"] = event.timing.event_ns
    if event.identity.node:
        out["evt.hostname"] = event.identity.node
    if event.cpu:
        out["evt.cpu"] = event.cpu
    if has_result(event):
        out["evt.rawres"] = event.res
    for a in event.args:
        if a.name.startswith(DNS_ARG_PREFIX) and isinstance(a.value, str):
            out[a.name[len("lanner.") :]] = a.value
        elif a.name in P.ALL_PARAM_NAMES:
            out[f"evt.rawarg.{a.name}"] = (
                a.value if not isinstance(a.value, bytes) else a.value.decode("utf-8", "surrogateescape")
            )
    _proc_fields(out, event)
    _fd_fields(out, event)
    _container_fields(out, event)
    return out
