# SPDX-License-Identifier: Apache-2.0
"""Whatever bytes arrive, the decoder returns an event or None and counts the bad ones; it never raises."""

from __future__ import annotations

import contextlib
import logging
import struct
from collections.abc import Iterator

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector import layout
from collector.decode import Decoder
from collector.proctable import ProcessTable
from lanner.model import Event
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


EXPECTED_TYPES = ["execve", "clone", "procexit", "openat", "renameat2", "connect", "socket"]


class DecoderErrors(logging.Handler):
    """Error records of the decoder: it logs one only when a record hit a bug (its catch-all branch)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.getMessage()}: {getattr(record, 'error', '')}")


@contextlib.contextmanager
def decoder_errors(decoder: Decoder) -> Iterator[DecoderErrors]:
    handler = DecoderErrors()
    logger = logging.getLogger("collector.decode")
    logger.addHandler(handler)
    decoder.malformed = 0  # the decoder logs its first ten failures: each example starts counting anew
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


# Sharing one decoder across inputs is the point: state built by earlier garbage must not break later input.
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=600))
def test_random_bytes(decoder: Decoder, data: bytes) -> None:
    with decoder_errors(decoder) as errors:
        ev = decoder.decode(data)
    assert errors.messages == [], "random bytes reached the decoder's bug branch"
    if len(data) < layout.HDR.size:
        assert ev is None and decoder.malformed == 1
    if ev is not None:
        assert decoder.malformed == 0 and isinstance(ev, Event) and ev.type
    assert decoder.malformed in (0, 1)


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
    changed = False
    for pos, value in flips:
        if pos < len(raw) and raw[pos] != value:
            raw[pos] = value
            changed = True
    with decoder_errors(decoder) as errors:
        ev = decoder.decode(bytes(raw))
    assert errors.messages == [], "a mutated record reached the decoder's bug branch"
    if cut >= len(GOOD[which]) and not changed:
        # Intact: whatever garbage came before, the record still decodes to its event.
        assert ev is not None and ev.type == EXPECTED_TYPES[which] and decoder.malformed == 0
    elif cut < layout.HDR.size:
        assert ev is None and decoder.malformed == 1
    else:
        # A decoded record is not also counted as malformed; a body can legitimately yield nothing (a failed
        # operation the decoder drops), so None alone proves nothing either way.
        assert decoder.malformed in (0, 1)
        if ev is not None:
            assert decoder.malformed == 0 and ev.type
