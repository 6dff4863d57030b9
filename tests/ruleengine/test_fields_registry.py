# SPDX-License-Identifier: Apache-2.0
"""The registry API: resolution, errors, listing, caching."""

from __future__ import annotations

import pytest

from lanner.model import Event, Process
from ruleengine.fields import (
    ArgKind,
    BoundField,
    EventContext,
    FieldArgError,
    FieldType,
    UnknownFieldError,
    known_sources,
    list_fields,
    resolve_field,
)

# Every field (with the args they use) of the upstream stable + incubating + sandbox rule files.
UPSTREAM_SYSCALL_FIELDS = str.split("""
container.id container.image.repository container.mount.dest[/] container.mount.dest[/etc/kubernetes/manifests]
container.mount.dest[/proc*] container.mount.dest[/var/run/docker.sock] container.mounts container.privileged
container.start_ts evt.arg.cmd evt.arg.domain evt.arg.fd evt.arg.filename evt.arg.flags evt.arg.linkpath
evt.arg.mode evt.arg.name evt.arg.newpath evt.arg.oldpath evt.arg.path evt.arg.request evt.arg.target evt.arg.uid
evt.args evt.buffer evt.is_open_exec evt.is_open_read evt.is_open_write evt.num evt.rawres evt.res evt.type fd.cip
fd.cip.name fd.cnet fd.connected fd.directory fd.filename fd.ip fd.l4proto fd.lip.name fd.lport fd.name
fd.name_changed fd.nameraw fd.net fd.num fd.port fd.rip fd.rip.name fd.rnet fd.rport fd.sip fd.sip.name fd.snet
fd.sockfamily fd.sport fd.type fd.typechar group.gid group.name proc.aexe[2] proc.aexepath[2] proc.aname
proc.aname[1] proc.aname[2] proc.aname[3] proc.aname[4] proc.aname[5] proc.aname[6] proc.aname[7] proc.args
proc.cmdline proc.cwd proc.duration proc.env proc.exe proc.exe_ino.ctime proc.exe_ino.ctime_duration_proc_start
proc.exe_ino.mtime proc.exepath proc.is_exe_from_memfd proc.is_exe_upper_layer proc.is_vpgid_leader proc.name
proc.pcmdline proc.pexe proc.pexepath proc.pname proc.sname proc.tty proc.vpid thread.cap_effective
thread.cap_permitted user.loginname user.loginuid user.name user.uid evt.dir evt.arg[0] proc.pid container.name
container.image.tag container.info k8s.ns.name k8s.pod.name
""")

K8S_AUDIT_FIELDS = str.split("""
jevt.obj jevt.rawtime jevt.value[/requestObject/ephemeralContainers/0/image] jevt.value[/stage] ka.auth.decision
ka.auth.reason ka.req.binding.role ka.req.binding.subjects ka.req.configmap.name ka.req.configmap.obj
ka.req.pod.containers.image ka.req.pod.containers.image.repository ka.req.pod.containers.privileged
ka.req.pod.ephemeralContainers.image ka.req.pod.ephemeralContainers.privileged ka.req.pod.host_ipc
ka.req.pod.host_network ka.req.pod.host_pid ka.req.pod.initContainers.image ka.req.pod.initContainers.privileged
ka.req.pod.volumes.hostpath ka.req.role.rules ka.req.role.rules.resources ka.req.role.rules.verbs
ka.req.service.ports ka.req.service.type ka.resp.name ka.response.code ka.response.reason ka.target.name
ka.target.namespace ka.target.resource ka.target.subresource ka.uri ka.uri.param[command] ka.user.name ka.verb
evt.time evt.num
""")


def _split(token: str) -> tuple[str, str | None]:
    if token.endswith("]"):
        name, _, arg = token[:-1].partition("[")
        return name, arg
    return token, None


@pytest.mark.parametrize("token", UPSTREAM_SYSCALL_FIELDS)
def test_every_upstream_syscall_field_resolves(token: str) -> None:
    bound = resolve_field("syscall", *_split(token))
    assert bound.token == token
    # Extraction never raises, even on an empty event.
    EventContext(Event(type="openat")).get(bound)


