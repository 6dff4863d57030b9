# SPDX-License-Identifier: Apache-2.0
"""Lists, macros and exceptions resolved the way Falco's rule compiler does it."""

from __future__ import annotations

from ruleengine.loader.messages import Location
from ruleengine.loader.model import ExceptionEntry, ExceptionInfo
from ruleengine.resolve import MappedText, build_exceptions, quote_item, resolve_list

from .helpers import ctx, load, rule_with

LOC = Location("x", 1, 1)


def subst(text: str, name: str, items: list[str]) -> str:
    mt = MappedText.of(text)
    resolve_list(mt, name, items)
    assert len(mt.origin) == len(mt.text)
    return mt.text


def test_list_substitution_is_textual_and_delimited() -> None:
    assert subst("proc.name in (shells)", "shells", ["sh", "bash"]) == "proc.name in ( sh, bash )"
    assert subst("proc.name in (shells, ls)", "shells", ["sh"]) == "proc.name in ( sh , ls)"
    assert subst("proc.name in (myshells)", "shells", ["sh"]) == "proc.name in (myshells)"
    assert subst("proc.name=shells", "shells", ["sh"]) == "proc.name= sh "


def test_empty_list_eats_a_comma() -> None:
    assert subst("proc.name in (a, empty)", "empty", []) == "proc.name in (a  )"
    assert subst("proc.name in (empty, a)", "empty", []) == "proc.name in (   a)"


def test_items_with_spaces_are_quoted() -> None:
    assert quote_item("a b") == '"a b"'
    assert quote_item("'a b'") == "'a b'"
    assert quote_item("ab") == "ab"


def test_lists_inside_lists_and_nesting() -> None:
    text = """
- list: base
  items: [sh, bash]
- list: more
  items: [base, zsh]
""" + rule_with("proc.name in (more)")
    res = load(text)
    assert res.engine is not None
    assert res.engine.process(ctx(evt__type="execve", proc__name="bash"))
    assert res.engine.process(ctx(evt__type="execve", proc__name="zsh"))
    assert not res.engine.process(ctx(evt__type="execve", proc__name="base"))


def test_list_referenced_before_definition_in_list_is_literal_but_text_substitution_still_applies() -> None:
    text = """
- list: more
  items: [base, zsh]
- list: base
  items: [sh]
""" + rule_with("proc.name in (more)")
    res = load(text)
    assert res.engine is not None
    # "base" stayed a literal item of "more", then the text pass for list "base" replaced it in the condition
    assert res.engine.process(ctx(evt__type="execve", proc__name="sh"))
    assert not res.engine.process(ctx(evt__type="execve", proc__name="base"))


def test_undefined_list_is_a_literal() -> None:
    res = load(rule_with("proc.name in (nosuchlist)"))
    assert res.engine is not None
    assert res.engine.process(ctx(evt__type="execve", proc__name="nosuchlist"))


def test_list_must_be_in_parentheses() -> None:
    res = load("- list: l\n  items: [a, b]\n" + rule_with("proc.name in l"))
    assert [e.code for e in res.errors] == ["LOAD_ERR_COMPILE_CONDITION"]


def test_macro_visibility_order() -> None:
    later = """
- macro: a
  condition: b
- macro: b
  condition: proc.name = x
""" + rule_with("a")
    res = load(later)
    assert [e.message for e in res.errors] == ["Undefined macro 'b' used in filter."]
    assert res.errors[0].item_name == "a"
    ok = """
- macro: b
  condition: proc.name = x
- macro: a
  condition: b
""" + rule_with("a")
    assert load(ok).ok


def test_rules_see_every_macro() -> None:
    res = load(rule_with("m") + "- macro: m\n  condition: proc.name = x\n")
    assert res.ok


def test_macro_redefined_later_keeps_slot_but_gains_visibility() -> None:
    text = """
- macro: a
  condition: proc.name = x
- macro: b
  condition: proc.name = y
- macro: a
  condition: b
""" + rule_with("a")
    res = load(text)
    assert res.ok
    assert res.engine is not None
    assert res.engine.process(ctx(evt__type="open", proc__name="y"))


