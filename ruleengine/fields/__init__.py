# SPDX-License-Identifier: Apache-2.0
"""Falco's field catalogue for Lanner: names, types, arguments, extraction from ``lanner.model.Event`` and
rendering. One module per family registers its fields; conditions, outputs, ``lanner fields`` and JSON-lines
events all go through this one registry."""

from __future__ import annotations

from ruleengine.fields import (  # noqa: F401  (imported for their registrations)
    container,
    evt,
    evt_args,
    fd,
    jevt,
    k8s_workload,
    ka,
    proc,
    user,
)
from ruleengine.fields._context import EventContext
from ruleengine.fields._registry import known_sources, list_fields, resolve_field
from ruleengine.fields._types import (
    NA,
    ArgKind,
    BoundField,
    FieldArgError,
    FieldInfo,
    FieldType,
    UnknownFieldError,
)

__all__ = [
    "NA",
    "ArgKind",
    "BoundField",
    "EventContext",
    "FieldArgError",
    "FieldInfo",
    "FieldType",
    "UnknownFieldError",
    "known_sources",
    "list_fields",
    "resolve_field",
]
