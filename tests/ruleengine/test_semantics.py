# SPDX-License-Identifier: Apache-2.0
"""Operator semantics: missing values, typed literals, list and multi-value fields, transformers."""

from __future__ import annotations

import pytest

from .helpers import load, matches, rule_with

OPEN = {
    "evt__type": "openat",
    "proc__name": "Cat",
    "fd__name": "/etc/shadow",
    "fd__num": 3,
    "proc__cmdline": "Cat /etc/shadow",
}


def m(cond: str, **fields: object) -> bool:
    return matches(cond, **{**OPEN, **fields})


def test_missing_value_is_false_for_every_operator_including_not_equal() -> None:
    # user.loginname has no value in this event
    for cond in ("fd.sip = 1.2.3.4", "fd.sip != 1.2.3.4", "fd.sport > 0", "fd.sport != 22", "fd.sip in (1.1.1.1)"):
        assert not m(cond), cond
    assert m("not fd.sip = 1.2.3.4")
    assert m("not fd.sip != 1.2.3.4")
    assert not m("fd.sip exists")


@pytest.mark.parametrize(
    ("cond", "expected"),
    [
        ("proc.name = Cat", True),
        ("proc.name == Cat", True),
        ("proc.name = cat", False),
        ("proc.name != cat", True),
        ("proc.cmdline contains /etc", True),
        ("proc.cmdline contains /ETC", False),
        ("proc.cmdline icontains /ETC", True),
        ("fd.name startswith /etc/", True),
        ("fd.name endswith shadow", True),
        ("fd.name endswith /etc", False),
        ("fd.name glob '/etc/*'", True),
        ("fd.name glob '/e?c/sha[a-d]ow'", True),
        ("fd.name glob '/usr/*'", False),
        ("proc.name iglob 'c*'", True),
        ("proc.name glob 'c*'", False),
        ("fd.name regex '/etc/s.*'", True),
        ("fd.name regex 'etc'", False),
        ("proc.name in (Cat, dog)", True),
        ("proc.name in (cat)", False),
        ("proc.name intersects (Cat)", True),
        ("fd.name pmatch (/etc)", True),
        ("fd.name pmatch (/et)", False),
        ("fd.name pmatch (/usr, /etc/shadow)", True),
        ("fd.name pmatch (/etc/shadow/x)", False),
        ("fd.name pmatch ('/e*')", True),
        ("proc.cmdline bcontains 2f657463", True),
        ("proc.cmdline bstartswith 436174", True),
        ("proc.cmdline bcontains 00", False),
        ("proc.name exists", True),
    ],
)
def test_string_operators(cond: str, expected: bool) -> None:
    assert m(cond) is expected, cond


@pytest.mark.parametrize(
    ("cond", "expected"),
    [
        ("fd.num = 3", True),
        ("fd.num = 0x3", True),
        ("fd.num > 2", True),
        ("fd.num < 3", False),
        ("fd.num <= 3", True),
        ("fd.num >= 4", False),
        ("fd.num != 3", False),
        ("fd.num in (1, 2, 3)", True),
    ],
)
def test_numeric_comparisons_are_typed(cond: str, expected: bool) -> None:
    assert m(cond) is expected, cond


def test_bad_numeric_literal_is_a_compile_error() -> None:
    res = load(rule_with("evt.type=open and fd.num = abc"))
    assert [e.code for e in res.errors] == ["LOAD_ERR_COMPILE_CONDITION"]
    assert res.errors[0].location.line == 3


def test_booleans_chars_and_ips() -> None:
    assert m("evt.is_open_read = true", evt__arg__flags="O_RDONLY")
    assert not m("evt.is_open_read = false", evt__arg__flags="O_RDONLY")
    assert m("fd.typechar = f") and m("fd.typechar='f'") and not m("fd.typechar = d")
    net = {
        "evt__type": "connect",
        "fd__sip": "10.1.2.3",
        "fd__sport": 443,
        "fd__cip": "192.168.0.2",
        "fd__cport": 5555,
        "fd__l4proto": "tcp",
    }
    assert matches("fd.sip = 10.1.2.3", **net)
    assert not matches("fd.sip = 10.1.2.4", **net)
    assert matches("fd.sip in (10.1.2.3, 1.1.1.1)", **net)
    assert matches("fd.snet = 10.0.0.0/8", **net)
    assert matches("fd.snet in (172.16.0.0/12, 10.0.0.0/8)", **net)
    assert not matches("fd.snet = 192.168.0.0/16", **net)
    assert matches("fd.sport = 443 and fd.sport in (80, 443)", **net)


