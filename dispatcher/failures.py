# SPDX-License-Identifier: Apache-2.0
"""Transient or permanent: the one rule that decides whether a failed delivery is worth another attempt.

A permanent failure is one the same alert would hit again on every attempt, whatever the destination's state:
a refusal (HTTP 4xx, ``PermanentError``), a payload that cannot be built from this alert (``ValueError``,
``TypeError``, ``OverflowError``, ``RecursionError``, ``UnicodeError``), or an OS error about the data itself
(EOVERFLOW: a value too large for its type, EMSGSIZE: a datagram too long, E2BIG, ERANGE, EILSEQ). Such an alert
is dead-lettered at once with the reason, so it can never hold up the alerts behind it. Everything else (refused
or reset connections, timeouts, full disks, 5xx) is about the destination, and is retried up to the output's
``max_retries``.
"""

from __future__ import annotations

import errno

from dispatcher.registry import PermanentError

# errno values that describe the payload rather than the destination.
PAYLOAD_ERRNOS = frozenset({errno.EOVERFLOW, errno.EMSGSIZE, errno.E2BIG, errno.ERANGE, errno.EILSEQ})
_PAYLOAD_ERRORS = (ValueError, TypeError, OverflowError, RecursionError, PermanentError)


def is_permanent(exc: BaseException) -> bool:
    """True if retrying the same alert cannot succeed."""
    if isinstance(exc, _PAYLOAD_ERRORS):
        return True
    return isinstance(exc, OSError) and exc.errno in PAYLOAD_ERRNOS


def describe(exc: BaseException) -> str:
    """``Type: message`` for logs and the dead-letter reason."""
    return f"{type(exc).__name__}: {exc}"
