# SPDX-License-Identifier: Apache-2.0
"""The ``exceptions:`` key of rules: decoding (reader) and Falco's collector-level validation."""

from __future__ import annotations

from typing import TYPE_CHECKING

import yaml

from ruleengine.condition.parser import supported_operators
from ruleengine.loader.messages import Location
from ruleengine.loader.model import ExceptionEntry, ExceptionInfo
from ruleengine.loader.yamlnodes import is_null, loc, mapping

if TYPE_CHECKING:
    from ruleengine.loader.reader import Fields, Node, Reader

LIST_COMP_OPS = ("in", "pmatch", "intersects")


# --- exceptions ----------------------------------------------------------------------------------------
def _entry(r: Reader, node: Node, where: Location) -> ExceptionEntry:
    if isinstance(node, yaml.ScalarNode):
        if node.value == "":
            raise r.error("Value must be non-empty", loc(r._src, node))
        return ExceptionEntry(item=str(node.value))
    if isinstance(node, yaml.SequenceNode):
        return ExceptionEntry(items=[_entry(r, v, where) for v in node.value])
    raise r.error("Could not decode scalar value", loc(r._src, node))


def read_exceptions(r: Reader, fields: Fields, append: bool) -> list[ExceptionInfo]:
    """Decode ``exceptions:`` (shape checks only; fields/comps are validated against the rule later)."""
    if "exceptions" not in fields or is_null(fields["exceptions"][1]):
        return []
    node = fields["exceptions"][1]
    eloc = loc(r._src, node)
    if not isinstance(node, yaml.SequenceNode):
        raise r.error("Rule exceptions must be a sequence", eloc)
    out: list[ExceptionInfo] = []
    for ex in node.value:
        xloc = loc(r._src, ex)
        if not isinstance(ex, yaml.MappingNode):
            raise r.error("Rule exception must be a mapping", xloc)
        xf = mapping(ex)
        r._check_keys(xf, frozenset({"name", "fields", "comps", "values"}))
        info = ExceptionInfo(r._req(xf, "name", xloc), xloc)
        if any(e.name == info.name for e in out):
            r.warn(
                "LOAD_EXCEPTION_NAME_NOT_UNIQUE",
                "Multiple definitions of exception '" + info.name + "' in the same rule",
                xloc,
            )
        if "fields" in xf:
            info.fields = _entry(r, xf["fields"][1], xloc)
        elif not append:
            raise r.error("Item has no mapping for key 'fields'", xloc)
        if "comps" in xf:
            info.comps = _entry(r, xf["comps"][1], xloc)
        if "values" in xf:
            vnode = xf["values"][1]
            if not isinstance(vnode, yaml.SequenceNode):
                raise r.error("Rule exception values must be a sequence", loc(r._src, vnode))
            info.values = [_entry(r, v, xloc) for v in vnode.value]
        elif append:
            r.warn("LOAD_APPEND_NO_VALUES", "Overriding/appending exception with no values", xloc)
        out.append(info)
    return out


def validate_exception(r: Reader, ex: ExceptionInfo) -> None:
    """Falco's collector checks: comps defaults, operator names, fields/comps lengths."""
    if ex.fields is None:
        raise r.error(
            "Rule exception item must have fields property with a list of fields", ex.loc, "LOAD_ERR_VALIDATE"
        )
    ops = supported_operators()
    if ex.fields.is_list:
        assert ex.fields.items is not None
        if ex.comps is None:
            ex.comps = ExceptionEntry(items=[ExceptionEntry("=") for _ in ex.fields.items])
        if not ex.comps.is_list or len(ex.comps.items or []) != len(ex.fields.items):
            raise r.error("Fields and comps lists must have equal length", ex.loc, "LOAD_ERR_VALIDATE")
        for c in ex.comps.items or []:
            if c.is_list or not _valid_comp(c.item.strip(), ops):
                raise r.error(f"'{c.item}' is not a supported comparison operator", ex.loc, "LOAD_ERR_VALIDATE")
            c.item = c.item.strip()
        for f in ex.fields.items:
            if f.is_list:
                raise r.error("Fields must be a list of strings", ex.loc, "LOAD_ERR_VALIDATE")
    else:
        if ex.comps is None:
            ex.comps = ExceptionEntry("in")
        if ex.comps.is_list:
            raise r.error("Fields and comps must both be strings", ex.loc, "LOAD_ERR_VALIDATE")
        comp = ex.comps.item.strip()
        if comp not in LIST_COMP_OPS and not _is_modifier_op(comp, ops):
            raise r.error(
                "When fields is a single value, comps must be one of (in, pmatch, intersects) or a "
                "modifier operator (e.g. startswith oneof)",
                ex.loc,
                "LOAD_ERR_VALIDATE",
            )
        ex.comps.item = comp


def _is_modifier_op(comp: str, ops: tuple[str, ...]) -> bool:
    parts = comp.split()
    return len(parts) == 2 and parts[1] in ("oneof", "anyof", "allof") and parts[0] in ops


def _valid_comp(comp: str, ops: tuple[str, ...]) -> bool:
    return comp in ops or _is_modifier_op(comp, ops)
