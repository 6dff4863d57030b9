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
