# SPDX-License-Identifier: Apache-2.0
"""List, exception and macro resolution, done the way Falco's rule compiler does it.

Lists are substituted into condition *text* (not the AST), for every list in definition order and with no
visibility restriction; exceptions are likewise appended as text. The result is parsed, then macro references
are replaced by the referenced macros' trees. ``MappedText`` keeps, for every character of a rewritten string,
the offset it came from in the original condition so parse errors still point into the rules file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ruleengine.condition.ast import And, Check, Expr, Not, Or
from ruleengine.condition.parser import LIST_OPS, ConditionSyntaxError, parse_condition
from ruleengine.loader.model import ExceptionEntry, ExceptionInfo, ListInfo

_BLANKS = " \t\n\r"
_DELIMS = _BLANKS + "(),="


@dataclass
class MappedText:
    """A string plus, per character, the offset in the original text it derives from."""

    text: str
    origin: list[int]

    @classmethod
    def of(cls, text: str, shift: int = 0) -> MappedText:
        """Identity mapping."""
        return cls(text, list(range(shift, shift + len(text))))

    def orig(self, offset: int) -> int:
        """The original offset for ``offset`` (clamped)."""
        if not self.origin:
            return 0
        return self.origin[max(0, min(offset, len(self.origin) - 1))]


def quote_item(item: str) -> str:
    """Falco's ``quote_item``: wrap in double quotes when it has a space and is not already quoted."""
    if " " in item and item[:1] not in ('"', "'"):
        return '"' + item + '"'
    return item


def resolve_list(mt: MappedText, name: str, items: list[str]) -> bool:
    """Substitute every delimited occurrence of list ``name`` in ``mt`` (in place); True if any was found."""
    cnd = mt.text
    used = False
    start = cnd.find(name)
    while start != -1:
        end = start + len(name)
        if (start == 0 or cnd[start - 1] in _DELIMS) and (end >= len(cnd) or cnd[end] in _DELIMS):
            anchor = mt.orig(start)
            while start > 0 and cnd[start - 1] in _BLANKS:
                start -= 1
            while end < len(cnd) and cnd[end] in _BLANKS:
                end += 1
            sub = ", ".join(quote_item(v) for v in items)
            if not sub:
                if start > 0 and cnd[start - 1] == ",":
                    start -= 1
                elif end < len(cnd) and cnd[end] == ",":
                    end += 1
            head = cnd[:start] + " " if start > 0 else ""
            head_o = [*mt.origin[:start], anchor] if start > 0 else []
            mid = sub + " "
            cnd = head + mid + cnd[end:]
            mt.origin = head_o + [anchor] * len(mid) + mt.origin[end:]
            start += len(sub) + 1
            used = True
        start = cnd.find(name, start + 1)
    mt.text = cnd
    return used


@dataclass
class ListTable:
    """Lists after Falco's one-level expansion of list names used as items, with "used" flags."""

    items: dict[str, list[str]] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)

    @classmethod
    def build(cls, lists: dict[str, ListInfo]) -> ListTable:
        """Expand items naming an earlier list (index < this list's visibility) into that list's raw items."""
        table = cls()
        for info in lists.values():
            out: list[str] = []
            for item in info.items:
                ref = lists.get(item)
                if ref is not None and ref.index < info.visibility:
                    table.used.add(ref.name)
                    out.extend(ref.items)
                else:
                    out.append(item)
            table.items[info.name] = out
        return table

    def substitute(self, mt: MappedText) -> None:
        """Apply every list, in definition order, to ``mt``."""
        for name, items in self.items.items():
            if name in mt.text and resolve_list(mt, name, items):
                self.used.add(name)


def _is_list_op(comp: str) -> bool:
    return comp in LIST_OPS or len(comp.split()) == 2


def _paren(item: str) -> str:
    return item if item.startswith("(") else "(" + item + ")"


def _value_text(v: ExceptionEntry) -> str:
    return "(" + ", ".join(quote_item(x.item) for x in (v.items or [])) + ")"


def build_exceptions(cond: str, exceptions: list[ExceptionInfo]) -> tuple[MappedText, set[str]]:
    """``(cond) and not <exception>...``, as text; returns the mapped text and the exception fields.

    Without exceptions the condition stays as written (Falco wraps it only when it has exceptions, which decides
    the wording of a parse error: ``unexpected token after 'open'`` rather than ``expected a ')' token``)."""
    if not exceptions:
        return MappedText.of(cond), set()
    text = "(" + cond + ")"
    origin = [0, *list(range(len(cond))), max(0, len(cond) - 1)]
    fields: set[str] = set()
    for ex in exceptions:
        assert ex.fields is not None and ex.comps is not None
        icond = ""
        if not ex.fields.is_list:
            vals = []
            for v in ex.values:
                if v.is_list:
                    raise ValueError("Expected values array to contain a list of strings")
                vals.append(quote_item(v.item))
            fields.add(ex.fields.item)
            if vals:
                icond = "(" + ex.fields.item + " " + ex.comps.item + " (" + ", ".join(vals) + "))"
        else:
            fitems = ex.fields.items or []
            comps = ex.comps.items or []
            groups = []
            for v in ex.values:
                vitems = v.items if v.is_list else None
                if vitems is None or len(vitems) != len(fitems):
                    raise ValueError("Fields and values lists must have equal length")
                parts = []
                for f, c, val in zip(fitems, comps, vitems, strict=True):
                    if val.is_list:
                        vs = _value_text(val)
                    elif _is_list_op(c.item):
                        vs = _paren(val.item)
                    else:
                        vs = quote_item(val.item)
                    parts.append(" " + f.item + " " + c.item + " " + vs)
                    fields.add(f.item)
                groups.append("(" + " and ".join(parts) + ")")
            if groups:
                icond = "(" + " or ".join(groups) + ")"
        if icond:
            add = " and not " + icond
            text += add
            origin += [-1] * len(add)
    return MappedText(text, origin), fields


class MacroError(Exception):
    """Undefined macro or reference loop; ``pos`` is the offset of the offending reference."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos


def resolve_macros(expr: Expr, visible: dict[str, Expr | None], used: set[str], broken: set[str]) -> Expr | None:
    """Replace macro references by their trees (recursively, detecting loops).

    Returns None when a referenced macro is itself broken (its error was already reported).
    """
    stack: list[str] = []
    failed = False

    def walk(e: Expr, top_pos: int | None) -> Expr:
        nonlocal failed
        if isinstance(e, And):
            return And(tuple(walk(c, top_pos) for c in e.children), e.pos)
        if isinstance(e, Or):
            return Or(tuple(walk(c, top_pos) for c in e.children), e.pos)
        if isinstance(e, Not):
            return Not(walk(e.child, top_pos), e.pos)
        if isinstance(e, Check):
            return e
        pos = e.pos if top_pos is None else top_pos
        if e.name not in visible:
            raise MacroError(f"Undefined macro '{e.name}' used in filter.", pos)
        if e.name in stack:
            raise MacroError(f"reference loop in macro '{e.name}'", pos)
        used.add(e.name)
        body = visible[e.name]
        if body is None or e.name in broken:
            failed = True
            return e
        stack.append(e.name)
        try:
            return walk(body, pos)
        finally:
            stack.pop()

    out = walk(expr, None)
    return None if failed else out


def parse_mapped(mt: MappedText) -> Expr:
    """Parse a rewritten condition; on error the position is mapped back to the original text."""
    try:
        return parse_condition(mt.text)
    except ConditionSyntaxError as exc:
        raise ConditionSyntaxError(exc.message, mt.orig(exc.pos) if mt.origin else exc.pos) from None
