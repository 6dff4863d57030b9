# SPDX-License-Identifier: Apache-2.0
"""Turns ring-buffer records into ``lanner.model.Event``s.

The ``Decoder`` parses the common header, assigns identity and timing, and hands the body to one decoder per
syscall family (``decode_proc``, ``decode_file``, ``decode_net``), which update the process table and build the
event. Malformed records are counted and skipped, never raised.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

from collector import layout
from collector.proctable import ProcessTable
from lanner.model import HOST_CONTAINER, NO_K8S, SOURCE_SYSCALL, Arg, Event, EventIdentity, EventTiming, Fd, Process

log = logging.getLogger(__name__)


class Header(NamedTuple):
    """The decoded ``struct lanner_hdr`` (a NamedTuple: built once per record, so construction cost counts)."""

    ts_ns: int
    cgroup_id: int
    type: int
    size: int
    pid: int
    tid: int
    uid: int
    gid: int
    cpu: int
    flags: int
    comm: str
    vpid: int = 0
    vtid: int = 0


@dataclass(frozen=True, slots=True)
class Identity:
    """Who produces the events: host name, boot id and this collector run's id."""

    node: str
    boot_id: str
    producer_id: str


class MalformedRecord(ValueError):
    """A record too short for its declared layout."""


def cstr(buf: bytes, start: int, length: int) -> str:
    """A NUL-terminated string of ``length`` bytes (including the NUL) at ``start``."""
    if length <= 0:
        return ""
    end = start + length
    if end > len(buf):
        raise MalformedRecord(f"string at {start}+{length} past record end {len(buf)}")
    raw = buf[start:end]
    nul = raw.find(b"\0")
    if nul >= 0:
        raw = raw[:nul]
    return raw.decode("utf-8", "surrogateescape")


FamilyDecoder = Callable[["Decoder", Header, bytes], "Event | None"]


class Decoder:
    """Stateful decoder: owns the sequence counter and the process table it keeps current."""

    def __init__(self, table: ProcessTable, identity: Identity) -> None:
        self.table = table
        self.identity = identity
        self.seq = 0
        self.malformed = 0
        self.emit_kthread_forks = False
        self._collected_ns = 0
        self._comms: dict[bytes, str] = {}
        self._clock_offset = table.clock.to_wall(0)
        from collector import decode_fd, decode_file, decode_net, decode_priv, decode_proc

        self._families: dict[int, FamilyDecoder] = {}
        for mod in (decode_proc, decode_file, decode_net, decode_priv, decode_fd):
            self._families.update(mod.FAMILY)

    def decode_many(self, records: Iterable[bytes], collected_ns: int) -> list[Event]:
        """Decode a batch read at ``collected_ns`` (epoch ns); skips records that produce no event."""
        self._collected_ns = collected_ns
        self.table.clock.maybe_refresh()
        self._clock_offset = self.table.clock.to_wall(0)
        out: list[Event] = []
        for raw in records:
            ev = self.decode(raw)
            if ev is not None:
                out.append(ev)
        return out

    def decode(self, raw: bytes) -> Event | None:
        """Decode one record."""
        try:
            if len(raw) < layout.HDR.size:
                raise MalformedRecord(f"record of {len(raw)} bytes is shorter than the header")
            t = layout.HDR.unpack_from(raw)
            comm = self._comms.get(t[10])
            if comm is None:
                comm = self._comm(t[10])
            h = Header(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9], comm, t[11], t[12])
            self.table.now_ns = h.ts_ns
            fam = self._families.get(h.type)
            if fam is None:
                raise MalformedRecord(f"unknown record type {h.type}")
            return fam(self, h, raw)
        except (MalformedRecord, IndexError, UnicodeError, ValueError, OverflowError, struct.error) as exc:
            self.malformed += 1
            if self.malformed <= 10 or self.malformed % 10000 == 0:
                log.warning("malformed ring buffer record", extra={"error": str(exc), "count": self.malformed})
            return None
        except Exception as exc:
            # A decoder bug must cost one event, not the collector: count it, log it with its traceback (rarely).
            self.malformed += 1
            if self.malformed <= 10 or self.malformed % 10000 == 0:
                log.error(
                    "could not decode a record",
                    exc_info=True,
                    extra={"error": repr(exc), "count": self.malformed, "record_type": raw[16:20].hex()},
                )
            return None

    def _comm(self, raw: bytes) -> str:
        nul = raw.find(b"\0")
        comm = (raw[:nul] if nul >= 0 else raw).decode("utf-8", "surrogateescape")
        if len(self._comms) > 65536:
            self._comms.clear()
        self._comms[raw] = comm
        return comm

    def body(self, fmt_size: int, raw: bytes) -> None:
        """Raise unless the record holds a body of ``fmt_size`` bytes after the header."""
        if len(raw) < layout.HDR.size + fmt_size:
            raise MalformedRecord(f"record of {len(raw)} bytes is too short for its body")

    def event(
        self,
        h: Header,
        type_: str,
        proc: Process,
        ancestors: tuple[Process, ...],
        *,
        res: int = 0,
        fd: Fd | None = None,
        args: tuple[Arg, ...] = (),
        incomplete: bool = False,
    ) -> Event:
        """Assemble the event with the next sequence number and wall-clock timing."""
        self.seq += 1
        ident = self.identity
        # Positional construction: this runs once per event and keyword parsing showed in profiles.
        return Event(
            type_,
            SOURCE_SYSCALL,
            EventIdentity(ident.node, ident.boot_id, self.seq, ident.producer_id),
            EventTiming(h.ts_ns + self._clock_offset, self._collected_ns),
            res,
            h.cpu,
            proc,
            ancestors,
            fd,
            args,
            HOST_CONTAINER,
            NO_K8S,
            "",
            incomplete,
        )
