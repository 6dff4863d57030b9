# SPDX-License-Identifier: Apache-2.0
"""``regex`` runs on RE2 as in libsinsp: POSIX syntax, full match, linear time, located errors for bad patterns."""

from __future__ import annotations

import pytest

from .helpers import load, matches, rule_with


@pytest.mark.parametrize(
    ("cond", "expected"),
    [
        ("fd.name regex '/etc/s.*'", True),
        ("fd.name regex 'etc'", False),  # anchored at both ends
        ("fd.name regex '/etc/(shadow|passwd)'", True),
        ("fd.name regex '/etc/[a-z]+'", True),
        ("fd.name regex '/etc/sha'", False),
    ],
)
def test_regex_is_a_full_match(cond: str, expected: bool) -> None:
    assert matches(cond, evt__type="openat", fd__name="/etc/shadow") is expected


def test_backtracking_pattern_completes_on_a_long_path() -> None:
    # With a backtracking engine each extra 'a' doubles the time: 28 took 17 s. RE2 is linear.
    path = "/tmp/" + "a" * 5000 + "!"
    assert matches("fd.name regex '.*(a+)+$'", evt__type="openat", fd__name=path) is False
    assert matches("fd.name regex '.*(a+)+'", evt__type="openat", fd__name="/tmp/" + "a" * 5000) is True


def test_non_utf8_bytes_never_raise() -> None:
    assert matches("fd.name regex '/tmp/.*x'", evt__type="openat", fd__name="/tmp/\udcffx") in (True, False)


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(?<=x)a", "invalid regex pattern: no argument for repetition operator: ?"),
        (r"\\d+", r"invalid regex pattern: invalid escape sequence: \d"),  # POSIX syntax: no Perl classes
        ("(a", "invalid regex pattern: missing ): (a"),
    ],
)
def test_pattern_re2_cannot_take_is_a_located_load_error(pattern: str, reason: str) -> None:
    text = "- required_engine_version: 0.57.0\n" + rule_with(f'fd.name regex "{pattern}"')
    res = load(text)
    assert res.engine is None
    [err] = res.errors
    assert err.code == "LOAD_ERR_COMPILE_CONDITION"
    assert err.message == reason
    assert (err.location.file, err.location.line) == ("rules.yaml", 4)
    assert err.location.col > 1
