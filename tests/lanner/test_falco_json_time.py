# SPDX-License-Identifier: Apache-2.0
"""The per-second date cache of ``rfc3339_ns`` and the ASCII shortcut of ``escape_json`` change no output."""

from __future__ import annotations

import re
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from lanner.falco_json import escape_json, rfc3339_ns

NS = 1_000_000_000
# Up to 9999-12-31T23:59:59 UTC.
TIMES = st.integers(0, 253402300799 * NS + NS - 1)


def reference_time(time_ns: int) -> str:
    secs, nanos = divmod(time_ns, NS)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{nanos:09d}Z"


def reference_escape(text: str) -> str:
    return re.sub("[\x7f-\x9f\u2028\u2029\ud800-\udfff]", lambda m: f"\\u{ord(m.group()):04x}", text)


@settings(max_examples=300, deadline=None)
@given(st.lists(TIMES, min_size=1, max_size=8), st.integers(0, 3 * NS))
def test_time_matches_reference(times: list[int], step: int) -> None:
    # Runs of alerts within one second (cache hits) and across seconds, in any order.
    for t in times:
        for at in (t, t + step, t, t + 1):
            assert rfc3339_ns(at) == reference_time(at)


def test_time_second_boundary() -> None:
    base = 1_765_130_000 * NS
    for at in (base - 1, base, base + NS - 1, base + NS, base - 1):
        assert rfc3339_ns(at) == reference_time(at)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_escape_matches_reference(text: str) -> None:
    assert escape_json(text) == reference_escape(text)


def test_escape_examples() -> None:
    assert escape_json('{"a":"plain"}') == '{"a":"plain"}'
    assert escape_json('{"a":"x\u2028y\x85"}') == '{"a":"x\\u2028y\\u0085"}'
    assert escape_json("é") == "é"
    assert escape_json("a\x7fb") == "a\\u007fb"
