# SPDX-License-Identifier: Apache-2.0
"""Wires the collector into the shared service lifecycle: event source, sender to the enricher, health server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import IO, Any

import grpc

from collector.audit_auth import AuditAuth
from collector.config import CollectorConfig
from collector.k8s_audit import AuditWebhook
from collector.metrics import CONTROL_REFUSED
from collector.replay import ReplaySource
from collector.service import AUDIT_STAGE, STAGE, CollectorService, event_size, make_batch, open_enricher_stream
from collector.source import BpfProbe, EventSource, KernelSource, default_identity, node_name
from lanner.control_auth import ControlGuard, read_token
from lanner.journal import Journal, shared_event_journal
from lanner.pki import load_optional
from lanner.server import run_service
from lanner.streaming import BatchSender
from lanner.v1 import kfilter_pb2, kfilter_pb2_grpc
from lanner.wire import SharedEvent

log = logging.getLogger(__name__)


class ControlServicer(kfilter_pb2_grpc.CollectorControlServicer):
    """``CollectorControl``: applies the rule engine's kernel spec to the live probes."""

    def __init__(self, source: KernelSource, guard: ControlGuard) -> None:
        self.source = source
        self.guard = guard

    async def SetKernelSpec(
        self, request: kfilter_pb2.KernelSpec, context: grpc.aio.ServicerContext[Any, Any]
    ) -> kfilter_pb2.KernelSpecAck:
        refusal = self.guard.refusal(context.auth_context(), context.invocation_metadata() or ())
        if refusal is not None:
            CONTROL_REFUSED.inc()
            log.warning("kernel spec refused", extra={"peer": context.peer(), "error": refusal})
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, refusal)
        # Attaching and detaching takes a few seconds for a large change: keep the poll loop running meanwhile.
        return await asyncio.to_thread(self.source.apply_spec, request)


def build_source(cfg: CollectorConfig, *, exclude_self: bool = True) -> EventSource:
    """The source described by the config (not started): a recording when ``replay_path`` is set, else the
    kernel."""
    identity = default_identity(node_name(cfg.node_name, cfg.proc_root))
    if cfg.replay_path:
        return ReplaySource(cfg.replay_path, identity, realtime=cfg.replay_realtime)
    probe = BpfProbe(
        ring_buffer_pages=cfg.ring_buffer_pages,
        families=cfg.families,
        exclude_pids=cfg.exclude_pids,
        exclude_self=exclude_self,
        drop_failed_opens=cfg.drop_failed_opens,
        capture_env=cfg.capture_env,
        trace_all=cfg.trace_all,
        kernel_filter=cfg.kernel_filter,
    )
    return KernelSource(probe, identity=identity, proc_root=cfg.proc_root, host_root=cfg.host_root)


async def serve(cfg: CollectorConfig, source: EventSource) -> None:
    """Run the collector until SIGTERM/SIGINT. ``source`` must already be started (loading BPF can fail; the
    caller reports that before any server starts)."""
    tls = load_optional(cfg.tls_dir)
    guard = ControlGuard(tls=tls is not None, token=read_token(cfg.control_token_file))
    if guard.open and isinstance(source, KernelSource):
        log.warning(
            "kernel spec control is open: any local client can change what the probes drop "
            "(set tls_dir or control_token_file; lanner up sets a token)"
        )

    def enricher_sender(stage: str, journal: Journal[SharedEvent] | None = None) -> BatchSender[SharedEvent]:
        """A stream to the enricher with the collector's queue, batching and TLS settings (one per source kind, so
        an audit flood never displaces syscall events)."""
        return BatchSender(
            stage,
            cfg.enricher_target,
            open_enricher_stream,
            make_batch,
            max_queue=cfg.max_queue,
            max_bytes=cfg.max_queue_bytes,
            sizeof=event_size,
            batch_size=cfg.batch_size,
            linger_s=cfg.linger_ms / 1000.0,
            journal=journal,
            tls=tls,
        )

    sender = enricher_sender(STAGE, journal=shared_event_journal(cfg.spill_path))
    record: IO[str] | None = None
    if cfg.record_path:
        record = open(cfg.record_path, "a", encoding="utf-8", buffering=1 << 16)  # noqa: SIM115
    sources: list[EventSource] = [source]
    background: list[Callable[[], Awaitable[None]]] = [sender.run]
    own_senders: dict[str, BatchSender[SharedEvent]] = {}
    if cfg.k8s_audit_bind:
        ident = default_identity(node_name(cfg.node_name, cfg.proc_root))
        webhook = AuditWebhook(
            cfg.k8s_audit_bind,
            replace(ident, producer_id=ident.producer_id + "-k8s-audit"),
            path=cfg.k8s_audit_path,
            tls_cert=cfg.k8s_audit_tls_cert,
            tls_key=cfg.k8s_audit_tls_key,
            auth=AuditAuth(cfg.k8s_audit_client_ca, cfg.k8s_audit_client_names, cfg.k8s_audit_token_file),
        )
        sources.append(webhook)
        background.append(webhook.serve)
        own_senders[webhook.name] = enricher_sender(AUDIT_STAGE)
        background.append(own_senders[webhook.name].run)
    service = CollectorService(
        sources,
        sender,
        poll_interval_s=cfg.poll_interval_ms / 1000.0,
        record=record,
        drop_alert_interval_s=cfg.drop_alert_interval_s,
        identity=source.decoder.identity
        if isinstance(source, KernelSource)
        else default_identity(node_name(cfg.node_name, cfg.proc_root)),
        own_senders=own_senders,
    )
    background.append(service.run)

    def register(server: grpc.aio.Server) -> Sequence[str]:
        # Besides health, the control service through which the rule engine says what the rules need.
        if isinstance(source, KernelSource):
            kfilter_pb2_grpc.add_CollectorControlServicer_to_server(ControlServicer(source, guard), server)
            return ["lanner.v1.CollectorControl"]
        return []

    # Detaching ~100 tracepoints takes the kernel a second or more: it starts as soon as the stop begins, beside
    # the rest of the stop, so that the whole stop fits in the supervisor's 3 s.
    detach = threading.Thread(target=source.close, name="close-source")

    def begin_stop() -> None:
        service.halt()
        detach.start()

    async def close_source() -> None:
        if detach.ident is not None:
            await asyncio.to_thread(detach.join)
        else:
            source.close()
        if record is not None:
            with contextlib.suppress(OSError):
                record.close()
        log.info("collector stopped", extra={"events": service.events, "queue_dropped": sender.dropped})

    await run_service(
        "collector",
        cfg.bind,
        register,
        background=background,
        on_stop=[close_source, sender.close, *(s.close for s in own_senders.values())],
        metrics_bind=cfg.metrics_bind,
        stopping=[begin_stop],
        tls=tls,
        reflection_enabled=cfg.grpc_reflection,
    )
