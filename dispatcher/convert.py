# SPDX-License-Identifier: Apache-2.0
"""Protobuf alerts -> domain alerts for the dispatcher: the codec is ``lanner.alert`` (one per message)."""

from __future__ import annotations

from lanner.alert import (
    AlertError,
    alert_from_pb,
    alert_head_from_pb,
    priority_from_pb,
    struct_from_pb,
    value_from_pb,
)

__all__ = ["AlertError", "alert_from_pb", "alert_head_from_pb", "priority_from_pb", "struct_from_pb", "value_from_pb"]