def test_operator_type_mismatch_is_an_error() -> None:
    res = load(rule_with("evt.type=open and fd.num contains 3"))
    assert res.errors and "'contains' operator not supported for numeric filters" in res.errors[0].message
    res = load(rule_with("evt.type=open and fd.nmae = x"))
    assert res.errors[0].message == "filter_check called with nonexistent field fd.nmae"


def test_unknown_event_type() -> None:
    res = load(rule_with("evt.type in (open, opne)"))
    assert [e.message for e in res.errors] == ["unknown event type opne"]


def test_ancestor_fields_with_and_without_index() -> None:
    ev = {"proc__aname[2]": "sshd", "proc__pname": "bash"}
    assert m("proc.aname[2] = sshd", **ev)
    assert not m("proc.aname[1] = sshd", **ev)
    assert m("proc.aname = sshd", **ev)
    assert m("proc.aname in (sshd, x)", **ev)
    assert not m("proc.aname = cron", **ev)


def test_modifiers_semantics() -> None:
    assert m("proc.cmdline startswith anyof (dog, Cat)")
    assert m("fd.name endswith anyof (passwd, shadow)")
    assert m("proc.cmdline contains anyof (a, b, c, /etc/shadow)")
    assert not m("proc.cmdline contains anyof (x, y, z)")
    assert m("proc.cmdline contains allof (Cat, shadow)")
    assert not m("proc.cmdline contains allof (Cat, dog)")
    assert m("proc.cmdline contains oneof (dog, shadow)")
    assert not m("proc.cmdline contains oneof (Cat, shadow)")
    assert m("proc.name = anyof (x, Cat)")


def test_transformers() -> None:
    assert m("tolower(proc.name) = cat")
    assert m("toupper(proc.name) = CAT")
    assert m("basename(fd.name) = shadow")
    assert m("len(proc.name) = 3") and m("len(fd.name) > 5")
    assert m("tolower(basename(proc.cmdline)) = shadow")
    assert matches("b64(proc.cmdline) = hello", proc__cmdline="aGVsbG8=", evt__type="execve")


def test_val_compares_fields() -> None:
    assert m("proc.name = val(proc.pname)", proc__pname="Cat")
    assert not m("proc.name = val(proc.pname)", proc__pname="bash")
    assert m("proc.cmdline contains val(proc.name)")
    assert not m("proc.name = val(proc.pname)")  # pname missing -> false


def test_not_and_precedence_in_evaluation() -> None:
    assert m("not proc.name = x and fd.num = 3")
    assert not m("not (proc.name = Cat or fd.num = 4)")
    assert m("proc.name = x or fd.num = 3 and fd.name = /etc/shadow")


def test_or_chains_on_one_field_keep_semantics() -> None:
    assert m("proc.name = x or proc.name = Cat or proc.name in (y, z)")
    assert not m("proc.name = x or proc.name = y")
    assert m("fd.name startswith /usr or fd.name startswith /etc/sh")
    assert m("fd.name endswith .conf or fd.name endswith dow")
    assert m("proc.cmdline contains aa or proc.cmdline contains bb or proc.cmdline contains shadow")
    assert not m("proc.cmdline contains aa or proc.cmdline contains bb or proc.cmdline contains cc")
    # fd.sip has no value: every disjunct is false, so the negation is true
    assert not m("fd.sip = 1.1.1.1 or fd.sip = 2.2.2.2")
    assert m("not (fd.sip = 1.1.1.1 or fd.sip = 2.2.2.2)")
    assert m("fd.num = 1 or fd.num = 3")


def test_errno_names_and_raw_results() -> None:
    failed = {"evt__type": "openat", "proc__name": "cat", "fd__name": "/etc/shadow", "evt__rawres": -2}
    assert matches("evt.res = ENOENT", **failed)
    assert matches("evt.res startswith E and evt.rawres < 0", **failed)
    assert not matches("evt.res = SUCCESS", **failed)
    assert matches("evt.res = SUCCESS and evt.rawres >= 0", evt__type="openat", proc__name="cat", evt__rawres=3)


def test_icontains_chains() -> None:
    assert m("proc.cmdline icontains AA or proc.cmdline icontains BB or proc.cmdline icontains /ETC/SHA")
    assert not m("proc.cmdline icontains AA or proc.cmdline icontains BB or proc.cmdline icontains CC")
    assert m("proc.cmdline icontains anyof (xx, yy, SHADOW)")


def test_val_type_mismatch_is_a_compile_error() -> None:
    res = load(rule_with("evt.type=open and proc.name < val(fd.num)"))
    assert res.errors and "cannot compare a string field with a int64 value" in res.errors[0].message
