# SPDX-License-Identifier: Apache-2.0
"""Reads rules files (YAML nodes) into :class:`Collected`, applying Falco's define/append/override rules.

Falco stops at the first error of a file; we keep going item by item so one run reports every error, but an item
with an error contributes nothing, exactly as if loading had stopped there for that item.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import yaml

from ruleengine.loader.messages import LoadError, LoadMessage, Location
from ruleengine.loader.model import (
    Collected,
    CondText,
    ExceptionInfo,
    ListInfo,
    MacroInfo,
    PluginRequirement,
    RuleInfo,
    RuleUpdate,
)
from ruleengine.loader.yamlerrors import yaml_cpp_message
from ruleengine.loader.yamlnodes import (
    FALSE_WORDS,
    TRUE_WORDS,
    SourceFile,
    compose_documents,
    is_null,
    loc,
    mapping,
)

ENGINE_VERSION = (0, 63, 0)

WARNING_APPEND = (
    "'append' key is deprecated. Add an 'append' entry (e.g. 'condition: append') under 'override' instead."
)
WARNING_ENABLED = (
    "The standalone 'enabled' key usage is deprecated. The correct approach requires also a 'replace' entry "
    "under the 'override' key (i.e. 'enabled: replace')."
)
ERROR_OVERRIDE_APPEND = (
    "Keys 'override' and 'append: true' cannot be used together. Add an 'append' entry (e.g. "
    "'condition: append') under 'override' instead."
)
_RX_IDENTIFIER = re.compile(r"[a-zA-Z]+[a-zA-Z0-9_]*")
_RX_BARESTR = re.compile(r"""[^()"'\s=,]+""")

LIST_KEYS = frozenset({"list", "items", "append", "override"})
MACRO_KEYS = frozenset({"macro", "condition", "append", "override"})
RULE_KEYS = frozenset(
    {
        "rule",
        "condition",
        "output",
        "desc",
        "priority",
        "source",
        "enabled",
        "tags",
        "exceptions",
        "warn_evttypes",
        "skip-if-unknown-filter",
        "capture",
        "capture_duration",
        "append",
        "override",
    }
)
RULE_APPENDABLE = ("condition", "output", "desc", "tags", "exceptions")
RULE_REPLACEABLE = (
    "condition",
    "output",
    "desc",
    "priority",
    "capture",
    "capture_duration",
    "tags",
    "exceptions",
    "enabled",
    "warn_evttypes",
    "skip-if-unknown-filter",
)

Node = yaml.Node
Fields = dict[str, tuple[Node, Node]]


def parse_semver(text: str) -> tuple[int, int, int] | None:
    """``"x.y.z"`` -> tuple, else None."""
    m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", text.strip())
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


