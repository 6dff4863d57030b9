# SPDX-License-Identifier: Apache-2.0
"""Load-time warning for a rule output that would render past the alert size limits (``lanner.alert_limits``).

The limits cut such an alert at run time (with a marker), so nothing breaks; the warning tells the rule's author at
load time, at the output's file:line:col, that its alerts will arrive shortened. A field's rendered length is only
known per event, so the estimate assumes a typical length per token: ``TYPICAL_TEXT`` characters for text
(a long path or a name), ``TYPICAL_VALUE`` for numbers, addresses and times. Ordinary rules (a few dozen tokens)
stay far below the limit; an output of thousands of tokens, or of a huge literal text, does not.
"""

from __future__ import annotations

from lanner.alert_limits import DEFAULT_LIMITS, AlertLimits
from ruleengine.fields._types import FieldType
from ruleengine.output import OutputFormat

TYPICAL_TEXT = 256
TYPICAL_VALUE = 24
_TEXT_TYPES = frozenset({FieldType.STRING, FieldType.CHAR, FieldType.BYTES})


def output_size_problem(fmt: OutputFormat, limits: AlertLimits = DEFAULT_LIMITS) -> str | None:
    """Why this output's alerts will be cut by the (default) dispatcher limits, or None."""
    tokens = fmt.tokens
    keys = {t.key for t in tokens}
    if len(keys) > limits.max_fields:
        return (
            f"the output names {len(keys)} distinct fields, more than max_fields ({limits.max_fields}): alerts keep "
            "the first fields by name and say how many were dropped (dispatcher.limits)"
        )
    literal = sum(len(s) for s in fmt.segments if isinstance(s, str))
    estimate = literal + sum(
        max(t.width, TYPICAL_TEXT if t.field.any_of or t.field.info.type in _TEXT_TYPES else TYPICAL_VALUE)
        for t in tokens
    )
    if estimate <= limits.max_output_chars:
        return None
    return (
        f"the output could render about {estimate} characters ({len(tokens)} field tokens, {literal} literal "
        f"characters), more than max_output_chars ({limits.max_output_chars}): its alerts will be truncated "
        "(dispatcher.limits)"
    )
