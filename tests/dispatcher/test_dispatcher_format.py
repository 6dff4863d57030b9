# SPDX-License-Identifier: Apache-2.0
"""Falco's JSON and text renderings, checked against a canonical Falco alert line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import struct_pb2, timestamp_pb2

from dispatcher.convert import AlertError, alert_from_pb
from dispatcher.falco_format import JsonOptions, falco_json, rfc3339_ns, text_line
from dispatcher.model import Alert, Priority
from lanner.v1 import alert_pb2

FIXTURE = Path(__file__).parent / "fixtures" / "falco_alert.json"


def canonical_pb() -> alert_pb2.Alert:
    """The protobuf alert the rule engine would send for the fixture's event."""
    expected = json.loads(FIXTURE.read_text())
    fields = struct_pb2.Struct()
    fields.update(expected["output_fields"])
    return alert_pb2.Alert(
        rule=expected["rule"],
        priority=alert_pb2.PRIORITY_WARNING,
        source="syscall",
        tags=["mitre_credential_access", "T1555", "container", "filesystem", "host", "maturity_stable"],
        time=timestamp_pb2.Timestamp(seconds=1718000011, nanos=726060287),
        output=expected["output"],
        message="Sensitive file opened for reading by non-trusted program (...)",
        output_fields=fields,
        hostname="host1",
        alert_id="abc",
    )


def test_falco_json_matches_canonical_line() -> None:
    assert falco_json(alert_from_pb(canonical_pb())) == FIXTURE.read_text().strip()


def test_evt_time_keeps_nanosecond_precision() -> None:
    # A Struct number is a double: 1718000011726060287 comes back rounded; the alert's time is exact.
    alert = alert_from_pb(canonical_pb())
    assert alert.output_fields["evt.time"] != 1718000011726060287
    assert json.loads(falco_json(alert))["output_fields"]["evt.time"] == 1718000011726060287


def test_output_fields_json_is_preferred_and_exact() -> None:
    pb = canonical_pb()
    pb.output_fields_json = '{"evt.time":1718000011726060287,"big":9007199254740993,"l":[1,{"a":null}]}'
    fields = alert_from_pb(pb).output_fields
    assert fields["big"] == 9007199254740993 and fields["l"] == (1, {"a": None})
    assert '"output_fields":{"big":9007199254740993,"evt.time":1718000011726060287,"l":[1,{"a":null}]}' in (
        falco_json(alert_from_pb(pb))
    )
    pb.output_fields_json = "[1]"
    with pytest.raises(AlertError, match="output_fields_json: expected a JSON object"):
        alert_from_pb(pb)


def test_optional_keys_follow_json_options() -> None:
    alert = alert_from_pb(canonical_pb())
    out = json.loads(
        falco_json(
            alert,
            JsonOptions(include_output=False, include_tags=False, include_message=True, include_output_fields=False),
        )
    )
    assert sorted(out) == ["hostname", "message", "priority", "rule", "source", "time"]


def test_unicode_and_control_characters() -> None:
    alert = Alert(rule="r", priority=Priority.INFORMATIONAL, output='é\t\x01"x"/', time_ns=5)
    line = falco_json(alert)
    assert '"output":"é\\t\\u0001\\"x\\"/"' in line
    assert '"priority":"Informational"' in line
    assert '"time":"1970-01-01T00:00:00.000000005Z"' in line
    assert "\n" not in line


def test_hostname_fallback_and_sorted_unique_tags() -> None:
    alert = Alert(rule="r", priority=Priority.DEBUG, tags=("b", "a", "b"))
    out = json.loads(falco_json(alert, hostname="fallback"))
    assert out["hostname"] == "fallback" and out["tags"] == ["a", "b"]


def test_rfc3339() -> None:
    assert rfc3339_ns(1718000011726060287) == "2024-06-10T06:13:31.726060287Z"
    assert rfc3339_ns(0) == "1970-01-01T00:00:00.000000000Z"


def test_text_line_is_output_as_is() -> None:
    alert = alert_from_pb(canonical_pb())
    assert text_line(alert) == alert.output
    bare = Alert(rule="r", priority=Priority.ERROR, message="boom", time_ns=1718000011726060287)
    assert text_line(bare).endswith(".726060287: Error boom")


def test_struct_values_convert_to_json_types() -> None:
    pb = canonical_pb()
    pb.output_fields.update({"f": 1.5, "b": True, "l": [1, "x", None], "m": {"k": 2}})
    fields = alert_from_pb(pb).output_fields
    assert fields["f"] == 1.5 and fields["b"] is True and fields["l"] == (1, "x", None)
    assert fields["m"] == {"k": 2} and fields["proc.pid"] == 31337 and isinstance(fields["proc.pid"], int)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [(lambda a: setattr(a, "priority", 42), "priority: 42"), (lambda a: setattr(a, "rule", ""), "rule:")],
)
def test_bad_alert_fields_are_named(mutate: object, message: str) -> None:
    pb = canonical_pb()
    mutate(pb)  # type: ignore[operator]
    with pytest.raises(AlertError, match=message):
        alert_from_pb(pb)


def test_priority_parse() -> None:
    assert Priority.parse("info") is Priority.INFORMATIONAL
    assert Priority.parse("WARNING") is Priority.WARNING
    assert Priority.INFORMATIONAL.falco_name == "Informational"
    with pytest.raises(ValueError, match="unknown priority 'loud'"):
        Priority.parse("loud")
