# SPDX-License-Identifier: Apache-2.0
"""The generated field readers (lanner.present) list exactly what ``ListFields`` lists, and the fd decoder built on
one gives the model the plain ``ListFields`` decoding gives, for any ``Fd`` on the wire."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lanner import convert, model
from lanner.present import present_reader
from lanner.text import from_bytes
from lanner.v1 import event_pb2


def _plain_fd(pb: event_pb2.Fd) -> model.Fd:
    """The decoder before lanner.present, kept word for word as the reference."""
    kw: dict[str, Any] = {f.name: value for f, value in pb.ListFields()}
    for name in convert._FD_TEXT:
        if name in kw:
            kw[name] = from_bytes(kw[name])
    if "type" in kw:
        kw["type"] = convert._FD_TYPES.get(kw["type"], model.FdType.UNSPECIFIED)
    if "l4proto" in kw:
        kw["l4proto"] = convert._L4_PROTOS.get(kw["l4proto"], model.L4Proto.UNSPECIFIED)
    return model.Fd(**kw)


_u32 = st.integers(0, 2**32 - 1)
_u64 = st.integers(0, 2**64 - 1)
_FD_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "num": st.integers(-(2**31), 2**31 - 1),
    "type": st.integers(0, 40),
    "path": st.binary(max_size=40),
    "path_raw": st.binary(max_size=40),
    "open_flags": _u32,
    "mode": _u32,
    "client_ip": st.sampled_from([b"", b"\x7f\0\0\1", bytes(16)]),
    "server_ip": st.sampled_from([b"", b"\x0a\0\0\1"]),
    "client_port": _u32,
    "server_port": _u32,
    "l4proto": st.integers(0, 40),
    "is_server": st.booleans(),
    "connected": st.booleans(),
    "dev": _u64,
    "ino": _u64,
    "name_changed": st.booleans(),
    "family": _u32,
}


def test_the_strategy_covers_every_fd_field() -> None:
    assert sorted(_FD_FIELDS) == sorted(f.name for f in event_pb2.Fd.DESCRIPTOR.fields)


@settings(max_examples=400, deadline=None)
@given(st.fixed_dictionaries({}, optional=_FD_FIELDS))
def test_fd_decodes_as_with_list_fields(values: dict[str, Any]) -> None:
    pb = event_pb2.Fd(**values)
    again = event_pb2.Fd.FromString(pb.SerializeToString())
    assert convert._decode_fd(again) == _plain_fd(again)
    assert convert._decode_fd(pb) == _plain_fd(pb)


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "pid": st.integers(0, 2**31),
            "comm": st.binary(max_size=8),
            "args": st.lists(st.binary(max_size=4), max_size=3),
        },
    )
)
def test_a_reader_lists_what_list_fields_lists(values: dict[str, Any]) -> None:
    read = present_reader(event_pb2.Process.DESCRIPTOR, {}, dict)
    pb = event_pb2.Process(**values)
    assert read(pb) == {f.name: v for f, v in pb.ListFields()}


def test_floats_are_refused() -> None:
    from google.protobuf import descriptor_pb2

    with pytest.raises(ValueError, match="float"):
        present_reader(descriptor_pb2.UninterpretedOption.DESCRIPTOR, {}, dict)
