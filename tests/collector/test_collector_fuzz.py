# SPDX-License-Identifier: Apache-2.0
"""Whatever bytes arrive, the decoder returns an event or None and counts the bad ones; it never raises."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector import layout
from collector.decode import Decoder
from collector.proctable import ProcessTable
from tests.collector import collector_testlib as rec

GOOD = [
    rec.exec_record(5, "/usr/bin/cat", ["cat", "/etc/shadow"]),
    rec.fork_record(5, 6),
    rec.exit_record(6),
    rec.open_record(5, "rel/path", dirfd=3),
    rec.fileop_record(5, layout.SC_RENAMEAT2, "a", "b"),
    rec.sock_record(layout.MSG_CONNECT, 5, 3, struct.pack("<HH4s", 2, 80, b"\x01\x02\x03\x04")),
    rec.socket_record(5, 3, 2, 1, 6),
]


# Sharing one decoder across inputs is the point: state built by earlier garbage must not break later input.
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=600))
def test_random_bytes(decoder: Decoder, data: bytes) -> None:
    before = decoder.malformed
    ev = decoder.decode(data)
    assert ev is not None or decoder.malformed == before + 1 or len(data) >= layout.HDR.size


# Sharing one decoder across inputs is the point: state built by earlier garbage must not break later input.
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    which=st.integers(0, len(GOOD) - 1),
    cut=st.integers(0, 700),
    flips=st.lists(st.tuples(st.integers(0, 700), st.integers(0, 255)), max_size=6),
)
def test_mutated_records(
    decoder: Decoder, table: ProcessTable, which: int, cut: int, flips: list[tuple[int, int]]
) -> None:
    raw = bytearray(GOOD[which][:cut])
    for pos, value in flips:
        if pos < len(raw):
            raw[pos] = value
    decoder.decode(bytes(raw))
