# SPDX-License-Identifier: Apache-2.0
"""The batch-wide search for the events kubectl exec attribution reads (exec, procexit, pods/exec audit): it finds
every event that holds a mark, wherever the mark sits and however the batch's bytes run on across events."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from enricher.kexec_frame import _AUDIT_MARK, _EXEC_MARKS, _EXIT_MARK, _marked

MARKS = (*_EXEC_MARKS, _EXIT_MARK, _AUDIT_MARK)


def _holding(events: list[bytes]) -> list[int]:
    return [i for i, e in enumerate(events) if any(m in e for m in MARKS)]


# Events built from pieces of the marks and noise, so marks appear whole, cut, and spread across two events.
_piece = st.one_of(
    st.sampled_from(MARKS),
    st.sampled_from(MARKS).flatmap(lambda m: st.integers(1, len(m) - 1).map(lambda k: m[:k])),
    st.sampled_from(MARKS).flatmap(lambda m: st.integers(1, len(m) - 1).map(lambda k: m[k:])),
    st.binary(max_size=12),
    st.just(b'"'),
)
_event = st.lists(_piece, max_size=6).map(b"".join)


@settings(max_examples=400)
@given(st.lists(_event, max_size=12))
def test_every_event_holding_a_mark_is_found(events: list[bytes]) -> None:
    found = _marked(events)
    assert found == sorted(set(found)) and all(0 <= i < len(events) for i in found)
    assert set(_holding(events)) <= set(found)
    # An index beyond those holding a mark is an event where a mark starts and runs on into the next event's bytes.
    blob = b"".join(events)
    for i in set(found) - set(_holding(events)):
        start = sum(map(len, events[:i]))
        end = start + len(events[i])
        assert any(blob.find(m, start, end + len(m)) not in (-1,) for m in MARKS)


def test_a_batch_without_marks_costs_one_search() -> None:
    events = [b'"\x06openat\x10/etc/hostname'] * 500
    assert _marked(events) == []
    events[0] = events[-1] = b'"\x06execve'
    events[250] = b'{"subresource":"exec"}'
    assert _marked(events) == [0, 250, 499]
    assert _marked([b"x" + MARKS[0][:3], MARKS[0][3:] + MARKS[2]]) == [0, 1]
    assert _marked([]) == []
