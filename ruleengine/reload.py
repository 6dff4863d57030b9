# SPDX-License-Identifier: Apache-2.0
"""Hot reload of rules files: poll, compile off the hot path, swap atomically, keep the old set on failure.

The service reads ``reloader.current()`` once per batch; replacing one attribute is atomic in CPython, so a batch
sees either the old engine or the new one, never a mix. A failed reload leaves the running engine untouched, logs
every error, increments ``lanner_rules_reload_failures_total`` and hands an internal alert record to ``on_alert``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING

from prometheus_client import Counter

from ruleengine.engine import Engine, EngineOptions, LoadResult, load_rules
from ruleengine.priority import Priority

if TYPE_CHECKING:
    from ruleengine.output import AlertRecord

log = logging.getLogger(__name__)

RELOAD_FAILURES = Counter("lanner_rules_reload_failures_total", "Rule reloads rejected because the new set failed")
RELOADS = Counter("lanner_rules_reloads_total", "Rule sets swapped in by hot reload")
INTERNAL_RULE = "Lanner internal: rules reload failed"
INTERNAL_SOURCE = "internal"

Fingerprint = tuple[tuple[str, str], ...]


class RulesLoadFailed(Exception):
    """The initial rule set did not load; ``result`` has the located errors."""

    def __init__(self, result: LoadResult) -> None:
        self.result = result
        first = result.errors[0].format() if result.errors else "unknown error"
        super().__init__(f"{len(result.errors)} error(s) loading rules; first: {first}")


def fingerprint(paths: Sequence[str]) -> Fingerprint:
    """(path, sha256) per file, in order; a missing file hashes as "missing"."""
    out = []
    for p in paths:
        try:
            with open(p, "rb") as fh:
                digest = hashlib.sha256(fh.read()).hexdigest()
        except OSError:
            digest = "missing"
        out.append((p, digest))
    return tuple(out)


class RuleReloader:
    """Holds the current engine and replaces it when the rules files change."""

    def __init__(
        self,
        paths: Callable[[], Sequence[str]],
        options: EngineOptions,
        *,
        interval_s: float = 2.0,
        on_alert: Callable[[AlertRecord], None] | None = None,
        hostname: str = "",
        on_swap: Callable[[Engine], None] | None = None,
    ) -> None:
        self._paths = paths
        self._options = options
        self._interval = interval_s
        self._on_alert = on_alert
        self._on_swap = on_swap
        self._hostname = hostname or os.uname().nodename
        self._stats: tuple[tuple[str, int, int], ...] = ()
        files = list(paths())
        self._fp = fingerprint(files)
        result = load_rules(files, options)
        if result.engine is None:
            raise RulesLoadFailed(result)
        for w in result.warnings:
            log.warning("rules warning", extra={"detail": w.format()})
        self._engine: Engine = result.engine
        self._stats = self._stat(files)
        self.last_result = result

    def current(self) -> Engine:
        """The engine to use now."""
        return self._engine

    @staticmethod
    def _stat(files: Sequence[str]) -> tuple[tuple[str, int, int], ...]:
        out = []
        for p in files:
            try:
                st = os.stat(p)
                out.append((p, st.st_mtime_ns, st.st_size))
            except OSError:
                out.append((p, -1, -1))
        return tuple(out)

    def changed(self) -> list[str] | None:
        """The current file list when anything changed since the last load (cheap stat, then hash), else None."""
        files = list(self._paths())
        stats = self._stat(files)
        if stats == self._stats:
            return None
        self._stats = stats
        fp = fingerprint(files)
        if fp == self._fp:
            return None
        self._fp = fp
        return files

    def reload(self, files: Sequence[str]) -> bool:
        """Compile ``files`` and swap them in; on failure keep the old engine and report. Returns success."""
        result = load_rules(files, self._options)
        self.last_result = result
        if result.engine is None:
            RELOAD_FAILURES.inc()
            for e in result.errors:
                log.error("rules reload failed", extra={"detail": e.format()})
            self._alert(result)
            return False
        for w in result.warnings:
            log.warning("rules warning", extra={"detail": w.format()})
        self._engine = result.engine
        RELOADS.inc()
        if self._on_swap is not None:
            self._on_swap(result.engine)
        log.info("rules reloaded", extra={"rules": len(result.engine.enabled), "files": list(files)})
        return True

    def check_now(self) -> bool | None:
        """Reload synchronously if files changed: True/False for success/failure, None when nothing changed."""
        files = self.changed()
        return None if files is None else self.reload(files)

    async def run(self) -> None:
        """Poll forever; compilation happens in a worker thread so the event loop keeps serving."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                files = self.changed()
                if files is not None:
                    await asyncio.to_thread(self.reload, files)
            except Exception:
                log.exception("rules watch failed")

    def _alert(self, result: LoadResult) -> None:
        if self._on_alert is None:
            return
        self._on_alert(internal_alert(result, self._hostname))


def internal_alert(result: LoadResult, hostname: str) -> AlertRecord:
    """The AlertRecord reporting a rejected reload (source ``internal``)."""
    from lanner.alert import JsonValue
    from ruleengine.output import AlertRecord, format_alert_time

    now = time.time_ns()
    first = result.errors[0] if result.errors else None
    detail = first.format() if first else "unknown error"
    message = f"Rules reload failed, keeping the previous rule set ({len(result.errors)} error(s)): {detail}"
    stamp = format_alert_time(now, False)
    fields: dict[str, JsonValue] = {
        "errors": tuple(e.format() for e in result.errors),
        "error_count": len(result.errors),
    }
    return AlertRecord(
        rule=INTERNAL_RULE,
        priority=Priority.ERROR,
        source=INTERNAL_SOURCE,
        tags=("lanner", "internal"),
        time_ns=now,
        output=f"{stamp}: {Priority.ERROR.falco_name} {message}",
        message=message,
        output_fields=MappingProxyType(fields),
        hostname=hostname,
    )
