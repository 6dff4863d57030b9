# SPDX-License-Identifier: Apache-2.0
"""Who may steer the collector's probes (``CollectorControl.SetKernelSpec``).

A kernel spec decides which syscalls the kernel drops before anyone sees them, so whoever may send one can blind
the sensor. Only the rule engine may: under mutual TLS it proves itself with the pipeline certificate; without TLS
it presents a control token that only root can read (``lanner up`` makes one under its state directory, mode 0600).
A collector with neither configured accepts any caller and says so when it starts.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from lanner.pki import is_pipeline_peer

METADATA_KEY = "authorization"


class ControlTokenError(Exception):
    """The control token file cannot be read or made."""


def read_token(path: str) -> str:
    """The token in ``path`` ('' when no path is configured)."""
    if not path:
        return ""
    try:
        token = Path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ControlTokenError(f"control_token_file: {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if len(token) < 16:
        raise ControlTokenError(f"control_token_file: {path}: a token of at least 16 characters is needed")
    return token


def ensure_token(path: Path) -> str:
    """The token in ``path``, made first (random, mode 0600) when the file does not exist yet."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
    return read_token(str(path))


def call_metadata(token: str) -> tuple[tuple[str, str], ...]:
    """What the rule engine sends with each call."""
    return ((METADATA_KEY, f"Bearer {token}"),) if token else ()


@dataclass(frozen=True, slots=True)
class ControlGuard:
    """The collector's check of a control call: ``refusal`` names why a caller is refused, or is None."""

    tls: bool
    token: str

    @property
    def open(self) -> bool:
        return not self.tls and not self.token

    def refusal(
        self, auth_context: Mapping[str, Iterable[bytes]], metadata: Iterable[tuple[str, str | bytes]]
    ) -> str | None:
        if self.tls and not is_pipeline_peer(auth_context):
            return "only the pipeline certificate may set the kernel spec"
        if self.token:
            given = next((v for k, v in metadata if k == METADATA_KEY), "")
            text = given.decode("ascii", "replace") if isinstance(given, bytes) else given
            if not hmac.compare_digest(text.encode(), f"Bearer {self.token}".encode()):
                return "a valid control token is needed to set the kernel spec"
        return None
