# SPDX-License-Identifier: Apache-2.0
"""Load errors and warnings carry Falco's exact text (its test suites compare them), beside Lanner's location."""

from __future__ import annotations

import pytest

from lanner.cli import main

from .helpers import load

RULE = "- rule: r\n  desc: d\n  condition: evt.type=open\n  output: o\n  priority: INFO\n"
EXC = RULE + "  exceptions:\n    - name: e\n"


# The rest of what rule_loader_reader.cpp, rule_loader_collector.cpp and rule_loader_compiler.cpp can say about a
# rules file (falco 0.44, engine 0.63.0), each with the input that makes Falco say it.
@pytest.mark.parametrize(
    ("text", "code", "message", "line"),
    [
        (
            "- rule: r\n  desc: d\n  condition: [a]\n  output: o\n  priority: INFO\n",
            "LOAD_ERR_YAML_VALIDATE",
            "Value is not a scalar value",
            3,
        ),
        ("- macro: m\n  condition: ''\n", "LOAD_ERR_YAML_VALIDATE", "Value must be non-empty", 2),
        (RULE + "  tags: [a, [b]]\n", "LOAD_ERR_YAML_VALIDATE", "sequence value is not scalar", 6),
        (RULE + "  exceptions: {a: b}\n", "LOAD_ERR_YAML_VALIDATE", "Rule exceptions must be a sequence", 6),
        (EXC.replace("- name: e", "- just a string"), "LOAD_ERR_YAML_VALIDATE", "Rule exception must be a mapping", 7),
        (
            EXC + "      fields: [proc.name]\n      values: a\n",
            "LOAD_ERR_YAML_VALIDATE",
            "Rule exception values must be a sequence",
            9,
        ),
        (
            "- required_plugin_versions:\n  - name: p\n    version: 1.0.0\n    alternatives: x\n",
            "LOAD_ERR_YAML_VALIDATE",
            "Value of plugin version alternatives must be a sequence",
            2,
        ),
        (
            "- required_plugin_versions:\n  - name: p\n    version: 1.0.0\n    alternatives: [x]\n",
            "LOAD_ERR_YAML_VALIDATE",
            "Plugin version alternative must be a mapping",
            4,
        ),
        (
            "- required_plugin_versions:\n  - name: p\n    version: 1.0.0\n    alternatives:\n"
            "      - name: p\n        version: 1.0.0\n",
            "LOAD_ERR_VALIDATE",
            "Defined multiple alternative version requirements for plugin 'p'",
            2,
        ),
        (
            "- required_plugin_versions: [{name: a, version: x}]\n",
            "LOAD_ERR_VALIDATE",
            "Invalid required version 'x' for plugin 'a'",
            1,
        ),
        (
            EXC + "      fields: proc.name\n      comps: in\n      values: [[a]]\n",
            "LOAD_ERR_VALIDATE",
            "Expected values array to contain a list of strings",
            1,
        ),
        (
            EXC + "      fields: [proc.name]\n      values: [[a]]\n- rule: r\n  exceptions:\n    - name: e\n"
            "      fields: [proc.name]\n      values: [[b]]\n  override: {exceptions: append}\n",
            "LOAD_ERR_VALIDATE",
            "Can not append exception fields to existing exception, only values",
            12,
        ),
        (
            RULE + "- rule: r\n  override: {priority: replace}\n",
            "LOAD_ERR_YAML_VALIDATE",
            "An replace override for 'priority' was specified but 'priority' is not defined",
            6,
        ),
    ],
)
def test_more_errors_have_falcos_text(text: str, code: str, message: str, line: int) -> None:
    res = load(text)
    found = [(e.code, e.message, e.location.line) for e in res.errors]
    assert (code, message, line) in found, found


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        (
            EXC + "      fields: [proc.name]\n      values: [[a]]\n    - name: e\n      fields: [proc.name]\n"
            "      values: [[b]]\n",
            "LOAD_EXCEPTION_NAME_NOT_UNIQUE",
            "Multiple definitions of exception 'e' in the same rule",
        ),
        (
            EXC + "      fields: [proc.name]\n      values: [[a]]\n- rule: r\n  exceptions:\n    - name: e\n"
            "  override: {exceptions: append}\n",
            "LOAD_APPEND_NO_VALUES",
            "Overriding/appending exception with no values",
        ),
        (
            "- list: 'bad name!'\n  items: [a]\n",
            "LOAD_INVALID_LIST_NAME",
            "List has an invalid name. List names should match a regular expression: ([^()\"'[:space:]=,]+)",
        ),
        (
            "- macro: 'bad name!'\n  condition: evt.type=open\n",
            "LOAD_INVALID_MACRO_NAME",
            "Macro has an invalid name. Macro names should match a regular expression: ([a-zA-Z]+[a-zA-Z0-9_]*)",
        ),
        (
            "- rule: r\n  desc: d\n  condition: evt.type=open\n  output: o %container.info\n  priority: INFO\n",
            "LOAD_DEPRECATED_ITEM",
            "%container.info is deprecated and no more useful, and will be dropped by Falco 1.0.0. The container "
            "plugin will automatically add required fields to the output message.",
        ),
        (
            "- rule: r\n  desc: d\n  condition: evt.type=open and evt.latency > 0\n  output: o\n  priority: INFO\n",
            "LOAD_DEPRECATED_ITEM",
            "field is not available due to the drop of enter events.",
        ),
        (
            "- rule: r\n  desc: d\n  condition: evt.type=open\n  output: o %evt.dir\n  priority: INFO\n",
            "LOAD_DEPRECATED_ITEM",
            "usage of deprecated field 'evt.dir' has been detected in the rule output",
        ),
        # Falco gives this one no message: its code's description is the explanation
        (
            "- rule: r\n  desc: d\n  condition: ka.verb = <NA>\n  output: o\n  priority: INFO\n  source: k8s_audit\n",
            "LOAD_UNSAFE_NA_CHECK",
            "",
        ),
    ],
)
def test_more_warnings_have_falcos_text(text: str, code: str, message: str) -> None:
    res = load(text)
    assert (code, message) in [(w.code, w.message) for w in res.warnings], res.warnings


