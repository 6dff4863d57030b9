# SPDX-License-Identifier: Apache-2.0
"""The rule engine's cheaper alert rendering gives what the plain formatters give."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lanner.priority import Priority
from ruleengine.fields.evt import format_iso8601, format_time
from ruleengine.output import format_alert_time

# Any protobuf Timestamp from 1970 up to 9999-12-31, in ns.
NS = st.integers(min_value=0, max_value=253402300799 * 1_000_000_000 + 999_999_999)


@settings(max_examples=300, deadline=None)
@given(st.lists(NS, min_size=1, max_size=40), st.integers(min_value=-2_000_000_000, max_value=2_000_000_000))
def test_the_kept_second_renders_as_the_formatters_do(times: list[int], step: int) -> None:
    # Runs within one second and across seconds, in any order, for both formats.
    for ns in [t for base in times for t in (base, max(0, base + step), base)]:
        assert format_alert_time(ns, False) == format_time(ns)
        assert format_alert_time(ns, True) == format_iso8601(ns)


def test_second_boundaries() -> None:
    for ns in (0, 999_999_999, 1_000_000_000, 1_733_600_000_999_999_999, 1_733_600_001_000_000_000):
        assert format_alert_time(ns, False) == format_time(ns)
        assert format_alert_time(ns, True) == format_iso8601(ns)


def test_falco_names() -> None:
    assert [p.falco_name for p in Priority] == [p.name.capitalize() for p in Priority]
    assert Priority.INFORMATIONAL.falco_name == "Informational"


def test_a_new_time_zone_is_not_served_from_the_kept_second(monkeypatch: pytest.MonkeyPatch) -> None:
    ns = 1_718_000_011_726_060_287
    assert format_alert_time(ns, False) == format_time(ns)
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        assert format_alert_time(ns + 1, False) == format_time(ns + 1)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert format_alert_time(ns + 2, False) == format_time(ns + 2)


# ---- the plain-token path of OutputFormat.render and the one-pass fields encoding -------------------------------

ODD_TEXT = st.text(max_size=12) | st.sampled_from(["", "é", "\udc80x", "a\x00b", "\x7f", "tab\there", "<NA>"])
RENDERED = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | ODD_TEXT
    | st.binary(max_size=6)
    | st.tuples(ODD_TEXT, st.none() | ODD_TEXT)
)


def _token_with(value: object, width: int = 0) -> object:
    import dataclasses

    from ruleengine.fields import resolve_field
    from ruleengine.output import Token

    bound = dataclasses.replace(resolve_field("syscall", "proc.name", None), extract=lambda _ctx: value)
    return Token(bound, "proc.name", width)


@settings(max_examples=400, deadline=None)
@given(st.lists(RENDERED, min_size=1, max_size=6), st.booleans())
def test_plain_tokens_render_as_the_general_path_does(values: list[object], padded: bool) -> None:
    from lanner.model import Event
    from ruleengine.fields import EventContext
    from ruleengine.output import OutputFormat, Token

    tokens = [_token_with(v, width=3 if padded else 0) for v in values]
    segments: list[str | Token] = []
    for i, tok in enumerate(tokens):
        segments += (f" f{i}=", tok)  # type: ignore[list-item]
    fmt = OutputFormat("x", "syscall", tuple(segments))
    ctx = EventContext(Event(type="openat"))
    text, fields = fmt.render(ctx)
    want_text, want_fields = "", {}
    for i, tok in enumerate(tokens):
        assert isinstance(tok, Token)
        v = tok.value(ctx)
        want_text += f" f{i}=" + tok.text(v)
        want_fields[tok.key] = tok.json(v)
    assert text == want_text
    assert fields == want_fields
    assert [type(v) for v in fields.values()] == [type(v) for v in want_fields.values()]


FIELD_VALUE = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | ODD_TEXT | st.text(max_size=80)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.dictionaries(ODD_TEXT | st.sampled_from(["proc.name", "evt.time"]), FIELD_VALUE, max_size=8), max_size=4
    )
)
def test_fields_and_their_json_in_one_pass_equal_the_two_encodings(dicts: list[dict[str, object]]) -> None:
    # Several dicts in a row: the kept (name, value) pairs must not leak from one alert into another.
    from lanner.alert import canonical_json
    from lanner.alert_wire import _fields, _fields_and_json
    from lanner.text import displayable

    for fields in dicts:
        try:
            want = (_fields(fields), displayable(canonical_json(fields)))
        except UnicodeEncodeError:
            # A name protobuf cannot carry (alert_bytes then takes alert_to_pb, which says why): refused alike.
            with pytest.raises(UnicodeEncodeError):
                _fields_and_json(fields)
            continue
        assert _fields_and_json(fields) == want
