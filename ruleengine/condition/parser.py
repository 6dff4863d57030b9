# SPDX-License-Identifier: Apache-2.0
"""Recursive-descent parser for Falco conditions, following libsinsp's grammar (filter/parser.h).

Lexical quirks kept on purpose because rules depend on them: word operators need a following blank while symbol
and list operators do not (``fd.num>=0``, ``evt.type in(open)``); anything containing a dot lexes as a field, a bare
word is a macro reference; ``not`` must be followed by a blank or ``(``; bare values stop at blanks, parentheses,
commas, ``=`` and quotes.
"""

from __future__ import annotations

import re
import sys

from ruleengine.condition.ast import (
    And,
    Check,
    Expr,
    FieldRef,
    ListValue,
    MacroRef,
    Not,
    Operand,
    Or,
    StrValue,
    Transformer,
    Value,
)

DEFAULT_MAX_DEPTH = 1000
# Each nesting level costs a handful of Python frames; make room for Falco's depth limit once, at import.
if sys.getrecursionlimit() < DEFAULT_MAX_DEPTH * 8 + 200:
    sys.setrecursionlimit(DEFAULT_MAX_DEPTH * 8 + 200)

_BLANKS = " \t\b\r\n"
_RX_NOT_BLANK = re.compile(r"not[ \t\n\r\f\v]+")
_RX_IDENTIFIER = re.compile(r"[a-zA-Z]+[a-zA-Z0-9_]*")
_RX_FIELD_NAME = re.compile(r"[a-zA-Z]+[a-zA-Z0-9_]*(?:\.[a-zA-Z]+[a-zA-Z0-9_]*)+")
_RX_FIELD_ARG_BARE = re.compile(r"""[^\]\["' \t\n\r\f\v]+""")
_RX_HEX = re.compile(r"0[xX][0-9a-zA-Z]+")
_RX_NUM = re.compile(r"[+\-]?[0-9]+\.?[0-9]*(?:[eE][+\-][0-9]+)?")
_RX_BARE = re.compile(r"""[^()"' \t\n\r\f\v=,]+""")
_RX_MODIFIER = re.compile(r"(oneof|anyof|allof)[ \t\b\r\n]*")
_RX_KEYWORD = re.compile(r"(and|or|not)(?![a-zA-Z0-9_])")

UNARY_OPS = ("exists",)
NUM_OPS = ("<=", "<", ">=", ">")
STR_OPS = (
    "==",
    "=",
    "!=",
    "glob ",
    "iglob ",
    "contains ",
    "icontains ",
    "bcontains ",
    "startswith ",
    "bstartswith ",
    "endswith ",
    "regex ",
)
LIST_OPS = ("intersects", "in", "pmatch")
TRANSFORMERS = ("tolower(", "toupper(", "b64(", "basename(", "len(", "join(", "concat(", "getopt(")
MODIFIERS = ("oneof", "anyof", "allof")


def supported_operators(list_only: bool = False) -> tuple[str, ...]:
    """Operator names in libsinsp's order (used in error messages and to validate exception comps)."""
    if list_only:
        return LIST_OPS
    return tuple(op.strip() for op in (*UNARY_OPS, *NUM_OPS, *STR_OPS, *LIST_OPS))


def _quoted_list(items: tuple[str, ...]) -> str:
    return ", ".join(f"'{i}'" for i in items)


_OPS_MSG = "expected a valid check operator: one of " + _quoted_list(supported_operators())
_TRANSFORMERS_MSG = _quoted_list(("val", *(t[:-1] for t in TRANSFORMERS)))


class ConditionSyntaxError(ValueError):
    """A condition that does not parse; ``pos`` is the 0-based offset where parsing stopped."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos


def unescape(raw: str) -> str:
    """Decode a quoted string token (delimiters included) the way libsinsp's ``unescape_str`` does."""
    delim = raw[0]
    body = raw[1:-1]
    out: list[str] = []
    i = 0
    n = len(body)
    while i < n:
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        if i + 1 >= n:
            raise ValueError("unterminated string escape sequence")
        e = body[i + 1]
        i += 2
        simple = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "\\": "\\", "/": "/", " ": "\\"}
        if e in simple:
            out.append(simple[e])
        elif e == '"' or e == "'":
            if e != delim:
                raise ValueError(f"invalid \\{e} escape in {delim}-quoted string")
            out.append(e)
        elif e == "x":
            hexpart = body[i : i + 2]
            if len(hexpart) != 2 or any(h not in "0123456789abcdefABCDEF" for h in hexpart):
                raise ValueError("invalid \\x escape: expected two hex digits")
            out.append(chr(int(hexpart, 16)))
            i += 2
        else:
            raise ValueError(f"unsupported string escape sequence: \\{e}")
    return "".join(out)