@pytest.mark.parametrize(
    ("text", "code", "message", "line"),
    [
        # deprecated `append: true` with nothing to append to: the wording of the Falco versions that used the key
        (
            "- macro: some_macro\n  condition: foo\n  append: true\n",
            "LOAD_ERR_VALIDATE",
            "Macro has 'append' key but no macro by that name already exists",
            1,
        ),
        (
            "- list: l\n  items: [a]\n  append: true\n",
            "LOAD_ERR_VALIDATE",
            "List has 'append' key but no list by that name already exists",
            1,
        ),
        (
            "- rule: r\n  condition: evt.type=open\n  append: true\n",
            "LOAD_ERR_VALIDATE",
            "Rule has 'append' key but no rule by that name already exists",
            1,
        ),
        # the same through `override`: today's wording
        (
            "- macro: m\n  condition: foo\n  override: {condition: append}\n",
            "LOAD_ERR_VALIDATE",
            "Macro uses 'append' or 'override.condition: append' but no macro by that name already exists",
            1,
        ),
        (
            "- list: l\n  items: [a]\n  override: {items: append}\n",
            "LOAD_ERR_VALIDATE",
            "List uses 'append' or 'override.items: append' but no list by that name already exists",
            1,
        ),
        (
            "- rule: r\n  condition: x\n  override: {condition: append}\n",
            "LOAD_ERR_VALIDATE",
            "Rule uses 'append' or 'override.<key>: append' but no rule by that name already exists",
            1,
        ),
        (
            "- rule: r\n  priority: INFO\n  override: {priority: replace}\n",
            "LOAD_ERR_VALIDATE",
            "An 'override.<key>: replace' to a rule was requested but no rule by that name already exists",
            1,
        ),
        # a condition that does not parse once appended
        (
            "- macro: some_macro\n  condition: evt.type=execve\n- macro: some_macro\n  condition: foo\n  append: true\n"
            "- rule: x\n  desc: d\n  condition: some_macro\n  output: o\n  priority: INFO\n",
            "LOAD_ERR_COMPILE_CONDITION",
            "unexpected token after 'execve', expecting 'or', 'and'",
            4,
        ),
        (
            RULE + "- rule: r\n  condition: bar\n  append: true\n",
            "LOAD_ERR_COMPILE_CONDITION",
            "unexpected token after 'open', expecting 'or', 'and'",
            7,
        ),
        (
            '- rule: r\n  desc: d\n  condition: evt.type=open\n  output: "An open was seen %not_a_real_field"\n'
            "  priority: WARNING\n",
            "LOAD_ERR_COMPILE_OUTPUT",
            "invalid formatting token not_a_real_field",
            4,
        ),
        (
            "- required_engine_version: 9999999\n",
            "LOAD_ERR_VALIDATE",
            "Rules require engine version 9999999, but engine version is 0.63.0",
            1,
        ),
        (
            "- required_engine_version: not-a-number\n",
            "LOAD_ERR_YAML_VALIDATE",
            "Unable to parse engine version 'not-a-number' as a semver string. Expected \"x.y.z\" semver format.",
            1,
        ),
        (
            EXC + "      fields: [not.exist]\n      values: [[x]]\n",
            "LOAD_ERR_VALIDATE",
            "'not.exist' is not a supported filter field",
            1,
        ),
        (
            EXC + "      fields: [proc.name]\n      comps: [no-comp]\n      values: [[x]]\n",
            "LOAD_ERR_VALIDATE",
            "'no-comp' is not a supported comparison operator",
            7,
        ),
        (
            EXC + "      fields: [proc.name, fd.name]\n      comps: [=]\n",
            "LOAD_ERR_VALIDATE",
            "Fields and comps lists must have equal length",
            7,
        ),
        (
            EXC + "      fields: [proc.name, fd.name]\n      values: [[x]]\n",
            "LOAD_ERR_VALIDATE",
            "Fields and values lists must have equal length",
            1,
        ),
        (
            EXC + "      fields: proc.name\n      comps: [in]\n",
            "LOAD_ERR_VALIDATE",
            "Fields and comps must both be strings",
            7,
        ),
        (
            EXC + "      fields: proc.name\n      comps: '='\n",
            "LOAD_ERR_VALIDATE",
            "When fields is a single value, comps must be one of (in, pmatch, intersects) or a modifier operator "
            "(e.g. startswith oneof)",
            7,
        ),
        (
            RULE + "- rule: r\n  exceptions:\n    - name: new\n      values: [[x]]\n  append: true\n",
            "LOAD_ERR_VALIDATE",
            "Rule exception must have fields property with a list of fields",
            8,
        ),
        (
            RULE + "- rule: r\n  exceptions:\n    - name: new\n      fields: [proc.name]\n  append: true\n",
            "LOAD_ERR_VALIDATE",
            "Rule exception must have values property with a list of values",
            8,
        ),
        (
            EXC + "      fields: [proc.name]\n      values: [[x]]\n- rule: r\n  exceptions:\n    - name: e\n"
            "      comps: [=]\n      values: [[y]]\n  append: true\n",
            "LOAD_ERR_VALIDATE",
            "Can not append exception comps to existing exception, only values",
            12,
        ),
        (EXC + "      values: [[x]]\n", "LOAD_ERR_YAML_VALIDATE", "Item has no mapping for key 'fields'", 7),
        (
            RULE + "- rule: r\n  append: true\n",
            "LOAD_ERR_YAML_VALIDATE",
            "Appended rule must have exceptions or condition property",
            6,
        ),
        ("this : is : not : yaml", "LOAD_ERR_YAML_PARSE", "yaml-cpp: error at line 1, column 11: illegal map value", 1),
        (
            "- rule: r\n  desc: [a, b\n",
            "LOAD_ERR_YAML_PARSE",
            "yaml-cpp: error at line 3, column 1: end of sequence flow not found",
            3,
        ),
        (RULE + "  enabled: notabool\n", "LOAD_ERR_YAML_VALIDATE", "Can't decode YAML scalar value", 6),
        ("This is not yaml", "LOAD_ERR_YAML_VALIDATE", "Rules content is not yaml", 1),
        ("foo: bar", "LOAD_ERR_YAML_VALIDATE", "Rules content is not yaml array of objects", 1),
        (
            "- foo\n",
            "LOAD_ERR_YAML_VALIDATE",
            "Unexpected element type. Each element should be a yaml associative array.",
            1,
        ),
        ("- list:\n  items: []\n", "LOAD_ERR_YAML_VALIDATE", "Mapping for key 'list' is empty", 1),
        ("- macro:\n  condition: x\n", "LOAD_ERR_YAML_VALIDATE", "Mapping for key 'macro' is empty", 1),
        (
            "- rule: no output rule\n  desc: d\n  condition: evt.type=fork\n  priority: INFO\n",
            "LOAD_ERR_YAML_VALIDATE",
            "Item has no mapping for key 'output'",
            1,
        ),
        (
            "- macro: m\n  condition: evt.type=open\n- rule: r\n  desc: d\n  condition: bar\n  output: o\n"
            "  priority: INFO\n",
            "LOAD_ERR_COMPILE_CONDITION",
            "Undefined macro 'bar' used in filter.",
            5,
        ),
        (
            "- rule: r\n  desc: d\n  condition: evt.type=some_invalid_event\n  output: o\n  priority: INFO\n",
            "LOAD_ERR_COMPILE_CONDITION",
            "unknown event type some_invalid_event",
            3,
        ),
        (
            "- rule: r\n  desc: d\n  condition: evt.type=open and proc.nobody=x\n  output: o\n  priority: INFO\n",
            "LOAD_ERR_COMPILE_CONDITION",
            "filter_check called with nonexistent field proc.nobody",
            3,
        ),
        (
            "- rule: r\n  desc: d\n  condition: fd.name regex '(a'\n  output: o\n  priority: INFO\n",
            "LOAD_ERR_COMPILE_CONDITION",
            "invalid regex pattern: missing ): (a",
            3,
        ),
    ],
)
def test_errors_have_falcos_text(text: str, code: str, message: str, line: int) -> None:
    res = load(text)
    found = [(e.code, e.message, e.location.line) for e in res.errors]
    assert (code, message, line) in found, found


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        (
            "- macro: m\n  condition: evt.type=open\n",
            "LOAD_UNUSED_MACRO",
            "Macro not referred to by any other rule/macro",
        ),
        ("- list: l\n  items: [a]\n", "LOAD_UNUSED_LIST", "List not referred to by any other rule/macro"),
        (
            "- rule: r\n  desc: d\n  condition: proc.name=x\n  output: o\n  priority: INFO\n",
            "LOAD_NO_EVTTYPE",
            "Rule matches too many evt.type values. This has a significant performance penalty.",
        ),
        (
            "- rule: r\n  desc: d\n  condition: evt.type=open\n  output: o\n  priority: INFO\n  source: mysource\n",
            "LOAD_UNKNOWN_SOURCE",
            "Unknown source mysource, skipping",
        ),
        ("- foo: bar\n", "LOAD_UNKNOWN_ITEM", "Unknown top level item"),
        (RULE + "  colour: red\n", "LOAD_UNKNOWN_KEY", "Unknown key 'colour'. The key will be ignored."),
        (
            RULE + "- rule: r\n  condition: and proc.name=x\n  append: true\n",
            "LOAD_DEPRECATED_ITEM",
            "'append' key is deprecated. Add an 'append' entry (e.g. 'condition: append') under 'override' instead.",
        ),
        (
            RULE + "- rule: r\n  enabled: false\n",
            "LOAD_DEPRECATED_ITEM",
            "The standalone 'enabled' key usage is deprecated. The correct approach requires also a 'replace' entry "
            "under the 'override' key (i.e. 'enabled: replace').",
        ),
    ],
)
def test_warnings_have_falcos_text(text: str, code: str, message: str) -> None:
    res = load(text)
    assert (code, message) in [(w.code, w.message) for w in res.warnings], res.warnings


def test_disabling_and_enabling_together_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    for flags in (["-D", "x", "-t", "y"], ["-T", "x", "-t", "y"]):
        with pytest.raises(SystemExit) as info:
            main(["rules", "list", *flags])
        assert "You can not specify both disabled (-D/-T) and enabled (-t) rules" in str(info.value.code)
