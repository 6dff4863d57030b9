# SPDX-License-Identifier: Apache-2.0
"""``output_fields_json`` decoding skips the freeze scan when the text has no bracket after the first: same result."""

from __future__ import annotations

import json
from types import MappingProxyType

from hypothesis import given, settings
from hypothesis import strategies as st

from lanner.alert import JsonFields, JsonValue, alert_from_pb
from lanner.v1 import alert_pb2


def _freeze(value: object) -> JsonValue:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return MappingProxyType({str(k): _freeze(v) for k, v in value.items()})
    return value  # type: ignore[return-value]


def reference(text: str) -> JsonFields:
    """The decoding before the shortcut, verbatim."""
    decoded = json.loads(text)
    flat = True
    for k, v in decoded.items():
        if isinstance(v, list | dict):
            flat = flat and isinstance(v, list) and not any(isinstance(x, list | dict) for x in v)
            decoded[k] = _freeze(v)
    return JsonFields(decoded, text, flat)


# Strings that look like brackets, nested values, and plain scalars.
SCALARS = st.none() | st.booleans() | st.integers() | st.text(st.sampled_from('ab[]{}"\\ ,:é\u2028'), max_size=8)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(st.sampled_from("ab.[{"), max_size=6), VALUES, max_size=6), st.booleans())
def test_same_fields_as_reference(fields: dict[str, object], canonical: bool) -> None:
    text = (
        json.dumps(fields, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
        if canonical
        else json.dumps(fields)
    )
    got = alert_from_pb(alert_pb2.Alert(rule="r", output_fields_json=text)).output_fields
    want = reference(text)
    assert isinstance(got, JsonFields)
    assert dict(got) == dict(want)
    assert [type(v) for v in got.values()] == [type(v) for v in want.values()]
    assert (got.text, got.as_sent) == (want.text, want.as_sent)


def test_flat_text_takes_the_shortcut() -> None:
    text = '{"a":1,"b":"x"}'
    got = alert_from_pb(alert_pb2.Alert(rule="r", output_fields_json=text)).output_fields
    assert isinstance(got, JsonFields) and got.as_sent and dict(got) == {"a": 1, "b": "x"}
    nested = alert_from_pb(alert_pb2.Alert(rule="r", output_fields_json='{"a":[1,[2]]}')).output_fields
    assert isinstance(nested, JsonFields) and not nested.as_sent and nested["a"] == (1, (2,))
