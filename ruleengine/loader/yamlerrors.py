# SPDX-License-Identifier: Apache-2.0
"""YAML syntax errors worded as Falco reports them.

Falco parses rules files with yaml-cpp and passes its exception text on: ``yaml-cpp: error at line 1, column 11:
illegal map value``. Falco's test suites compare that text exactly, so PyYAML's problems are translated to
yaml-cpp's messages (its ``ErrorMsg`` constants); a problem yaml-cpp has no counterpart for keeps PyYAML's words.
"""

from __future__ import annotations

import yaml

# (words in PyYAML's problem, words in its context or None) -> yaml-cpp's message
_TRANSLATIONS: tuple[tuple[str, str | None, str], ...] = (
    ("mapping values are not allowed", None, "illegal map value"),
    ("could not find expected ':'", None, "illegal map value"),
    ("that cannot start any token", "'\\t'", "illegal tab when looking for indentation"),
    ("found unknown escape character", None, "unknown escape character: "),
    ("found undefined alias", None, "the referenced anchor is not defined: "),
    ("expected ',' or ']'", None, "end of sequence flow not found"),
    ("expected ',' or '}'", None, "end of map flow not found"),
    ("found unexpected end of stream", "quoted scalar", "end of string not found"),
    ("expected <block end>", "block mapping", "end of map not found"),
    ("expected <block end>", "block collection", "end of sequence not found"),
    ("expected <block end>", "block sequence", "end of sequence not found"),
)


def yaml_cpp_message(exc: yaml.YAMLError) -> tuple[str, int, int]:
    """``(message, line, column)`` (1-based) for a PyYAML error, worded as yaml-cpp words it."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = str(getattr(exc, "problem", None) or exc)
    context = str(getattr(exc, "context", None) or "")
    text = problem
    for words, ctx, cpp in _TRANSLATIONS:
        if words not in problem:
            continue
        if ctx is not None and ctx not in context and ctx not in problem:
            continue
        text = cpp
        if cpp.endswith(": "):
            quoted = problem.split("'")
            text = cpp + (quoted[1] if len(quoted) > 2 else "")
        break
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
    if mark is None:
        return f"yaml-cpp: error: {text}", line, col
    return f"yaml-cpp: error at line {line}, column {col}: {text}", line, col
