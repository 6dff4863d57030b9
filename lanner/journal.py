# SPDX-License-Identifier: Apache-2.0
"""A stage's spill journal: what it had not handed on when it stopped, sent again at its next start.

A stop must be quick (a supervisor waits 3 s at most) and must not lose what a stage holds: its queue and the
batches its downstream has not acknowledged, even when that downstream (or Redis behind it) is away. So the
stage writes them here, one length-prefixed record per item, to a temporary file renamed into place, so a journal
is either whole or absent. It is not fsynced: it must survive the process, which the page cache ensures, and an
fsync of a full collector queue (tens of MB) would cost the stop most of its 3 s; a host that loses power right
after a stop loses the journal. The next start reads it, deletes it, and queues the items
ahead of new ones. Items that were sent but not acknowledged may arrive twice; every hop downstream dedups by
event or alert identity.
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

from lanner.wire import SharedEvent, inline_event_wire

log = logging.getLogger(__name__)

T = TypeVar("T")
MAGIC = b"LNRJ1\n"
_LEN = struct.Struct(">I")


class Journal(Generic[T]):
    """Spills items of type ``T`` to ``path`` and restores them."""

    def __init__(self, path: str, encode: Callable[[T], bytes], decode: Callable[[bytes], T]) -> None:
        self.path = Path(path)
        self._encode = encode
        self._decode = decode

    def spill(self, items: Sequence[T]) -> None:
        """Write ``items`` (after any a previous spill left unrestored), atomically."""
        if not items:
            return
        previous = self._read() if self.path.exists() else []
        tmp = self.path.with_name(self.path.name + ".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as f:
            f.write(MAGIC)
            for raw in [*previous, *(self._encode(item) for item in items)]:
                f.write(_LEN.pack(len(raw)))
                f.write(raw)
        os.replace(tmp, self.path)
        log.info("spilled undelivered items", extra={"journal": str(self.path), "items": len(items)})

    def restore(self) -> list[T]:
        """The spilled items, oldest first; the journal is removed (its items are now the caller's)."""
        if not self.path.exists():
            return []
        raws = self._read()
        items = []
        for i, raw in enumerate(raws):
            try:
                items.append(self._decode(raw))
            except Exception as exc:
                log.error(
                    "journal record unreadable; skipped",
                    extra={"journal": str(self.path), "record": i, "error": str(exc)},
                )
        self.path.unlink(missing_ok=True)
        if items:
            log.info("restored spilled items", extra={"journal": str(self.path), "items": len(items)})
        return items

    def _read(self) -> list[bytes]:
        data = self.path.read_bytes()
        if not data.startswith(MAGIC):
            log.error("not a journal; ignored", extra={"journal": str(self.path)})
            return []
        out, pos = [], len(MAGIC)
        while pos + _LEN.size <= len(data):
            (n,) = _LEN.unpack_from(data, pos)
            pos += _LEN.size
            if pos + n > len(data):
                log.error("journal truncated", extra={"journal": str(self.path), "offset": pos})
                break
            out.append(data[pos : pos + n])
            pos += n
        return out


def bytes_journal(path: str) -> Journal[bytes] | None:
    """A journal of serialized messages at ``path``; None when no path is configured."""
    return Journal(path, bytes, bytes) if path else None


def shared_event_journal(path: str) -> Journal[SharedEvent] | None:
    """A journal of the collector's events; each is spilled self-contained, its processes inline."""
    return Journal(path, inline_event_wire, lambda raw: (raw, ())) if path else None


class Ledger:
    """What a stage took on and what it settled (handed on and acknowledged, counted as dropped, or spilled), as
    two counters in a small memory-mapped file.

    A SIGKILL gives a stage no chance to spill or count what it held; but the kernel keeps the pages of a shared
    file mapping when a process dies, so the next start reads ``taken - settled``: exactly what the killed
    process held, now counted as lost instead of vanishing silently. Updating it is a store to memory, no system
    call.
    """

    _COUNTS = struct.Struct("<QQ")

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size < self._COUNTS.size:
                os.ftruncate(fd, self._COUNTS.size)
            self._map = mmap.mmap(fd, self._COUNTS.size)
        finally:
            os.close(fd)
        taken, settled = self._COUNTS.unpack_from(self._map)
        # What the previous process held when it died without a stop (0 after a clean stop).
        self.lost_before = max(0, taken - settled)
        self.taken = self.settled = 0
        self._write()

    def _write(self) -> None:
        self._COUNTS.pack_into(self._map, 0, self.taken, self.settled)

    def took(self, n: int) -> None:
        self.taken += n
        self._write()

    def settle(self, n: int) -> None:
        self.settled += n
        self._write()
