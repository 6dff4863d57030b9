# SPDX-License-Identifier: Apache-2.0
"""The renderer writes the output fields' JSON text as it came from the rule engine instead of encoding them again
(``lanner.alert.JsonFields``): the line must be the one that encoding would give, for any fields and options."""

from __future__ import annotations

import dataclasses
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from lanner.alert import Alert, alert_from_pb, alert_to_pb
from lanner.falco_json import JsonOptions, falco_json
from lanner.priority import Priority
from lanner.v1 import alert_pb2

TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12) | st.sampled_from(
    ['"output_fields":0', "a\u2028b", "\x85", "\n", '\\"', "evt.time", '"evt.time":5']
)
SCALAR = st.none() | st.booleans() | st.integers(-(2**63), 2**64) | TEXT | st.floats(allow_nan=False, width=32)
VALUE = SCALAR | st.lists(SCALAR, max_size=3) | st.dictionaries(TEXT, SCALAR, max_size=2)
FIELDS = st.dictionaries(TEXT | st.sampled_from(["evt.time", "proc.name", "fd.name"]), VALUE, max_size=6)
OPTIONS = st.builds(JsonOptions, st.booleans(), st.booleans(), st.booleans(), st.booleans())


def rendered_both_ways(alert: Alert, opts: JsonOptions) -> tuple[str, str]:
    decoded = alert_from_pb(alert_to_pb(alert, None))
    plain = dataclasses.replace(decoded, output_fields=dict(decoded.output_fields))
    return falco_json(decoded, opts, "host"), falco_json(plain, opts, "host")


@settings(max_examples=300, deadline=None)
@given(fields=FIELDS, opts=OPTIONS, time_ns=st.integers(0, 2**62), evt_time=st.booleans(), text=TEXT)
def test_as_sent_equals_encoded(
    fields: dict[str, object], opts: JsonOptions, time_ns: int, evt_time: bool, text: str
) -> None:
    if evt_time:
        fields["evt.time"] = time_ns
    alert = Alert(rule=text or "r", priority=Priority.NOTICE, tags=(text, "t"), time_ns=time_ns, output=text,
                  hostname=text[::-1], source=text or "syscall",
                  message=text, output_fields=fields)  # type: ignore[arg-type]  # fmt: skip
    fast, slow = rendered_both_ways(alert, opts)
    assert fast == slow
    assert "\n" not in fast and json.loads(fast)["rule"] == alert.rule


def test_fields_from_another_producer_are_encoded_again() -> None:
    """Unsorted keys, a nested object, line breaks and a stale evt.time take the encoding path."""
    for text in (
        '{"b":1,"a":2}',
        '{"a":{"y":1,"x":2}}',
        '{"a":\n1}',
        '{"evt.time":5}',
        '{"evt.time":12345,"z":1}',
    ):
        pb = alert_pb2.Alert(rule="r", priority=alert_pb2.PRIORITY_NOTICE, output_fields_json=text)
        pb.time.FromNanoseconds(1234)
        alert = alert_from_pb(pb)
        plain = dataclasses.replace(alert, output_fields=dict(alert.output_fields))
        assert falco_json(alert) == falco_json(plain)
        assert '"evt.time":1234' in falco_json(alert) or "evt.time" not in text
