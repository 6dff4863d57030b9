# SPDX-License-Identifier: Apache-2.0
"""Reading rules files: item kinds, scalars as written, located errors and warnings, overrides."""

from __future__ import annotations

import textwrap

from ruleengine.loader.reader import Reader
from ruleengine.priority import Priority

from .helpers import errors, load, warnings

RULE = """
- rule: r
  desc: d
  condition: evt.type = open
  output: o
  priority: WARNING
"""


def read(text: str) -> Reader:
    r = Reader(frozenset({"syscall", "k8s_audit"}))
    r.read_file("f.yaml", textwrap.dedent(text))
    return r


def test_scalars_kept_as_written() -> None:
    r = read("""
        - list: l
          items: [=, in, on, 1, "02", yes, ~x]
        """)
    assert r.col.lists["l"].items == ["=", "in", "on", "1", "02", "yes", "~x"]


def test_multi_document_and_null_items() -> None:
    r = read("""
        - list: a
          items: [x]
        -
        ---
        - list: b
          items: [y]
        ---
        """)
    assert list(r.col.lists) == ["a", "b"]
    assert not r.messages


def test_yaml_parse_error_is_located() -> None:
    res = load("- list: a\n  items: [x\n- list: b\n")
    assert len(res.errors) == 1
    e = res.errors[0]
    assert e.code == "LOAD_ERR_YAML_PARSE" and e.location.file == "rules.yaml" and e.location.line >= 2


def test_not_a_sequence() -> None:
    assert errors("a: b\n") == ["Rules content is not yaml array of objects"]
    assert errors("- 1\n") == ["Unexpected element type. Each element should be a yaml associative array."]


def test_every_error_in_a_file_is_reported_with_location() -> None:
    res = load("""\
        - rule: a
          desc: d
          condition: evt.type = open
          priority: WARNING
        - macro: m
        - rule: b
          desc: d
          condition: evt.type = open
          output: o
          priority: BOGUS
        """)
    msgs = [(e.message, e.location.line, e.location.col) for e in res.errors]
    assert ("Item has no mapping for key 'output'", 1, 3) in msgs
    assert ("Item has no mapping for key 'condition'", 5, 3) in msgs
    assert ("Invalid priority", 10, 13) in msgs
    assert res.engine is None


def test_required_keys_and_empty_values() -> None:
    assert errors("- list: l\n") == ["Item has no mapping for key 'items'"]
    assert errors("- list:\n  items: []\n") == ["Mapping for key 'list' is empty"]
    assert errors("- macro: m\n  condition: ''\n") == ["Value must be non-empty"]
    assert errors("- list: l\n  items: a\n") == ["Value is not a sequence"]


def test_unknown_item_and_key_warnings() -> None:
    w = warnings("- foo: bar\n- list: l\n  items: [a]\n  colour: red\n")
    assert ("LOAD_UNKNOWN_ITEM", "Unknown top level item") in w
    assert ("LOAD_UNKNOWN_KEY", "Unknown key 'colour'. The key will be ignored.") in w


def test_required_engine_version() -> None:
    assert errors("- required_engine_version: 13\n") == []
    assert errors("- required_engine_version: 0.57.0\n") == []
    assert errors("- required_engine_version: abc\n") == [
        "Unable to parse engine version 'abc' as a semver string. Expected \"x.y.z\" semver format."
    ]
    assert errors("- required_engine_version: 0.99.0\n") == [
        "Rules require engine version 0.99.0, but engine version is 0.63.0"
    ]
    assert errors("- required_engine_version: 1.0.0\n") == [
        "Rules require engine version 1.0.0, but engine version is 0.63.0"
    ]


