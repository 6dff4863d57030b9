# SPDX-License-Identifier: Apache-2.0
"""Operator code generation for the condition compiler, and the runtime helpers generated code calls."""

from __future__ import annotations

import base64
import binascii
import fnmatch
import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ahocorasick

from ruleengine.condition.ast import ListValue, StrValue, Value
from ruleengine.fields import BoundField, FieldType
from ruleengine.regex import Re2Matcher, RegexError

if TYPE_CHECKING:
    from ruleengine.compiler import _Gen

_NUMERIC = frozenset(
    {
        FieldType.INT,
        FieldType.UINT,
        FieldType.PORT,
        FieldType.ABSTIME,
        FieldType.RELTIME,
        FieldType.ERRNO,
        FieldType.MODE,
    }
)
_STRINGY = frozenset({FieldType.STRING, FieldType.CHAR})
_IP = frozenset({FieldType.IPADDR, FieldType.IPNET})
_EQ_OPS = frozenset({"=", "==", "!=", "in", "intersects"})
_ORDER_OPS = frozenset({"<", "<=", ">", ">="})
_STR_ONLY = frozenset({"icontains", "glob", "iglob", "regex", "pmatch"})
_BUF_OPS = frozenset({"contains", "bcontains", "startswith", "bstartswith", "endswith"})
_AC_THRESHOLD = 3


class OpError(ValueError):
    """Operator/type mismatch or a bad literal."""


# Fields that test both endpoints of a socket at once; their `!=` means "neither endpoint", as in libsinsp.
_BOTH_ENDPOINT_FIELDS = frozenset({"fd.ip", "fd.port", "fd.net"})


@dataclass(frozen=True, slots=True)
class Operand:
    """Generated code reading one side of a check, its value type and multiplicity.

    ``multi`` is "" for one value, "list" for list fields (``in`` = every value in the set) and "any" for
    index-less ancestor fields (true when any value satisfies the operator).
    """

    code: str
    ftype: FieldType
    multi: str
    token: str
    bound: BoundField | None


# --- runtime helpers (names referenced by generated code) ---------------------------------------------------
def _t_tolower(x: Any) -> Any:
    if x is None:
        return None
    return tuple(e.lower() for e in x) if isinstance(x, tuple) else x.lower()


def _t_toupper(x: Any) -> Any:
    if x is None:
        return None
    return tuple(e.upper() for e in x) if isinstance(x, tuple) else x.upper()


def _b64_one(x: Any) -> Any:
    try:
        raw = base64.b64decode(x, validate=False)
    except (binascii.Error, ValueError):
        return None
    return raw if isinstance(x, bytes) else raw.decode("utf-8", "surrogateescape")


def _t_b64(x: Any) -> Any:
    if x is None:
        return None
    return tuple(_b64_one(e) for e in x) if isinstance(x, tuple) else _b64_one(x)


def _t_basename(x: Any) -> Any:
    if x is None:
        return None
    if isinstance(x, tuple):
        return tuple(e.rsplit("/", 1)[-1] for e in x)
    return x.rsplit("/", 1)[-1]


def _t_len(x: Any) -> Any:
    return None if x is None else len(x)


def _t_enc(x: Any) -> bytes:
    return x if isinstance(x, bytes) else str(x).encode("utf-8", "surrogateescape")


def _t_jsonlist(x: Any) -> Any:
    return None if x is None else json.dumps(list(x), separators=(",", ":"), ensure_ascii=False)


LEGACY_LIST_TEXT_OPS = frozenset({"contains", "icontains"})


def _ip_in_any(v: Any, nets: tuple[Any, ...]) -> bool:
    return any(v in n for n in nets)


def _fnmatch_dyn(pattern: str, value: str, fold: bool) -> bool:
    if fold:
        return fnmatch.fnmatchcase(value.lower(), pattern.lower())
    return fnmatch.fnmatchcase(value, pattern)


class PathMatcher:
    """``pmatch``: true when a pattern is a component-wise prefix of the path (patterns may glob per component)."""

    __slots__ = ("exact", "globs", "root")

    def __init__(self, patterns: list[str]) -> None:
        self.exact: set[tuple[str, ...]] = set()
        self.globs: list[tuple[str, ...]] = []
        self.root = False
        for p in patterns:
            comps = tuple(c for c in p.split("/") if c)
            if not comps:
                self.root = True
            elif any(ch in p for ch in "?*["):
                self.globs.append(comps)
            else:
                self.exact.add(comps)

    def __call__(self, path: str) -> bool:
        comps = tuple(c for c in path.split("/") if c)
        if self.root:
            return True
        exact = self.exact
        for i in range(1, len(comps) + 1):
            if comps[:i] in exact:
                return True
        for g in self.globs:
            if len(g) <= len(comps) and all(fnmatch.fnmatchcase(c, p) for c, p in zip(comps, g, strict=False)):
                return True
        return False


