# SPDX-License-Identifier: Apache-2.0
"""What the loader collects from rules files: lists, macros and rules with Falco's index/visibility bookkeeping.

These are mutable while files are being read (appends and overrides edit them in place) and are then handed to
the resolver. ``index`` is the slot of the first definition (redefinition keeps it); ``visibility`` is bumped by
every later redefinition/append, and decides which macros/lists an item may refer to.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from ruleengine.loader.messages import Location
from ruleengine.loader.yamlnodes import SourceFile, locate_offset
from ruleengine.priority import Priority


@dataclass
class CondText:
    """A condition string made of one or more YAML scalars joined by appends, able to locate any offset."""

    text: str
    pieces: list[tuple[int, SourceFile, yaml.Node]] = field(default_factory=list)
    fallback: Location | None = None

    @classmethod
    def from_node(cls, src: SourceFile, node: yaml.Node) -> CondText:
        """Wrap one scalar node."""
        return cls(str(node.value), [(0, src, node)])

    def appended(self, other: CondText) -> CondText:
        """Falco's append: previous text + one space + new text."""
        base = len(self.text) + 1
        pieces = list(self.pieces) + [(base + off, s, n) for off, s, n in other.pieces]
        return CondText(self.text + " " + other.text, pieces, self.fallback)

    def locate(self, offset: int) -> Location | None:
        """The file location of character ``offset`` of ``text``."""
        best = None
        for start, src, node in self.pieces:
            if start <= offset:
                best = (start, src, node)
        if best is None:
            return self.fallback
        start, src, node = best
        return locate_offset(src, node, offset - start)


@dataclass
class ExceptionEntry:
    """One value of an exception: a scalar, or (list form) a list whose elements may be lists."""

    item: str = ""
    items: list[ExceptionEntry] | None = None

    @property
    def is_list(self) -> bool:
        """True for a YAML sequence."""
        return self.items is not None


@dataclass
class ExceptionInfo:
    """An ``exceptions:`` entry of a rule."""

    name: str
    loc: Location
    fields: ExceptionEntry | None = None
    comps: ExceptionEntry | None = None
    values: list[ExceptionEntry] = field(default_factory=list)


@dataclass
class ListInfo:
    """A ``list`` item."""

    name: str
    items: list[str]
    loc: Location
    index: int = 0
    visibility: int = 0


@dataclass
class MacroInfo:
    """A ``macro`` item."""

    name: str
    cond: CondText
    loc: Location
    index: int = 0
    visibility: int = 0


@dataclass
class RuleInfo:
    """A ``rule`` item after all appends/overrides."""

    name: str
    cond: CondText
    output: str
    output_loc: Location
    desc: str
    priority: Priority
    loc: Location
    source: str = "syscall"
    enabled: bool = True
    tags: set[str] = field(default_factory=set)
    exceptions: list[ExceptionInfo] = field(default_factory=list)
    warn_evttypes: bool = True
    skip_if_unknown_filter: bool = False
    capture: bool = False
    capture_duration: int = 0
    index: int = 0
    visibility: int = 0
    unknown_source: bool = False
    explicit_source: bool = False
    # the output scalar as written, to locate output errors; None once appended/replaced
    output_src: CondText | None = None


@dataclass
class RuleUpdate:
    """The keys an ``append``/``override`` rule item carries."""

    name: str
    loc: Location
    cond: CondText | None = None
    output: str | None = None
    desc: str | None = None
    priority: Priority | None = None
    tags: set[str] | None = None
    exceptions: list[ExceptionInfo] | None = None
    enabled: bool | None = None
    warn_evttypes: bool | None = None
    skip_if_unknown_filter: bool | None = None
    capture: bool | None = None
    capture_duration: int | None = None


@dataclass
class PluginRequirement:
    """One ``required_plugin_versions`` entry: satisfied if any (name, version) alternative is available."""

    alternatives: list[tuple[str, str]]
    loc: Location


@dataclass
class Collected:
    """Everything read from a set of files, in definition order."""

    lists: dict[str, ListInfo] = field(default_factory=dict)
    macros: dict[str, MacroInfo] = field(default_factory=dict)
    rules: dict[str, RuleInfo] = field(default_factory=dict)
    plugin_requirements: list[PluginRequirement] = field(default_factory=list)
    required_engine_version: tuple[int, int, int] = (0, 0, 0)
    counter: int = 0

    def next_id(self) -> int:
        """A fresh global item id (Falco's m_cur_index)."""
        self.counter += 1
        return self.counter
