# SPDX-License-Identifier: Apache-2.0
"""The spill journal: items survive a stop in order, a second spill adds to an unrestored first, a damaged journal
costs only its damaged tail, and a BatchSender spills at close and sends the spilled items first at its next
start."""

from __future__ import annotations

from pathlib import Path

from lanner.journal import bytes_journal, shared_event_journal
from lanner.streaming import BatchSender
from lanner.v1 import event_pb2


def test_bytes_round_trip_and_append(tmp_path: Path) -> None:
    journal = bytes_journal(str(tmp_path / "j"))
    assert journal is not None and journal.restore() == []
    journal.spill([b"a", b"", b"c" * 1000])
    journal.spill([b"d"])
    assert journal.restore() == [b"a", b"", b"c" * 1000, b"d"]
    assert not (tmp_path / "j").exists() and journal.restore() == []


def test_shared_events_come_back_self_contained(tmp_path: Path) -> None:
    journal = shared_event_journal(str(tmp_path / "j"))
    assert journal is not None
    proc, parent = event_pb2.Process(pid=5, comm=b"cat"), event_pb2.Process(pid=1, comm=b"init")
    body = event_pb2.Event(type="openat").SerializeToString()
    journal.spill([(body, (proc.SerializeToString(), parent.SerializeToString())), (body, ())])
    restored = journal.restore()
    assert [procs for _, procs in restored] == [(), ()]
    first = event_pb2.Event.FromString(restored[0][0])
    assert first.type == "openat" and first.proc == proc and list(first.ancestors) == [parent]
    assert event_pb2.Event.FromString(restored[1][0]) == event_pb2.Event(type="openat")


def test_truncated_journal_keeps_its_whole_records(tmp_path: Path) -> None:
    journal = bytes_journal(str(tmp_path / "j"))
    assert journal is not None
    journal.spill([b"one", b"two"])
    path = tmp_path / "j"
    path.write_bytes(path.read_bytes()[:-1])
    assert journal.restore() == [b"one"]


def test_no_path_no_journal() -> None:
    assert bytes_journal("") is None and shared_event_journal("") is None


async def test_sender_spills_at_close_and_restores_first(tmp_path: Path) -> None:
    def make(journal_path: str) -> BatchSender[bytes]:
        return BatchSender("journal-test", "127.0.0.1:1", lambda ch: None, lambda s, i, d: b"",
                           journal=bytes_journal(journal_path))  # fmt: skip

    first = make(str(tmp_path / "s.journal"))
    first.submit_many([b"x", b"y"])
    await first.close(drain_timeout=0)
    assert first.dropped == 0 and (tmp_path / "s.journal").exists()
    second = make(str(tmp_path / "s.journal"))
    assert len(second) == 2 and not (tmp_path / "s.journal").exists()


async def test_what_a_killed_sender_held_is_counted_at_the_next_start(tmp_path: Path) -> None:
    """The ledger: a sender that never got to close (SIGKILL) left taken > settled; the next one counts it."""

    def make() -> BatchSender[bytes]:
        return BatchSender("ledger-test", "127.0.0.1:1", lambda ch: None, lambda s, i, d: b"", max_queue=4,
                           journal=bytes_journal(str(tmp_path / "s.journal")))  # fmt: skip

    killed = make()
    killed.submit_many([b"1", b"2", b"3", b"4", b"5", b"6"])  # two dropped (queue of 4): settled, not lost
    assert killed.dropped == 2
    del killed  # no close: as after a SIGKILL
    second = make()
    assert second.dropped == 4 and len(second) == 0
    await second.close(drain_timeout=0)
    third = make()  # after a clean stop nothing is counted again
    assert third.dropped == 0


async def test_an_urgent_item_outlives_a_full_queue(tmp_path: Path) -> None:
    """A drop report must not be dropped by the very overflow it reports."""
    journal = bytes_journal(str(tmp_path / "u.journal"))
    sender: BatchSender[bytes] = BatchSender(
        "urgent-test", "127.0.0.1:1", lambda ch: None, lambda s, i, d: b"", max_queue=2, journal=journal
    )
    sender.submit_urgent(b"report")
    sender.submit_many([b"%d" % n for n in range(10)])
    assert sender.dropped == 8
    await sender.close(drain_timeout=0)
    restored = bytes_journal(str(tmp_path / "u.journal")).restore()  # type: ignore[union-attr]
    assert restored == [b"report", b"8", b"9"]