def test_required_plugin_versions() -> None:
    ok = """
    - required_plugin_versions:
        - name: k8saudit
          version: 0.7.0
          alternatives:
            - name: k8saudit-eks
              version: 0.2.0
    """
    assert errors(ok) == []
    assert errors("- required_plugin_versions: x\n") == ["Value of required_plugin_versions must be a sequence"]
    assert errors("- required_plugin_versions: [x]\n") == ["Plugin version must be a mapping"]
    assert errors("- required_plugin_versions: [{name: a, version: x}]\n") == [
        "Invalid required version 'x' for plugin 'a'"
    ]
    assert errors("- required_plugin_versions: [{name: nosuch, version: 1.0.0}]\n") == [
        "Plugin 'nosuch' is required but not loaded"
    ]
    assert errors("- required_plugin_versions: [{name: json, version: 9.0.0}]\n") == [
        "Plugin 'json' version '0.7.0' is not compatible with required plugin version '9.0.0'"
    ]


def test_invalid_names_warn() -> None:
    w = warnings("- list: 'a b'\n  items: []\n- macro: m.x\n  condition: evt.num=0\n")
    codes = [c for c, _ in w]
    assert "LOAD_INVALID_LIST_NAME" in codes and "LOAD_INVALID_MACRO_NAME" in codes


def test_rule_defaults_and_types() -> None:
    r = read(RULE + "  tags: [b, a]\n  enabled: false\n  warn_evttypes: no\n  capture_duration: 5\n")
    info = r.col.rules["r"]
    assert info.priority is Priority.WARNING and info.source == "syscall" and not info.enabled
    assert info.tags == {"a", "b"} and not info.warn_evttypes and info.capture_duration == 5
    assert errors(RULE + "  enabled: maybe\n") == ["Can't decode YAML scalar value"]


def test_output_trimmed_and_priority_case_insensitive() -> None:
    r = read(RULE.replace("output: o", "output: '  o  '").replace("WARNING", "info"))
    assert r.col.rules["r"].output == "o" and r.col.rules["r"].priority is Priority.INFORMATIONAL


def test_redefinition_replaces_in_place() -> None:
    r = read(RULE + RULE.replace("rule: r", "rule: s") + RULE.replace("WARNING", "ERROR"))
    assert list(r.col.rules) == ["r", "s"]
    assert r.col.rules["r"].priority is Priority.ERROR


def test_redefinition_with_other_source_fails() -> None:
    assert "Rule has been re-defined with a different source" in errors(RULE + RULE + "  source: k8s_audit\n")


def test_unknown_source_skipped_with_warning() -> None:
    res = load(RULE + "  source: aws_cloudtrail\n")
    assert ("LOAD_UNKNOWN_SOURCE", "Unknown source aws_cloudtrail, skipping") in [
        (w.code, w.message) for w in res.warnings
    ]
    assert res.engine is not None and res.engine.rules == ()


def test_deprecated_append_true() -> None:
    text = RULE + "- rule: r\n  condition: and proc.name = x\n  append: true\n"
    r = read(text)
    assert r.col.rules["r"].cond.text == "evt.type = open and proc.name = x"
    assert any(m.code == "LOAD_DEPRECATED_ITEM" and "'append' key is deprecated" in m.message for m in r.messages)
    assert "Appended rule must have exceptions or condition property" in errors(
        RULE + "- rule: r\n  append: true\n  output: x\n"
    )
    text = "- list: l\n  items: [a]\n- list: l\n  items: [b]\n  append: true\n"
    assert read(text).col.lists["l"].items == ["a", "b"]
    assert "List has 'append' key but no list by that name already exists" in errors(
        "- list: l\n  items: [b]\n  append: true\n"
    )
    assert "List uses 'append' or 'override.items: append' but no list by that name already exists" in errors(
        "- list: l\n  items: [b]\n  override: {items: append}\n"
    )
    assert (
        "Keys 'override' and 'append: true' cannot be used together"
        in errors("- list: l\n  items: [a]\n- list: l\n  items: [b]\n  append: true\n  override: {items: append}\n")[0]
    )


