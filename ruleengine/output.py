# SPDX-License-Identifier: Apache-2.0
"""Rule output formats and alerts, as Falco renders them.

* ``parse_output`` turns ``"... file=%fd.name user=%user.name %12proc.name"`` into an OutputFormat. After each
  ``%`` come an optional width and the **longest** prefix that is an existing field (with its ``[arg]``), so
  ``%proc.name:`` and ``%fd.name)`` work; ``tolower(...)``-style transformers of one field are accepted too.
  ``%(field)`` is not Falco syntax and is rejected like any unknown token.
* ``render_alert`` builds the domain AlertRecord: the text line ``HH:MM:SS.nnnnnnnnn: Priority message`` (local
  time, or ``evt.time.iso8601`` with ``time_format_iso_8601``), ``<NA>`` for missing values, and JSON-typed
  ``output_fields`` (``null`` for missing, ``evt.time`` as integer ns). Falco's ``append_output`` (with the
  default ``suggested_output`` container/pod fields on syscall rules) is applied here, once per rule, cached.
* ``alert_to_json`` prints Falco's JSON alert line through the one renderer, ``lanner.falco_json``.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import re
import time as _time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import cast

from lanner.alert import Alert, JsonValue
from lanner.falco_json import JsonOptions, falco_json
from ruleengine.fields import BoundField, EventContext, FieldArgError, UnknownFieldError, resolve_field
from ruleengine.fields._types import NA
from ruleengine.fields.evt import format_iso8601, format_time
from ruleengine.priority import Priority

__all__ = [
    "SUGGESTED_OUTPUT",
    "AlertRecord",
    "AppendOutput",
    "OutputFormat",
    "OutputFormatError",
    "OutputOptions",
    "alert_to_json",
    "format_alert_time",
    "parse_output",
    "render_alert",
]

# Fields the container plugin flags as "suggested output": Falco appends them to every syscall rule's output.
SUGGESTED_OUTPUT = (
    "container_id=%container.id container_name=%container.name "
    "container_image_repository=%container.image.repository "
    "container_image_tag=%container.image.tag k8s_pod_name=%k8s.pod.name k8s_ns_name=%k8s.ns.name"
)


class OutputFormatError(ValueError):
    """A rule output cannot be parsed; ``column`` is 1-based within the output text."""

    def __init__(self, message: str, column: int = 0) -> None:
        self.message = message
        self.column = column
        super().__init__(f"{message} (column {column})" if column else message)


# ---- tokens --------------------------------------------------------------------------------------------------
_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9_]*(?:\.[a-zA-Z0-9_]+)+")
_TRANSFORMERS: dict[str, Callable[[str], object]] = {
    "tolower": str.lower,
    "toupper": str.upper,
    "basename": lambda s: s[s.rfind("/") + 1 :] if "/" in s else s,
    "len": len,
    "b64": lambda s: base64.b64decode(s.encode(), validate=False).decode("utf-8", "replace"),
}


@dataclass(frozen=True, slots=True)
class Token:
    """One ``%field`` of a format: the field, an optional width and an optional one-field transformer."""

    field: BoundField
    key: str  # the output_fields key: the token as written, without width
    width: int = 0
    transformer: str = ""
    # No width, no transformer, not a list of ancestors: an ASCII string, an int or a missing value renders as it
    # is (``OutputFormat.render`` takes these without the general calls below).
    plain: bool = dataclasses.field(init=False, default=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "plain", not self.width and not self.transformer and not self.field.any_of)

    def value(self, ctx: EventContext) -> object:
        """The (transformed) extracted value."""
        v = ctx.get(self.field)
        if v is None or not self.transformer:
            return v
        return _TRANSFORMERS[self.transformer](self.field.render(v))

    def text(self, v: object) -> str:
        """Text rendering with the width applied (pad with spaces or cut, like Falco)."""
        s = self.field.render(v) if not self.transformer or v is None else str(v)
        if self.width:
            s = s[: self.width].ljust(self.width)
        return s

    def json(self, v: object) -> object:
        """JSON rendering for ``output_fields``."""
        if self.transformer and v is not None:
            return v
        return self.field.to_json(v)


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """A parsed output: literal text and tokens, in order."""

    text: str
    source: str
    segments: tuple[str | Token, ...]

    @property
    def tokens(self) -> tuple[Token, ...]:
        """The field tokens, in order of appearance."""
        return tuple(s for s in self.segments if isinstance(s, Token))

    def render(self, ctx: EventContext) -> tuple[str, dict[str, object]]:
        """The message text and the JSON-typed values of its fields."""
        parts: list[str] = []
        values: dict[str, object] = {}
        get = ctx.get
        for seg in self.segments:
            if type(seg) is str:
                parts.append(seg)
                continue
            assert isinstance(seg, Token)
            if seg.plain:
                # The common values, as render_value and json_value would give them (an ASCII str is displayable).
                v = get(seg.field)
                kind = type(v)
                if kind is str and cast(str, v).isascii():
                    parts.append(cast(str, v))
                    values[seg.key] = v
                    continue
                if v is None:
                    parts.append(NA)
                    values[seg.key] = None
                    continue
                if kind is int:
                    parts.append(str(v))
                    values[seg.key] = v
                    continue
            v = seg.value(ctx)
            parts.append(seg.text(v))
            values[seg.key] = seg.json(v)
        return "".join(parts), values


def _read_arg(text: str, i: int) -> tuple[str, int] | None:
    """Parse ``[arg]`` at text[i] (bare or quoted); return (arg, index after ']') or None."""
    if i >= len(text) or text[i] != "[":
        return None
    j = i + 1
    if j < len(text) and text[j] in "'\"":
        q = text[j]
        end = text.find(q, j + 1)
        if end < 0 or end + 1 >= len(text) or text[end + 1] != "]":
            return None
        return text[j + 1 : end], end + 2
    end = text.find("]", j)
    if end < 0:
        return None
    arg = text[j:end]
    if not arg or any(c.isspace() or c in "[\"'" for c in arg):
        return None
    return arg, end + 1


def _resolve_longest(text: str, start: int, source: str) -> tuple[BoundField, int] | None:
    m = _NAME.match(text, start)
    if m is None:
        return None
    name = m.group(0)
    # Candidate ends: after each dotted component, longest first.
    ends = [start + k for k in range(len(name), 0, -1) if k == len(name) or name[k] == "."]
    for end in ends:
        cand = text[start:end]
        if "." not in cand:
            continue
        arg = _read_arg(text, end)
        if arg is not None:
            try:
                return resolve_field(source, cand, arg[0]), arg[1]
            except (UnknownFieldError, FieldArgError):
                pass
        try:
            return resolve_field(source, cand), end
        except (UnknownFieldError, FieldArgError):
            continue
    return None


def parse_output(text: str, source: str) -> OutputFormat:
    """Parse a rule output for ``source``; OutputFormatError (with the column) on a bad token."""
    segments: list[str | Token] = []
    buf: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c != "%":
            buf.append(c)
            i += 1
            continue
        col = i + 1
        if i + 1 >= n:
            raise OutputFormatError("invalid formatting syntax: formatting cannot end with a %", col)
        j = i + 1
        while j < n and text[j].isdigit():
            j += 1
        width = int(text[i + 1 : j]) if j > i + 1 else 0
        token: Token | None = None
        found = _resolve_longest(text, j, source)
        if found is not None:
            bound, end = found
            token = Token(bound, bound.token, width)
        else:
            m = re.match(r"([a-z0-9]+)\(", text[j:])
            if m and m.group(1) in _TRANSFORMERS:
                inner = _resolve_longest(text, j + m.end(), source)
                if inner is not None and inner[1] < n and text[inner[1]] == ")":
                    bound, close = inner
                    token = Token(bound, f"{m.group(1)}({bound.token})", width, m.group(1))
                    end = close + 1
        if token is None:
            bad = re.match(r"[^\s%]*", text[j:])
            word = bad.group(0) if bad else ""
            # Falco's text (its test suites compare it exactly); the column says where the token starts
            raise OutputFormatError(f"invalid formatting token {word}", col)
        if buf:
            segments.append("".join(buf))
            buf = []
        segments.append(token)
        i = end
    if buf:
        segments.append("".join(buf))
    return OutputFormat(text, source, tuple(segments))


# ---- append_output -------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AppendOutput:
    """One entry of Falco's ``append_output``: when source/tags/rule match, add text and/or JSON-only fields.

    ``extra_fields`` items are either a bare field name (its typed value goes to ``output_fields``) or
    ``name=<format>`` (the rendered format string goes to ``output_fields[name]``).
    """

    match_source: str = ""
    match_tags: tuple[str, ...] = ()
    match_rule: str = ""
    extra_output: str = ""
    extra_fields: tuple[str, ...] = ()

    def matches(self, rule: str, source: str, tags: Sequence[str]) -> bool:
        """Falco's matching: every given criterion must hold; all listed tags must be on the rule."""
        if self.match_source and self.match_source != source:
            return False
        if self.match_rule and self.match_rule != rule:
            return False
        return all(t in tags for t in self.match_tags)

    @classmethod
    def from_config(cls, cfg: object) -> AppendOutput:
        """From any object with match_rule/match_source/match_tags/extra_output/extra_fields attributes."""
        return cls(
            match_source=str(getattr(cfg, "match_source", "")),
            match_tags=tuple(getattr(cfg, "match_tags", ())),
            match_rule=str(getattr(cfg, "match_rule", "")),
            extra_output=str(getattr(cfg, "extra_output", "")),
            extra_fields=tuple(getattr(cfg, "extra_fields", ())),
        )


