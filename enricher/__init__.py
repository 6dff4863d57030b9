# SPDX-License-Identifier: Apache-2.0
"""The enricher stage: container and pod metadata for every event, from the cgroup path and the runtimes.

Collector batches come in on ``EnricherService.PushEvents``; each event's container id is read from its process's
cgroup lines (``enricher.cgroups``), metadata comes from Docker and CRI runtimes (``enricher.docker``,
``enricher.cri``) behind one ``MetadataProvider`` Protocol, optionally through a Redis cache
(``enricher.cache``), and the enriched batches go on to the rule engine.
"""

from enricher.cgroups import CgroupMatch, match_cgroup_lines, match_cgroup_path
from enricher.enrich import Enricher
from enricher.images import ImageInfo, cri_image, docker_image, split_image
from enricher.meta import ContainerMeta, LookupFailed, MetadataProvider

__all__ = [
    "CgroupMatch",
    "ContainerMeta",
    "Enricher",
    "ImageInfo",
    "LookupFailed",
    "MetadataProvider",
    "cri_image",
    "docker_image",
    "match_cgroup_lines",
    "match_cgroup_path",
    "split_image",
]
