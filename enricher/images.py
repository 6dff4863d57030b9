# SPDX-License-Identifier: Apache-2.0
"""Image reference parsing with Falco's semantics (shared/reference/falco-field-semantics.md §5.3).

Falco splits a reference by dropping everything from the first ``@`` and taking the text after the last ``:`` as
the tag, but only when that colon comes after the last ``/`` (so a registry port is not a tag). No implicit
``latest`` is added. The runtimes differ in where the parts come from; both rules live here as pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# CRI annotations that name the image when ContainerStatus.image.image is empty or an id (containerd, CRI-O).
CRI_IMAGE_ANNOTATIONS = ("io.kubernetes.cri.image-name", "io.kubernetes.cri-o.Image", "io.kubernetes.cri-o.ImageName")


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """``container.image`` and its parsed parts; empty strings when not derivable."""

    image: str = ""
    repository: str = ""
    tag: str = ""
    digest: str = ""


def split_image(ref: str) -> tuple[str, str]:
    """(repository, tag) of an image reference; tag is ``""`` when the reference has none."""
    name = ref.split("@", 1)[0]
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        return name[:colon], name[colon + 1 :]
    return name, ""


def digest_of(ref: str) -> str:
    """The ``sha256:…`` digest of a ``repo@sha256:…`` reference, else ``""``."""
    _, at, digest = ref.partition("@")
    return digest if at else ""


def cri_image(image: str, image_ref: str, annotations: Mapping[str, str]) -> ImageInfo:
    """Image fields of a CRI container from ``status.image.image``, ``status.image_ref`` and its annotations."""
    name = image
    if not name or name.startswith("sha256"):
        name = next((annotations[k] for k in CRI_IMAGE_ANNOTATIONS if annotations.get(k)), name)
    repository, tag = split_image(name) if name and not name.startswith("sha256") else ("", "")
    digest = ""
    if "@sha256:" in image_ref:
        before, _, after = image_ref.partition("@")
        repository = before
        digest = after
        name = f"{repository}:{tag}" if tag else repository
    elif image_ref.startswith("sha256:"):
        digest = image_ref
    return ImageInfo(image=name, repository=repository, tag=tag, digest=digest)


def docker_image(config_image: str, repo_tags: Sequence[str], repo_digests: Sequence[str]) -> ImageInfo:
    """Image fields of a Docker container: ``Config.Image`` plus the image's ``RepoTags``/``RepoDigests``.

    Repository comes from the first RepoDigests entry (before ``@``), else from the first RepoTags entry; the
    digest from a RepoDigests entry of that repository (or the only one); the tag from the first RepoTags entry
    of that repository. Without tags or digests (an image referenced by id) the parts come from ``Config.Image``.
    """
    repository = ""
    if repo_digests:
        repository = repo_digests[0].split("@", 1)[0]
    else:
        for tagged in repo_tags:
            repo, _ = split_image(tagged)
            if repo:
                repository = repo
                break
    digest = ""
    if repo_digests:
        mine = [d for d in repo_digests if d.split("@", 1)[0] == repository]
        chosen = mine[0] if mine else (repo_digests[0] if len(repo_digests) == 1 else "")
        digest = digest_of(chosen)
    tag = ""
    for tagged in repo_tags:
        repo, t = split_image(tagged)
        if repo == repository:
            tag = t
            break
    if not repository and config_image and not config_image.startswith("sha256:"):
        repository, tag = split_image(config_image)
        digest = digest or digest_of(config_image)
    return ImageInfo(image=config_image, repository=repository, tag=tag, digest=digest)
