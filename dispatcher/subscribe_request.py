# SPDX-License-Identifier: Apache-2.0
"""What a SubscribeRequest may ask for: bounded filter lists, and where its replay starts."""

from __future__ import annotations

import re

from lanner.alert import AlertError
from lanner.v1 import services_pb2

# Per list of a SubscribeRequest (rules, tags, sources, filters, fields), and per entry.
MAX_REQUEST_ITEMS = 64
MAX_REQUEST_TEXT = 512
_CURSOR = re.compile(r"^\d{1,20}-\d{1,20}$")


def check_request_size(req: services_pb2.SubscribeRequest) -> None:
    """A subscriber's filters cost CPU on every alert: bound how many it may send, and how long they are."""
    for name in ("rules", "tags", "sources", "filters", "fields"):
        values = getattr(req, name)
        if len(values) > MAX_REQUEST_ITEMS:
            raise AlertError(f"{name}: more than {MAX_REQUEST_ITEMS} entries")
        for i, value in enumerate(values):
            if len(value) > MAX_REQUEST_TEXT:
                raise AlertError(f"{name}[{i}]: longer than {MAX_REQUEST_TEXT} characters")


def replay_start(cursor: str, since_ms: int) -> tuple[str | None, bool]:
    """Where a subscription's replay starts: after a cursor, from a time (inclusive), or nowhere (live only)."""
    if cursor:
        if not _CURSOR.match(cursor):
            raise AlertError(f"from_cursor: {cursor[:40]!r} is not a cursor (an Alert.cursor such as 1718000011726-0)")
        return cursor, False
    if since_ms < 0:
        raise AlertError("since_unix_ms: must not be negative")
    return (f"{since_ms}-0", True) if since_ms else (None, False)
