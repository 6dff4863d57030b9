# SPDX-License-Identifier: Apache-2.0
"""Dedup keys that a client cannot predict: an HMAC, under the dispatcher's secret, of the whole alert.

The producer's ``alert_id`` is a plain digest of (node, boot, producer, seq, rule), and Subscribe shows those
inputs to anyone, so a client that pushed decoys carrying future ids could make the real alerts count as
duplicates. The dispatcher therefore never trusts a claimed id alone. It dedups on
``HMAC-SHA256(secret, alert_id, rule, priority, source, tags, time, output, message, hostname, fields)``:
a redelivery of the same alert (the rule engine resending an unacked batch, or re-evaluating the same event after a
restart) produces the same key, while a decoy only claims a key if it is the very alert it pretends to be, and then
that alert's content was delivered anyway. Without the secret, nobody can compute or pre-claim a key.

The secret is 32 random bytes. It comes from ``dedup_secret`` (e.g. a Kubernetes Secret in the environment), else
from ``dedup_secret_file``, which is created with mode 0600 on first start. Replicas sharing one Redis must share
the secret too, or a redelivery reaching another replica would not be recognised.
"""

from __future__ import annotations

import hmac
import os
import secrets
import struct
from pathlib import Path

from lanner.v1 import alert_pb2

SECRET_BYTES = 32


def load_secret(literal: str, path: str) -> bytes:
    """The configured secret, or the one kept in ``path`` (generated there, readable by the owner only, if absent)."""
    if literal:
        return literal.encode()
    file = Path(path)
    try:
        data = file.read_bytes().strip()
    except FileNotFoundError:
        data = b""
    if data:
        return data
    file.parent.mkdir(parents=True, exist_ok=True)
    fresh = secrets.token_hex(SECRET_BYTES).encode()
    # O_EXCL: two replicas starting at once on one volume must not each write a different secret.
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return file.read_bytes().strip() or fresh
    with os.fdopen(fd, "wb") as out:
        out.write(fresh + b"\n")
    return fresh


# Each part is length-prefixed (8 bytes, big-endian), so no two different part lists give the same message.
_LENGTH = struct.Struct(">Q").pack


class DedupKeyer:
    """Computes the keyed dedup id of an alert as it arrived (before the dispatcher fills in defaults)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("dedup secret: must be at least 16 bytes")
        self._secret = secret

    def key(self, pb: alert_pb2.Alert) -> str:
        """64 hex digits; empty when the producer gave no alert_id (an alert without identity is never deduped)."""
        alert_id = pb.alert_id
        if not alert_id:
            return ""
        fields = pb.output_fields_json.encode() or pb.output_fields.SerializeToString(deterministic=True)
        at = pb.time
        chunks: list[bytes] = []
        for text in (alert_id, pb.rule, pb.source, "\0".join(pb.tags), pb.output, pb.message, pb.hostname):
            data = text.encode("utf-8", "surrogatepass")
            chunks += (_LENGTH(len(data)), data)
        stamp = f"{pb.priority}:{at.seconds}:{at.nanos}".encode()
        chunks += (_LENGTH(len(stamp)), stamp, _LENGTH(len(fields)), fields)
        # One call into OpenSSL's HMAC: cheaper per alert than copying a keyed ``hmac.HMAC`` object.
        return hmac.digest(self._secret, b"".join(chunks), "sha256").hex()