def test_macro_loop_and_self_reference() -> None:
    res = load("- macro: a\n  condition: a\n" + rule_with("a"))
    assert "Undefined macro 'a' used in filter." in [e.message for e in res.errors]
    res = load(
        """
- macro: a
  condition: proc.name = x
- macro: b
  condition: a
- macro: a
  condition: b
"""
        + rule_with("a")
    )
    assert any("reference loop in macro" in e.message for e in res.errors)


def test_undefined_macro_in_rule_is_located() -> None:
    res = load(rule_with("proc.name = x and nosuch"))
    assert len(res.errors) == 1
    e = res.errors[0]
    assert e.message == "Undefined macro 'nosuch' used in filter."
    assert (e.location.line, e.location.col) == (3, 32)


def test_parse_error_location_through_list_substitution() -> None:
    text = "- list: l\n  items: [a, b]\n" + rule_with("proc.name in (l) and fd.name = =")
    res = load(text)
    e = res.errors[0]
    assert e.code == "LOAD_ERR_COMPILE_CONDITION"
    assert (e.location.line, e.location.col) == (5, 45)


def test_unused_macros_and_lists_warn() -> None:
    res = load("- list: l\n  items: [a]\n- macro: m\n  condition: proc.name = x\n" + rule_with("evt.type=open"))
    codes = sorted(w.code for w in res.warnings)
    assert codes == ["LOAD_UNUSED_LIST", "LOAD_UNUSED_MACRO"]
    msgs = {w.message for w in res.warnings}
    assert msgs == {"Macro not referred to by any other rule/macro", "List not referred to by any other rule/macro"}


def test_macro_used_only_by_unused_macro_counts_as_used() -> None:
    res = load("- macro: m\n  condition: proc.name = x\n- macro: n\n  condition: m\n" + rule_with("evt.type=open"))
    assert [(w.code, w.item_name) for w in res.warnings] == [("LOAD_UNUSED_MACRO", "n")]


def ex(name: str, fields: ExceptionEntry, comps: ExceptionEntry | None, values: list[ExceptionEntry]) -> ExceptionInfo:
    return ExceptionInfo(name, LOC, fields, comps, values)


def e(item: str) -> ExceptionEntry:
    return ExceptionEntry(item=item)


def el(*items: ExceptionEntry) -> ExceptionEntry:
    return ExceptionEntry(items=list(items))


def test_exception_text_list_form() -> None:
    info = ex(
        "x",
        el(e("proc.name"), e("fd.name")),
        el(e("="), e("startswith")),
        [el(e("apt"), e("/var/lib")), el(e("my app"), el(e("/a"), e("/b c")))],
    )
    mt, fields = build_exceptions("evt.type = open", [info])
    # Falco puts a blank before every field, so "and" is followed by two blanks
    assert mt.text == (
        "(evt.type = open) and not (( proc.name = apt and  fd.name startswith /var/lib) or "
        '( proc.name = "my app" and  fd.name startswith (/a, "/b c")))'
    )
    assert fields == {"proc.name", "fd.name"}
    assert len(mt.origin) == len(mt.text)


def test_exception_text_scalar_form_and_list_ops() -> None:
    info = ex("x", e("proc.name"), e("in"), [e("a"), e("b c")])
    mt, _ = build_exceptions("c", [info])
    assert mt.text == '(c) and not (proc.name in (a, "b c"))'
    info = ex("y", el(e("proc.name")), el(e("in")), [el(e("shells"))])
    mt, _ = build_exceptions("c", [info])
    assert mt.text == "(c) and not (( proc.name in (shells)))"
    info = ex("z", el(e("proc.name")), el(e("=")), [])
    assert build_exceptions("c", [info])[0].text == "(c)"


EXC_RULE = """
- list: trusted
  items: [apt, dpkg]
- rule: r
  desc: d
  condition: evt.type = open and fd.name startswith /etc
  output: o
  priority: WARNING
  exceptions:
    - name: by_proc
      fields: [proc.name, fd.name]
      comps: [=, startswith]
      values:
        - [vim, /etc/vim]
    - name: pkg
      fields: [proc.name]
      comps: [in]
      values: [[trusted]]
    - name: scalar
      fields: proc.pname
      values: [cron, 'my daemon']
"""


