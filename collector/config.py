# SPDX-License-Identifier: Apache-2.0
"""The collector's configuration (section ``collector:`` of the Lanner config file, env ``LANNER_COLLECTOR__*``)."""

from __future__ import annotations

from dataclasses import dataclass

from collector.layout import FAMILIES
from lanner.config import ConfigError, load_section


@dataclass(frozen=True, slots=True)
class CollectorConfig:
    """Settings of the collector service.

    ``families`` selects the syscall groups traced:

    * ``process``: execve/execveat, clone/fork/vfork, exit (always on: the process table needs it);
    * ``file``: open/openat/openat2/creat/open_by_handle_at, dup/dup2/dup3;
    * ``network``: socket, connect, accept/accept4, listen, sendto/sendmsg that name a destination;
    * ``fileop``: unlink/rename/mkdir/rmdir/chdir and chmod/symlink/link families;
    * ``privilege``: setuid/setgid families, ptrace, unshare, setns, bpf, prctl.

    ``exclude_pids`` are not traced, nor are their children (those running at start and those forked later); the
    collector's own process always is excluded. ``drop_failed_opens`` discards failed opens in the kernel (library
    and locale lookups make up much of the open volume, and file rules mostly need ``fd.num >= 0``), at the price
    of not seeing failed attempts. ``capture_env`` copies each exec's environment (``proc.env``, up to 4 KB);
    turn it off where environments carry secrets that must not travel with events.

    ``record_path``, when set, appends every event in Lanner's recording format (``lanner.recording``: one
    ``lanner.v1.Event`` per JSON line, which ``lanner replay`` also reads). ``replay_path``, when set, replaces the
    kernel with such a recording (as fast as the pipeline takes it, or with the recorded
    spacing when ``replay_realtime``), so the pipeline runs without root or eBPF. ``k8s_audit_bind``
    (``host:port``), when set, also serves the Kubernetes audit webhook at ``k8s_audit_path`` (over HTTPS when
    ``k8s_audit_tls_cert`` and ``k8s_audit_tls_key`` name PEM files).

    Once the rule engine has sent its kernel spec (``CollectorControl.SetKernelSpec``), only the tracepoints the
    enabled rules and the process/fd tables need stay attached, and opens no rule can match are dropped in the
    kernel. ``trace_all`` keeps every tracepoint of ``families`` attached and filters nothing, whatever the rules
    (for recordings);
    ``kernel_filter: false`` turns the in-kernel filtering of opens off.

    When the kernel ring buffer overflows, an internal ``syscall_event_drop`` event (source ``internal``) goes
    downstream at most every ``drop_alert_interval_s`` seconds (0 disables it). ``host_root`` is where the host's
    ``/etc/passwd`` and ``/etc/group`` live; empty means ``/`` on the host, or ``/proc/1/root`` when the collector
    itself runs in a container (with the host's pid namespace). ``node_name`` is the ``evt.hostname`` of every
    event (for example the Kubernetes node name from the downward API); empty means the host's name.
    """

    bind: str = "127.0.0.1:7701"
    metrics_bind: str = "127.0.0.1:9701"
    enricher_target: str = "127.0.0.1:7702"
    batch_size: int = 1024
    linger_ms: float = 5.0
    max_queue: int = 65536
    max_queue_bytes: int = 64 * 1024 * 1024
    exclude_pids: tuple[int, ...] = ()
    ring_buffer_pages: int = 2048
    families: tuple[str, ...] = FAMILIES
    drop_failed_opens: bool = False
    capture_env: bool = True
    trace_all: bool = False
    kernel_filter: bool = True
    poll_interval_ms: float = 2.0
    record_path: str = ""
    replay_path: str = ""
    replay_realtime: bool = False
    drop_alert_interval_s: float = 10.0
    k8s_audit_bind: str = ""
    k8s_audit_path: str = "/k8s-audit"
    k8s_audit_tls_cert: str = ""
    k8s_audit_tls_key: str = ""
    # Who may post audit events (collector/audit_auth.py): a client certificate of this CA (TLS only), optionally
    # only with one of these common names, and/or a bearer token listed in this file (reloaded when it changes).
    k8s_audit_client_ca: str = ""
    k8s_audit_client_names: tuple[str, ...] = ()
    k8s_audit_token_file: str = ""
    proc_root: str = "/proc"
    host_root: str = ""
    node_name: str = ""
    # Where events not yet handed to the enricher wait across a stop (lanner.journal); empty: counted as dropped.
    spill_path: str = ""
    # Directory made by `lanner certs init`: serve and dial the pipeline with mutual TLS only (empty: plain TCP).
    tls_dir: str = ""
    # Without TLS, only a caller presenting the token in this file may set the kernel spec (lanner.control_auth);
    # empty: any caller may (under mutual TLS, only the pipeline certificate may, token or not).
    control_token_file: str = ""
    # Serve gRPC reflection (grpcurl and friends); off unless asked for.
    grpc_reflection: bool = False
    log_level: str = "info"

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_queue < 1 or self.max_queue_bytes < 1:
            raise ValueError("batch_size, max_queue and max_queue_bytes must be >= 1")
        if self.linger_ms < 0 or self.poll_interval_ms <= 0:
            raise ValueError("linger_ms must be >= 0 and poll_interval_ms > 0")
        pages = self.ring_buffer_pages
        if pages <= 0 or pages & (pages - 1):
            raise ValueError(f"ring_buffer_pages must be a power of two, got {pages}")
        unknown = [f for f in self.families if f not in FAMILIES]
        if unknown:
            raise ValueError(f"families: unknown {unknown}; known: {', '.join(FAMILIES)}")
        if bool(self.k8s_audit_tls_cert) != bool(self.k8s_audit_tls_key):
            raise ValueError("k8s_audit_tls_cert and k8s_audit_tls_key go together")
        if self.k8s_audit_client_ca and not self.k8s_audit_tls_cert:
            raise ValueError("k8s_audit_client_ca: client certificates need TLS (k8s_audit_tls_cert and _key)")
        if any(p <= 0 for p in self.exclude_pids):
            raise ValueError("exclude_pids must be positive pids")


def load_config(path: str | None = None) -> CollectorConfig:
    """Load the ``collector`` section; raises ``ConfigError`` naming file and key on bad input."""
    return load_section("collector", CollectorConfig, path)


__all__ = ["FAMILIES", "CollectorConfig", "ConfigError", "load_config"]
