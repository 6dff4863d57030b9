# SPDX-License-Identifier: Apache-2.0
"""The dispatcher's domain model: the one alert (``lanner.alert``) and Falco's priorities."""

from __future__ import annotations

from lanner.alert import EMPTY_FIELDS, Alert, JsonValue
from lanner.priority import Priority

__all__ = ["EMPTY_FIELDS", "Alert", "JsonValue", "Priority"]
