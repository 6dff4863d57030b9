# SPDX-License-Identifier: Apache-2.0
"""``container.*`` and ``k8s.*`` fields, with the container plugin's three metadata states.

* host process (``container.id == "host"``): name/type/full_id ``host``, image parts ``""``, privileged false,
  every ``k8s.*`` field absent;
* container id known but no metadata (lookup pending or failed): everything but the id and the start time absent;
* metadata present: the runtime's values, ``""`` where the runtime gave nothing; ``k8s.*`` absent unless the
  container belongs to a pod.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from lanner.model import HOST_CONTAINER_ID, Container, Event, Mount
from ruleengine.fields._builder import EventBuilder
from ruleengine.fields._context import EventContext
from ruleengine.fields._registry import register
from ruleengine.fields._types import ArgKind, Extractor, FieldType
from ruleengine.fields._values import as_bool, as_str

CGet = Callable[[Container], object]


def split_image(image: str) -> tuple[str, str]:
    """(repository, tag) of an image reference: digest dropped, tag only after the last ``/``."""
    ref = image.split("@", 1)[0]
    colon = ref.rfind(":")
    if colon > ref.rfind("/"):
        return ref[:colon], ref[colon + 1 :]
    return ref, ""


def _meta(get: CGet, host: object) -> Extractor:
    def extract(ctx: EventContext) -> object:
        c = ctx.event.container
        if c.id == HOST_CONTAINER_ID:
            return host
        if not c.metadata_complete:
            return None
        return get(c)

    return extract


def _set_c(key: str, conv: Callable[[object], Any] = as_str) -> Callable[[EventBuilder, str | None, object], None]:
    def setter(b: EventBuilder, arg: str | None, v: object) -> None:
        b.container[key] = conv(v)
        if key != "id":
            b.container["metadata_complete"] = True

    return setter


def _set_id(b: EventBuilder, arg: str | None, v: object) -> None:
    b.container["id"] = as_str(v)


def _set_image(b: EventBuilder, arg: str | None, v: object) -> None:
    text = as_str(v)
    b.container["image"] = text
    repo, tag = split_image(text)
    b.container.setdefault("image_repository", repo)
    b.container.setdefault("image_tag", tag)
    b.container["metadata_complete"] = True


def _start_ts(ctx: EventContext) -> int | None:
    ev = ctx.event
    v = ev.proc.pidns_init_start_ns or ev.container.start_ns
    return v or None


def _mount_str(m: Mount) -> str:
    return f"{m.source}:{m.dest}:{m.mode}:{'true' if m.rw else 'false'}:{m.propagation}"


def _find_mount(c: Container, sel: str, by_dest: bool) -> Mount | None:
    if sel.isdigit():
        i = int(sel)
        return c.mounts[i] if i < len(c.mounts) else None
    # The container plugin matches the selector as a regular-expression search over the path.
    try:
        pattern = re.compile(sel)
    except re.error:
        pattern = re.compile(re.escape(sel))
    for m in c.mounts:
        if pattern.search(m.dest if by_dest else m.source):
            return m
    return None


def _mount_field(part: Callable[[Mount], str], by_dest: bool) -> Callable[[str], Extractor]:
    def bind(arg: str) -> Extractor:
        def extract(ctx: EventContext) -> str | None:
            c = ctx.event.container
            if c.id == HOST_CONTAINER_ID or not c.metadata_complete:
                return None
            m = _find_mount(c, arg, by_dest)
            return None if m is None else part(m)

        return extract

    return bind


def _parse_mount(text: str) -> Mount:
    parts = text.split(":")
    if len(parts) != 5:
        raise ValueError(f"mount '{text}' is not source:dest:mode:rdwr:propagation")
    return Mount(parts[0], parts[1], parts[2], parts[3] == "true", parts[4])


def _set_mounts(b: EventBuilder, arg: str | None, v: object) -> None:
    items = v if isinstance(v, list) else [p for p in as_str(v).split(",") if p]
    b.container["mounts"] = [_parse_mount(as_str(x)) for x in items]
    b.container["metadata_complete"] = True


def _set_mount_dest(b: EventBuilder, arg: str | None, v: object) -> None:
    assert arg is not None
    mounts = b.container.setdefault("mounts", [])
    src = arg if not arg.isdigit() else as_str(v)
    mounts.append(Mount(source=src.rstrip("*"), dest=as_str(v), rw=True))
    b.container["metadata_complete"] = True


def _labels_str(labels: dict[str, str] | Any) -> str:
    return ", ".join(f"{k}:{v}" for k, v in labels.items() if not k.startswith(("annotation.", "io.kubernetes.")))


def _set_label(key_attr: str, target: str) -> Any:
    def setter(b: EventBuilder, arg: str | None, v: object) -> None:
        d = b.container if target == "container" else b.k8s
        labels = dict(d.get(key_attr, {}))
        assert arg is not None
        labels[arg] = as_str(v)
        d[key_attr] = labels
        b.container["metadata_complete"] = True

    return setter


def _host_ns(ns: str) -> CGet:
    return lambda c: bool(getattr(c, f"host_{ns}"))


_S = FieldType.STRING
register(
    "container.id",
    _S,
    "The truncated container ID (first 12 characters), e.g. 3ad7b26ded6d is extracted "
    "from the Linux cgroups by Falco within the kernel. Consequently, this field is reliably available and "
    "serves as the lookup key for Falco's synchronous or asynchronous requests against the container runtime "
    "socket to retrieve all other 'container.*' information. One important aspect to be aware of is that if "
    "the process occurs on the host, meaning not in the container PID namespace, this field is set to a "
    "string called 'host'.",
    extract=lambda c: c.event.container.id,
    setter=_set_id,
)
register(
    "container.full_id",
    _S,
    "The full container ID, e.g. 3ad7b26ded6d8e7b23da7d48fe889434573036c27ae5a74837233de441c3601e.",
    extract=_meta(lambda c: c.full_id or c.id, "host"),
    setter=_set_c("full_id"),
)
register("container.name", _S, "The container name.", extract=_meta(lambda c: c.name, "host"), setter=_set_c("name"))
register(
    "container.image",
    _S,
    "The container image name (e.g. falcosecurity/falco:latest for docker).",
    extract=_meta(lambda c: c.image, ""),
    setter=_set_image,
)
register(
    "container.image.id",
    _S,
    "The container image id (e.g. 6f7e2741b66b).",
    extract=_meta(lambda c: c.image_id, ""),
    setter=_set_c("image_id"),
)
register(
    "container.type",
    _S,
    "The container type, e.g. docker, cri-o, containerd etc.",
    extract=_meta(lambda c: c.type, "host"),
    setter=_set_c("type"),
)
register(
    "container.privileged",
    FieldType.BOOL,
    "'true' for containers running as privileged, 'false' otherwise.",
    extract=_meta(lambda c: bool(c.privileged), False),
    setter=_set_c("privileged", as_bool),
)
register(
    "container.mounts",
    _S,
    "A space-separated list of mount information. Each item in the list has the "
    "format 'source:dest:mode:rdrw:propagation'.",
    extract=_meta(lambda c: ",".join(_mount_str(m) for m in c.mounts), ""),
    setter=_set_mounts,
)
for _fname, _part, _by_dest, _desc in (
    (
        "container.mount",
        _mount_str,
        False,
        "Information about a single mount, specified by number (e.g. "
        "container.mount[0]) or mount source (container.mount[/usr/local]). The pathname can be a glob.",
    ),
    (
        "container.mount.source",
        lambda m: m.source,
        True,
        "The mount source, specified by number (e.g. "
        "container.mount.source[0]) or mount destination (container.mount.source[/host/lib/modules]).",
    ),
    (
        "container.mount.dest",
        lambda m: m.dest,
        False,
        "The mount destination, specified by number (e.g. "
        "container.mount.dest[0]) or mount source (container.mount.dest[/lib/modules]).",
    ),
    (
        "container.mount.mode",
        lambda m: m.mode,
        False,
        "The mount mode, specified by number (e.g. "
        "container.mount.mode[0]) or mount source (container.mount.mode[/usr/local]).",
    ),
    (
        "container.mount.rdwr",
        lambda m: "true" if m.rw else "false",
        False,
        "The mount rdwr value, specified by "
        "number (e.g. container.mount.rdwr[0]) or mount source (container.mount.rdwr[/usr/local]).",
    ),
    (
        "container.mount.propagation",
        lambda m: m.propagation,
        False,
        "The mount propagation value, specified by "
        "number (e.g. container.mount.propagation[0]) or mount source (container.mount.propagation[/usr/local]).",
    ),
):
    register(
        _fname,
        _S,
        _desc,
        arg=ArgKind.REQUIRED,
        arg_form="any",
        bind=_mount_field(_part, _by_dest),
        setter=_set_mount_dest if _fname == "container.mount.dest" else None,
        derived=_fname != "container.mount.dest",
    )
register(
    "container.image.repository",
    _S,
    "The container image repository (e.g. falcosecurity/falco).",
    extract=_meta(lambda c: c.image_repository, ""),
    setter=_set_c("image_repository"),
)
register(
    "container.image.tag",
    _S,
    "The container image tag (e.g. stable, latest).",
    extract=_meta(lambda c: c.image_tag, ""),
    setter=_set_c("image_tag"),
)
register(
    "container.image.digest",
    _S,
    "The container image registry digest (e.g. sha256:d977378f8...).",
    extract=_meta(lambda c: c.image_digest, ""),
    setter=_set_c("image_digest"),
)
register(
    "container.start_ts",
    FieldType.ABSTIME,
    "Container start as epoch timestamp in nanoseconds based on "
    "proc.pidns_init_start_ts and extracted in the kernel and not from the container runtime socket / "
    "container engine.",
    extract=_start_ts,
    derived=True,
)
register(
    "container.duration",
    FieldType.RELTIME,
    "Number of nanoseconds since container.start_ts.",
    extract=lambda c: None if (s := _start_ts(c)) is None else c.event.timing.event_ns - s,
    derived=True,
)
register(
    "container.ip",
    _S,
    "The container's / pod's primary ip address as retrieved from the container engine.",
    extract=_meta(lambda c: c.ip, ""),
    setter=_set_c("ip"),
)
register(
    "container.cni.json",
    _S,
    "The container's / pod's CNI result field from the respective pod status info.",
    extract=_meta(lambda c: c.cni_json, ""),
    setter=_set_c("cni_json"),
)
for _ns in ("pid", "network", "ipc"):
    register(
        f"container.host_{_ns}",
        FieldType.BOOL,
        f"'true' if the container is running in the host {_ns} namespace, 'false' otherwise.",
        extract=_meta(_host_ns(_ns), False),
        setter=_set_c(f"host_{_ns}", as_bool),
    )
register(
    "container.label",
    _S,
    "Container label. E.g. 'container.label.foo'.",
    arg=ArgKind.REQUIRED,
    arg_form="key",
    bind=lambda k: _meta(lambda c: c.labels.get(k), None),
    setter=_set_label("labels", "container"),
)
register(
    "container.labels",
    _S,
    "Container comma-separated key/value labels (e.g. 'foo1:bar1, foo2:bar2').",
    extract=_meta(lambda c: _labels_str(c.labels), ""),
    derived=True,
)
register(
    "container.user",
    _S,
    "The user the container's entrypoint runs as.",
    extract=_meta(lambda c: c.user, ""),
    setter=_set_c("user"),
)
register(
    "container.info",
    _S,
    "Deprecated: info about the container, no longer useful (renders empty).",
    extract=lambda c: "",
    deprecated=True,
    derived=True,
)
for _probe in ("healthcheck", "liveness_probe", "readiness_probe"):
    register(
        f"container.{_probe}",
        _S,
        f"Deprecated; always empty (container {_probe}).",
        extract=lambda c: None,
        deprecated=True,
        derived=True,
    )


# ---- k8s.* ---------------------------------------------------------------------------------------------------
def _pod(get: Callable[[Event], str | None]) -> Extractor:
    def extract(ctx: EventContext) -> str | None:
        ev = ctx.event
        if ev.container.id == HOST_CONTAINER_ID or not ev.container.metadata_complete:
            return None
        return get(ev) or None

    return extract


def _set_k(key: str) -> Callable[[EventBuilder, str | None, object], None]:
    def setter(b: EventBuilder, arg: str | None, v: object) -> None:
        b.k8s[key] = as_str(v)
        b.container["metadata_complete"] = True

    return setter


register(
    "k8s.ns.name",
    _S,
    "The Kubernetes namespace name. This field is extracted from the container runtime "
    "socket simultaneously as we look up the 'container.*' fields. In cases of lookup delays, it may not be "
    "available yet.",
    extract=_pod(lambda e: e.k8s.ns_name),
    setter=_set_k("ns_name"),
)
register(
    "k8s.pod.name", _S, "The Kubernetes pod name.", extract=_pod(lambda e: e.k8s.pod_name), setter=_set_k("pod_name")
)
register(
    "k8s.pod.uid",
    _S,
    "The Kubernetes pod UID, e.g. 3e41dc6b-08a8-44db-bc2a-3724b18ab19a.",
    extract=_pod(lambda e: e.k8s.pod_uid),
    setter=_set_k("pod_uid"),
)
register(
    "k8s.pod.id",
    _S,
    "[LEGACY] The Kubernetes pod UID; use k8s.pod.uid.",
    extract=_pod(lambda e: e.k8s.pod_uid),
    derived=True,
    deprecated=True,
)
register(
    "k8s.pod.sandbox_id",
    _S,
    "The truncated Kubernetes pod sandbox ID (first 12 characters).",
    extract=_pod(lambda e: e.k8s.pod_sandbox_id[:12]),
    setter=_set_k("pod_sandbox_id"),
)
register(
    "k8s.pod.full_sandbox_id",
    _S,
    "The full Kubernetes pod / sandbox ID.",
    extract=_pod(lambda e: e.k8s.pod_sandbox_id),
    setter=_set_k("pod_sandbox_id"),
)
register(
    "k8s.pod.label",
    _S,
    "The Kubernetes pod label. The label can be accessed either with the familiar "
    "brackets notation, e.g. 'k8s.pod.label[foo]' or by appending a dot, e.g. 'k8s.pod.label.foo'.",
    arg=ArgKind.REQUIRED,
    arg_form="key",
    bind=lambda k: _pod(lambda e: e.k8s.pod_labels.get(k)),
    setter=_set_label("pod_labels", "k8s"),
)
register(
    "k8s.pod.labels",
    _S,
    "The Kubernetes pod comma-separated key/value labels. E.g. 'foo1:bar1, foo2:bar2'.",
    extract=_pod(lambda e: _labels_str(e.k8s.pod_labels)),
    derived=True,
)
register(
    "k8s.pod.ip",
    _S,
    "The Kubernetes pod ip, same as container.ip field as each container in a pod shares "
    "the network stack of the sandbox / pod.",
    extract=_pod(lambda e: e.k8s.pod_ip or e.container.ip),
    setter=_set_k("pod_ip"),
)
register(
    "k8s.pod.cni.json",
    _S,
    "The Kubernetes pod CNI result field from the respective pod status info.",
    extract=_pod(lambda e: e.k8s.pod_cni_json),
    setter=_set_k("pod_cni_json"),
)
register(
    "k8s.ns.uid",
    _S,
    "The Kubernetes namespace UID (not available from the container runtime).",
    extract=_pod(lambda e: e.k8s.ns_uid),
    setter=_set_k("ns_uid"),
)
# k8s.rs.name and k8s.deployment.name are filled from the pod's labels (ruleengine.fields.k8s_workload).
for _legacy in (
    "k8s.rc.name",
    "k8s.rc.id",
    "k8s.svc.name",
    "k8s.svc.id",
    "k8s.rs.id",
    "k8s.deployment.id",
    "k8s.ns.id",
):
    register(
        _legacy,
        _S,
        f"[LEGACY] {_legacy}: declared for compatibility, never extracted (use the k8smeta plugin).",
        extract=lambda c: None,
        derived=True,
        deprecated=True,
    )
