# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lanner.v1 import event_pb2
from lanner.wire import event_batch_wire, varint


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_varint_matches_protobuf(n: int) -> None:
    assert event_pb2.BatchAck(batch_seq=n).SerializeToString() == b"\x08" + varint(n) if n else True


@given(
    st.integers(min_value=1, max_value=2**40),
    st.lists(st.text(max_size=40), max_size=20),
    st.integers(min_value=0, max_value=2**32),
)
def test_batch_wire_is_a_valid_event_batch(seq: int, types: list[str], dropped: int) -> None:
    events = [event_pb2.Event(type=t, res=-i) for i, t in enumerate(types)]
    data = event_batch_wire(seq, [e.SerializeToString() for e in events], dropped)
    batch = event_pb2.EventBatch.FromString(data)
    assert batch.batch_seq == seq and batch.dropped_since_last == dropped
    assert list(batch.events) == events


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_negative_int64_varint_matches_protobuf(n: int) -> None:
    encoded = event_pb2.Event(res=n).SerializeToString()
    assert encoded == (b"\x28" + varint(n) if n else b"")
