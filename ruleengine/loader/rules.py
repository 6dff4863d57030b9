# SPDX-License-Identifier: Apache-2.0
"""The ``rule`` item: full definitions, enable-only items, deprecated ``append: true`` and ``override``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ruleengine.loader.messages import Location
from ruleengine.loader.model import CondText, ExceptionInfo, RuleInfo, RuleUpdate
from ruleengine.loader.reader import (
    ERROR_OVERRIDE_APPEND,
    RULE_APPENDABLE,
    RULE_REPLACEABLE,
    WARNING_APPEND,
    WARNING_ENABLED,
    Fields,
)
from ruleengine.loader.yamlnodes import loc
from ruleengine.priority import Priority

if TYPE_CHECKING:
    from ruleengine.loader.reader import Reader


def _priority(r: Reader, fields: Fields, where: Location) -> Priority:
    text = r._req(fields, "priority", where)
    try:
        return Priority.parse(text)
    except ValueError:
        raise r.error("Invalid priority", loc(r._src, fields["priority"][1])) from None


def _cond(r: Reader, fields: Fields, where: Location) -> CondText:
    r._req(fields, "condition", where)
    return CondText.from_node(r._src, fields["condition"][1])


def _tags(r: Reader, fields: Fields, where: Location) -> set[str] | None:
    seq = r._seq(fields, "tags", where, optional=True)
    return None if seq is None else set(seq)


def read_rule(r: Reader, name: str, fields: Fields, where: Location) -> None:
    """Read one rule item and apply it to the collector."""
    has_append = bool(r._bool(fields, "append", where))
    if has_append:
        r.warn("LOAD_DEPRECATED_ITEM", WARNING_APPEND, where)
    o_app, o_rep = r._overrides(fields, RULE_APPENDABLE, RULE_REPLACEABLE)
    if has_append and (o_app or o_rep):
        raise r.error(ERROR_OVERRIDE_APPEND, where)
    if o_app or o_rep:
        _read_overrides(r, name, fields, where, o_app, o_rep)
    elif has_append:
        upd = RuleUpdate(name, where)
        if "condition" in fields:
            upd.cond = _cond(r, fields, where)
        if "exceptions" in fields:
            upd.exceptions = r.read_exceptions(fields, True)
        if upd.cond is None and upd.exceptions is None:
            raise r.error("Appended rule must have exceptions or condition property", where)
        _append(r, upd, legacy=True)
    elif not any(k in fields for k in ("condition", "output", "desc", "priority")):
        enabled = r._bool(fields, "enabled", where, optional=False)
        r.warn("LOAD_DEPRECATED_ITEM", WARNING_ENABLED, where)
        prev = r.col.rules.get(name)
        if prev is None:
            raise r.error("Rule has 'enabled' key but no rule by that name already exists", where, "LOAD_ERR_VALIDATE")
        prev.enabled = bool(enabled)
    else:
        _define(r, name, fields, where)


def _define(r: Reader, name: str, fields: Fields, where: Location) -> None:
    cond = _cond(r, fields, where)
    output = r._req(fields, "output", where).strip()
    output_loc = loc(r._src, fields["output"][1])
    desc = r._req(fields, "desc", where)
    prio = _priority(r, fields, where)
    info = RuleInfo(name, cond, output, output_loc, desc, prio, where)
    raw_output = str(fields["output"][1].value)
    if raw_output.strip() == raw_output:
        info.output_src = CondText.from_node(r._src, fields["output"][1])
    src = r._scalar(fields, "source", where, optional=True)
    if src is not None:
        info.source = src
        info.explicit_source = True
    for key, attr in (
        ("enabled", "enabled"),
        ("warn_evttypes", "warn_evttypes"),
        ("skip-if-unknown-filter", "skip_if_unknown_filter"),
        ("capture", "capture"),
    ):
        v = r._bool(fields, key, where)
        if v is not None:
            setattr(info, attr, v)
    dur = r._uint(fields, "capture_duration", where)
    if dur is not None:
        info.capture_duration = dur
    info.tags = _tags(r, fields, where) or set()
    info.exceptions = r.read_exceptions(fields, False)
    for ex in info.exceptions:
        r.validate_exception(ex)
    prev = r.col.rules.get(name)
    if prev is not None and prev.source != info.source:
        raise r.error("Rule has been re-defined with a different source", where, "LOAD_ERR_VALIDATE")
    if info.source not in r.known_sources:
        info.unknown_source = True
        r.warn("LOAD_UNKNOWN_SOURCE", f"Unknown source {info.source}, skipping", where)
    r._define(r.col.rules, info, r.col.next_id())


def _read_overrides(r: Reader, name: str, fields: Fields, where: Location, o_app: set[str], o_rep: set[str]) -> None:
    expected = {k for k in (*RULE_APPENDABLE, *RULE_REPLACEABLE) if k in fields}
    for op, keys in (("append", o_app), ("replace", o_rep)):
        for key in keys:
            if key not in expected:
                raise r.error(f"An {op} override for '{key}' was specified but '{key}' is not defined", where)
    leftovers = expected - o_app - o_rep
    for key in sorted(leftovers):
        raise r.error(
            f"Unexpected key '{key}': no corresponding entry under 'override' is defined.", loc(r._src, fields[key][0])
        )
    if o_app:
        upd = _update(r, name, fields, where, o_app, True)
        _append(r, upd)
    if o_rep:
        upd = _update(r, name, fields, where, o_rep, False)
        _replace(r, upd, o_rep)


def _update(r: Reader, name: str, fields: Fields, where: Location, keys: set[str], append: bool) -> RuleUpdate:
    upd = RuleUpdate(name, where)
    if "condition" in keys:
        upd.cond = _cond(r, fields, where)
    if "exceptions" in keys:
        upd.exceptions = r.read_exceptions(fields, True)
    if "output" in keys:
        upd.output = r._req(fields, "output", where)
    if "desc" in keys:
        upd.desc = r._req(fields, "desc", where)
    if "tags" in keys:
        upd.tags = _tags(r, fields, where)
    if "priority" in keys:
        upd.priority = _priority(r, fields, where)
    for key, attr in (
        ("enabled", "enabled"),
        ("warn_evttypes", "warn_evttypes"),
        ("skip-if-unknown-filter", "skip_if_unknown_filter"),
        ("capture", "capture"),
    ):
        if key in keys:
            setattr(upd, attr, r._bool(fields, key, where, optional=False))
    if "capture_duration" in keys:
        upd.capture_duration = r._uint(fields, "capture_duration", where)
    return upd


def _append(r: Reader, upd: RuleUpdate, legacy: bool = False) -> None:
    prev = r.col.rules.get(upd.name)
    if prev is None:
        # the deprecated `append: true` keeps the wording of the Falco versions (and test suites) that used it
        raise r.error(
            "Rule has 'append' key but no rule by that name already exists"
            if legacy
            else "Rule uses 'append' or 'override.<key>: append' but no rule by that name already exists",
            upd.loc,
            "LOAD_ERR_VALIDATE",
        )
    if upd.cond is not None:
        prev.cond = prev.cond.appended(upd.cond)
    if upd.output is not None:
        prev.output = (prev.output + " " + upd.output).strip()
        prev.output_src = None
    if upd.desc is not None:
        prev.desc = prev.desc + " " + upd.desc
    if upd.tags is not None:
        prev.tags |= upd.tags
    for ex in upd.exceptions or []:
        _append_exception(r, prev, ex)
    prev.visibility = r.col.next_id()


def _append_exception(r: Reader, rule: RuleInfo, ex: ExceptionInfo) -> None:
    # Falco's collector (rule_loader_collector.cpp, append): these texts are compared by Falco's test suites
    for existing in rule.exceptions:
        if existing.name == ex.name:
            if ex.fields is not None:
                raise r.error(
                    "Can not append exception fields to existing exception, only values", ex.loc, "LOAD_ERR_VALIDATE"
                )
            if ex.comps is not None:
                raise r.error(
                    "Can not append exception comps to existing exception, only values", ex.loc, "LOAD_ERR_VALIDATE"
                )
            existing.values.extend(ex.values)
            return
    if ex.fields is None:
        raise r.error("Rule exception must have fields property with a list of fields", ex.loc, "LOAD_ERR_VALIDATE")
    if not ex.values:
        raise r.error("Rule exception must have values property with a list of values", ex.loc, "LOAD_ERR_VALIDATE")
    r.validate_exception(ex)
    rule.exceptions.append(ex)


def _replace(r: Reader, upd: RuleUpdate, keys: set[str]) -> None:
    prev = r.col.rules.get(upd.name)
    if prev is None:
        # Falco's message keeps the literal "<key>"
        raise r.error(
            "An 'override.<key>: replace' to a rule was requested but no rule by that name already exists",
            upd.loc,
            "LOAD_ERR_VALIDATE",
        )
    if upd.exceptions is not None:
        for ex in upd.exceptions:
            r.validate_exception(ex)
        prev.exceptions = upd.exceptions
    for attr in (
        "cond",
        "output",
        "desc",
        "priority",
        "tags",
        "enabled",
        "warn_evttypes",
        "skip_if_unknown_filter",
        "capture",
        "capture_duration",
    ):
        v = getattr(upd, attr)
        if v is not None and attr == "output":
            prev.output_src = None
        if v is not None:
            setattr(prev, attr, v.strip() if attr == "output" and isinstance(v, str) else v)
    prev.visibility = r.col.next_id()
