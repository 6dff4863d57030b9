# SPDX-License-Identifier: Apache-2.0
"""The domain model mirrors event.proto field by field: ``lanner.convert`` and ``lanner.lazy_event`` derive their
field lists from both, so a field added to one side only would be silently dropped on the way through."""

from __future__ import annotations

from dataclasses import fields

import pytest
from google.protobuf.message import Message

from lanner import model
from lanner.v1 import event_pb2

# Where the two differ on purpose: the wire's oneof of typed values is one value in the model; processes by
# reference are resolved before the model; a recording's given values never travel.
EXPECTED = {
    model.Arg: ({"value"}, {"int_value", "uint_value", "str_value", "bytes_value"}),
    model.Event: ({"identity", "given"}, {"id", "proc_ref", "ancestor_refs"}),
}


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (model.Process, event_pb2.Process),
        (model.Fd, event_pb2.Fd),
        (model.Container, event_pb2.Container),
        (model.K8s, event_pb2.K8s),
        (model.Mount, event_pb2.Mount),
        (model.Arg, event_pb2.Arg),
        (model.EventIdentity, event_pb2.EventIdentity),
        (model.EventTiming, event_pb2.EventTiming),
        (model.Event, event_pb2.Event),
    ],
)
def test_model_and_proto_have_the_same_fields(cls: type, message: type[Message]) -> None:
    ours = {f.name for f in fields(cls)}
    wire = {f.name for f in message.DESCRIPTOR.fields}
    assert (ours - wire, wire - ours) == EXPECTED.get(cls, (set(), set()))
