# SPDX-License-Identifier: Apache-2.0
"""Container id from cgroup paths: every runtime layout, cgroup v1/v2/hybrid, host and helper cgroups."""

from __future__ import annotations

import os

import pytest

from enricher.cgroups import CgroupMatch, match_cgroup_lines, match_cgroup_path, parse_cgroup_line

ID = "e505bf71a3c44c6e2c1a8f5b4fd1d6e6f3f9b0d1c2a3b4c5d6e7f8091a2b8ebd"
UID = "e1ca31b6-b834-4f0a-9c35-2d1b3f4a5b6c"
UID_ = UID.replace("-", "_")


@pytest.mark.parametrize(
    ("path", "hint", "pod_uid"),
    [
        (f"/docker/{ID}", "docker", ""),
        (f"/system.slice/docker-{ID}.scope", "docker", ""),
        (f"/user.slice/user-1000.slice/user@1000.service/app.slice/docker-{ID}.scope", "docker", ""),
        (f"/kubepods/besteffort/pod{UID}/{ID}", "cri", UID),
        (f"/kubepods/burstable/pod{UID}/{ID}", "cri", UID),
        (f"/kubepods/pod{UID}/{ID}", "cri", UID),
        (
            f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{ID}.scope",
            "containerd",
            UID,
        ),
        (f"/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{ID}.scope", "containerd", UID),
        (
            f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice:cri-containerd:{ID}",
            "containerd",
            "",
        ),
        (
            f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/crio-{ID}.scope",
            "cri-o",
            UID,
        ),
        (f"/kubepods/besteffort/pod{UID}/crio-{ID}", "cri-o", UID),
        (
            f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/docker-{ID}.scope",
            "docker",
            UID,
        ),
        (f"/system.slice/nerdctl-{ID}.scope", "containerd", ""),
        (f"/default/{ID}", "", ""),
        (f"/machine.slice/libpod-{ID}.scope", "podman", ""),
        (f"/machine.slice/libpod-{ID}.scope/container", "podman", ""),
        (f"/libpod_parent/libpod-{ID}", "podman", ""),
        (f"/libpod_parent/libpod-payload-{ID}", "podman", ""),
        (f"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope", "podman", ""),
    ],
)
def test_layouts(path: str, hint: str, pod_uid: str) -> None:
    assert match_cgroup_path(path) == CgroupMatch(full_id=ID, runtime_hint=hint, pod_uid=pod_uid)


def test_short_id_is_twelve_chars() -> None:
    m = match_cgroup_path(f"/docker/{ID}")
    assert m is not None and m.short_id == ID[:12]


def test_nested_cgroup_below_container_takes_last_container_component() -> None:
    inner = "a" * 64
    assert match_cgroup_path(f"/docker/{ID}/init.scope") == CgroupMatch(ID, "docker")
    # A container nested in a container (docker-in-docker): the innermost wins.
    assert match_cgroup_path(f"/docker/{ID}/docker/{inner}") == CgroupMatch(inner, "docker")


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "",
        "/user.slice/user-0.slice/session-3.scope",
        "/system.slice/containerd.service",
        "/process_api/6c3c717ae7112154a2358e1669400e13",  # 32 hex: not a container (seen on this host)
        f"/docker/{ID[:63]}",  # one char short
        f"/docker/{ID}x",
        f"/docker/{ID.upper()}",
        f"/kubepods.slice/kubepods-pod{UID_}.slice/crio-conmon-{ID}.scope",  # CRI-O's monitor runs on the host
        f"/machine.slice/libpod-conmon-{ID}.scope",
    ],
)
def test_host_and_helper_cgroups(path: str) -> None:
    assert match_cgroup_path(path) is None


def test_parse_line() -> None:
    assert parse_cgroup_line(f"0::/docker/{ID}\n") == ("0", "", f"/docker/{ID}")
    assert parse_cgroup_line("4:memory:/a:b") == ("4", "memory", "/a:b")
    assert parse_cgroup_line("garbage") is None


def test_v2_only() -> None:
    assert match_cgroup_lines([f"0::/system.slice/docker-{ID}.scope"]) == CgroupMatch(ID, "docker")


def test_v1_only() -> None:
    lines = [f"12:pids:/docker/{ID}", f"11:memory:/docker/{ID}", f"1:name=systemd:/docker/{ID}"]
    assert match_cgroup_lines(lines) == CgroupMatch(ID, "docker")


def test_hybrid_with_root_unified_uses_v1_controllers() -> None:
    # Hybrid hosts can leave the unified hierarchy at / while the v1 controllers hold the container path.
    lines = ["9:name=systemd:/docker/" + ID, "4:memory:/docker/" + ID, "0::/"]
    assert match_cgroup_lines(lines) == CgroupMatch(ID, "docker")


def test_hybrid_as_seen_on_this_host_for_a_cri_pod() -> None:
    lines = [f"9:name=systemd:/kubepods/besteffort/pod{UID}/{ID}", f"0::/kubepods/besteffort/pod{UID}/{ID}"]
    assert match_cgroup_lines(lines) == CgroupMatch(ID, "cri", UID)


def test_host_process_lines() -> None:
    lines = ["9:name=systemd:/", "4:memory:/process_api/6c3c717ae7112154a2358e1669400e13", "0::/"]
    assert match_cgroup_lines(lines) is None
    assert match_cgroup_lines([]) is None


def test_bare_paths_accepted() -> None:
    assert match_cgroup_lines([f"/docker/{ID}"]) == CgroupMatch(ID, "docker")


def _same_namespace(kind: str) -> bool:
    try:
        return os.readlink(f"/proc/self/ns/{kind}") == os.readlink(f"/proc/1/ns/{kind}")
    except OSError:
        return False


def test_own_process_cgroup_parses() -> None:
    """The real /proc/self/cgroup: every line splits into its three parts, and a process that shares init's
    cgroup and pid namespaces (a host process, as the test runner is) is not taken for a container."""
    with open("/proc/self/cgroup") as f:
        lines = f.read().splitlines()
    assert lines
    for line in lines:
        parsed = parse_cgroup_line(line)
        assert parsed is not None and parsed[2].startswith("/"), line
    found = match_cgroup_lines(lines)
    if _same_namespace("cgroup") and _same_namespace("pid"):
        assert found is None, (lines, found)
    else:  # the tests themselves run in a container: then it is one, with a full hexadecimal id
        assert found is None or all(c in "0123456789abcdef" for c in found.full_id), found
