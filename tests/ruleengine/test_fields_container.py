# SPDX-License-Identifier: Apache-2.0
"""container.* and k8s.*: host, pending-metadata and full-metadata states; mounts; images."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from lanner.model import Container, Event, K8s, Mount, Process
from ruleengine.fields.container import split_image
from tests.ruleengine.fields_util import text, value

FULL = Container(
    id="3ad7b26ded6d",
    full_id="3ad7b26ded6d" + "8" * 52,
    type="docker",
    name="web",
    image="docker.io/library/nginx:1.25",
    image_repository="docker.io/library/nginx",
    image_tag="1.25",
    privileged=True,
    metadata_complete=True,
    labels=MappingProxyType({"app": "web", "io.kubernetes.pod.name": "web-1"}),
    mounts=(
        Mount("/var/run/docker.sock", "/var/run/docker.sock", "", True, "rprivate"),
        Mount("/proc", "/host/proc", "ro", False, "private"),
    ),
)
POD = K8s(pod_name="web-1", ns_name="prod", pod_uid="uid-1", pod_labels=MappingProxyType({"tier": "front"}))


def test_host_process() -> None:
    ev = Event(type="open")
    assert value(ev, "container.id") == "host"
    assert value(ev, "container.name") == "host"
    assert value(ev, "container.full_id") == "host"
    assert value(ev, "container.type") == "host"
    assert value(ev, "container.privileged") is False
    assert value(ev, "container.image.repository") == ""  # empty string, not absent
    assert value(ev, "container.mounts") == ""
    assert value(ev, "k8s.ns.name") is None and value(ev, "k8s.pod.name") is None
    assert text(ev, "k8s.ns.name") == "<NA>"


def test_metadata_pending() -> None:
    ev = Event(type="open", container=Container(id="3ad7b26ded6d"), proc=Process(pidns_init_start_ns=123))
    assert value(ev, "container.id") == "3ad7b26ded6d"
    for name in (
        "container.name",
        "container.image",
        "container.image.repository",
        "container.privileged",
        "container.mounts",
        "k8s.pod.name",
    ):
        assert value(ev, name) is None, name
    assert value(ev, "container.start_ts") == 123  # from the kernel, works while pending


def test_full_metadata() -> None:
    ev = Event(type="open", container=FULL, k8s=POD)
    assert value(ev, "container.name") == "web"
    assert value(ev, "container.image") == "docker.io/library/nginx:1.25"
    assert value(ev, "container.image.repository") == "docker.io/library/nginx"
    assert value(ev, "container.image.tag") == "1.25"
    assert value(ev, "container.image.digest") == ""
    assert value(ev, "container.privileged") is True
    assert value(ev, "container.type") == "docker"
    assert value(ev, "container.label", "app") == "web"
    assert value(ev, "container.label", "nope") is None
    assert value(ev, "container.labels") == "app:web"  # io.kubernetes.* labels are skipped
    assert value(ev, "k8s.pod.name") == "web-1" and value(ev, "k8s.ns.name") == "prod"
    assert value(ev, "k8s.pod.uid") == "uid-1" and value(ev, "k8s.pod.label", "tier") == "front"
    not_a_pod = Event(type="open", container=FULL)
    assert value(not_a_pod, "k8s.ns.name") is None


def test_mounts() -> None:
    ev = Event(type="open", container=FULL)
    assert value(ev, "container.mounts") == (
        "/var/run/docker.sock:/var/run/docker.sock::true:rprivate,/proc:/host/proc:ro:false:private"
    )
    assert value(ev, "container.mount.dest", "/var/run/docker.sock") == "/var/run/docker.sock"
    assert value(ev, "container.mount.dest", "/proc*") == "/host/proc"  # a regex search, like the plugin
    assert value(ev, "container.mount.dest", "/etc") is None
    assert value(ev, "container.mount.dest", "1") == "/host/proc"
    assert value(ev, "container.mount.source", "/host/proc") == "/proc"
    assert value(ev, "container.mount.rdwr", "0") == "true"
    assert value(ev, "container.mount", "/proc") == "/proc:/host/proc:ro:false:private"


@pytest.mark.parametrize(
    ("image", "repo", "tag"),
    [
        ("docker.io/library/nginx:1.25", "docker.io/library/nginx", "1.25"),
        ("nginx", "nginx", ""),
        ("registry:5000/ns/app", "registry:5000/ns/app", ""),
        ("registry:5000/ns/app:v2@sha256:abc", "registry:5000/ns/app", "v2"),
        ("registry:5000/ns/app@sha256:abc", "registry:5000/ns/app", ""),
    ],
)
def test_image_split(image: str, repo: str, tag: str) -> None:
    assert split_image(image) == (repo, tag)
