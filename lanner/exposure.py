# SPDX-License-Identifier: Apache-2.0
"""What ``lanner up`` is about to expose, said before anything starts.

On loopback, without ``tls_dir`` and tokens, every local user can push events and alerts and subscribe: fine for a
laptop, and said once at start so nobody mistakes it for a hardened setup. A gRPC intake reachable from the network
without mutual TLS, a public Subscribe listener without tokens or an audit webhook without client authentication
lets anyone on the network forge or read alerts: ``lanner up`` refuses to start that unless ``--allow-open``, and
then warns on every start.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lanner.netaddr import is_loopback


def exposure(configs: dict[str, Any], services: Iterable[str]) -> tuple[list[str], list[str]]:
    """(listeners open on loopback, problems: listeners open to the network) for the services to start."""
    local: list[str] = []
    problems: list[str] = []
    for name in services:
        cfg = configs[name]
        if not cfg.tls_dir:
            if is_loopback(cfg.bind):
                local.append(f"{name} {cfg.bind}")
            else:
                problems.append(
                    f"{name}.bind {cfg.bind} is reachable from the network without mutual TLS (set {name}.tls_dir "
                    "from `lanner certs init`): anyone there can push forged events or alerts"
                )
        if name == "dispatcher":
            public = [b for b in (cfg.public_bind, "" if cfg.tls_dir else cfg.bind) if b]
            for bind in public:
                if not cfg.tokens_file and not is_loopback(bind):
                    problems.append(
                        f"dispatcher Subscribe on {bind} has no tokens_file: anyone on the network can read every "
                        "alert (`lanner tokens new`)"
                    )
            if not cfg.tokens_file and all(is_loopback(b) for b in public):
                local.append("dispatcher Subscribe without tokens")
            sidekick = cfg.sidekick
            if sidekick.bind and not sidekick.client_ca:
                if is_loopback(sidekick.bind):
                    local.append(f"Falcosidekick intake {sidekick.bind}")
                else:
                    problems.append(
                        f"dispatcher.sidekick.bind {sidekick.bind} takes alerts from anyone: set sidekick.client_ca "
                        "(mutual TLS)"
                    )
        if name == "collector" and cfg.k8s_audit_bind and not (cfg.k8s_audit_client_ca or cfg.k8s_audit_token_file):
            if is_loopback(cfg.k8s_audit_bind):
                local.append(f"k8s audit webhook {cfg.k8s_audit_bind}")
            else:
                problems.append(
                    f"collector.k8s_audit_bind {cfg.k8s_audit_bind} takes audit events from anyone: set "
                    "k8s_audit_client_ca or k8s_audit_token_file"
                )
    return local, problems


def banner(local: list[str]) -> str:
    """The start-up line about a loopback-only, unauthenticated stack ('' when nothing is open)."""
    if not local:
        return ""
    return (
        "security: open to every local user (loopback only, no mutual TLS or tokens): "
        + ", ".join(local)
        + ". Local users can push forged events and alerts and read every alert; see docs/hardening.md to close it"
    )


def extra_listeners(configs: dict[str, Any], services: Iterable[str]) -> list[tuple[str, str]]:
    """(name, bind) of the listeners besides each service's gRPC and metrics ports, for the free-port check."""
    found = []
    for name in services:
        cfg = configs[name]
        if name == "dispatcher":
            found += [("dispatcher public", cfg.public_bind), ("dispatcher sidekick", cfg.sidekick.bind)]
        if name == "collector":
            found.append(("collector k8s audit", cfg.k8s_audit_bind))
    return [(n, b) for n, b in found if b]