def test_override_append_every_key() -> None:
    text = (
        RULE
        + "  tags: [a]\n"
        + """
- rule: r
  condition: and proc.name = x
  output: more
  desc: extra
  tags: [b]
  override: {condition: append, output: append, desc: append, tags: append}
"""
    )
    info = read(text).col.rules["r"]
    assert info.cond.text == "evt.type = open and proc.name = x"
    assert info.output == "o more" and info.desc == "d extra" and info.tags == {"a", "b"}


def test_override_replace_every_key() -> None:
    text = (
        RULE
        + """
- rule: r
  condition: evt.type = close
  output: new
  desc: nd
  priority: ERROR
  tags: [t]
  enabled: false
  warn_evttypes: false
  skip-if-unknown-filter: true
  capture: true
  capture_duration: 7
  exceptions: []
  override: {condition: replace, output: replace, desc: replace, priority: replace, tags: replace,
             enabled: replace, warn_evttypes: replace, skip-if-unknown-filter: replace, capture: replace,
             capture_duration: replace, exceptions: replace}
"""
    )
    r = read(text)
    assert not [m for m in r.messages if m.is_error]
    info = r.col.rules["r"]
    assert (info.cond.text, info.output, info.desc, info.priority) == ("evt.type = close", "new", "nd", Priority.ERROR)
    assert info.tags == {"t"} and not info.enabled and not info.warn_evttypes and info.skip_if_unknown_filter
    assert info.capture and info.capture_duration == 7


def test_override_macro_and_list() -> None:
    text = """
- list: l
  items: [a]
- list: l
  items: [b]
  override: {items: append}
- list: k
  items: [a]
- list: k
  items: [c]
  override: {items: replace}
- macro: m
  condition: evt.num=1
- macro: m
  condition: or evt.num=2
  override: {condition: append}
"""
    r = read(text)
    assert r.col.lists["l"].items == ["a", "b"] and r.col.lists["k"].items == ["c"]
    assert r.col.macros["m"].cond.text == "evt.num=1 or evt.num=2"


def test_override_errors() -> None:
    assert "Key 'priority' cannot be appended to, use 'replace' instead" in errors(
        RULE + "- rule: r\n  priority: ERROR\n  override: {priority: append}\n"
    )
    assert "Key 'source' cannot be replaced" in errors(RULE + "- rule: r\n  source: x\n  override: {source: replace}\n")
    assert "Invalid override operation for key 'desc': 'merge'. Allowed values are: append replace " in errors(
        RULE + "- rule: r\n  desc: x\n  override: {desc: merge}\n"
    )
    assert "An append override for 'output' was specified but 'output' is not defined" in errors(
        RULE + "- rule: r\n  override: {output: append}\n"
    )
    assert "Unexpected key 'desc': no corresponding entry under 'override' is defined." in errors(
        RULE + "- rule: r\n  output: x\n  desc: y\n  override: {output: append}\n"
    )
    assert "An 'override.<key>: replace' to a rule was requested but no rule by that name already exists" in errors(
        "- rule: q\n  priority: ERROR\n  override: {priority: replace}\n"
    )
    assert "Rule uses 'append' or 'override.<key>: append' but no rule by that name already exists" in errors(
        "- rule: q\n  desc: x\n  override: {desc: append}\n"
    )


def test_standalone_enabled() -> None:
    r = read(RULE + "- rule: r\n  enabled: false\n")
    assert not r.col.rules["r"].enabled
    assert any("standalone 'enabled' key usage is deprecated" in m.message for m in r.messages)
    assert "Rule has 'enabled' key but no rule by that name already exists" in errors("- rule: q\n  enabled: false\n")
    assert "Item has no mapping for key 'enabled'" in errors("- rule: q\n  tags: [a]\n")


def test_visibility_bookkeeping() -> None:
    r = read("- list: a\n  items: [x]\n- list: b\n  items: [y]\n- list: a\n  items: [z]\n  append: true\n")
    a, b = r.col.lists["a"], r.col.lists["b"]
    assert a.index < b.index < a.visibility