@pytest.mark.parametrize("token", K8S_AUDIT_FIELDS)
def test_every_k8s_audit_rules_field_resolves(token: str) -> None:
    bound = resolve_field("k8s_audit", *_split(token))
    assert (
        EventContext(Event(type="k8s_audit", source="k8s_audit")).get(bound) is None
        or token == "evt.num"
        or token.startswith(("evt.", "jevt.rawtime", "jevt.time"))
    )


def test_unknown_field_message() -> None:
    with pytest.raises(UnknownFieldError, match=r"unknown field 'proc\.nmae'"):
        resolve_field("syscall", "proc.nmae")
    with pytest.raises(UnknownFieldError):
        resolve_field("syscall", "evt.arg.no_such_param")
    with pytest.raises(UnknownFieldError):
        resolve_field("syscall", "ka.verb")  # k8s audit fields do not exist for syscalls
    with pytest.raises(UnknownFieldError):
        resolve_field("nosuchsource", "evt.type")


def test_argument_errors() -> None:
    with pytest.raises(FieldArgError):
        resolve_field("syscall", "proc.name", "1")
    with pytest.raises(FieldArgError):
        resolve_field("syscall", "container.mount.dest")
    with pytest.raises(FieldArgError):
        resolve_field("syscall", "proc.aname", "x")
    with pytest.raises(FieldArgError):
        resolve_field("syscall", "evt.arg", "nosuchparam")


def test_field_info() -> None:
    aname = resolve_field("syscall", "proc.aname")
    assert aname.any_of and aname.info.arg is ArgKind.OPTIONAL and aname.info.arg_form == "index"
    assert not resolve_field("syscall", "proc.aname", "2").any_of
    snet = resolve_field("syscall", "fd.snet").info
    assert snet.type is FieldType.IPNET and snet.filter_only and snet.no_rhs
    assert resolve_field("syscall", "evt.dir").info.deprecated
    assert resolve_field("k8s_audit", "ka.req.pod.containers.image").info.is_list
    assert resolve_field("syscall", "user.loginuid").info.type is FieldType.INT
    assert isinstance(resolve_field("syscall", "evt.arg.flags"), BoundField)


def test_listing() -> None:
    assert known_sources() == {"syscall", "k8s_audit"}
    sys_names = {f.name for f in list_fields("syscall")}
    assert {"proc.name", "fd.name", "container.id", "k8s.ns.name", "evt.arg", "thread.cap_effective"} <= sys_names
    audit_names = {f.name for f in list_fields("k8s_audit")}
    assert {"ka.verb", "jevt.value", "evt.time"} <= audit_names and "proc.name" not in audit_names
    assert len(list_fields()) == len(sys_names) + len(audit_names)
    assert all(f.description for f in list_fields())


def test_context_caches_each_field_once() -> None:
    calls = []
    bound = resolve_field("syscall", "proc.name")
    counting = BoundField(bound.info, None, "proc.name", lambda c: calls.append(1) or c.event.proc.comm)
    ctx = EventContext(Event(type="execve", proc=Process(comm="bash")))
    assert ctx.get(counting) == "bash" and ctx.get(counting) == "bash"
    assert calls == [1]


def test_literals() -> None:
    assert resolve_field("syscall", "fd.sport").parse_literal("443") == 443
    assert resolve_field("syscall", "evt.is_open_read").parse_literal("true") is True
    with pytest.raises(ValueError):
        resolve_field("syscall", "evt.is_open_read").parse_literal("yes")
    with pytest.raises(ValueError):
        resolve_field("syscall", "fd.sport").parse_literal("https")
    net = resolve_field("syscall", "fd.snet").parse_literal("10.0.0.0/8")
    assert str(net) == "10.0.0.0/8"
    assert str(resolve_field("syscall", "fd.sip").parse_literal("::1")) == "::1"
    assert resolve_field("syscall", "proc.name").parse_literal("<NA>") == "<NA>"
