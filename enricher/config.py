# SPDX-License-Identifier: Apache-2.0
"""The enricher's configuration (section ``enricher:`` of the Lanner config file, env ``LANNER_ENRICHER__*``)."""

from __future__ import annotations

from dataclasses import dataclass

from enricher.cri import DEFAULT_CRI_SOCKETS
from lanner.config import ConfigError, load_section


@dataclass(frozen=True, slots=True)
class EnricherConfig:
    """Settings of the enricher service.

    ``cri_sockets`` are probed in order (``unix://`` only) and every one that answers ``Version`` is used;
    an empty ``docker_socket``, ``podman_socket`` or ``redis_url`` disables that source. ``wait_ms`` bounds how
    long a batch may wait for lookups of containers it has not seen before (see ``enricher.enrich``).
    """

    bind: str = "127.0.0.1:7702"
    metrics_bind: str = "127.0.0.1:9702"
    ruleengine_target: str = "127.0.0.1:7703"
    redis_url: str = "redis://127.0.0.1:6390/0"
    docker_socket: str = "/var/run/docker.sock"
    # Podman's Docker-compatible API (rootful); its containers get container.type podman.
    podman_socket: str = "/run/podman/podman.sock"
    cri_sockets: tuple[str, ...] = DEFAULT_CRI_SOCKETS
    cache_ttl_s: float = 300.0
    negative_ttl_s: float = 10.0
    memory_ttl_s: float = 60.0
    lookup_timeout_s: float = 2.0
    wait_ms: float = 100.0
    warm_start: bool = True
    # Events held for the rule engine; batches go on whole, as the collector made them.
    max_queue: int = 16384
    # Where events not yet handed to the rule engine wait across a stop (lanner.journal); empty: counted as dropped.
    spill_path: str = ""
    # Directory made by `lanner certs init`: serve and dial the pipeline with mutual TLS only (empty: plain TCP).
    tls_dir: str = ""
    # Serve gRPC reflection (grpcurl and friends); off unless asked for.
    grpc_reflection: bool = False
    max_queue_bytes: int = 64 * 1024 * 1024
    log_level: str = "info"

    def __post_init__(self) -> None:
        for name in ("cache_ttl_s", "negative_ttl_s", "memory_ttl_s", "lookup_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.wait_ms < 0:
            raise ValueError("wait_ms must be >= 0")
        if self.max_queue < 1 or self.max_queue_bytes < 1:
            raise ValueError("max_queue and max_queue_bytes must be >= 1")
        for endpoint in self.cri_sockets:
            if not endpoint.startswith("unix://"):
                raise ValueError(f"cri_sockets: {endpoint!r}: only unix:// endpoints are supported")


def load_config(path: str | None = None) -> EnricherConfig:
    """Load the ``enricher`` section; raises ``ConfigError`` naming file and key on bad input."""
    return load_section("enricher", EnricherConfig, path)


__all__ = ["ConfigError", "EnricherConfig", "load_config"]
