# SPDX-License-Identifier: Apache-2.0
"""The ``regex`` operator on RE2, as libsinsp compiles it: POSIX syntax, leftmost-longest, anchored at both ends.

RE2 runs in time linear in the input, so a rule such as ``fd.name regex '.*(a+)+$'`` cannot be made to backtrack
for seconds by a crafted path (Python's ``re`` would). A pattern RE2 rejects is a load error with RE2's reason.
"""

from __future__ import annotations

from typing import Any

import re2

__all__ = ["Re2Matcher", "RegexError"]


class RegexError(ValueError):
    """A pattern RE2 cannot compile; the text is Falco's (``invalid regex pattern: <RE2's reason>``)."""


def _options() -> Any:
    opts = re2.Options()
    # libsinsp passes RE2::POSIX: POSIX egrep syntax (no \d, no lookaround) with leftmost-longest matching.
    opts.posix_syntax = True
    opts.longest_match = True
    opts.log_errors = False
    return opts


_OPTIONS = _options()


class Re2Matcher:
    """A compiled pattern; calling it full-matches a value and returns a match object or None."""

    __slots__ = ("_re", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        try:
            self._re = re2.compile(pattern, _OPTIONS)
        except re2.error as exc:
            reason = exc.args[0] if exc.args else exc
            text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
            raise RegexError(f"invalid regex pattern: {text}") from None
        except UnicodeEncodeError:
            raise RegexError("invalid regex pattern: not valid UTF-8") from None

    def __call__(self, value: str) -> Any:
        try:
            return self._re.fullmatch(value)
        except UnicodeEncodeError:
            # kernel bytes that are not UTF-8 travel as surrogate escapes; RE2 sees the raw bytes, as in Falco
            return self._re.fullmatch(value.encode("utf-8", "surrogateescape"))
