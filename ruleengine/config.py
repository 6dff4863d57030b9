# SPDX-License-Identifier: Apache-2.0
"""Rule engine configuration (section ``ruleengine`` of the Lanner config file)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The project's own rules, next to the packages (editable installs and the container image keep this layout).
DEFAULT_RULES_DIR = Path(__file__).resolve().parent.parent / "rules"


@dataclass(frozen=True, slots=True)
class AppendOutputConfig:
    """One entry of Falco's ``append_output`` list."""

    match_rule: str = ""
    match_source: str = ""
    match_tags: tuple[str, ...] = ()
    extra_output: str = ""
    extra_fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleEngineConfig:
    """Where to listen, which rules to load, how to match, where alerts go."""

    bind: str = "127.0.0.1:7703"
    metrics_bind: str = "127.0.0.1:9703"
    dispatcher_target: str = "127.0.0.1:7704"
    # The collector's control endpoint, told which event types and opens the rules need (empty: never told, so it
    # traces everything unfiltered).
    collector_target: str = "127.0.0.1:7701"
    # The token the collector asks of whoever sets its kernel spec, when it runs without TLS (lanner.control_auth).
    control_token_file: str = ""
    # Rules files or directories, loaded in order like `falco -r`. Empty: the project's rules/ directory.
    rules_files: tuple[str, ...] = ()
    rule_matching: str = "first"
    min_priority: str = "debug"
    disabled_rules: tuple[str, ...] = ()
    enabled_tags: tuple[str, ...] = ()
    disabled_tags: tuple[str, ...] = ()
    # Falco's default: append the container/pod context to every syscall alert.
    suggested_output: bool = True
    append_output: tuple[AppendOutputConfig, ...] = ()
    hostname: str = ""
    time_format_iso_8601: bool = False
    watch_rules: bool = True
    watch_interval_s: float = 2.0
    alert_queue: int = 100_000
    # Record every event the engine receives, enriched, in the recording format (lanner.recording; read by
    # `lanner replay` and the collector's replay_path); empty disables.
    record_path: str = ""
    # Where alerts the dispatcher has not acknowledged wait across a stop (lanner.journal), even with Redis away.
    spill_path: str = ""
    # Directory made by `lanner certs init`: serve and dial the pipeline with mutual TLS only (empty: plain TCP).
    tls_dir: str = ""
    # Serve gRPC reflection (grpcurl and friends); off unless asked for.
    grpc_reflection: bool = False
    log_level: str = "info"

    def __post_init__(self) -> None:
        if self.rule_matching not in ("first", "all"):
            raise ValueError(f"rule_matching: expected 'first' or 'all', got {self.rule_matching!r}")


def resolve_rules_paths(configured: tuple[str, ...]) -> list[str]:
    """Expand directories into their sorted *.yaml/*.yml files, as Falco does for -r DIR."""
    entries = list(configured) or [str(DEFAULT_RULES_DIR)]
    out: list[str] = []
    for entry in entries:
        p = Path(entry)
        if p.is_dir():
            out.extend(str(f) for f in sorted(p.iterdir()) if f.suffix in (".yaml", ".yml") and f.is_file())
        else:
            out.append(entry)
    return out
