# SPDX-License-Identifier: Apache-2.0
"""``ka.*`` fields of the ``k8s_audit`` source, read from the audit.k8s.io/v1 Event carried in ``audit_json``.

All values are strings or lists of strings, as the k8saudit plugin types them; a missing JSON path means no value.
Nested objects are printed as compact JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ruleengine.fields._context import EventContext
from ruleengine.fields._registry import K8S_AUDIT, register
from ruleengine.fields._types import ArgKind, Extractor, FieldType, dump_json

_S = FieldType.STRING
_MISSING = object()


def dig(obj: object, *path: str | int) -> object:
    """Walk dicts/lists; ``_MISSING`` when any step is absent."""
    cur = obj
    for step in path:
        if isinstance(step, int):
            if not isinstance(cur, list) or step >= len(cur):
                return _MISSING
            cur = cur[step]
        else:
            if not isinstance(cur, dict) or step not in cur:
                return _MISSING
            cur = cur[step]
    return cur


def as_text(v: object) -> str | None:
    """A JSON value as the plugin prints it: strings raw, bools lowercase, objects as compact JSON."""
    if v is _MISSING or v is None:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return dump_json(v)


def _path(*path: str | int) -> Extractor:
    def extract(ctx: EventContext) -> str | None:
        return as_text(dig(ctx.audit, *path))

    return extract


def _reg(
    name: str,
    desc: str,
    extract: Extractor,
    *,
    is_list: bool = False,
    deprecated: bool = False,
    arg: ArgKind = ArgKind.NONE,
    bind: Callable[[str], Extractor] | None = None,
    arg_form: str = "any",
) -> None:
    register(
        name,
        _S,
        desc,
        sources=(K8S_AUDIT,),
        extract=extract,
        is_list=is_list,
        deprecated=deprecated,
        arg=arg,
        bind=bind,
        arg_form=arg_form,
        derived=True,
    )


def _list_of(values: object) -> tuple[str, ...] | None:
    if not isinstance(values, list):
        return None
    return tuple(t for t in (as_text(v) for v in values) if t is not None)


def _list_path(*path: str) -> Extractor:
    def extract(ctx: EventContext) -> tuple[str, ...] | None:
        return _list_of(dig(ctx.audit, *path))

    return extract


def _annotation(key: str) -> Extractor:
    def extract(ctx: EventContext) -> str | None:
        return as_text(dig(ctx.audit, "annotations", key))

    return extract


def _uri_param(arg: str) -> Extractor:
    def extract(ctx: EventContext) -> str | None:
        uri = dig(ctx.audit, "requestURI")
        if not isinstance(uri, str):
            return None
        values = parse_qs(urlsplit(uri).query, keep_blank_values=True).get(arg)
        return values[0] if values else None

    return extract


def _image_repo(image: str) -> str:
    ref = image.split("@", 1)[0]
    colon = ref.rfind(":")
    return ref[:colon] if colon > ref.rfind("/") else ref


# ---- pod containers ------------------------------------------------------------------------------------------
def _containers(ctx: EventContext, kind: str) -> list[Any] | None:
    spec = dig(ctx.audit, "requestObject", "spec")
    if not isinstance(spec, dict):
        return None
    items = spec.get(kind)
    return items if isinstance(items, list) else []


def _container_field(
    kind: str, get: Callable[[dict[str, Any]], object]
) -> tuple[Extractor, Callable[[str], Extractor]]:
    def values(ctx: EventContext) -> tuple[str, ...] | None:
        items = _containers(ctx, kind)
        if items is None:
            return None
        out = []
        for c in items:
            v = as_text(get(c)) if isinstance(c, dict) else None
            if v is not None:
                out.append(v)
        return tuple(out)

    def bind(arg: str) -> Extractor:
        idx = int(arg)

        def extract(ctx: EventContext) -> str | None:
            items = _containers(ctx, kind)
            if items is None or idx >= len(items) or not isinstance(items[idx], dict):
                return None
            return as_text(get(items[idx]))

        return extract

    return values, bind


def _sec(c: dict[str, Any], key: str, default: object = _MISSING) -> object:
    v = dig(c, "securityContext", key)
    return default if v is _MISSING else v


_CONTAINER_PARTS: dict[str, tuple[str, Callable[[dict[str, Any]], object]]] = {
    "name": ("The names of the containers.", lambda c: c.get("name", _MISSING)),
    "image": ("The container images.", lambda c: c.get("image", _MISSING)),
    "image.repository": (
        "The container repositories.",
        lambda c: _image_repo(c["image"]) if isinstance(c.get("image"), str) else _MISSING,
    ),
    "command": ("The container commands.", lambda c: c.get("command", _MISSING)),
    "args": ("The container args.", lambda c: c.get("args", _MISSING)),
    "privileged": (
        "The privileged flags of the containers ('false' when unset).",
        lambda c: _sec(c, "privileged", False),
    ),
    "allow_privilege_escalation": (
        "The allowPrivilegeEscalation flags of the containers.",
        lambda c: _sec(c, "allowPrivilegeEscalation", False),
    ),
    "read_only_fs": (
        "The readOnlyRootFilesystem flags of the containers.",
        lambda c: _sec(c, "readOnlyRootFilesystem", False),
    ),
    "run_as_user": ("The runAsUser uids of the containers.", lambda c: _sec(c, "runAsUser")),
    "run_as_group": ("The runAsGroup gids of the containers.", lambda c: _sec(c, "runAsGroup")),
    "proc_mount": ("The procMount types of the containers.", lambda c: _sec(c, "procMount")),
    "add_capabilities": (
        "The capabilities added to the containers.",
        lambda c: dig(c, "securityContext", "capabilities", "add"),
    ),
    "host_port": (
        "The host ports of the containers.",
        lambda c: (
            [p.get("hostPort") for p in c.get("ports", []) if isinstance(p, dict) and "hostPort" in p] or _MISSING
        ),
    ),
}

for _kind in ("containers", "initContainers", "ephemeralContainers"):
    for _part, (_desc, _get) in _CONTAINER_PARTS.items():
        _values, _bind = _container_field(_kind, _get)
        _reg(
            f"ka.req.pod.{_kind}.{_part}",
            f"When the request object refers to a pod, the {_kind}: {_desc}",
            _values,
            is_list=True,
            arg=ArgKind.OPTIONAL,
            bind=_bind,
            arg_form="index",
        )


def _first_container(get: Callable[[dict[str, Any]], object]) -> Extractor:
    def extract(ctx: EventContext) -> str | None:
        items = _containers(ctx, "containers")
        if not items or not isinstance(items[0], dict):
            return None
        return as_text(get(items[0]))

    return extract


_reg(
    "ka.req.container.image",
    "[DEPRECATED] the image of the first container of the pod.",
    _first_container(lambda c: c.get("image", _MISSING)),
    deprecated=True,
)
_reg(
    "ka.req.container.image.repository",
    "[DEPRECATED] the repository of the first container of the pod.",
    _first_container(_CONTAINER_PARTS["image.repository"][1]),
    deprecated=True,
)
_reg(
    "ka.req.container.privileged",
    "[DEPRECATED] whether any container of the pod is privileged.",
    lambda c: (
        None
        if (v := _containers(c, "containers")) is None
        else ("true" if any(isinstance(x, dict) and _sec(x, "privileged", False) is True for x in v) else "false")
    ),
    deprecated=True,
)


def _pod_spec_bool(key: str) -> Extractor:
    def extract(ctx: EventContext) -> str | None:
        spec = dig(ctx.audit, "requestObject", "spec")
        if not isinstance(spec, dict):
            return None
        return "true" if spec.get(key) is True else "false"

    return extract


def _volumes(get: Callable[[dict[str, Any]], object]) -> Extractor:
    def extract(ctx: EventContext) -> tuple[str, ...] | None:
        vols = dig(ctx.audit, "requestObject", "spec", "volumes")
        if vols is _MISSING:
            return None if not isinstance(dig(ctx.audit, "requestObject", "spec"), dict) else ()
        if not isinstance(vols, list):
            return None
        return tuple(t for t in (as_text(get(v)) for v in vols if isinstance(v, dict)) if t is not None)

    return extract


def _volume_type(v: dict[str, Any]) -> object:
    kinds = [k for k in v if k != "name"]
    return kinds[0] if kinds else _MISSING


def _role_rules(key: str | None) -> Extractor:
    def extract(ctx: EventContext) -> tuple[str, ...] | None:
        rules = dig(ctx.audit, "requestObject", "rules")
        if not isinstance(rules, list):
            return None
        if key is None:
            return _list_of(rules)
        out: list[str] = []
        for r in rules:
            vals = r.get(key) if isinstance(r, dict) else None
            if isinstance(vals, list):
                out.extend(t for t in (as_text(v) for v in vals) if t is not None)
        return tuple(out)

    return extract


def _subjects(kind: str | None, attr: str = "name") -> Extractor:
    def extract(ctx: EventContext) -> tuple[str, ...] | None:
        subs = dig(ctx.audit, "requestObject", "subjects")
        if not isinstance(subs, list):
            return None
        if kind is None:
            return _list_of(subs)
        return tuple(str(s.get(attr, "")) for s in subs if isinstance(s, dict) and s.get("kind") == kind)

    return extract


def _target_pod_name(ctx: EventContext) -> str | None:
    if dig(ctx.audit, "objectRef", "resource") != "pods":
        return None
    return as_text(dig(ctx.audit, "objectRef", "name"))


_reg("ka.auditid", "The unique id of the audit event", _path("auditID"))
_reg("ka.stage", "Stage of the request (e.g. RequestReceived, ResponseComplete, etc.)", _path("stage"))
_reg("ka.auth.decision", "The authorization decision", _annotation("authorization.k8s.io/decision"))
_reg("ka.auth.reason", "The authorization reason", _annotation("authorization.k8s.io/reason"))
_reg(
    "ka.auth.openshift.decision",
    "The authentication decision of the openshift authorizer, if present.",
    _annotation("authorization.openshift.io/decision"),
)
_reg(
    "ka.auth.openshift.username",
    "The user name of the openshift authorizer, if present.",
    _annotation("authentication.openshift.io/username"),
)
_reg(
    "ka.validations.admission.policy.failure",
    "The validating admission policy failure, if present.",
    _annotation("validation.policy.admission.k8s.io/validation_failure"),
)
_reg(
    "ka.security.pod.violations",
    "The pod security admission violations, if present.",
    _annotation("pod-security.kubernetes.io/audit-violations"),
)
_reg("ka.user.name", "The user name performing the request", _path("user", "username"))
_reg("ka.user.groups", "The groups to which the user belongs", _list_path("user", "groups"), is_list=True)
_reg("ka.impuser.name", "The impersonated user name", _path("impersonatedUser", "username"))
_reg("ka.verb", "The action being performed", _path("verb"))
_reg("ka.uri", "The request URI as sent from client to server", _path("requestURI"))
_reg(
    "ka.uri.param",
    "The value of a given query parameter in the uri (e.g. when uri=/foo?key=val, ka.uri.param[key] is val).",
    lambda c: None,
    arg=ArgKind.REQUIRED,
    bind=_uri_param,
    arg_form="key",
)
_reg("ka.target.name", "The target object name", _path("objectRef", "name"))
_reg("ka.target.namespace", "The target object namespace", _path("objectRef", "namespace"))
_reg("ka.target.resource", "The target object resource", _path("objectRef", "resource"))
_reg("ka.target.subresource", "The target object subresource", _path("objectRef", "subresource"))
_reg("ka.target.pod.name", "The target pod name", _target_pod_name)
_reg(
    "ka.req.binding.subjects",
    "When the request object refers to a cluster role binding, the subject (e.g. "
    "account/users) being linked by the binding",
    _subjects(None),
    is_list=True,
)
_reg(
    "ka.req.binding.subjects.user_names",
    "When the request object refers to a cluster role binding, the subject user names being linked by the binding",
    _subjects("User"),
    is_list=True,
)
_reg(
    "ka.req.binding.subjects.serviceaccount_names",
    "When the request object refers to a cluster role binding, "
    "the subject service account names being linked by the binding",
    _subjects("ServiceAccount"),
    is_list=True,
)
_reg(
    "ka.req.binding.subjects.serviceaccount_ns_names",
    "When the request object refers to a cluster role "
    "binding, the subject service account namespaces being linked by the binding",
    _subjects("ServiceAccount", "namespace"),
    is_list=True,
)
_reg(
    "ka.req.binding.subjects.group_names",
    "When the request object refers to a cluster role binding, the subject group names being linked by the binding",
    _subjects("Group"),
    is_list=True,
)
_reg(
    "ka.req.binding.role",
    "When the request object refers to a cluster role binding, the role being linked by the binding",
    _path("requestObject", "roleRef", "name"),
)
_reg(
    "ka.req.configmap.name",
    "If the request object refers to a configmap, the configmap name",
    lambda c: (
        as_text(dig(c.audit, "objectRef", "name")) if dig(c.audit, "objectRef", "resource") == "configmaps" else None
    ),
)
_reg(
    "ka.req.configmap.obj",
    "If the request object refers to a configmap, the entire configmap object",
    _path("requestObject", "data"),
)
_reg(
    "ka.req.pod.host_ipc",
    "When the request object refers to a pod, the value of the hostIPC flag.",
    _pod_spec_bool("hostIPC"),
)
_reg(
    "ka.req.pod.host_network",
    "When the request object refers to a pod, the value of the hostNetwork flag.",
    _pod_spec_bool("hostNetwork"),
)
_reg(
    "ka.req.pod.host_pid",
    "When the request object refers to a pod, the value of the hostPID flag.",
    _pod_spec_bool("hostPID"),
)
_reg(
    "ka.req.container.host_network",
    "[DEPRECATED] the hostNetwork flag of the pod.",
    _pod_spec_bool("hostNetwork"),
    deprecated=True,
)
_reg(
    "ka.req.pod.run_as_user",
    "When the request object refers to a pod, the runAsUser uid specified in the security context for the pod.",
    _path("requestObject", "spec", "securityContext", "runAsUser"),
)
_reg(
    "ka.req.pod.run_as_group",
    "When the request object refers to a pod, the runAsGroup gid specified in the security context for the pod.",
    _path("requestObject", "spec", "securityContext", "runAsGroup"),
)
_reg(
    "ka.req.pod.fs_group",
    "When the request object refers to a pod, the fsGroup gid specified by the security context.",
    _path("requestObject", "spec", "securityContext", "fsGroup"),
)
_reg(
    "ka.req.pod.supplemental_groups",
    "When the request object refers to a pod, the supplementalGroup gids specified by the security context.",
    _list_path("requestObject", "spec", "securityContext", "supplementalGroups"),
    is_list=True,
)
_reg(
    "ka.req.pod.volumes.hostpath",
    "If the request object contains volume definitions, return the hostPath paths.",
    _volumes(lambda v: dig(v, "hostPath", "path")),
    is_list=True,
)
_reg(
    "ka.req.pod.volumes.flexvolume_driver",
    "If the request object contains volume definitions, return the driver of the flexVolumes.",
    _volumes(lambda v: dig(v, "flexVolume", "driver")),
    is_list=True,
)
_reg(
    "ka.req.pod.volumes.volume_type",
    "If the request object contains volume definitions, return the volume types.",
    _volumes(_volume_type),
    is_list=True,
)
_reg(
    "ka.req.role.rules",
    "When the request object refers to a role/cluster role, the rules associated with the role",
    _role_rules(None),
    is_list=True,
)
for _k, _n in (
    ("apiGroups", "apiGroups"),
    ("nonResourceURLs", "nonResourceURLs"),
    ("verbs", "verbs"),
    ("resources", "resources"),
):
    _reg(
        f"ka.req.role.rules.{_n}",
        f"When the request object refers to a role/cluster role, the {_n} associated with the role's rules",
        _role_rules(_k),
        is_list=True,
    )
_reg(
    "ka.req.service.type",
    "When the request object refers to a service, the service type",
    _path("requestObject", "spec", "type"),
)
_reg(
    "ka.req.service.ports",
    "When the request object refers to a service, the service's ports",
    _list_path("requestObject", "spec", "ports"),
    is_list=True,
)
_reg("ka.resp.name", "The response object name", _path("responseObject", "metadata", "name"))
_reg("ka.response.code", "The response code", _path("responseStatus", "code"))
_reg("ka.response.reason", "The response reason (usually present only for failures)", _path("responseStatus", "reason"))
_reg("ka.useragent", "The useragent of the client who made the request to the apiserver", _path("userAgent"))
_reg(
    "ka.sourceips",
    "The IP addresses of the client who made the request to the apiserver",
    _list_path("sourceIPs"),
    is_list=True,
)
_reg("ka.cluster.name", "The name of the k8s cluster (not known to Lanner; always empty)", lambda c: None)


# --- fields older rules files use (Falco's engine before the k8saudit plugin; the plugin kept some of them) -------
def _hostpath_used(key: str) -> Extractor:
    """``ka.req.volume.hostpath[/proc*]``: "true" when a hostPath volume has that path (a trailing * = prefix)."""

    def extract(ctx: EventContext) -> str | None:
        vols = dig(ctx.audit, "requestObject", "spec", "volumes")
        if not isinstance(vols, list):
            return None
        paths = [p for p in (dig(v, "hostPath", "path") for v in vols) if isinstance(p, str)]
        prefix = key[:-1] if key.endswith("*") else None
        hit = any(p == key or (prefix is not None and p.startswith(prefix)) for p in paths)
        return "true" if hit else "false"

    return extract


def _subject_named(name: str) -> Extractor:
    """``ka.req.binding.subject.has_name[x]``: "true" when a subject of the binding is called ``x``."""

    def extract(ctx: EventContext) -> str | None:
        subs = dig(ctx.audit, "requestObject", "subjects")
        if not isinstance(subs, list):
            return None
        return "true" if any(isinstance(s, dict) and s.get("name") == name for s in subs) else "false"

    return extract


_reg(
    "ka.req.volume.hostpath",
    'Deprecated by ka.req.pod.volumes.hostpath. "true" if the given host path (a '
    "trailing * makes it a prefix) is used by any volume.",
    lambda c: None,
    arg=ArgKind.REQUIRED,
    bind=_hostpath_used,
    arg_form="key",
    deprecated=True,
)
_reg(
    "ka.req.binding.subject.has_name",
    '[LEGACY] "true" if a subject of the role binding has the given name.',
    lambda c: None,
    arg=ArgKind.REQUIRED,
    bind=_subject_named,
    arg_form="key",
    deprecated=True,
)
