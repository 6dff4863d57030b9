# SPDX-License-Identifier: Apache-2.0
"""The enricher stage: container and pod metadata for every event, from the cgroup path and the runtimes.

Collector batches come in on ``EnricherService.PushEvents``; each event's container id is read from its process's
cgroup lines (``enricher.cgroups``), metadata comes from Docker and CRI runtimes (``enricher.docker``,
``enricher.cri``) behind one ``MetadataProvider`` Protocol, optionally through a Redis cache
(``enricher.cache``), and the enriched batches go on to the rule engine.
"""

from typing import Any

# Re-exported lazily: `python -m enricher.health` runs as a frequent container health check and must not pay for
# importing the whole stage.
_EXPORTS = {
    "CgroupMatch": "enricher.cgroups",
    "match_cgroup_lines": "enricher.cgroups",
    "match_cgroup_path": "enricher.cgroups",
    "Enricher": "enricher.enrich",
    "ImageInfo": "enricher.images",
    "cri_image": "enricher.images",
    "docker_image": "enricher.images",
    "split_image": "enricher.images",
    "ContainerMeta": "enricher.meta",
    "LookupFailed": "enricher.meta",
    "MetadataProvider": "enricher.meta",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'enricher' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