class Parser:
    """Parses one condition string. Use :func:`parse_condition`."""

    def __init__(self, text: str, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        self.text = text
        self.pos = 0
        self.last = ""
        self.depth = 0
        self.max_depth = max_depth

    # --- lexing helpers -------------------------------------------------------------------------------------
    def _fail(self, message: str) -> ConditionSyntaxError:
        return ConditionSyntaxError(message, self.pos)

    def _enter(self) -> None:
        self.depth += 1
        if self.depth >= self.max_depth:
            raise self._fail(f"exceeded max depth limit of {self.max_depth}")

    def _blank(self) -> bool:
        start = self.pos
        t = self.text
        while self.pos < len(t) and t[self.pos] in _BLANKS:
            self.pos += 1
        return self.pos > start

    def _str(self, s: str) -> bool:
        if self.text.startswith(s, self.pos):
            self.pos += len(s)
            self.last = s
            return True
        return False

    def _strs(self, options: tuple[str, ...]) -> bool:
        return any(self._str(s) for s in options)

    def _rx(self, rx: re.Pattern[str]) -> bool:
        m = rx.match(self.text, self.pos)
        if m is None or m.end() == self.pos:
            return False
        self.last = m.group(0)
        self.pos = m.end()
        return True

    def _quoted(self) -> bool:
        t = self.text
        if self.pos >= len(t) or t[self.pos] not in "'\"":
            return False
        delim = t[self.pos]
        prev = "\\"
        i = self.pos
        while i < len(t):
            c = t[i]
            if c == delim and prev != "\\":
                raw = t[self.pos : i + 1]
                try:
                    self.last = unescape(raw)
                except ValueError as exc:
                    raise self._fail(str(exc)) from None
                self.pos = i + 1
                return True
            prev = c
            i += 1
        return False

    # --- grammar ----------------------------------------------------------------------------------------------
    def parse(self) -> Expr:
        if not self.text:
            raise ConditionSyntaxError("filter input string is empty", 0)
        res = self._or()
        if self.pos != len(self.text):
            raise self._fail(f"unexpected token after '{self.last}', expecting 'or', 'and'")
        return res

    def _or(self) -> Expr:
        self._enter()
        pos = self.pos
        self._blank()
        children = [self._and()]
        self._blank()
        while self._str("or"):
            if self._blank():
                children.append(self._and())
            elif self._str("("):
                children.append(self._embedded())
            else:
                raise self._fail("expected blank or '(' after 'or'")
            self._blank()
        self.depth -= 1
        return children[0] if len(children) == 1 else Or(tuple(children), pos)

    def _and(self) -> Expr:
        self._enter()
        pos = self.pos
        self._blank()
        children = [self._not()]
        self._blank()
        while self._str("and"):
            if self._blank():
                children.append(self._not())
            elif self._str("("):
                children.append(self._embedded())
            else:
                raise self._fail("expected blank or '(' after 'and'")
            self._blank()
        self.depth -= 1
        return children[0] if len(children) == 1 else And(tuple(children), pos)

    def _not(self) -> Expr:
        self._enter()
        pos = self.pos
        self._blank()
        negate = False
        while self._rx(_RX_NOT_BLANK):
            negate = not negate
        if self._str("not("):
            negate = not negate
            child = self._embedded()
        else:
            child = self._check()
        self.depth -= 1
        return Not(child, pos) if negate else child

    def _embedded(self) -> Expr:
        self._enter()
        self._blank()
        child = self._or()
        self._blank()
        if not self._str(")"):
            raise self._fail("expected a ')' token")
        self.depth -= 1
        return child

    def _check(self) -> Expr:
        self._enter()
        self._blank()
        pos = self.pos
        if self._str("("):
            res = self._embedded()
        elif self._rx(_RX_FIELD_NAME):
            res = self._condition(self._field_rest(self.last, pos), pos)
        elif self._strs(TRANSFORMERS):
            res = self._condition(self._transformer_rest(self.last[:-1], pos), pos)
        elif self._rx(_RX_IDENTIFIER):
            res = MacroRef(self.last, pos)
        else:
            raise self._fail("expected a '(' token, a field check, or an identifier")
        self.depth -= 1
        return res

    def _field_rest(self, name: str, pos: int) -> FieldRef:
        arg: str | None = None
        if self._str("["):
            if not self._quoted() and not self._rx(_RX_FIELD_ARG_BARE):
                raise self._fail("expected a valid field argument: a quoted string or a bare string")
            arg = self.last
            if not self._str("]"):
                raise self._fail("expected a ']' token")
        return FieldRef(name, arg, pos)

    def _transformer_rest(self, name: str, pos: int) -> Transformer:
        self._enter()
        args: list[FieldRef | Transformer | str] = []
        while True:
            self._blank()
            apos = self.pos
            if self._strs(TRANSFORMERS):
                args.append(self._transformer_rest(self.last[:-1], apos))
            elif self._rx(_RX_FIELD_NAME):
                args.append(self._field_rest(self.last, apos))
            elif name in ("join", "getopt") and (self._quoted() or self._rx(_RX_BARE)):
                args.append(self.last)
            else:
                raise self._fail("expected a field or a nested valid transformer: " + _TRANSFORMERS_MSG)
            self._blank()
            if not self._str(","):
                break
        if not self._str(")"):
            raise self._fail("expected a ')' token closing the transformer")
        self.depth -= 1
        return Transformer(name, tuple(args), pos)

    def _transformer_or_val(self) -> Transformer | None:
        self._blank()
        pos = self.pos
        if self._str("val("):
            self._blank()
            fpos = self.pos
            if not self._rx(_RX_FIELD_NAME):
                raise self._fail("expected a field within 'val' transformer")
            field = self._field_rest(self.last, fpos)
            self._blank()
            if not self._str(")"):
                raise self._fail("expected a ')' token closing the transformer")
            return Transformer("val", (field,), pos)
        if self._strs(TRANSFORMERS):
            return self._transformer_rest(self.last[:-1], pos)
        return None

    def _condition(self, lhs: Operand, pos: int) -> Check:
        self._enter()
        self._blank()
        if self._strs(UNARY_OPS):
            self.depth -= 1
            return Check(lhs, "exists", None, pos)
        value: Value
        modifier: str | None = None
        if self._strs(NUM_OPS):
            op = self.last
            value = self._num_value()
        elif self._strs(STR_OPS):
            op = self.last.strip()
            modifier = self._modifier()
            value = self._list_value() if modifier else self._str_value()
        elif self._strs(LIST_OPS):
            op = self.last
            value = self._list_value()
        else:
            raise self._fail(_OPS_MSG)
        self.depth -= 1
        return Check(lhs, op, value, pos, modifier)

    def _modifier(self) -> str | None:
        self._blank()
        start = self.pos
        m = _RX_MODIFIER.match(self.text, self.pos)
        if m is None:
            return None
        after = m.end()
        rest = self.text[after:]
        if rest.startswith("(") or (
            m.end() > m.end(1) and _RX_IDENTIFIER.match(rest) is not None and _RX_KEYWORD.match(rest) is None
        ):
            self.pos = after
            self.last = m.group(1)
            return m.group(1)
        self.pos = start
        return None

    def _num_value(self) -> Value:
        self._blank()
        pos = self.pos
        tr = self._transformer_or_val()
        if tr is not None:
            return tr
        if self._rx(_RX_HEX) or self._rx(_RX_NUM):
            return StrValue(self.last, pos)
        raise self._fail("expected a number value or a field with a valid transformer: " + _TRANSFORMERS_MSG)

    def _str_value(self) -> Value:
        self._blank()
        pos = self.pos
        tr = self._transformer_or_val()
        if tr is not None:
            return tr
        if self._quoted() or self._rx(_RX_BARE):
            return StrValue(self.last, pos)
        raise self._fail("expected a string value or a field with a valid transformer: " + _TRANSFORMERS_MSG)

    def _list_value(self) -> Value:
        self._blank()
        pos = self.pos
        if self._str("("):
            items: list[str] = []
            self._blank()
            if self._quoted() or self._rx(_RX_BARE):
                items.append(self.last)
                self._blank()
                while self._str(","):
                    self._blank()
                    if not (self._quoted() or self._rx(_RX_BARE)):
                        raise self._fail("expected a string value")
                    items.append(self.last)
                    self._blank()
            if not self._str(")"):
                raise self._fail("expected a ')' token")
            return ListValue(tuple(items), pos)
        tr = self._transformer_or_val()
        if tr is not None:
            return tr
        if self._rx(_RX_IDENTIFIER):
            return StrValue(self.last, pos)
        raise self._fail("expected a list, an identifier, or a field with a valid transformer: " + _TRANSFORMERS_MSG)


def parse_condition(text: str, max_depth: int = DEFAULT_MAX_DEPTH) -> Expr:
    """Parse ``text`` into an AST; raises :class:`ConditionSyntaxError` with the failing offset."""
    p = Parser(text, max_depth)
    try:
        return p.parse()
    except RecursionError:
        raise ConditionSyntaxError(f"exceeded max depth limit of {max_depth}", p.pos) from None
