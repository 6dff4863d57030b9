# SPDX-License-Identifier: Apache-2.0
"""Who may post to the Kubernetes audit webhook: the API server, as it can prove itself.

The API server's audit webhook backend reads a kubeconfig (``--audit-webhook-config-file``), whose ``users`` entry
can carry a client certificate (``client-certificate``/``client-key``) or a bearer token (``token``/``tokenFile``).
The webhook takes either:

- ``client_ca``: with TLS on, a client certificate signed by this CA (``lanner certs client DIR kube-apiserver``
  makes one from the pipeline CA), optionally only with one of ``client_names`` as its common name. Without a
  token file the TLS handshake itself refuses a client without such a certificate.
- ``token_file``: one token per line (``#`` comments); ``Authorization: Bearer <token>`` must match one, compared
  by digest in constant time. The file is read again when it changes, without a restart.

With both, either proof suffices. With neither, the webhook is open to whoever reaches its port, which is said
loudly at start unless it listens on loopback only. A refused request gets 401 before its body is read.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import ssl
from typing import Any

log = logging.getLogger(__name__)


class AuditAuth:
    """The webhook's client authentication: the TLS settings it needs, and the per-request check."""

    def __init__(self, client_ca: str = "", client_names: tuple[str, ...] = (), token_file: str = "") -> None:
        self.client_ca = client_ca
        self.client_names = frozenset(client_names)
        self.token_file = token_file
        self._stamp: tuple[int, int] | None = None
        self._digests: list[bytes] = []
        if token_file:
            self._load()  # an unreadable token file at start-up is a start-up error

    @property
    def enabled(self) -> bool:
        """Whether any proof is asked for."""
        return bool(self.client_ca or self.token_file)

    def configure(self, ctx: ssl.SSLContext) -> None:
        """Ask TLS clients for a certificate of ``client_ca``: required when it is the only proof accepted."""
        if not self.client_ca:
            return
        ctx.load_verify_locations(cafile=self.client_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL if self.token_file else ssl.CERT_REQUIRED

    def _load(self) -> None:
        st = os.stat(self.token_file)
        with open(self.token_file, encoding="utf-8") as f:
            lines = [line.strip() for line in f]
        self._digests = [hashlib.sha256(t.encode()).digest() for t in lines if t and not t.startswith("#")]
        self._stamp = (st.st_mtime_ns, st.st_size)
        log.info("audit webhook tokens loaded", extra={"file": self.token_file, "tokens": len(self._digests)})

    def _refresh(self) -> None:
        try:
            st = os.stat(self.token_file)
            if (st.st_mtime_ns, st.st_size) != self._stamp:
                self._load()
        except OSError as exc:
            log.error("audit token file unreadable; keeping the tokens loaded", extra={"error": str(exc)})

    def _token_ok(self, header: str) -> bool:
        if not self.token_file or header[:7].lower() != "bearer ":
            return False
        self._refresh()
        digest = hashlib.sha256(header[7:].strip().encode()).digest()
        ok = False
        for known in self._digests:
            ok |= hmac.compare_digest(known, digest)
        return ok

    def _certificate_ok(self, peercert: Any) -> bool:
        # ``peercert`` is what ssl verified against client_ca; empty or None when no certificate was presented.
        if not self.client_ca or not peercert:
            return False
        if not self.client_names:
            return True
        names = [value for rdn in peercert.get("subject", ()) for key, value in rdn if key == "commonName"]
        return any(n in self.client_names for n in names)

    def refusal(self, authorization: str, peercert: Any) -> str | None:
        """Why a request must be refused, or None when it may be served."""
        if not self.enabled or self._certificate_ok(peercert) or self._token_ok(authorization):
            return None
        if peercert and self.client_names:
            return "client certificate: its common name is not one of client_names"
        proofs = [p for p, on in (("a client certificate", self.client_ca), ("a bearer token", self.token_file)) if on]
        return f"authentication required: {' or '.join(proofs)}"
