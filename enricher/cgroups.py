# SPDX-License-Identifier: Apache-2.0
"""Container id from a process's cgroup paths (the lines of ``/proc/PID/cgroup``).

Pure functions. Every runtime puts the container's 64-hex id into one path component of the cgroup; the layouts
differ (see shared/reference/runtime-apis.md §3.1):

* Docker, cgroupfs ``/docker/<id>``; systemd ``/system.slice/docker-<id>.scope``
* containerd CRI, cgroupfs ``/kubepods/<qos>/pod<uid>/<id>``; systemd ``…/cri-containerd-<id>.scope``;
  kubelet slice with runc in cgroupfs mode ``…pod<uid>.slice:cri-containerd:<id>``
* CRI-O ``…/crio-<id>.scope`` or ``…/crio-<id>``; its monitor at ``crio-conmon-<id>``
* Podman ``/machine.slice/libpod-<id>.scope[/container]``, ``/libpod_parent/libpod-<id>``,
  ``…/libpod-payload-<id>``; its monitor at ``libpod-conmon-<id>.scope``
* nerdctl ``…/nerdctl-<id>.scope``; plain containerd ``/<namespace>/<id>``

A process can sit in a nested cgroup below its container's, so the *last* container-shaped component wins, not
only the final one. Runtime monitors (conmon) run on the host side of the container boundary: a path whose last
container-shaped component is a monitor's is a host process, as in Falco. The path alone cannot tell Docker's
``/docker/<id>`` from a CRI ``/kubepods/…/<id>`` for sure, so the result carries only a hint; the enricher asks
each runtime which one knows the id.

Unlike Falco's plain-containerd matcher we do not accept non-hex ids after an arbitrary first component: on
hosts like this one, unrelated cgroups such as ``/process_api/<32 hex>`` would be taken for containers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

_HEX64 = r"[0-9a-f]{64}"

# (pattern over one path component, runtime hint); order does not matter, each is anchored on both ends.
_COMPONENT_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), hint)
    for p, hint in (
        (rf"docker-(?P<id>{_HEX64})\.scope", "docker"),
        (rf"cri-containerd-(?P<id>{_HEX64})\.scope", "containerd"),
        (rf".*:cri-containerd:(?P<id>{_HEX64})", "containerd"),
        (rf"crio-(?P<id>{_HEX64})(?:\.scope)?", "cri-o"),
        (rf"libpod-(?:payload-)?(?P<id>{_HEX64})(?:\.scope)?", "podman"),
        (rf"nerdctl-(?P<id>{_HEX64})\.scope", "containerd"),
        (rf"(?P<id>{_HEX64})", ""),
    )
)
# Runtime monitors: the component carries a container id but the process is the runtime's, on the host.
_HELPER = re.compile(rf"(?:crio-conmon|libpod-conmon)-{_HEX64}(?:\.scope)?")
_POD_CGROUPFS = re.compile(r"pod(?P<uid>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
_POD_SYSTEMD = re.compile(
    r"kubepods(?:-[a-z]+)?-pod(?P<uid>[0-9a-f]{8}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{12})\.slice"
)


@dataclass(frozen=True, slots=True)
class CgroupMatch:
    """A container found in a cgroup path.

    ``runtime_hint`` is ``docker``, ``containerd``, ``cri-o``, ``podman`` or ``""`` when the layout does not say;
    ``pod_uid`` is the Kubernetes pod UID when the path has a kubelet pod component.
    """

    full_id: str
    runtime_hint: str = ""
    pod_uid: str = ""

    @property
    def short_id(self) -> str:
        """The 12-character id Falco reports as ``container.id``."""
        return self.full_id[:12]


def _pod_uid(components: Sequence[str]) -> str:
    for comp in components:
        m = _POD_CGROUPFS.fullmatch(comp)
        if m:
            return m.group("uid")
        m = _POD_SYSTEMD.fullmatch(comp)
        if m:
            return m.group("uid").replace("_", "-")
    return ""


@lru_cache(maxsize=16384)
def match_cgroup_path(path: str) -> CgroupMatch | None:
    """The container a cgroup path belongs to, or None for a host cgroup."""
    if len(path) < 64:
        return None
    components = path.split("/")
    for i in range(len(components) - 1, -1, -1):
        comp = components[i]
        if len(comp) < 64:
            continue
        if _HELPER.fullmatch(comp):
            return None
        for pattern, hint in _COMPONENT_PATTERNS:
            m = pattern.fullmatch(comp)
            if m is None:
                continue
            parents = components[:i]
            if not hint:
                if "docker" in parents:
                    hint = "docker"
                elif any(p.startswith("kubepods") for p in parents):
                    hint = "cri"
            return CgroupMatch(full_id=m.group("id"), runtime_hint=hint, pod_uid=_pod_uid(parents))
    return None


def parse_cgroup_line(line: str) -> tuple[str, str, str] | None:
    """Split one ``/proc/PID/cgroup`` line ``hierarchy-id:controllers:path`` into its three parts."""
    parts = line.strip().split(":", 2)
    if len(parts) != 3:
        return None
    return parts[0], parts[1], parts[2]


@lru_cache(maxsize=16384)
def match_cgroup_tuple(lines: tuple[str, ...]) -> CgroupMatch | None:
    """``match_cgroup_lines`` memoised on the exact lines (most events repeat a few cgroup sets)."""
    return match_cgroup_lines(lines)


def match_cgroup_lines(lines: Sequence[str]) -> CgroupMatch | None:
    """The container of a process from its cgroup lines (cgroup v1, v2, or hybrid), or None for the host.

    The unified (v2, ``0::``) line is tried first; on hybrid and pure-v1 hosts it may be ``/`` while the v1
    controllers carry the container path, so every other line is tried next. A bare path without the
    ``id:controllers:`` prefix is accepted too.
    """
    v1: list[str] = []
    for line in lines:
        parsed = parse_cgroup_line(line)
        if parsed is None:
            if line.startswith("/"):
                v1.append(line.strip())
            continue
        hierarchy, controllers, path = parsed
        if hierarchy == "0" and controllers == "":
            found = match_cgroup_path(path)
            if found is not None:
                return found
        else:
            v1.append(path)
    for path in v1:
        found = match_cgroup_path(path)
        if found is not None:
            return found
    return None
