# SPDX-License-Identifier: Apache-2.0
"""Image reference parsing with Falco's semantics, for CRI and Docker."""

from __future__ import annotations

import pytest

from enricher.images import ImageInfo, cri_image, digest_of, docker_image, split_image

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("ref", "repo", "tag"),
    [
        ("docker.io/library/nginx:1.25", "docker.io/library/nginx", "1.25"),
        ("nginx", "nginx", ""),
        ("nginx:latest", "nginx", "latest"),
        ("registry:5000/ns/app", "registry:5000/ns/app", ""),
        ("registry:5000/ns/app:v2", "registry:5000/ns/app", "v2"),
        (f"registry:5000/ns/app:v2@{DIGEST}", "registry:5000/ns/app", "v2"),
        (f"registry:5000/ns/app@{DIGEST}", "registry:5000/ns/app", ""),
        ("local/bookworm:latest", "local/bookworm", "latest"),
        ("", "", ""),
    ],
)
def test_split_image(ref: str, repo: str, tag: str) -> None:
    assert split_image(ref) == (repo, tag)


def test_digest_of() -> None:
    assert digest_of(f"nginx@{DIGEST}") == DIGEST
    assert digest_of("nginx:1") == ""


def test_cri_digested_image_ref() -> None:
    info = cri_image("docker.io/library/nginx:1.25", f"docker.io/library/nginx@{DIGEST}", {})
    assert info == ImageInfo(
        image="docker.io/library/nginx:1.25", repository="docker.io/library/nginx", tag="1.25", digest=DIGEST
    )


def test_cri_local_image_with_id_ref() -> None:
    # Images without a registry digest: image_ref is the bare image id (seen locally with containerd 1.6).
    info = cri_image("docker.io/local/python:latest", DIGEST, {})
    assert info == ImageInfo("docker.io/local/python:latest", "docker.io/local/python", "latest", DIGEST)


def test_cri_image_from_annotations_when_only_an_id() -> None:
    ann = {"io.kubernetes.cri-o.ImageName": "quay.io/app/web:3", "io.kubernetes.cri-o.Image": "quay.io/app/web:2"}
    info = cri_image(DIGEST, "", ann)
    assert (info.image, info.repository, info.tag) == ("quay.io/app/web:2", "quay.io/app/web", "2")
    info = cri_image("", "", {"io.kubernetes.cri.image-name": "busybox:1"})
    assert (info.repository, info.tag) == ("busybox", "1")


def test_cri_nothing_known() -> None:
    assert cri_image("", "", {}) == ImageInfo()


def test_docker_hub_image_repository_is_short_name() -> None:
    info = docker_image("nginx:1.25", ["nginx:1.25"], [f"nginx@{DIGEST}"])
    assert info == ImageInfo("nginx:1.25", "nginx", "1.25", DIGEST)


def test_docker_local_image_without_digests() -> None:
    assert docker_image("local/bookworm", ["local/bookworm:latest"], []) == ImageInfo(
        "local/bookworm", "local/bookworm", "latest", ""
    )


def test_docker_image_run_by_digest() -> None:
    info = docker_image(f"registry:5000/app@{DIGEST}", [], [f"registry:5000/app@{DIGEST}"])
    assert (info.repository, info.tag, info.digest) == ("registry:5000/app", "", DIGEST)


def test_docker_image_by_id_without_tags() -> None:
    assert docker_image(DIGEST, [], []) == ImageInfo(image=DIGEST)


def test_docker_multiple_digests_picks_own_repository() -> None:
    other = "sha256:" + "cd" * 32
    info = docker_image("b/app:1", ["b/app:1", "a/app:2"], [f"b/app@{DIGEST}", f"a/app@{other}"])
    assert (info.repository, info.tag, info.digest) == ("b/app", "1", DIGEST)
