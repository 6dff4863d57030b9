# SPDX-License-Identifier: Apache-2.0
"""What the candidate rules decided for an event, remembered by the wire bytes of the parts they read.

An event type's dispatcher (``ruleengine.compiler``) reads an event's parts (its fd, its process, its container,
an arg...) in an order that depends only on the values it has read so far, and its answer depends only on those
values. So two events whose parts read along the way have equal wire bytes get the same answer, and the second
need not be decoded or evaluated at all. On a busy host most events repeat one another in exactly that way: the
same process opens the same files, over and over.

The memo is a tree per event type. Each inner node names the part the dispatcher reads next and maps that part's
wire key (``lanner.lazy_event.PART_KEYS``) to the next node; a leaf is the dispatcher's answer. An event walks the
tree computing only keys; at a missing branch it is evaluated as usual while the ``LazyEvent`` traces the parts it
decodes, and the path is added. A path through a part that differs for every event (identity, timing: a rule that
reads ``proc.duration``) ends in ``NO_MEMO``, and such events are evaluated as usual.

A miss costs about as much as a hit saves (the walk, the trace and the new path), so a memo that misses more
often than it answers rests for a while (``REST`` events) and lets events be evaluated as usual.

The only state outside the event a field reads is the watched domain names (``ruleengine.dnsnames``): the memo is
cleared when their address map changes. Should a traced path ever disagree with a stored one (a field that reads
some other state), the memo turns itself off for good and says so. Its size is bounded: past ``limit`` bytes (2 MiB
per event type's dispatcher: its keys' bytes plus a fixed cost per node; a process's wire form can weigh a few kB)
it starts again empty.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from lanner.lazy_event import PART_KEYS, LazyEvent
from lanner.v1 import event_pb2
from ruleengine import dnsnames

log = logging.getLogger(__name__)

MISS: Any = object()  # no answer stored: evaluate, tracing the parts read
NO_MEMO: Any = object()  # this path reads a part that never repeats: evaluate, nothing to store

_Key = Callable[[event_pb2.EventView, Any], object]
WINDOW = 1024  # misses over which the hit rate is judged
REST = 16 * 1024  # events evaluated without the memo after a window with more misses than hits


_NODE = 100  # bytes a node costs beside its key (dict slot, objects), roughly


def _weight(key: object) -> int:
    """Roughly the bytes a node of this key holds."""
    if type(key) is bytes or type(key) is str:
        return _NODE + len(key)
    if type(key) is tuple:
        return _NODE + sum(len(k) for k in key if type(k) is bytes)
    return _NODE


class _Branch:
    __slots__ = ("children", "key", "part")

    def __init__(self, part: str, key: _Key) -> None:
        self.part = part
        self.key = key
        self.children: dict[object, object] = {}


class DecisionMemo:
    """The answers of one dispatcher (one slot of the engine), by event type and the wire keys of the parts read."""

    __slots__ = ("_dns", "_misses", "_resting", "_roots", "_size", "enabled", "hits", "limit")

    def __init__(self, limit: int = 2 << 20) -> None:
        self._roots: dict[str, object] = {}
        self._size = 0
        self._dns = dnsnames.WATCHED.generation
        self.enabled = True
        self.limit = limit
        # Hits in the current window; the service counts here the repeats it answers for the memo (see
        # ``RuleEngineService.evaluate_batch``), so the memo rests as if it had answered them itself.
        self.hits = self._misses = self._resting = 0

    def lookup(self, ev: LazyEvent) -> Any:
        """The stored answer for this event, ``MISS``, or ``NO_MEMO``."""
        return self.lookup_view(ev.type, ev._view, ev._tables)

    def lookup_view(self, evt_type: str, view: event_pb2.EventView, tables: Any) -> Any:
        """The stored answer for the event of this type read as ``view`` from a batch with ``tables``."""
        if self._resting:
            self._resting -= 1
            return NO_MEMO
        if not self.enabled:
            return NO_MEMO
        if self._dns != dnsnames.WATCHED.generation:
            self._dns = dnsnames.WATCHED.generation
            self._roots.clear()
            self._size = 0
        node = self._roots.get(evt_type, MISS)
        try:
            while type(node) is _Branch:
                node = node.children.get(node.key(view, tables), MISS)
        except Exception:
            return MISS  # a part that does not decode either: the evaluation raises MalformedEvent for it
        if node is MISS:
            self._misses += 1
            if self._misses >= WINDOW:
                if self.hits < self._misses:
                    self._resting = REST
                self.hits = self._misses = 0
        else:
            self.hits += 1
        return node

    def store(self, ev: LazyEvent, trace: list[str], answer: object) -> None:
        """Remember ``answer`` for the path of parts ``trace`` that this event's evaluation decoded."""
        if self._size >= self.limit:
            self._roots.clear()
            self._size = 0
        view, tables = ev._view, ev._tables
        holder: dict[Any, object] = self._roots
        at: object = ev.type
        try:
            for part in trace:
                node = holder.get(at)
                key = PART_KEYS[part]
                if key is None:
                    if node is None:
                        holder[at] = NO_MEMO
                        self._size += _weight(at)
                    elif node is not NO_MEMO:
                        self._disagree(ev, part)
                    return
                if node is None:
                    node = holder[at] = _Branch(part, key)
                    self._size += _weight(at)
                elif type(node) is not _Branch or node.part != part:
                    self._disagree(ev, part)
                    return
                holder, at = node.children, key(view, tables)
        except Exception:
            return  # keys are computed from the same bytes the evaluation decoded; nothing to remember if not
        found = holder.get(at)
        if found is None:
            holder[at] = answer
            self._size += _weight(at)
        elif found != answer:
            self._disagree(ev, "answer")

    def _disagree(self, ev: LazyEvent, part: str) -> None:
        self.enabled = False
        self._roots.clear()
        log.warning(
            "rule decision memo turned off: equal event parts were evaluated differently",
            extra={"evt_type": ev.type, "part": part},
        )