@dataclass(frozen=True, slots=True)
class _Applied:
    fmt: OutputFormat
    extra: tuple[tuple[str, OutputFormat | Token], ...]


@dataclass(frozen=True, slots=True)
class OutputOptions:
    """Falco's output settings (falco.yaml keys of the same names)."""

    time_format_iso_8601: bool = False
    json_include_output_property: bool = True
    json_include_tags_property: bool = True
    json_include_message_property: bool = False
    json_include_output_fields_property: bool = True
    suggested_output: bool = True
    append_output: tuple[AppendOutput, ...] = ()
    _cache: dict[tuple[str, str, tuple[str, ...], str], _Applied] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )

    def applied(self, rule: str, source: str, tags: Sequence[str], fmt: OutputFormat) -> _Applied:
        """The rule's format with append_output applied (parsed once per rule and format)."""
        key = (rule, source, tuple(tags), fmt.text)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        text = fmt.text
        extra: list[tuple[str, OutputFormat | Token]] = []
        if self.suggested_output and source == "syscall":
            text += " " + SUGGESTED_OUTPUT
        for entry in self.append_output:
            if not entry.matches(rule, source, tags):
                continue
            if entry.extra_output:
                text += " " + entry.extra_output
            for item in entry.extra_fields:
                name, eq, fmt_text = item.partition("=")
                if eq:
                    extra.append((name.strip(), parse_output(fmt_text, source)))
                else:
                    bound = resolve_field(source, *_split_arg(item.strip()))
                    extra.append((bound.token, Token(bound, bound.token)))
        out = _Applied(fmt if text == fmt.text else parse_output(text, source), tuple(extra))
        self._cache[key] = out
        return out