class ContainsAny:
    """Substring search for many needles at once (Aho-Corasick)."""

    __slots__ = ("automaton", "empty")

    def __init__(self, needles: list[str]) -> None:
        self.empty = "" in needles
        self.automaton = ahocorasick.Automaton()
        for i, n in enumerate(needles):
            if n:
                self.automaton.add_word(n, i)
        self.automaton.make_automaton() if len(self.automaton) else None

    def __call__(self, haystack: str) -> bool:
        if self.empty:
            return True
        if not len(self.automaton):
            return False
        for _ in self.automaton.iter(haystack):
            return True
        return False


RUNTIME: dict[str, Any] = {
    "_t_tolower": _t_tolower,
    "_t_toupper": _t_toupper,
    "_t_b64": _t_b64,
    "_t_basename": _t_basename,
    "_t_len": _t_len,
    "_t_enc": _t_enc,
    "_t_jsonlist": _t_jsonlist,
    "_ip_in_any": _ip_in_any,
    "_fnmatch_dyn": _fnmatch_dyn,
}


# --- code generation ------------------------------------------------------------------------------------------
def _kind(t: FieldType) -> str:
    if t in _NUMERIC:
        return "number"
    if t in _STRINGY:
        return "string"
    if t in _IP:
        return "ip"
    return t.value


