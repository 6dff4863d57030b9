# SPDX-License-Identifier: Apache-2.0
"""The ``dispatcher:`` section of the config file, and the per-output settings inside it.

``outputs`` maps an output name to its settings. Each mapping mixes the driver's keys (``DriverOptions``:
``enabled``, ``min_priority``, ``rules``, ``tags``, ``sources``, ``concurrency``, ``rate_limit``, ``timeout_s``...)
with the output's own keys (its ``Config`` dataclass, e.g. ``path`` for ``file``). A key ``<type>:<instance>``
configures one more output of that type (``file:audit``). Environment overrides follow
the usual scheme: ``LANNER_DISPATCHER__OUTPUTS__FILE__PATH=/var/log/lanner.jsonl``.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from dispatcher.driver import DriverOptions
from dispatcher.falco_format import JsonOptions
from dispatcher.grouping import UNGROUPED_TYPES
from dispatcher.registry import registered_outputs
from dispatcher.routetree import parse_tree
from dispatcher.sidekick import SidekickConfig
from lanner.alert_limits import AlertLimits
from lanner.config import ConfigError, build, load_section

_DRIVER_KEYS = frozenset(f.name for f in dataclasses.fields(DriverOptions))


def hash_tag(key: str) -> str | None:
    """The part of a key Redis Cluster hashes: the text inside the first non-empty ``{...}``, if any."""
    start = key.find("{")
    end = key.find("}", start + 1)
    return key[start + 1 : end] if start >= 0 and end > start + 1 else None


@dataclass(frozen=True, slots=True)
class DispatcherConfig:
    """Settings of the dispatcher service."""

    bind: str = "127.0.0.1:7704"
    metrics_bind: str = "127.0.0.1:9704"
    # Directory made by `lanner certs init`: serve and dial the pipeline with mutual TLS only (empty: plain TCP).
    tls_dir: str = ""
    # A second listener for the public APIs only (Subscribe and health, never PushAlerts; dispatcher/public.py), so
    # token holders and probes can reach the dispatcher while ``bind`` serves the pipeline with mutual TLS.
    public_bind: str = ""
    # Serve public_bind with TLS, presenting the pipeline certificate of tls_dir (clients verify it with ca.crt and
    # send a bearer token; no client certificate is asked for).
    public_tls: bool = False
    # Serve gRPC reflection (grpcurl and friends); off unless asked for.
    grpc_reflection: bool = False
    log_level: str = "info"
    redis_url: str = "redis://127.0.0.1:6390/0"
    # redis_url names one node of a Redis Cluster (the client discovers the others).
    redis_cluster: bool = False
    # The Redis Stream holding accepted alerts; dead letters go to "<stream>:dead", grouping windows to
    # "<stream>:group...". The {hash tag} keeps them, and the dedup keys, in one Redis Cluster slot.
    stream: str = "lanner:{alerts}"
    # A redelivered alert_id within this many seconds is accepted (acked) but not stored again.
    dedup_window_s: float = 600.0
    dedup_prefix: str = "lanner:{alerts}:seen:"
    # Dedup keys are an HMAC under this secret (dispatcher/dedup.py), so clients cannot pre-claim real alerts'
    # keys. ``dedup_secret`` (e.g. from LANNER_DISPATCHER__DEDUP_SECRET) wins; else the file, created on first start
    # (default: $LANNER_STATE_DIR/dispatcher/dedup-secret, state dir ./var). Replicas must share it.
    dedup_secret: str = ""
    dedup_secret_file: str = ""
    # Consumer name in the output groups: stable across restarts (a restart resumes its own pending list) and
    # unique per replica (two live replicas sharing a name would deliver each other's in-flight alerts again).
    consumer: str = ""
    # Pending entries of another consumer idle this long are taken over (a replica that died for good).
    claim_idle_s: float = 60.0
    read_batch: int = 256
    # How often acknowledged entries are trimmed from the stream.
    trim_interval_s: float = 5.0
    # Entries kept for live tail when no output group exists.
    idle_keep: int = 10000
    # Delivered alerts stay this long in the stream, so a subscriber that reconnects with its cursor (or asks
    # for --since) is replayed what it missed. Memory: about 1 KB per alert kept.
    replay_retention_s: float = 600.0
    # Per-subscriber queue length; a subscriber that falls further behind loses alerts (counted).
    subscriber_queue: int = 1024
    max_subscribers: int = 256
    # Scoped bearer tokens for Subscribe (dispatcher.tokens); empty: Subscribe is open to whoever reaches the port.
    tokens_file: str = ""
    # Host name for alerts that arrive without one (Falco: gethostname or FALCO_HOSTNAME). Every alert carries
    # its node's identity: ``hostname``, and ``event_id.node``/``boot_id`` from the collector that saw the event.
    hostname: str = ""
    # When set, every alert gets the output field ``lanner.cluster`` with this name, so a dispatcher tier fed by
    # many clusters (or a SIEM fed by many tiers) can tell them apart and route on it (``lanner.cluster=prod-eu``).
    cluster_name: str = ""
    json: JsonOptions = field(default_factory=JsonOptions)
    # The Falcosidekick-compatible HTTP intake (dispatcher/sidekick.py); off while its bind is empty.
    sidekick: SidekickConfig = field(default_factory=SidekickConfig)
    # Size limits applied to every alert at intake (docs/outputs/README.md, "Size limits").
    limits: AlertLimits = field(default_factory=AlertLimits)
    outputs: Mapping[str, Mapping[str, Any]] = field(
        default_factory=lambda: MappingProxyType({"stdout": MappingProxyType({"enabled": True})})
    )
    # The routing tree (dispatcher/routetree.py); empty: every output takes what its own filter lets through.
    routes: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if self.dedup_window_s <= 0:
            raise ValueError("dedup_window_s: must be positive")
        if self.subscriber_queue < 1 or self.read_batch < 1 or self.max_subscribers < 1:
            raise ValueError("subscriber_queue, read_batch and max_subscribers: must be at least 1")
        if self.public_tls and not self.tls_dir:
            raise ValueError("public_tls: needs tls_dir (the public listener presents the pipeline certificate)")
        if self.public_bind and self.public_bind == self.bind:
            raise ValueError("public_bind: must differ from bind")
        if self.redis_cluster and (
            hash_tag(self.stream) is None or hash_tag(self.stream) != hash_tag(self.dedup_prefix)
        ):
            raise ValueError(
                "stream and dedup_prefix: with redis_cluster they must carry the same {hash tag} "
                "(e.g. lanner:{alerts} and lanner:{alerts}:seen:), so a persist touches one slot"
            )

    @property
    def consumer_name(self) -> str:
        """The consumer name, defaulting to the host name."""
        return self.consumer or socket.gethostname()

    @property
    def secret_path(self) -> str:
        """Where the dedup secret is kept."""
        state = os.environ.get("LANNER_STATE_DIR") or "var"
        return self.dedup_secret_file or os.path.join(state, "dispatcher", "dedup-secret")

    @property
    def host_name(self) -> str:
        """The host name stamped on alerts that carry none."""
        return self.hostname or os.environ.get("FALCO_HOSTNAME") or socket.gethostname()


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """One enabled output: its name, the driver's options and the output's own config."""

    name: str
    driver: DriverOptions
    config: Any


def output_type(name: str) -> str:
    """The output type of a configured output: ``file`` for both ``file`` and ``file:audit``.

    The ``type:instance`` form lets one type be configured more than once (two files, two webhooks).
    """
    return name.split(":", 1)[0]


def output_specs(cfg: DispatcherConfig, origin: str = "<config>") -> tuple[OutputSpec, ...]:
    """Validate the ``outputs`` mapping into specs for the enabled outputs; raise ConfigError naming the key."""
    known = registered_outputs()
    specs: list[OutputSpec] = []
    for name, raw in cfg.outputs.items():
        path = f"dispatcher.outputs.{name}"
        kind = known.get(output_type(name))
        if kind is None:
            raise ConfigError(f"{origin}: {path}: unknown output type (known: {', '.join(sorted(known))})")
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{origin}: {path}: expected a mapping")
        # An output may suggest driver settings (Slack: one message per second); the user's keys win.
        driver_part = dict(getattr(kind.factory, "DRIVER_DEFAULTS", {}))
        driver_part.update({k: v for k, v in raw.items() if str(k).replace("-", "_") in _DRIVER_KEYS})
        own_part = {k: v for k, v in raw.items() if str(k).replace("-", "_") not in _DRIVER_KEYS}
        driver = build(DriverOptions, driver_part, origin, path)
        if not driver.enabled:
            continue
        if driver.group_window_s > 0 and output_type(name) in UNGROUPED_TYPES:
            raise ConfigError(f"{origin}: {path}.group_window_s: the {output_type(name)} output keeps every alert")
        specs.append(OutputSpec(name, driver, build(kind.config_cls, own_part, origin, path)))
    return tuple(specs)


def load(
    path: str | None = None, env: Mapping[str, str] | None = None
) -> tuple[DispatcherConfig, tuple[OutputSpec, ...]]:
    """Load and validate the dispatcher section and its outputs."""
    cfg = load_section("dispatcher", DispatcherConfig, path, env)
    env = os.environ if env is None else env
    origin = path or env.get("LANNER_CONFIG") or "<defaults>"
    specs = output_specs(cfg, origin)
    parse_tree(cfg.routes, [s.name for s in specs], origin)
    return cfg, specs
