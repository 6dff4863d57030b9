# SPDX-License-Identifier: Apache-2.0
"""Wires the rule engine stage into the shared server lifecycle."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import grpc

from lanner.alert_wire import alert_batch_wire
from lanner.config import load_section
from lanner.control_auth import read_token
from lanner.journal import Journal
from lanner.logs import setup_logging
from lanner.model import Event
from lanner.pki import load_optional
from lanner.recording import event_line
from lanner.server import run, run_service
from lanner.streaming import BatchSender
from lanner.v1 import alert_pb2, event_pb2
from ruleengine.config import RuleEngineConfig, resolve_rules_paths
from ruleengine.engine import EngineOptions
from ruleengine.fields import EventContext
from ruleengine.kspec import SpecPusher
from ruleengine.metrics import RULES_LOADED
from ruleengine.output import AlertRecord, AppendOutput, OutputOptions
from ruleengine.priority import Priority
from ruleengine.reload import RuleReloader, RulesLoadFailed
from ruleengine.service import RuleEngineService, alert_bytes, syscall_drop_alert

log = logging.getLogger(__name__)
# Bad configuration or rules: a supervisor must not restart us in a loop.
EXIT_CONFIG_ERROR = 2
# How long an alert batch gathers while another is in flight (ms of alert latency, only under load).
ALERT_LINGER_S = 0.008


def make_alert_batch(seq: int, alerts: Sequence[bytes], dropped: int) -> bytes:
    """A serialized AlertBatch of serialized alerts (``lanner.alert_wire``): nothing is encoded twice."""
    return alert_batch_wire(seq, alerts)


def open_push_alerts(channel: grpc.aio.Channel) -> Any:
    """PushAlerts with pre-serialized AlertBatch requests."""
    return channel.stream_stream(
        "/lanner.v1.DispatcherService/PushAlerts", response_deserializer=alert_pb2.AlertAck.FromString
    )


def _same(data: bytes) -> bytes:
    return data


def engine_options(cfg: RuleEngineConfig) -> EngineOptions:
    return EngineOptions(
        min_priority=Priority.parse(cfg.min_priority),
        rule_matching=cfg.rule_matching,
        disabled_rules=cfg.disabled_rules,
        enabled_tags=cfg.enabled_tags,
        disabled_tags=cfg.disabled_tags,
    )


def output_options(cfg: RuleEngineConfig) -> OutputOptions:
    return OutputOptions(
        time_format_iso_8601=cfg.time_format_iso_8601,
        suggested_output=cfg.suggested_output,
        append_output=tuple(
            AppendOutput(
                match_source=a.match_source,
                match_tags=a.match_tags,
                match_rule=a.match_rule,
                extra_output=a.extra_output,
                extra_fields=a.extra_fields,
            )
            for a in cfg.append_output
        ),
    )


def make_recorder(out: IO[str]) -> Callable[[Event], None]:
    """Record every event as it was evaluated (enriched), in the recording format (``lanner.recording``), which
    `lanner replay` and the collector's ``replay_path`` read."""

    def record(event: Event) -> None:
        out.write(event_line(event) + "\n")

    return record


async def serve(cfg: RuleEngineConfig) -> None:
    hostname = cfg.hostname or socket.gethostname()
    tls = load_optional(cfg.tls_dir)
    alerts: BatchSender[bytes] = BatchSender(
        "ruleengine->dispatcher",
        cfg.dispatcher_target,
        open_push_alerts,
        make_alert_batch,
        max_queue=cfg.alert_queue,
        # Alerts are cheap to batch and dear one by one: every PushAlerts message costs a gRPC round trip, a Redis
        # script and a wake-up of every reader of the stream, whatever its size. The first alert after a quiet
        # spell goes at once (latency at low rates); under load, while a batch is in flight or was just sent, the
        # next one gathers for ALERT_LINGER_S.
        batch_size=512,
        linger_s=ALERT_LINGER_S,
        linger_after_send=True,
        reliable=True,
        journal=Journal(cfg.spill_path, _same, _same) if cfg.spill_path else None,
        tls=tls,
    )
    if alerts.dropped:
        # Alerts a killed predecessor held (lanner.journal.Ledger): each stands for at least one lost event, so the
        # drop alert counts them.
        lost = event_pb2.Event(type="syscall_event_drop", source="internal")
        lost.id.node, lost.id.producer_id, lost.id.seq = hostname, "ruleengine-lost-alerts", time.time_ns()
        lost.timing.event_ns = time.time_ns()
        lost.args.add(name="n_drops", uint_value=alerts.dropped)
        lost.args.add(name="n_evts", uint_value=0)
        alerts.submit_urgent(alert_bytes(syscall_drop_alert(lost, hostname), lost))
    reloader = RuleReloader(
        lambda: resolve_rules_paths(cfg.rules_files),
        engine_options(cfg),
        interval_s=cfg.watch_interval_s,
        on_alert=lambda record: alerts.submit(alert_bytes(record, None)),
        on_swap=lambda engine: RULES_LOADED.set(len(engine.enabled)),
        hostname=hostname,
    )  # raises RulesLoadFailed: nothing starts on bad rules
    RULES_LOADED.set(len(reloader.current().enabled))
    log.info(
        "rules loaded", extra={"rules": len(reloader.current().enabled), "files": resolve_rules_paths(cfg.rules_files)}
    )
    options = output_options(cfg)

    def render(match: object, ctx: EventContext) -> AlertRecord:
        return match.render(ctx, hostname, options)  # type: ignore[attr-defined,no-any-return]

    record_file: IO[str] | None = None
    recorder = None
    if cfg.record_path:
        record_file = Path(cfg.record_path).open("a", encoding="utf-8", buffering=1 << 16)  # noqa: SIM115
        recorder = make_recorder(record_file)
    service = RuleEngineService(reloader.current, render, alerts, recorder, hostname)

    def register(server: grpc.aio.Server) -> list[str]:
        return service.register(server)

    async def close_outputs() -> None:
        await alerts.close()
        if record_file is not None:
            record_file.close()

    background = [
        alerts.run,
        SpecPusher(cfg.collector_target, reloader.current, tls=tls, token=read_token(cfg.control_token_file)).run,
    ]
    if cfg.watch_rules:
        background.append(reloader.run)
    await run_service(
        "ruleengine",
        cfg.bind,
        register,
        background=background,
        on_stop=[close_outputs],
        metrics_bind=cfg.metrics_bind,
        tls=tls,
        reflection_enabled=cfg.grpc_reflection,
    )


def main_from_args(args: argparse.Namespace) -> int:
    cfg = load_section("ruleengine", RuleEngineConfig, args.config)
    setup_logging("ruleengine", cfg.log_level)
    if getattr(args, "rules", None):
        cfg = dataclasses.replace(cfg, rules_files=tuple(args.rules))
    for path in resolve_rules_paths(cfg.rules_files):
        try:
            Path(path).open("rb").close()
        except OSError as exc:
            log.error("cannot read rules file; not starting", extra={"file": path, "error": exc.strerror})
            return EXIT_CONFIG_ERROR
    try:
        run(serve(cfg))
    except RulesLoadFailed as exc:
        for message in exc.result.errors:
            log.error("rules failed to load; not starting", extra={"error": message.format()})
        return EXIT_CONFIG_ERROR
    return 0