def _split_arg(token: str) -> tuple[str, str | None]:
    if token.endswith("]") and "[" in token:
        name, _, arg = token[:-1].partition("[")
        return name, arg
    return token, None


# ---- alerts --------------------------------------------------------------------------------------------------
# The rule engine's name for the one alert model (``lanner.alert.Alert``), which the dispatcher delivers as it is.
AlertRecord = Alert


_CONTROL = re.compile(r"[\x00-\x1f\x7f]|[\ud800-\udfff]")
_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b", "\f": "\\f"}


def _escape(text: str) -> str:
    # Falco JSON-escapes control characters of the text line and replaces invalid UTF-8 with U+FFFD.
    if text.isascii() and text.isprintable():  # printable ASCII: no control character, no surrogate
        return text

    def repl(m: re.Match[str]) -> str:
        ch = m.group(0)
        if "\ud800" <= ch <= "\udfff":
            return "\ufffd"
        return _ESCAPES.get(ch, f"\\u{ord(ch):04x}")

    return _CONTROL.sub(repl, text)


# Alerts come in bursts within one second: per format, the last second rendered, the time zone it was rendered in
# (``time.tzset`` makes a new ``time.tzname``), and the formatter's text before and after its nanoseconds.
_last_second: dict[bool, tuple[int, object, str, str]] = {}


def format_alert_time(ns: int, iso8601: bool) -> str:
    """The time prefix of a text alert line."""
    secs, nanos = divmod(ns, 1_000_000_000)
    last = _last_second.get(iso8601)
    zone = _time.tzname
    if last is None or last[0] != secs or last[1] is not zone:
        # The formatters' own text for the whole second, split around its ".000000000".
        text = format_iso8601(secs * 1_000_000_000) if iso8601 else format_time(secs * 1_000_000_000)
        cut = text.index(".", 8)
        last = _last_second[iso8601] = (secs, zone, text[:cut], text[cut + 10 :])
    return f"{last[2]}.{nanos:09d}{last[3]}"


def render_alert(
    rule_name: str,
    priority: Priority,
    tags: Sequence[str],
    source: str,
    fmt: OutputFormat,
    ctx: EventContext,
    hostname: str,
    options: OutputOptions,
) -> AlertRecord:
    """Render one alert for a matching event."""
    applied = options.applied(rule_name, source, tags, fmt)
    message, fields = applied.fmt.render(ctx)
    for key, extra in applied.extra:
        if isinstance(extra, Token):
            fields[key] = extra.json(extra.value(ctx))
        else:
            fields[key] = extra.render(ctx)[0]
    ns = ctx.event.timing.event_ns
    fields["evt.time"] = ns
    line = _escape(f"{format_alert_time(ns, options.time_format_iso_8601)}: {priority.falco_name} {message}")
    # Rendered JSON values (lists stay lists here; the wire codec writes them as lists).
    return AlertRecord(
        rule=rule_name,
        priority=priority,
        source=source,
        tags=tuple(tags),
        time_ns=ns,
        output=line,
        message=message,
        output_fields=cast("Mapping[str, JsonValue]", MappingProxyType(fields)),
        hostname=hostname or os.environ.get("FALCO_HOSTNAME", "") or os.uname().nodename,
    )


def alert_to_json(alert: AlertRecord, options: OutputOptions | None = None) -> str:
    """Falco's JSON alert line (hostname, output, output_fields, priority, rule, source, tags, time), rendered by
    the one renderer, ``lanner.falco_json``, with the ``json_include_*_property`` options."""
    opts = options or OutputOptions()
    return falco_json(
        alert,
        JsonOptions(
            include_output=opts.json_include_output_property,
            include_tags=opts.json_include_tags_property,
            include_message=opts.json_include_message_property,
            include_output_fields=opts.json_include_output_fields_property,
        ),
    )


NA_TEXT = NA