def test_exceptions_end_to_end() -> None:
    res = load(EXC_RULE)
    assert res.engine is not None, [x.format() for x in res.errors]
    eng = res.engine
    assert eng.process(ctx(evt__type="open", fd__name="/etc/passwd", proc__name="cat"))
    assert not eng.process(ctx(evt__type="open", fd__name="/etc/vim/vimrc", proc__name="vim"))
    assert eng.process(ctx(evt__type="open", fd__name="/etc/passwd", proc__name="vim"))
    assert not eng.process(ctx(evt__type="open", fd__name="/etc/passwd", proc__name="dpkg"))
    assert not eng.process(ctx(evt__type="open", fd__name="/etc/passwd", proc__name="x", proc__pname="my daemon"))
    assert eng.rules[0].exception_fields == ("fd.name", "proc.name", "proc.pname")


def test_exceptions_append_values_and_new_exception() -> None:
    text = (
        EXC_RULE
        + """
- rule: r
  exceptions:
    - name: by_proc
      values:
        - [nano, /etc/nanorc]
    - name: added
      fields: [proc.name]
      values: [[sed]]
  override: {exceptions: append}
"""
    )
    res = load(text)
    assert res.engine is not None, [x.format() for x in res.errors]
    eng = res.engine
    assert not eng.process(ctx(evt__type="open", fd__name="/etc/nanorc", proc__name="nano"))
    assert not eng.process(ctx(evt__type="open", fd__name="/etc/x", proc__name="sed"))
    assert [w.code for w in res.warnings] == []


def test_exception_errors_and_warnings() -> None:
    base = "- rule: r\n  desc: d\n  condition: evt.type=open\n  output: o\n  priority: INFO\n  exceptions:\n"
    res = load(base + "    - name: a\n      fields: [proc.name, fd.name]\n      comps: [=]\n")
    assert [x.message for x in res.errors] == ["Fields and comps lists must have equal length"]
    res = load(base + "    - name: a\n      fields: [proc.name]\n      comps: [like]\n")
    assert [x.message for x in res.errors] == ["'like' is not a supported comparison operator"]
    res = load(base + "    - name: a\n      fields: [proc.nmae]\n      values: [[x]]\n")
    assert [x.message for x in res.errors] == ["'proc.nmae' is not a supported filter field"]
    res = load(base + "    - name: a\n      fields: [proc.name]\n    - name: a\n      fields: [fd.name]\n")
    assert "LOAD_EXCEPTION_NAME_NOT_UNIQUE" in [w.code for w in res.warnings]
    res = load(
        base
        + "    - name: a\n      fields: [proc.name]\n      values: [[x]]\n"
        + "- rule: r\n  exceptions:\n    - name: a\n      fields: [fd.name]\n"
        "  override: {exceptions: append}\n"
    )
    assert "Can not append exception fields to existing exception, only values" in [x.message for x in res.errors]
    assert "LOAD_APPEND_NO_VALUES" in [w.code for w in res.warnings]
    res = load(base + "    - name: a\n      fields: proc.name\n      comps: '='\n")
    assert [x.message for x in res.errors] == [
        "When fields is a single value, comps must be one of (in, pmatch, intersects) or a modifier operator (e.g. "
        "startswith oneof)"
    ]


def test_exceptions_replace() -> None:
    text = EXC_RULE + "- rule: r\n  exceptions: []\n  override: {exceptions: replace}\n"
    res = load(text)
    assert res.engine is not None
    assert res.engine.process(ctx(evt__type="open", fd__name="/etc/vim/vimrc", proc__name="vim"))


def test_locations_inside_folded_and_literal_conditions() -> None:
    text = """\
- rule: r
  desc: d
  condition: >
    evt.type = open
    and proc.name in (a, b)
    and fd.name = = x
  output: o
  priority: INFO
- rule: q
  desc: d
  condition: |
    evt.type = open and
      proc.nmae = x
  output: o
  priority: INFO
"""
    res = load(text)
    got = [(e.item_name, e.location.line, e.location.col) for e in res.errors]
    assert got == [("r", 6, 19), ("q", 13, 7)]
    assert res.errors[1].snippet == "          proc.nmae = x\n          ^"
