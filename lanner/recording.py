# SPDX-License-Identifier: Apache-2.0
"""Lanner's one recording format: events as JSON lines, each one ``lanner.v1.Event`` in the protobuf JSON mapping.

Every recorder writes it (the collector's and the rule engine's ``record_path``, ``lanner record --format jsonl``)
and every replay reads it (the collector's ``replay_path``, ``lanner replay``). The mapping is derived from the
proto, so a recording keeps every raw fact of the event model (capability masks, exe inode, cgroups, ancestors,
socket endpoints...) without a hand-kept schema. Argv, env, comm, paths and other process-chosen bytes are JSON
strings, each byte that is not UTF-8 as a ``\\udcXX`` escape. ``.scap`` is the interchange format with Falco and
sysdig (``lanner record --format scap``).

Values a foreign input gave pre-rendered (``Event.given``: ``lanner record`` of a ``sysdig -j`` export) travel in
the line's ``given`` key, so the recording replays with the same verdicts. Falco-field JSON lines are an input
(sysdig exports, rule tests, recordings of Lanner before this format); ``lanner record`` converts them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from google.protobuf import json_format

from lanner.convert import event_from_json_dict, event_from_pb, event_to_json_dict, event_to_pb
from lanner.model import Event

__all__ = [
    "FIELD_RECORD_HINT",
    "GIVEN_KEY",
    "RecordingError",
    "event_from_record",
    "event_line",
    "is_event_record",
    "parse_line",
]

# Not a field of lanner.v1.Event: the pre-rendered values of a converted foreign record.
GIVEN_KEY = "given"

FIELD_RECORD_HINT = (
    "a Falco-field record (keyed by 'evt.type'), not a recorded lanner.v1.Event; convert the file with "
    "'lanner record FILE -o NEW.jsonl'"
)


class RecordingError(ValueError):
    """A line of a recording could not be read; the message names file and line."""


def event_line(ev: Event) -> str:
    """One event as a single line of the recording format (no newline)."""
    data = event_to_json_dict(event_to_pb(ev))
    if ev.given:
        data[GIVEN_KEY] = dict(ev.given)
    return json.dumps(data, separators=(",", ":"), default=str)  # ASCII: \udcXX escapes stay escapes


def is_event_record(record: Mapping[str, Any]) -> bool:
    """Is this parsed JSON object a line of the recording format (rather than a Falco-field record, a Falco alert
    or an audit event)? Recorded events name their ``type``; no other input has that key without dots."""
    return "type" in record and "evt.type" not in record and "kind" not in record and "rule" not in record


def event_from_record(record: dict[str, Any], where: str) -> Event:
    """The Event of one parsed line (``record`` is changed); RecordingError names ``where`` (``file:line``)."""
    given = record.pop(GIVEN_KEY, None)
    if given is not None and not isinstance(given, dict):
        raise RecordingError(f"{where}: field '{GIVEN_KEY}': expected an object of field values")
    try:
        ev = event_from_pb(event_from_json_dict(record))
    except json_format.ParseError as exc:
        raise RecordingError(f"{where}: not a lanner.v1.Event: {exc}") from None
    if given:
        ev = replace(ev, given=given)
    return ev


def parse_line(line: str, origin: str, lineno: int) -> Event:
    """One line of a recording as an Event; raises RecordingError naming ``origin:lineno[:col]``."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RecordingError(f"{origin}:{lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise RecordingError(f"{origin}:{lineno}:1: expected a JSON object (one event per line)")
    if "evt.type" in data:
        raise RecordingError(f"{origin}:{lineno}: {FIELD_RECORD_HINT}")
    return event_from_record(data, f"{origin}:{lineno}")
