# SPDX-License-Identifier: Apache-2.0
"""Condition parsing, as libsinsp's parser does it."""

from __future__ import annotations

import pytest

from ruleengine.condition.ast import And, Check, FieldRef, ListValue, MacroRef, Not, Or, StrValue, Transformer
from ruleengine.condition.parser import ConditionSyntaxError, parse_condition, unescape


def test_precedence_not_binds_tighter_than_and_than_or() -> None:
    e = parse_condition("a or b and not c")
    assert isinstance(e, Or)
    assert isinstance(e.children[0], MacroRef)
    right = e.children[1]
    assert isinstance(right, And) and isinstance(right.children[1], Not)


def test_and_or_are_n_ary() -> None:
    e = parse_condition("a and b and c")
    assert isinstance(e, And) and len(e.children) == 3


def test_not_paren_and_double_not() -> None:
    e = parse_condition("not(a)")
    assert isinstance(e, Not) and isinstance(e.child, MacroRef)
    assert isinstance(parse_condition("not not a"), MacroRef)
    assert isinstance(parse_condition("a and(b)"), And)
    assert isinstance(parse_condition("a or(b)"), Or)


def test_keywords_need_blank_or_paren() -> None:
    with pytest.raises(ConditionSyntaxError, match="expected blank or '\\(' after 'and'"):
        parse_condition("a andb")
    with pytest.raises(ConditionSyntaxError, match="after 'or'"):
        parse_condition("a orb")
    # a word starting with "not" is a macro name, not a negation
    assert parse_condition("nothing") == MacroRef("nothing", 0)


@pytest.mark.parametrize("op", ["=", "==", "!=", "<", "<=", ">", ">="])
def test_symbol_operators_need_no_blank(op: str) -> None:
    e = parse_condition(f"fd.num{op}3")
    assert isinstance(e, Check) and e.op == op and e.value == StrValue("3", len(f"fd.num{op}"))


@pytest.mark.parametrize(
    "op", ["contains", "icontains", "bcontains", "startswith", "bstartswith", "endswith", "glob", "iglob", "regex"]
)
def test_word_operators(op: str) -> None:
    e = parse_condition(f"proc.name {op} abc")
    assert isinstance(e, Check) and e.op == op
    with pytest.raises(ConditionSyntaxError, match="expected a valid check operator"):
        parse_condition(f'proc.name {op}"abc"')


@pytest.mark.parametrize("op", ["in", "intersects", "pmatch"])
def test_list_operators_without_blank(op: str) -> None:
    e = parse_condition(f"evt.type {op}(open, 'a b', \"c\")")
    assert isinstance(e, Check) and e.op == op
    assert e.value == ListValue(("open", "a b", "c"), len(f"evt.type {op}"))


def test_empty_list_and_identifier_value() -> None:
    e = parse_condition("proc.name in ()")
    assert isinstance(e, Check) and isinstance(e.value, ListValue) and e.value.items == ()
    e = parse_condition("proc.name in shells")
    assert isinstance(e, Check) and e.value == StrValue("shells", 13)


def test_exists() -> None:
    e = parse_condition("proc.name exists and fd.name exists")
    assert isinstance(e, And) and all(isinstance(c, Check) and c.op == "exists" for c in e.children)


def test_field_arguments() -> None:
    e = parse_condition("proc.aname[2]=sshd")
    assert isinstance(e, Check) and e.lhs == FieldRef("proc.aname", "2", 0)
    e = parse_condition("proc.env[HOME] = /root")
    assert isinstance(e, Check) and isinstance(e.lhs, FieldRef) and e.lhs.arg == "HOME"
    e = parse_condition('jevt.value["/a b"] exists')
    assert isinstance(e, Check) and isinstance(e.lhs, FieldRef) and e.lhs.arg == "/a b"
    with pytest.raises(ConditionSyntaxError, match="expected a ']' token"):
        parse_condition("proc.aname[2 = x")


