# SPDX-License-Identifier: Apache-2.0
"""``jevt.*`` fields (Falco's json plugin) over the ``k8s_audit`` event JSON: JSON-pointer lookups and the raw
object."""

from __future__ import annotations

from ruleengine.fields._context import EventContext
from ruleengine.fields._registry import K8S_AUDIT, register
from ruleengine.fields._types import ArgKind, Extractor, FieldArgError, FieldType, dump_json
from ruleengine.fields.evt import format_iso8601, format_time
from ruleengine.fields.ka import as_text


def _pointer(ptr: str) -> list[str]:
    if ptr and not ptr.startswith("/"):
        raise FieldArgError(f"jevt.value argument must be a JSON pointer starting with '/', got '{ptr}'")
    return [p.replace("~1", "/").replace("~0", "~") for p in ptr.split("/")[1:]] if ptr else []


def _bind_value(arg: str) -> Extractor:
    steps = _pointer(arg)

    def extract(ctx: EventContext) -> str | None:
        cur: object = ctx.audit
        for step in steps:
            if isinstance(cur, dict):
                if step not in cur:
                    return None
                cur = cur[step]
            elif isinstance(cur, list) and step.isdigit() and int(step) < len(cur):
                cur = cur[int(step)]
            else:
                return None
        return as_text(cur)

    return extract


def _obj(ctx: EventContext) -> str | None:
    a = ctx.audit
    return None if a is None else dump_json(a)


register(
    "jevt.value",
    FieldType.STRING,
    "Extract a value from a JSON object using a JSON pointer (e.g. jevt.value[/user/username]).",
    sources=(K8S_AUDIT,),
    arg=ArgKind.REQUIRED,
    arg_form="key",
    bind=_bind_value,
    derived=True,
)
register(
    "jevt.obj",
    FieldType.STRING,
    "The full JSON message as a text string.",
    sources=(K8S_AUDIT,),
    extract=_obj,
    derived=True,
)
register(
    "jevt.time",
    FieldType.STRING,
    "JSON event timestamp as a string that includes the nanosecond part.",
    sources=(K8S_AUDIT,),
    extract=lambda c: format_time(c.event.timing.event_ns),
    derived=True,
)
register(
    "jevt.time.iso8601",
    FieldType.STRING,
    "JSON event timestamp in ISO 8601 format, including nanoseconds and time zone offset (in UTC).",
    sources=(K8S_AUDIT,),
    extract=lambda c: format_iso8601(c.event.timing.event_ns),
    derived=True,
)
register(
    "jevt.rawtime",
    FieldType.STRING,
    "JSON event timestamp as a number of nanoseconds since the epoch.",
    sources=(K8S_AUDIT,),
    extract=lambda c: str(c.event.timing.event_ns),
    derived=True,
)
