# SPDX-License-Identifier: Apache-2.0
"""DedupKeyer.key (one-shot HMAC) gives exactly the keys of the earlier keyed-HMAC-object code.

Keys already in Redis from a running dispatcher must keep matching redeliveries after an upgrade, so the key is a
wire contract: the reference below is the previous implementation, kept verbatim.
"""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.dedup import DedupKeyer
from lanner.v1 import alert_pb2

SECRET = bytes(range(32))


def reference_key(secret: bytes, pb: alert_pb2.Alert) -> str:
    def part(data: bytes) -> bytes:
        return len(data).to_bytes(8, "big") + data

    if not pb.alert_id:
        return ""
    mac = hmac.new(secret, digestmod=hashlib.sha256)
    fields = pb.output_fields_json.encode() or pb.output_fields.SerializeToString(deterministic=True)
    texts = (pb.alert_id, pb.rule, pb.source, "\0".join(pb.tags), pb.output, pb.message, pb.hostname)
    parts = [t.encode("utf-8", "surrogatepass") for t in texts]
    parts.append(f"{pb.priority}:{pb.time.seconds}:{pb.time.nanos}".encode())
    parts.append(fields)
    mac.update(b"".join(part(p) for p in parts))
    return mac.hexdigest()


# Protobuf strings are valid UTF-8: no lone surrogates.
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@st.composite
def alerts(draw: st.DrawFn) -> alert_pb2.Alert:
    pb = alert_pb2.Alert(
        alert_id=draw(TEXT),
        rule=draw(TEXT),
        priority=draw(st.integers(0, 7)),  # type: ignore[arg-type]
        source=draw(TEXT),
        tags=draw(st.lists(TEXT, max_size=4)),
        output=draw(TEXT),
        message=draw(TEXT),
        hostname=draw(TEXT),
    )
    pb.time.seconds = draw(st.integers(-62135596800, 253402300799))
    pb.time.nanos = draw(st.integers(0, 999_999_999))
    if draw(st.booleans()):
        pb.output_fields_json = draw(TEXT)
    else:
        for name in draw(st.lists(TEXT, max_size=3)):
            pb.output_fields.fields[name].string_value = draw(TEXT)
    return pb


@settings(max_examples=300, deadline=None)
@given(alerts(), st.binary(min_size=16, max_size=80))
def test_key_matches_reference(pb: alert_pb2.Alert, secret: bytes) -> None:
    assert DedupKeyer(secret).key(pb) == reference_key(secret, pb)


def test_key_of_a_typical_alert() -> None:
    pb = alert_pb2.Alert(alert_id="a" * 32, rule="r", source="syscall", tags=["x", "y"], output_fields_json="{}")
    key = DedupKeyer(SECRET).key(pb)
    assert len(key) == 64 and key == reference_key(SECRET, pb)
    assert DedupKeyer(SECRET).key(alert_pb2.Alert(rule="r")) == ""
