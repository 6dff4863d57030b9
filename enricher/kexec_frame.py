# SPDX-License-Identifier: Apache-2.0
"""``kubectl exec`` attribution (enricher.kexec) over a batch frame, where events stay serialized.

Only the few events that matter are parsed, found by their bytes: audit events of a ``pods/exec`` request,
``execve``/``execveat`` (a session may start) and, while sessions are tracked, ``procexit``. An attributed process
is placed, for this batch, in a copy of its container entry whose K8s part also carries ``exec_user`` and
``exec_groups`` (a serialized message appended to another merges into it), so the events stay untouched.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from enricher.kexec import ExecSessions, Who
from lanner.model import SOURCE_K8S_AUDIT
from lanner.text import from_bytes
from lanner.v1 import event_pb2

# Event.type is field 4 (tag 0x22), length-prefixed; audit events carry the request's JSON.
_EXEC_MARKS = (b'"\x06execve', b'"\x08execveat')
_EXIT_MARK = b'"\x08procexit'
_AUDIT_MARK = b'"subresource":"exec"'
# All of them as one pattern: each starts with a quote, which the search skips to in C.
_MARKS = re.compile(b"|".join(re.escape(m) for m in (*_EXEC_MARKS, _EXIT_MARK, _AUDIT_MARK)))
_CACHE_LIMIT = 65536


@dataclass(frozen=True, slots=True)
class _Proc:
    pid: int
    tid: int
    ppid: int
    argv: tuple[str, ...]
    comm: str
    exepath: str


_procs: dict[bytes, _Proc] = {}


def _proc(frame: event_pb2.EventBatchFrame, ref: int) -> _Proc | None:
    if ref <= 0 or ref > len(frame.processes):
        return None
    data = frame.processes[ref - 1]
    found = _procs.get(data)
    if found is None:
        p = event_pb2.Process.FromString(data)
        if len(_procs) >= _CACHE_LIMIT:
            _procs.clear()
        argv = tuple(from_bytes(a) for a in (p.exe, *p.args))
        found = _procs[data] = _Proc(p.pid, p.tid, p.ppid, argv, from_bytes(p.comm), from_bytes(p.exepath))
    return found


def _marked(events: Sequence[bytes]) -> list[int]:
    """The indexes, in order, of the events that contain one of the marks. The batch is searched as one string,
    in one pass of one pattern (in C), not event by event in Python: under load a batch holds hundreds of events
    and rarely one that matters. A match across two events' bytes only names the event it starts in, which the
    caller then checks alone, and the search goes on from the next event, so it never hides a match there."""
    blob = b"".join(events)
    found = _MARKS.search(blob)
    if found is None:
        return []
    ends = list(itertools.accumulate(map(len, events)))
    out: list[int] = []
    while found is not None:
        i = bisect.bisect_right(ends, found.start())
        out.append(i)
        found = _MARKS.search(blob, ends[i]) if i + 1 < len(ends) else None
    return out


def apply_to_frame(
    sessions: ExecSessions,
    frame: event_pb2.EventBatchFrame,
    refs: list[int],
    wheres: dict[int, tuple[str, str, str]],
) -> None:
    """Learn from the frame's events and re-point attributed processes' container refs (``refs``, 1-based per
    process, 0 = host). ``wheres`` maps a container ref to (namespace, pod, container) for pods' containers."""
    node = ""
    exits: list[int] = []
    events = frame.events
    for i in _marked(events):
        data = events[i]
        if _AUDIT_MARK in data:
            ev = event_pb2.Event.FromString(data)
            if ev.source == SOURCE_K8S_AUDIT:
                sessions.audit(ev.audit_json, ev.timing.event_ns)
        elif any(m in data for m in _EXEC_MARKS):
            ev = event_pb2.Event.FromString(data)
            node = ev.id.node
            p = _proc(frame, ev.proc_ref)
            parent = _proc(frame, ev.ancestor_refs[0]) if ev.ancestor_refs else None
            where = wheres.get(refs[ev.proc_ref - 1]) if 0 < ev.proc_ref <= len(refs) else None
            if ev.res == 0 and p is not None and parent is not None and where is not None:
                key, pkey = (node, p.pid), (node, p.ppid)
                sessions.exec(key, pkey, p.argv, parent.comm, parent.exepath, where, ev.timing.event_ns)
        elif _EXIT_MARK in data and sessions.active:
            ev = event_pb2.Event.FromString(data)
            node = ev.id.node
            p = _proc(frame, ev.proc_ref)
            if ev.type == "procexit" and p is not None and p.tid == p.pid:
                exits.append(p.pid)
    if not sessions.active or not frame.events:
        return
    if not node:
        node = event_pb2.Event.FromString(frame.events[0]).id.node
    placed: dict[tuple[int, Who], int] = {}
    for i, cref in enumerate(refs):
        if cref not in wheres:
            continue
        p = _proc(frame, i + 1)
        who = sessions.who((node, p.pid), (node, p.ppid)) if p is not None else None
        if who is None:
            continue
        new = placed.get((cref, who))
        if new is None:
            extra = event_pb2.K8s(exec_user=who.user, exec_groups=who.groups).SerializeToString()
            frame.containers.append(frame.containers[cref - 1])
            frame.k8s.append(frame.k8s[cref - 1] + extra)
            new = placed[(cref, who)] = len(frame.containers)
        refs[i] = new
    for pid in exits:
        sessions.exited((node, pid))