def test_dotted_word_is_field_bare_word_is_macro() -> None:
    assert isinstance(parse_condition("evt.arg.flags contains O_RDONLY"), Check)
    with pytest.raises(ConditionSyntaxError, match="unexpected token after 'spawned_process'"):
        parse_condition("spawned_process = 1")


def test_bare_value_stops_at_delimiters() -> None:
    e = parse_condition("proc.name=foo and fd.name=bar")
    assert isinstance(e, And)
    with pytest.raises(ConditionSyntaxError, match="unexpected token after 'a'"):
        parse_condition("proc.name = a=b")


def test_quoted_values_and_escapes() -> None:
    e = parse_condition(r'proc.name = "a \"q\" \x41\n"')
    assert isinstance(e, Check) and e.value == StrValue('a "q" A\n', 12)
    e = parse_condition(r"proc.name = 'it\'s'")
    assert isinstance(e, Check) and isinstance(e.value, StrValue) and e.value.text == "it's"
    assert unescape(r'"a\ b"') == "a\\b"
    assert unescape(r'"\/\t\b\f\r"') == "/\t\b\f\r"
    with pytest.raises(ValueError, match="unsupported string escape"):
        unescape(r'"\q"')
    with pytest.raises(ValueError, match="invalid"):
        unescape(r"""'\"'""")
    with pytest.raises(ConditionSyntaxError, match="unsupported string escape sequence"):
        parse_condition(r'proc.name = "\q"')


def test_numbers_for_numeric_operators() -> None:
    for num in ("0x1F", "-3", "+4", "1.5", "2e+10"):
        e = parse_condition(f"fd.num > {num}")
        assert isinstance(e, Check) and isinstance(e.value, StrValue) and e.value.text == num
    with pytest.raises(ConditionSyntaxError, match="expected a number value"):
        parse_condition("fd.num > abc")


def test_transformers_and_val() -> None:
    e = parse_condition("tolower(basename(proc.exe)) = bash")
    assert isinstance(e, Check) and isinstance(e.lhs, Transformer) and e.lhs.name == "tolower"
    inner = e.lhs.args[0]
    assert isinstance(inner, Transformer) and inner.name == "basename"
    e = parse_condition("len(proc.name) > 3")
    assert isinstance(e, Check) and isinstance(e.lhs, Transformer) and e.lhs.name == "len"
    e = parse_condition("proc.name = val(proc.pname)")
    assert isinstance(e, Check) and isinstance(e.value, Transformer) and e.value.name == "val"
    for t in ("toupper", "b64"):
        assert isinstance(parse_condition(f"{t}(proc.name) = x"), Check)
    with pytest.raises(ConditionSyntaxError, match="closing the transformer"):
        parse_condition("tolower(proc.name = x")


def test_modifiers() -> None:
    e = parse_condition("proc.name startswith anyof (py, node)")
    assert isinstance(e, Check) and e.modifier == "anyof" and isinstance(e.value, ListValue)
    e = parse_condition("proc.name = oneof")
    assert isinstance(e, Check) and e.modifier is None and e.value == StrValue("oneof", 12)
    e = parse_condition("proc.name = allof and a")
    assert isinstance(e, And)


@pytest.mark.parametrize(
    ("text", "message", "pos"),
    [
        ("", "filter input string is empty", 0),
        ("proc.name", "expected a valid check operator", 9),
        ("(a", "expected a ')' token", 2),
        ("a b", "unexpected token after 'a', expecting 'or', 'and'", 2),
        ("=x", "expected a '(' token, a field check, or an identifier", 0),
        ("proc.name in (a,", "expected a string value", 16),
    ],
)
def test_errors_carry_positions(text: str, message: str, pos: int) -> None:
    with pytest.raises(ConditionSyntaxError) as info:
        parse_condition(text)
    assert message in info.value.message
    assert info.value.pos == pos


def test_depth_limit() -> None:
    deep = "(" * 1200 + "a" + ")" * 1200
    with pytest.raises(ConditionSyntaxError, match="exceeded max depth limit of 1000"):
        parse_condition(deep)
    ok = "(" * 150 + "a" + ")" * 150
    assert parse_condition(ok) == MacroRef("a", 150)
