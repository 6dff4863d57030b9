# SPDX-License-Identifier: Apache-2.0
"""A recorded source: replays a recording (``lanner.recording``: the collector's ``record_path``, the rule engine's,
``lanner record``) into the pipeline.

A bad line is reported with its file and line
number and skipped; the rest of the file still plays. Sequence numbers and producer identity are replaced by this
replay's own, so downstream dedup does not mistake a replay for the original stream.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import IO

from collector.decode import Identity
from lanner.model import Event, EventIdentity, EventTiming
from lanner.recording import FIELD_RECORD_HINT, parse_line
from lanner.recording import RecordingError as ReplayError

__all__ = ["ReplayError", "ReplaySource", "parse_line"]

log = logging.getLogger(__name__)


class ReplaySource:
    """Plays a recording, ``batch`` events per poll; ``realtime`` keeps the recorded spacing between events."""

    name = "replay"

    def __init__(self, path: str, identity: Identity, *, batch: int = 512, realtime: bool = False) -> None:
        self.path = path
        self.identity = identity
        self.batch = batch
        self.realtime = realtime
        self.errors = 0
        self.finished = False
        self._file: IO[str] | None = None
        self._lineno = 0
        self._seq = 0
        self._first_event_ns = 0
        self._started = 0.0
        self._held: Event | None = None
        self._field_records = False

    def start(self) -> None:
        """Open the recording (OSError when it cannot be read)."""
        self._file = open(self.path, encoding="utf-8")  # noqa: SIM115
        self._started = time.monotonic()

    def _next(self) -> Event | None:
        assert self._file is not None
        while True:
            line = self._file.readline()
            if not line:
                return None
            self._lineno += 1
            if not line.strip():
                continue
            try:
                return parse_line(line, self.path, self._lineno)
            except ReplayError as exc:
                self.errors += 1
                if FIELD_RECORD_HINT in str(exc):
                    if self._field_records:  # a whole file of old field records: say it once
                        continue
                    self._field_records = True
                log.warning("skipping bad recorded event", extra={"error": str(exc)})

    def _due(self, ev: Event) -> bool:
        if not self.realtime or not ev.timing.event_ns:
            return True
        if not self._first_event_ns:
            self._first_event_ns = ev.timing.event_ns
        offset_s = (ev.timing.event_ns - self._first_event_ns) / 1e9
        return time.monotonic() - self._started >= offset_s

    def poll(self) -> list[Event]:
        """The next events of the recording (none once it is finished)."""
        if self._file is None or self.finished:
            return []
        out: list[Event] = []
        now = time.time_ns()
        while len(out) < self.batch:
            ev = self._held if self._held is not None else self._next()
            self._held = None
            if ev is None:
                self.finished = True
                break
            if not self._due(ev):
                self._held = ev
                break
            self._seq += 1
            ident = self.identity
            out.append(
                replace(
                    ev,
                    identity=EventIdentity(ident.node, ident.boot_id, self._seq, ident.producer_id),
                    timing=EventTiming(event_ns=ev.timing.event_ns, collected_ns=now),
                )
            )
        return out

    def dropped(self) -> int:
        """Lines that could not be read."""
        return self.errors

    def close(self) -> None:
        """Close the recording."""
        if self._file is not None:
            self._file.close()
            self._file = None
