# SPDX-License-Identifier: Apache-2.0
"""YAML read as position-carrying nodes, never converted with PyYAML's implicit typing.

``yaml.safe_load`` would turn ``comps: [=, in]`` into an error and ``items: [on, 1]`` into booleans and ints; rules
need every scalar exactly as written, so we compose nodes and interpret scalars ourselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from ruleengine.loader.messages import Location

TRUE_WORDS = frozenset({"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"})
FALSE_WORDS = frozenset({"n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"})
NULL_WORDS = frozenset({"", "~", "null", "Null", "NULL"})


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A loaded rules file: its name as given and its full text (for mapping condition offsets to lines)."""

    name: str
    text: str


def loc(src: SourceFile, node: yaml.Node) -> Location:
    """The 1-based location of ``node``'s start."""
    m = node.start_mark
    return Location(src.name, m.line + 1, m.column + 1)


def is_null(node: yaml.Node | None) -> bool:
    """True for an absent node or a YAML null scalar (``key:`` with nothing after it)."""
    if node is None:
        return True
    return (
        isinstance(node, yaml.ScalarNode)
        and node.tag == "tag:yaml.org,2002:null"
        and not node.style  # plain: None from PyYAML, "" from libyaml
        and node.value in NULL_WORDS
    )


def is_scalar(node: yaml.Node) -> bool:
    """True for a non-null scalar node."""
    return isinstance(node, yaml.ScalarNode) and not is_null(node)


def mapping(node: yaml.MappingNode) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    """Key text -> (key node, value node); a later duplicate key wins, as with yaml-cpp."""
    out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for k, v in node.value:
        key = k.value if isinstance(k, yaml.ScalarNode) else str(k.value)
        out[key] = (k, v)
    return out


_FAST_LOADER = getattr(yaml, "CSafeLoader", None)  # libyaml: composing the stable rules takes 3 ms instead of 54


def compose_documents(src: SourceFile) -> list[yaml.Node | None]:
    """All documents of the file as nodes; raises yaml.YAMLError on bad YAML.

    libyaml composes the same nodes, marks included; a file it refuses is parsed again by PyYAML, whose error
    wording the yaml-cpp translation (``yamlerrors``) expects.
    """
    if _FAST_LOADER is not None and src.text.isascii():
        try:
            return list(yaml.compose_all(src.text, Loader=_FAST_LOADER))
        except yaml.YAMLError:
            pass
    return list(yaml.compose_all(src.text, Loader=yaml.SafeLoader))


def locate_offset(src: SourceFile, node: yaml.Node, offset: int) -> Location:
    """Map an offset into a scalar's *value* back to a file location.

    Folded and plain multi-line scalars differ from their source only in whitespace, so walking both texts and
    counting non-blank characters finds the source character for the value character at ``offset``.
    """
    value = node.value if isinstance(node, yaml.ScalarNode) else ""
    start = node.start_mark.index
    text = src.text
    i = start
    if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
        nl = text.find("\n", i)
        i = len(text) if nl < 0 else nl + 1
    elif isinstance(node, yaml.ScalarNode) and node.style in ("'", '"'):
        i += 1
    target = sum(1 for c in value[: max(0, offset)] if not c.isspace())
    end = node.end_mark.index
    seen = 0
    while i < end:
        c = text[i]
        if not c.isspace():
            if seen == target:
                break
            seen += 1
        i += 1
    i = min(i, max(start, end - 1)) if end > start else start
    line = text.count("\n", 0, i) + 1
    col = i - (text.rfind("\n", 0, i) + 1) + 1
    return Location(src.name, line, col)