class Reader:
    """Reads files one after the other into one :class:`Collected` (call :meth:`read_file` per file)."""

    def __init__(self, known_sources: frozenset[str]) -> None:
        self.col = Collected()
        self.messages: list[LoadMessage] = []
        self.known_sources = known_sources
        self._src = SourceFile("", "")
        self._item_type = ""
        self._item_name = ""

    # --- messages -----------------------------------------------------------------------------------------
    def _msg(self, code: str, text: str, where: Location, error: bool) -> LoadMessage:
        return LoadMessage(code, text, where, error, self._item_type, self._item_name)

    def error(self, text: str, where: Location, code: str = "LOAD_ERR_YAML_VALIDATE") -> LoadError:
        """An error to raise, aborting the current item."""
        return LoadError(self._msg(code, text, where, True))

    def warn(self, code: str, text: str, where: Location) -> None:
        """Record a warning."""
        self.messages.append(self._msg(code, text, where, False))

    # --- entry point --------------------------------------------------------------------------------------
    def read_file(self, name: str, text: str) -> None:
        """Read one rules file's content."""
        self._src = src = SourceFile(name, text)
        self._item_type = self._item_name = ""
        try:
            docs = compose_documents(src)
        except yaml.YAMLError as exc:
            problem, line, col = yaml_cpp_message(exc)
            self.messages.append(LoadMessage("LOAD_ERR_YAML_PARSE", problem, Location(name, line, col), True))
            return
        for doc in docs:
            if is_null(doc):
                continue
            assert doc is not None
            if not isinstance(doc, yaml.SequenceNode):
                text_ = (
                    "Rules content is not yaml"
                    if isinstance(doc, yaml.ScalarNode)
                    else ("Rules content is not yaml array of objects")
                )
                self._item_type = "rules content"
                self.messages.append(self._msg("LOAD_ERR_YAML_VALIDATE", text_, loc(src, doc), True))
                continue
            for item in doc.value:
                if is_null(item):
                    continue
                self._item_type = self._item_name = ""
                try:
                    self._read_item(item)
                except LoadError as exc:
                    self.messages.append(exc.msg)

    # --- value decoding -----------------------------------------------------------------------------------
    def _scalar(self, fields: Fields, key: str, where: Location, optional: bool = False) -> str | None:
        if key not in fields:
            if optional:
                return None
            raise self.error(f"Item has no mapping for key '{key}'", where)
        val = fields[key][1]
        if is_null(val):
            raise self.error(f"Mapping for key '{key}' is empty", where)
        vloc = loc(self._src, val)
        if not isinstance(val, yaml.ScalarNode):
            raise self.error("Value is not a scalar value", vloc)
        if val.value == "":
            raise self.error("Value must be non-empty", vloc)
        return str(val.value)

    def _req(self, fields: Fields, key: str, where: Location) -> str:
        v = self._scalar(fields, key, where)
        assert v is not None
        return v

    def _bool(self, fields: Fields, key: str, where: Location, optional: bool = True) -> bool | None:
        v = self._scalar(fields, key, where, optional)
        if v is None:
            return None
        if v in TRUE_WORDS:
            return True
        if v in FALSE_WORDS:
            return False
        raise self.error("Can't decode YAML scalar value", loc(self._src, fields[key][1]))

    def _uint(self, fields: Fields, key: str, where: Location) -> int | None:
        v = self._scalar(fields, key, where, True)
        if v is None:
            return None
        try:
            n = int(v, 0)
        except ValueError:
            n = -1
        if n < 0:
            raise self.error("Can't decode YAML scalar value", loc(self._src, fields[key][1]))
        return n

    def _seq(self, fields: Fields, key: str, where: Location, optional: bool) -> list[str] | None:
        if key not in fields:
            if optional:
                return None
            raise self.error(f"Item has no mapping for key '{key}'", where)
        val = fields[key][1]
        vloc = loc(self._src, val)
        if not isinstance(val, yaml.SequenceNode):
            raise self.error("Value is not a sequence", vloc)
        out = []
        for v in val.value:
            if not isinstance(v, yaml.ScalarNode):
                raise self.error("sequence value is not scalar", loc(self._src, v))
            out.append(str(v.value))
        return out

    def _check_keys(self, fields: Fields, allowed: frozenset[str]) -> None:
        for key, (knode, _) in fields.items():
            if key not in allowed:
                self.warn("LOAD_UNKNOWN_KEY", f"Unknown key '{key}'. The key will be ignored.", loc(self._src, knode))

    def _overrides(
        self, fields: Fields, appendable: tuple[str, ...], replaceable: tuple[str, ...]
    ) -> tuple[set[str], set[str]]:
        append: set[str] = set()
        replace: set[str] = set()
        if "override" not in fields:
            return append, replace
        node = fields["override"][1]
        if not isinstance(node, yaml.MappingNode):
            raise self.error("Value of override must be a mapping", loc(self._src, node))
        for key, (knode, vnode) in mapping(node).items():
            op = str(vnode.value) if isinstance(vnode, yaml.ScalarNode) else ""
            if op == "append":
                if key not in appendable:
                    raise self.error(f"Key '{key}' cannot be appended to, use 'replace' instead", loc(self._src, knode))
                append.add(key)
            elif op == "replace":
                if key not in replaceable:
                    raise self.error(f"Key '{key}' cannot be replaced", loc(self._src, knode))
                replace.add(key)
            else:
                allowed = ("append " if key in appendable else "") + ("replace " if key in replaceable else "")
                raise self.error(
                    f"Invalid override operation for key '{key}': '{op}'. Allowed values are: {allowed}",
                    loc(self._src, vnode),
                )
        return append, replace

    # --- items --------------------------------------------------------------------------------------------
    def _read_item(self, item: Node) -> None:
        where = loc(self._src, item)
        if not isinstance(item, yaml.MappingNode):
            self._item_type = "rules content item"
            raise self.error("Unexpected element type. Each element should be a yaml associative array.", where)
        fields = mapping(item)
        handlers: list[tuple[str, Callable[[Fields, Location], None]]] = [
            ("required_engine_version", self._engine_version),
            ("required_plugin_versions", self._plugin_versions),
            ("list", self._list),
            ("macro", self._macro),
            ("rule", self._rule),
        ]
        for key, handler in handlers:
            if key in fields:
                # Falco's item type names (rule_loader.cpp): "required_engine_version" keeps its underscores
                self._item_type = key.replace("_", " ") if key == "required_plugin_versions" else key
                handler(fields, where)
                return
        self._item_type = "rules content item"
        self.warn("LOAD_UNKNOWN_ITEM", "Unknown top level item", where)

    def _engine_version(self, fields: Fields, where: Location) -> None:
        text = self._req(fields, "required_engine_version", where)
        if text.isdigit():
            version = (0, int(text), 0)
        else:
            parsed = parse_semver(text)
            if parsed is None:
                raise self.error(
                    f"Unable to parse engine version '{text}' as a semver string. Expected \"x.y.z\" semver format.",
                    where,
                )
            version = parsed
        if version[0] != ENGINE_VERSION[0] or version > ENGINE_VERSION:
            have = ".".join(map(str, ENGINE_VERSION))
            # the version as the file wrote it (an integer stays an integer, as in Falco's own message)
            want = text.strip() if text.isdigit() else ".".join(map(str, version))
            raise self.error(
                f"Rules require engine version {want}, but engine version is {have}", where, "LOAD_ERR_VALIDATE"
            )
        self.col.required_engine_version = max(self.col.required_engine_version, version)

    def _plugin_versions(self, fields: Fields, where: Location) -> None:
        node = fields["required_plugin_versions"][1]
        if not isinstance(node, yaml.SequenceNode):
            raise self.error("Value of required_plugin_versions must be a sequence", where)
        for plugin in node.value:
            ploc = loc(self._src, plugin)
            if not isinstance(plugin, yaml.MappingNode):
                raise self.error("Plugin version must be a mapping", ploc)
            pf = mapping(plugin)
            self._check_keys(pf, frozenset({"name", "version", "alternatives"}))
            alts = [self._name_version(pf, ploc)]
            if "alternatives" in pf:
                anode = pf["alternatives"][1]
                if not isinstance(anode, yaml.SequenceNode):
                    raise self.error("Value of plugin version alternatives must be a sequence", ploc)
                for alt in anode.value:
                    aloc = loc(self._src, alt)
                    if not isinstance(alt, yaml.MappingNode):
                        raise self.error("Plugin version alternative must be a mapping", aloc)
                    alts.append(self._name_version(mapping(alt), aloc))
            names = [a[0] for a in alts]
            for n in names:
                if names.count(n) > 1:
                    raise self.error(
                        f"Defined multiple alternative version requirements for plugin '{n}'", ploc, "LOAD_ERR_VALIDATE"
                    )
            self.col.plugin_requirements.append(PluginRequirement(alts, ploc))

    def _name_version(self, f: Fields, where: Location) -> tuple[str, str]:
        name = self._req(f, "name", where)
        version = self._req(f, "version", where)
        if parse_semver(version) is None:
            raise self.error(f"Invalid required version '{version}' for plugin '{name}'", where, "LOAD_ERR_VALIDATE")
        return name, version

    def _list(self, fields: Fields, where: Location) -> None:
        name = self._req(fields, "list", where)
        self._item_name = name
        self._check_keys(fields, LIST_KEYS)
        if not _RX_BARESTR.fullmatch(name):
            self.warn(
                "LOAD_INVALID_LIST_NAME",
                "List has an invalid name. List names should match a regular expression: ([^()\"'[:space:]=,]+)",
                where,
            )
        items = self._seq(fields, "items", where, optional=False) or []
        append = bool(self._bool(fields, "append", where))
        if append:
            self.warn("LOAD_DEPRECATED_ITEM", WARNING_APPEND, where)
        o_app, o_rep = self._overrides(fields, ("items",), ("items",))
        if append and (o_app or o_rep):
            raise self.error(ERROR_OVERRIDE_APPEND, where)
        info = ListInfo(name, items, where)
        prev = self.col.lists.get(name)
        ident = self.col.next_id()
        if append or "items" in o_app:
            if prev is None:
                # the deprecated key keeps the wording older Falco versions (and their test suites) use
                raise self.error(
                    "List has 'append' key but no list by that name already exists"
                    if append
                    else "List uses 'append' or 'override.items: append' but no list by that name already exists",
                    where,
                    "LOAD_ERR_VALIDATE",
                )
            prev.items = prev.items + items
            prev.visibility = ident
            return
        self._define(self.col.lists, info, ident)

    @staticmethod
    def _define(table: dict[str, Any], info: ListInfo | MacroInfo | RuleInfo, ident: int) -> None:
        prev = table.get(info.name)
        if prev is not None:
            assert isinstance(prev, type(info))
            info.index = prev.index
            info.visibility = ident
        else:
            info.index = info.visibility = ident
        table[info.name] = info

    def _macro(self, fields: Fields, where: Location) -> None:
        name = self._req(fields, "macro", where)
        self._item_name = name
        self._check_keys(fields, MACRO_KEYS)
        if not _RX_IDENTIFIER.fullmatch(name):
            self.warn(
                "LOAD_INVALID_MACRO_NAME",
                "Macro has an invalid name. Macro names should match a regular expression: ([a-zA-Z]+[a-zA-Z0-9_]*)",
                where,
            )
        self._req(fields, "condition", where)
        cond = CondText.from_node(self._src, fields["condition"][1])
        append = bool(self._bool(fields, "append", where))
        if append:
            self.warn("LOAD_DEPRECATED_ITEM", WARNING_APPEND, where)
        o_app, o_rep = self._overrides(fields, ("condition",), ("condition",))
        if append and (o_app or o_rep):
            raise self.error(ERROR_OVERRIDE_APPEND, where)
        ident = self.col.next_id()
        if append or "condition" in o_app:
            prev = self.col.macros.get(name)
            if prev is None:
                raise self.error(
                    "Macro has 'append' key but no macro by that name already exists"
                    if append
                    else "Macro uses 'append' or 'override.condition: append' but no macro by that name already exists",
                    where,
                    "LOAD_ERR_VALIDATE",
                )
            prev.cond = prev.cond.appended(cond)
            prev.visibility = ident
            return
        self._define(self.col.macros, MacroInfo(name, cond, where), ident)

    def _rule(self, fields: Fields, where: Location) -> None:
        from ruleengine.loader.rules import read_rule

        name = self._req(fields, "rule", where)
        self._item_name = name
        self._check_keys(fields, RULE_KEYS)
        read_rule(self, name, fields, where)

    def read_exceptions(self, fields: Fields, append: bool) -> list[ExceptionInfo]:
        """Decode ``exceptions:`` (see :mod:`ruleengine.loader.exceptions`)."""
        from ruleengine.loader.exceptions import read_exceptions

        return read_exceptions(self, fields, append)

    def validate_exception(self, ex: ExceptionInfo) -> None:
        """Falco's collector checks on one exception."""
        from ruleengine.loader.exceptions import validate_exception

        validate_exception(self, ex)


def new_rule_update(name: str, where: Location) -> RuleUpdate:
    """An empty update for rule ``name``."""
    return RuleUpdate(name, where)


__all__ = ["ENGINE_VERSION", "Reader", "RuleInfo", "parse_semver"]