def _parse_hex(text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise OpError(f"invalid hex string '{text}'") from None


class OpBuilder:
    """Builds the test expression of one check, given the temporary holding the left-hand value."""

    def __init__(self, gen: _Gen, lhs: Operand, op: str, modifier: str | None, pos: int) -> None:
        self.gen = gen
        self.lhs = lhs
        self.op = op
        self.modifier = modifier
        self.pos = pos
        self._check_types()

    def _check_types(self) -> None:
        op, t, lhs = self.op, self.lhs.ftype, self.lhs
        if lhs.multi == "list" and op not in ("in", "intersects"):
            raise OpError(f"list filter '{lhs.token}' only supports operators 'exists', 'in' and 'intersects'")
        if op in _EQ_OPS:
            return
        if op in _ORDER_OPS:
            if t in _NUMERIC or t in _STRINGY:
                return
        elif op in _STR_ONLY:
            if t in _STRINGY:
                return
        elif op in _BUF_OPS and (t in _STRINGY or t is FieldType.BYTES):
            return
        kind = "numeric" if t in _NUMERIC else t.value
        raise OpError(f"'{op}' operator not supported for {kind} filters")

    # literal -> prepared constant ---------------------------------------------------------------------------
    def _literal(self, text: str) -> Any:
        op, lhs = self.op, self.lhs
        if op in ("bcontains", "bstartswith"):
            return _parse_hex(text)
        if op in ("glob", "iglob"):
            return re.compile(fnmatch.translate(text), re.DOTALL | (re.IGNORECASE if op == "iglob" else 0)).match
        if op == "regex":
            try:
                return Re2Matcher(text)
            except RegexError as exc:
                raise OpError(str(exc)) from None
        try:
            if lhs.bound is not None:
                value = lhs.bound.parse_literal(text)
            elif lhs.ftype is FieldType.INT:
                value = int(text, 0)
            elif lhs.ftype is FieldType.BYTES:
                value = text.encode("utf-8", "surrogateescape")
            else:
                value = text
        except ValueError as exc:
            raise OpError(str(exc) or f"invalid value '{text}' for field {lhs.token}") from None
        if op == "icontains" and isinstance(value, str):
            value = value.lower()
        if lhs.ftype is FieldType.IPNET and isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
            value = ipaddress.ip_network(value)
        return value

    def _one(self, v: str, k: str, kval: Any) -> str:
        """Test of scalar ``v`` against one prepared literal held in ``k``."""
        op = self.op
        is_net = isinstance(kval, ipaddress.IPv4Network | ipaddress.IPv6Network)
        if op in ("=", "==", "in", "intersects"):
            return f"{v} in {k}" if is_net else f"{v} == {k}"
        if op == "!=":
            return f"{v} not in {k}" if is_net else f"{v} != {k}"
        if op in _ORDER_OPS:
            return f"{v} {op} {k}"
        if op == "contains":
            return f"{k} in {v}"
        if op == "icontains":
            return f"{k} in {v}.lower()"
        if op == "bcontains":
            return f"{k} in _t_enc({v})"
        if op == "startswith":
            return f"{v}.startswith({k})"
        if op == "bstartswith":
            return f"_t_enc({v}).startswith({k})"
        if op == "endswith":
            return f"{v}.endswith({k})"
        if op in ("glob", "iglob", "regex"):
            return f"{k}({v}) is not None"
        if op == "pmatch":
            return f"{k}({v})"
        raise OpError(f"unsupported operator '{op}'")

    def _wrap_multi(self, v: str, inner: Callable[[str], str]) -> str:
        if self.lhs.multi == "any":
            x = self.gen.tmp()
            return f"any({inner(x)} for {x} in {v})"
        return inner(v)

    def static(self, v: str, value: Value) -> str:
        """Test against literal(s)."""
        op, gen = self.op, self.gen
        texts = (
            list(value.items) if isinstance(value, ListValue) else [value.text] if isinstance(value, StrValue) else []
        )
        if self.modifier is not None:
            return self._modifier(v, texts)
        if op in ("in", "intersects", "pmatch"):
            if op == "pmatch":
                if self.lhs.multi == "list":
                    raise OpError(f"list filter '{self.lhs.token}' does not support 'pmatch'")
                k = gen.const(PathMatcher(texts), "P")
                return self._wrap_multi(v, lambda x: f"{k}({x})")
            vals = [self._literal(t) for t in texts]
            nets = tuple(x for x in vals if isinstance(x, ipaddress.IPv4Network | ipaddress.IPv6Network))
            if nets and len(nets) == len(vals) and self.lhs.multi == "":
                kn = gen.const(nets, "N")
                return f"_ip_in_any({v}, {kn})"
            if nets:
                kn = gen.const(nets, "N")
                return self._wrap_multi(v, lambda x: f"_ip_in_any({x}, {kn})")
            ks = gen.const(frozenset(vals), "S")
            if self.lhs.multi == "list":
                return f"{ks}.issuperset({v})" if op == "in" else f"not {ks}.isdisjoint({v})"
            if self.lhs.multi == "any":
                return f"not {ks}.isdisjoint({v})"
            return f"{v} in {ks}"
        if len(texts) != 1:
            raise OpError(f"operator '{op}' needs a single value")
        kval = self._literal(texts[0])
        k = gen.const(kval)
        is_net = isinstance(kval, ipaddress.IPv4Network | ipaddress.IPv6Network)
        if (
            op == "!="
            and self.lhs.multi == "any"
            and self.lhs.bound is not None
            and (self.lhs.bound.info.name in _BOTH_ENDPOINT_FIELDS)
        ):
            # libsinsp: `fd.ip != X` holds only when neither endpoint matches (not "some endpoint differs").
            x = self.gen.tmp()
            test = f"{x} in {k}" if is_net else f"{x} == {k}"
            return f"not any({test} for {x} in {v})"
        if self.lhs.multi == "any" and not is_net and op in ("=", "==", "!="):
            # any element equal / any element different, without a generator per event
            return f"{k} in {v}" if op != "!=" else f"{v}.count({k}) != len({v})"
        return self._wrap_multi(v, lambda x: self._one(x, k, kval))

    def _modifier(self, v: str, texts: list[str]) -> str:
        op, gen, mod = self.op, self.gen, self.modifier
        vals = [self._literal(t) for t in texts]
        if mod == "anyof":
            if op in ("startswith", "endswith") and all(isinstance(x, str) for x in vals):
                kt = gen.const(tuple(vals), "T")
                return self._wrap_multi(v, lambda x: f"{x}.{op}({kt})")
            if op in ("contains", "icontains") and len(vals) >= _AC_THRESHOLD and all(isinstance(x, str) for x in vals):
                ka = gen.const(ContainsAny(vals), "A")  # icontains literals are already lower-cased
                low = ".lower()" if op == "icontains" else ""
                return self._wrap_multi(v, lambda x: f"{ka}({x}{low})")
            if op in ("=", "==") and not any(
                isinstance(x, ipaddress.IPv4Network | ipaddress.IPv6Network) for x in vals
            ):
                ks = gen.const(frozenset(vals), "S")
                return self._wrap_multi(v, lambda x: f"{x} in {ks}")
        kt = gen.const(tuple(vals), "T")
        k = gen.tmp()
        sample = vals[0] if vals else ""

        def inner(x: str) -> str:
            one = self._one(x, k, sample)
            if mod == "anyof":
                return f"any({one} for {k} in {kt})"
            if mod == "allof":
                return f"all({one} for {k} in {kt})"
            return f"sum(1 for {k} in {kt} if {one}) == 1"

        return self._wrap_multi(v, inner)

    def dynamic(self, v: str, w: str, rhs: Operand) -> str:
        """Test against another field's value (``val(f)`` or a transformer) held in ``w``."""
        op = self.op
        if self.modifier is not None:
            raise OpError("operator modifiers need a list of values")
        if _kind(self.lhs.ftype) != _kind(rhs.ftype):
            raise OpError(
                f"cannot compare a {self.lhs.ftype.value} field with a {rhs.ftype.value} value ('{rhs.token}')"
            )
        if op in ("in", "intersects"):
            return f"({v} in {w} if isinstance({w}, tuple) else {v} == {w})"
        if op == "icontains":
            return f"{w}.lower() in {v}.lower()"
        if op in ("glob", "iglob"):
            return f"_fnmatch_dyn({w}, {v}, {op == 'iglob'})"
        if op in ("bcontains", "bstartswith"):
            return f"_t_enc({v}).{'startswith' if op == 'bstartswith' else '__contains__'}(_t_enc({w}))"
        return self._wrap_multi(v, lambda x: self._one(x, w, None))
