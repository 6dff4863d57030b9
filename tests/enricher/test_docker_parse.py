# SPDX-License-Identifier: Apache-2.0
"""Docker inspect JSON -> metadata, timestamps, and the cache's JSON form (pure functions, recorded shapes)."""

from __future__ import annotations

import pytest

from enricher.docker import meta_from_inspect, parse_docker_time
from enricher.meta import ContainerMeta
from lanner.model import Container, K8s, Mount

CID = "e505bf71a3c44c6e2c1a8f5b4fd1d6e6f3f9b0d1c2a3b4c5d6e7f8091a2b8ebd"

# The fields Lanner reads, in the shape Docker 20.10 (API 1.41) returns them.
INSPECT = {
    "Id": CID,
    "Name": "/shop-web-1",
    "Image": "sha256:" + "12" * 32,
    "State": {"Status": "running", "Pid": 4242, "StartedAt": "2026-11-30T03:01:02.123456789Z"},
    "Config": {
        "Image": "nginx:1.25",
        "User": "101",
        "Labels": {"com.docker.compose.project": "shop", "com.docker.compose.service": "web"},
    },
    "HostConfig": {"Privileged": True, "NetworkMode": "host", "PidMode": "", "IpcMode": "private"},
    "Mounts": [
        {
            "Type": "bind",
            "Source": "/etc",
            "Destination": "/host/etc",
            "Mode": "ro",
            "RW": False,
            "Propagation": "rprivate",
        },
        {
            "Type": "volume",
            "Name": "data",
            "Source": "/var/lib/docker/volumes/data/_data",
            "Destination": "/data",
            "Driver": "local",
            "Mode": "z",
            "RW": True,
            "Propagation": "",
        },
    ],
    "NetworkSettings": {"Networks": {"shop_default": {"IPAddress": "172.18.0.5"}}},
}
IMAGE = {"RepoTags": ["nginx:1.25"], "RepoDigests": ["nginx@sha256:" + "ab" * 32]}


def test_meta_from_inspect() -> None:
    meta = meta_from_inspect(INSPECT, IMAGE)
    c = meta.container
    assert (c.id, c.full_id, c.type, c.name) == (CID[:12], CID, "docker", "shop-web-1")
    assert (c.image, c.image_repository, c.image_tag) == ("nginx:1.25", "nginx", "1.25")
    assert c.image_digest == "sha256:" + "ab" * 32 and c.image_id == "12" * 32
    assert c.privileged is True and c.host_network is True and c.host_pid is False and c.host_ipc is False
    assert c.user == "101" and c.ip == "172.18.0.5"
    assert c.labels["com.docker.compose.service"] == "web"
    assert c.mounts[0] == Mount("/etc", "/host/etc", "ro", False, "rprivate")
    assert c.mounts[1].rw and c.mounts[1].dest == "/data"
    assert c.start_ns == 1796007662123456789
    assert c.metadata_complete and meta.k8s == K8s()


def test_minimal_inspect_and_missing_image() -> None:
    meta = meta_from_inspect({"Id": CID, "Name": "/x", "Config": {"Image": "local/app:dev"}}, None)
    c = meta.container
    assert (c.image_repository, c.image_tag) == ("local/app", "dev")
    assert c.privileged is False and c.mounts == () and c.start_ns == 0 and c.ip == ""


def test_dockershim_pod_labels() -> None:
    labels = {"io.kubernetes.pod.name": "web-0", "io.kubernetes.pod.namespace": "prod", "io.kubernetes.pod.uid": "u"}
    meta = meta_from_inspect({"Id": CID, "Config": {"Labels": labels}}, None)
    assert (meta.k8s.pod_name, meta.k8s.ns_name, meta.k8s.pod_uid) == ("web-0", "prod", "u")


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("2026-11-30T03:01:02.123456789Z", 1796007662123456789),
        ("2026-11-30T03:01:02Z", 1796007662000000000),
        ("2026-11-30T03:01:02.5Z", 1796007662500000000),
        ("2026-11-30T04:01:02.000000001+01:00", 1796007662000000001),
        ("2026-11-30T02:01:02-01:00", 1796007662000000000),
        ("0001-01-01T00:00:00Z", 0),
        ("", 0),
        ("garbage", 0),
    ],
)
def test_parse_docker_time(text: str, ns: int) -> None:
    assert parse_docker_time(text) == ns


def test_cache_json_round_trip() -> None:
    meta = meta_from_inspect(INSPECT, IMAGE)
    assert ContainerMeta.from_json(meta.to_json()) == meta
    pod = ContainerMeta(Container(id="a", full_id="a" * 64), K8s(pod_name="p", pod_labels={"app": "x"}))
    back = ContainerMeta.from_json(pod.to_json())
    assert back.k8s.pod_labels == {"app": "x"} and back.container.privileged is None
    with pytest.raises(ValueError, match="bad cached container metadata"):
        ContainerMeta.from_json(b'{"c": {"nope": 1}, "k": {}}')
    with pytest.raises(ValueError):
        ContainerMeta.from_json(b"not json")
