# SPDX-License-Identifier: Apache-2.0
"""TLS client settings shared by every output that speaks TLS (HTTP outputs, syslog over TLS)."""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """Certificate settings (Falco's http_output names). Verification is on unless ``insecure``."""

    # Skip certificate verification (testing only; logged as a warning).
    insecure: bool = False
    # Extra CA certificate file and/or directory to trust, besides the system store.
    ca_cert: str = ""
    ca_path: str = ""
    # Client certificate and key for mutual TLS (both or neither).
    client_cert: str = ""
    client_key: str = ""

    def __post_init__(self) -> None:
        if bool(self.client_cert) != bool(self.client_key):
            raise ValueError("client_cert and client_key: give both for mutual TLS, or neither")


def ssl_context(s: TlsSettings) -> ssl.SSLContext:
    """The client TLS context for these settings; a missing or bad file raises OSError/SSLError now."""
    ctx = ssl.create_default_context()
    if s.ca_cert or s.ca_path:
        ctx.load_verify_locations(cafile=s.ca_cert or None, capath=s.ca_path or None)
    if s.client_cert:
        ctx.load_cert_chain(s.client_cert, s.client_key)
    if s.insecure:
        log.warning("TLS certificate verification is off for an output (insecure: true)")
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
