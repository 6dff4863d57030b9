# SPDX-License-Identifier: Apache-2.0
"""Condition syntax tree, shaped like libsinsp's filter AST.

Every node records ``pos``: its offset in the condition text it was parsed from, so compile errors can point at
the offending check.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldRef:
    """A field as written: ``proc.aname[2]`` -> name ``proc.aname``, arg ``2``."""

    name: str
    arg: str | None
    pos: int

    @property
    def token(self) -> str:
        """The field written back as text."""
        return self.name if self.arg is None else f"{self.name}[{self.arg}]"


@dataclass(frozen=True, slots=True)
class Transformer:
    """A field transformer such as ``tolower(proc.name)``; ``val(f)`` is a transformer named ``val``."""

    name: str
    args: tuple[FieldRef | Transformer | str, ...]
    pos: int

    @property
    def token(self) -> str:
        """The expression written back as text."""
        parts = [a if isinstance(a, str) else a.token for a in self.args]
        return f"{self.name}({', '.join(parts)})"


Operand = FieldRef | Transformer


@dataclass(frozen=True, slots=True)
class ListValue:
    """A parenthesised value list ``(a, b)``."""

    items: tuple[str, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class StrValue:
    """A single literal (bare, quoted, number, or an identifier standing in for a list)."""

    text: str
    pos: int


Value = StrValue | ListValue | Transformer


@dataclass(frozen=True, slots=True)
class Check:
    """``<lhs> <op> [modifier] <value>``; ``value`` is None for ``exists``."""

    lhs: Operand
    op: str
    value: Value | None
    pos: int
    modifier: str | None = None


@dataclass(frozen=True, slots=True)
class MacroRef:
    """A bare identifier: a reference to a macro, resolved before compilation."""

    name: str
    pos: int


@dataclass(frozen=True, slots=True)
class And:
    """N-ary conjunction."""

    children: tuple[Expr, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Or:
    """N-ary disjunction."""

    children: tuple[Expr, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Not:
    """Negation."""

    child: Expr
    pos: int


Expr = And | Or | Not | Check | MacroRef
