# SPDX-License-Identifier: Apache-2.0
"""The field registry: every family module registers its fields here at import time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ruleengine.fields._builder import EventBuilder
from ruleengine.fields._types import (
    ArgKind,
    BoundField,
    Extractor,
    FieldArgError,
    FieldInfo,
    FieldType,
    UnknownFieldError,
)

SYSCALL = "syscall"
K8S_AUDIT = "k8s_audit"

# A setter writes the raw facts behind a field into an EventBuilder (JSON-lines events, rule tests).
# It receives the field's [arg] and the JSON value; it raises ValueError with a message on bad values.
Setter = Callable[[EventBuilder, "str | None", object], None]
# Resolves a field's [arg] into an extractor; raises FieldArgError on a malformed arg.
ArgBinder = Callable[[str], Extractor]
# Dynamic families (evt.arg.NAME): suffix -> (info, extractor, setter) or None when the suffix is unknown.
DynamicResolver = Callable[[str, str], "tuple[FieldInfo, Extractor, Setter | None] | None"]


@dataclass(frozen=True, slots=True)
class FieldDef:
    """A registered field: its description, how to extract it and (optionally) how to set it from a record."""

    info: FieldInfo
    extract: Extractor | None
    bind: ArgBinder | None
    setter: Setter | None
    derived: bool
    any_of_without_arg: bool


_FIELDS: dict[str, dict[str, FieldDef]] = {SYSCALL: {}, K8S_AUDIT: {}}
_DYNAMIC: dict[str, list[tuple[str, DynamicResolver]]] = {SYSCALL: [], K8S_AUDIT: []}


def register(
    name: str,
    ftype: FieldType,
    description: str,
    *,
    sources: tuple[str, ...] = (SYSCALL,),
    extract: Extractor | None = None,
    bind: ArgBinder | None = None,
    arg: ArgKind = ArgKind.NONE,
    arg_form: str = "any",
    setter: Setter | None = None,
    derived: bool = False,
    is_list: bool = False,
    filter_only: bool = False,
    no_rhs: bool = False,
    deprecated: bool = False,
    any_of_without_arg: bool = False,
) -> None:
    """Add one field to the registry (raises on duplicates: two families must never claim one name)."""
    if arg is ArgKind.NONE and extract is None:
        raise TypeError(f"{name}: a field without [arg] needs extract")
    if arg is not ArgKind.NONE and bind is None:
        raise TypeError(f"{name}: a field with [arg] needs bind")
    if arg is ArgKind.OPTIONAL and extract is None:
        raise TypeError(f"{name}: an optional-[arg] field needs extract for the bare form")
    for source in sources:
        table = _FIELDS.setdefault(source, {})
        if name in table:
            raise ValueError(f"field {name} registered twice for source {source}")
        info = FieldInfo(name, ftype, description, source, arg, arg_form, is_list, filter_only, no_rhs, deprecated)
        table[name] = FieldDef(info, extract, bind, setter, derived, any_of_without_arg)


def register_dynamic(prefix: str, resolver: DynamicResolver, sources: tuple[str, ...] = (SYSCALL,)) -> None:
    """Register a family whose names are ``prefix`` + a free suffix (``evt.arg.flags``)."""
    for source in sources:
        _DYNAMIC.setdefault(source, []).append((prefix, resolver))


def known_sources() -> frozenset[str]:
    """The event sources fields exist for."""
    return frozenset(_FIELDS)


def _table(source: str) -> dict[str, FieldDef]:
    table = _FIELDS.get(source)
    if table is None:
        raise UnknownFieldError("", source)
    return table


def lookup(source: str, name: str) -> FieldDef | None:
    """The static definition of ``name`` for ``source`` (None for unknown or dynamic names)."""
    return _FIELDS.get(source, {}).get(name)


def resolve_with_setter(source: str, name: str, arg: str | None = None) -> tuple[BoundField, Setter | None, bool]:
    """Resolve a field and also return its setter and whether it is derived (used by events_json)."""
    table = _FIELDS.get(source)
    if table is None:
        raise UnknownFieldError(name, source)
    token = name if arg is None else f"{name}[{arg}]"
    fdef = table.get(name)
    if fdef is None:
        for prefix, resolver in _DYNAMIC.get(source, ()):
            if name.startswith(prefix) and len(name) > len(prefix):
                if arg is not None:
                    raise FieldArgError(f"field '{name}' does not take an argument")
                found = resolver(source, name[len(prefix) :])
                if found is not None:
                    info, extract, setter = found
                    return BoundField(info, None, token, extract), setter, False
        raise UnknownFieldError(name)
    info = fdef.info
    if arg is None:
        if info.arg is ArgKind.REQUIRED:
            raise FieldArgError(f"field '{name}' requires an argument")
        assert fdef.extract is not None
        return BoundField(info, None, token, fdef.extract, fdef.any_of_without_arg), fdef.setter, fdef.derived
    if info.arg is ArgKind.NONE:
        raise FieldArgError(f"field '{name}' does not take an argument")
    assert fdef.bind is not None
    if info.arg_form == "index":
        try:
            if int(arg) < 0:
                raise ValueError
        except ValueError:
            raise FieldArgError(f"field '{name}' needs a numeric index argument, got '{arg}'") from None
    return BoundField(info, arg, token, fdef.bind(arg)), fdef.setter, fdef.derived


def resolve_field(source: str, name: str, arg: str | None = None) -> BoundField:
    """Resolve ``name`` (and its ``[arg]``) for ``source``; UnknownFieldError / FieldArgError otherwise."""
    return resolve_with_setter(source, name, arg)[0]


def list_fields(source: str | None = None) -> list[FieldInfo]:
    """Every registered field (of one source, or of all), sorted by source then name."""
    sources = sorted(_FIELDS) if source is None else [source]
    out: list[FieldInfo] = []
    for s in sources:
        out.extend(sorted((d.info for d in _table(s).values()), key=lambda i: i.name))
    return out
