# SPDX-License-Identifier: Apache-2.0
"""What the chat outputs (Teams, Mattermost, Discord, Google Chat) show of an alert: one place for the facts."""

from __future__ import annotations

from dispatcher.falco_format import rfc3339_ns, text_line
from dispatcher.model import Alert, Priority
from dispatcher.registry import OutputContext

# Output fields worth a line of their own, in this order, when the alert has them.
DEFAULT_FIELDS = (
    "container.name", "container.image.repository", "k8s.ns.name", "k8s.pod.name", "proc.name", "proc.cmdline",
    "user.name", "fd.name",
)  # fmt: skip
# A colour per priority (RGB), for the outputs whose messages have one.
COLOR = {
    Priority.EMERGENCY: 0x8B0000, Priority.ALERT: 0xB22222, Priority.CRITICAL: 0xDC143C, Priority.ERROR: 0xFF4500,
    Priority.WARNING: 0xFFA500, Priority.NOTICE: 0x1E90FF, Priority.INFORMATIONAL: 0x4682B4, Priority.DEBUG: 0x808080,
}  # fmt: skip


def title(alert: Alert, ctx: OutputContext) -> str:
    """``<Priority>: <rule> on <host>``."""
    return f"{alert.priority.falco_name}: {alert.rule} on {alert.hostname or ctx.hostname}"


def facts(alert: Alert, ctx: OutputContext, fields: tuple[str, ...], limit: int = 10) -> list[tuple[str, str]]:
    """(name, value) pairs: priority, host, source, time, then the chosen output fields present, at most ``limit``."""
    out = [
        ("Priority", alert.priority.falco_name),
        ("Host", alert.hostname or ctx.hostname),
        ("Source", alert.source),
        ("Time", rfc3339_ns(alert.time_ns)),
    ]
    if alert.tags:
        out.append(("Tags", ", ".join(sorted(set(alert.tags)))))
    for name in fields:
        value = alert.output_fields.get(name)
        if value is not None and value != "" and len(out) < limit:
            out.append((name, str(value)))
    return out[:limit]


def body_text(alert: Alert) -> str:
    """The alert's text line."""
    return text_line(alert)
