# SPDX-License-Identifier: Apache-2.0
"""Plans: how records of one key layout and value forms become events (see :mod:`ruleengine.records`).

A plan sorts a layout's keys into per-event values (number, times, pids, ports), families of raw-fact setters whose
results are remembered per distinct set of values, and setters that derive what is still missing. The *template key*
of a record is every value a plan's families and derived setters read; records with the same key layout share a plan
as long as the values outside that key keep their form (:meth:`Plan.fits`).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ruleengine.fields._builder import EventBuilder
from ruleengine.fields._types import BoundField, FieldType
from ruleengine.record_objects import Template

__all__ = [
    "DIGITS",
    "TIME_FIELDS",
    "Group",
    "Plan",
    "RecordError",
    "Snapshot",
    "Step",
    "form",
    "given_getter",
    "seed_type",
    "tuple_getter",
]


class RecordError(ValueError):
    """A record that cannot be taken; names the field when one is at fault."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"field '{field}': {message}" if field else message)


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
# Time fields sysdig writes as integer nanoseconds; their rendered forms are taken as given.
TIME_FIELDS = frozenset({"evt.time", "evt.time.s", "evt.time.iso8601", "evt.datetime", "evt.datetime.s", "evt.rawtime"})
DIGITS = re.compile(r"\d{10,}")


def seed_type(bound: BoundField, key: str, vtype: type) -> bool:
    """Can a value of ``vtype`` be handed to rules as the field's value, unchanged?"""
    info = bound.info
    if bound.token != key or bound.any_of or info.is_list:
        return False
    t = info.type
    if t in (FieldType.STRING, FieldType.CHAR):
        return vtype is str
    if t in _NUMERIC:
        return vtype is int
    if t is FieldType.BOOL:
        return vtype is bool
    return False


@dataclass(frozen=True, slots=True)
class Step:
    key: str
    bound: BoundField
    setter: Callable[[EventBuilder, str | None, object], None] | None
    seed: bool


def tuple_getter(
    keys: list[str], lists: frozenset[str] = frozenset()
) -> Callable[[Mapping[str, object]], tuple[Any, ...]]:
    """The values of ``keys`` as a tuple; JSON lists (``lists``) become tuples, so the result can be a dict key."""
    if lists & set(keys):
        get = operator.itemgetter(*keys) if len(keys) > 1 else (lambda r, k=keys[0]: (r[k],))
        where = tuple(i for i, k in enumerate(keys) if k in lists)

        def with_lists(r: Mapping[str, object]) -> tuple[Any, ...]:
            values = get(r)
            for i in where:
                if type(v := values[i]) is list:
                    values = (*values[:i], tuple(v), *values[i + 1 :])
            return values

        return with_lists
    if len(keys) == 1:
        key = keys[0]

        def one(r: Mapping[str, object]) -> tuple[Any, ...]:
            return (r[key],)

        return one
    return operator.itemgetter(*keys)


class Group:
    """The raw-fact setters of one family within a plan, and the facts they gave per distinct set of values."""

    __slots__ = ("getter", "memo", "steps", "typed")

    def __init__(self, gid: int, steps: tuple[Step, ...], lists: frozenset[str]) -> None:
        self.steps = steps
        # evt.type is part of the evt.* key (how a parameter is read depends on the event type)
        self.typed = gid == 0
        self.getter = tuple_getter((["evt.type"] if self.typed else []) + [s.key for s in steps], lists)
        self.memo: dict[Any, Snapshot | RecordError] = {}


# The facts a group's setters gave: (builder attribute, dict) pairs, the fd dict, the ancestors' dicts.
Snapshot = tuple[tuple[tuple[str, dict[str, Any]], ...], dict[str, Any] | None, list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Plan:
    """How to build events from records of one key layout and value types."""

    per_event: tuple[Step, ...]  # evt.num, times: set on every event
    groups: tuple[Group, ...]  # raw-fact setters by family
    derived: tuple[Step, ...]  # setters that fill in facts still missing, run last
    given: Callable[[Mapping[str, object]], dict[str, object]] | None  # the values used as given
    unknown: tuple[tuple[str, str], ...]  # (key, why it is not a field)
    not_given: tuple[str, ...]  # the record's keys whose values are not used as given
    template_key: Callable[[Mapping[str, object]], tuple[Any, ...]]  # every value but the per-event ones
    templates: dict[Any, Template]
    num_key: str | None  # evt.num, given as an integer
    time_key: str | None  # evt.rawtime, given as an integer
    proc_attrs: tuple[str, ...]  # pid/vpid/tid/vtid, given as integers...
    proc_values: Callable[[Mapping[str, object]], tuple[Any, ...]] | None  # ...and their values
    # The keys outside the template key whose value's form decides the plan, with that form (see form). A record
    # whose values the template key matches, and whose other keys pass these checks, has this plan's signature.
    checks: tuple[tuple[str, type], ...]
    time_checks: tuple[tuple[str, bool], ...]  # text times: whether integer nanoseconds

    def fits(self, record: Mapping[str, object]) -> bool:
        for key, t in self.checks:
            if type(record[key]) is not t:
                return False
        if self.time_checks:
            return all((form(record[key]) is DIGITS) is digits for key, digits in self.time_checks)
        return True


def form(value: object) -> object:
    """What of a value decides how it is taken: its type, and for text whether it is integer nanoseconds."""
    t = type(value)
    if t is str and isinstance(value, str) and value.isdigit() and len(value) >= 10 and value.isascii():
        return DIGITS
    return t


def given_getter(
    record: Mapping[str, object], seeded: list[str]
) -> Callable[[Mapping[str, object]], dict[str, object]] | None:
    if not seeded:
        return None
    if len(seeded) == len(record):
        return dict  # every key is used as given
    keys = tuple(seeded)
    get = tuple_getter(list(keys))
    return lambda r: dict(zip(keys, get(r), strict=True))
